//! Microkernels: one register tile `C[MR×NR] (+)= A-panel · B-panel` per call.
//!
//! The body is written once over [`Simd`]: per depth step it loads `NV` vectors of the B
//! panel (NR = NV·LANES columns), broadcasts each of the MR values of the A panel and issues
//! MR·NV fused multiply-adds into accumulators that stay in registers for the whole depth.
//! Register budget per path (accumulators + B vectors + one broadcast):
//!
//! | path    | tile    | registers            |
//! |---------|---------|----------------------|
//! | AVX-512 | 8 × 48  | 24 + 3 + 1 of 32 zmm (wide C: NCHW pixels) |
//! | AVX-512 | 7 × 48  | 21 + 3 + 1 of 32 zmm (pixels as rows: 7 divides ResNet's images) |
//! | AVX-512 | 6 × 64  | 24 + 4 + 1 of 32 zmm (pixels as rows, channels a multiple of 64) |
//! | AVX-512 | 12 × 32 | 24 + 2 + 1 of 32 zmm (C 32..47 columns wide, NHWC channels) |
//! | AVX-512 | 16 × 16 | 16 + 1 + 1 of 32 zmm (narrow C: small images) |
//! | AVX2    | 6 × 16  | 12 + 2 + 1 of 16 ymm |
//! | portable| 4 × 8   | 4 f32x8 (8 xmm on SSE) + 1 + 1 of 16 xmm |
//!
//! The A values come from a packed panel (MR values per depth step) or, for an A whose rows
//! are contiguous in depth, straight from its rows (`*_rows` entry points: MR row pointers,
//! one value per row and step), which spares the standalone SGEMM the transposing pack of A
//! for every column block (`docs/tuning.md`, microkernels reading A's rows in place).
//!
//! B's depth steps are `ldb` apart: NR for a packed panel, or the distance between the rows
//! of a B read in place (its columns contiguous, as a pointwise layer's NCHW input); the
//! `*_stepped_b` entry points read B in place at a table of step offsets instead (im2col's
//! padded copies, where the taps of a channel are unevenly spaced; where the copies' lines
//! hold whole vectors of kept columns, a tile's vectors skip the dropped columns between two
//! lines rather than compute them). A B that
//! was prepacked at plan time (Winograd's transformed filters) is read from L3 or memory,
//! once per run: the `*_streaming_b` entry points prefetch it [`B_PREFETCH_STEPS`] depth
//! steps ahead of their loads. A B packed into the worker's scratch sits in L2 and is read by
//! entry points without the prefetch.
//!
//! The last tile of a row of tiles whose columns need fewer vectors than NR runs a narrow
//! tile (`v < NV` vectors of the same panel, `MR·v` accumulators), so no multiply-add is
//! spent on the zero columns past the edge (sgemm_1024 with 8 × 48 tiles: 1024 = 21·48 + 16).
//! A tile with fewer than [`FMA_CHAINS`] accumulators (AVX2's 6 × 8) would wait on the
//! multiply-add latency: it sums its odd depth steps into a second set of accumulators.
//! The last one or two columns of a row of tiles with a packed A (a 7x7 image's 49th pixel,
//! a GEMV's only column) go to [`edge_columns`] instead, the tile's rows in the lanes of one
//! vector: one multiply-add per column and depth step where a narrow tile spends MR.
//!
//! After the last depth block the tile gets the bias (per row or per column) and the
//! activation before it is stored; edge tiles store only their valid rows and columns (masked
//! on AVX2/AVX-512). A C of half-precision elements (one depth block, neither transposed nor
//! pitched: [`TileEpilogue::element`]) is rounded from the registers as it is stored, so
//! that its f32 sums never go to memory. A C stored transposed (the pixels of an NCHW output
//! as the tile's rows) goes through the path's in-register transpose, each channel's run of
//! pixels at once. A whole tile on a pitched grid (im2col's padded lines, whose last columns
//! are dropped) is stored from its registers too: a vector that crosses a line's end stores
//! its kept lanes as two masked runs rather than being parked and copied (`docs/tuning.md`,
//! whole pitched tiles stored from the registers).
//!
//! Each tile shape is one entry of `tile_list!` (per path, widest first): that list builds
//! both the candidates the driver chooses from ([`KernelShape::candidates`]) and, through
//! the ISA table's one `#[target_feature]` wrapper per path (`convkit_simd::IsaPath::entry`),
//! the seven entry points of each tile and of its narrow variants ([`TileKernel`]).
//!
//! The `*_stepped_a` entry points read A in place at two tables: tile row `i`'s value of depth
//! step `p` at `a + row_offsets[i] + steps[p]` (im2col's pixel rows: a pixel's place in the
//! padded copy plus a tap's). Each row holds its own pointer, so such tiles have at most
//! [`MAX_STEPPED_A_ROWS`] rows.

use convkit_core::Isa;
use convkit_simd::peak::FMA_CHAINS;
use convkit_simd::{
    F32Storage, IsaPath, Portable, Simd, SimdKernel, VectorActivation, prefetch_l1,
};
use half::{bf16, f16};

/// What happens to a tile after its products are summed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileEpilogue {
    /// Add the values already in C (depth blocks after the first).
    pub accumulate: bool,
    /// Apply bias and activation (the last depth block).
    pub finish: bool,
    /// One bias per tile row, or null.
    pub row_bias: *const f32,
    /// One bias per tile column, or null.
    pub col_bias: *const f32,
    /// The activation.
    pub activation: VectorActivation,
    /// C is stored transposed: tile element `(i, j)` at `c + j·ldc + i` (`Columns::Transposed`).
    pub transposed: bool,
    /// C's columns are pitched (`Columns::Pitched`) and `c` is the start of the tile's first
    /// output row: a whole tile is stored from its registers, each vector's kept lanes at
    /// their places in at most two runs.
    pub pitched: Option<PitchedGrid>,
    /// The type of C's elements: `c` points at them (cast). Half-precision elements are
    /// rounded from the registers as they are stored; such a C is neither accumulated into
    /// (its tile has one depth block), transposed nor pitched.
    pub element: CElement,
}

/// The type of the elements of the C a tile is stored into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CElement {
    /// f32.
    F32,
    /// `half::f16`, rounded once on store.
    F16,
    /// `half::bf16`, rounded once on store.
    Bf16,
}

/// A whole tile's place on a pitched grid: grid column `q` of a row lands at output column
/// `(q / pitch)·valid + q % pitch` when `q % pitch < valid`, and is dropped otherwise.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PitchedGrid {
    /// The tile's first grid column.
    pub first: usize,
    /// Grid columns per line.
    pub pitch: usize,
    /// Kept columns per line, at least one vector's lanes (so that a vector's lanes span
    /// at most two lines).
    pub valid: usize,
}

/// Where one vector of a pitched tile's row lands: lanes `..head` at `head_at + lane` (the
/// end of one grid line), lanes `tail_from..` at `tail_at + lane` (the start of the next);
/// the lanes between are dropped.
#[derive(Clone, Copy)]
struct PitchedRuns {
    head_at: usize,
    head: usize,
    tail_at: usize,
    tail_from: usize,
}

