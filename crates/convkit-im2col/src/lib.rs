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
//! the grid's dropped columns (a 7x7 image: 64 columns computed for 49 pixels), pixel rows
//! only to the tile's 6 or 7 rows (`docs/tuning.md`, pixel rows on small images).
//!
//! A 1x1 convolution with stride 1 and no padding needs no lowering: the GEMM reads the input
//! tensor itself as its operand (NCHW with few output channels: in place, not even packed).

mod cost;
mod jobs;
mod lowering;
mod plan;
mod strategy;

use convkit_core::{
    Accuracy, Algorithm, ConvAlgorithm, ConvError, ConvPlan, ConvShape, Cost, Isa, PlanRequest,
};
use convkit_gemm::KernelShape;
use convkit_simd::F32Storage;
use plan::Im2colPlan;

/// The im2col+GEMM algorithm: f32, or half-precision storage converted while packing (the
/// input widened as the padded copies or the panels are made, each task's part of the output
/// rounded once from f32, see `convkit_gemm::OutputPtr`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Im2colGemm;

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
                let workers =
                    convkit_gemm::threads_for(shape.flops().try_into().unwrap_or(usize::MAX));
                Ok(Cost::corrected(
                    cost::estimated_seconds(shape, isa, workers),
                    &cost::CORRECTION,
                    shape,
                ))
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
