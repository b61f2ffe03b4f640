//! `Algorithm::Im2colGemm`: convolution as a packed SGEMM over the lowered input.
//!
//! The workhorse: it takes every valid problem (any stride, dilation, padding, groups, batch,
//! NCHW or NHWC). Weights are packed once at plan time into the GEMM's panel order; at run
//! time the lowered input is read by the GEMM in place from a zero-padded copy of the image
//! split into stride phases, at a plan-time table of where each `(c, ky, kx)` row starts
//! (see `lowering`), or packed block by block straight from the image, so the extra memory
//! is the GEMM's per-worker blocks plus at most 1 MiB per worker of padded copies (made in
//! bands of output rows when an image is larger), never the lowered matrix.
//!
//! | layout | A (broadcast side)        | B (vector side)            | C                 |
//! |--------|---------------------------|----------------------------|-------------------|
//! | NCHW   | weights, K/g × C/g·KH·KW  | lowered image, · × OH·OW   | `out[n][k][pixel]`, row bias |
//! | NCHW, pixel rows | padded copies at pixel and tap offsets, OH·OW × · | weights | `out[n][k][pixel]` stored transposed, column bias |
//! | NHWC   | lowered batch, N·OH·OW × · | weights, K/g × KH·KW·C/g | `out[pixel][k]`, column bias |
//!
//! The padded NCHW layers take the pixels as the rows of C (A, read in place at a table of
//! pixel offsets plus one of tap offsets) where that computes less than taking them as its
//! columns: a row of pixels on the pitched grid is rounded up to whole vectors and carries
//! the grid's dropped columns (resnet_3x3_512's 7x7 image: 64 columns computed for 49
//! pixels, 66 % of the peak), pixel rows only to the tile's 6 or 7 rows (93 %).
//!
//! A 1x1 convolution with stride 1 and no padding needs no lowering: the GEMM reads the input
//! tensor itself as its operand (NCHW with few output channels: in place, not even packed).

mod lowering;

use convkit_core::{
    Accuracy, Activation, Algorithm, ConvAlgorithm, ConvError, ConvPlan, ConvShape, Cost, Isa,
    Layout, PlanRequest,
};
use convkit_gemm::{
    Columns, Epilogue, GemmJob, GemmJobs, GemmOutput, KernelShape, OutputTile, PackedPanels,
    Packing, PanelSource, Sgemm, SteppedRows, StridedMatrix,
};
use convkit_simd::{F32Storage, SharedOutput};
use lowering::{
    NchwLowering, NhwcLowering, PaddedPlanes, PitchedLowering, PixelRows, WidenedMatrix, Window,
};
use rayon::prelude::*;
use std::ops::Range;

/// The im2col+GEMM algorithm: f32, or half-precision storage converted while packing (the
/// input widened as the padded copies or the panels are made, each task's part of the output
/// rounded once from f32, see `convkit_gemm::OutputPtr`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Im2colGemm;

/// The cost model's constants for one path, fitted to `cargo xtask bench` (one thread).
struct PathRates {
    /// FLOP/s of a large GEMM.
    large: f64,
    /// Output channels per group from which the broadcast side fills the microkernel's rows.
    full_channels: f64,
    /// Reduction length from which per-tile overheads stop showing.
    full_depth: f64,
    /// Pixels per product from which packing and edge tiles stop showing.
    full_pixels: f64,
    /// Share of the rate left where strides or dilations make the lowering gather taps.
    gathered: f64,
    /// Fixed cost of a run (task split, packing setup), from the smallest suite layers.
    overhead_seconds: f64,
}

impl PathRates {
    /// AVX-512 fitted on Zen 5 (8-row tiles: 8 output channels fill them; mnist_conv1
    /// 1.7 µs, mnist_conv2 3.8 µs, cifar_conv1 10 µs, strided and dilated 3x3 layers at
    /// 220–225 GFLOP/s against 240 for plain ones); AVX2 and the portable path on Zen 3.
    fn of(isa: Isa) -> PathRates {
        let zen3 = |large| PathRates {
            large,
            full_channels: 16.0,
            full_depth: 64.0,
            full_pixels: 64.0,
            gathered: 1.0,
            overhead_seconds: 3e-6,
        };
        match isa {
            Isa::Avx512 => PathRates {
                large: 240e9,
                full_channels: 8.0,
                full_depth: 40.0,
                full_pixels: 256.0,
                gathered: 0.92,
                overhead_seconds: 0.5e-6,
            },
            Isa::Avx2 => zen3(100e9),
            _ => zen3(15e9),
        }
    }
}

/// Estimated run time of `shape` on `isa` with `workers` threads: a fixed cost plus the
/// FLOPs, split evenly over the workers, at the path's large-GEMM rate, scaled down where
/// the GEMM is small in one dimension — output channels per group (the broadcast side: 1 for
/// depthwise), the reduction `C/g·KH·KW` (per-tile overheads), and the pixels of one
/// product — and where the taps are gathered.
fn estimated_seconds(shape: &ConvShape, isa: Isa, workers: usize) -> f64 {
    let rates = PathRates::of(isa);
    let [oh, ow] = shape.output_hw();
    let pixels = match shape.layout() {
        Layout::Nchw => oh * ow,
        Layout::Nhwc => shape.batch() * oh * ow,
    };
    let channels = (shape.out_channels_per_group() as f64 / rates.full_channels).min(1.0);
    let depth = (shape.reduction_len() as f64 / rates.full_depth)
        .sqrt()
        .min(1.0);
    let width = (pixels as f64 / rates.full_pixels).sqrt().min(1.0);
    let gathered = if shape.stride() == [1, 1] && shape.dilation() == [1, 1] {
        1.0
    } else {
        rates.gathered
    };
    let rate = rates.large * channels * depth * width * gathered;
    // NHWC layers other than pointwise ones pack every lowered value into the panels, a run
    // of a tap's channels at a time: about 0.25 ns a value plus 9 ns a run (Zen 5:
    // resnet_3x3_64 1.5 ms against 0.96 for NCHW, mnist_conv1's single channel 123 µs
    // against 1.7, resnet_stem_7x7s2 6.6 ms against 1.0).
    let packing = match shape.layout() {
        Layout::Nhwc if !is_pointwise(shape) => {
            let values = (pixels * shape.reduction_len()) as f64;
            values * (0.25e-9 + 9e-9 / shape.in_channels_per_group() as f64)
        }
        _ => 0.0,
    };
    rates.overhead_seconds + (shape.flops() as f64 / rate + packing) / workers as f64
}

