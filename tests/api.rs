//! The public API: planning, running, bad input, threading.

use convkit::{
    Activation, Algorithm, ConvError, ConvSpec, Isa, Layout, Padding, Plan, PlanOptions,
};
use convkit_testkit::{ConvProblem, compare_with_reference, conv_problem};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn small_spec() -> ConvSpec {
    ConvSpec::new(1, 2, 3, [4, 4], [3, 3]).padding(Padding::symmetric([1, 1]))
}

fn plan_small() -> Plan<f32> {
    let spec = small_spec();
    convkit::plan(
        &spec,
        &vec![0.5; spec.weight_len().unwrap()],
        None,
        &PlanOptions::new(),
    )
    .expect("valid plan")
}

#[test]
fn tuned_plans_time_the_candidates_cache_the_winner_and_stay_within_its_bound() {
    use convkit_testkit::Values;
    let spec = ConvSpec::new(1, 16, 24, [20, 18], [3, 3]).padding(Padding::symmetric([1, 1]));
    let problem = ConvProblem::new(spec, true, Activation::Relu, Values::Real, 11);
    let (input, weights, bias) = (
        problem.input::<f32>(),
        problem.weights::<f32>(),
        problem.bias::<f32>(),
    );
    let options = PlanOptions::new().activation(Activation::Relu).tune(true);
    let plan = convkit::plan(&spec, &weights, bias.as_deref(), &options).expect("tuned plan");
    assert_ne!(plan.algorithm(), Algorithm::Reference);
    let again = convkit::plan(&spec, &weights, bias.as_deref(), &options).expect("cached plan");
    assert_eq!(again.algorithm(), plan.algorithm());
    let mut output = vec![f32::NAN; plan.shape().output_len()];
    plan.run(&input, &mut output).expect("tuned run");
    compare_with_reference(
        plan.shape(),
        &input,
        &weights,
        bias.as_deref(),
        Activation::Relu,
        plan.accuracy(),
        false,
        &output,
    )
    .expect("a tuned plan is as accurate as its algorithm");
}

#[test]
fn plans_are_send_and_sync_and_errors_are_std_errors() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Plan<f32>>();
    assert_send_sync::<Plan<half::bf16>>();
    assert_send_sync::<ConvError>();
    let error: Box<dyn std::error::Error + Send + Sync + 'static> =
        Box::new(ConvError::ZeroDimension { field: "batch" });
    assert_eq!(error.to_string(), "batch must be at least 1, got 0");
}

#[test]
fn spec_errors_name_the_field() {
    let cases: [(ConvSpec, &str); 6] = [
        (
            ConvSpec::new(0, 1, 1, [3, 3], [1, 1]),
            "batch must be at least 1, got 0",
        ),
        (
            ConvSpec::new(1, 1, 1, [3, 0], [1, 1]),
            "input width must be at least 1, got 0",
        ),
        (
            ConvSpec::new(1, 1, 1, [3, 3], [1, 1]).dilation([1, 0]),
            "horizontal dilation must be at least 1, got 0",
        ),
        (
            ConvSpec::new(1, 6, 4, [3, 3], [1, 1]).groups(4),
            "groups 4 does not divide in_channels 6",
        ),
        (
            ConvSpec::new(1, 1, 1, [4, 8], [5, 5]).dilation([2, 2]),
            "kernel 5x5 dilated to 9x9 is larger than the padded input 4x8",
        ),
        (
            ConvSpec::new(usize::MAX, 2, 1, [1, 1], [1, 1]),
            "shape arithmetic overflows: input length",
        ),
    ];
    for (spec, message) in cases {
        let error = spec.output_hw().and_then(|_| spec.input_len()).unwrap_err();
        assert_eq!(error.to_string(), message);
        let weights = [0.0f32; 1];
        assert!(convkit::plan(&spec, &weights, None, &PlanOptions::new()).is_err());
    }
}

#[test]
fn wrong_lengths_are_errors_and_leave_the_output_untouched() {
    let spec = small_spec();
    let weights = vec![0.5f32; spec.weight_len().unwrap()];
    let options = PlanOptions::new();
    assert_eq!(
        convkit::plan(&spec, &weights[1..], None, &options).unwrap_err(),
        ConvError::BufferLength {
            buffer: "weights",
            expected: 54,
            actual: 53
        }
    );
    assert_eq!(
        convkit::plan(&spec, &weights, Some(&[0.0; 2]), &options).unwrap_err(),
        ConvError::BufferLength {
            buffer: "bias",
            expected: 3,
            actual: 2
        }
    );
    let plan = plan_small();
    let input = vec![1.0f32; 32];
    let mut output = vec![-7.0f32; 48];
    assert!(matches!(
        plan.run(&input[..31], &mut output),
        Err(ConvError::BufferLength {
            buffer: "input",
            ..
        })
    ));
    assert!(matches!(
        plan.run(&input, &mut output[..47]),
        Err(ConvError::BufferLength {
            buffer: "output",
            ..
        })
    ));
    assert!(output.iter().all(|&v| v == -7.0));
    plan.run(&input, &mut output).unwrap();
    assert!(output.iter().all(|&v| v != -7.0));
}

