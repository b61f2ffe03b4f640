//! Gradient checks: the convolution gradients (as convolutions, in f64) against finite
//! differences of the f64 forward convolution, and every f32 layer against central finite
//! differences of a scalar objective.

use convkit::{Algorithm, ConvSpec, Padding, PlanOptions};
use convkit_cnn::{
    Conv2d, Dense, Flatten, Layer, MaxPool2d, Mode, Nonlinearity, Relu, Tensor, grad, loss,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// `Σ r · conv(x, w)` in f64 (convkit's f64 path is the reference algorithm).
fn objective(spec: &ConvSpec, x: &[f64], w: &[f64], r: &[f64]) -> f64 {
    let plan = convkit::plan::<f64>(spec, w, None, &PlanOptions::new()).unwrap();
    let mut y = vec![0.0; spec.output_len().unwrap()];
    plan.run(x, &mut y).unwrap();
    y.iter().zip(r).map(|(a, b)| a * b).sum()
}

/// Specs covering stride, dilation, asymmetric padding, non-square kernels, channels.
fn specs() -> Vec<ConvSpec> {
    vec![
        ConvSpec::new(2, 3, 4, [7, 6], [3, 3]),
        ConvSpec::new(1, 2, 3, [8, 9], [3, 2]).padding(Padding::symmetric([1, 1])),
        ConvSpec::new(2, 2, 2, [9, 8], [3, 3]).stride([2, 2]),
        ConvSpec::new(1, 3, 2, [10, 9], [3, 2])
            .stride([2, 3])
            .dilation([2, 1])
            .padding(Padding {
                top: 2,
                bottom: 1,
                left: 0,
                right: 1,
            }),
        ConvSpec::new(3, 1, 5, [12, 12], [5, 5]),
        ConvSpec::new(2, 4, 1, [6, 7], [1, 1]).stride([2, 2]),
    ]
}

#[test]
fn convolution_gradients_match_finite_differences_in_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for spec in specs() {
        let x = random(spec.input_len().unwrap(), &mut rng);
        let w = random(spec.weight_len().unwrap(), &mut rng);
        let r = random(spec.output_len().unwrap(), &mut rng);
        let options = PlanOptions::new();
        let mut scratch = Vec::new();
        let dx = grad::input_grad(&spec, &w, &r, &options, &mut scratch).unwrap();
        let dw = grad::weight_grad(&spec, &x, &r, &options, &mut scratch).unwrap();
        // The objective is linear in x and in w: central differences are exact but for
        // rounding, so the tolerance is a few ulps of the sums involved.
        let step = 1e-3;
        for (i, &analytic) in dx.iter().enumerate() {
            let mut plus = x.clone();
            plus[i] += step;
            let mut minus = x.clone();
            minus[i] -= step;
            let numeric =
                (objective(&spec, &plus, &w, &r) - objective(&spec, &minus, &w, &r)) / (2.0 * step);
            assert!(
                (numeric - analytic).abs() < 1e-9,
                "{spec:?}: dx[{i}] {analytic} vs finite difference {numeric}"
            );
        }
        for (i, &analytic) in dw.iter().enumerate() {
            let mut plus = w.clone();
            plus[i] += step;
            let mut minus = w.clone();
            minus[i] -= step;
            let numeric =
                (objective(&spec, &x, &plus, &r) - objective(&spec, &x, &minus, &r)) / (2.0 * step);
            assert!(
                (numeric - analytic).abs() < 1e-9,
                "{spec:?}: dw[{i}] {analytic} vs finite difference {numeric}"
            );
        }
    }
}

