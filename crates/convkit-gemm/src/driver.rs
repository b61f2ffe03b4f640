//! The blocked, parallel GEMM driver.
//!
//! Loop nest per task (one task = one job's rows `m0..m1` × columns `n0..n1`, full depth):
//!
//! ```text
//! for jc in columns, step NC          B block KC×NC packed once per (jc, pc): L2
//!   for pc in depth, step KC           (or read in place: B's columns contiguous and few
//!     pack B(pc, jc)                    rows of A, see `Sgemm::reads_b_in_place`, or a
//!                                       source with a table of steps, `PanelSource::stepped`)
//!     for ic in rows, step MC         A block MC×KC: prepacked weights, A's own rows when
//!       A(ic, pc)                     they are contiguous in depth, or packed here (as
//!                                     rows where the source prefers): L2
//!       for ir in ic, step MR         A micro-panel MR×KC stays in L1 across jr
//!         for jr in jc, step NR       microkernel on an MR×NR register tile, B from L2
//! ```
//!
//! KC, MC and NC come from the path and the detected L2 ([`Blocking::for_kernel`]) and may be
//! fitted to the depth ([`Sgemm::fit_depth_within`]). A C with pitched columns stores a whole
//! tile from its registers (each vector's kept lanes in at most two runs, masked), an edge
//! tile through a small buffer; a transposed C is stored by the microkernel through an
//! in-register transpose. A C stored in half precision ([`OutputPtr`]) is rounded by the
//! microkernels straight from their registers where it is contiguous and the depth is one
//! block ([`Sgemm::stages_half_c`]); else it is computed into the worker's staged f32 block
//! (tasks cut to fit it), one tile at a time where the depth is one block, else task by
//! task, and each tile is rounded into C as soon as its sums are complete, while the lines
//! of the next tile's C are asked for.
//!
//! Tasks are spread over the caller's rayon pool in contiguous ranges, one per worker, which
//! a worker that is done helps the others finish ([`WorkerRanges`]): a worker's consecutive
//! tasks are neighbouring column blocks, whose reads run on from one to the next. Each worker
//! has its own slice of the scratch (one A block, one B block, one tile), so scratch is
//! bounded by the worker count, never by the problem. Columns (or rows, when A is the larger
//! operand) are split evenly in NR (MR) units so that the task count is a multiple of the
//! worker count and no core idles at the end.

use crate::kernel::{
    AAccess, AOperand, BAccess, BOperand, CElement, KernelShape, MicroKernel, PitchedCall,
    PitchedGrid, TileCall, TileEpilogue,
};
use crate::panel::{PanelSource, SteppedRows, StridedMatrix, packed_len};
use convkit_core::{Activation, ConvError, Isa};
use convkit_simd::{CacheSizes, F32Storage, VectorActivation, WorkerRanges, prefetch_l1};
use half::{bf16, f16};
use std::ops::Range;

/// Cache blocking: depth (KC), rows (MC) and columns (NC) of the packed blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Depth of a block.
    pub kc: usize,
    /// Rows of an A block (a multiple of MR).
    pub mc: usize,
    /// Columns of a B block (a multiple of NR).
    pub nc: usize,
}

/// The L2 that the blocks sized from it were measured on (AMD Zen 5): a larger L2 gets the
/// same blocks, a smaller one proportionally smaller ones.
const REFERENCE_L2_BYTES: usize = 1 << 20;

/// A block size `measured` on the reference L2, for a CPU with `caches`: scaled down with a
/// smaller L2, kept with a larger one.
fn scaled_to_l2(measured: usize, caches: CacheSizes) -> usize {
    measured * caches.l2.min(REFERENCE_L2_BYTES) / REFERENCE_L2_BYTES
}

impl Blocking {
    /// The blocking of `shape`'s path on a CPU with `caches`. The depth block keeps an A
    /// micro-panel (KC·MR values, 6–8 KiB) in any L1d. The B block (KC × NC, the operand that
    /// stays in L2 while the tiles stream over it) was measured on a 1 MiB L2 (AVX-512:
    /// NC = 480) and shrinks with a smaller L2, so that it never takes all of it: AVX2 on a
    /// 512 KiB L2 gets NC = 256, a 256 KiB block (`docs/tuning.md`, Blocking::for_kernel).
    /// NC stays a whole number of vectors and at least one tile wide.
    pub fn for_kernel(shape: &KernelShape, caches: CacheSizes) -> Blocking {
        let (kc, mc, reference_nc) = match shape.isa {
            Isa::Avx512 => (256, 192, 480),
            Isa::Avx2 => (256, 144, 512),
            _ => (256, 64, 256),
        };
        let lanes = shape.lanes();
        Blocking {
            kc,
            mc,
            nc: (scaled_to_l2(reference_nc, caches) / lanes * lanes).max(shape.nr),
        }
    }
}

/// Bias and activation applied to each output after the full sum.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// One bias per row of C (`m` values).
    pub row_bias: Option<&'a [f32]>,
    /// One bias per column of C (`n` values).
    pub col_bias: Option<&'a [f32]>,
    /// Activation after the bias.
    pub activation: Activation,
}

/// How the columns of C map to memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Columns {
    /// Column `j` of row `i` is at `ptr + i·ldc + j`.
    Contiguous,
    /// C is computed on a grid of lines `pitch` columns long of which the first `valid` are
    /// kept: column `j` is stored at `ptr + i·ldc + (j / pitch)·valid + j % pitch` when
    /// `j % pitch < valid`, and dropped otherwise. Lets a convolution read its lowered input
    /// as a plain stride over a padded image (the dropped columns are the ones whose window
    /// wraps around a row). Only a row bias applies to such a C.
    Pitched {
        /// Columns computed per line.
        pitch: usize,
        /// Columns kept per line (`1..=pitch`).
        valid: usize,
    },
    /// C is stored transposed: element `(i, j)` at `ptr + j·ldc + i` (an NCHW output computed
    /// with the pixels as the rows of C).
    Transposed,
}

/// The first element of a C, in the element type it is stored as.
#[derive(Clone, Copy, Debug)]
pub enum OutputPtr {
    /// f32: the microkernels store their tiles straight into C.
    F32(*mut f32),
    /// Half precision: each task computes its part of C in f32 in the worker's scratch and
    /// rounds it into C once, after the last depth block (see [`Packing::c`]).
    F16(*mut f16),
    /// bfloat16, as `F16`.
    Bf16(*mut bf16),
}

/// An element type a C can be stored as.
pub trait GemmOutput: F32Storage {
    /// `ptr` as the driver's output pointer.
    fn output_ptr(ptr: *mut Self) -> OutputPtr;
}

impl GemmOutput for f32 {
    fn output_ptr(ptr: *mut f32) -> OutputPtr {
        OutputPtr::F32(ptr)
    }
}

impl GemmOutput for f16 {
    fn output_ptr(ptr: *mut f16) -> OutputPtr {
        OutputPtr::F16(ptr)
    }
}