impl PitchedGrid {
    /// The runs of the vector of `lanes` lanes at tile column `col`.
    fn runs(&self, col: usize, lanes: usize) -> PitchedRuns {
        let q = self.first + col;
        let (line, column) = (q / self.pitch, q % self.pitch);
        let tail_from = (self.pitch - column).min(lanes);
        PitchedRuns {
            head_at: line * self.valid + column,
            head: self.valid.saturating_sub(column).min(lanes),
            // `valid ≥ lanes ≥ tail_from`: the next line's start, less the skipped lanes.
            tail_at: (line + 1) * self.valid - tail_from,
            tail_from,
        }
    }
}

/// Where a microkernel reads its A values (the fields its entry point does not use are
/// ignored).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AOperand {
    /// The packed panel, the first row (rows kernels) or the base that the tables offset
    /// (stepped kernels).
    pub ptr: *const f32,
    /// Rows kernels: the distance between rows.
    pub lda: usize,
    /// Stepped kernels: per depth step, its offset from `ptr`.
    pub steps: *const u32,
    /// Stepped kernels: per tile row, its offset from `ptr`.
    pub row_offsets: *const u32,
}

/// Where a microkernel reads its B values (the fields its entry point does not use are
/// ignored).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BOperand {
    /// The panel, or the base that the step table offsets (stepped kernels).
    pub ptr: *const f32,
    /// Strided and streamed kernels: the distance between depth steps.
    pub ldb: usize,
    /// Stepped kernels: per depth step, its offset from `ptr`.
    pub steps: *const u32,
    /// Stepped kernels: the tile's first vector that lies on the next line of a source whose
    /// columns lie on lines (`PanelSource::stepped_lines`; the kernel's vector count or more
    /// when none does), and the elements between the lines, which that vector and the
    /// following ones skip.
    pub line_break: (usize, usize),
}

impl BOperand {
    /// A line break past every vector: the tile's vectors one after another.
    pub const NO_LINE_BREAK: (usize, usize) = (usize::MAX, 0);
}

/// A microkernel entry point.
///
/// # Safety
/// The CPU has the kernel's path. `b.ptr` holds `depth` steps `b.ldb` elements apart
/// (stepped-B kernels: step `p` at `b.ptr + b.steps[p]`, vector `j` from there at `j·LANES`,
/// plus the line break's skip from its vector on), each of the kernel's vectors (NR columns,
/// or `v` vectors for a narrow kernel) readable; `a.ptr` holds `depth·MR` packed
/// values (packed kernels), or `rows` rows of `depth` values at stride `a.lda` (rows
/// kernels: tile row `i` at `a.ptr + i·lda`), or tile row `i`'s value of step `p` at
/// `a.ptr + a.row_offsets[i] + a.steps[p]` (stepped-A kernels: `rows` offsets and `depth`
/// steps readable); rows past `rows` read row `rows − 1`, whose products are never stored;
/// `c` is writable for `rows ≤ MR` rows of `cols ≤ NR` values at row stride `ldc` (with a
/// transposed epilogue: tile element `(i, j)` at `c + j·ldc + i`; with a pitched one, a whole
/// tile whose kept elements `(i, j)` go to `c + i·ldc` plus grid column `first + j`'s output
/// column, see [`PitchedGrid`]); bias pointers (when not null) are readable for `rows` and
/// `cols` values.
pub(crate) type MicroKernel = unsafe fn(&TileEpilogue, &mut [f32], TileCall);

/// One microkernel call's operands (see [`MicroKernel`]; the tile's epilogue is the
/// kernel's context).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileCall {
    pub depth: usize,
    pub a: AOperand,
    pub b: BOperand,
    pub c: *mut f32,
    pub ldc: usize,
    pub rows: usize,
    pub cols: usize,
}

/// Stores a finished register tile (parked in a small buffer) into a C whose columns are
/// pitched (see `Columns::Pitched`), with accumulation, bias and activation: the entry of
/// [`PitchedStoreKernel`] on the tile's path.
///
/// # Safety
/// The CPU has the kernel's path. `tile` holds `rows` rows of `cols` values at stride
/// `tile_ld`; every C element the mapping reaches is writable; the row bias (when not null)
/// holds `rows` values.
pub(crate) type PitchedStore = unsafe fn(&TileEpilogue, &mut [f32], PitchedCall);

/// One pitched store's operands (see [`PitchedStore`]; the epilogue is its context):
/// `columns = (first, count)` and `pitch = (pitch, valid)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PitchedCall {
    pub tile: *const f32,
    pub tile_ld: usize,
    pub c: *mut f32,
    pub ldc: usize,
    pub rows: usize,
    pub columns: (usize, usize),
    pub pitch: (usize, usize),
}

/// Most narrow kernels of a tile (the widest tile has four vectors).
const MAX_NARROW: usize = 3;

/// Most rows of a tile that reads A at tables of offsets: each row keeps its own pointer in a
/// general register, and eight of them (with B's pointer, the step tables and the loop
/// counter) no longer fit x86-64's sixteen.
pub const MAX_STEPPED_A_ROWS: usize = 7;

/// The entry points of one tile: A from packed panels, from its rows in place, or in place at
/// tables of offsets; B packed into the worker's scratch (in cache), streamed from a
/// prepacked operand in memory, or read in place at a table of offsets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kernels {
    pub packed: MicroKernel,
    pub rows: MicroKernel,
    pub packed_streaming_b: MicroKernel,
    pub rows_streaming_b: MicroKernel,
    /// A packed; B read in place at a table of step offsets.
    pub packed_stepped_b: MicroKernel,
    /// A read in place at tables of row and step offsets; B strided.
    pub stepped_a: MicroKernel,
    /// A read in place at tables of row and step offsets; B streamed.
    pub stepped_a_streaming_b: MicroKernel,
}

/// How a microkernel reads A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AAccess {
    /// A packed panel (MR values per depth step).
    Packed,
    /// The source's rows in place (depth contiguous).
    Rows,
    /// In place at tables of row and step offsets.
    Stepped,
}

/// How a microkernel reads B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BAccess {
    /// Steps `ldb` apart in cache: packed into scratch, or read in place.
    Strided,
    /// A prepacked panel streamed from memory (prefetched).
    Streamed,
    /// In place at a table of step offsets (A packed).
    Stepped,
}

impl Kernels {
    /// The entry point for A read as `a` and B read as `b`; a stepped B takes a packed A.
    pub fn select(&self, a: AAccess, b: BAccess) -> MicroKernel {
        match (a, b) {
            (AAccess::Packed, BAccess::Strided) => self.packed,
            (AAccess::Rows, BAccess::Strided) => self.rows,
            (AAccess::Stepped, BAccess::Strided) => self.stepped_a,
            (AAccess::Packed, BAccess::Streamed) => self.packed_streaming_b,
            (AAccess::Rows, BAccess::Streamed) => self.rows_streaming_b,
            (AAccess::Stepped, BAccess::Streamed) => self.stepped_a_streaming_b,
            (_, BAccess::Stepped) => self.packed_stepped_b,
        }
    }
}

