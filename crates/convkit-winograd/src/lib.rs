//! `Algorithm::WinogradF2`, `WinogradF4` and `WinogradF6`: convolutions through Winograd's
//! minimal filtering, in one of three [`Form`]s (see [`transforms`] for the matrices and their
//! interpolation points):
//!
//! - 3x3 kernels at stride 1: `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` per `m×m` output tile, `α²`
//!   products (16, 36, 64);
//! - 1x3 kernels at stride 1 (1-D convolutions): `y = Aᵀ [(G g) ⊙ (Bᵀ d)]` per `1×m` tile,
//!   `α` products; at column dilation `d` the row is `d` interleaved phases, each an
//!   undilated correlation, and a tile reads and writes every `d`-th column;
//! - 1x3 kernels at stride 2: polyphase. Taps 0 and 2 read only the even input columns of a
//!   tile, a 2-tap correlation done by F(m, 2) (`m + 1` products); tap 1 reads only the odd
//!   columns, `m` plain products that all share one filter and form one GEMM per block. The
//!   output transform adds both phases.
//! - 3x3 kernels at stride 2: the same split along both axes, four phases: F(m×m, 2×2) on
//!   the even rows × even columns, F(m, 2) down the odd columns and along the odd rows, and
//!   plain products on odd × odd; `(2m + 1)²` products per `m×m` tile (81 for the 144 of a
//!   direct convolution with F4). Products that share a filter form one GEMM per block.
//!
//! The filters are transformed once at plan time and packed as the B operand of one GEMM per
//! transform-domain product. A run walks *blocks* of tiles (a few tile rows × tile columns of
//! one image and group), each worker on its own blocks with its own bounded scratch, so the
//! transformed data stays in cache:
//!
//! ```text
//! for each block of R×Cw tiles (and chunk of output channels, when there are few blocks):
//!   for each vector of LANES input channels:
//!     copy the block's input pixels (3x3: (R·m+2)×(Cw·m+2)) into a channel-interleaved band,
//!     zero-padded
//!     input transform Bᵀ d B of every tile         -> V[element][tile][channel]
//!   for each filter: M[element] = V[element] · U[element]ᵀ   (packed SGEMM: tiles × K, depth C)
//!   for each vector of LANES output channels:
//!     output transform Aᵀ M A + bias, activation   -> output band, drained into the output
//! ```
//!
//! Bands make both layouts one code path: NCHW and NHWC differ only in how a band is filled
//! and drained, and borders (any padding, partial tiles at the right and bottom) are zeros in
//! the input band and cropped from the output band.
//!
//! Non-finite inputs: an infinity or NaN in a tile's input patch reaches every output of that
//! tile through the transforms (`Inf − Inf`, `0 · Inf`), not only the outputs whose window
//! holds it; the declared `Accuracy::halo` says so.
//!
//! Scratch per worker: both bands, V and M for one block (the block is sized so that V and M
//! stay within [`BLOCK_BUDGET`] floats) and the GEMM's packing blocks; never the image.

mod kernels;
pub mod transforms;

use convkit_core::{
    Accuracy, Activation, Algorithm, ConvAlgorithm, ConvError, ConvPlan, ConvShape, Correction,
    Cost, Isa, Layout, PlanRequest,
};
use convkit_gemm::{
    Columns, Epilogue, GemmJob, GemmJobs, KernelShape, OutputTile, PackedPanels, Packing,
    PanelSource, Sgemm, StridedMatrix,
};
use convkit_simd::transpose::{deinterleave8, interleave8};
use convkit_simd::{F32Storage, SharedOutput, Simd, SimdKernel, VectorActivation, WorkerRanges};
use kernels::{Operand, TileTransforms};
use std::marker::PhantomData;
use std::ops::Range;
pub use transforms::{Form, Tile};

/// A Winograd F(m×m, 3×3) convolution (f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Winograd {
    tile: Tile,
}

impl Winograd {
    /// F(2x2, 3x3).
    pub const F2: Winograd = Winograd { tile: Tile::F2 };
    /// F(4x4, 3x3).
    pub const F4: Winograd = Winograd { tile: Tile::F4 };
    /// F(6x6, 3x3).
    pub const F6: Winograd = Winograd { tile: Tile::F6 };

    /// The output tile size.
    pub const fn tile(&self) -> Tile {
        self.tile
    }

    /// Which `Algorithm` this tile size is.
    pub const fn id(&self) -> Algorithm {
        match self.tile {
            Tile::F2 => Algorithm::WinogradF2,
            Tile::F4 => Algorithm::WinogradF4,
            Tile::F6 => Algorithm::WinogradF6,
        }
    }

    /// The form that computes `shape`: a 3x3 kernel at dilation 1 and stride 1
    /// ([`Form::Plane`]) or 2 ([`Form::PlanePolyphase`]), or a 1x3 kernel at row stride 1
    /// and column stride 1 ([`Form::Line`]; a column dilation up to the output width, so
    /// that each of the row's phases holds an output) or 2 (column dilation 1,
    /// [`Form::Polyphase`]).
    fn supports(&self, shape: &ConvShape) -> Result<Form, ConvError> {
        let [stride_h, stride_w] = shape.stride();
        let [_, dilation_w] = shape.dilation();
        let reason = match shape.kernel_hw() {
            [3, 3] if shape.stride() == [1, 1] && shape.dilation() == [1, 1] => {
                return Ok(Form::Plane);
            }
            [3, 3] if shape.stride() == [2, 2] && shape.dilation() == [1, 1] => {
                return Ok(Form::PlanePolyphase);
            }
            [3, 3] => "a 3x3 kernel needs dilation 1 and stride 1 or 2 (the same along both axes)",
            [1, 3] if stride_h == 1 && stride_w == 1 && dilation_w <= shape.output_hw()[1] => {
                return Ok(Form::Line);
            }
            [1, 3] if stride_h == 1 && stride_w == 2 && dilation_w == 1 => {
                return Ok(Form::Polyphase);
            }
            [1, 3] if stride_h == 1 && stride_w == 1 => {
                "a 1x3 kernel's column dilation must not exceed the output width (each output \
                 would be a tile of its own)"
            }
            [1, 3] => "a 1x3 kernel needs row stride 1, and column stride 1, or 2 without dilation",
            _ => "the kernel is neither 3x3 nor 1x3",
        };
        Err(ConvError::Unsupported {
            algorithm: self.id(),
            reason: format!("Winograd F(m, 3) needs 3x3 or 1x3 kernels: {reason}"),
        })
    }
}

