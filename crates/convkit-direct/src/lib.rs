//! `Algorithm::Direct`: convolution computed in register tiles straight from the input.
//!
//! No lowered matrix: the weights are re-laid once at plan time into the order a kernel reads
//! them, and each register tile of outputs sums over its taps and channels directly. Every
//! problem is supported (any stride, dilation, asymmetric padding, groups, batch, NCHW or
//! NHWC, bias and activation fused); the plan picks the kernel:
//!
//! | problem | kernel | vectorized along | scratch |
//! |---|---|---|---|
//! | depthwise (one input and output channel per group), NHWC | `depthwise::DepthwiseNhwc` | channels | none |
//! | depthwise, NCHW, output rows under 4 vectors or strided | `channel_blocks::DepthwiseChannelBlocks` | channels (a block of `LANES` interleaved per item) | a 64 KiB band per worker and its outputs |
//! | depthwise, NCHW, other | `depthwise::DepthwiseNchw` | output columns | a 64 KiB band per worker |
//! | NCHW, ≤ 4 input channels per group, column stride 1 or 2 | `columns::Columns` | output columns | a 256 KiB band per worker |
//! | anything else | `general::General` | output channels of a group | NCHW with many channels, or half-precision: a band of input rows per worker (≤ 512 KiB; + 32 KiB to widen half NCHW) |
//!
//! The general kernel broadcasts one input value per pixel and channel. It reads an f32 NHWC
//! input in place, and an f32 NCHW one too while the lines a tile reads (a channel plane's
//! row per channel and kernel row) fit half the L1d, stepping a plane per channel. Otherwise
//! (and for half precision) each work item first copies the band of input rows its tiles
//! read, channels-last, into its worker's buffer (16x16 register transposes; part of the
//! measured time, like the NCHW→NCHWc reorders of oneDNN and ONNX Runtime, but a band at a
//! time, so that it stays in cache for the tiles).
//!
//! Parallel work is split into (image, channel block, band of output rows or register tiles)
//! items spread over the caller's rayon pool; small problems stay on the calling thread.
//!
//! Half-precision storage (`half::f16`, `half::bf16`) is converted while packing: weights
//! widen once at plan time; the band copies widen the input (the general kernel copies
//! channels-last bands of an NHWC input too, rather than read half values in place, and the
//! NHWC depthwise kernel widens its input vectors as it loads them); every output vector is
//! rounded once as it is stored (F16C on the AVX2 path). No tensor-sized scratch.

#![deny(unsafe_op_in_unsafe_fn)]

/// Each kernel family's register tiles, declared once: per path, `rows x vectors`, widest
/// first (`_` is the portable path, which every path without a list of its own runs). The
/// family's choice (`choose_tile!`) and its dispatch (`with_tile!`) both expand its list, so
/// the tile a plan chooses is one that its path compiled. Register budgets (accumulators +
/// loaded vectors + a broadcast):
/// - `general`: `pixels x vectors of output channels`; AVX-512 24 + 4 + 1 of 32, AVX2
///   12 + 2 + 1 of 16, portable 4 `f32x8` + 1 + 1 of 8.
/// - `columns`: `output channels x column vectors`; AVX-512 24 + 4 + 1, AVX2 12 + 2 + 1.
macro_rules! register_tiles {
    (general, $then:ident!($($args:tt)*)) => { $then!($($args)*;
        Isa::Avx512 => 6 x 4, 8 x 3, 8 x 2, 8 x 1; Isa::Avx2 => 6 x 2, 8 x 1; _ => 4 x 1;) };
    (columns, $then:ident!($($args:tt)*)) => { $then!($($args)*;
        Isa::Avx512 => 6 x 4, 8 x 3, 12 x 2, 16 x 1; Isa::Avx2 => 6 x 2, 8 x 1; _ => 4 x 1;) };
}