#[test]
fn gradient_convolutions_run_on_the_fast_algorithm_too() {
    // The f32 gradients through Im2colGemm agree with the f64 ones through the reference.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for spec in specs() {
        let x = random(spec.input_len().unwrap(), &mut rng);
        let w = random(spec.weight_len().unwrap(), &mut rng);
        let r = random(spec.output_len().unwrap(), &mut rng);
        let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (x32, w32, r32) = (to32(&x), to32(&w), to32(&r));
        let mut scratch = Vec::new();
        let fast = PlanOptions::new().algorithm(Algorithm::Im2colGemm);
        let exact = PlanOptions::new();
        let pairs = [
            (
                grad::input_grad(&spec, &w32, &r32, &fast, &mut scratch).unwrap(),
                grad::input_grad(&spec, &w, &r, &exact, &mut scratch).unwrap(),
            ),
            (
                grad::weight_grad(&spec, &x32, &r32, &fast, &mut scratch).unwrap(),
                grad::weight_grad(&spec, &x, &r, &exact, &mut scratch).unwrap(),
            ),
        ];
        for (got, want) in pairs {
            for (g, w) in got.iter().zip(&want) {
                // Inputs in [-1, 1]: each sum has at most a few hundred terms of size ≤ 1.
                assert!((f64::from(*g) - w).abs() < 1e-4, "{spec:?}: {g} vs {w}");
            }
        }
    }
}

/// Central-difference check of one f32 layer: objective `Σ r · layer(x)`, accumulated in f64.
fn check_layer(layer: &mut dyn Layer, input_shape: [usize; 4], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = random(input_shape.iter().product(), &mut rng)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let out_shape = layer.output_shape(input_shape).unwrap();
    let r: Vec<f32> = random(out_shape.iter().product(), &mut rng)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let objective = |layer: &mut dyn Layer, x: &[f32]| -> f64 {
        let y = layer
            .forward(Tensor::new(input_shape, x.to_vec()).unwrap(), Mode::Eval)
            .unwrap();
        y.data()
            .iter()
            .zip(&r)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum()
    };
    layer
        .forward(Tensor::new(input_shape, x.clone()).unwrap(), Mode::Train)
        .unwrap();
    let dx = layer
        .backward(Tensor::new(out_shape, r.clone()).unwrap(), true)
        .unwrap()
        .expect("input gradient requested");
    let step = 1e-2f32;
    // f32 forward values of size ~1 are exact to ~1e-7 relative; divided by 2·step that is
    // ~1e-5 per output summed over at most a few hundred outputs.
    let tolerance = 2e-3;
    let spec = format!("{:?}", layer.spec());
    for i in (0..x.len()).step_by(7) {
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[i] += step;
        minus[i] -= step;
        let numeric =
            (objective(layer, &plus) - objective(layer, &minus)) / (2.0 * f64::from(step));
        let analytic = f64::from(dx.data()[i]);
        assert!(
            (numeric - analytic).abs() < tolerance * (1.0 + analytic.abs()),
            "{spec}: dx[{i}] {analytic} vs {numeric}"
        );
    }
    let grads: Vec<Vec<f32>> = layer
        .parameters()
        .iter()
        .map(|p| p.grad().to_vec())
        .collect();
    for (index, grad) in grads.iter().enumerate() {
        for i in (0..grad.len()).step_by(5) {
            let original = layer.parameters()[index].values()[i];
            layer.parameters_mut()[index].values_mut()[i] = original + step;
            let plus = objective(layer, &x);
            layer.parameters_mut()[index].values_mut()[i] = original - step;
            let minus = objective(layer, &x);
            layer.parameters_mut()[index].values_mut()[i] = original;
            let numeric = (plus - minus) / (2.0 * f64::from(step));
            let analytic = f64::from(grad[i]);
            assert!(
                (numeric - analytic).abs() < tolerance * (1.0 + analytic.abs()),
                "{spec}: parameter {index} [{i}] {analytic} vs {numeric}"
            );
        }
    }
}

#[test]
fn every_layer_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Identity activation: finite differences across a ReLU kink would be meaningless; the
    // activations' derivatives are checked separately below.
    let mut conv = Conv2d::new(
        [3, 4],
        [3, 2],
        [2, 1],
        [1, 1],
        Nonlinearity::Identity,
        &mut rng,
    )
    .unwrap();
    check_layer(&mut conv, [2, 3, 7, 6], 1);
    let mut dense = Dense::new([20, 7], &mut rng).unwrap();
    check_layer(&mut dense, [3, 20, 1, 1], 2);
    // Random inputs have distinct values, so a ±step nudge rarely changes a window's winner;
    // the checked indices avoid ties by construction of the data (values 1e-2 apart or more
    // are not guaranteed, so use a larger spacing grid).
    let mut pool = MaxPool2d::new([2, 2], [2, 2]).unwrap();
    check_pool(&mut pool);
    let mut flatten = Flatten::new();
    check_layer(&mut flatten, [2, 3, 2, 2], 3);
}

