//! Half-precision storage (`half::f16`, `half::bf16`) on an f32 algorithm that does not
//! convert while packing (`Direct`): inputs and weights widened to f32 (exactly: every f16 and bf16 is an f32), f32 accumulation by the
//! wrapped algorithm, the output rounded once to the storage type.
//!
//! Weights are widened once at plan time (then packed by the f32 algorithm as usual); the
//! input is widened and the output narrowed in parallel chunks at run time, f16 with the F16C
//! instructions where the CPU has them (through `half`'s slice conversions). The scratch holds
//! the widened input and the f32 output besides the wrapped plan's own.

use convkit_core::{
    Accuracy, Algorithm, ConvAlgorithm, ConvError, ConvPlan, ConvShape, Cost, Isa, PlanRequest,
};
use convkit_simd::F32Storage;
use rayon::prelude::*;

/// Elements converted per parallel task (below it, on the calling thread).
const CONVERSION_CHUNK: usize = 1 << 15;

/// An f32 algorithm serving a half-precision storage type.
#[derive(Clone, Copy, Debug)]
pub struct Widened<A>(pub A);

impl<T: F32Storage, A: ConvAlgorithm<f32>> ConvAlgorithm<T> for Widened<A> {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }

    fn isas(&self) -> &'static [Isa] {
        self.0.isas()
    }

    fn accuracy(&self, shape: &ConvShape) -> Accuracy {
        // The inputs widen exactly; the one rounding to T is the checker's own allowance.
        self.0.accuracy(shape)
    }

    fn cost(&self, shape: &ConvShape, isa: Isa) -> Result<Cost, ConvError> {
        let inner = self.0.cost(shape, isa)?;
        // Widening and narrowing: about a nanosecond per 4 elements on one thread.
        let converted = (shape.input_len() + shape.output_len()) as f64;
        Ok(Cost {
            seconds: inner.seconds + converted * 0.25e-9,
        })
    }

    fn prepare(&self, request: &PlanRequest<'_, T>) -> Result<Box<dyn ConvPlan<T>>, ConvError> {
        let weights = T::widen_vec(request.weights());
        let bias = request.bias().map(T::widen_vec);
        let spec = request.shape().spec();
        let inner_request = PlanRequest::new(
            spec,
            &weights,
            bias.as_deref(),
            request.activation(),
            request.isa(),
        )?;
        Ok(Box::new(WidenedPlan {
            inner: self.0.prepare(&inner_request)?,
        }))
    }
}

/// A prepared f32 plan behind half-precision buffers.
struct WidenedPlan {
    inner: Box<dyn ConvPlan<f32>>,
}

impl<T: F32Storage> ConvPlan<T> for WidenedPlan {
    fn shape(&self) -> &ConvShape {
        self.inner.shape()
    }

    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }

    fn isa(&self) -> Isa {
        self.inner.isa()
    }

    fn scratch_len(&self) -> usize {
        let shape = self.inner.shape();
        shape.input_len() + shape.output_len() + self.inner.scratch_len()
    }

    fn plan_bytes(&self) -> usize {
        self.inner.plan_bytes()
    }

    fn execute(&self, input: &[T], output: &mut [T], scratch: &mut [f32]) {
        let shape = self.inner.shape();
        let (wide_input, rest) = scratch.split_at_mut(shape.input_len());
        let (wide_output, inner_scratch) = rest.split_at_mut(shape.output_len());
        wide_input
            .par_chunks_mut(CONVERSION_CHUNK)
            .zip(input.par_chunks(CONVERSION_CHUNK))
            .for_each(|(wide, narrow)| T::widen(narrow, wide));
        self.inner.execute(wide_input, wide_output, inner_scratch);
        output
            .par_chunks_mut(CONVERSION_CHUNK)
            .zip(wide_output.par_chunks(CONVERSION_CHUNK))
            .for_each(|(narrow, wide)| T::narrow(wide, narrow));
    }
}