/// The first tile `(a, b)` of `isa`'s list in `$family` whose `b` vectors are at most
/// `vectors`, else the list's narrowest.
macro_rules! choose_tile {
    ($isa:expr, $vectors:expr; $($path:pat => $($a:literal x $b:literal),+;)*) => {{
        let tiles: &[(usize, usize)] = match $isa {
            $($path => &[$(($a, $b)),+],)*
        };
        let vectors: usize = $vectors;
        tiles
            .iter()
            .copied()
            .find(|&(_, b)| b <= vectors)
            .unwrap_or(tiles[tiles.len() - 1])
    }};
}

/// Runs `$call` with the consts `$a` and `$b` set to the register tile `$key = (S::ISA, a, b)`
/// matches, from each path's own list of tiles only (the path is a constant where it is
/// expanded), so that a path does not compile the other paths' tiles.
macro_rules! with_tile {
    ($key:expr, |$a:ident, $b:ident| $call:expr; $($isa:pat => $($x:literal x $y:literal),+;)*) => {
        match $key {
            $($(($isa, $x, $y) => {
                const $a: usize = $x;
                const $b: usize = $y;
                $call
            })+)*
            _ => unreachable!("a plan's tile comes from its path's list, which this expands"),
        }
    };
}

mod channel_blocks;
mod columns;
mod depthwise;
mod general;
mod geometry;

use channel_blocks::DepthwiseChannelBlocks;
use columns::Columns;
use convkit_core::{
    Accuracy, Algorithm, ConvAlgorithm, ConvError, ConvPlan, ConvShape, Correction, Cost, Isa,
    Layout, PlanRequest,
};
use convkit_simd::{
    F32Storage, SharedOutput, Simd, SimdKernel, VectorActivation, WorkerRanges, call,
};
use depthwise::{DepthwiseNchw, DepthwiseNhwc};
use general::{General, InputRows, TileShape};
use geometry::Geometry;
use std::marker::PhantomData;
use std::ops::Range;

/// The direct convolution algorithm (f32, and half-precision storage).
#[derive(Clone, Copy, Debug, Default)]
pub struct Direct;

/// Paths with a kernel, narrowest first.
const ISAS: &[Isa] = &[Isa::Scalar, Isa::Avx2, Isa::Avx512];

/// Below this many FLOPs a run stays on the calling thread: waking a second worker costs
/// about as much as such a run takes (measurements: `docs/tuning.md`, PARALLEL_MIN_FLOPS).
const PARALLEL_MIN_FLOPS: u64 = 4 << 20;

