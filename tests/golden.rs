//! Hand-computed convolutions, checked exactly on every registered algorithm, every ISA path
//! this CPU has, and both layouts. Small integers keep every sum exact in f32.

use convkit::{Activation, Algorithm, ConvSpec, Layout, Padding, PlanOptions};
use convkit_testkit::{ConvProblem, GoldenCase, Values, check_golden, nchw_to_nhwc};

/// Runs `spec` (given in NCHW) on every algorithm and path, in NCHW and NHWC, through the
/// testkit's golden check: exactly `expected` (NCHW order) from algorithms exact on integers,
/// within their relative bound of the largest output from the others.
fn check_everywhere(
    spec: ConvSpec,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    expected: &[f32],
) {
    let case = GoldenCase {
        spec,
        input,
        weights,
        bias,
        activation,
        expected,
    };
    let checked = check_golden(
        &convkit::algorithms::<f32>(),
        convkit_testkit::isas(),
        &case,
    )
    .unwrap_or_else(|failure| panic!("{failure}"));
    assert!(checked > 0, "no algorithm took the golden case");
}

fn iota(len: usize) -> Vec<f32> {
    (1..=len).map(|v| v as f32).collect()
}

#[test]
fn single_channel_is_cross_correlation_not_convolution() {
    // in = [1 2 3; 4 5 6; 7 8 9], w = [1 2; 3 4], no flip:
    // out(0,0) = 1·1 + 2·2 + 4·3 + 5·4 = 37, and so on.
    check_everywhere(
        ConvSpec::new(1, 1, 1, [3, 3], [2, 2]),
        &iota(9),
        &[1.0, 2.0, 3.0, 4.0],
        None,
        Activation::None,
        &[37.0, 47.0, 67.0, 77.0],
    );
}

#[test]
fn strided() {
    // 5x5 input 1..25, kernel 1x2 of ones, stride (2, 1): rows 0, 2, 4, adjacent pairs.
    check_everywhere(
        ConvSpec::new(1, 1, 1, [5, 5], [1, 2]).stride([2, 1]),
        &iota(25),
        &[1.0, 1.0],
        None,
        Activation::None,
        &[
            3.0, 5.0, 7.0, 9.0, 23.0, 25.0, 27.0, 29.0, 43.0, 45.0, 47.0, 49.0,
        ],
    );
    // 1x1 kernel of 2 with stride 2: every other pixel of every other row, doubled.
    check_everywhere(
        ConvSpec::new(1, 1, 1, [5, 5], [1, 1]).stride([2, 2]),
        &iota(25),
        &[2.0],
        None,
        Activation::None,
        &[2.0, 6.0, 10.0, 22.0, 26.0, 30.0, 42.0, 46.0, 50.0],
    );
}

#[test]
fn three_channels_summed_with_bias_and_relu() {
    // Channels of constant 1, 2, 3 over 2x2; kernel 0 weighs them 1, 10, 100 on every tap,
    // kernel 1 weighs them −1: 4·(1 + 20 + 300) + 16 = 1300 and −4·6 − 1 = −25 → ReLU → 0.
    let input: Vec<f32> = [1.0, 2.0, 3.0].iter().flat_map(|&v| [v; 4]).collect();
    let mut weights: Vec<f32> = [1.0, 10.0, 100.0].iter().flat_map(|&v| [v; 4]).collect();
    weights.extend([-1.0; 12]);
    check_everywhere(
        ConvSpec::new(1, 3, 2, [2, 2], [2, 2]),
        &input,
        &weights,
        Some(&[16.0, -1.0]),
        Activation::Relu,
        &[1300.0, 0.0],
    );
}

#[test]
fn padded_asymmetrically() {
    // [1 2; 3 4] padded one row on top and one column on the right:
    // [0 0 0; 1 2 0; 3 4 0]; 2x2 ones kernel: [3 2; 10 6].
    let padding = Padding {
        top: 1,
        bottom: 0,
        left: 0,
        right: 1,
    };
    check_everywhere(
        ConvSpec::new(1, 1, 1, [2, 2], [2, 2]).padding(padding),
        &[1.0, 2.0, 3.0, 4.0],
        &[1.0; 4],
        None,
        Activation::None,
        &[3.0, 2.0, 10.0, 6.0],
    );
    // Symmetric padding 1 with a 3x3 ones kernel: every output sees the whole 2x2 input.
    check_everywhere(
        ConvSpec::new(1, 1, 1, [2, 2], [3, 3]).padding(Padding::symmetric([1, 1])),
        &[1.0, 2.0, 3.0, 4.0],
        &[1.0; 9],
        None,
        Activation::None,
        &[10.0; 4],
    );
}

#[test]
fn dilated() {
    // in(y, x) = 5y + x + 1; 2x2 ones dilated by 2 reads (y, x), (y, x+2), (y+2, x),
    // (y+2, x+2): 4·in(y, x) + 2 + 10 + 12 = 20y + 4x + 28.
    let expected: Vec<f32> = (0..3)
        .flat_map(|y| (0..3).map(move |x| (20 * y + 4 * x + 28) as f32))
        .collect();
    check_everywhere(
        ConvSpec::new(1, 1, 1, [5, 5], [2, 2]).dilation([2, 2]),
        &iota(25),
        &[1.0; 4],
        None,
        Activation::None,
        &expected,
    );
}