/// `tile`'s A modes (a const parameter): packed panel, rows in place, stepped in place.
const A_PACKED: u8 = 0;
const A_ROWS: u8 = 1;
const A_STEPPED: u8 = 2;

/// Depth steps ahead of the loads that a streaming-B kernel prefetches its B panel (the
/// panels of a prepacked B follow each other, so the last steps of a tile fetch the next
/// tile's first). A prepacked B (Winograd's transformed filters) comes from L3 or DRAM once
/// per run, where the hardware prefetcher alone falls behind; a B packed into scratch is in
/// L2, where the extra loads only cost, so those kernels do not prefetch (`docs/tuning.md`,
/// B_PREFETCH_STEPS).
const B_PREFETCH_STEPS: usize = 64;

/// A microkernel with its tile shape.
#[derive(Clone, Copy, Debug)]
pub struct KernelShape {
    /// The path it is compiled for.
    pub isa: Isa,
    /// Tile rows (the A panel width).
    pub mr: usize,
    /// Tile columns (the B panel width).
    pub nr: usize,
    /// f32 lanes of the path's vectors.
    lanes: usize,
    /// The whole MR × NR tile.
    pub(crate) full: Kernels,
    /// `narrow[v − 1]` computes only the first `v` vectors of the NR-wide B panel (for
    /// `v < NR / LANES`): a row of tiles' last columns, without the multiply-adds of the zero
    /// columns past them.
    pub(crate) narrow: [Option<Kernels>; MAX_NARROW],
    /// The edge-columns kernels of the tile's rows, where its vectors hold them.
    edge: Option<EdgeKernels>,
    pub(crate) store_pitched: PitchedStore,
}

impl KernelShape {
    /// The tile shapes of `isa`, widest first.
    pub fn candidates(isa: Isa) -> Vec<KernelShape> {
        tiles_of(isa)
    }

    /// f32 lanes of the path's vectors.
    pub(crate) fn lanes(&self) -> usize {
        self.lanes
    }

    /// Whether this tile reads a stepped B whose lines keep `kept` columns
    /// ([`PanelSource::stepped_lines`](crate::PanelSource::stepped_lines)) in place: lines
    /// of whole vectors, at least a tile wide, so that a tile's vectors cross at most one
    /// line's end, and between two vectors.
    pub fn reads_whole_lines(&self, kept: usize) -> bool {
        kept.is_multiple_of(self.lanes()) && kept >= self.nr
    }

    /// Loads per fused multiply-add of the tile's inner loop on `vectors` vectors of B:
    /// `(NV + MR) / (MR·NV)`. Narrow tiles spend more of their issue slots on loads.
    fn loads_per_fma(&self, vectors: usize) -> f64 {
        let vectors = vectors as f64;
        (vectors + self.mr as f64) / (self.mr as f64 * vectors)
    }

    /// The entry points for a tile of `cols ≤ NR` columns: the narrow kernel of its vectors
    /// where there is one, else the full tile.
    pub(crate) fn kernels_for(&self, cols: usize) -> &Kernels {
        // Lanes are a power of two: a shift, not a division, at every tile.
        debug_assert!(self.lanes.is_power_of_two());
        let vectors = (cols + self.lanes - 1) >> self.lanes.trailing_zeros();
        vectors
            .checked_sub(1)
            .and_then(|v| self.narrow.get(v)?.as_ref())
            .unwrap_or(&self.full)
    }

    /// The edge-columns kernel for a tile of `cols` columns with a packed A and B read as
    /// `b`, where there is one: the last one or two columns of a row of tiles ([`edge_columns`]).
    #[inline]
    pub(crate) fn edge_kernel(&self, cols: usize, b: BAccess) -> Option<MicroKernel> {
        if cols > EDGE_COLUMNS {
            return None;
        }
        let edge = self.edge.as_ref()?;
        let streamed = match b {
            BAccess::Strided => 0,
            BAccess::Streamed => 1,
            BAccess::Stepped => return None,
        };
        Some(edge.by_columns.get(cols.checked_sub(1)?)?[streamed])
    }

    /// The candidate of `isa` with the least estimated time on an `m × n` product: the
    /// multiply-adds it computes (edge tiles compute their full MR rows and their columns
    /// rounded up to whole vectors, or to the whole NR for a tile without narrow kernels)
    /// weighted by `1 + loads per FMA / 2`, a crude charge for load pressure that keeps the
    /// 8x48 tile unless a narrower one saves real work.
    pub fn for_product(isa: Isa, m: usize, n: usize) -> KernelShape {
        KernelShape::best_of(isa, m, n, |_| true).unwrap_or_else(|| KernelShape::for_isa(isa))
    }

    /// [`KernelShape::for_product`] among the tiles whose columns divide `n`, if any (a
    /// product split into column chunks that each start on a panel).
    pub fn for_product_dividing(isa: Isa, m: usize, n: usize) -> Option<KernelShape> {
        KernelShape::best_of(isa, m, n, |shape| n.is_multiple_of(shape.nr))
    }

    /// [`KernelShape::for_product`] among the tiles of at most [`MAX_STEPPED_A_ROWS`] rows,
    /// for an A read at tables of offsets (`PanelSource::stepped_rows`).
    pub fn for_stepped_rows(isa: Isa, m: usize, n: usize) -> KernelShape {
        KernelShape::best_of(isa, m, n, |shape| shape.mr <= MAX_STEPPED_A_ROWS)
            .unwrap_or_else(|| KernelShape::for_isa(isa))
    }

    /// The candidate of least estimated cost for `m × n` among those `allowed`.
    fn best_of(
        isa: Isa,
        m: usize,
        n: usize,
        allowed: impl Fn(&KernelShape) -> bool,
    ) -> Option<KernelShape> {
        KernelShape::candidates(isa)
            .into_iter()
            .filter(allowed)
            .reduce(|best, next| {
                if next.estimated_cost(m, n) < best.estimated_cost(m, n) {
                    next
                } else {
                    best
                }
            })
    }

    /// The estimate [`KernelShape::for_product`] compares, per unit of depth: multiply-adds
    /// of the tiles covering `m × n` (the last column of tiles narrow where the tile has
    /// narrow kernels), each weighted by `1 + loads per FMA / 2`.
    pub fn estimated_cost(&self, m: usize, n: usize) -> f64 {
        // In f64: the padded product of two huge dimensions may not fit a usize.
        let rows = (m.div_ceil(self.mr) * self.mr) as f64;
        let weight = |vectors| 1.0 + self.loads_per_fma(vectors) / 2.0;
        let full_vectors = self.nr / self.lanes();
        let full = (n / self.nr * self.nr) as f64 * weight(full_vectors);
        let edge = match n % self.nr {
            0 => 0.0,
            _ if self.narrow[0].is_none() => self.nr as f64 * weight(full_vectors),
            rest => {
                let vectors = rest.div_ceil(self.lanes());
                (vectors * self.lanes()) as f64 * weight(vectors)
            }
        };
        rows * (full + edge)
    }