/// Floats of V and M (the transformed input and the products) one block may hold: 4 MiB.
pub const BLOCK_BUDGET: usize = 1 << 20;

/// Share of a block's time spent in its input transform, which every chunk of output
/// channels repeats (from the profile of resnet_3x3_64 with F6).
const INPUT_SHARE: f64 = 0.15;

/// Fixed cost of a run, for the cost model.
const CALL_OVERHEAD_SECONDS: f64 = 3e-6;

/// Fixed cost of one transform-domain GEMM (task split, panel setup), for the cost model.
const GEMM_OVERHEAD_SECONDS: f64 = 0.1e-6;

/// Transformed filters plus the workers' V and M that the cost model counts as served by the
/// L3 (a 32 MiB L3 shared with other cores' tenants: about 20 MiB of it).
const FILTERS_IN_L3_BYTES: f64 = 20.0 * 1024.0 * 1024.0;

/// Rate at which one core streams prefetched filters from the L3, for the cost model.
const L3_BANDWIDTH_PER_CORE: f64 = 60e9;

/// Rate at which all cores together stream filters from memory, for the cost model.
const MEMORY_BANDWIDTH: f64 = 25e9;

/// Each tile's fitted correction of [`Geometry::estimated_seconds`] (`docs/tuning.md`, "The
/// cost model's correction").
const fn correction(tile: Tile) -> &'static Correction {
    match tile {
        Tile::F2 => &Correction {
            weights: [
                -0.225, 0.020, 0.112, -0.007, 0.069, 0.047, 0.046, 0.000, -0.034, 0.107, 0.037,
                0.162, 0.000, -0.061, 0.068, -0.067, 0.047,
            ],
        },
        Tile::F4 => &Correction {
            weights: [
                -0.170, 0.019, 0.131, -0.038, 0.086, 0.038, 0.064, 0.000, -0.084, 0.113, 0.093,
                0.155, 0.000, -0.121, 0.073, -0.019, 0.038,
            ],
        },
        Tile::F6 => &Correction {
            weights: [
                -0.157, 0.029, 0.134, -0.066, 0.082, 0.019, 0.008, 0.000, -0.094, 0.159, 0.103,
                0.214, 0.000, -0.074, 0.154, 0.041, 0.019,
            ],
        },
    }
}

/// One impl per storage type rather than a generic one: an optimized build compiles a generic
/// impl again in every crate that names `Winograd` (generic instances are not shared across
/// crates there), and these are the crate's whole kernel tree.
macro_rules! impl_for_storage {
    ($($storage:ty),+) => {$(
        impl ConvAlgorithm<$storage> for Winograd {
            fn algorithm(&self) -> Algorithm {
                self.id()
            }

            fn isas(&self) -> &'static [Isa] {
                KernelShape::ISAS
            }

            fn accuracy(&self, shape: &ConvShape) -> Accuracy {
                // A dilated row's tile spans `m` outputs `d` columns apart; a strided layer's
                // phase tiles span `m` outputs `stride` input pixels apart.
                let spread = if shape.kernel_hw() == [1, 3] {
                    shape.dilation()[1]
                } else {
                    1
                };
                let stride = shape.stride().into_iter().max().unwrap_or(1);
                Accuracy {
                    relative_bound: self.tile.tolerance(),
                    exact_on_integers: false,
                    halo: (self.tile.output() - 1) * spread * stride,
                }
            }

            fn cost(&self, shape: &ConvShape, isa: Isa) -> Result<Cost, ConvError> {
                let form = self.supports(shape)?;
                // The geometry the plan will have: its blocks are cut for the pool's threads.
                let workers = rayon::current_num_threads();
                let geometry = Geometry::new(form, self.tile, shape, isa, workers)?;
                Ok(Cost::corrected(
                    geometry.estimated_seconds(shape, isa, workers),
                    correction(self.tile),
                    shape,
                ))
            }

            fn prepare(
                &self,
                request: &PlanRequest<'_, $storage>,
            ) -> Result<Box<dyn ConvPlan<$storage>>, ConvError> {
                let form = self.supports(request.shape())?;
                // Weights and bias widen exactly to f32; the filter transform runs in f64 anyway.
                let weights = <$storage>::widened(request.weights());
                let bias = request.bias().map(<$storage>::widened);
                Ok(Box::new(WinogradPlan::new(
                    self.id(),
                    form,
                    self.tile,
                    (&weights, bias.as_deref()),
                    request,
                )?))
            }
        }
    )+};
}

impl_for_storage!(f32, half::f16, half::bf16);

