//! `Algorithm::Im2colGemm`: convolution as a packed SGEMM over the lowered input.
//!
//! The workhorse: it takes every valid problem (any stride, dilation, padding, groups, batch,
//! NCHW or NHWC). Weights are packed once at plan time into the GEMM's panel order; at run
//! time the lowered input is packed block by block straight from the image
//! ([`lowering`](crate::lowering)), so the extra memory is the GEMM's per-worker blocks
//! (well under 2 MiB per thread), never the lowered matrix.
//!
//! | layout | A (broadcast side)        | B (vector side)            | C                 |
//! |--------|---------------------------|----------------------------|-------------------|
//! | NCHW   | weights, K/g × C/g·KH·KW  | lowered image, · × OH·OW   | `out[n][k][pixel]`, row bias |
//! | NHWC   | lowered batch, N·OH·OW × · | weights, K/g × KH·KW·C/g | `out[pixel][k]`, column bias |
//!
//! A 1x1 convolution with stride 1 and no padding needs no lowering: the GEMM reads the input
//! tensor itself as its operand.

mod lowering;

use convkit_core::{
    Accuracy, Activation, Algorithm, ConvAlgorithm, ConvError, ConvPlan, ConvShape, Cost, Isa,
    Layout, PlanRequest,
};
use convkit_gemm::{
    Epilogue, GemmJob, KernelShape, OutputTile, PackedPanels, PanelSource, Sgemm, StridedMatrix,
};
use lowering::{NchwLowering, NhwcLowering, Window};
use std::ops::Range;

/// The im2col+GEMM algorithm (f32).
#[derive(Clone, Copy, Debug, Default)]
pub struct Im2colGemm;

/// Throughput the cost model assumes per path (FLOP/s, one thread), from the bench.
fn estimated_flops_per_second(isa: Isa) -> f64 {
    match isa {
        Isa::Avx512 => 180e9,
        Isa::Avx2 => 100e9,
        _ => 15e9,
    }
}

impl ConvAlgorithm<f32> for Im2colGemm {
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
            seconds: shape.flops() as f64 / estimated_flops_per_second(isa),
        })
    }

    fn prepare(&self, request: &PlanRequest<'_, f32>) -> Result<Box<dyn ConvPlan<f32>>, ConvError> {
        Ok(Box::new(Im2colPlan::new(request)))
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
    workers: usize,
}

/// The lowered-input operand of one GEMM job.
enum Lowered<'a> {
    Direct(StridedMatrix<'a>),
    Nchw(NchwLowering<'a>),
    Nhwc(NhwcLowering<'a>),
}

impl PanelSource for Lowered<'_> {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        match self {
            Lowered::Direct(matrix) => matrix.pack(outer, depth, width, dst),
            Lowered::Nchw(lowering) => lowering.pack(outer, depth, width, dst),
            Lowered::Nhwc(lowering) => lowering.pack(outer, depth, width, dst),
        }
    }
}