/// A 1x1 stride-1 layer without padding: a GEMM on the input as it is.
fn is_pointwise(shape: &ConvShape) -> bool {
    let padding = shape.padding();
    shape.kernel_hw() == [1, 1]
        && shape.stride() == [1, 1]
        && padding.top + padding.bottom + padding.left + padding.right == 0
}

/// One impl per storage type rather than a generic one: an optimized build compiles a generic
/// impl again in every crate that names `Im2colGemm` (generic instances are not shared across
/// crates there), and these are the crate's whole kernel tree.
macro_rules! impl_for_storage {
    ($($storage:ty),+) => {$(
        impl ConvAlgorithm<$storage> for Im2colGemm {
            fn algorithm(&self) -> Algorithm {
                Algorithm::Im2colGemm
            }

            fn isas(&self) -> &'static [Isa] {
                KernelShape::ISAS
            }

            fn accuracy(&self, shape: &ConvShape) -> Accuracy {
                // f32 fused multiply-adds over the reduction, in depth blocks, plus the bias.
                Accuracy::summation(shape.reduction_len() + 1, f64::from(f32::EPSILON) / 2.0)
            }

            fn cost(&self, shape: &ConvShape, isa: Isa) -> Result<Cost, ConvError> {
                Ok(Cost {
                    seconds: estimated_seconds(
                        shape,
                        isa,
                        convkit_gemm::threads_for(shape.flops().try_into().unwrap_or(usize::MAX)),
                    ),
                })
            }

            fn prepare(
                &self,
                request: &PlanRequest<'_, $storage>,
            ) -> Result<Box<dyn ConvPlan<$storage>>, ConvError> {
                // Weights and bias widen exactly, once, before packing.
                let weights = <$storage>::widened(request.weights());
                let bias = request.bias().map(<$storage>::widened);
                let wide_request = PlanRequest::new(
                    request.shape().spec(),
                    &weights,
                    bias.as_deref(),
                    request.activation(),
                    request.isa(),
                )?;
                Ok(Box::new(Im2colPlan::new(&wide_request, <$storage>::CONVERTS)))
            }
        }
    )+};
}

impl_for_storage!(f32, half::f16, half::bf16);

/// Scratch (f32 elements) the zero-padded copies may take for the pitched lowering, per
/// worker (1 MiB): a batch is convolved in waves of as many images as fit, a larger image in
/// bands of output rows; only an image too wide for a band of [`MIN_BAND_ROWS`] uses the
/// per-row lowering. Per worker, so that two workers convolve twice the images between two
/// synchronizations (batch8_3x3_128, two threads: 445–456 → 452–460 GFLOP/s).
const PADDED_BUDGET: usize = 1 << 18;

/// Padded elements below which the copies are made on the calling thread.
const PARALLEL_PADDING_MIN: usize = 1 << 15;

/// What the transposed store of a tile costs beyond a pitched one on `isa`, in depth steps of
/// the tile: [`Im2colPlan::pixel_rows`] must compute `1 + this / depth` times less. AVX-512:
/// measured on resnet_stem_7x7s2 (depth 147), whose pixel rows estimate 4 % less work but
/// ran 5 % slower (one thread: 74–76 % of the peak against 78–80 %). AVX2 (Zen 3), whose
/// 6×16 tile has 16 output planes per store for 6 pixels (8-lane transposes, 6 rows of 8
/// filled), the store weighs more on each tile's 12 FMAs per step: resnet_3x3_64 and
/// dilated_3x3_64 (depth 576, 56×56), whose pixel rows estimate 3–6 % less work, ran at
/// 39–41 and 35–38 GFLOP/s (medians, alternated in one process) against 48–50 and 42–44
/// with the columns; resnet_3x3_512, resnet_3x3_256 and resnet_3x3_s2 keep their pixel rows (39–40,
/// 47, 38 against 33–36, 47, 36). (resnet_3x3_128 and batch8_3x3_128, 28×28 at depth 1152,
/// ran 5–12 % faster with columns too, but a count that moves them moves resnet_3x3_s2,
/// whose pixel rows read an unphased copy, which this estimate does not see.)
fn transposed_store_steps(isa: Isa) -> f64 {
    match isa {
        Isa::Avx2 => 64.0,
        _ => 16.0,
    }
}

/// How crowded the transposed store of a pixel-rows tile leaves the L1 sets it touches, as
/// a multiple of a fair share (a third of the ways of the 64-set L1 that x86 cores have):
/// the tile stores one line into each of `lines` output planes `plane_len` values apart,
/// and planes of a multiple of 4 KiB all land in one set. Measured: a 224×224 plane (every
/// line in one set) made a 64-channel 3x3 layer's pixel rows 20 % slower than its columns.
fn l1_set_crowding(plane_len: usize, lines: usize) -> f64 {
    const SETS: usize = 64;
    const FAIR_SHARE: usize = 4;
    let step = plane_len.wrapping_mul(std::mem::size_of::<f32>()) / 64 % SETS;
    let sets = SETS / gcd(step, SETS);
    lines.div_ceil(sets) as f64 / FAIR_SHARE as f64
}

/// Greatest common divisor (`gcd(0, b) = b`).
fn gcd(mut a: usize, mut b: usize) -> usize {
    while a != 0 {
        (a, b) = (b % a, a);
    }
    b
}