/// Threads a run of `shape` uses (before its scratch caps them): one below
/// [`PARALLEL_MIN_FLOPS`], else the current rayon pool's. The cost model counts the same.
/// Depthwise FLOPs count eight times: one load per FMA and no reduction over channels run
/// them at about an eighth of the other kernels' rate, so that a 2 MFLOP depthwise layer
/// takes 100 µs on one thread (`docs/tuning.md`, PARALLEL_MIN_FLOPS).
fn threads_for(shape: &ConvShape) -> usize {
    let weight = if is_depthwise(shape) { 8 } else { 1 };
    if shape.flops().saturating_mul(weight) < PARALLEL_MIN_FLOPS {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Input elements (one group of one image) of a general-kernel band: 512 KiB.
const BAND_BUDGET: usize = 128 * 1024;

/// Work items per worker to aim for, so that uneven items still balance.
const ITEMS_PER_WORKER: usize = 4;

fn is_depthwise(shape: &ConvShape) -> bool {
    shape.in_channels_per_group() == 1 && shape.out_channels_per_group() == 1
}

/// NCHW depthwise layers run on channel blocks where rows of output are short (under four
/// vectors: a per-channel item is then mostly fixed cost) or strided (a vector of channels is
/// a plain load at any stride); `docs/tuning.md`, NCHW depthwise.
fn prefers_channel_blocks(shape: &ConvShape, lanes: usize) -> bool {
    shape.output_hw()[1] < 4 * lanes || shape.stride()[1] > 1
}

/// The column kernel pays off for few input channels per group (MNIST and CIFAR inputs, the
/// ResNet stem): the general kernel would run short reductions into transposing stores. At
/// column stride 2 it reads lines split by column parity, so its loads stay contiguous.
/// With more channels the general kernel wins (`docs/tuning.md`, prefers_columns).
fn prefers_columns(shape: &ConvShape) -> bool {
    const MAX_CHANNELS: usize = 4;
    shape.in_channels_per_group() <= MAX_CHANNELS && shape.stride()[1] <= 2
}

/// Whether the general kernel reads the input where it lies rather than through band copies:
/// an f32 NHWC input always; an f32 NCHW one when the input lines a register tile reads (one
/// per channel and kernel row) fill at most half the L1d, so that the next tile along the row
/// finds them there. Its broadcasts then step from plane to plane, cheaper than the copy
/// while the lines stay in L1 (`docs/tuning.md`, reads_in_place).
fn reads_in_place(shape: &ConvShape, converts: bool) -> bool {
    const LINE_BYTES: usize = 64;
    let lines = shape.in_channels_per_group() * shape.kernel_hw()[0];
    !converts
        && (shape.layout() == Layout::Nhwc
            || lines * LINE_BYTES <= convkit_simd::CacheSizes::detect().l1d / 2)
}

/// Estimated run time of `shape` on `isa` with `workers` threads (the work split evenly):
/// FLOPs over the kernel's sustained rate, plus the general kernel's channels-last copy of the
/// input where it does not read it in place (or, NCHW in place, its steps between planes) and,
/// for NCHW, its transposing stores. Rates are fractions of each path's FMA peak measured with
/// `cargo xtask bench` on the suite layers.
fn estimated_seconds(shape: &ConvShape, isa: Isa, converts: bool, workers: usize) -> f64 {
    CALL_OVERHEAD_SECONDS + work_seconds(shape, isa, converts) / workers as f64
}

/// One thread's time for the work of [`estimated_seconds`].
fn work_seconds(shape: &ConvShape, isa: Isa, converts: bool) -> f64 {
    let lanes = convkit_simd::lanes(isa);
    let peak = match isa {
        Isa::Avx512 => 250e9,
        Isa::Avx2 => 125e9,
        _ => 25e9,
    };
    let flops = shape.flops() as f64;
    if is_depthwise(shape) {
        // One load per FMA, short chains: about a fifth of peak.
        return flops / (peak * 0.2);
    }
    let reduction = shape.in_channels_per_group() * shape.kernel_hw()[0] * shape.kernel_hw()[1];
    if shape.layout() == Layout::Nchw && prefers_columns(shape) {
        return flops / (peak * (0.5 + reduction as f64 / 400.0).min(0.9));
    }
    let kg = shape.out_channels_per_group();
    let tile = TileShape::choose(isa, kg, lanes);
    let block = tile.kv * lanes;
    let lane_use = kg as f64 / (kg.div_ceil(block) * block) as f64;
    let [oh, ow] = shape.output_hw();
    let pixel_use = (oh * ow) as f64 / ((oh * ow).div_ceil(tile.rw) * tile.rw) as f64;
    // KV weight loads and RW broadcasts per RW·KV FMAs; a chain of the inner loop covers a
    // tap's channels (a kernel row's with one group, dilation 1 and channels-last reads),
    // short ones pay setup.
    let loads_per_fma = (tile.kv + tile.rw) as f64 / (tile.kv * tile.rw) as f64;
    let cg = shape.in_channels_per_group();
    let in_place = reads_in_place(shape, converts);
    let planes = in_place && shape.layout() == Layout::Nchw;
    let chain = if shape.groups() == 1 && shape.dilation()[1] == 1 && !planes {
        cg * shape.kernel_hw()[1]
    } else {
        cg
    } as f64;
    let rate =
        peak * lane_use * pixel_use * (1.0 / (1.1 * loads_per_fma)).min(1.0) / (1.0 + 1.0 / chain);
    // Per input value: the band copy, or (NCHW read in place) the broadcasts' steps from
    // plane to plane, about two thirds of it (`docs/tuning.md`, reads_in_place).
    let input_seconds = match (in_place, planes) {
        (false, _) => 0.2e-9,
        (true, true) => 0.13e-9,
        (true, false) => 0.0,
    };
    let store_seconds = match shape.layout() {
        Layout::Nchw => 0.25e-9,
        Layout::Nhwc => 0.0,
    };
    let layout_traffic =
        shape.input_len() as f64 * input_seconds + shape.output_len() as f64 * store_seconds;
    flops / rate + layout_traffic
}

/// The fitted correction of [`estimated_seconds`] (`docs/tuning.md`, "The cost model's
/// correction").
const CORRECTION: Correction = Correction {
    weights: [
        1.550, -0.083, -0.009, -0.055, 0.190, 0.159, -0.086, -0.192, 0.152, -0.212, -0.198, 0.087,
        -0.227, -0.057, -0.034, -0.140, -0.088,
    ],
};

/// Fixed cost of a run (item split), measured on the smallest suite layers.
const CALL_OVERHEAD_SECONDS: f64 = 0.5e-6;

/// One impl per storage type rather than a generic one: an optimized build compiles a generic
/// impl again in every crate that names `Direct` (generic instances are not shared across
/// crates there), and these are the crate's whole kernel tree.
macro_rules! impl_for_storage {
    ($($storage:ty),+) => {$(
        impl ConvAlgorithm<$storage> for Direct {
            fn algorithm(&self) -> Algorithm {
                Algorithm::Direct
            }

            fn isas(&self) -> &'static [Isa] {
                ISAS
            }

            fn accuracy(&self, shape: &ConvShape) -> Accuracy {
                // f32 fused multiply-adds over the reduction in one chain per output, plus the
                // bias (half-precision inputs widen exactly; the one rounding to the storage type
                // is the checker's own allowance).
                Accuracy::summation(shape.reduction_len() + 1, f64::from(f32::EPSILON) / 2.0)
            }

            fn cost(&self, shape: &ConvShape, isa: Isa) -> Result<Cost, ConvError> {
                let workers = threads_for(shape);
                Ok(Cost::corrected(
                    estimated_seconds(shape, isa, <$storage>::CONVERTS, workers),
                    &CORRECTION,
                    shape,
                ))
            }

            fn prepare(
                &self,
                request: &PlanRequest<'_, $storage>,
            ) -> Result<Box<dyn ConvPlan<$storage>>, ConvError> {
                Ok(Box::new(DirectPlan::<$storage>::new(request)))
            }
        }
    )+};
}

impl_for_storage!(f32, half::f16, half::bf16);

/// The kernel a plan runs.
#[derive(Debug)]
enum Kernel {
    General(General),
    Columns(Columns),
    DepthwiseNhwc(DepthwiseNhwc),
    DepthwiseNchw(DepthwiseNchw),
    DepthwiseChannelBlocks(DepthwiseChannelBlocks),
}

/// A prepared direct convolution on tensors stored as `T`.
#[derive(Debug)]
struct DirectPlan<T> {
    shape: ConvShape,
    isa: Isa,
    kernel: Kernel,
    /// Workers the scratch is sized for.
    workers: usize,
    storage: PhantomData<fn() -> T>,
}

impl<T: F32Storage> DirectPlan<T> {
    fn new(request: &PlanRequest<'_, T>) -> DirectPlan<T> {
        let shape = *request.shape();
        let isa = request.isa();
        let lanes = convkit_simd::lanes(isa);
        let geometry = Geometry::new(&shape);
        let activation = VectorActivation::new(request.activation());
        let weights = T::widened(request.weights());
        let bias = request.bias().map(T::widened);
        let (weights, bias) = (&*weights, bias.as_deref());
        // NCHW depthwise: channel blocks where they are preferred, else vectors of columns
        // (built only when the blocks are not taken); each needs a band of one output row
        // within its bound. The general kernel takes any problem.
        let nchw_depthwise = is_depthwise(&shape) && shape.layout() == Layout::Nchw;
        let depthwise_nchw = nchw_depthwise
            .then(|| {
                prefers_channel_blocks(&shape, lanes)
                    .then(|| {
                        DepthwiseChannelBlocks::new(geometry, lanes, weights, bias, activation)
                    })
                    .flatten()
                    .map(Kernel::DepthwiseChannelBlocks)
                    .or_else(|| {
                        DepthwiseNchw::new(geometry, lanes, weights, bias, activation)
                            .map(Kernel::DepthwiseNchw)
                    })
            })
            .flatten();
        let kernel = match (is_depthwise(&shape), shape.layout(), depthwise_nchw) {
            (true, Layout::Nhwc, _) => Kernel::DepthwiseNhwc(DepthwiseNhwc::new(
                geometry, lanes, weights, bias, activation,
            )),
            (_, _, Some(kernel)) => kernel,
            (_, layout, None) => {
                let workers = rayon::current_num_threads();
                let parallel_bands =
                    (ITEMS_PER_WORKER * workers).div_ceil(shape.batch() * shape.groups());
                let columns = (layout == Layout::Nchw && prefers_columns(&shape))
                    .then(|| {
                        Columns::new(
                            geometry,
                            isa,
                            lanes,
                            weights,
                            bias,
                            activation,
                            parallel_bands,
                        )
                    })
                    .flatten();
                match columns {
                    Some(columns) => Kernel::Columns(columns),
                    None => {
                        let tile = TileShape::choose(isa, shape.out_channels_per_group(), lanes);
                        // Inputs not read in place (`reads_in_place`): bands of input rows
                        // copied channels-last per item, at most about BAND_BUDGET of one
                        // group's input each, and enough of them for the workers' items: a band
                        // re-copies only its halo rows, while splitting a band's channel
                        // blocks among items copies the whole band again
                        // (`docs/tuning.md`, general kernel's bands).
                        let group_input = shape.input_len() / (shape.batch() * shape.groups());
                        let images = shape.batch() * shape.groups();
                        let bands = (!reads_in_place(&shape, T::CONVERTS)).then(|| {
                            let parallel = (ITEMS_PER_WORKER * workers).div_ceil(images);
                            let bands = parallel.max(group_input.div_ceil(BAND_BUDGET));
                            (bands.next_multiple_of(workers), parallel_bands)
                        });
                        Kernel::General(General::new(
                            geometry,
                            layout,
                            tile,
                            lanes,
                            (weights, bias),
                            activation,
                            bands,
                        ))
                    }
                }
            }
        };
        DirectPlan {
            shape,
            isa,
            kernel,
            workers: rayon::current_num_threads(),
            storage: PhantomData,
        }
    }

    /// Work items: `(count, description)` where an item index decodes in `run_item`.
    fn items(&self, workers: usize) -> Items {
        let [oh, _] = self.shape.output_hw();
        let n = self.shape.batch();
        let (outer, rows) = match &self.kernel {
            Kernel::General(general) => {
                if let Some(band_tiles) = general.band_tiles {
                    return Items {
                        outer: n * general.units(),
                        chunks: general.tiles().div_ceil(band_tiles),
                        per_chunk: band_tiles,
                    };
                }
                (n * general.units(), general.tiles())
            }
            Kernel::DepthwiseNhwc(_) => (n, oh),
            Kernel::DepthwiseNchw(dw) => {
                return Items {
                    outer: n * self.shape.in_channels(),
                    chunks: oh.div_ceil(dw.band_rows),
                    per_chunk: dw.band_rows,
                };
            }
            Kernel::DepthwiseChannelBlocks(blocks) => {
                return Items {
                    outer: n * blocks.blocks(),
                    chunks: oh.div_ceil(blocks.band_rows),
                    per_chunk: blocks.band_rows,
                };
            }
            Kernel::Columns(columns) => {
                return Items {
                    outer: n * self.shape.groups(),
                    chunks: oh.div_ceil(columns.band_rows),
                    per_chunk: columns.band_rows,
                };
            }
        };
        let chunks = (ITEMS_PER_WORKER * workers).div_ceil(outer).clamp(1, rows);
        let per_chunk = rows.div_ceil(chunks);
        Items {
            outer,
            chunks: rows.div_ceil(per_chunk),
            per_chunk,
        }
    }

    /// f32 elements of scratch per worker.
    fn scratch_per_worker(&self) -> usize {
        match &self.kernel {
            Kernel::DepthwiseNchw(dw) => dw.buffer_len(),
            Kernel::DepthwiseChannelBlocks(blocks) => blocks.buffer_len(),
            Kernel::Columns(columns) => columns.buffer_len(),
            Kernel::General(general) => general.buffer_len(),
            Kernel::DepthwiseNhwc(_) => 0,
        }
    }

    /// Runs item `index` on the plan's path: each kernel through its own entry, compiled
    /// for that path.
    ///
    /// # Safety
    /// The CPU has the plan's path; `input`/`output` hold the plan's tensors; no other
    /// thread writes this item's outputs meanwhile; `buffer` holds `scratch_per_worker`
    /// elements.
    unsafe fn run_item(
        &self,
        input: &[T],
        output: *mut T,
        items: Items,
        index: usize,
        buffer: &mut [f32],
    ) {
        let item = Item {
            shape: &self.shape,
            input,
            output,
            outer: index / items.chunks,
            chunk: index % items.chunks,
            per_chunk: items.per_chunk,
        };
        // SAFETY: forwarded contract.
        unsafe {
            match &self.kernel {
                Kernel::General(k) => call::<ItemEntry<_, T>>(self.isa, k, buffer, item),
                Kernel::Columns(k) => call::<ItemEntry<_, T>>(self.isa, k, buffer, item),
                Kernel::DepthwiseNhwc(k) => call::<ItemEntry<_, T>>(self.isa, k, buffer, item),
                Kernel::DepthwiseNchw(k) => call::<ItemEntry<_, T>>(self.isa, k, buffer, item),
                Kernel::DepthwiseChannelBlocks(k) => {
                    call::<ItemEntry<_, T>>(self.isa, k, buffer, item)
                }
            }
        }
    }
}

/// One work item: the `chunk`-th run of `per_chunk` output rows (register tiles for the
/// general kernel) of `outer` (an image and group, channel block or channel).
struct Item<'a, T> {
    shape: &'a ConvShape,
    input: &'a [T],
    output: *mut T,
    outer: usize,
    chunk: usize,
    per_chunk: usize,
}

