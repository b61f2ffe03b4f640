//! The reference gradients against the reference forward convolution, on generated problems.
//!
//! - The adjoint identities `<conv(x, w), dy> = <x, backward_data(dy, w)> = <w,
//!   backward_weights(x, dy)>` and `Σ dy[.., k, ..] = db[k]`: bit for bit on integer data
//!   (every product and sum is an integer far below 2^53, exact in f64), within f64's
//!   summation bound over `Σ|x·w·dy|` on real data.
//! - The transposed convolution of the forward's output size, with the output padding that
//!   recovers the forward's input size, is the forward's backward-data: the same sums.
//! - Finite differences: the convolution is linear in `x` and in `w`, so moving one input
//!   (or weight) by 1 moves `<conv(x, w), dy>` by exactly its gradient, on integer data.

use convkit_core::{ConvShape, TransposedSpec};
use convkit_reference::backward::{backward_data, backward_weights};
use convkit_reference::exact_output;
use convkit_reference::transposed::transposed_output;
use convkit_testkit::{ConvProblem, Values, conv_problem};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `<conv(x, w), dy>` without the bias, and `Σ|x·w·dy|`.
fn forward_dot(
    shape: &ConvShape,
    input: &[f64],
    weights: &[f64],
    grad_output: &[f64],
) -> (f64, f64) {
    (0..shape.output_len()).fold((0.0, 0.0), |(sum, magnitude), index| {
        let exact = exact_output(shape, input, weights, None, shape.output_coords(index));
        let dy = grad_output[index];
        (sum + exact.sum * dy, magnitude + exact.magnitude * dy.abs())
    })
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Whether `a` and `b` agree: exactly on integer data, within the f64 summation bound of
/// `terms` terms of total magnitude `magnitude` (both sides' rounding) otherwise.
fn agree(problem: &ConvProblem, a: f64, b: f64, terms: usize, magnitude: f64) -> bool {
    match problem.values {
        Values::Integer => a == b,
        Values::Real => {
            let gamma = (terms + 2) as f64 * f64::EPSILON / 2.0;
            (a - b).abs() <= 2.0 * gamma * magnitude
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../proptest-regressions/adjoint.txt"
        )))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn reference_gradients_are_the_adjoints_of_the_reference(problem in conv_problem()) {
        let shape = problem.spec.shape().unwrap();
        let input = problem.input::<f64>();
        let weights = problem.weights::<f64>();
        let grad_output = problem.grad_output::<f64>();
        let (forward, magnitude) = forward_dot(&shape, &input, &weights, &grad_output);
        let terms = shape.output_len() * shape.reduction_len();

        let grad_input: Vec<f64> =
            backward_data(&shape, &grad_output, &weights).iter().map(|g| g.sum).collect();
        let through_data = dot(&input, &grad_input);
        prop_assert!(
            agree(&problem, forward, through_data, terms, magnitude),
            "<conv(x, w), dy> = {forward:e} but <x, dx> = {through_data:e}"
        );

        let grads = backward_weights(&shape, &input, &grad_output);
        let grad_weights: Vec<f64> = grads.weights.iter().map(|g| g.sum).collect();
        let through_weights = dot(&weights, &grad_weights);
        prop_assert!(
            agree(&problem, forward, through_weights, terms, magnitude),
            "<conv(x, w), dy> = {forward:e} but <w, dw> = {through_weights:e}"
        );

        // The bias adds `bias[k]` to every output of channel `k`: its gradient is their sum.
        let mut per_channel = vec![0.0; shape.out_channels()];
        for (index, dy) in grad_output.iter().enumerate() {
            per_channel[shape.output_coords(index).1] += dy;
        }
        for (k, (expected, got)) in per_channel.iter().zip(&grads.bias).enumerate() {
            prop_assert!(
                agree(&problem, *expected, got.sum, shape.output_len(), got.magnitude),
                "db[{k}] = {} but Σ dy = {expected}", got.sum
            );
        }
    }

    #[test]
    fn reference_gradients_match_finite_differences(
        problem in conv_problem().prop_map(|p| ConvProblem { values: Values::Integer, ..p }),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let shape = problem.spec.shape().unwrap();
        let input = problem.input::<f64>();
        let weights = problem.weights::<f64>();
        let grad_output = problem.grad_output::<f64>();
        let loss = |input: &[f64], weights: &[f64]| forward_dot(&shape, input, weights, &grad_output).0;
        let base = loss(&input, &weights);
        let grad_input = backward_data(&shape, &grad_output, &weights);
        let grad_weights = backward_weights(&shape, &input, &grad_output).weights;
        for pick in &picks {
            let i = pick.index(input.len());
            let mut moved = input.clone();
            moved[i] += 1.0;
            prop_assert_eq!(loss(&moved, &weights) - base, grad_input[i].sum, "input {}", i);
            let j = pick.index(weights.len());
            let mut moved = weights.clone();
            moved[j] += 1.0;
            prop_assert_eq!(loss(&input, &moved) - base, grad_weights[j].sum, "weight {}", j);
        }
    }

    #[test]
    fn reference_transposed_is_the_backward_data_of_its_forward(problem in conv_problem()) {
        let shape = problem.spec.shape().unwrap();
        let spec = shape.spec();
        let [out_h, out_w] = shape.output_hw();
        let padding = spec.padding_sides();
        // The input rows and columns the forward's last window leaves over.
        let [extent_h, extent_w] = shape.dilated_kernel_hw();
        let [stride_h, stride_w] = shape.stride();
        let left_over = [
            (spec.input_hw()[0] + padding.top + padding.bottom - extent_h) % stride_h,
            (spec.input_hw()[1] + padding.left + padding.right - extent_w) % stride_w,
        ];
        let transposed = TransposedSpec::new(
            spec.batch(),
            spec.out_channels(),
            spec.in_channels(),
            [out_h, out_w],
            spec.kernel_hw(),
        )
        .stride(spec.stride_hw())
        .dilation(spec.dilation_hw())
        .padding(padding)
        .output_padding(left_over)
        .groups(spec.group_count())
        .layout(spec.activation_layout())
        .shape()
        .unwrap();
        prop_assert_eq!(transposed.output_hw(), spec.input_hw());
        prop_assert_eq!(transposed.forward(), *spec);

        let weights = problem.weights::<f64>();
        let grad_output = problem.grad_output::<f64>();
        let grad_input = backward_data(&shape, &grad_output, &weights);
        // Terms of one input gradient: every output channel of its group, every tap.
        let [kernel_h, kernel_w] = spec.kernel_hw();
        let terms = shape.out_channels_per_group() * kernel_h * kernel_w;
        for (index, expected) in grad_input.iter().enumerate() {
            let got = transposed_output(
                &transposed, &grad_output, &weights, None, transposed.output_coords(index),
            );
            prop_assert!(
                agree(&problem, expected.sum, got.sum, terms, expected.magnitude),
                "output {index}: transposed {} but backward-data {}", got.sum, expected.sum
            );
            prop_assert_eq!(got.magnitude == 0.0, expected.magnitude == 0.0);
        }
    }
}