    /// The widest microkernel of `isa` (which must be available on this CPU).
    pub fn for_isa(isa: Isa) -> KernelShape {
        tiles_of(isa).swap_remove(0)
    }

    /// The paths that have a microkernel in this build.
    pub const ISAS: &'static [Isa] = TILE_ISAS;
}

/// The register tile, generic over the path.
///
/// # Safety
/// As [`MicroKernel`], with `MR` rows and `NV·S::LANES` columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<
    S: Simd,
    const MR: usize,
    const NV: usize,
    const A: u8,
    const STREAMING_B: bool,
    const STEPPED_B: bool,
>(
    epilogue: &TileEpilogue,
    call: TileCall,
) {
    let TileCall {
        depth,
        a:
            AOperand {
                ptr: a,
                lda,
                steps: a_steps,
                row_offsets: a_row_offsets,
            },
        b,
        c,
        ldc,
        rows,
        cols,
    } = call;
    let lanes = S::LANES;
    // SAFETY: the caller guarantees the path and every pointer range used below: the panels
    // hold `depth` steps of MR and NR values, C holds `rows × cols` at stride `ldc`.
    unsafe {
        let mut acc = [[S::zero(); NV]; MR];
        // Where tile row `i` reads its A value of depth step `p`: a packed panel holds the
        // step's MR values together; rows in place are `lda` apart with their steps
        // contiguous; stepped rows start at their offsets and move by the step table.
        let a_rows: [*const f32; MR] = match A {
            A_ROWS => std::array::from_fn(|i| a.add(i.min(rows - 1) * lda)),
            A_STEPPED => {
                std::array::from_fn(|i| a.add(*a_row_offsets.add(i.min(rows - 1)) as usize))
            }
            _ => std::array::from_fn(|i| a.add(i)),
        };
        let a_stride = if A == A_ROWS { 1 } else { MR };
        // The next step's B (strided), or the base that the step table offsets (stepped).
        let BOperand {
            ptr: mut b_base,
            ldb,
            steps: b_steps,
            line_break: (next_line, skip),
        } = b;
        // Where each vector of a step starts: whole vectors one after another, those of a
        // stepped B from the line break on further by the skip.
        let vectors: [usize; NV] =
            std::array::from_fn(|j| j * lanes + if STEPPED_B && j >= next_line { skip } else { 0 });
        // One depth step: B's vectors of step `p` times each row's A value, into `sums` (a
        // macro: as a closure LLVM kept the accumulators in memory).
        macro_rules! step {
            ($sums:expr, $b_base:expr, $p:expr) => {{
                let b = if STEPPED_B {
                    $b_base.add(*b_steps.add($p) as usize)
                } else {
                    $b_base
                };
                let mut bv = [S::zero(); NV];
                for (v, &at) in bv.iter_mut().zip(&vectors) {
                    *v = S::load(b.add(at));
                    if STREAMING_B {
                        prefetch_l1(b.wrapping_add(B_PREFETCH_STEPS * ldb + at));
                    }
                }
                let a_step = if A == A_STEPPED {
                    *a_steps.add($p) as usize
                } else {
                    $p * a_stride
                };
                for (row, &a_row) in $sums.iter_mut().zip(&a_rows) {
                    let av = S::splat(*a_row.add(a_step));
                    for (sum, &bj) in row.iter_mut().zip(&bv) {
                        *sum = S::mul_add(av, bj, *sum);
                    }
                }
            }};
        }
        let b_stride = if STEPPED_B { 0 } else { ldb };
        let mut p = 0;
        if S::FMA && MR * NV < FMA_CHAINS && 2 * MR * NV + NV < S::REGISTERS {
            // Too few accumulators to cover the multiply-add latency (a narrow tile: 6 × 8
            // on AVX2), and registers for twice as many beside the B vectors and the
            // broadcast: the odd steps go to a second set, summed in at the end
            // (`docs/tuning.md`, FMA_CHAINS).
            let mut odd = [[S::zero(); NV]; MR];
            while p + 2 <= depth {
                step!(acc, b_base, p);
                step!(odd, b_base.add(b_stride), p + 1);
                b_base = b_base.add(2 * b_stride);
                p += 2;
            }
            for (row, odd_row) in acc.iter_mut().zip(&odd) {
                for (sum, &o) in row.iter_mut().zip(odd_row) {
                    *sum = S::add(*sum, o);
                }
            }
        }
        while p < depth {
            step!(acc, b_base, p);
            b_base = b_base.add(b_stride);
            p += 1;
        }

        // A whole tile is stored from its registers with constant bounds (transposed: up to
        // eight rows). Other tiles are parked in a buffer (constant
        // bounds again) and stored from there with run-time ones: were the accumulators
        // themselves indexed at run time, LLVM would keep them in memory and store them on
        // every depth step (the 8x48 and 6x64 tiles did, at a third of the peak).
        let whole = rows == MR && cols == NV * lanes;
        debug_assert!(
            epilogue.element == CElement::F32
                || !(epilogue.accumulate || epilogue.transposed || epilogue.pitched.is_some()),
            "a half-precision C is stored once, neither transposed nor pitched"
        );
        if epilogue.transposed {
            if whole && MR <= TRANSPOSED_BLOCK_ROWS {
                store_tile_transposed::<S, MR, NV>(&acc, c, ldc, epilogue);
            } else {
                let parked = park::<S, MR, NV>(&acc);
                store_transposed::<S>(parked.as_ptr(), NV * lanes, c, ldc, rows, cols, epilogue);
            }
        } else if let Some(grid) = epilogue.pitched.filter(|_| whole) {
            store_tile_pitched::<S, MR, NV>(&acc, c, ldc, grid, epilogue);
        } else {
            match epilogue.element {
                CElement::F32 => store::<S, MR, NV, f32>(&acc, c, ldc, (rows, cols), epilogue),
                CElement::F16 => {
                    store::<S, MR, NV, f16>(&acc, c.cast(), ldc, (rows, cols), epilogue)
                }
                CElement::Bf16 => {
                    store::<S, MR, NV, bf16>(&acc, c.cast(), ldc, (rows, cols), epilogue)
                }
            }
        }
    }
}

/// Most columns of a row of tiles that the edge-columns kernel takes ([`edge_columns`]).
pub(crate) const EDGE_COLUMNS: usize = 2;