/// How a run is cut into blocks and chunks, and the sizes that follow.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    form: Form,
    tile: Tile,
    /// Tiles per tile column: the phases of a dilated row ([`Form::Line`]), else 1.
    phases: usize,
    /// SIMD lanes of the path: channels per band pixel.
    lanes: usize,
    /// Tile rows and columns per image.
    tiles: [usize; 2],
    /// Tile rows and columns per block.
    block: [usize; 2],
    /// Output channels per chunk (a multiple of the GEMM's NR, or all of them).
    chunk: usize,
    /// Chunks per group.
    chunks: usize,
    /// Input channels per group rounded up to `lanes`: V's tile stride.
    channel_stride: usize,
    /// `chunk` rounded up to `lanes`: M's tile stride.
    chunk_stride: usize,
    sgemm: Sgemm,
}

impl Geometry {
    fn new(
        form: Form,
        tile: Tile,
        shape: &ConvShape,
        isa: Isa,
        workers: usize,
    ) -> Result<Geometry, ConvError> {
        let overflow = ConvError::Overflow {
            quantity: "Winograd blocks",
        };
        let lanes = convkit_simd::lanes(isa);
        let m = tile.output();
        let [oh, ow] = shape.output_hw();
        let phases = match form {
            Form::Line => shape.dilation()[1],
            Form::Plane | Form::Polyphase | Form::PlanePolyphase => 1,
        };
        // Tile rows and tile columns (a tile column holds one tile per phase).
        let tiles = [oh.div_ceil(form.tile_rows(tile)), ow.div_ceil(m * phases)];
        let (cg, kg) = (
            shape.in_channels_per_group(),
            shape.out_channels_per_group(),
        );
        let channel_stride = cg.div_ceil(lanes) * lanes;
        let full_stride = kg.div_ceil(lanes) * lanes;
        let per_tile = form
            .elements(tile)
            .checked_mul(channel_stride + full_stride)
            .and_then(|per_tile| per_tile.checked_mul(phases))
            .ok_or(overflow.clone())?;
        let budget = (BLOCK_BUDGET / per_tile).max(1);
        let kernel =
            Sgemm::for_product(isa, [budget.min(tiles[0] * tiles[1]) * phases, kg, cg]).kernel();
        let images = shape.batch() * shape.groups();
        // Blocks of whole tile rows where they fit, else of part of a row, optionally with
        // the output channels split into chunks (each repeats the input transform); among the
        // candidates, the one whose busiest worker finishes first. A block costs its tiles
        // rounded up to the microkernel's rows, plus a fixed share.
        let most_chunks = if kg >= 2 * kernel.nr {
            workers.min(kg / kernel.nr).max(1)
        } else {
            1
        };
        let load = |[rows, cols]: [usize; 2], chunks: usize| -> f64 {
            let work = |t: usize| {
                let rounded = ((t * phases).div_ceil(kernel.mr) * kernel.mr) as f64;
                rounded * (1.0 / chunks as f64 + INPUT_SHARE) + 8.0
            };
            let per_image = tiles[0]
                .div_ceil(rows)
                .saturating_mul(tiles[1].div_ceil(cols));
            let items = per_image.saturating_mul(images).saturating_mul(chunks);
            if items > 64 * workers {
                // Many items: the workers helping each other balance them (edge blocks counted as
                // full).
                return work(rows * cols) * items as f64 / workers as f64;
            }
            let mut all = Vec::with_capacity(items);
            for by in (0..tiles[0]).step_by(rows) {
                for bx in (0..tiles[1]).step_by(cols) {
                    let t = rows.min(tiles[0] - by) * cols.min(tiles[1] - bx);
                    all.extend(std::iter::repeat_n(work(t), images * chunks));
                }
            }
            all.sort_by(|a, b| b.total_cmp(a));
            let mut loads = vec![0.0f64; workers];
            for item in all {
                if let Some(least) = loads.iter_mut().min_by(|a, b| a.total_cmp(b)) {
                    *least += item;
                }
            }
            loads.into_iter().fold(0.0, f64::max)
        };
        let mut best: Option<([usize; 2], usize, f64)> = None;
        for rows in 1..=tiles[0] {
            let cols = (budget / rows).min(tiles[1]);
            if cols == 0 {
                break;
            }
            // The widest block, and the same row cut into as many even blocks, or into a
            // multiple of the workers' count (a long 1-D row in 4 blocks of 78, 78, 78 and 16
            // tiles kept one of two workers idle a fifth of the time).
            let per_row = tiles[1].div_ceil(cols);
            let widths = [
                cols,
                tiles[1].div_ceil(per_row),
                tiles[1].div_ceil(per_row.next_multiple_of(workers)),
            ];
            for width in widths {
                for chunks in [1, most_chunks] {
                    let cost = load([rows, width], chunks);
                    if best.is_none_or(|(_, _, c)| cost < c) {
                        best = Some(([rows, width], chunks, cost));
                    }
                }
            }
            if cols < tiles[1] {
                break;
            }
        }
        let (block, chunks) = best.map_or(([1, 1], 1), |(block, chunks, _)| (block, chunks));
        let t = block[0] * block[1] * phases;
        // Chunks of even size in whole vectors, each starting on a panel of the prepacked
        // filters: the cheapest microkernel whose columns divide that size, else the best
        // for it with the size rounded up to its columns (rounding to the full width's
        // columns split resnet_3x3_128's 128 channels into 96 + 32 for two workers: two
        // threads ran 1.2 times as fast as one).
        let even = match chunks {
            1 => kg,
            _ => kg.div_ceil(chunks).next_multiple_of(lanes),
        };
        let dividing = (chunks > 1)
            .then(|| KernelShape::for_product_dividing(isa, t, even))
            .flatten();
        let sgemm = match dividing {
            Some(shape) => Sgemm::with_kernel(shape).fit_depth(cg),
            None => Sgemm::for_product(isa, [t, even, cg]),
        };
        let chunk = even.next_multiple_of(sgemm.kernel().nr).min(kg);
        let chunks = kg.div_ceil(chunk);
        // B, the transformed filters, is prepacked: only A is packed at run time.
        let sgemm = sgemm.with_packing(Packing {
            a: true,
            b: false,
            c: false,
        });
        Ok(Geometry {
            form,
            tile,
            phases,
            lanes,
            tiles,
            block,
            chunk,
            chunks,
            channel_stride,
            chunk_stride: chunk.div_ceil(lanes) * lanes,
            sgemm,
        })
    }

