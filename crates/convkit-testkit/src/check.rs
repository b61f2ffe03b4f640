//! The oracle: one algorithm, one ISA path, one problem, against the f64 reference.

use crate::{ConvProblem, Values};
use convkit_core::{
    Accuracy, Activation, ConvAlgorithm, ConvError, ConvShape, Element, Isa, PlanRequest,
};
use convkit_reference::{ExactOutput, Neighborhood, exact_output, neighborhood};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::fmt;

/// What a passing check measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckReport {
    /// Outputs compared.
    pub outputs: usize,
    /// Largest `|y − exact|` over all outputs.
    pub max_abs_error: f64,
    /// Largest `|y − exact| / (Σ|x·w| + |bias|)`: the figure the bench reports.
    pub max_relative_error: f64,
    /// Largest error as a fraction of the allowed bound (≤ 1 when passing).
    pub max_bound_use: f64,
}

impl CheckReport {
    /// A report of `outputs` outputs with no error seen yet.
    pub const fn empty(outputs: usize) -> CheckReport {
        CheckReport {
            outputs,
            max_abs_error: 0.0,
            max_relative_error: 0.0,
            max_bound_use: 0.0,
        }
    }

    /// The report over both parts: outputs added, worst cases kept.
    pub fn merge(self, other: CheckReport) -> CheckReport {
        CheckReport {
            outputs: self.outputs + other.outputs,
            max_abs_error: self.max_abs_error.max(other.max_abs_error),
            max_relative_error: self.max_relative_error.max(other.max_relative_error),
            max_bound_use: self.max_bound_use.max(other.max_bound_use),
        }
    }
}

/// Result of a check that did not fail.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckOutcome {
    /// Every output within bound (and bit-exact where required).
    Passed(CheckReport),
    /// The algorithm declines this problem, with its reason.
    Unsupported(String),
    /// The algorithm has no code for this ISA path (another path covers it).
    NoPathFor(Isa),
}