impl GemmOutput for bf16 {
    fn output_ptr(ptr: *mut bf16) -> OutputPtr {
        OutputPtr::Bf16(ptr)
    }
}

/// Where a job's C lives: `m` rows at row stride `ldc` from `ptr`, columns laid out as
/// `columns` says.
#[derive(Clone, Copy, Debug)]
pub struct OutputTile {
    /// First element of C.
    pub ptr: OutputPtr,
    /// Distance between rows of C.
    pub ldc: usize,
    /// Column layout.
    pub columns: Columns,
}

/// One product `C = A·B` of an [`Sgemm::run`] call.
#[derive(Clone, Copy)]
pub struct GemmJob<'a> {
    /// Rows of C (outer dimension of A).
    pub m: usize,
    /// Columns of C (outer dimension of B).
    pub n: usize,
    /// Depth.
    pub k: usize,
    /// The A operand (`m` outer × `k` depth).
    pub a: &'a dyn PanelSource,
    /// The B operand (`n` outer × `k` depth).
    pub b: &'a dyn PanelSource,
    /// Destination.
    pub c: OutputTile,
    /// Bias and activation.
    pub epilogue: Epilogue<'a>,
}

impl std::fmt::Debug for GemmJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GemmJob")
            .field("m", &self.m)
            .field("n", &self.n)
            .field("k", &self.k)
            .field("c", &self.c)
            .finish_non_exhaustive()
    }
}

/// The products of one [`Sgemm::run`] call, handed out one at a time so that a caller can
/// build them on the fly (no list of jobs to allocate per run).
pub trait GemmJobs {
    /// How many products.
    fn count(&self) -> usize;
    /// `[m, n, k]` when every product has it: the driver then plans the tasks once instead
    /// of asking each job (small products, as Winograd's, feel a per-job cost).
    fn common_shape(&self) -> Option<[usize; 3]> {
        None
    }
    /// Calls `f` with product `index` (`< count`).
    fn with_job(&self, index: usize, f: &mut dyn FnMut(&GemmJob<'_>));
}

impl<const N: usize> GemmJobs for [GemmJob<'_>; N] {
    fn count(&self) -> usize {
        N
    }

    fn with_job(&self, index: usize, f: &mut dyn FnMut(&GemmJob<'_>)) {
        f(&self[index]);
    }
}

/// How a job is cut among tasks: `rows × cols` parts.
#[derive(Clone, Copy, Debug)]
struct Split {
    rows: usize,
    cols: usize,
}

impl Split {
    fn parts(&self) -> usize {
        self.rows * self.cols
    }
}

/// A job's sub-block handed to one worker.
#[derive(Clone, Copy, Debug)]
struct Task {
    rows: (usize, usize),
    cols: (usize, usize),
}

/// Most rows of A for which a B with contiguous columns is read in place rather than packed,
/// on `isa` (see [`Sgemm::reads_b_in_place`]). Every row tile reads the block again, and
/// AVX2's 6-row tiles do so more often than AVX-512's: on AVX2 (Zen 3; 1x1 layers on 56×56,
/// one thread, in place and packed timed alternately in one process, medians of two runs in
/// GFLOP/s) 64 rows ran at 44.6, 48.8, 39.6, 60.6 in place against 42.0, 43.2, 35.3, 59.5
/// packed, 96 rows 45.4 and 73.3 against 44.3 and 72.8, but 128 rows 70.1 and 52.1 against 72.4
/// and 58.3, and 256 rows 46.5 and 69.5 against 52.0 and 78.6. AVX-512 (Zen 5): see
/// [`Sgemm::reads_b_in_place`].
fn in_place_b_max_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx2 => 96,
        _ => 256,
    }
}

/// Deepest depth block on AVX2 (see [`Sgemm::fit_depth_within`]).
const AVX2_MAX_DEPTH_BLOCK: usize = 2048;

/// A B read in place whose depth steps are a multiple of this many bytes apart maps every
/// step to the same L1 sets: packed instead.
const PAGE_ALIASING_BYTES: usize = 4096;

/// Below this many FLOPs a run stays on the calling thread: fork-join would cost more.
const PARALLEL_MIN_FLOPS: usize = 4 << 20;

/// Threads a run of `flops` FLOPs uses (before its scratch caps them): one below 4 MFLOP
/// (fork-join would cost more), else the current rayon pool's. Cost models count the same.
pub fn threads_for(flops: usize) -> usize {
    if flops < PARALLEL_MIN_FLOPS {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// A packed SGEMM for one ISA path.
#[derive(Clone, Copy, Debug)]
pub struct Sgemm {
    shape: KernelShape,
    blocking: Blocking,
    packing: Packing,
}

/// Which operands a run may have to pack into the workers' scratch; an operand that every job
/// provides prepacked or in place needs no block there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packing {
    /// Some job's A is packed block by block (neither prepacked nor rows in place).
    pub a: bool,
    /// Some job's B is packed block by block (neither prepacked nor in place: contiguous
    /// columns with few rows of A, or stepped).
    pub b: bool,
    /// Some job's C is stored in half precision and staged ([`Sgemm::stages_half_c`]):
    /// each worker stages C in f32, one tile at a time where the depth is one block, else
    /// its task's part ([`STAGED_C_BUDGET`] values at most; the tasks are cut to fit either
    /// way), and rounds each tile into C once its sums are complete.
    pub c: bool,
}

/// Bytes of a cache line (the prefetches ahead of a staged C's rounding ask for each).
const LINE_BYTES: usize = 64;

/// f32 values of a worker's staged C (128 KiB): with [`Packing::c`], tasks have at most this
/// many values of C, in whole tiles.
pub const STAGED_C_BUDGET: usize = 1 << 15;

/// Sends the jobs (raw output pointers) to the workers; tasks write disjoint tiles.
#[derive(Clone, Copy)]
struct SharedJobs<'a>(&'a dyn GemmJobs);
// SAFETY: the jobs are only read (their C pointers written through by disjoint tasks), and
// `Sgemm::run`'s contract makes `with_job` callable from any thread.
unsafe impl Sync for SharedJobs<'_> {}
// SAFETY: as above.
unsafe impl Send for SharedJobs<'_> {}

impl SharedJobs<'_> {
    /// The jobs (a method, so that closures capture the whole `Sync` wrapper).
    fn jobs(&self) -> &dyn GemmJobs {
        self.0
    }
}

impl Sgemm {
    /// The SGEMM of `isa` with its widest microkernel. `isa` must be available.
    pub fn new(isa: Isa) -> Sgemm {
        Sgemm::with_kernel(KernelShape::for_isa(isa))
    }

    /// The SGEMM of `isa` with the tile that suits an `m × n × k` product best, and depth
    /// blocks fitted to `k` (see [`Sgemm::fit_depth`]).
    pub fn for_product(isa: Isa, [m, n, k]: [usize; 3]) -> Sgemm {
        Sgemm::with_kernel(KernelShape::for_product(isa, m, n)).fit_depth(k)
    }