#[test]
fn grouped_and_depthwise() {
    // Two groups: out0 = 1·1 + 10·2 = 21 (channels 0, 1), out1 = 100·3 + 1000·4 = 4300.
    check_everywhere(
        ConvSpec::new(1, 4, 2, [1, 1], [1, 1]).groups(2),
        &[1.0, 2.0, 3.0, 4.0],
        &[1.0, 10.0, 100.0, 1000.0],
        None,
        Activation::None,
        &[21.0, 4300.0],
    );
    // Depthwise with multiplier 2: channel c feeds outputs 2c and 2c + 1.
    check_everywhere(
        ConvSpec::new(1, 3, 6, [1, 1], [1, 1]).groups(3),
        &[1.0, 2.0, 3.0],
        &[2.0, -2.0, 3.0, -3.0, 4.0, -4.0],
        None,
        Activation::None,
        &[2.0, -2.0, 6.0, -6.0, 12.0, -12.0],
    );
}

#[test]
fn batch_images_are_independent_and_activations_apply_after_bias() {
    // Two 1x1 images, 1x1 kernel 1, bias −2: values 1 and 9 → −1 and 7.
    let spec = ConvSpec::new(2, 1, 1, [1, 1], [1, 1]);
    let cases = [
        (Activation::None, [-1.0, 7.0]),
        (Activation::Relu, [0.0, 7.0]),
        (Activation::Relu6, [0.0, 6.0]),
        (Activation::LeakyRelu(0.5), [-0.5, 7.0]),
        (
            Activation::Clamp {
                min: -0.25,
                max: 3.0,
            },
            [-0.25, 3.0],
        ),
    ];
    for (activation, expected) in cases {
        check_everywhere(
            spec,
            &[1.0, 9.0],
            &[1.0],
            Some(&[-2.0]),
            activation,
            &expected,
        );
    }
}

#[test]
fn nchw_and_nhwc_give_the_same_numbers() {
    let spec = ConvSpec::new(2, 6, 4, [7, 9], [3, 2])
        .stride([2, 1])
        .dilation([1, 2])
        .padding(Padding {
            top: 2,
            bottom: 0,
            left: 1,
            right: 1,
        })
        .groups(2);
    // Integer data: every algorithm is exact there, whatever order each layout sums in.
    let problem = ConvProblem::new(spec, true, Activation::LeakyRelu(0.125), Values::Integer, 3);
    let shape = problem.shape();
    let [oh, ow] = shape.output_hw();
    let input = problem.input::<f32>();
    let weights = problem.weights::<f32>();
    let bias = problem.bias::<f32>();
    let options = PlanOptions::new().activation(problem.activation);
    for algorithm in convkit::algorithms::<f32>() {
        if algorithm.cost(&shape, convkit::Isa::Scalar).is_err() {
            continue;
        }
        let options = options.algorithm(algorithm.algorithm());
        let mut nchw = vec![0.0; shape.output_len()];
        let mut nhwc = vec![0.0; shape.output_len()];
        convkit::plan(&spec, &weights, bias.as_deref(), &options)
            .and_then(|plan| plan.run(&input, &mut nchw))
            .expect("nchw run");
        convkit::plan(
            &spec.layout(Layout::Nhwc),
            &weights,
            bias.as_deref(),
            &options,
        )
        .and_then(|plan| plan.run(&nchw_to_nhwc(&input, [2, 6, 7, 9]), &mut nhwc))
        .expect("nhwc run");
        assert_eq!(
            nchw_to_nhwc(&nchw, [2, 4, oh, ow]),
            nhwc,
            "{:?}",
            algorithm.algorithm()
        );
    }
}

#[test]
fn f32_reference_is_the_f64_reference_rounded_once() {
    let spec = ConvSpec::new(1, 5, 3, [6, 6], [3, 3]).padding(Padding::symmetric([1, 1]));
    let problem = ConvProblem::new(spec, true, Activation::None, Values::Real, 11);
    let options = PlanOptions::new().algorithm(Algorithm::Reference);
    let input = problem.input::<f32>();
    let weights = problem.weights::<f32>();
    let bias = problem.bias::<f32>();
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let mut single = vec![0.0f32; spec.output_len().unwrap()];
    let mut double = vec![0.0f64; spec.output_len().unwrap()];
    convkit::plan(&spec, &weights, bias.as_deref(), &options)
        .and_then(|plan| plan.run(&input, &mut single))
        .unwrap();
    let bias64 = bias.as_deref().map(widen);
    convkit::plan(&spec, &widen(&weights), bias64.as_deref(), &options)
        .and_then(|plan| plan.run(&widen(&input), &mut double))
        .unwrap();
    let rounded: Vec<f32> = double.iter().map(|&v| v as f32).collect();
    assert_eq!(single, rounded);
}
