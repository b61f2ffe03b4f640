//! The GEMM jobs of a run: per (image, group) the lowered operand of the plan's strategy
//! ([`Lowered`]), and one parallel GEMM run per wave of images or band of rows.

use crate::lowering::{NchwLowering, NhwcLowering, PitchedLowering, PixelRows, WidenedMatrix};
use crate::plan::Im2colPlan;
use crate::strategy::{GridRead, Strategy};
use convkit_core::Layout;
use convkit_gemm::{
    Epilogue, GemmJob, GemmJobs, GemmOutput, OutputTile, PanelSource, SteppedRows, StridedMatrix,
};
use convkit_simd::{F32Storage, SharedOutput};
use std::ops::Range;

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
        let isa = self.sgemm.kernel().isa;
        // The group's first input channel of image `n` (NCHW).
        let planes = || {
            let start = (n * shape.in_channels() + g * cg) * h * w;
            &input[start..start + cg * h * w]
        };
        // Job `(n, g)`'s padded copy among the wave's: from `job·len` on.
        let job = (n - wave_first) * shape.groups() + g;
        match &self.strategy {
            Strategy::PixelRows { pitched, tables } => {
                let tables = tables.for_band(pitched, band_rows);
                let len = pitched.group_len(cg, band_rows);
                Lowered::PixelRows(PixelRows(SteppedRows {
                    data: &padded[job * len..(job + 1) * len],
                    outer: &tables.pixels,
                    steps: &tables.steps,
                }))
            }
            Strategy::GridColumns {
                pitched,
                taps,
                read,
            } => {
                let len = pitched.group_len(cg, band_rows);
                let (stepped, kept_lines) = match read {
                    GridRead::InPlace { tables, kept_lines } => (
                        Some((
                            &padded[job * len..],
                            &tables.for_band(pitched, band_rows).steps[..],
                        )),
                        *kept_lines,
                    ),
                    GridRead::Packed => (None, false),
                };
                Lowered::Pitched(PitchedLowering {
                    padded: &padded[job * len..(job + 1) * len],
                    stepped,
                    plane_len: pitched.plane_len(band_rows),
                    phases: pitched.stride[0] * pitched.stride[1],
                    taps,
                    kernel_hw: shape.kernel_hw(),
                    lines: kept_lines.then_some((pitched.pitch, shape.output_hw()[1])),
                })
            }
            Strategy::Pointwise => {
                // NCHW: depth (channels) a plane apart; NHWC: the group's channels of each
                // pixel row, contiguous.
                let (data, outer_stride, depth_stride) = match shape.layout() {
                    Layout::Nchw => (planes(), 1, h * w),
                    Layout::Nhwc => (&input[g * cg..], shape.in_channels(), 1),
                };
                match T::as_f32(data) {
                    Some(data) => {
                        Lowered::Direct(StridedMatrix::new(data, outer_stride, depth_stride))
                    }
                    None => Lowered::Widened(WidenedMatrix {
                        data,
                        outer_stride,
                        depth_stride,
                        isa,
                    }),
                }
            }
            Strategy::Subsampled => {
                // `padded` holds image `n`'s subsampled planes: the group's from g·cg on.
                let pixels = shape.output_hw()[0] * shape.output_hw()[1];
                let copy = &padded[g * cg * pixels..(g + 1) * cg * pixels];
                Lowered::Direct(StridedMatrix::new(copy, 1, pixels))
            }
            Strategy::NchwPacked => Lowered::Nchw(NchwLowering {
                input: planes(),
                window: self.window,
                isa,
            }),
            Strategy::NhwcPacked => Lowered::Nhwc(NhwcLowering {
                input,
                channels: shape.in_channels(),
                channel_offset: g * cg,
                group_channels: cg,
                window: self.window,
            }),
        }
    }

    /// Convolves output rows `rows` of `images` (all of them for NHWC) with one parallel GEMM
    /// run.
    pub(crate) fn run_wave<T: GemmOutput>(
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
        self.plan
            .strategy
            .job_shape(&self.plan.shape, self.rows.len())
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
            Layout::Nchw if matches!(plan.strategy, Strategy::PixelRows { .. }) => GemmJob {
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