/// A failed check: what went wrong, on which problem.
#[derive(Clone, Debug)]
pub struct CheckFailure {
    /// The human-readable reason.
    pub message: String,
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CheckFailure {}

fn fail(message: String) -> CheckFailure {
    CheckFailure { message }
}

/// Runs `algorithm` on `isa` for `problem` with element type `T` and checks every output.
///
/// The output starts NaN-filled and the scratch NaN-filled, so an unwritten output or a
/// scratch assumed zeroed shows up; the plan is run twice and must give identical bits.
pub fn check_impl<T: Element>(
    algorithm: &dyn ConvAlgorithm<T>,
    isa: Isa,
    problem: &ConvProblem,
) -> Result<CheckOutcome, CheckFailure> {
    check_with(algorithm, isa, problem, None)
}

/// [`check_impl`] for every algorithm in `algorithms` on every path in `isas`, computing the
/// f64 reference of the problem once and comparing every run with it (the reference costs
/// far more than the runs). Outcomes in the order `algorithms × isas`; the first failure
/// ends the check.
pub fn check_algorithms<T: Element>(
    algorithms: &[&dyn ConvAlgorithm<T>],
    isas: &[Isa],
    problem: &ConvProblem,
) -> Result<Vec<CheckOutcome>, CheckFailure> {
    let shape = problem.shape();
    let input = problem.input::<T>();
    let weights = problem.weights::<T>();
    let bias = problem.bias::<T>();
    let reference: Vec<ExactOutput> = (0..shape.output_len())
        .into_par_iter()
        .map(|index| {
            exact_output(
                &shape,
                &input,
                &weights,
                bias.as_deref(),
                shape.output_coords(index),
            )
        })
        .collect();
    let mut outcomes = Vec::new();
    for &algorithm in algorithms {
        for &isa in isas {
            outcomes.push(check_with(algorithm, isa, problem, Some(&reference))?);
        }
    }
    Ok(outcomes)
}

/// [`check_impl`] with the exact outputs given (`Some`) or computed as needed (`None`).
fn check_with<T: Element>(
    algorithm: &dyn ConvAlgorithm<T>,
    isa: Isa,
    problem: &ConvProblem,
    reference: Option<&[ExactOutput]>,
) -> Result<CheckOutcome, CheckFailure> {
    let context = |what: String| {
        fail(format!(
            "{} on {isa} with {}: {what}\nproblem: {problem:?}",
            algorithm.algorithm().name(),
            T::NAME
        ))
    };
    if convkit_simd::resolve(algorithm.isas(), isa) != isa {
        return Ok(CheckOutcome::NoPathFor(isa));
    }
    let shape = problem.shape();
    let unsupported = |error: ConvError| match error {
        ConvError::Unsupported { reason, .. } => Ok(CheckOutcome::Unsupported(reason)),
        other => Err(context(format!("unexpected error {other}"))),
    };
    if let Err(error) = algorithm.cost(&shape, isa) {
        return unsupported(error);
    }

    let input = problem.input::<T>();
    let weights = problem.weights::<T>();
    let bias = problem.bias::<T>();
    let request = PlanRequest::new(
        &problem.spec,
        &weights,
        bias.as_deref(),
        problem.activation,
        isa,
    )
    .map_err(|e| context(format!("plan request rejected: {e}")))?;
    let plan = match algorithm.prepare(&request) {
        Ok(plan) => plan,
        Err(error) => return unsupported(error),
    };
    if plan.isa() != isa || plan.algorithm() != algorithm.algorithm() {
        return Err(context(format!(
            "plan reports {:?} on {}",
            plan.algorithm(),
            plan.isa()
        )));
    }

    let mut output = vec![T::nan(); shape.output_len()];
    let mut scratch = vec![f32::NAN; plan.scratch_len()];
    plan.run(&input, &mut output, &mut scratch)
        .map_err(|e| context(format!("run failed: {e}")))?;
    let accuracy = algorithm.accuracy(&shape);
    let expectation = Expectation {
        activation: problem.activation,
        accuracy,
        integer_data: problem.values == Values::Integer,
    };
    let exact = |index: usize| match reference {
        Some(exact) => exact[index],
        None => exact_output(
            &shape,
            &input,
            &weights,
            bias.as_deref(),
            shape.output_coords(index),
        ),
    };
    let around = |index: usize| {
        let coords = shape.output_coords(index);
        neighborhood(&shape, &input, &weights, coords, accuracy.halo)
    };
    let report =
        compare(&shape, exact, &around, expectation, &output).map_err(|e| context(e.message))?;

    let mut again = vec![T::nan(); shape.output_len()];
    scratch.fill(f32::NAN);
    plan.run(&input, &mut again, &mut scratch)
        .map_err(|e| context(format!("second run failed: {e}")))?;
    if let Some(index) = (0..output.len()).find(|&i| !same_bits(output[i], again[i])) {
        return Err(context(format!(
            "second run differs at output {index} {:?}: {:?} then {:?}",
            shape.output_coords(index),
            output[index],
            again[index]
        )));
    }
    Ok(CheckOutcome::Passed(report))
}

fn same_bits<T: Element>(a: T, b: T) -> bool {
    a.to_f64_exact().to_bits() == b.to_f64_exact().to_bits()
}

/// Compares computed `output` with the f64 reference, output by output.
///
/// Allowed error: `accuracy.relative_bound · L · (Σ|x·w| + |bias|)` where `L` is the
/// activation's Lipschitz constant, plus one rounding to `T` (`u_T·|exact|` and half a
/// subnormal). With `integer_data` and an exact algorithm, each output must equal the exact
/// value rounded once to `T`. NaN must match NaN, infinities must match exactly.
#[allow(clippy::too_many_arguments)]
pub fn compare_with_reference<T: Element>(
    shape: &ConvShape,
    input: &[T],
    weights: &[T],
    bias: Option<&[T]>,
    activation: Activation,
    accuracy: Accuracy,
    integer_data: bool,
    output: &[T],
) -> Result<CheckReport, CheckFailure> {
    let expectation = Expectation {
        activation,
        accuracy,
        integer_data,
    };
    let around = |index: usize| {
        neighborhood(
            shape,
            input,
            weights,
            shape.output_coords(index),
            accuracy.halo,
        )
    };
    compare(
        shape,
        |index| exact_output(shape, input, weights, bias, shape.output_coords(index)),
        &around,
        expectation,
        output,
    )
}

/// What the outputs of a check must satisfy.
#[derive(Clone, Copy, Debug)]
struct Expectation {
    activation: Activation,
    accuracy: Accuracy,
    integer_data: bool,
}

/// [`compare_with_reference`] with the exact output of each index from `exact`. With a halo
/// in the accuracy, an output beyond the bound at its window's scale is held to the larger
/// scale of its neighborhood (`neighborhood`, computed only then: it costs a wider window).
fn compare<T: Element>(
    shape: &ConvShape,
    exact: impl Fn(usize) -> ExactOutput + Sync,
    neighborhood: &(dyn Fn(usize) -> Neighborhood + Sync),
    Expectation {
        activation,
        accuracy,
        integer_data,
    }: Expectation,
    output: &[T],
) -> Result<CheckReport, CheckFailure> {
    let lipschitz = match activation {
        Activation::LeakyRelu(slope) => f64::from(slope.abs()).max(1.0),
        _ => 1.0,
    };
    // Outputs are independent: compare chunks in parallel, then merge the worst cases.
    const CHUNK: usize = 256;
    let reports = output
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(chunk, values)| {
            let mut report = CheckReport::empty(values.len());
            for (offset, &computed) in values.iter().enumerate() {
                let index = chunk * CHUNK + offset;
                let coords = shape.output_coords(index);
                let exact = exact(index);
                let expected = activation.apply_f64(exact.sum);
                let got = computed.to_f64_exact();
                let where_ = || format!("output {index} (n, k, y, x) = {coords:?}");
                // A finite exact value beyond T's range correctly rounds to infinity.
                let rounded = T::from_f64_rounded(expected).to_f64_exact();
                let expected = if rounded.is_infinite() {
                    rounded
                } else {
                    expected
                };
                if !expected.is_finite() || !got.is_finite() {
                    let agree = (expected.is_nan() && got.is_nan()) || expected == got;
                    // A tile method mixes a non-finite input into every output of its tile, and
                    // `Inf − Inf` there is NaN even where the direct sum is ±Inf: NaN is
                    // accepted where the neighborhood holds one.
                    let spread =
                        got.is_nan() && accuracy.halo > 0 && neighborhood(index).non_finite;
                    if !agree && !spread {
                        return Err(fail(format!(
                            "{}: got {got}, expected {expected}",
                            where_()
                        )));
                    }
                    continue;
                }
                let error = (got - expected).abs();
                let bound_at = |scale: f64| {
                    accuracy.relative_bound * lipschitz * scale
                        + T::UNIT_ROUNDOFF * expected.abs()
                        + T::MIN_POSITIVE_SUBNORMAL
                };
                // A NaN bound must fail too, hence no plain `error > bound`.
                let exceeds = |bound: f64| error.partial_cmp(&bound).is_none_or(Ordering::is_gt);
                let mut scale = exact.magnitude;
                let mut bound = bound_at(scale);
                if exceeds(bound) && accuracy.halo > 0 {
                    // Over the finite values only: a finite output next to a NaN input still
                    // carries just the rounding of the finite data it mixes.
                    scale = scale.max(neighborhood(index).magnitude);
                    bound = bound_at(scale);
                }
                if exceeds(bound) {
                    return Err(fail(format!(
                        "{}: got {got:e}, expected {expected:e}, error {error:e} exceeds bound \
                         {bound:e} (scale {scale:e}, Σ|x·w| = {:e}, relative bound {:e})",
                        where_(),
                        exact.magnitude,
                        accuracy.relative_bound
                    )));
                }
                if integer_data && accuracy.exact_on_integers {
                    let rounded = T::from_f64_rounded(expected).to_f64_exact();
                    if got != rounded {
                        return Err(fail(format!(
                            "{}: integer data must be exact: got {got}, expected {rounded}",
                            where_()
                        )));
                    }
                }
                report.max_abs_error = report.max_abs_error.max(error);
                if scale > 0.0 {
                    report.max_relative_error = report.max_relative_error.max(error / scale);
                }
                report.max_bound_use = report.max_bound_use.max(error / bound);
            }
            Ok(report)
        })
        .collect::<Result<Vec<CheckReport>, CheckFailure>>()?;
    Ok(reports
        .into_iter()
        .fold(CheckReport::empty(0), CheckReport::merge))
}