    /// Tiles per block (GEMM rows of each product).
    fn block_tiles(&self) -> usize {
        self.block[0] * self.block[1] * self.phases
    }

    /// Pixels of the input band: `[rows, cols]`.
    fn input_band(&self) -> [usize; 2] {
        self.form.input_pixels(self.tile, self.phases, self.block)
    }

    /// Pixels of the output band: `[rows, cols]`.
    fn output_band(&self) -> [usize; 2] {
        [
            self.block[0] * self.form.tile_rows(self.tile),
            self.block[1] * self.tile.output() * self.phases,
        ]
    }

    /// Transform-domain products per tile.
    fn elements(&self) -> usize {
        self.form.elements(self.tile)
    }

    fn v_len(&self) -> usize {
        self.elements() * self.block_tiles() * self.channel_stride
    }

    fn m_len(&self) -> usize {
        self.elements() * self.block_tiles() * self.chunk_stride
    }

    /// Scratch floats per worker, in the order [`WinogradPlan::run_item`] splits it.
    fn scratch_per_worker(&self) -> usize {
        let [ir, ic] = self.input_band();
        let [or, oc] = self.output_band();
        (ir * ic + or * oc) * self.lanes
            + self.v_len()
            + self.m_len()
            + self.sgemm.scratch_per_worker()
    }

    /// Work items: (image, group, block row, block column, chunk).
    fn items(&self, shape: &ConvShape) -> usize {
        shape.batch()
            * shape.groups()
            * self.tiles[0].div_ceil(self.block[0])
            * self.tiles[1].div_ceil(self.block[1])
            * self.chunks
    }

    /// Relative speed of this tile size's transforms per transformed value: the 1-D
    /// transforms cost about 1, 2 and 3.3 operations per value for F2, F4 and F6; F6 at its
    /// operation count's ratio (`docs/tuning.md`, transform_speed).
    fn transform_speed(&self) -> f64 {
        match self.tile {
            Tile::F2 => 1.33,
            Tile::F4 => 1.0,
            Tile::F6 => 0.6,
        }
    }

    /// Wall time of a run on `workers` threads (this geometry's blocks, cut for them),
    /// fitted to the bench on AVX-512 (Zen 5) and scaled for the other paths: the
    /// transform-domain GEMMs at the path's rate (lower for few channels), the transforms per
    /// transformed value and the fixed cost per GEMM, all split over the workers that have
    /// blocks, plus a fixed cost per run.
    ///
    /// Every block streams its chunk of the transformed filters, prefetched alongside its
    /// GEMMs: the run takes the longer of the two. The filters come from each core's share of
    /// the L3 while they fit there beside every worker's V and M (then the streams scale with
    /// the workers), else from memory, whose bandwidth the workers share, so that the best
    /// tile size can differ between one thread and two (`docs/tuning.md`, filter streams).
    fn estimated_seconds(&self, shape: &ConvShape, isa: Isa, workers: usize) -> f64 {
        let (cg, kg) = (
            shape.in_channels_per_group() as f64,
            shape.out_channels_per_group() as f64,
        );
        let tiles =
            (shape.batch() * shape.groups() * self.tiles[0] * self.tiles[1] * self.phases) as f64;
        let elements = self.elements() as f64;
        let (gemm_rate, transform_rate) = match isa {
            Isa::Avx512 => (185e9, 6e9),
            Isa::Avx2 => (100e9, 3e9),
            _ => (14e9, 0.6e9),
        };
        let rate = gemm_rate * (kg / 32.0).min(1.0) * (cg / 32.0).sqrt().min(1.0);
        let gemm = 2.0 * tiles * elements * cg * kg / rate;
        let blocks = self.items(shape);
        let busy = workers.min(blocks).max(1) as f64;
        let filter_bytes = self.form.filters(self.tile) as f64 * cg * kg * 4.0;
        let blocks_bytes = (self.v_len() + self.m_len()) as f64 * 4.0 * busy;
        let bandwidth = if filter_bytes + blocks_bytes <= FILTERS_IN_L3_BYTES {
            L3_BANDWIDTH_PER_CORE * busy
        } else {
            MEMORY_BANDWIDTH
        };
        let streaming = blocks as f64 * filter_bytes / self.chunks as f64 / bandwidth;
        let transformed =
            tiles * elements * (self.channel_stride + self.chunks * self.chunk_stride) as f64;
        (gemm / busy).max(streaming)
            + transformed / (transform_rate * self.transform_speed()) / busy
            + blocks as f64 * elements * GEMM_OVERHEAD_SECONDS / busy
            + CALL_OVERHEAD_SECONDS
    }
}

/// The transform entry point of one path and tile size.
type Transforms = unsafe fn(&(), &mut [f32], TransformCall);