impl<T> Item<'_, T> {
    /// `(image, group, band)` of an item whose `outer` is an (image, group) pair (a
    /// depthwise layer's groups are its channels) and whose chunk is a band of output rows.
    fn band(&self) -> (usize, usize, usize) {
        let groups = self.shape.groups();
        (self.outer / groups, self.outer % groups, self.chunk)
    }

    /// The item's chunk of `len` rows or tiles.
    fn chunk_of(&self, len: usize) -> Range<usize> {
        self.chunk * self.per_chunk..((self.chunk + 1) * self.per_chunk).min(len)
    }
}

/// A kernel that runs work items, its body written once over the path.
trait ItemKernel<T: F32Storage>: Sync {
    /// Runs `item` on path `S` with the worker's `buffer`.
    ///
    /// # Safety
    /// As [`DirectPlan::run_item`], on `S`'s path.
    unsafe fn run_item<S: Simd>(&self, buffer: &mut [f32], item: Item<'_, T>);
}

impl<T: F32Storage> ItemKernel<T> for General {
    #[inline(always)]
    unsafe fn run_item<S: Simd>(&self, buffer: &mut [f32], item: Item<'_, T>) {
        let units = self.units();
        let tiles = item.chunk_of(self.tiles());
        let (n, unit) = (item.outer / units, item.outer % units);
        // SAFETY: forwarded contract; the item's input rows start inside the input.
        unsafe {
            match (self.band_tiles, T::as_f32(item.input)) {
                (Some(_), _) => {
                    self.run_band::<S, T>(item.input, item.output, (n, unit), tiles, buffer)
                }
                (None, Some(input)) => {
                    let group = unit / self.blocks;
                    let geo = &self.geometry;
                    let rows = InputRows {
                        base: input
                            .as_ptr()
                            .add(n * geo.in_image + group * geo.cg * geo.in_channel),
                        first_row: 0,
                    };
                    self.run_tiles::<S, T>(rows, item.output, n, unit, tiles);
                }
                (None, None) => unreachable!("half-precision inputs are always copied in bands"),
            }
        }
    }
}

impl<T: F32Storage> ItemKernel<T> for DepthwiseNhwc {
    #[inline(always)]
    unsafe fn run_item<S: Simd>(&self, _: &mut [f32], item: Item<'_, T>) {
        let rows = item.chunk_of(item.shape.output_hw()[0]);
        // SAFETY: forwarded contract.
        unsafe { self.run_rows::<S, T>(item.input.as_ptr(), item.output, item.outer, rows) }
    }
}

/// How the output is cut into items: `outer` × `chunks` of `per_chunk` output rows (register
/// tiles for the general kernel).
#[derive(Clone, Copy, Debug)]
struct Items {
    outer: usize,
    chunks: usize,
    per_chunk: usize,
}

/// The work items of kernel `K` as a [`SimdKernel`]: the kernel is the entry's context (its
/// weights and geometry stay in registers across the item's stores), the worker's band
/// buffer its buffer.
struct ItemEntry<'a, K, T>(PhantomData<&'a K>, PhantomData<fn() -> T>);