/// Depth block of pitched GEMMs: every tile is parked and stored once per depth block, so
/// the whole reduction of a 3x3 layer up to 266 channels goes in one (measured: 2304 beats
/// 576 on 256-channel layers).
const PITCHED_MAX_DEPTH_BLOCK: usize = 2400;

/// Elements past the padded copies that a stepped B read may touch: the last job's whole
/// vectors past its last column (computed, never stored).
const STEPPED_SLACK: usize = 16;

/// Largest stride folded into phase planes: beyond it most phases would be copied and never
/// read (a stride-s layer reads only the phases its taps land on).
const MAX_PHASE_STRIDE: usize = 2;

/// Smallest band of output rows worth padding for (below it the halo rows dominate).
const MIN_BAND_ROWS: usize = 4;

/// Smallest worker's share of an image's output rows for [`Pitched::worker_bands`].
const MIN_WORKER_BAND_ROWS: usize = 16;

/// How the pitched lowering lays out its padded copies and walks the batch.
///
/// For the columns of C, a stride `s` is folded into *phase planes*: phase `(pr, pc)` of a
/// channel holds padded pixels `(s_h·i + pr, s_w·j + pc)` at `(i, j)`, so tap `(ky, kx)` of
/// output `(oy, ox)` is phase `(ky·dh mod s_h, kx·dw mod s_w)` at `(oy + ky·dh / s_h, ox +
/// kx·dw / s_w)`: a fixed offset on a grid of pitch `⌈Wp / s_w⌉`, as for stride 1 (one
/// phase). Pixel rows, which read each pixel at its own offset, need no phases: their copy
/// is the padded image itself (pitch `Wp`), output `(oy, ox)` at `(s_h·oy, s_w·ox)` (`step`),
/// copied row by row at the cost of a plain copy (resnet_3x3_s2: one read of each input row
/// instead of one per column phase).
#[derive(Clone, Copy, Debug)]
struct Pitched {
    /// Columns per line of the grid: `⌈(W + left + right) / s_w⌉` with phases, else
    /// `W + left + right`.
    pitch: usize,
    /// Lines read beyond the first line of a band's last output row: `⌊(KH − 1)·dh / s_h⌋`
    /// with phases, else `(KH − 1)·dh`.
    halo: usize,
    /// `[s_h, s_w]` folded into phases (phases per channel: `s_h·s_w`), or `[1, 1]`.
    stride: [usize; 2],
    /// Lines and columns between output pixels on the grid: `[1, 1]` with phases, else
    /// `[s_h, s_w]`.
    step: [usize; 2],
    /// Output rows convolved at a time: `OH` (whole images) when an image fits the budget,
    /// else fewer (`≤ OH − 1`).
    band_rows: usize,
    /// Images convolved at a time (1 when banded).
    wave: usize,
    /// The bands are the workers' shares of one image, each padded and convolved by one
    /// worker on its own (see [`Pitched::plan`]), rather than convolved one after another
    /// by all of them.
    worker_bands: bool,
}

impl Pitched {
    /// The layout for `shape`, with the stride folded into phases or not (`phased`), within
    /// [`PADDED_BUDGET`] per worker of `workers`, if a band of [`MIN_BAND_ROWS`] fits: whole
    /// images (a wave of them), one image in worker bands, or bands in turn.
    fn plan(shape: &ConvShape, workers: usize, phased: bool) -> Option<Pitched> {
        let budget = PADDED_BUDGET * workers.max(1);
        let padding = shape.padding();
        let (stride, step) = match phased {
            true => (shape.stride(), [1, 1]),
            false => ([1, 1], shape.stride()),
        };
        if stride.iter().any(|&s| s > MAX_PHASE_STRIDE) {
            return None;
        }
        let pitch = (shape.input_hw()[1] + padding.left + padding.right).div_ceil(stride[1]);
        let halo = (shape.kernel_hw()[0] - 1) * shape.dilation()[0] / stride[0];
        // Checked: a valid spec can still have a huge padded width.
        let row_len = shape
            .in_channels()
            .checked_mul(stride[0] * stride[1])?
            .checked_mul(pitch)?;
        let oh = shape.output_hw()[0];
        let layout = |band_rows, wave| Pitched {
            pitch,
            halo,
            stride,
            step,
            band_rows,
            wave,
            worker_bands: false,
        };
        let image_len = row_len.checked_mul((oh - 1).checked_mul(step[0])? + 1 + halo)?;
        if image_len <= budget {
            // One image among several workers: each pads and convolves its own share of the
            // output rows, so that the copy it reads is the one it wrote (in its L2) and a
            // run is one fork-join instead of two (resnet_stem_7x7s2, two threads: 1.16–1.17
            // ms against 1.25–1.27 with the copy and the GEMM each shared; resnet_3x3_64,
            // resnet_3x3_s2 and dilated_3x3_64 equal).
            let band_rows = oh.div_ceil(workers.max(1));
            if workers > 1 && shape.batch() == 1 && band_rows >= MIN_WORKER_BAND_ROWS {
                return Some(Pitched {
                    worker_bands: true,
                    ..layout(band_rows, 1)
                });
            }
            return Some(layout(oh, (budget / image_len).clamp(1, shape.batch())));
        }
        // Lines (R − 1)·step + 1 + halo within the budget.
        let band_rows = (budget / row_len).saturating_sub(1 + halo) / step[0] + 1;
        (band_rows >= MIN_BAND_ROWS).then_some(layout(band_rows, 1))
    }