/// One call of a tile size's transforms: the input transform of a band into V, or the output
/// transform of the products into a band.
#[derive(Clone, Copy)]
enum TransformCall {
    /// [`kernels::input_tiles`]: the band's rows `row_stride` apart, the tiles, and V with
    /// its operand layout.
    Input {
        band: *const f32,
        row_stride: usize,
        tiles: [usize; 3],
        v: *mut f32,
        operand: Operand,
    },
    /// [`kernels::output_tiles`]: the products with their operand layout, the tiles, the
    /// output band's rows `row_stride` apart, the bias and the activation.
    Output {
        products: *const f32,
        operand: Operand,
        tiles: [usize; 3],
        band: *mut f32,
        row_stride: usize,
        bias: *const f32,
        activation: VectorActivation,
    },
}

/// The transforms of one form and tile size as a [`SimdKernel`]: each path's entry is
/// compiled with that path's instructions and constant matrices.
struct TransformKernel<X>(PhantomData<X>);

impl<X: TileTransforms> SimdKernel for TransformKernel<X> {
    type Context = ();
    type Args = TransformCall;
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(_: &(), _: &mut [f32], call: TransformCall) {
        // SAFETY: as [`TileTransforms::input`] and [`TileTransforms::output`] (forwarded).
        unsafe {
            match call {
                TransformCall::Input {
                    band,
                    row_stride,
                    tiles,
                    v,
                    operand,
                } => X::input::<S>(band, row_stride, tiles, v, operand),
                TransformCall::Output {
                    products,
                    operand,
                    tiles,
                    band,
                    row_stride,
                    bias,
                    activation,
                } => X::output::<S>(products, operand, tiles, band, row_stride, bias, activation),
            }
        }
    }
}

fn transforms_for(isa: Isa, form: Form, tile: Tile) -> Transforms {
    use convkit_simd::entry;
    use kernels::{F2, F4, F6, Line, Phases, Plane, PlanePhases, TwoTapF2, TwoTapF4, TwoTapF6};
    match (form, tile) {
        (Form::Plane, Tile::F2) => entry::<TransformKernel<Plane<F2, 4, 2>>>(isa),
        (Form::Plane, Tile::F4) => entry::<TransformKernel<Plane<F4, 6, 4>>>(isa),
        (Form::Plane, Tile::F6) => entry::<TransformKernel<Plane<F6, 8, 6>>>(isa),
        (Form::Line, Tile::F2) => entry::<TransformKernel<Line<F2, 4, 2>>>(isa),
        (Form::Line, Tile::F4) => entry::<TransformKernel<Line<F4, 6, 4>>>(isa),
        (Form::Line, Tile::F6) => entry::<TransformKernel<Line<F6, 8, 6>>>(isa),
        (Form::Polyphase, Tile::F2) => entry::<TransformKernel<Phases<TwoTapF2, 3, 2>>>(isa),
        (Form::Polyphase, Tile::F4) => entry::<TransformKernel<Phases<TwoTapF4, 5, 4>>>(isa),
        (Form::Polyphase, Tile::F6) => entry::<TransformKernel<Phases<TwoTapF6, 7, 6>>>(isa),
        (Form::PlanePolyphase, Tile::F2) => {
            entry::<TransformKernel<PlanePhases<TwoTapF2, 3, 2>>>(isa)
        }
        (Form::PlanePolyphase, Tile::F4) => {
            entry::<TransformKernel<PlanePhases<TwoTapF4, 5, 4>>>(isa)
        }
        (Form::PlanePolyphase, Tile::F6) => {
            entry::<TransformKernel<PlanePhases<TwoTapF6, 7, 6>>>(isa)
        }
    }
}

/// A packed filter operand seen from output channel `start` on (a chunk's columns).
struct Shifted<'a> {
    panels: &'a PackedPanels,
    start: usize,
}

impl PanelSource for Shifted<'_> {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        let outer = outer.start + self.start..outer.end + self.start;
        self.panels.pack(outer, depth, width, dst);
    }

    fn prepacked(&self, outer: Range<usize>, depth: Range<usize>, width: usize) -> Option<&[f32]> {
        let outer = outer.start + self.start..outer.end + self.start;
        self.panels.prepacked(outer, depth, width)
    }
}

/// The transform-domain GEMMs of one tile block, one per distinct filter `e`:
/// `M_e[rows × (k1 − k0)] = V_e[rows × depth] · U_e[depth × (k0..k1)]`, built when the
/// driver asks for them, with the rows and shares of [`Form::filter_region`] (a polyphase
/// filter shared by several products of each tile serves them in one GEMM).
struct ElementJobs<'a> {
    /// V, element `e` from `e·v_element`, tile rows `channel_stride` apart.
    v: &'a [f32],
    v_element: usize,
    channel_stride: usize,
    /// The group's transformed filters, one per element.
    filters: &'a [PackedPanels],
    /// Output channels `[k0, k1)` of the group.
    channels: [usize; 2],
    tiles: usize,
    form: Form,
    tile: Tile,
    depth: usize,
    /// M, element `e` from `e·products_element`, tile rows `chunk_stride` apart.
    products: *mut f32,
    products_element: usize,
    chunk_stride: usize,
}

impl ElementJobs<'_> {
    /// `[m, n, k]` of filter `e`'s GEMM.
    fn shape(&self, e: usize) -> [usize; 3] {
        let [k0, k1] = self.channels;
        let (_, rows) = self.form.filter_region(self.tile, e);
        [self.tiles * rows, k1 - k0, self.depth]
    }
}

