//! Bodies of the cargo-fuzz targets. They live in a library so that the minimized inputs kept
//! under `fuzz/regressions/<target>/` replay as ordinary tests (`tests/regressions.rs`).
//!
//! Run a target: `cargo +nightly fuzz run differential -- -max_total_time=60` (or
//! `cargo xtask fuzz`).

use arbitrary::{Arbitrary, Unstructured};
use convkit::{Activation, Algorithm, ConvError, ConvSpec, Isa, Layout, Padding, PlanOptions};
use convkit_testkit::{ConvProblem, Values, check_algorithms, compare_with_reference};

/// Largest tensor (elements) the robustness target allocates; larger valid specs are only
/// validated, not run.
const MAX_ELEMENTS: usize = 1 << 14;

/// A dimension as the fuzzer draws it: mostly small, sometimes enormous (to reach overflow).
#[derive(Clone, Copy, Debug, Arbitrary)]
enum Dim {
    Small(u8),
    Huge(u8),
}

impl Dim {
    fn value(self) -> usize {
        match self {
            Dim::Small(v) => usize::from(v % 12),
            Dim::Huge(shift) => usize::MAX >> (shift % 40),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct ApiInput {
    batch: Dim,
    in_channels: Dim,
    out_channels: Dim,
    input_hw: [Dim; 2],
    kernel_hw: [Dim; 2],
    stride: [Dim; 2],
    dilation: [Dim; 2],
    padding: [Dim; 4],
    groups: Dim,
    nhwc: bool,
    /// Added to each correct length: 0 most of the time, ±1 or ±2 otherwise.
    length_errors: [i8; 4],
    has_bias: bool,
    activation: u8,
    leaky_slope: f32,
    algorithm: u8,
    isa: Option<u8>,
    poison: Option<(u16, bool)>,
    seed: u64,
}

fn skew(len: usize, error: i8) -> usize {
    let delta = if error.unsigned_abs() < 100 {
        0
    } else {
        isize::from(error.signum()) * isize::from(error.unsigned_abs() % 3)
    };
    len.saturating_add_signed(delta)
}

/// The `api_robustness` target.
pub fn api_robustness(data: &[u8]) {
    let Ok(input) = ApiInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let padding = input.padding.map(Dim::value);
    let spec = ConvSpec::new(
        input.batch.value(),
        input.in_channels.value(),
        input.out_channels.value(),
        input.input_hw.map(Dim::value),
        input.kernel_hw.map(Dim::value),
    )
    .stride(input.stride.map(Dim::value))
    .dilation(input.dilation.map(Dim::value))
    .padding(Padding {
        top: padding[0],
        bottom: padding[1],
        left: padding[2],
        right: padding[3],
    })
    .groups(input.groups.value())
    .layout(if input.nhwc {
        Layout::Nhwc
    } else {
        Layout::Nchw
    });

    // Every query answers without panicking, and they agree with each other.
    let shape = spec.shape();
    assert_eq!(spec.output_hw().is_ok(), shape.is_ok());
    assert_eq!(spec.flops().is_ok(), shape.is_ok());
    let Ok(shape) = shape else { return };
    if [shape.input_len(), shape.weight_len(), shape.output_len()]
        .iter()
        .any(|&len| len > MAX_ELEMENTS)
    {
        return;
    }

    let activation = match input.activation % 5 {
        0 => Activation::None,
        1 => Activation::Relu,
        2 => Activation::Relu6,
        3 => Activation::LeakyRelu(input.leaky_slope),
        _ => Activation::Clamp {
            min: input.leaky_slope,
            max: 1.0,
        },
    };
    let algorithm = std::iter::once(Algorithm::Auto)
        .chain(Algorithm::CONCRETE)
        .nth(usize::from(input.algorithm) % 7)
        .unwrap_or(Algorithm::Auto);
    let mut options = PlanOptions::new()
        .algorithm(algorithm)
        .activation(activation);
    if let Some(isa) = input.isa {
        options = options.isa(Isa::ALL[usize::from(isa) % Isa::ALL.len()]);
    }

    let problem = ConvProblem::new(spec, input.has_bias, activation, Values::Real, input.seed);
    let mut weights: Vec<f32> = problem.weights();
    weights.resize(skew(shape.weight_len(), input.length_errors[0]), 0.25);
    let bias = problem.bias::<f32>().map(|mut bias| {
        bias.resize(skew(bias.len(), input.length_errors[1]), -0.5);
        bias
    });
    let mut data: Vec<f32> = problem.input();
    if let Some((position, infinite)) = input.poison {
        let position = usize::from(position) % data.len();
        data[position] = if infinite { f32::INFINITY } else { f32::NAN };
    }
    data.resize(skew(shape.input_len(), input.length_errors[2]), 1.0);
    let output_len = skew(shape.output_len(), input.length_errors[3]);

    let lengths_right = weights.len() == shape.weight_len()
        && bias.as_ref().is_none_or(|b| b.len() == shape.bias_len());
    let plan = match convkit::plan(&spec, &weights, bias.as_deref(), &options) {
        Ok(plan) => plan,
        Err(ConvError::BufferLength { .. }) => {
            assert!(!lengths_right, "length error on right lengths");
            return;
        }
        Err(
            ConvError::Unsupported { .. }
            | ConvError::IsaUnavailable { .. }
            | ConvError::InvalidActivation { .. },
        ) => return,
        Err(other) => panic!("unexpected planning error for a valid spec: {other}"),
    };
    assert!(lengths_right, "planned with wrong weight or bias length");

    const SENTINEL: f32 = -1234.5;
    let mut output = vec![SENTINEL; output_len];
    match plan.run(&data, &mut output) {
        Err(error) => {
            assert!(matches!(error, ConvError::BufferLength { .. }), "{error}");
            assert!(
                output.iter().all(|v| v.to_bits() == SENTINEL.to_bits()),
                "output written on error"
            );
        }
        Ok(()) => {
            let accuracy = plan.accuracy();
            if let Err(failure) = compare_with_reference(
                plan.shape(),
                &data,
                &weights,
                bias.as_deref(),
                activation,
                accuracy,
                false,
                &output,
            ) {
                panic!("{failure}\nspec: {spec:?}");
            }
        }
    }
}

/// Checks `problem` on every registered algorithm for `T` and every available ISA path,
/// against one reference computation.
fn differential_for<T: convkit::Registered>(problem: &ConvProblem) {
    let algorithms = convkit::algorithms::<T>();
    if let Err(failure) = check_algorithms(&algorithms, convkit_simd::available_isas(), problem) {
        panic!("{failure}");
    }
}

/// FLOPs above which the `differential` target skips a problem: under the sanitizers and
/// coverage instrumentation the reference costs ~0.2 s per million multiply-adds, and many
/// small problems find more than a few large ones (the proptest suites cover the large).
const DIFFERENTIAL_MAX_FLOPS: u64 = 1 << 18;

/// The `differential` target.
pub fn differential(data: &[u8]) {
    let mut unstructured = Unstructured::new(data);
    let Ok(problem) = ConvProblem::arbitrary(&mut unstructured) else {
        return;
    };
    if problem.shape().flops() > DIFFERENTIAL_MAX_FLOPS {
        return;
    }
    match unstructured.int_in_range(0u8..=3).unwrap_or(0) {
        0 => differential_for::<f32>(&problem),
        1 => differential_for::<half::f16>(&problem),
        2 => differential_for::<half::bf16>(&problem),
        _ => differential_for::<f64>(&problem),
    }
    // The convolutions convkit-cnn's backward pass runs for this problem (other strides,
    // dilations, paddings and kernels as large as the output), on every f32 algorithm.
    let gradient_specs = [
        convkit_cnn::grad::input_grad_spec(&problem.spec),
        convkit_cnn::grad::weight_grad_spec(&problem.spec),
    ];
    for spec in gradient_specs.into_iter().flatten() {
        let gradient =
            ConvProblem::new(spec, false, Activation::None, problem.values, problem.seed);
        if gradient.shape().flops() <= DIFFERENTIAL_MAX_FLOPS {
            differential_for::<f32>(&gradient);
        }
    }
}
