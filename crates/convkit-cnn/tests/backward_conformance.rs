//! The backward convolutions under the conformance harness: for generated forward problems,
//! the input-gradient and weight-gradient convolutions ([`convkit_cnn::grad`]) are problems of
//! their own (other strides, dilations, paddings, kernel sizes up to the whole output), and
//! every registered f32 algorithm must match the reference on them on every ISA path.

use convkit::{Activation, Isa};
use convkit_testkit::{CheckOutcome, ConvProblem, check_algorithms, conv_problem};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// The gradient convolutions of `problem`, when it is one the layers can train (NCHW, one
/// group, padding within the kernel's reach), with the same data seed.
fn backward_problems(problem: &ConvProblem) -> Option<[ConvProblem; 2]> {
    let input = convkit_cnn::grad::input_grad_spec(&problem.spec).ok()?;
    let weight = convkit_cnn::grad::weight_grad_spec(&problem.spec).ok()?;
    Some(
        [input, weight].map(|spec| {
            ConvProblem::new(spec, false, Activation::None, problem.values, problem.seed)
        }),
    )
}

#[test]
fn gradient_convolutions_match_the_reference_on_every_path() {
    let mut runner = TestRunner::new(Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/backward_conformance.txt"
        )))),
        ..Config::default()
    });
    let strategy = conv_problem().prop_filter_map("not trainable", |p| backward_problems(&p));
    let checked = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let result = runner.run(&strategy, |problems| {
        let algorithms = convkit::algorithms::<f32>();
        let isas = convkit_testkit::isas();
        for problem in &problems {
            let outcomes = check_algorithms(&algorithms, isas, problem)
                .map_err(|failure| TestCaseError::fail(failure.message))?;
            let pairs = algorithms
                .iter()
                .flat_map(|a| isas.iter().map(move |&isa| (a.algorithm().name(), isa)));
            for (pair, outcome) in pairs.zip(outcomes) {
                if matches!(outcome, CheckOutcome::Passed(_)) {
                    *checked.borrow_mut().entry(pair).or_insert(0usize) += 1;
                }
            }
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    let checked = checked.into_inner();
    for ((algorithm, isa), count) in &checked {
        println!("backward convolutions: {algorithm} on {isa}: {count} problems passed");
    }
    for &isa in convkit_testkit::isas() {
        assert!(
            checked.keys().any(|&(_, i)| i == isa) || isa == Isa::Neon,
            "no gradient convolution was checked on {isa}"
        );
    }
}
