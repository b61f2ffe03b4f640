//! Hand-computed convolutions: a spec, its data and the outputs it must give, checked on
//! every algorithm and path in both layouts.

use crate::CheckFailure;
use crate::helpers::nchw_to_nhwc;
use convkit_core::{Activation, ConvAlgorithm, ConvError, ConvSpec, Isa, Layout, PlanRequest};

/// A hand-computed convolution (data in NCHW order).
#[derive(Clone, Copy, Debug)]
pub struct GoldenCase<'a> {
    /// The convolution (its layout is replaced by each one checked).
    pub spec: ConvSpec,
    /// The input, NCHW.
    pub input: &'a [f32],
    /// The weights, OIHW.
    pub weights: &'a [f32],
    /// The bias, if any.
    pub bias: Option<&'a [f32]>,
    /// The fused activation.
    pub activation: Activation,
    /// The outputs, NCHW.
    pub expected: &'a [f32],
}

/// Runs `case` with every algorithm on every path of `isas` (where the algorithm has one), in
/// NCHW and NHWC (the data reordered), into NaN-filled output and scratch. Algorithms exact on
/// integers must give exactly `expected`; the others (Winograd) must be within their relative
/// bound of the largest output. Algorithms that decline the problem are skipped. Returns how
/// many runs were checked.
pub fn check_golden(
    algorithms: &[&dyn ConvAlgorithm<f32>],
    isas: &[Isa],
    case: &GoldenCase<'_>,
) -> Result<usize, CheckFailure> {
    let fail = |message: String| CheckFailure { message };
    let shape = case
        .spec
        .shape()
        .map_err(|e| fail(format!("golden spec: {e}")))?;
    if case.expected.len() != shape.output_len() {
        return Err(fail(format!(
            "golden table has {} outputs, the spec {}",
            case.expected.len(),
            shape.output_len()
        )));
    }
    let [oh, ow] = shape.output_hw();
    let [ih, iw] = shape.input_hw();
    let (n, c, k) = (shape.batch(), shape.in_channels(), shape.out_channels());
    let mut checked = 0;
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let (input, expected) = match layout {
            Layout::Nchw => (case.input.to_vec(), case.expected.to_vec()),
            Layout::Nhwc => (
                nchw_to_nhwc(case.input, [n, c, ih, iw]),
                nchw_to_nhwc(case.expected, [n, k, oh, ow]),
            ),
        };
        let spec = case.spec.layout(layout);
        for &algorithm in algorithms {
            for &isa in isas {
                if convkit_simd::resolve(algorithm.isas(), isa) != isa {
                    continue;
                }
                let name = algorithm.algorithm().name();
                let context = |what: String| fail(format!("{name} on {isa} ({layout:?}): {what}"));
                let request =
                    PlanRequest::new(&spec, case.weights, case.bias, case.activation, isa)
                        .map_err(|e| context(format!("request rejected: {e}")))?;
                let plan = match algorithm.prepare(&request) {
                    Ok(plan) => plan,
                    Err(ConvError::Unsupported { .. }) => continue,
                    Err(e) => return Err(context(e.to_string())),
                };
                let mut output = vec![f32::NAN; expected.len()];
                let mut scratch = vec![f32::NAN; plan.scratch_len()];
                plan.run(&input, &mut output, &mut scratch)
                    .map_err(|e| context(format!("run failed: {e}")))?;
                let accuracy = algorithm.accuracy(&shape);
                let tolerance = if accuracy.exact_on_integers {
                    0.0
                } else {
                    let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    accuracy.relative_bound as f32 * scale
                };
                // A NaN output (never written, or computed) is wrong too.
                let within = |got: f32, want: f32| (got - want).abs() <= tolerance;
                let wrong = output
                    .iter()
                    .zip(&expected)
                    .position(|(&got, &want)| !within(got, want));
                if let Some(index) = wrong {
                    return Err(context(format!(
                        "output {index}: {} instead of {} (tolerance {tolerance})",
                        output[index], expected[index]
                    )));
                }
                checked += 1;
            }
        }
    }
    Ok(checked)
}