    /// Per tap `(ky, kx)` (row-major): the phase plane it reads, `(ky·dh mod s_h)·s_w + kx·dw
    /// mod s_w`, and its offset within the plane, `⌊ky·dh / s_h⌋·P + ⌊kx·dw / s_w⌋`.
    fn taps(&self, shape: &ConvShape) -> Vec<(usize, usize)> {
        let [kh, kw] = shape.kernel_hw();
        let [dh, dw] = shape.dilation();
        let [sh, sw] = self.stride;
        (0..kh * kw)
            .map(|tap| {
                let (row_tap, column_tap) = (tap / kw * dh, tap % kw * dw);
                let phase = (row_tap % sh) * sw + column_tap % sw;
                (phase, row_tap / sh * self.pitch + column_tap / sw)
            })
            .collect()
    }

    /// Per depth index `(c, ky, kx)`: where its row of B starts in a job's padded copy of
    /// `rows` output rows (the stepped read of `PitchedLowering`), or `None` past `u32`.
    fn steps(&self, taps: &[(usize, usize)], channels: usize, rows: usize) -> Option<Vec<u32>> {
        let (phases, plane_len) = (self.stride[0] * self.stride[1], self.plane_len(rows));
        (0..channels)
            .flat_map(|c| {
                taps.iter()
                    .map(move |&(phase, offset)| (c * phases + phase) * plane_len + offset)
            })
            .map(|step| u32::try_from(step).ok())
            .collect()
    }

    /// Per output pixel `(oy, ox)` of a band of `rows` output rows (row-major): its place on
    /// the grid, `step_h·oy·P + step_w·ox`, where the stepped read of its depth indices starts
    /// (the rows of A when the pixels are the rows of C); `None` past `u32`.
    fn pixels(&self, ow: usize, rows: usize) -> Option<Vec<u32>> {
        let [step_h, step_w] = self.step;
        (0..rows)
            .flat_map(|oy| (0..ow).map(move |ox| step_h * oy * self.pitch + step_w * ox))
            .map(|offset| u32::try_from(offset).ok())
            .collect()
    }

    /// Elements of one phase plane for a band of `rows` output rows.
    fn plane_len(&self, rows: usize) -> usize {
        ((rows - 1) * self.step[0] + 1 + self.halo) * self.pitch
    }

    /// Elements of the padded copy of `rows` output rows of one (image, group).
    fn group_len(&self, group_channels: usize, rows: usize) -> usize {
        group_channels * self.stride[0] * self.stride[1] * self.plane_len(rows)
    }
}

/// A prepared im2col+GEMM convolution.
struct Im2colPlan {
    shape: ConvShape,
    sgemm: Sgemm,
    /// Per group: the packed weights (A for NCHW, B for NHWC).
    weights: Vec<PackedPanels>,
    bias: Option<Vec<f32>>,
    activation: Activation,
    window: Window,
    /// 1x1, stride 1, no padding: the input is the GEMM operand as it is.
    pointwise: bool,
    /// NCHW with strides up to 2 (but 1x1 stride-1 layers): lowered from padded copies (of
    /// images or bands of rows, within [`PADDED_BUDGET`]) on a pitched grid, split into
    /// stride phases unless the pixels are the rows of C.
    pitched: Option<Pitched>,
    /// With `pitched`: where tap `(ky, kx)` reads in a channel's phase planes, as (phase
    /// plane, offset within it): see [`PitchedLowering::taps`].
    pitched_taps: Vec<(usize, usize)>,
    /// With `pitched`, when every band's table fits `u32`: where each depth index's row
    /// starts in a job's padded copies (and each pixel, with `pixel_rows`), which the GEMM
    /// then reads in place.
    pitched_steps: Option<StepTables>,
    /// With `pitched_steps`: the output pixels are the rows of C (A: the padded copies at the
    /// pixels' and depth indices' offsets; B: the weights; C stored transposed into the
    /// NCHW planes) rather than its columns (A: the weights; B: the padded copies on the
    /// pitched grid). Chosen where it computes less: the pitched grid's dropped columns and
    /// a row of pixels rounded up to whole vectors cost more than pixel rows rounded up to
    /// the tile's MR (small images: resnet_3x3_512's 7x7 computes 64 columns for 49 pixels),
    /// by more than the transposed store costs ([`transposed_store_steps`]).
    pixel_rows: bool,
    /// With `pitched_steps` and not `pixel_rows`: the GEMM's columns are the output pixels,
    /// its B vectors skipping the grid's dropped columns between two lines (each line holds
    /// whole vectors: `OW` a multiple of the vector, at least a tile wide), rather than the
    /// grid's columns with the dropped ones computed (resnet_stem_7x7s2: 112 of 115).
    kept_lines: bool,
    workers: usize,
}

/// A pitched plan's step tables: for a band of `band_rows` output rows, and for the last,
/// shorter band (empty when the bands divide the image).
#[derive(Debug)]
struct StepTables {
    full: BandTables,
    last: BandTables,
}

/// The tables of one band height.
#[derive(Debug, Default)]
struct BandTables {
    /// Per depth index `(c, ky, kx)`: [`Pitched::steps`].
    steps: Vec<u32>,
    /// Per output pixel, with `pixel_rows`: [`Pitched::pixels`] (else empty).
    pixels: Vec<u32>,
}