    /// [`Sgemm::fit_depth_within`] with blocks of at most 1024: every pass over C costs
    /// (`docs/tuning.md`, Sgemm::fit_depth).
    pub fn fit_depth(self, k: usize) -> Sgemm {
        self.fit_depth_within(k, 1024)
    }

    /// On AVX-512 and AVX2, splits depth `k` into equal blocks of at most `max_block` (fewer
    /// passes over C). AVX-512 also narrows the B block so that it stays within 600 KiB of
    /// the 1 MiB L2 where it was measured, scaled to this CPU's L2 like every block. AVX2
    /// keeps its column block and caps the depth block at 2048, past which deep layers lose
    /// again (`docs/tuning.md`, Sgemm::fit_depth_within). Portable code keeps its blocking.
    pub fn fit_depth_within(mut self, k: usize, max_block: usize) -> Sgemm {
        if k == 0 || max_block == 0 {
            return self;
        }
        match self.shape.isa {
            Isa::Avx512 => {
                let b_block_elements = scaled_to_l2(150 * 1024, CacheSizes::detect());
                let nr = self.shape.nr;
                let kc = k.div_ceil(k.div_ceil(max_block));
                self.blocking.kc = kc;
                self.blocking.nc = (b_block_elements / kc / nr).clamp(1, 10) * nr;
            }
            Isa::Avx2 => {
                self.blocking.kc = k.div_ceil(k.div_ceil(max_block.min(AVX2_MAX_DEPTH_BLOCK)));
            }
            _ => {}
        }
        self
    }

    /// The SGEMM with a given microkernel and the cache blocking of its path, sized for this
    /// CPU's caches (see [`Blocking::for_kernel`]).
    pub fn with_kernel(shape: KernelShape) -> Sgemm {
        let blocking = Blocking::for_kernel(&shape, CacheSizes::detect());
        Sgemm {
            shape,
            blocking,
            packing: Packing {
                a: true,
                b: true,
                c: false,
            },
        }
    }

    /// The SGEMM reserving scratch blocks only for the operands that `packing` says are
    /// packed; running a job that must pack another one is outside [`Sgemm::run`]'s
    /// contract.
    pub fn with_packing(mut self, packing: Packing) -> Sgemm {
        self.packing = packing;
        self
    }

    /// The microkernel's path and tile.
    pub fn kernel(&self) -> KernelShape {
        self.shape
    }

    /// The cache blocking.
    pub fn blocking(&self) -> Blocking {
        self.blocking
    }

    /// Scratch (f32 elements) one worker needs: one A block and one B block (those that are
    /// packed, see [`Sgemm::with_packing`]), one tile, and a staged C block for a C stored in
    /// half precision.
    pub fn scratch_per_worker(&self) -> usize {
        let tile = self.shape.mr * self.shape.nr;
        self.a_block_len() + self.b_block_len() + tile + self.staged_c_len()
    }

    /// Tiles of C a task may have when its C is staged: as many as [`STAGED_C_BUDGET`] holds.
    fn staged_tiles(&self) -> usize {
        (STAGED_C_BUDGET / (self.shape.mr * self.shape.nr)).max(1)
    }

    /// Whether a staged half-precision C (transposed or pitched) of a job of depth `k` is
    /// staged one tile at a time rather than a task at a time: with one depth block, a
    /// tile's sums are complete as soon as it is stored, so that one tile of staging, which
    /// stays in L1, is enough (`docs/tuning.md`, Sgemm::stages_tiles). The tasks are still
    /// cut as for a staged task ([`Sgemm::split`]).
    fn stages_tiles(&self, k: usize) -> bool {
        k <= self.blocking.kc
    }

    /// Whether a C stored in half precision with `columns`, of a job of depth `k`, is staged
    /// in f32 (needs [`Packing::c`]). A contiguous C of one depth block is not: its tiles'
    /// sums are complete when they are stored, and the microkernels round them straight from
    /// their registers as they store them, half of f32's store bytes. Its tasks are split as
    /// f32's (`docs/tuning.md`, Sgemm::stages_half_c).
    pub fn stages_half_c(&self, columns: Columns, k: usize) -> bool {
        columns != Columns::Contiguous || !self.stages_tiles(k)
    }

    /// Elements of a worker's staged C (none when no C is stored in half precision).
    fn staged_c_len(&self) -> usize {
        if self.packing.c {
            self.staged_tiles() * self.shape.mr * self.shape.nr
        } else {
            0
        }
    }

    /// Elements of a worker's A block (none when A is never packed).
    fn a_block_len(&self) -> usize {
        let Blocking { kc, mc, .. } = self.blocking;
        if self.packing.a {
            packed_len(mc, kc, self.shape.mr)
        } else {
            0
        }
    }

    /// Elements of a worker's B block (none when B is never packed).
    fn b_block_len(&self) -> usize {
        let Blocking { kc, nc, .. } = self.blocking;
        if self.packing.b {
            packed_len(nc, kc, self.shape.nr)
        } else {
            0
        }
    }

    /// Scratch for `workers` workers.
    pub fn scratch_len(&self, workers: usize) -> usize {
        self.scratch_per_worker() * workers.max(1)
    }