/// `C[rows × COLS] (+)= A-panel · B` for the last `COLS ≤ EDGE_COLUMNS` columns of a row of
/// tiles, with the tile's rows in the lanes of one vector (`MR ≤ LANES`). Per depth step it
/// loads the panel's MR values as one vector and multiplies them by a broadcast of each
/// column's B value: `COLS` multiply-adds, where the narrow tile spends MR broadcasts and
/// MR multiply-adds on vectors of which `COLS` lanes count (a 7x7 image's 49th column: a
/// sixth of the work; `docs/tuning.md`, edge columns). The depth steps go round
/// `FMA_CHAINS / COLS` accumulators per column so that enough multiply-adds are in flight.
/// Registers: `FMA_CHAINS` accumulators, the A vector and the broadcasts.
///
/// # Safety
/// As [`MicroKernel`] for a packed A (MR values per depth step) and a B whose steps are
/// `ldb` apart, `cols == COLS`.
#[inline(always)]
unsafe fn edge_columns<S: Simd, const MR: usize, const COLS: usize, const STREAMING_B: bool>(
    epilogue: &TileEpilogue,
    call: TileCall,
) {
    let TileCall {
        depth,
        a,
        b,
        c,
        ldc,
        rows,
        cols,
    } = call;
    debug_assert!(MR <= S::LANES && cols == COLS && COLS <= EDGE_COLUMNS);
    const MAX_CHAINS: usize = FMA_CHAINS;
    let chains = FMA_CHAINS / COLS;
    let (a, ldb) = (a.ptr, b.ldb);
    let mut b_step = b.ptr;
    // SAFETY: the caller guarantees the path and the operands: the panel holds `depth` steps
    // of MR values, B `depth` steps of `COLS` values `ldb` apart, C `rows × COLS` values.
    unsafe {
        let mut acc = [[S::zero(); MAX_CHAINS]; COLS];
        // A step's vector load reads `LANES − MR` values past its MR: inside the panel up to
        // step `depth − ⌈LANES / MR⌉` (the last step on AVX2, the last two for AVX-512's
        // 6-row tile); the steps after it are loaded partially.
        let loaded = (depth + 1).saturating_sub(S::LANES.div_ceil(MR));
        let mut p = 0;
        while p + chains <= loaded {
            for chain in 0..chains {
                let av = S::load(a.add((p + chain) * MR));
                let b_row = b_step.add(chain * ldb);
                if STREAMING_B {
                    prefetch_l1(b_row.wrapping_add(B_PREFETCH_STEPS * ldb));
                }
                for (j, sums) in acc.iter_mut().enumerate() {
                    sums[chain] = S::mul_add(av, S::splat(*b_row.add(j)), sums[chain]);
                }
            }
            b_step = b_step.add(chains * ldb);
            p += chains;
        }
        while p < depth {
            let av = if p < loaded {
                S::load(a.add(p * MR))
            } else {
                S::load_partial(a.add(p * MR), MR)
            };
            for (j, sums) in acc.iter_mut().enumerate() {
                sums[0] = S::mul_add(av, S::splat(*b_step.add(j)), sums[0]);
            }
            b_step = b_step.add(ldb);
            p += 1;
        }
        // Each column's sums (rows in lanes) parked as one row of the tile each: the tile's
        // row `i` at `i·LANES`, its columns in the first lanes, as `store_parked` reads it.
        let mut parked = [0.0f32; MAX_TILE_LEN];
        for (j, sums) in acc.iter().enumerate() {
            let mut total = sums[0];
            for &sum in &sums[1..chains] {
                total = S::add(total, sum);
            }
            let mut lanes = [0.0f32; 16];
            S::store(lanes.as_mut_ptr(), total);
            for (i, &value) in lanes[..MR].iter().enumerate() {
                parked[i * S::LANES + j] = value;
            }
        }
        store_parked_as::<S>(parked.as_ptr(), S::LANES, c, ldc, (rows, cols), epilogue);
    }
}

/// Stores a parked tile as the epilogue asks: transposed, or in C's element type.
///
/// # Safety
/// As [`store_parked`] and [`store_transposed`], with `c` holding the epilogue's elements.
#[inline(always)]
unsafe fn store_parked_as<S: Simd>(
    tile: *const f32,
    tile_ld: usize,
    c: *mut f32,
    ldc: usize,
    (rows, cols): (usize, usize),
    epilogue: &TileEpilogue,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if epilogue.transposed {
            store_transposed::<S>(tile, tile_ld, c, ldc, rows, cols, epilogue);
            return;
        }
        match epilogue.element {
            CElement::F32 => store_parked::<S, f32>(tile, tile_ld, c, ldc, (rows, cols), epilogue),
            CElement::F16 => {
                store_parked::<S, f16>(tile, tile_ld, c.cast(), ldc, (rows, cols), epilogue)
            }
            CElement::Bf16 => {
                store_parked::<S, bf16>(tile, tile_ld, c.cast(), ldc, (rows, cols), epilogue)
            }
        }
    }
}

/// Stores the first `rows` rows and `cols` columns of a register tile into a C of `T`
/// elements (neither transposed nor pitched) with the epilogue: a whole tile from its
/// registers, another parked first.
///
/// # Safety
/// As [`MicroKernel`], with `c` holding `T` elements.
#[inline(always)]
unsafe fn store<S: Simd, const MR: usize, const NV: usize, T: F32Storage>(
    acc: &[[S::F32; NV]; MR],
    c: *mut T,
    ldc: usize,
    (rows, cols): (usize, usize),
    epilogue: &TileEpilogue,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if rows == MR && cols == NV * S::LANES {
            store_tile::<S, MR, NV, T>(acc, c, ldc, epilogue);
        } else {
            let parked = park::<S, MR, NV>(acc);
            store_parked::<S, T>(
                parked.as_ptr(),
                NV * S::LANES,
                c,
                ldc,
                (rows, cols),
                epilogue,
            );
        }
    }
}

/// Elements of the largest tile (6 × 64, 8 × 48, 12 × 32: 384), rounded up.
const MAX_TILE_LEN: usize = 512;

/// The register tile in a buffer, rows `NV·LANES` apart.
///
/// # Safety
/// The CPU has `S::ISA`.
#[inline(always)]
unsafe fn park<S: Simd, const MR: usize, const NV: usize>(
    acc: &[[S::F32; NV]; MR],
) -> [f32; MAX_TILE_LEN] {
    assert!(MR * NV * S::LANES <= MAX_TILE_LEN);
    let mut parked = [0.0f32; MAX_TILE_LEN];
    for (i, row) in acc.iter().enumerate() {
        for (j, &sum) in row.iter().enumerate() {
            // SAFETY: the buffer holds the MR·NV·LANES values (asserted); forwarded ISA.
            unsafe { S::store(parked.as_mut_ptr().add((i * NV + j) * S::LANES), sum) };
        }
    }
    parked
}