/// Max pooling on data whose values are far apart (no winner changes under the step).
fn check_pool(pool: &mut MaxPool2d) {
    let shape = [2, 2, 5, 6];
    let len: usize = shape.iter().product();
    // A permutation of 0..len scaled by 0.1: every value differs from the others by ≥ 0.1.
    let x: Vec<f32> = (0..len).map(|i| ((i * 37) % len) as f32 * 0.1).collect();
    let out_shape = pool.output_shape(shape).unwrap();
    let r: Vec<f32> = (0..out_shape.iter().product::<usize>())
        .map(|i| i as f32 - 3.0)
        .collect();
    pool.forward(Tensor::new(shape, x.clone()).unwrap(), Mode::Train)
        .unwrap();
    let dx = pool
        .backward(Tensor::new(out_shape, r.clone()).unwrap(), true)
        .unwrap()
        .unwrap();
    for i in 0..len {
        let mut plus = x.clone();
        plus[i] += 0.01;
        let y = pool
            .forward(Tensor::new(shape, plus).unwrap(), Mode::Eval)
            .unwrap();
        let base = pool
            .forward(Tensor::new(shape, x.clone()).unwrap(), Mode::Eval)
            .unwrap();
        let numeric: f32 = y
            .data()
            .iter()
            .zip(base.data())
            .zip(&r)
            .map(|((a, b), w)| (a - b) / 0.01 * w)
            .sum();
        assert!((numeric - dx.data()[i]).abs() < 1e-2, "pool dx[{i}]");
    }
}

#[test]
fn activations_route_gradients_by_their_output() {
    let mut relu = Relu::new();
    let x = Tensor::new([1, 4, 1, 1], vec![-2.0, -0.5, 0.5, 3.0]).unwrap();
    relu.forward(x, Mode::Train).unwrap();
    let dx = relu
        .backward(Tensor::new([1, 4, 1, 1], vec![1.0; 4]).unwrap(), true)
        .unwrap()
        .unwrap();
    assert_eq!(dx.data(), &[0.0, 0.0, 1.0, 1.0]);
    let cases = [
        (Nonlinearity::Relu, [0.0, 0.5, 7.0], [0.0, 1.0, 1.0]),
        (Nonlinearity::Relu6, [0.0, 0.5, 6.0], [0.0, 1.0, 0.0]),
        (
            Nonlinearity::LeakyRelu { slope: 0.1 },
            [-0.2, 0.5, 7.0],
            [0.1, 1.0, 1.0],
        ),
        (Nonlinearity::Identity, [-1.0, 0.0, 1.0], [1.0, 1.0, 1.0]),
    ];
    for (activation, outputs, derivatives) in cases {
        for (y, d) in outputs.into_iter().zip(derivatives) {
            assert_eq!(
                activation.derivative_at_output(y),
                d,
                "{activation:?} at {y}"
            );
        }
    }
}

#[test]
fn softmax_cross_entropy_gradient_matches_finite_differences() {
    let logits = vec![0.3f32, -1.2, 2.0, 0.1, 0.5, 0.5, -0.7, 1.1];
    let labels = [2u8, 1];
    let shape = [2, 4, 1, 1];
    let out =
        loss::softmax_cross_entropy(&Tensor::new(shape, logits.clone()).unwrap(), &labels).unwrap();
    assert_eq!(out.correct, 1);
    for i in 0..logits.len() {
        let value = |delta: f32| {
            let mut l = logits.clone();
            l[i] += delta;
            f64::from(
                loss::softmax_cross_entropy(&Tensor::new(shape, l).unwrap(), &labels)
                    .unwrap()
                    .loss,
            )
        };
        let numeric = (value(1e-2) - value(-1e-2)) / 2e-2;
        assert!(
            (numeric - f64::from(out.grad.data()[i])).abs() < 1e-3,
            "logit {i}: {} vs {numeric}",
            out.grad.data()[i]
        );
    }
}