/// The lowered-input operand of one GEMM job, over input elements `T`.
enum Lowered<'a, T> {
    /// A 1x1 layer's f32 input as it is.
    Direct(StridedMatrix<'a>),
    /// A 1x1 layer's half-precision input, widened as it is packed.
    Widened(WidenedMatrix<'a, T>),
    Nchw(NchwLowering<'a, T>),
    Pitched(PitchedLowering<'a>),
    PixelRows(PixelRows<'a>),
    Nhwc(NhwcLowering<'a, T>),
}

impl<T: F32Storage> PanelSource for Lowered<'_, T> {
    fn rows(&self) -> Option<(&[f32], usize)> {
        match self {
            Lowered::Direct(matrix) => matrix.rows(),
            _ => None,
        }
    }

    fn columns(&self) -> Option<(&[f32], usize)> {
        match self {
            Lowered::Direct(matrix) => matrix.columns(),
            _ => None,
        }
    }

    fn stepped(&self) -> Option<(&[f32], &[u32])> {
        match self {
            Lowered::Pitched(lowering) => lowering.stepped,
            _ => None,
        }
    }

    fn stepped_lines(&self) -> Option<(usize, usize)> {
        match self {
            Lowered::Pitched(lowering) => lowering.lines,
            _ => None,
        }
    }

    fn stepped_rows(&self) -> Option<SteppedRows<'_>> {
        match self {
            Lowered::PixelRows(rows) => rows.stepped_rows(),
            _ => None,
        }
    }

    fn pack_rows(&self, outer: Range<usize>, depth: Range<usize>, dst: &mut [f32]) -> bool {
        match self {
            Lowered::Widened(matrix) => matrix.pack_rows(outer, depth, dst),
            _ => false,
        }
    }

    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        match self {
            Lowered::Direct(matrix) => matrix.pack(outer, depth, width, dst),
            Lowered::Widened(matrix) => matrix.pack(outer, depth, width, dst),
            Lowered::Nchw(lowering) => lowering.pack(outer, depth, width, dst),
            Lowered::Pitched(lowering) => lowering.pack(outer, depth, width, dst),
            Lowered::PixelRows(rows) => rows.pack(outer, depth, width, dst),
            Lowered::Nhwc(lowering) => lowering.pack(outer, depth, width, dst),
        }
    }
}

impl Im2colPlan {
    /// How the GEMM's C maps to the output: the NCHW planes transposed (pixel rows), on the
    /// pitched grid (the grid's columns, dropped ones included), or contiguous (NHWC, 1x1,
    /// the per-row lowering, kept lines).
    fn c_columns(&self) -> Columns {
        match (self.shape.layout(), self.pitched) {
            (Layout::Nchw, Some(_)) if self.pixel_rows => Columns::Transposed,
            (Layout::Nchw, Some(pitched)) if !self.kept_lines => Columns::Pitched {
                pitch: pitched.pitch,
                valid: self.shape.output_hw()[1],
            },
            _ => Columns::Contiguous,
        }
    }

    /// The plan of `request`, for input and output stored in half precision when `converts`
    /// (the input is then packed where f32 would be read in place, and C is staged where
    /// the microkernels cannot round it from their registers).
    fn new(request: &PlanRequest<'_, f32>, converts: bool) -> Im2colPlan {
        let shape = *request.shape();
        let [oh, ow] = shape.output_hw();
        let pointwise = is_pointwise(&shape);
        let workers = rayon::current_num_threads();
        let phased = (shape.layout() == Layout::Nchw && !pointwise)
            .then(|| Pitched::plan(&shape, workers, true))
            .flatten();
        let (kg, cg, depth) = (
            shape.out_channels_per_group(),
            shape.in_channels_per_group(),
            shape.reduction_len(),
        );
        let isa = request.isa();
        // Pixel rows where they compute less than the grid's columns, for a band either way.
        let prefer_pixel_rows = phased.is_some_and(|pitched| {
            let rows = pitched.band_rows;
            let [m, n] = [rows * ow, kg];
            let pixels = KernelShape::for_stepped_rows(isa, m, n);
            let pixels_cost = pixels.estimated_cost(m, n);
            let grid = (rows - 1) * pitched.pitch + ow;
            let columns = KernelShape::for_product(isa, kg, grid);
            // Lines of whole vectors are read kept columns only (`kept_lines`).
            let [cm, cn] = [
                kg,
                if columns.reads_whole_lines(ow) {
                    rows * ow
                } else {
                    grid
                },
            ];
            let columns_cost = columns.estimated_cost(cm, cn);
            let store_steps =
                transposed_store_steps(isa) * l1_set_crowding(oh * ow, pixels.nr.min(kg)).max(1.0);
            pixels_cost * (1.0 + store_steps / depth as f64) < columns_cost
        });
        // The step tables of a layout (with the pixels' offsets for pixel rows), when every
        // band's fit `u32`.
        let tables = |pitched: Pitched, pixel_rows: bool| {
            let taps = pitched.taps(&shape);
            let band = |rows| {
                Some(BandTables {
                    steps: pitched.steps(&taps, cg, rows)?,
                    pixels: match pixel_rows {
                        true => pitched.pixels(ow, rows)?,
                        false => Vec::new(),
                    },
                })
            };
            // A last band shorter than the others has its own plane length.
            Some(StepTables {
                full: band(pitched.band_rows)?,
                last: match oh % pitched.band_rows {
                    0 => BandTables::default(),
                    rows => band(rows)?,
                },
            })
        };
        // Pixel rows read an unphased copy (a strided layer's phases would only cost a
        // slower copy); the grid's columns need the phases, or the per-row lowering.
        let pixel_layout = match shape.stride() {
            _ if !prefer_pixel_rows => None,
            [1, 1] => phased,
            _ => Pitched::plan(&shape, workers, false).or(phased),
        };
        let (pitched, pitched_steps, pixel_rows) =
            match pixel_layout.and_then(|pitched| Some((pitched, tables(pitched, true)?))) {
                Some((pitched, steps)) => (Some(pitched), Some(steps), true),
                None => (
                    phased,
                    phased.and_then(|pitched| tables(pitched, false)),
                    false,
                ),
            };
        let pitched_taps = pitched.map_or_else(Vec::new, |pitched| pitched.taps(&shape));
        let [gemm_m, gemm_n] = match (shape.layout(), pitched) {
            (Layout::Nchw, Some(pitched)) if pixel_rows => [pitched.band_rows * ow, kg],
            (Layout::Nchw, Some(pitched)) => [kg, (pitched.band_rows - 1) * pitched.pitch + ow],
            (Layout::Nchw, None) => [kg, oh * ow],
            (Layout::Nhwc, _) => [shape.batch() * oh * ow, kg],
        };
        let sgemm = if pixel_rows {
            Sgemm::with_kernel(KernelShape::for_stepped_rows(isa, gemm_m, gemm_n)).fit_depth(depth)
        } else {
            Sgemm::for_product(isa, [gemm_m, gemm_n, depth])
        };
        let sgemm = match pitched {
            Some(_) => sgemm.fit_depth_within(depth, PITCHED_MAX_DEPTH_BLOCK),
            None => sgemm,
        };
        let kernel = sgemm.kernel();
        let kc = sgemm.blocking().kc;
        let kept_lines = pitched_steps.is_some() && !pixel_rows && kernel.reads_whole_lines(ow);
        let [kh, kw] = shape.kernel_hw();
        // The weights are A (panels of MR output channels) when the output channels are the
        // rows of C, B (panels of NR) when they are its columns.
        let weights = (0..shape.groups())
            .map(|g| {
                let oihw = &request.weights()[g * kg * depth..(g + 1) * kg * depth];
                match shape.layout() {
                    Layout::Nchw => PackedPanels::new(
                        &StridedMatrix::new(oihw, depth, 1),
                        kg,
                        depth,
                        if pixel_rows { kernel.nr } else { kernel.mr },
                        kc,
                    ),
                    Layout::Nhwc => {
                        // Depth order (ky, kx, c) to match the NHWC lowering.
                        let mut reordered = Vec::with_capacity(oihw.len());
                        for m in 0..kg {
                            for tap in 0..kh * kw {
                                reordered
                                    .extend((0..cg).map(|c| oihw[(m * cg + c) * kh * kw + tap]));
                            }
                        }
                        PackedPanels::new(
                            &StridedMatrix::new(&reordered, depth, 1),
                            kg,
                            depth,
                            kernel.nr,
                            kc,
                        )
                    }
                }
            })
            .collect();
        let mut plan = Im2colPlan {
            shape,
            sgemm,
            weights,
            bias: request.bias().map(<[f32]>::to_vec),
            activation: request.activation(),
            window: Window::new(&shape),
            pointwise,
            pitched,
            pitched_taps,
            pitched_steps,
            pixel_rows,
            kept_lines,
            workers: rayon::current_num_threads(),
        };
        // Scratch blocks only for what is packed at run time: NCHW's weights are prepacked
        // and its padded copies read in place (where the step tables fit), else its B is
        // the input (packed: pointwise, per-row lowering); NHWC's B is the prepacked
        // weights, its A the input's rows in place (pointwise f32), widened as rows (pointwise
        // half) or the lowering (packed). A half-precision C is staged unless the
        // microkernels round it from their registers.
        let staged_c = converts && plan.sgemm.stages_half_c(plan.c_columns(), depth);
        plan.sgemm = plan.sgemm.with_packing(match shape.layout() {
            Layout::Nchw => Packing {
                a: false,
                b: plan.pitched_steps.is_none(),
                c: staged_c,
            },
            Layout::Nhwc => Packing {
                a: !pointwise || converts,
                b: false,
                c: staged_c,
            },
        });
        plan
    }

    /// Writes the zero-padded copy of output rows `rows` (with their halo) of every (image,
    /// group) of `images` into `padded`, one after another, in parallel over phase planes
    /// when there is enough of them to share (the stem's 3 channels are 12 of them: an even
    /// share for 2 or 3 workers).
    fn pad<T: F32Storage>(
        &self,
        input: &[T],
        pitched: Pitched,
        images: Range<usize>,
        rows: Range<usize>,
        padded: &mut [f32],
        parallel: bool,
    ) {
        let shape = &self.shape;
        let [h, w] = shape.input_hw();
        let image_len = shape.in_channels() * h * w;
        let input = &input[images.start * image_len..images.end * image_len];
        let geometry = PaddedPlanes {
            input_hw: [h, w],
            top_left: [shape.padding().top, shape.padding().left],
            pitch: pitched.pitch,
            stride: pitched.stride,
            first_line: rows.start * pitched.step[0],
            plane_len: pitched.plane_len(rows.len()),
        };
        let phases = pitched.stride[0] * pitched.stride[1];
        let channels = images.len() * shape.in_channels();
        let isa = self.sgemm.kernel().isa;
        let pad_phase = |(index, phase_plane): (usize, &mut [f32])| {
            let (channel, phase) = (index / phases, index % phases);
            let plane = &input[channel * h * w..(channel + 1) * h * w];
            geometry.pad_phase(isa, plane, phase, phase_plane);
        };
        let padded = &mut padded[..channels * phases * geometry.plane_len];
        if !parallel || padded.len() < PARALLEL_PADDING_MIN {
            padded
                .chunks_exact_mut(geometry.plane_len)
                .enumerate()
                .for_each(pad_phase);
        } else {
            padded
                .par_chunks_exact_mut(geometry.plane_len)
                .enumerate()
                .for_each(pad_phase);
        }
    }

    /// The lowered operand of image `n` (NCHW) or the batch (NHWC), group `g`; `padded`
    /// holds the padded copies of the wave starting at image `wave_first`, bands of
    /// `band_rows` output rows, when the plan is pitched.
    fn lowered<'a, T: F32Storage>(
        &'a self,
        input: &'a [T],
        padded: &'a [f32],
        (wave_first, band_rows): (usize, usize),
        n: usize,
        g: usize,
    ) -> Lowered<'a, T> {
        let shape = &self.shape;
        let [h, w] = shape.input_hw();
        let cg = shape.in_channels_per_group();
        match shape.layout() {
            Layout::Nchw => {
                let start = (n * shape.in_channels() + g * cg) * h * w;
                let planes = &input[start..start + cg * h * w];
                if let Some(pitched) = self.pitched {
                    let job = (n - wave_first) * shape.groups() + g;
                    let len = pitched.group_len(cg, band_rows);
                    let tables = self.pitched_steps.as_ref().map(|tables| {
                        if band_rows == pitched.band_rows {
                            &tables.full
                        } else {
                            &tables.last
                        }
                    });
                    if let Some(tables) = tables.filter(|_| self.pixel_rows) {
                        return Lowered::PixelRows(PixelRows(SteppedRows {
                            data: &padded[job * len..(job + 1) * len],
                            outer: &tables.pixels,
                            steps: &tables.steps,
                        }));
                    }
                    Lowered::Pitched(PitchedLowering {
                        padded: &padded[job * len..(job + 1) * len],
                        stepped: tables.map(|tables| (&padded[job * len..], &tables.steps[..])),
                        plane_len: pitched.plane_len(band_rows),
                        phases: pitched.stride[0] * pitched.stride[1],
                        taps: &self.pitched_taps,
                        kernel_hw: shape.kernel_hw(),
                        lines: self
                            .kept_lines
                            .then_some((pitched.pitch, shape.output_hw()[1])),
                    })
                } else if self.pointwise {
                    match T::as_f32(planes) {
                        Some(planes) => Lowered::Direct(StridedMatrix::new(planes, 1, h * w)),
                        None => Lowered::Widened(WidenedMatrix {
                            data: planes,
                            outer_stride: 1,
                            depth_stride: h * w,
                            isa: self.sgemm.kernel().isa,
                        }),
                    }
                } else {
                    Lowered::Nchw(NchwLowering {
                        input: planes,
                        window: self.window,
                        isa: self.sgemm.kernel().isa,
                    })
                }
            }
            Layout::Nhwc => {
                if self.pointwise {
                    let group = &input[g * cg..];
                    match T::as_f32(group) {
                        Some(group) => {
                            Lowered::Direct(StridedMatrix::new(group, shape.in_channels(), 1))
                        }
                        None => Lowered::Widened(WidenedMatrix {
                            data: group,
                            outer_stride: shape.in_channels(),
                            depth_stride: 1,
                            isa: self.sgemm.kernel().isa,
                        }),
                    }
                } else {
                    Lowered::Nhwc(NhwcLowering {
                        input,
                        channels: shape.in_channels(),
                        channel_offset: g * cg,
                        group_channels: cg,
                        window: self.window,
                    })
                }
            }
        }
    }

    /// Convolves output rows `rows` of `images` (all of them for NHWC) with one parallel GEMM
    /// run.
    fn run_wave<T: GemmOutput>(
        &self,
        input: &[T],
        padded: &[f32],
        (images, rows): (Range<usize>, Range<usize>),
        output: SharedOutput<T>,
        gemm_scratch: &mut [f32],
    ) {
        let jobs = WaveJobs {
            plan: self,
            input,
            padded,
            first: images.start,
            jobs: images.len() * self.shape.groups(),
            rows,
            out: output.get(),
        };
        // SAFETY: `run` checked the input and output lengths against the shape. Each job's
        // operands cover its m×k and n×k (weights packed for kg × depth; lowerings index the
        // input inside its checked length; pitched lowerings and pixel rows read only their
        // padded copy, see `PitchedLowering`). Job C regions: NCHW jobs own the planes of
        // image n, channels g·kg.. (kg rows of `pixels`; a pitched job of output rows `rows`
        // starts at row rows.start and its (R−1)·Wp + OW columns map to exactly those R·OW
        // pixels; with pixel rows, its R·OW rows are those pixels of kg planes `pixels`
        // apart, stored transposed); NHWC jobs own columns g·kg.. of every pixel row (stride
        // K): disjoint across jobs, inside `output`. Biases hold kg values. The scratch
        // holds at least one worker's blocks, and the plan's ISA was detected.
        unsafe { self.sgemm.run(&jobs, gemm_scratch) };
    }
}