#[test]
fn invalid_activation_and_unknown_isa_are_errors() {
    let spec = small_spec();
    let weights = vec![0.5f32; spec.weight_len().unwrap()];
    let options = PlanOptions::new().activation(Activation::Clamp {
        min: 1.0,
        max: -1.0,
    });
    assert!(matches!(
        convkit::plan(&spec, &weights, None, &options),
        Err(ConvError::InvalidActivation { .. })
    ));
    for &isa in Isa::ALL
        .iter()
        .filter(|&&isa| !convkit_simd::available(isa))
    {
        assert_eq!(
            convkit::plan(&spec, &weights, None, &PlanOptions::new().isa(isa)).unwrap_err(),
            ConvError::IsaUnavailable { isa }
        );
    }
}

#[test]
fn unimplemented_algorithms_are_unsupported_not_a_fallback() {
    let spec = small_spec();
    let weights = vec![0.5f32; spec.weight_len().unwrap()];
    let registered: Vec<Algorithm> = convkit::algorithms::<f32>()
        .iter()
        .map(|a| a.algorithm())
        .collect();
    for algorithm in Algorithm::CONCRETE {
        let result = convkit::plan(
            &spec,
            &weights,
            None,
            &PlanOptions::new().algorithm(algorithm),
        );
        if registered.contains(&algorithm) {
            assert_eq!(result.unwrap().algorithm(), algorithm);
        } else {
            assert!(
                matches!(result, Err(ConvError::Unsupported { algorithm: a, .. }) if a == algorithm)
            );
        }
    }
    assert!(
        registered.contains(&plan_small().algorithm()),
        "Auto picks a registered one"
    );
}

#[test]
fn nan_and_infinity_propagate() {
    let spec = ConvSpec::new(1, 1, 1, [1, 3], [1, 1]);
    for activation in Activation::ALL {
        let plan = convkit::plan(
            &spec,
            &[1.0f32],
            None,
            &PlanOptions::new().activation(activation),
        )
        .unwrap();
        let mut output = [0.0f32; 3];
        plan.run(&[f32::NAN, f32::INFINITY, 1.0], &mut output)
            .unwrap();
        assert!(output[0].is_nan(), "{activation:?}");
        assert_eq!(
            output[1],
            activation.apply_f32(f32::INFINITY),
            "{activation:?}"
        );
    }
}

#[test]
fn runs_inside_the_callers_pool_and_concurrently() {
    let plan = plan_small();
    let input: Vec<f32> = (0..32).map(|v| v as f32).collect();
    let mut expected = vec![0.0f32; 48];
    plan.run(&input, &mut expected).unwrap();
    let pool = convkit_testkit::pool(1);
    let mut single = vec![0.0f32; 48];
    pool.install(|| plan.run(&input, &mut single)).unwrap();
    assert_eq!(single, expected);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut output = vec![0.0f32; 48];
                let mut scratch = vec![0.0f32; plan.scratch_len()];
                plan.run_with_scratch(&input, &mut output, &mut scratch)
                    .unwrap();
                assert_eq!(output, expected);
            });
        }
    });
}

#[test]
fn every_element_type_plans_and_runs() {
    fn run<T: convkit::Registered>() -> Vec<f64> {
        let spec = ConvSpec::new(1, 1, 1, [2, 2], [1, 1]).layout(Layout::Nhwc);
        let one = T::one();
        let plan = convkit::plan(&spec, &[one + one], Some(&[one]), &PlanOptions::new()).unwrap();
        let mut output = vec![T::zero(); 4];
        plan.run(&[one; 4], &mut output).unwrap();
        output.iter().map(|v| v.to_f64_exact()).collect()
    }
    assert_eq!(run::<f32>(), [3.0; 4]);
    assert_eq!(run::<f64>(), [3.0; 4]);
    assert_eq!(run::<half::f16>(), [3.0; 4]);
    assert_eq!(run::<half::bf16>(), [3.0; 4]);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/api.txt"
        ))),
        ..ProptestConfig::default()
    })]

    /// What users call: `plan` with `Auto` on the default path, against the reference.
    #[test]
    fn auto_plans_match_the_reference(problem in conv_problem()) {
        check_auto(&problem)?;
    }
}

fn check_auto(problem: &ConvProblem) -> Result<(), TestCaseError> {
    let input = problem.input::<f32>();
    let weights = problem.weights::<f32>();
    let bias = problem.bias::<f32>();
    let options = PlanOptions::new().activation(problem.activation);
    let plan = convkit::plan(&problem.spec, &weights, bias.as_deref(), &options)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut output = vec![f32::NAN; problem.shape().output_len()];
    plan.run(&input, &mut output)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    compare_with_reference(
        plan.shape(),
        &input,
        &weights,
        bias.as_deref(),
        problem.activation,
        plan.accuracy(),
        problem.values == convkit_testkit::Values::Integer,
        &output,
    )
    .map_err(|e| TestCaseError::fail(e.message))?;
    Ok(())
}

