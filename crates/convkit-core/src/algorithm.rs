//! The seam between the planner and the algorithms: [`ConvAlgorithm`] describes and prepares,
//! [`ConvPlan`] runs.

use crate::cost::Cost;
use crate::{Activation, ConvError, ConvShape, ConvSpec, Element, Isa};

/// Which convolution algorithm to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Let the planner choose the fastest algorithm that supports the problem.
    Auto,
    /// The naive loops of `convkit-reference`: the definition of correct, not fast.
    Reference,
    /// Register-blocked direct convolution.
    Direct,
    /// Lowering to a packed matrix multiplication.
    Im2colGemm,
    /// Winograd F(2x2, 3x3), and F(2, 3) along rows for 1x3 kernels (stride 2 through a
    /// polyphase split with F(2, 2)).
    WinogradF2,
    /// Winograd F(4x4, 3x3), and F(4, 3) along rows for 1x3 kernels (stride 2 through a
    /// polyphase split with F(4, 2)).
    WinogradF4,
    /// Winograd F(6x6, 3x3), and F(6, 3) along rows for 1x3 kernels (stride 2 through a
    /// polyphase split with F(6, 2)).
    WinogradF6,
}

impl Algorithm {
    /// Every concrete algorithm (everything but `Auto`).
    pub const CONCRETE: [Algorithm; 6] = [
        Algorithm::Reference,
        Algorithm::Direct,
        Algorithm::Im2colGemm,
        Algorithm::WinogradF2,
        Algorithm::WinogradF4,
        Algorithm::WinogradF6,
    ];

    /// Short name used in reports and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Auto => "auto",
            Algorithm::Reference => "reference",
            Algorithm::Direct => "direct",
            Algorithm::Im2colGemm => "im2col-gemm",
            Algorithm::WinogradF2 => "winograd-f2",
            Algorithm::WinogradF4 => "winograd-f4",
            Algorithm::WinogradF6 => "winograd-f6",
        }
    }

    /// Parses [`Algorithm::name`] back.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        std::iter::once(Algorithm::Auto)
            .chain(Algorithm::CONCRETE)
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// The accuracy an algorithm declares for a shape: what the conformance harness holds it to.
///
/// Per output, `|y − exact| ≤ relative_bound · (Σ|x·w| + |bias|)`, plus one rounding to the
/// storage type. The bound comes from an error analysis of the algorithm, never from tuning.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    /// Bound on the error relative to `Σ|x·w| + |bias|`.
    pub relative_bound: f64,
    /// Whether integer-valued inputs whose sums are exactly representable give bit-exact
    /// results (true for any method that only adds exact products).
    pub exact_on_integers: bool,
    /// Pixels beyond the window, on every side, that the computation of an output mixes in
    /// and cancels (Winograd: the rest of its tile, `m − 1`); 0 for methods that only sum the
    /// window's products. With a halo, the bound's scale is the larger of `Σ|x·w|` and the
    /// typical window magnitude of the widened neighborhood, so an output whose own window is
    /// (nearly) all zeros is still held to the scale of the data its tile cancelled; and an
    /// infinity or NaN anywhere in that neighborhood may turn this output into NaN (the
    /// transforms add and subtract the whole tile), where the direct definition would keep it
    /// finite.
    pub halo: usize,
}

impl Accuracy {
    /// Recursive (or blocked) summation of `terms` products in a precision with unit roundoff
    /// `unit_roundoff`: Higham's `γ_n = n·u / (1 − n·u)`. Exact on integer data.
    pub fn summation(terms: usize, unit_roundoff: f64) -> Accuracy {
        let nu = terms as f64 * unit_roundoff;
        Accuracy {
            relative_bound: if nu < 1.0 {
                nu / (1.0 - nu)
            } else {
                f64::INFINITY
            },
            exact_on_integers: true,
            halo: 0,
        }
    }
}

/// A validated request to prepare a plan: shape, weights, bias, epilogue and ISA.
///
/// Built only by [`PlanRequest::new`], which checks every length, so algorithms can rely on it.
#[derive(Clone, Copy, Debug)]
pub struct PlanRequest<'a, T> {
    shape: ConvShape,
    weights: &'a [T],
    bias: Option<&'a [T]>,
    activation: Activation,
    isa: Isa,
}