impl GemmJobs for ElementJobs<'_> {
    fn count(&self) -> usize {
        self.filters.len()
    }

    fn common_shape(&self) -> Option<[usize; 3]> {
        // One shape when every filter serves one product per tile.
        (self.form.filters(self.tile) == self.form.elements(self.tile)).then(|| self.shape(0))
    }

    fn with_job(&self, e: usize, f: &mut dyn FnMut(&GemmJob<'_>)) {
        let [m, n, k] = self.shape(e);
        let (share, _) = self.form.filter_region(self.tile, e);
        let source = StridedMatrix::new(&self.v[share * self.v_element..], self.channel_stride, 1);
        let filter = Shifted {
            panels: &self.filters[e],
            start: self.channels[0],
        };
        f(&GemmJob {
            m,
            n,
            k,
            a: &source,
            b: &filter,
            c: OutputTile {
                // In bounds: the filter's shares lie within the form's elements, each M's
                // block share (`rows` products of `tiles ≤ t_cap` tiles fill `rows` shares).
                ptr: convkit_gemm::OutputPtr::F32(
                    self.products.wrapping_add(share * self.products_element),
                ),
                ldc: self.chunk_stride,
                columns: Columns::Contiguous,
            },
            epilogue: Epilogue::default(),
        });
    }
}

/// A prepared Winograd convolution.
struct WinogradPlan {
    algorithm: Algorithm,
    shape: ConvShape,
    isa: Isa,
    geometry: Geometry,
    transforms: Transforms,
    /// Per group and transform-domain element: `U = G g Gᵀ` as a K/g × C/g GEMM operand.
    filters: Vec<PackedPanels>,
    /// Per group, the bias padded with zeros to whole vectors (zeros without a bias).
    bias: Vec<f32>,
    /// Per group in `bias`.
    bias_stride: usize,
    activation: Activation,
    workers: usize,
}

impl WinogradPlan {
    fn new<T: F32Storage>(
        algorithm: Algorithm,
        form: Form,
        tile: Tile,
        (weights, bias_values): (&[f32], Option<&[f32]>),
        request: &PlanRequest<'_, T>,
    ) -> Result<WinogradPlan, ConvError> {
        let shape = *request.shape();
        let workers = rayon::current_num_threads();
        let geometry = Geometry::new(form, tile, &shape, request.isa(), workers)?;
        let (groups, cg, kg) = (
            shape.groups(),
            shape.in_channels_per_group(),
            shape.out_channels_per_group(),
        );
        let distinct = form.filters(tile);
        let taps = form.taps();
        let kernel = geometry.sgemm.kernel();
        let depth_block = geometry.sgemm.blocking().kc;
        let mut filters = Vec::with_capacity(groups * distinct);
        let mut transformed = vec![0.0f32; distinct * kg * cg];
        for g in 0..groups {
            // [filter][k][c], transformed in f64 and rounded once.
            for k in 0..kg {
                for c in 0..cg {
                    let start = ((g * kg + k) * cg + c) * taps;
                    let values = form.transform_filter(tile, &weights[start..start + taps]);
                    for (e, value) in values.into_iter().enumerate() {
                        transformed[(e * kg + k) * cg + c] = value as f32;
                    }
                }
            }
            for e in 0..distinct {
                let matrix = &transformed[e * kg * cg..(e + 1) * kg * cg];
                filters.push(PackedPanels::new(
                    &StridedMatrix::new(matrix, cg, 1),
                    kg,
                    cg,
                    kernel.nr,
                    depth_block,
                ));
            }
        }
        let lanes = geometry.lanes;
        let bias_stride = kg.div_ceil(lanes) * lanes;
        let mut bias = vec![0.0; groups * bias_stride];
        if let Some(values) = bias_values {
            for g in 0..groups {
                bias[g * bias_stride..g * bias_stride + kg]
                    .copy_from_slice(&values[g * kg..(g + 1) * kg]);
            }
        }
        Ok(WinogradPlan {
            algorithm,
            shape,
            isa: request.isa(),
            geometry,
            transforms: transforms_for(request.isa(), form, tile),
            filters,
            bias,
            bias_stride,
            activation: request.activation(),
            workers,
        })
    }