/// Stores a whole register tile of at most [`TRANSPOSED_BLOCK_ROWS`] rows transposed (tile
/// element `(i, j)` at `c + j·ldc + i`) with the epilogue: per vector of columns, the C
/// values to add through the path's transposing load, then its rows through the path's
/// in-register transpose.
///
/// # Safety
/// As [`MicroKernel`] for the tile's `MR × NV·LANES` elements at their transposed places
/// and the epilogue's biases.
#[inline(always)]
unsafe fn store_tile_transposed<S: Simd, const MR: usize, const NV: usize>(
    acc: &[[S::F32; NV]; MR],
    c: *mut f32,
    ldc: usize,
    epilogue: &TileEpilogue,
) {
    let lanes = S::LANES;
    // SAFETY: forwarded contract; `MR ≤ 8` rows per transposed store.
    unsafe {
        let mut columns: [[S::F32; MR]; NV] = std::array::from_fn(|j| acc.map(|row| row[j]));
        for (j, column) in columns.iter_mut().enumerate() {
            if epilogue.accumulate {
                let old = S::load_transposed(c.add(j * lanes * ldc), ldc, MR, lanes);
                for (value, &old) in column.iter_mut().zip(&old) {
                    *value = S::add(*value, old);
                }
            }
            if epilogue.finish {
                if !epilogue.row_bias.is_null() {
                    for (i, value) in column.iter_mut().enumerate() {
                        *value = S::add(*value, S::splat(*epilogue.row_bias.add(i)));
                    }
                }
                if !epilogue.col_bias.is_null() {
                    let bias = S::load(epilogue.col_bias.add(j * lanes));
                    for value in column.iter_mut() {
                        *value = S::add(*value, bias);
                    }
                }
                epilogue.activation.apply_each::<S>(column);
            }
            S::store_transposed(column, c.add(j * lanes * ldc), ldc, lanes);
        }
    }
}

/// Stores a whole register tile with the epilogue, every bound a constant: each step of the
/// epilogue (C added, row bias, column bias, activation) is one pass over the registers,
/// chosen once per tile, so that the passes unroll (one branchy loop over the vectors did
/// not, for the 24-vector tiles, and cost a tenth of a depth-64 tile: pointwise_64_256).
///
/// # Safety
/// As [`MicroKernel`] for `c`, `ldc`, `MR` rows, `NV·LANES` columns and the epilogue.
#[inline(always)]
unsafe fn store_tile<S: Simd, const MR: usize, const NV: usize, T: F32Storage>(
    acc: &[[S::F32; NV]; MR],
    c: *mut T,
    ldc: usize,
    epilogue: &TileEpilogue,
) {
    let lanes = S::LANES;
    let mut tile = *acc;
    // SAFETY: forwarded contract, for whole vectors.
    unsafe {
        if epilogue.accumulate {
            for (i, row) in tile.iter_mut().enumerate() {
                for (j, value) in row.iter_mut().enumerate() {
                    *value = S::add(*value, T::load_lanes::<S>(c.add(i * ldc + j * lanes)));
                }
            }
        }
        finish_tile::<S, MR, NV>(&mut tile, epilogue);
        for (i, row) in tile.iter().enumerate() {
            for (j, &value) in row.iter().enumerate() {
                T::store_lanes::<S>(c.add(i * ldc + j * lanes), value);
            }
        }
    }
}