impl<'a, K: ItemKernel<T>, T: F32Storage> SimdKernel for ItemEntry<'a, K, T> {
    type Context = K;
    type Args = Item<'a, T>;
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(kernel: &K, buffer: &mut [f32], item: Item<'a, T>) {
        // SAFETY: forwarded contract.
        unsafe { kernel.run_item::<S>(buffer, item) }
    }
}

impl<T: F32Storage> ConvPlan<T> for DirectPlan<T> {
    fn shape(&self) -> &ConvShape {
        &self.shape
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Direct
    }

    fn isa(&self) -> Isa {
        self.isa
    }

    fn scratch_len(&self) -> usize {
        self.scratch_per_worker() * self.workers.max(1)
    }

    fn plan_bytes(&self) -> usize {
        let floats = match &self.kernel {
            Kernel::General(g) => g.weights.len() + g.bias.len(),
            Kernel::Columns(c) => c.weights.len() + c.bias.len(),
            Kernel::DepthwiseNhwc(dw) => dw.weights.len() + dw.bias.len(),
            Kernel::DepthwiseNchw(dw) => dw.weights.len() + dw.bias.len(),
            Kernel::DepthwiseChannelBlocks(blocks) => blocks.packed_len(),
        };
        floats * std::mem::size_of::<f32>()
    }

    fn execute(&self, input: &[T], output: &mut [T], scratch: &mut [f32]) {
        let per_worker = self.scratch_per_worker();
        let threads = threads_for(&self.shape);
        let workers = scratch
            .len()
            .checked_div(per_worker)
            .map_or(threads, |shares| threads.min(shares).max(1));
        let items = self.items(workers);
        let count = items.outer * items.chunks;
        let shared = SharedOutput::new(output.as_mut_ptr());
        WorkerRanges::run(count, workers, scratch, per_worker, |index, buffer| {
            // SAFETY: the plan's path is available (checked at planning); the buffers have the
            // plan's lengths (checked by `run`); items are disjoint; `buffer` holds one
            // worker's share.
            unsafe { self.run_item(input, shared.get(), items, index, buffer) };
        });
    }
}