#[test]
fn one_dimensional_specs_plan_like_2d_ones_in_both_layouts() {
    use convkit::{ConvSpec1d, Layout1d, Padding1d};
    use convkit_testkit::Values;
    // Causal, dilated, strided, grouped; NCL and NLC.
    let specs: [ConvSpec1d; 3] = [
        ConvSpec::new_1d(2, 12, 8, 97, 3)
            .dilation(4)
            .padding(Padding1d { begin: 8, end: 0 }),
        ConvSpec::new_1d(1, 16, 16, 130, 3)
            .stride(2)
            .padding(Padding1d { begin: 1, end: 1 })
            .groups(4),
        ConvSpec::new_1d(1, 24, 24, 200, 4)
            .padding(Padding1d { begin: 3, end: 0 })
            .groups(24)
            .layout(Layout1d::Nlc),
    ];
    for spec in specs {
        let problem = ConvProblem::new(spec.spec(), true, Activation::None, Values::Integer, 5);
        let shape = problem.shape();
        let (input, weights, bias) = (
            problem.input::<f32>(),
            problem.weights::<f32>(),
            problem.bias::<f32>(),
        );
        for algorithm in [Algorithm::Auto, Algorithm::Direct, Algorithm::Im2colGemm] {
            let options = PlanOptions::new().algorithm(algorithm);
            let plan = convkit::plan(&spec, &weights, bias.as_deref(), &options).unwrap();
            let mut output = vec![f32::NAN; spec.output_len().unwrap()];
            plan.run(&input, &mut output).unwrap();
            // Exact where the chosen algorithm is exact on integers (Auto may choose
            // Winograd's 1-D form, which is not), else within its bound.
            let accuracy = plan.accuracy();
            compare_with_reference(
                &shape,
                &input,
                &weights,
                bias.as_deref(),
                Activation::None,
                accuracy,
                true,
                &output,
            )
            .unwrap_or_else(|failure| panic!("{spec:?} {algorithm:?}: {failure}"));
        }
    }
}

/// A huge stride, dilation or padding spreads a small problem over a huge padded input: each
/// plan sizes its scratch by what its tiles touch, not by the padded extent (the
/// `api_robustness` fuzz target found a depthwise kernel asking for 2^55 floats), and still
/// matches the reference.
#[test]
fn scratch_stays_bounded_when_huge_strides_dilations_or_paddings_spread_a_problem() {
    use convkit_testkit::{Values, check_algorithms};
    const HUGE: usize = 1 << 40;
    const MAX_SCRATCH: usize = 1 << 23;
    let pad = |[top, bottom, left, right]: [usize; 4]| Padding {
        top,
        bottom,
        left,
        right,
    };
    // (kernel, stride, dilation, padding): a few outputs per row or column each time.
    let spreads = [
        ([1, 3], [1, HUGE], [1, 1], pad([0, 0, 1, 4 * HUGE])),
        ([3, 3], [1, HUGE], [1, 1], pad([1, 1, 1, 4 * HUGE])),
        ([3, 1], [HUGE, 1], [1, 1], pad([0, 4 * HUGE, 0, 0])),
        // A band of two rows past usize (sized before the budget could stop it).
        ([3, 1], [1 << 60, 1], [1, 1], pad([0, 1 << 62, 0, 0])),
        ([1, 3], [1, 1], [1, HUGE], pad([0, 0, HUGE, HUGE])),
        ([3, 3], [1, 1], [HUGE, 1], pad([HUGE, HUGE, 1, 1])),
        ([1, 1], [1, 1], [1, 1], pad([HUGE, 0, 0, HUGE])),
    ];
    let algorithms = convkit::algorithms::<f32>();
    for (kernel, stride, dilation, padding) in spreads {
        for (in_channels, out_channels, groups) in [(3, 4, 1), (8, 8, 8), (4, 6, 2)] {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                let spec = ConvSpec::new(2, in_channels, out_channels, [3, 5], kernel)
                    .stride(stride)
                    .dilation(dilation)
                    .padding(padding)
                    .groups(groups)
                    .layout(layout);
                let Ok(shape) = spec.shape() else {
                    // Padded extents past usize are errors, not plans.
                    continue;
                };
                let problem = ConvProblem::new(spec, true, Activation::Relu, Values::Real, 3);
                let weights = problem.weights::<f32>();
                for algorithm in &algorithms {
                    for &isa in convkit_simd::available_isas() {
                        let options = PlanOptions::new().algorithm(algorithm.algorithm()).isa(isa);
                        let Ok(plan) = convkit::plan(&spec, &weights, None, &options) else {
                            continue;
                        };
                        assert!(
                            plan.scratch_len() <= MAX_SCRATCH,
                            "{} on {isa} asks for {} floats of scratch for {shape:?}",
                            algorithm.algorithm().name(),
                            plan.scratch_len()
                        );
                    }
                }
                if let Err(failure) =
                    check_algorithms(&algorithms, convkit_simd::available_isas(), &problem)
                {
                    panic!("{failure}\nspec: {spec:?}");
                }
            }
        }
    }
}