/// The finish steps of a whole register tile after its last depth block, each one pass over
/// the registers: row bias, column bias, activation.
///
/// # Safety
/// The CPU has `S::ISA`; the biases (when not null) hold `MR` and `NV·LANES` values.
#[inline(always)]
unsafe fn finish_tile<S: Simd, const MR: usize, const NV: usize>(
    tile: &mut [[S::F32; NV]; MR],
    epilogue: &TileEpilogue,
) {
    if !epilogue.finish {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe {
        if !epilogue.row_bias.is_null() {
            for (i, row) in tile.iter_mut().enumerate() {
                let bias = S::splat(*epilogue.row_bias.add(i));
                for value in row {
                    *value = S::add(*value, bias);
                }
            }
        }
        if !epilogue.col_bias.is_null() {
            for j in 0..NV {
                let bias = S::load(epilogue.col_bias.add(j * S::LANES));
                for row in tile.iter_mut() {
                    row[j] = S::add(row[j], bias);
                }
            }
        }
        epilogue.activation.apply_each::<S>(tile.as_flattened_mut());
    }
}

/// Stores a whole register tile on a pitched grid with the epilogue (C added, row bias,
/// activation: a pitched C has no column bias), in passes over the registers as
/// [`store_tile`]; each vector's kept lanes go to at most two runs, with masked accesses.
///
/// # Safety
/// As [`MicroKernel`] for the `MR` output rows from `c`, `ldc` apart, the kept places of
/// the tile's `NV·LANES` grid columns in each, and the row bias.
#[inline(always)]
unsafe fn store_tile_pitched<S: Simd, const MR: usize, const NV: usize>(
    acc: &[[S::F32; NV]; MR],
    c: *mut f32,
    ldc: usize,
    grid: PitchedGrid,
    epilogue: &TileEpilogue,
) {
    let lanes = S::LANES;
    let runs: [PitchedRuns; NV] = std::array::from_fn(|j| grid.runs(j * lanes, lanes));
    let mut tile = *acc;
    // SAFETY: forwarded contract: every access touches only a vector's kept lanes, at their
    // mapped places (the tail's base may precede them: only its lanes from `tail_from` are
    // accessed).
    unsafe {
        if epilogue.accumulate {
            for (i, row) in tile.iter_mut().enumerate() {
                let line = c.add(i * ldc);
                for (value, run) in row.iter_mut().zip(&runs) {
                    let head = match run.head {
                        0 => S::zero(),
                        head if head == lanes => S::load(line.add(run.head_at)),
                        head => S::load_partial(line.add(run.head_at), head),
                    };
                    let tail = S::load_tail(line.wrapping_add(run.tail_at), run.tail_from);
                    *value = S::add(*value, S::add(head, tail));
                }
            }
        }
        finish_tile::<S, MR, NV>(&mut tile, epilogue);
        for (i, row) in tile.iter().enumerate() {
            let line = c.add(i * ldc);
            for (&value, run) in row.iter().zip(&runs) {
                if run.head == lanes {
                    S::store(line.add(run.head_at), value);
                    continue;
                }
                if run.head > 0 {
                    S::store_partial(line.add(run.head_at), value, run.head);
                }
                if run.tail_from < lanes {
                    S::store_tail(line.wrapping_add(run.tail_at), value, run.tail_from);
                }
            }
        }
    }
}

/// Stores the first `rows` rows and `cols` columns of a tile parked at `tile` (rows
/// `tile_ld` apart, whole vectors) with the epilogue, masked past `cols`.
///
/// # Safety
/// As [`MicroKernel`] for `c`, `ldc`, `rows`, `cols` and the epilogue; `tile` holds `rows`
/// rows of `cols` rounded up to whole vectors.
#[inline(always)]
unsafe fn store_parked<S: Simd, T: F32Storage>(
    tile: *const f32,
    tile_ld: usize,
    c: *mut T,
    ldc: usize,
    (rows, cols): (usize, usize),
    epilogue: &TileEpilogue,
) {
    // SAFETY: forwarded contract; the last vector of a row is partial in C only.
    unsafe {
        for i in 0..rows {
            let row_bias = row_bias::<S>(epilogue, i);
            for col in (0..cols).step_by(S::LANES) {
                let sum = S::load(tile.add(i * tile_ld + col));
                let len = S::LANES.min(cols - col);
                store_vector::<S, T>(sum, c.add(i * ldc + col), len, (row_bias, col), epilogue);
            }
        }
    }
}

/// Tile row `i`'s bias as a vector, when the epilogue finishes with a row bias.
///
/// # Safety
/// The CPU has `S::ISA`; a row bias (when not null) holds more than `i` values.
#[inline(always)]
unsafe fn row_bias<S: Simd>(epilogue: &TileEpilogue, i: usize) -> Option<S::F32> {
    // SAFETY: forwarded contract.
    (epilogue.finish && !epilogue.row_bias.is_null())
        .then(|| unsafe { S::splat(*epilogue.row_bias.add(i)) })
}

/// Stores the first `len` lanes of one vector of sums at `dst` (tile column `col`) with the
/// epilogue: the values already there added, then the biases and the activation.
///
/// # Safety
/// The CPU has `S::ISA`; `dst` holds `len ≤ LANES` values; a column bias (when not null)
/// holds `col + len` values.
#[inline(always)]
unsafe fn store_vector<S: Simd, T: F32Storage>(
    sum: S::F32,
    dst: *mut T,
    len: usize,
    (row_bias, col): (Option<S::F32>, usize),
    epilogue: &TileEpilogue,
) {
    let full = len == S::LANES;
    // SAFETY: partial accesses touch only the first `len` lanes (forwarded contract).
    unsafe {
        let load = |ptr: *const f32| {
            if full {
                S::load(ptr)
            } else {
                S::load_partial(ptr, len)
            }
        };
        let mut value = sum;
        if epilogue.accumulate {
            let old = if full {
                T::load_lanes::<S>(dst)
            } else {
                T::load_lanes_partial::<S>(dst, len)
            };
            value = S::add(value, old);
        }
        if epilogue.finish {
            if let Some(bias) = row_bias {
                value = S::add(value, bias);
            }
            if !epilogue.col_bias.is_null() {
                value = S::add(value, load(epilogue.col_bias.add(col)));
            }
            value = epilogue.activation.apply::<S>(value);
        }
        if full {
            T::store_lanes::<S>(dst, value);
        } else {
            T::store_lanes_partial::<S>(dst, value, len);
        }
    }
}

/// Most column segments one tile can split into (a tile is at most 64 columns wide).
const MAX_SEGMENTS: usize = 64;

/// The pitched store, generic over the path: C column `q` lands at output column
/// `(q / pitch)·valid + q % pitch` when `q % pitch < valid` and is dropped otherwise.
///
/// # Safety
/// As [`PitchedStore`], with `columns = (first, count)` and `pitch = (pitch, valid)`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn store_pitched<S: Simd>(epilogue: &TileEpilogue, call: PitchedCall) {
    let PitchedCall {
        tile,
        tile_ld,
        c,
        ldc,
        rows,
        columns: (first, count),
        pitch: (pitch, valid),
    } = call;
    // The tile's runs of kept columns: (tile column, output column, length).
    let mut segments = [(0usize, 0usize, 0usize); MAX_SEGMENTS];
    let mut segment_count = 0;
    let mut j = 0;
    while j < count && segment_count < MAX_SEGMENTS {
        let q = first + j;
        let (line, column) = (q / pitch, q % pitch);
        if column >= valid {
            j += pitch - column;
            continue;
        }
        let len = (valid - column).min(count - j);
        segments[segment_count] = (j, line * valid + column, len);
        segment_count += 1;
        j += len;
    }
    let lanes = S::LANES;
    // SAFETY: the caller guarantees the path, the tile buffer and every mapped C element;
    // a segment's last vector is read and stored partially.
    unsafe {
        for i in 0..rows {
            let (src_row, c_row) = (tile.add(i * tile_ld), c.add(i * ldc));
            let row_bias = row_bias::<S>(epilogue, i);
            for &(from, to, len) in &segments[..segment_count] {
                for t in (0..len).step_by(lanes) {
                    let n = lanes.min(len - t);
                    let src = src_row.add(from + t);
                    let sum = if n == lanes {
                        S::load(src)
                    } else {
                        S::load_partial(src, n)
                    };
                    let dst = c_row.add(to + t);
                    store_vector::<S, f32>(sum, dst, n, (row_bias, from + t), epilogue);
                }
            }
        }
    }
}

/// Rows per in-register transposed store ([`Simd::store_transposed`]).
const TRANSPOSED_BLOCK_ROWS: usize = 8;

/// The transposed store of a parked tile: tile element `(i, j)` lands at `c + j·ldc + i`.
/// Up to eight tile rows of one vector of columns are finished as vectors and stored
/// through the path's in-register transpose ([`Simd::store_transposed`]: whole runs of
/// pixels per channel); the values a later depth block adds to are gathered one by one.
///
/// # Safety
/// The CPU has `S::ISA`. `tile` holds `rows` rows of `cols` values rounded up to whole
/// vectors, `tile_ld` apart; C element `(i, j)` at `c + j·ldc + i` is writable for every
/// `i < rows`, `j < cols`; the biases (when not null) hold `rows` and `cols` values.
#[inline(always)]
unsafe fn store_transposed<S: Simd>(
    tile: *const f32,
    tile_ld: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    epilogue: &TileEpilogue,
) {
    let lanes = S::LANES;
    // SAFETY: the caller guarantees the path, the tile buffer, every C element `(i, j)` and
    // the biases; partial accesses touch only their first `channels` lanes, and the
    // gathered values are read from `channels ≤ LANES ≤ 16` C elements.
    unsafe {
        for first_col in (0..cols).step_by(lanes) {
            let channels = lanes.min(cols - first_col);
            let load = |ptr: *const f32| {
                if channels == lanes {
                    S::load(ptr)
                } else {
                    S::load_partial(ptr, channels)
                }
            };
            let col_bias = (epilogue.finish && !epilogue.col_bias.is_null())
                .then(|| load(epilogue.col_bias.add(first_col)));
            let c_block = c.add(first_col * ldc);
            for first_row in (0..rows).step_by(TRANSPOSED_BLOCK_ROWS) {
                let count = TRANSPOSED_BLOCK_ROWS.min(rows - first_row);
                let mut vectors = [S::zero(); TRANSPOSED_BLOCK_ROWS];
                for (r, vector) in vectors[..count].iter_mut().enumerate() {
                    let i = first_row + r;
                    let mut value = load(tile.add(i * tile_ld + first_col));
                    if epilogue.accumulate {
                        let mut old = [0.0f32; 16];
                        for (k, slot) in old[..channels].iter_mut().enumerate() {
                            *slot = *c_block.add(k * ldc + i);
                        }
                        value = S::add(value, load(old.as_ptr()));
                    }
                    if epilogue.finish {
                        if let Some(bias) = row_bias::<S>(epilogue, i) {
                            value = S::add(value, bias);
                        }
                        if let Some(bias) = col_bias {
                            value = S::add(value, bias);
                        }
                        value = epilogue.activation.apply::<S>(value);
                    }
                    *vector = value;
                }
                S::store_transposed(&vectors[..count], c_block.add(first_row), ldc, channels);
            }
        }
    }
}