    /// `C = A·B` then the epilogue, for row-major slices: A is `m×k` (row stride `lda`), B is
    /// `k×n` (row stride `ldb`), C is `m×n` (row stride `ldc`). Runs in the current rayon pool
    /// and allocates its scratch; see [`Sgemm::gemm_strided`] for other strides and caller
    /// scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        [m, n, k]: [usize; 3],
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        epilogue: &Epilogue<'_>,
    ) -> Result<(), ConvError> {
        let length = |buffer, expected: usize, actual| ConvError::BufferLength {
            buffer,
            expected,
            actual,
        };
        if lda < k {
            return Err(length("a", m.saturating_sub(1) * lda + k, a.len()));
        }
        if ldb < n {
            return Err(length("b", k.saturating_sub(1) * ldb + n, b.len()));
        }
        let mut scratch = vec![0.0; self.scratch_len(rayon::current_num_threads())];
        self.gemm_strided(
            [m, n, k],
            StridedMatrix::new(a, lda, 1),
            StridedMatrix::new(b, 1, ldb),
            c,
            ldc,
            epilogue,
            &mut scratch,
        )
    }

    /// `C = A·B` then the epilogue, with A given as `m` outer × `k` depth and B as `n` outer ×
    /// `k` depth by their strides (so either operand may be transposed for free), C row-major
    /// `m×n` with row stride `ldc`, and caller-owned scratch: one share of
    /// [`Sgemm::scratch_per_worker`] elements per worker, at least one. Runs in the current
    /// rayon pool on as many workers as the scratch has shares; allocates nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_strided(
        &self,
        [m, n, k]: [usize; 3],
        a: StridedMatrix<'_>,
        b: StridedMatrix<'_>,
        c: &mut [f32],
        ldc: usize,
        epilogue: &Epilogue<'_>,
        scratch: &mut [f32],
    ) -> Result<(), ConvError> {
        let zero = |field| ConvError::ZeroDimension { field };
        if m == 0 || n == 0 || k == 0 {
            return Err(zero(if m == 0 {
                "m"
            } else if n == 0 {
                "n"
            } else {
                "k"
            }));
        }
        let c_needed = (m - 1)
            .checked_mul(ldc)
            .and_then(|x| x.checked_add(n))
            .ok_or(ConvError::Overflow {
                quantity: "C extent",
            })?;
        let length = |buffer, expected: usize, actual| ConvError::BufferLength {
            buffer,
            expected,
            actual,
        };
        if !a.covers(m, k) {
            return Err(length("a", a.extent(m, k), a.len()));
        }
        if !b.covers(n, k) {
            return Err(length("b", b.extent(n, k), b.len()));
        }
        if ldc < n || c.len() < c_needed {
            return Err(length("c", c_needed, c.len()));
        }
        if let Some(bias) = epilogue.row_bias.filter(|b| b.len() != m) {
            return Err(length("row bias", m, bias.len()));
        }
        if let Some(bias) = epilogue.col_bias.filter(|b| b.len() != n) {
            return Err(length("column bias", n, bias.len()));
        }
        let needed = self.scratch_per_worker();
        if scratch.len() < needed {
            return Err(length("scratch", needed, scratch.len()));
        }
        let job = GemmJob {
            m,
            n,
            k,
            a: &a,
            b: &b,
            c: OutputTile {
                ptr: OutputPtr::F32(c.as_mut_ptr()),
                ldc,
                columns: Columns::Contiguous,
            },
            epilogue: *epilogue,
        };
        // SAFETY: the checks above prove that the sources cover m×k and n×k, that C holds
        // m rows of n values at stride ldc (exclusively borrowed), the biases' lengths, and
        // at least one worker's share of scratch.
        unsafe { self.run(&[job], scratch) };
        Ok(())
    }

    /// Whether a B whose depth steps are rows `ldb` apart is read in place for a product of
    /// `m` rows, over a column block `cols` wide, rather than packed. Packing costs a copy of
    /// B per column block that only `m` rows of tiles reuse: it pays for few rows, while
    /// many rows read in place (B steps 4 KiB apart all fall in one L1 set) lose to the
    /// packed panels (`docs/tuning.md`, reads_b_in_place). AVX2: see
    /// [`in_place_b_max_rows`]. The block must end on a whole vector (the kernels load whole
    /// vectors).
    fn reads_b_in_place(&self, m: usize, cols: usize, ldb: usize) -> bool {
        m <= in_place_b_max_rows(self.shape.isa)
            && cols.is_multiple_of(self.shape.lanes())
            && !(ldb * std::mem::size_of::<f32>()).is_multiple_of(PAGE_ALIASING_BYTES)
    }

    /// How a job of `m × n` is cut into row and column parts when `jobs` jobs share
    /// `workers` workers: the task count is a multiple of `workers` where possible.
    fn split(&self, [m, n]: [usize; 2], jobs: usize, workers: usize) -> Split {
        let (mr, nr) = (self.shape.mr, self.shape.nr);
        let (row_units, col_units) = (m.div_ceil(mr), n.div_ceil(nr));
        let mut cols = col_units.div_ceil(self.blocking.nc / nr).max(1);
        let mut rows = 1;
        if self.packing.c {
            // A staged C holds one task: at most `staged_tiles` tiles. Where B is packed
            // (converted) per task, the rows stay whole and the columns are cut, so that B is
            // packed once; else the column block stays and the rows are cut, so that A
            // (prepacked weights, streamed) is read once per column block, as unstaged.
            let tiles = self.staged_tiles();
            if self.packing.b {
                rows = row_units.div_ceil(tiles);
                let row_part = row_units.div_ceil(rows);
                cols = cols.max(col_units.div_ceil((tiles / row_part).max(1)));
            } else {
                cols = cols.max(col_units.div_ceil(tiles));
                let col_part = col_units.div_ceil(cols);
                rows = row_units.div_ceil(tiles / col_part);
            }
        }
        if workers > 1 && jobs < 4 * workers {
            // Few jobs: split each so that the workers get equal shares. Splitting rows
            // makes every part pack the same B columns again, splitting columns makes
            // every part stream all of A: split the operand that is larger.
            if n < m && cols < workers {
                rows = rows.max(workers.min(row_units));
            }
            while !(jobs * cols * rows).is_multiple_of(workers) {
                if cols < col_units {
                    cols += 1;
                } else if rows < row_units {
                    rows += 1;
                } else {
                    break;
                }
            }
        }
        Split { rows, cols }
    }

    /// Part `part` (row-major over the split) of a job of `m × n`: its rows and columns,
    /// whole tiles except at the edges; `None` when the part is empty.
    fn part(&self, [m, n]: [usize; 2], split: Split, part: usize) -> Option<Task> {
        let (mr, nr) = (self.shape.mr, self.shape.nr);
        let (row_units, col_units) = (m.div_ceil(mr), n.div_ceil(nr));
        let even = |units: usize, parts: usize, part: usize, unit: usize, limit: usize| {
            ((units * part / parts) * unit).min(limit)
        };
        let (r, c) = (part / split.cols, part % split.cols);
        let rows = (
            even(row_units, split.rows, r, mr, m),
            even(row_units, split.rows, r + 1, mr, m),
        );
        let cols = (
            even(col_units, split.cols, c, nr, n),
            even(col_units, split.cols, c + 1, nr, n),
        );
        (rows.0 < rows.1 && cols.0 < cols.1).then_some(Task { rows, cols })
    }

    /// Runs every job, in parallel over the caller's rayon pool. Allocates nothing: tasks are
    /// numbered across the jobs and each worker maps the numbers it takes to a job's part
    /// (directly when all jobs have one shape, as convkit's own calls do).
    ///
    /// # Safety
    /// For every job: `a` covers `m` outer × `k` depth and `b` covers `n` × `k`; `c.ptr` is
    /// valid for writes of every element `(i < m, j < n)` at the place `c.columns` maps it to
    /// (rows `c.ldc` apart, or columns when transposed; a pitched C has no column bias), and
    /// no two jobs' C
    /// regions overlap (nor are they read elsewhere during the call); biases hold `m` (row)
    /// and `n` (column) values. `jobs` hands out the same jobs whenever asked, from any
    /// thread. `scratch` holds at least [`Sgemm::scratch_per_worker`] elements, and no job
    /// packs an operand that [`Sgemm::with_packing`] excluded (a C stored in half precision
    /// needs [`Packing::c`]). The CPU has this SGEMM's path.
    pub unsafe fn run(&self, jobs: &dyn GemmJobs, scratch: &mut [f32]) {
        let per_worker = self.scratch_per_worker();
        let count = jobs.count();
        // The shape every job has, if one: given, or found by asking each job once.
        let (common, flops) = match jobs.common_shape() {
            Some([m, n, k]) => (Some([m, n]), count.saturating_mul(2 * m * n * k)),
            None => {
                let (mut flops, mut shape, mut uniform) = (0usize, None, true);
                for index in 0..count {
                    jobs.with_job(index, &mut |job| {
                        flops = flops.saturating_add(2 * job.m * job.n * job.k);
                        uniform &= *shape.get_or_insert([job.m, job.n]) == [job.m, job.n];
                    });
                }
                (shape.filter(|_| uniform), flops)
            }
        };
        let workers = threads_for(flops).min(scratch.len() / per_worker).max(1);
        let split_of = |dims| self.split(dims, count, workers);
        // One split for all jobs when they share a shape; else each lookup walks the jobs.
        let common = common.map(|dims| (dims, split_of(dims)));
        let total = match common {
            Some((_, split)) => count * split.parts(),
            None => (0..count)
                .map(|index| {
                    let mut parts = 0;
                    jobs.with_job(index, &mut |job| parts = split_of([job.m, job.n]).parts());
                    parts
                })
                .sum(),
        };
        let shared = SharedJobs(jobs);
        WorkerRanges::run(total, workers, scratch, per_worker, |index, scratch| {
            if let Some((dims, split)) = common {
                let Some(task) = self.part(dims, split, index % split.parts()) else {
                    return;
                };
                shared.jobs().with_job(index / split.parts(), &mut |job| {
                    // SAFETY: forwarded contract; the parts of one job are disjoint.
                    unsafe { self.run_task(job, task, scratch) };
                });
                return;
            }
            let (mut job_index, mut part) = (0, index);
            loop {
                let mut parts = 0;
                shared.jobs().with_job(job_index, &mut |job| {
                    parts = split_of([job.m, job.n]).parts()
                });
                if part < parts {
                    break;
                }
                (job_index, part) = (job_index + 1, part - parts);
            }
            shared.jobs().with_job(job_index, &mut |job| {
                let dims = [job.m, job.n];
                if let Some(task) = self.part(dims, split_of(dims), part) {
                    // SAFETY: forwarded contract; the parts of one job are disjoint.
                    unsafe { self.run_task(job, task, scratch) };
                }
            });
        });
    }

    /// One task, sequentially: the loop nest in the module documentation, its tiles stored
    /// into C (f32, or rounded from the registers), or into the worker's staged block and
    /// then rounded into C.
    ///
    /// # Safety
    /// As [`Sgemm::run`] for `job`, restricted to the task's tile.
    unsafe fn run_task(&self, job: &GemmJob<'_>, task: Task, scratch: &mut [f32]) {
        let from_registers = !self.stages_half_c(job.c.columns, job.k);
        let (ptr, element) = match job.c.ptr {
            OutputPtr::F32(ptr) => (ptr, CElement::F32),
            OutputPtr::F16(ptr) if from_registers => (ptr.cast(), CElement::F16),
            OutputPtr::Bf16(ptr) if from_registers => (ptr.cast(), CElement::Bf16),
            OutputPtr::F16(ptr) => {
                // SAFETY: forwarded contract (`split` cut the task to the staged block).
                return unsafe { self.run_staged_task(job, task, ptr, scratch) };
            }
            OutputPtr::Bf16(ptr) => {
                // SAFETY: as above.
                return unsafe { self.run_staged_task(job, task, ptr, scratch) };
            }
        };
        let c = TaskOutput {
            ptr,
            ldc: job.c.ldc,
            columns: job.c.columns,
            origin: Origin::At([0, 0]),
            element,
        };
        // SAFETY: forwarded contract: C is the job's own.
        unsafe { self.compute_task(job, task, c, scratch, |_, _| {}) };
    }

    /// A task whose C is stored as `T`: computed into the worker's staged block (rows, or
    /// columns when C is transposed, one after another), then rounded into C at the places
    /// `job.c.columns` maps them to. With one depth block ([`Sgemm::stages_tiles`]) the
    /// block holds one tile at a time, each rounded as soon as it is stored.
    ///
    /// # Safety
    /// As [`Sgemm::run`] for `job` (with `dst` its C), restricted to the task's tile; the
    /// task fits the staged block ([`Sgemm::split`] cuts it so).
    unsafe fn run_staged_task<T: F32Storage>(
        &self,
        job: &GemmJob<'_>,
        task: Task,
        dst: *mut T,
        scratch: &mut [f32],
    ) {
        let staged_len = self.staged_c_len();
        let (staged, scratch) = scratch.split_at_mut(staged_len);
        let [r0, c0] = [task.rows.0, task.cols.0];
        let per_tile = self.stages_tiles(job.k);
        let (rows, cols) = match per_tile {
            true => (self.shape.mr, self.shape.nr),
            false => (task.rows.1 - r0, task.cols.1 - c0),
        };
        assert!(
            rows * cols <= staged_len,
            "staged task larger than its block"
        );
        let transposed = job.c.columns == Columns::Transposed;
        let c = TaskOutput {
            element: CElement::F32,
            ptr: staged.as_mut_ptr(),
            ldc: if transposed { rows } else { cols },
            columns: if transposed {
                Columns::Transposed
            } else {
                Columns::Contiguous
            },
            origin: match per_tile {
                true => Origin::EachTile,
                false => Origin::At([r0, c0]),
            },
        };
        let ldc = job.c.ldc;
        // The runs of C that rows `i` and columns `j` of the job map to, as (staged offset,
        // element of C, length), the staged block starting at row and column `base`.
        let runs =
            |i: Range<usize>,
             j: Range<usize>,
             [r0, c0]: [usize; 2],
             each: &mut dyn FnMut(usize, usize, usize)| match job.c.columns {
                Columns::Contiguous => {
                    for row in i {
                        each(
                            (row - r0) * cols + j.start - c0,
                            row * ldc + j.start,
                            j.len(),
                        );
                    }
                }
                Columns::Transposed => {
                    for column in j {
                        each(
                            (column - c0) * rows + i.start - r0,
                            column * ldc + i.start,
                            i.len(),
                        );
                    }
                }
                Columns::Pitched { pitch, valid } => {
                    for row in i {
                        let mut column = j.start;
                        while column < j.end {
                            let (line, offset) = (column / pitch, column % pitch);
                            if offset >= valid {
                                column += pitch - offset;
                                continue;
                            }
                            let run = (valid - offset).min(j.end - column);
                            each(
                                (row - r0) * cols + column - c0,
                                row * ldc + line * valid + offset,
                                run,
                            );
                            column += run;
                        }
                    }
                }
            };
        // Rounds a finished tile (rows `i`, columns `j` of the job) into C while it is in L1,
        // and asks for the lines of the task's next tile along the row, so that the stores
        // overlap the next tile's arithmetic instead of waiting for their lines
        // (`docs/tuning.md`, staged C rounded tile by tile).
        let round_tile = |i: Range<usize>, j: Range<usize>| {
            let base = match per_tile {
                true => [i.start, j.start],
                false => [r0, c0],
            };
            runs(i.clone(), j.clone(), base, &mut |from, to, len| {
                // SAFETY: every element `to` names is one of the task's elements of C, mapped
                // inside the job's C by `run`'s contract, and written by this task alone.
                let dst = unsafe { std::slice::from_raw_parts_mut(dst.add(to), len) };
                T::narrow(&staged[from..from + len], dst);
            });
            // The next tile in `compute_task`'s order: along the row within the column block,
            // else the first of the next row of tiles.
            let (nc, mr, nr) = (self.blocking.nc, self.shape.mr, self.shape.nr);
            let block_start = task.cols.0 + (j.start - task.cols.0) / nc * nc;
            let block_end = (block_start + nc).min(task.cols.1);
            let (next_rows, next_cols) = if j.end < block_end {
                (i, j.end..(j.end + nr).min(block_end))
            } else {
                (
                    i.end..(i.end + mr).min(task.rows.1),
                    block_start..(block_start + nr).min(block_end),
                )
            };
            let next_base = [next_rows.start, next_cols.start];
            runs(next_rows, next_cols, next_base, &mut |_, to, len| {
                let first = dst.wrapping_add(to).cast::<u8>();
                for line in (0..len * std::mem::size_of::<T>()).step_by(LINE_BYTES) {
                    prefetch_l1(first.wrapping_add(line).cast());
                }
            });
        };
        // SAFETY: forwarded contract for the operands; C is the worker's staged block, which
        // holds the task's rows × cols values, or one tile's (asserted).
        unsafe { self.compute_task(job, task, c, scratch, round_tile) };
    }

    /// Where a task reads its B block of columns `cols` and depth `depth`: a prepacked B
    /// streams from memory (the kernels prefetch it); one read in place (few rows of A, or a
    /// stepped source with A packed, `a_in_place` false) is read where it is; else it is
    /// packed into `b_scratch`, where it sits in L2.
    fn b_block<'a>(
        &self,
        job: &GemmJob<'a>,
        (cols, depth): (&Range<usize>, &Range<usize>),
        a_in_place: bool,
        b_scratch: &'a mut [f32],
    ) -> BBlock<'a> {
        let nr = self.shape.nr;
        let in_place = job
            .b
            .columns()
            .filter(|&(_, ldb)| self.reads_b_in_place(job.m, cols.len(), ldb));
        let whole_lines = job
            .b
            .stepped_lines()
            .is_none_or(|(_, kept)| self.shape.reads_whole_lines(kept));
        let stepped = job.b.stepped().filter(|_| !a_in_place && whole_lines);
        match (job.b.prepacked(cols.clone(), depth.clone(), nr), in_place) {
            (Some(panel), _) => BBlock::Panel {
                data: panel,
                access: BAccess::Streamed,
            },
            (None, Some((data, ldb))) => BBlock::InPlace {
                data: &data[depth.start * ldb..],
                ldb,
            },
            (None, None) => match stepped {
                Some((data, steps)) => BBlock::Stepped {
                    data,
                    steps: &steps[depth.start..depth.end],
                    lines: job.b.stepped_lines(),
                },
                None => {
                    job.b.pack(cols.clone(), depth.clone(), nr, b_scratch);
                    BBlock::Panel {
                        data: b_scratch,
                        access: BAccess::Strided,
                    }
                }
            },
        }
    }

    /// Where a task reads its A block of rows `rows` and depth `depth`: a prepacked panel, A's
    /// rows in place (`a_rows`) or at tables of offsets (`a_stepped`), else packed into
    /// `a_scratch` as rows (where the source asks for that) or as panels.
    fn a_block<'a>(
        &self,
        job: &GemmJob<'a>,
        (rows, depth): (&Range<usize>, &Range<usize>),
        (a_rows, a_stepped): (Option<(&'a [f32], usize)>, Option<SteppedRows<'a>>),
        a_scratch: &'a mut [f32],
    ) -> ABlock<'a> {
        let mr = self.shape.mr;
        match (
            job.a.prepacked(rows.clone(), depth.clone(), mr),
            a_rows,
            a_stepped,
        ) {
            (Some(panel), _, _) => ABlock::Packed(panel),
            (None, Some((data, lda)), _) => ABlock::Rows { data, lda },
            (None, None, Some(stepped)) => ABlock::Stepped(stepped),
            (None, None, None) if job.a.pack_rows(rows.clone(), depth.clone(), a_scratch) => {
                ABlock::BlockRows(a_scratch)
            }
            (None, None, None) => {
                job.a.pack(rows.clone(), depth.clone(), mr, a_scratch);
                ABlock::Packed(a_scratch)
            }
        }
    }

    /// The loop nest of one task, its tiles stored into `c`; `finished` is told the rows and
    /// columns of the job that each tile holds once its last depth block is stored.
    ///
    /// # Safety
    /// As [`Sgemm::run`] for `job`'s operands and biases, restricted to the task's tile; `c`
    /// is valid for writes of the task's elements of C, element `(i, j)` of the job at the
    /// place `c.columns` maps `(i, j)` less `c.origin` to, written by this task alone.
    unsafe fn compute_task(
        &self,
        job: &GemmJob<'_>,
        task: Task,
        c: TaskOutput,
        scratch: &mut [f32],
        finished: impl Fn(Range<usize>, Range<usize>),
    ) {
        let KernelShape {
            mr,
            nr,
            store_pitched,
            ..
        } = self.shape;
        let lanes = self.shape.lanes();
        // A read in place where its rows are contiguous (no packing: the standalone SGEMM's
        // row-major A) or at tables of offsets, else a prepacked panel, else packed here
        // block by block.
        let a_rows = job.a.rows();
        let a_stepped = job.a.stepped_rows();
        let Blocking { kc, mc, nc } = self.blocking;
        let (a_scratch, rest) = scratch.split_at_mut(self.a_block_len());
        let (tile_scratch, rest) = rest.split_at_mut(mr * nr);
        let b_scratch = &mut rest[..self.b_block_len()];
        let activation = VectorActivation::new(job.epilogue.activation);
        let (m_end, n_end) = (task.rows.1, task.cols.1);
        for jc in (task.cols.0..n_end).step_by(nc) {
            let cols = jc..(jc + nc).min(n_end);
            for pc in (0..job.k).step_by(kc) {
                let depth = pc..(pc + kc).min(job.k);
                let a_in_place = a_rows.is_some() || a_stepped.is_some();
                let b_block = self.b_block(job, (&cols, &depth), a_in_place, b_scratch);
                for ic in (task.rows.0..m_end).step_by(mc) {
                    let rows = ic..(ic + mc).min(m_end);
                    let a_block =
                        self.a_block(job, (&rows, &depth), (a_rows, a_stepped), a_scratch);
                    let tile_epilogue = |i: usize, j: usize| TileEpilogue {
                        accumulate: pc > 0,
                        finish: depth.end == job.k,
                        row_bias: job
                            .epilogue
                            .row_bias
                            .map_or(std::ptr::null(), |b| b[i..].as_ptr()),
                        col_bias: job
                            .epilogue
                            .col_bias
                            .map_or(std::ptr::null(), |b| b[j..].as_ptr()),
                        activation,
                        transposed: false,
                        pitched: None,
                        element: c.element,
                    };
                    for ir in rows.clone().step_by(mr) {
                        for jr in cols.clone().step_by(nr) {
                            let epilogue = tile_epilogue(ir, jr);
                            let (ci, cj) = match c.origin {
                                Origin::At([r0, c0]) => (ir - r0, jr - c0),
                                Origin::EachTile => (0, 0),
                            };
                            let (tile_rows, tile_cols) =
                                (mr.min(rows.end - ir), nr.min(cols.end - jr));
                            let (b_operand, b_access) = b_block.operand(
                                (jr, tile_cols),
                                jr - cols.start,
                                &depth,
                                (nr, lanes),
                            );
                            let (kernel, a) = a_block.operand(
                                &self.shape,
                                (tile_cols, b_access),
                                (ir, ir - rows.start),
                                &depth,
                            );
                            let mut kernel_epilogue = epilogue;
                            // SAFETY: the tile at (ci, cj) of tile_rows × tile_cols lies
                            // inside the job's C by `run`'s contract.
                            let target = unsafe {
                                c.tile_target(
                                    (ci, cj),
                                    (tile_rows, tile_cols),
                                    (mr, nr, lanes),
                                    &mut kernel_epilogue,
                                    tile_scratch.as_mut_ptr(),
                                )
                            };
                            // SAFETY: the panels hold depth×MR and depth×NR values from these
                            // offsets (packed_len rounds up to whole groups), or A's rows
                            // hold the block's depth range in place; a B read in place holds
                            // the block's steps `ldb` apart with whole vectors up to the
                            // block's end (`reads_b_in_place`), a stepped B whole vectors
                            // past each step's last column (`PanelSource::stepped`'s
                            // contract; on lines, a tile crossing a line's end reads its
                            // later vectors on the next line, among its own columns); the
                            // target lies inside the job's C by `run`'s contract, or is the
                            // worker's MR×NR tile buffer (`tile_target`); biases are offset
                            // within their lengths.
                            unsafe {
                                kernel(
                                    &kernel_epilogue,
                                    &mut [],
                                    TileCall {
                                        depth: depth.len(),
                                        a,
                                        b: b_operand,
                                        c: target.c,
                                        ldc: target.ldc,
                                        rows: tile_rows,
                                        cols: tile_cols,
                                    },
                                );
                                if let Some(pitch) = target.parked_on {
                                    store_pitched(
                                        &epilogue,
                                        &mut [],
                                        PitchedCall {
                                            tile: tile_scratch.as_ptr(),
                                            tile_ld: nr,
                                            c: c.at(ci * c.ldc),
                                            ldc: c.ldc,
                                            rows: tile_rows,
                                            columns: (cj, tile_cols),
                                            pitch,
                                        },
                                    );
                                }
                            }
                            if epilogue.finish {
                                finished(ir..ir + tile_rows, jr..jr + tile_cols);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where a task stores its tiles: element `(i, j)` of the job's C at the place `columns`
/// maps `(i, j)` less the [`Origin`] to from `ptr`, rows `ldc` apart, as `element`s (`ptr`
/// is cast; half-precision elements only in a contiguous C of one depth block).
#[derive(Clone, Copy)]
struct TaskOutput {
    ptr: *mut f32,
    ldc: usize,
    columns: Columns,
    origin: Origin,
    element: CElement,
}

/// Where one tile's microkernel call stores: `c` at row stride `ldc`; with
/// `parked_on = Some((pitch, valid))` the tile is parked in the worker's tile buffer, to be
/// stored on that pitched grid after the call.
struct TileTarget {
    c: *mut f32,
    ldc: usize,
    parked_on: Option<(usize, usize)>,
}

impl TaskOutput {
    /// Where the tile at `(ci, cj)` of this output, `tile_rows × tile_cols` of an `mr × nr`
    /// tile on `lanes`-lane vectors, is stored, with `epilogue` (the tile's, on entry) set
    /// for the microkernel's store:
    /// - contiguous columns: at its place;
    /// - pitched columns within one line's kept run: at that run;
    /// - a whole pitched tile with at least a vector's kept columns per line: from the
    ///   registers, each kept column at its mapped place (a vector crosses at most one line's
    ///   end);
    /// - other pitched tiles: parked in `tile_buffer` (MR×NR values, NR apart), without
    ///   accumulation or epilogue, for the pitched store;
    /// - transposed columns: element `(i, j)` at `(cj + j)·ldc + ci + i`.
    ///
    /// # Safety
    /// The tile lies inside the task's C (`run`'s contract).
    unsafe fn tile_target(
        &self,
        (ci, cj): (usize, usize),
        (tile_rows, tile_cols): (usize, usize),
        (mr, nr, lanes): (usize, usize, usize),
        epilogue: &mut TileEpilogue,
        tile_buffer: *mut f32,
    ) -> TileTarget {
        let at = |c| TileTarget {
            c,
            ldc: self.ldc,
            parked_on: None,
        };
        // SAFETY: every offset below is an element of the tile's place in C (contract).
        unsafe {
            match self.columns {
                Columns::Contiguous => at(self.at(ci * self.ldc + cj)),
                Columns::Pitched { pitch, valid } if cj % pitch + tile_cols <= valid => {
                    at(self.at(ci * self.ldc + cj / pitch * valid + cj % pitch))
                }
                Columns::Pitched { pitch, valid }
                    if tile_rows == mr && tile_cols == nr && valid >= lanes =>
                {
                    epilogue.pitched = Some(PitchedGrid {
                        first: cj,
                        pitch,
                        valid,
                    });
                    at(self.at(ci * self.ldc))
                }
                Columns::Pitched { pitch, valid } => {
                    epilogue.accumulate = false;
                    epilogue.finish = false;
                    TileTarget {
                        c: tile_buffer,
                        ldc: nr,
                        parked_on: Some((pitch, valid)),
                    }
                }
                Columns::Transposed => {
                    epilogue.transposed = true;
                    at(self.at(cj * self.ldc + ci))
                }
            }
        }
    }

    /// The element `offset` elements from the first, as the microkernels take it.
    ///
    /// # Safety
    /// The element lies inside the C that `ptr` points into.
    unsafe fn at(&self, offset: usize) -> *mut f32 {
        // SAFETY: forwarded contract, counted in the elements' own size.
        unsafe {
            match self.element {
                CElement::F32 => self.ptr.add(offset),
                CElement::F16 => self.ptr.cast::<f16>().add(offset).cast(),
                CElement::Bf16 => self.ptr.cast::<bf16>().add(offset).cast(),
            }
        }
    }
}

/// Which element of the job a [`TaskOutput`]'s first element holds.
#[derive(Clone, Copy)]
enum Origin {
    /// Job element `(i, j)` is stored at `(i − r0, j − c0)`.
    At([usize; 2]),
    /// Every tile is stored at the start (a staged tile, rounded before the next is stored).
    EachTile,
}

/// Where a task's block of B (one column block, one depth block) is read from.
#[derive(Clone, Copy)]
enum BBlock<'a> {
    /// Panels of NR columns in packed order (packed into scratch, or prepacked), from the
    /// block's first column.
    Panel { data: &'a [f32], access: BAccess },
    /// The source in place, from the block's first depth index: element `(j, p)` at
    /// `data[p·ldb + j]`.
    InPlace { data: &'a [f32], ldb: usize },
    /// The source in place at the block's step offsets: element `(j, p)` at
    /// `data[steps[p] + j]`, or with `lines` `(pitch, kept)` at `data[steps[p] + (j / kept)·
    /// pitch + j % kept]` (see [`PanelSource::stepped_lines`]).
    Stepped {
        data: &'a [f32],
        steps: &'a [u32],
        lines: Option<(usize, usize)>,
    },
}

impl BBlock<'_> {
    /// The B operand and access of the tile of `cols` columns at source column `column` (the
    /// block's column `offset`, a multiple of `nr`) over `depth`.
    fn operand(
        &self,
        (column, cols): (usize, usize),
        offset: usize,
        depth: &std::ops::Range<usize>,
        (nr, lanes): (usize, usize),
    ) -> (BOperand, BAccess) {
        let operand = |ptr: *const f32, ldb| BOperand {
            ptr,
            ldb,
            steps: std::ptr::null(),
            line_break: BOperand::NO_LINE_BREAK,
        };
        match *self {
            BBlock::Panel { data, access } => {
                (operand(data[offset * depth.len()..].as_ptr(), nr), access)
            }
            BBlock::InPlace { data, ldb } => {
                (operand(data[column..].as_ptr(), ldb), BAccess::Strided)
            }
            BBlock::Stepped { data, steps, lines } => {
                let (start, line_break) = match lines {
                    // The tile's columns from `kept − at` on lie on the next line: whole
                    // vectors, as `kept` and `column` are multiples of the vector. (A tile
                    // that ends on its line reads on past it, like any stepped tile.)
                    Some((pitch, kept)) => {
                        let (line, at) = (column / kept, column % kept);
                        let crosses = at + cols > kept;
                        let line_break = if crosses {
                            ((kept - at) / lanes, pitch - kept)
                        } else {
                            BOperand::NO_LINE_BREAK
                        };
                        (line * pitch + at, line_break)
                    }
                    None => (column, BOperand::NO_LINE_BREAK),
                };
                let b = BOperand {
                    steps: steps.as_ptr(),
                    line_break,
                    ..operand(data[start..].as_ptr(), 0)
                };
                (b, BAccess::Stepped)
            }
        }
    }
}

/// Where a task's block of A rows is read from.
#[derive(Clone, Copy)]
enum ABlock<'a> {
    /// Panels of MR rows in packed order (prepacked, or packed into the worker's scratch),
    /// from the block's first row.
    Packed(&'a [f32]),
    /// The source's rows in place: element `(i, p)` at `data[i·lda + p]`.
    Rows { data: &'a [f32], lda: usize },
    /// The block's rows, written into the worker's scratch ([`PanelSource::pack_rows`]):
    /// the block's row `i` and depth index `p` at `data[i·depth + p]`.
    BlockRows(&'a [f32]),
    /// The source in place at tables of offsets (the whole job's rows and depth).
    Stepped(SteppedRows<'a>),
}

impl ABlock<'_> {
    /// The microkernel for a tile `cols` wide whose A rows start at source row `row` (the
    /// block's row `offset`) and whose B is read as `b`, with its A operand over `depth`.
    /// Inlined into the tile loop: called once per tile, where Winograd's small products
    /// make a call's cost show.
    #[inline(always)]
    fn operand(
        &self,
        shape: &KernelShape,
        (cols, b): (usize, BAccess),
        (row, offset): (usize, usize),
        depth: &std::ops::Range<usize>,
    ) -> (MicroKernel, AOperand) {
        let kernels = shape.kernels_for(cols);
        let operand = |ptr: *const f32, lda| AOperand {
            ptr,
            lda,
            steps: std::ptr::null(),
            row_offsets: std::ptr::null(),
        };
        match *self {
            ABlock::Packed(panel) => (
                shape
                    .edge_kernel(cols, b)
                    .unwrap_or_else(|| kernels.select(AAccess::Packed, b)),
                operand(panel[offset * depth.len()..].as_ptr(), shape.mr),
            ),
            ABlock::Rows { data, lda } => (
                kernels.select(AAccess::Rows, b),
                operand(data[row * lda + depth.start..].as_ptr(), lda),
            ),
            ABlock::BlockRows(data) => (
                kernels.select(AAccess::Rows, b),
                operand(data[offset * depth.len()..].as_ptr(), depth.len()),
            ),
            ABlock::Stepped(SteppedRows { data, outer, steps }) => (
                kernels.select(AAccess::Stepped, b),
                AOperand {
                    steps: steps[depth.start..].as_ptr(),
                    row_offsets: outer[row..].as_ptr(),
                    ..operand(data.as_ptr(), 0)
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Blocking, KernelShape};
    use convkit_core::Isa;
    use convkit_simd::CacheSizes;

    fn caches(l2_kib: usize) -> CacheSizes {
        CacheSizes {
            l1d: 32 << 10,
            l2: l2_kib << 10,
        }
    }

    #[test]
    fn column_blocks_shrink_with_a_smaller_l2_and_stay_whole_vectors() {
        let portable = KernelShape::for_isa(Isa::Scalar);
        assert_eq!(Blocking::for_kernel(&portable, caches(1024)).nc, 256);
        assert_eq!(Blocking::for_kernel(&portable, caches(2048)).nc, 256);
        assert_eq!(Blocking::for_kernel(&portable, caches(512)).nc, 128);
        // Never narrower than one tile.
        assert_eq!(Blocking::for_kernel(&portable, caches(1)).nc, portable.nr);
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = KernelShape::for_isa(Isa::Avx2);
            assert_eq!(Blocking::for_kernel(&avx2, caches(1024)).nc, 512);
            assert_eq!(Blocking::for_kernel(&avx2, caches(512)).nc, 256);
            assert_eq!(Blocking::for_kernel(&avx2, caches(1280)).nc, 512);
            let avx512 = KernelShape::for_isa(Isa::Avx512);
            assert_eq!(Blocking::for_kernel(&avx512, caches(1024)).nc, 480);
            // 480 · 3/4 = 360, down to whole 16-lane vectors.
            assert_eq!(Blocking::for_kernel(&avx512, caches(768)).nc, 352);
        }
    }
}