impl<'a, T: Element> PlanRequest<'a, T> {
    /// Validates the spec, the OIHW weight length, the bias length and the activation.
    pub fn new(
        spec: &ConvSpec,
        weights: &'a [T],
        bias: Option<&'a [T]>,
        activation: Activation,
        isa: Isa,
    ) -> Result<PlanRequest<'a, T>, ConvError> {
        let shape = spec.shape()?;
        check_len("weights", shape.weight_len(), weights.len())?;
        if let Some(bias) = bias {
            check_len("bias", shape.bias_len(), bias.len())?;
        }
        Ok(PlanRequest {
            shape,
            weights,
            bias,
            activation: activation.validate()?,
            isa,
        })
    }

    /// The validated shape.
    pub fn shape(&self) -> &ConvShape {
        &self.shape
    }
    /// OIHW weights, `shape.weight_len()` elements.
    pub fn weights(&self) -> &'a [T] {
        self.weights
    }
    /// One bias per output channel, if any.
    pub fn bias(&self) -> Option<&'a [T]> {
        self.bias
    }
    /// The activation applied after the bias.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// The instruction-set path the plan must use (already checked to exist on this CPU).
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// `Err(BufferLength)` unless `actual == expected`.
pub(crate) fn check_len(
    buffer: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), ConvError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ConvError::BufferLength {
            buffer,
            expected,
            actual,
        })
    }
}

/// A convolution algorithm: says what it supports and how well, and prepares plans.
pub trait ConvAlgorithm<T: Element>: Send + Sync {
    /// Which algorithm this is.
    fn algorithm(&self) -> Algorithm;

    /// The instruction-set paths this algorithm has code for. The planner intersects it with
    /// what the CPU has.
    fn isas(&self) -> &'static [Isa];

    /// The error bound this algorithm guarantees on `shape` (see [`Accuracy`]).
    fn accuracy(&self, shape: &ConvShape) -> Accuracy;

    /// Estimated cost on `shape` with `isa`, or `ConvError::Unsupported` with the reason.
    fn cost(&self, shape: &ConvShape, isa: Isa) -> Result<Cost, ConvError>;

    /// Packs or transforms the weights once and returns a plan that can run many times.
    fn prepare(&self, request: &PlanRequest<'_, T>) -> Result<Box<dyn ConvPlan<T>>, ConvError>;
}

/// A prepared convolution: weights packed, ISA fixed. Runs many times into caller buffers.
pub trait ConvPlan<T: Element>: Send + Sync {
    /// The shape it was prepared for.
    fn shape(&self) -> &ConvShape;
    /// The algorithm that runs.
    fn algorithm(&self) -> Algorithm;
    /// The instruction-set path that runs.
    fn isa(&self) -> Isa;
    /// f32 elements of scratch `execute` needs (0 when none).
    fn scratch_len(&self) -> usize;
    /// Bytes the plan itself holds (packed or transformed weights, bias, tables).
    fn plan_bytes(&self) -> usize;

    /// Computes the convolution. The caller guarantees `input.len() == shape().input_len()`,
    /// `output.len() == shape().output_len()` and `scratch.len() >= scratch_len()`; every
    /// output element is written and scratch contents are not assumed. Parallel work runs in
    /// the caller's current rayon pool.
    fn execute(&self, input: &[T], output: &mut [T], scratch: &mut [f32]);

    /// [`ConvPlan::execute`] after checking every buffer length; on error nothing is written.
    fn run(&self, input: &[T], output: &mut [T], scratch: &mut [f32]) -> Result<(), ConvError> {
        let shape = self.shape();
        check_len("input", shape.input_len(), input.len())?;
        check_len("output", shape.output_len(), output.len())?;
        if scratch.len() < self.scratch_len() {
            return Err(ConvError::BufferLength {
                buffer: "scratch",
                expected: self.scratch_len(),
                actual: scratch.len(),
            });
        }
        self.execute(input, output, scratch);
        Ok(())
    }
}