    /// One work item, on one worker's scratch.
    ///
    /// # Safety
    /// `output` is the run's output (`shape.output_len()` values); no other worker writes this
    /// item's outputs; the CPU has the plan's path.
    unsafe fn run_item<T: F32Storage>(
        &self,
        index: usize,
        input: &[T],
        output: *mut T,
        scratch: &mut [f32],
    ) {
        let geometry = &self.geometry;
        let shape = &self.shape;
        let [block_rows, block_cols] = [
            geometry.tiles[0].div_ceil(geometry.block[0]),
            geometry.tiles[1].div_ceil(geometry.block[1]),
        ];
        let chunk_index = index % geometry.chunks;
        let rest = index / geometry.chunks;
        let bx = rest % block_cols;
        let rest = rest / block_cols;
        let by = rest % block_rows;
        let rest = rest / block_rows;
        let g = rest % shape.groups();
        let n = rest / shape.groups();
        let tile0 = [by * geometry.block[0], bx * geometry.block[1]];
        let tiles = [
            geometry.block[0].min(geometry.tiles[0] - tile0[0]),
            geometry.block[1].min(geometry.tiles[1] - tile0[1]),
        ];
        let used = tiles[0] * tiles[1] * geometry.phases;
        // Tile rows, tile columns and phases, as the transforms take them.
        let tile_grid = [tiles[0], tiles[1], geometry.phases];
        let (cg, kg) = (
            shape.in_channels_per_group(),
            shape.out_channels_per_group(),
        );
        let k0 = chunk_index * geometry.chunk;
        let k1 = (k0 + geometry.chunk).min(kg);
        let lanes = geometry.lanes;
        let form = geometry.form;
        let distinct = form.filters(geometry.tile);
        let m = geometry.tile.output();
        let tile_rows = form.tile_rows(geometry.tile);

        let [ir, ic] = geometry.input_band();
        let [or, oc] = geometry.output_band();
        let (input_band, rest) = scratch.split_at_mut(ir * ic * lanes);
        let (output_band, rest) = rest.split_at_mut(or * oc * lanes);
        let (v, rest) = rest.split_at_mut(geometry.v_len());
        let (products, gemm_scratch) = rest.split_at_mut(geometry.m_len());
        let t_cap = geometry.block_tiles();
        let v_operand = Operand {
            tile: geometry.channel_stride,
            element: t_cap * geometry.channel_stride,
        };
        let m_operand = Operand {
            tile: geometry.chunk_stride,
            element: t_cap * geometry.chunk_stride,
        };
        // The block's first input pixel (padded coordinates) and its first output.
        let phases = geometry.phases;
        let origin = [
            tile0[0] * form.row_step(geometry.tile),
            tile0[1] * form.column_step(geometry.tile, phases),
        ];
        let output_origin = [tile0[0] * tile_rows, tile0[1] * m * phases];
        let band_pixels = form.input_pixels(geometry.tile, phases, tiles);
        for c0 in (0..cg).step_by(lanes) {
            self.fill_band(
                input,
                [n, g * cg + c0],
                (cg - c0).min(lanes),
                origin,
                band_pixels,
                ic,
                input_band,
            );
            // SAFETY: the band holds the form's input pixels of these tiles, `ic` pixels per
            // row; V holds every product × block tile, channel `c0 + lanes ≤ channel_stride`.
            unsafe {
                (self.transforms)(
                    &(),
                    &mut [],
                    TransformCall::Input {
                        band: input_band.as_ptr(),
                        row_stride: ic * lanes,
                        tiles: tile_grid,
                        v: v.as_mut_ptr().add(c0),
                        operand: v_operand,
                    },
                );
            }
        }

        let jobs = ElementJobs {
            v,
            v_element: v_operand.element,
            channel_stride: geometry.channel_stride,
            filters: &self.filters[g * distinct..(g + 1) * distinct],
            channels: [k0, k1],
            tiles: used,
            form,
            tile: geometry.tile,
            depth: cg,
            products: products.as_mut_ptr(),
            products_element: m_operand.element,
            chunk_stride: geometry.chunk_stride,
        };
        // SAFETY: source e covers `used ≤ t_cap` tiles of `cg` channels at stride
        // `channel_stride`; filter e (shifted by k0, a multiple of NR) covers `k1 − k0`
        // channels; each job's C is its own element share of M (`used` rows of
        // `k1 − k0 ≤ chunk_stride` at stride `chunk_stride`); the scratch is this worker's
        // share, so the GEMM runs on this thread.
        unsafe { geometry.sgemm.run(&jobs, gemm_scratch) };

        let bias = &self.bias[g * self.bias_stride..(g + 1) * self.bias_stride];
        let activation = VectorActivation::new(self.activation);
        for k in (k0..k1).step_by(lanes) {
            // SAFETY: M holds every product × block tile with `chunk_stride ≥ k − k0 + lanes`
            // values per tile; the bias is padded to whole vectors; the output band holds the
            // tiles' outputs, `oc` pixels per row.
            unsafe {
                (self.transforms)(
                    &(),
                    &mut [],
                    TransformCall::Output {
                        products: products.as_ptr().add(k - k0),
                        operand: m_operand,
                        tiles: tile_grid,
                        band: output_band.as_mut_ptr(),
                        row_stride: oc * lanes,
                        bias: bias.as_ptr().add(k),
                        activation,
                    },
                );
            }
            // SAFETY: forwarded contract: this item owns these outputs.
            unsafe {
                self.drain_band(
                    output_band,
                    oc,
                    output_origin,
                    [tiles[0] * tile_rows, tiles[1] * m * phases],
                    [n, g * kg + k],
                    (k1 - k).min(lanes),
                    output,
                );
            }
        }
    }