/// The GEMMs of one wave, one per (image, group), built when the driver asks for them.
struct WaveJobs<'a, T> {
    plan: &'a Im2colPlan,
    input: &'a [T],
    padded: &'a [f32],
    /// First image of the wave.
    first: usize,
    jobs: usize,
    /// Output rows of the band.
    rows: Range<usize>,
    out: *mut T,
}

impl<T> WaveJobs<'_, T> {
    /// `[m, n, k]` of every job of the wave.
    fn job_shape(&self) -> [usize; 3] {
        let shape = &self.plan.shape;
        let [oh, ow] = shape.output_hw();
        let (kg, depth) = (shape.out_channels_per_group(), shape.reduction_len());
        match shape.layout() {
            Layout::Nchw => match self.plan.pitched {
                Some(_) if self.plan.pixel_rows => [self.rows.len() * ow, kg, depth],
                Some(_) if self.plan.kept_lines => [kg, self.rows.len() * ow, depth],
                Some(pitched) => [kg, (self.rows.len() - 1) * pitched.pitch + ow, depth],
                None => [kg, oh * ow, depth],
            },
            Layout::Nhwc => [shape.batch() * oh * ow, kg, depth],
        }
    }
}

impl<T: GemmOutput> GemmJobs for WaveJobs<'_, T> {
    fn count(&self) -> usize {
        self.jobs
    }

    fn common_shape(&self) -> Option<[usize; 3]> {
        Some(self.job_shape())
    }

    fn with_job(&self, index: usize, f: &mut dyn FnMut(&GemmJob<'_>)) {
        let WaveJobs {
            plan,
            input,
            padded,
            first,
            ref rows,
            out,
            ..
        } = *self;
        let shape = &plan.shape;
        let (groups, kg) = (shape.groups(), shape.out_channels_per_group());
        let [oh, ow] = shape.output_hw();
        let pixels = oh * ow;
        let [m, n_columns, depth] = self.job_shape();
        let (n, g) = (first + index / groups, index % groups);
        let lowered = plan.lowered(input, padded, (first, rows.len()), n, g);
        let lowered = &lowered;
        let bias = plan.bias.as_deref().map(|b| &b[g * kg..(g + 1) * kg]);
        let epilogue = |row_bias, col_bias| Epilogue {
            row_bias,
            col_bias,
            activation: plan.activation,
        };
        // SAFETY (pointer arithmetic): the offset is inside `output`, whose length the
        // caller checked against the shape.
        let nchw_c =
            out.wrapping_add((n * shape.out_channels() + g * kg) * pixels + rows.start * ow);
        let job = match shape.layout() {
            Layout::Nchw if plan.pixel_rows => GemmJob {
                m,
                n: n_columns,
                k: depth,
                a: lowered,
                b: &plan.weights[g],
                c: OutputTile {
                    ptr: T::output_ptr(nchw_c),
                    ldc: pixels,
                    columns: plan.c_columns(),
                },
                epilogue: epilogue(None, bias),
            },
            Layout::Nchw => GemmJob {
                m,
                n: n_columns,
                k: depth,
                a: &plan.weights[g],
                b: lowered,
                c: OutputTile {
                    ptr: T::output_ptr(nchw_c),
                    ldc: pixels,
                    columns: plan.c_columns(),
                },
                epilogue: epilogue(bias, None),
            },
            Layout::Nhwc => GemmJob {
                m,
                n: n_columns,
                k: depth,
                a: lowered,
                b: &plan.weights[g],
                c: OutputTile {
                    ptr: T::output_ptr(out.wrapping_add(g * kg)),
                    ldc: shape.out_channels(),
                    columns: plan.c_columns(),
                },
                epilogue: epilogue(None, bias),
            },
        };
        f(&job);
    }
}