impl Im2colPlan {
    fn new(request: &PlanRequest<'_, f32>) -> Im2colPlan {
        let shape = *request.shape();
        let (gemm_m, gemm_n) = match shape.layout() {
            Layout::Nchw => (
                shape.out_channels_per_group(),
                shape.output_hw()[0] * shape.output_hw()[1],
            ),
            Layout::Nhwc => (
                shape.batch() * shape.output_hw()[0] * shape.output_hw()[1],
                shape.out_channels_per_group(),
            ),
        };
        let sgemm = Sgemm::for_product(request.isa(), gemm_m, gemm_n);
        let kernel = sgemm.kernel();
        let kc = sgemm.blocking().kc;
        let (groups, kg, cg) = (
            shape.groups(),
            shape.out_channels_per_group(),
            shape.in_channels_per_group(),
        );
        let [kh, kw] = shape.kernel_hw();
        let depth = shape.reduction_len();
        let weights = (0..groups)
            .map(|g| {
                let oihw = &request.weights()[g * kg * depth..(g + 1) * kg * depth];
                match shape.layout() {
                    Layout::Nchw => PackedPanels::new(
                        &StridedMatrix::new(oihw, depth, 1),
                        kg,
                        depth,
                        kernel.mr,
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
        let padding = shape.padding();
        Im2colPlan {
            shape,
            sgemm,
            weights,
            bias: request.bias().map(<[f32]>::to_vec),
            activation: request.activation(),
            window: Window::new(&shape),
            pointwise: shape.kernel_hw() == [1, 1]
                && shape.stride() == [1, 1]
                && padding.top + padding.bottom + padding.left + padding.right == 0,
            workers: rayon::current_num_threads(),
        }
    }

    /// The lowered operand of image `n` (NCHW) or the batch (NHWC), group `g`.
    fn lowered<'a>(&self, input: &'a [f32], n: usize, g: usize) -> Lowered<'a> {
        let shape = &self.shape;
        let [h, w] = shape.input_hw();
        let cg = shape.in_channels_per_group();
        match shape.layout() {
            Layout::Nchw => {
                let start = (n * shape.in_channels() + g * cg) * h * w;
                let planes = &input[start..start + cg * h * w];
                if self.pointwise {
                    Lowered::Direct(StridedMatrix::new(planes, 1, h * w))
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
                    Lowered::Direct(StridedMatrix::new(&input[g * cg..], shape.in_channels(), 1))
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
}

impl ConvPlan<f32> for Im2colPlan {
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
        self.sgemm.scratch_len(self.workers)
    }

    fn plan_bytes(&self) -> usize {
        self.weights.iter().map(PackedPanels::bytes).sum::<usize>()
            + self
                .bias
                .as_ref()
                .map_or(0, |b| b.len() * std::mem::size_of::<f32>())
    }

    fn execute(&self, input: &[f32], output: &mut [f32], scratch: &mut [f32]) {
        let shape = &self.shape;
        let (groups, kg) = (shape.groups(), shape.out_channels_per_group());
        let [oh, ow] = shape.output_hw();
        let pixels = oh * ow;
        let depth = shape.reduction_len();
        let images = match shape.layout() {
            Layout::Nchw => shape.batch(),
            Layout::Nhwc => 1,
        };
        let lowered: Vec<Lowered<'_>> = (0..images)
            .flat_map(|n| (0..groups).map(move |g| (n, g)))
            .map(|(n, g)| self.lowered(input, n, g))
            .collect();
        let out = output.as_mut_ptr();
        let jobs: Vec<GemmJob<'_>> = lowered
            .iter()
            .enumerate()
            .map(|(index, lowered)| {
                let (n, g) = (index / groups, index % groups);
                let bias = self.bias.as_deref().map(|b| &b[g * kg..(g + 1) * kg]);
                let epilogue = |row_bias, col_bias| Epilogue {
                    row_bias,
                    col_bias,
                    activation: self.activation,
                };
                match shape.layout() {
                    Layout::Nchw => GemmJob {
                        m: kg,
                        n: pixels,
                        k: depth,
                        a: &self.weights[g],
                        b: lowered,
                        // SAFETY (pointer arithmetic): the offset is inside `output`, whose
                        // length the caller checked against the shape.
                        c: OutputTile {
                            ptr: out.wrapping_add((n * shape.out_channels() + g * kg) * pixels),
                            ldc: pixels,
                        },
                        epilogue: epilogue(bias, None),
                    },
                    Layout::Nhwc => GemmJob {
                        m: shape.batch() * pixels,
                        n: kg,
                        k: depth,
                        a: lowered,
                        b: &self.weights[g],
                        c: OutputTile {
                            ptr: out.wrapping_add(g * kg),
                            ldc: shape.out_channels(),
                        },
                        epilogue: epilogue(None, bias),
                    },
                }
            })
            .collect();
        // SAFETY: `run` checked the input and output lengths against the shape. Each job's
        // operands cover its m×k and n×k (weights packed for kg × depth; lowerings index the
        // input inside its checked length). Job C regions: NCHW jobs own the planes of image
        // n, channels g·kg.. (kg rows of `pixels`); NHWC jobs own columns g·kg.. of every
        // pixel row (stride K): disjoint across jobs, inside `output`. Biases hold kg values.
        // The scratch holds at least one worker's blocks, and the plan's ISA was detected.
        unsafe { self.sgemm.run(&jobs, scratch) };
    }
}