    /// Fills the input band for one vector of channels: band pixel `(i, j)` (row stride
    /// `stride` pixels) holds channels `channel..channel + valid` of padded pixel
    /// `origin + (i, j)` of image `n`, widened to f32, zero outside the image and in lanes
    /// past `valid`.
    #[allow(clippy::too_many_arguments)]
    fn fill_band<T: F32Storage>(
        &self,
        input: &[T],
        [n, channel]: [usize; 2],
        valid: usize,
        origin: [usize; 2],
        [rows, cols]: [usize; 2],
        stride: usize,
        band: &mut [f32],
    ) {
        let shape = &self.shape;
        let lanes = self.geometry.lanes;
        let [h, w] = shape.input_hw();
        let c = shape.in_channels();
        let padding = shape.padding();
        // Columns of the band inside the image: j in x_begin..x_end, x = origin + j − left.
        let x_begin = padding.left.saturating_sub(origin[1]).min(cols);
        let x_end = (padding.left + w)
            .saturating_sub(origin[1])
            .clamp(x_begin, cols);
        // The first image column read (meaningful only where the band reaches the image).
        let x0 = (origin[1] + x_begin).saturating_sub(padding.left);
        let count = x_end - x_begin;
        for i in 0..rows {
            let row = &mut band[i * stride * lanes..(i * stride + cols) * lanes];
            // A band wholly in the left or right padding (a dilated row's last phases can
            // be) reads nothing.
            let y = (origin[0] + i)
                .checked_sub(padding.top)
                .filter(|&y| y < h && count > 0);
            let Some(y) = y else {
                row.fill(0.0);
                continue;
            };
            row[..x_begin * lanes].fill(0.0);
            row[x_end * lanes..].fill(0.0);
            let inside = &mut row[x_begin * lanes..x_end * lanes];
            match shape.layout() {
                Layout::Nhwc => {
                    let first = ((n * h + y) * w + x0) * c + channel;
                    let pixels = &input[first..];
                    match (lanes, valid) {
                        (16, 16) => widen_pixels::<T, 16>(pixels, c, inside),
                        (8, 8) => widen_pixels::<T, 8>(pixels, c, inside),
                        _ => {
                            for (j, pixel) in inside.chunks_exact_mut(lanes).enumerate() {
                                T::widen(&pixels[j * c..j * c + valid], &mut pixel[..valid]);
                                pixel[valid..].fill(0.0);
                            }
                        }
                    }
                }
                Layout::Nchw => {
                    let row_of = |lane: usize| {
                        let start = ((n * c + channel + lane) * h + y) * w + x0;
                        &input[start..start + count]
                    };
                    for lane0 in (0..lanes).step_by(8) {
                        if lane0 + 8 <= valid {
                            let rows = std::array::from_fn(|i| row_of(lane0 + i));
                            interleave8(rows, inside, lanes, lane0);
                            continue;
                        }
                        for lane in lane0..lane0 + 8 {
                            let slots = inside[lane..].iter_mut().step_by(lanes);
                            if lane < valid {
                                slots
                                    .zip(row_of(lane))
                                    .for_each(|(slot, &value)| *slot = value.to_f32_lossy());
                            } else {
                                slots.for_each(|slot| *slot = 0.0);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Copies output band pixels `(i, j)` (row stride `stride` pixels, `extent` computed) that
    /// fall inside the output, lanes `..valid`, to output channels `channel..` of image `n`,
    /// rounded once to `T`.
    ///
    /// # Safety
    /// `output` holds the run's output; no other worker writes these outputs.
    #[allow(clippy::too_many_arguments)]
    unsafe fn drain_band<T: F32Storage>(
        &self,
        band: &[f32],
        stride: usize,
        origin: [usize; 2],
        extent: [usize; 2],
        [n, channel]: [usize; 2],
        valid: usize,
        output: *mut T,
    ) {
        let shape = &self.shape;
        let lanes = self.geometry.lanes;
        let [oh, ow] = shape.output_hw();
        let k = shape.out_channels();
        let rows = extent[0].min(oh - origin[0]);
        let cols = extent[1].min(ow - origin[1]);
        for i in 0..rows {
            let y = origin[0] + i;
            let row = &band[i * stride * lanes..(i * stride + cols) * lanes];
            match shape.layout() {
                Layout::Nhwc => {
                    let first = ((n * oh + y) * ow + origin[1]) * k + channel;
                    for (j, pixel) in row.chunks_exact(lanes).enumerate() {
                        // SAFETY: pixel (y, origin + j), j < cols, is inside the output, and
                        // its channels `channel..channel + valid` are owned by this item and
                        // written by no one else during the call.
                        let out = unsafe {
                            std::slice::from_raw_parts_mut(output.add(first + j * k), valid)
                        };
                        T::narrow(&pixel[..valid], out);
                    }
                }
                Layout::Nchw => {
                    let start = |lane: usize| ((n * k + channel + lane) * oh + y) * ow + origin[1];
                    // SAFETY: row `y` of channel `channel + lane` from column `origin` on
                    // holds `cols` outputs, owned by this item (no other slice made here
                    // overlaps: each is a different channel's row).
                    let row_of = |lane: usize| unsafe {
                        std::slice::from_raw_parts_mut(output.add(start(lane)), cols)
                    };
                    for lane0 in (0..valid).step_by(8) {
                        if lane0 + 8 <= valid {
                            let rows = std::array::from_fn(|i| row_of(lane0 + i));
                            deinterleave8(row, lanes, lane0, rows);
                            continue;
                        }
                        for lane in lane0..valid {
                            for (out, &value) in row_of(lane)
                                .iter_mut()
                                .zip(row[lane..].iter().step_by(lanes))
                            {
                                *out = T::from_f32_rounded(value);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Widens `L` channels of consecutive pixels (`channels` apart in `pixels`) into the band
/// pixels of `band`: fixed-size moves for f32, conversions for half types.
fn widen_pixels<T: F32Storage, const L: usize>(pixels: &[T], channels: usize, band: &mut [f32]) {
    for (j, pixel) in band.chunks_exact_mut(L).enumerate() {
        let source: &[T; L] = pixels[j * channels..j * channels + L]
            .try_into()
            .expect("a whole vector of channels");
        T::widen(source, pixel);
    }
}

impl<T: F32Storage> ConvPlan<T> for WinogradPlan {
    fn shape(&self) -> &ConvShape {
        &self.shape
    }

    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn isa(&self) -> Isa {
        self.isa
    }

    fn scratch_len(&self) -> usize {
        self.geometry.scratch_per_worker()
            * self.workers.min(self.geometry.items(&self.shape)).max(1)
    }

    fn plan_bytes(&self) -> usize {
        self.filters.iter().map(PackedPanels::bytes).sum::<usize>()
            + self.bias.len() * std::mem::size_of::<f32>()
    }

    fn execute(&self, input: &[T], output: &mut [T], scratch: &mut [f32]) {
        let per_worker = self.geometry.scratch_per_worker();
        let items = self.geometry.items(&self.shape);
        let workers = rayon::current_num_threads()
            .min(items)
            .min(scratch.len() / per_worker)
            .max(1);
        let output = SharedOutput::new(output.as_mut_ptr());
        WorkerRanges::run(items, workers, scratch, per_worker, |index, scratch| {
            // SAFETY: items write disjoint outputs (their own image, group, chunk of channels
            // and block of tiles); the plan's path was checked at plan time.
            unsafe { self.run_item(index, input, output.get(), scratch) };
        });
    }
}