/// The register tile `MR × NV` vectors with A read as `A` and B streamed or stepped, as one
/// [`SimdKernel`]: its entry on a path is a [`MicroKernel`].
pub(crate) struct TileKernel<
    const MR: usize,
    const NV: usize,
    const A: u8,
    const STREAMING_B: bool,
    const STEPPED_B: bool,
>;

impl<const MR: usize, const NV: usize, const A: u8, const STREAMING_B: bool, const STEPPED_B: bool>
    SimdKernel for TileKernel<MR, NV, A, STREAMING_B, STEPPED_B>
{
    type Context = TileEpilogue;
    type Args = TileCall;
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(epilogue: &TileEpilogue, _: &mut [f32], call: TileCall) {
        // SAFETY: as [`MicroKernel`] (forwarded).
        unsafe { tile::<S, MR, NV, A, STREAMING_B, STEPPED_B>(epilogue, call) }
    }
}

/// [`edge_columns`] as one [`SimdKernel`]: its entry on a path is a [`MicroKernel`].
pub(crate) struct EdgeColumnsKernel<const MR: usize, const COLS: usize, const STREAMING_B: bool>;

impl<const MR: usize, const COLS: usize, const STREAMING_B: bool> SimdKernel
    for EdgeColumnsKernel<MR, COLS, STREAMING_B>
{
    type Context = TileEpilogue;
    type Args = TileCall;
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(epilogue: &TileEpilogue, _: &mut [f32], call: TileCall) {
        // SAFETY: as [`MicroKernel`] for a packed A and a strided or streamed B (forwarded).
        unsafe { edge_columns::<S, MR, COLS, STREAMING_B>(epilogue, call) }
    }
}

/// The edge-columns entry points of a tile's rows ([`edge_columns`]): `[strided, streamed]`
/// B for 1 and 2 columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EdgeKernels {
    by_columns: [[MicroKernel; 2]; EDGE_COLUMNS],
}

impl EdgeKernels {
    /// The entry points of `MR`-row tiles on path `S`, if its vectors hold MR lanes.
    fn of<S: Simd, const MR: usize>() -> Option<EdgeKernels> {
        (MR <= S::LANES).then(|| EdgeKernels {
            by_columns: [
                [
                    S::entry::<EdgeColumnsKernel<MR, 1, false>>(),
                    S::entry::<EdgeColumnsKernel<MR, 1, true>>(),
                ],
                [
                    S::entry::<EdgeColumnsKernel<MR, 2, false>>(),
                    S::entry::<EdgeColumnsKernel<MR, 2, true>>(),
                ],
            ],
        })
    }
}

/// [`store_pitched`] as one [`SimdKernel`]: its entry on a path is a [`PitchedStore`].
pub(crate) struct PitchedStoreKernel;

impl SimdKernel for PitchedStoreKernel {
    type Context = TileEpilogue;
    type Args = PitchedCall;
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(epilogue: &TileEpilogue, _: &mut [f32], call: PitchedCall) {
        // SAFETY: as [`PitchedStore`] (forwarded).
        unsafe { store_pitched::<S>(epilogue, call) }
    }
}

impl Kernels {
    /// The seven entry points of the `MR × NV` tile on path `S`.
    fn of<S: Simd, const MR: usize, const NV: usize>() -> Kernels {
        Kernels {
            packed: S::entry::<TileKernel<MR, NV, A_PACKED, false, false>>(),
            rows: S::entry::<TileKernel<MR, NV, A_ROWS, false, false>>(),
            packed_streaming_b: S::entry::<TileKernel<MR, NV, A_PACKED, true, false>>(),
            rows_streaming_b: S::entry::<TileKernel<MR, NV, A_ROWS, true, false>>(),
            packed_stepped_b: S::entry::<TileKernel<MR, NV, A_PACKED, false, true>>(),
            stepped_a: S::entry::<TileKernel<MR, NV, A_STEPPED, false, false>>(),
            stepped_a_streaming_b: S::entry::<TileKernel<MR, NV, A_STEPPED, true, false>>(),
        }
    }
}

/// The kernels of the tiles `MR × v` for `v < NV` (a row of tiles' narrow last columns), in
/// [`KernelShape::narrow`]'s order.
macro_rules! narrow_kernels {
    ($path:ty, $mr:literal x 1) => {
        [None, None, None]
    };
    ($path:ty, $mr:literal x 2) => {
        [Some(Kernels::of::<$path, $mr, 1>()), None, None]
    };
    ($path:ty, $mr:literal x 3) => {
        [
            Some(Kernels::of::<$path, $mr, 1>()),
            Some(Kernels::of::<$path, $mr, 2>()),
            None,
        ]
    };
    ($path:ty, $mr:literal x 4) => {
        [
            Some(Kernels::of::<$path, $mr, 1>()),
            Some(Kernels::of::<$path, $mr, 2>()),
            Some(Kernels::of::<$path, $mr, 3>()),
        ]
    };
}

/// Each path's register tiles, `rows x vectors`, its widest first: the one list from which
/// both the tile choice ([`KernelShape::candidates`]) and the compiled entry points come.
macro_rules! tile_list {
    ($($(#[$cfg:meta])* $path:ty: $($mr:literal x $nv:tt),+;)*) => {
        /// The tile shapes of `isa`, widest first (the portable ones for a path without
        /// tiles of its own).
        fn tiles_of(isa: Isa) -> Vec<KernelShape> {
            $(
                $(#[$cfg])*
                if isa == <$path as IsaPath>::ISA {
                    return vec![$(KernelShape {
                        isa,
                        mr: $mr,
                        nr: $nv * <$path as IsaPath>::LANES,
                        lanes: <$path as IsaPath>::LANES,
                        full: Kernels::of::<$path, $mr, $nv>(),
                        narrow: narrow_kernels!($path, $mr x $nv),
                        edge: EdgeKernels::of::<$path, $mr>(),
                        store_pitched: <$path as IsaPath>::entry::<PitchedStoreKernel>(),
                    }),+];
                }
            )*
            tiles_of(Isa::Scalar)
        }

        /// The paths with tiles in this build.
        const TILE_ISAS: &[Isa] = &[$($(#[$cfg])* <$path as IsaPath>::ISA),*];
    };
}

tile_list! {
    Portable: 4 x 1;
    #[cfg(target_arch = "x86_64")]
    convkit_simd::Avx2: 6 x 2;
    #[cfg(target_arch = "x86_64")]
    convkit_simd::Avx512: 8 x 3, 6 x 4, 7 x 3, 12 x 2, 16 x 1;
}