impl<T: GemmOutput> ConvPlan<T> for Im2colPlan {
    fn shape(&self) -> &ConvShape {
        &self.shape
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Im2colGemm
    }

    fn isa(&self) -> Isa {
        self.sgemm.kernel().isa
    }

    fn scratch_len(&self) -> usize {
        let padded = self.pitched.map_or(0, |pitched| {
            let copy = pitched.wave
                * self.shape.groups()
                * pitched.group_len(self.shape.in_channels_per_group(), pitched.band_rows)
                + STEPPED_SLACK;
            match pitched.worker_bands {
                true => copy * self.shape.output_hw()[0].div_ceil(pitched.band_rows),
                false => copy,
            }
        });
        self.sgemm.scratch_len(self.workers) + padded
    }

    fn plan_bytes(&self) -> usize {
        self.weights.iter().map(PackedPanels::bytes).sum::<usize>()
            + self
                .bias
                .as_ref()
                .map_or(0, |b| b.len() * std::mem::size_of::<f32>())
    }

    fn execute(&self, input: &[T], output: &mut [T], scratch: &mut [f32]) {
        let shape = &self.shape;
        let images = match shape.layout() {
            Layout::Nchw => shape.batch(),
            Layout::Nhwc => 1,
        };
        let (gemm_scratch, padded) = scratch.split_at_mut(self.sgemm.scratch_len(self.workers));
        let oh = shape.output_hw()[0];
        let output = SharedOutput::new(output.as_mut_ptr());
        let Some(pitched) = self.pitched else {
            self.run_wave(input, &[], (0..images, 0..oh), output, gemm_scratch);
            return;
        };
        if pitched.worker_bands {
            let band_len = self.shape.groups()
                * pitched.group_len(self.shape.in_channels_per_group(), pitched.band_rows)
                + STEPPED_SLACK;
            gemm_scratch
                .par_chunks_mut(self.sgemm.scratch_per_worker())
                .zip(padded.par_chunks_mut(band_len))
                .enumerate()
                .for_each(|(band, (gemm_scratch, padded))| {
                    let rows = band * pitched.band_rows..((band + 1) * pitched.band_rows).min(oh);
                    self.pad(input, pitched, 0..1, rows.clone(), padded, false);
                    self.run_wave(input, &*padded, (0..1, rows), output, gemm_scratch);
                });
            return;
        }
        for first in (0..images).step_by(pitched.wave) {
            let wave_images = first..(first + pitched.wave).min(images);
            for band in (0..oh).step_by(pitched.band_rows) {
                let rows = band..(band + pitched.band_rows).min(oh);
                self.pad(
                    input,
                    pitched,
                    wave_images.clone(),
                    rows.clone(),
                    padded,
                    true,
                );
                self.run_wave(
                    input,
                    &*padded,
                    (wave_images.clone(), rows),
                    output,
                    gemm_scratch,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Pitched, l1_set_crowding};
    use convkit_core::{ConvSpec, Padding};

    #[test]
    fn one_image_is_shared_among_the_workers_in_bands_of_its_output_rows() {
        let stem = ConvSpec::new(1, 3, 64, [224, 224], [7, 7])
            .stride([2, 2])
            .padding(Padding::symmetric([3, 3]))
            .shape()
            .unwrap();
        let one = Pitched::plan(&stem, 1, true).unwrap();
        assert!(!one.worker_bands && one.band_rows == 112);
        let two = Pitched::plan(&stem, 2, true).unwrap();
        assert!(two.worker_bands && two.band_rows == 56 && two.wave == 1);
        let batch = ConvSpec::new(2, 3, 64, [224, 224], [7, 7])
            .stride([2, 2])
            .padding(Padding::symmetric([3, 3]))
            .shape()
            .unwrap();
        assert!(!Pitched::plan(&batch, 2, true).unwrap().worker_bands);
    }

    #[test]
    fn planes_of_a_multiple_of_4_kib_crowd_the_l1_sets() {
        // 224×224 values: 49 pages, every line in one set.
        assert_eq!(l1_set_crowding(224 * 224, 64), 16.0);
        // 112×112: 784 lines, a step of 16 sets, four sets in all.
        assert_eq!(l1_set_crowding(112 * 112, 64), 4.0);
        // 56×56: a step of 4 sets, sixteen sets: a fair share.
        assert_eq!(l1_set_crowding(56 * 56, 64), 1.0);
        // 28×28: 49 lines, every set.
        assert_eq!(l1_set_crowding(28 * 28, 64), 0.25);
    }
}
