//! The conformance property test, instantiated per algorithm and ISA path by
//! [`conformance_suite!`](crate::conformance_suite).

use crate::{CheckOutcome, check_impl, conv_problem, winograd_problem};
use convkit_core::Algorithm;
use convkit_core::{ConvAlgorithm, Element, Isa};
use proptest::strategy::{BoxedStrategy, Strategy};
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::cell::Cell;

/// What one conformance run covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SuiteSummary {
    /// Problems checked and passed.
    pub passed: usize,
    /// Problems the algorithm declined.
    pub unsupported: usize,
}

/// Why a conformance run did not run at all. A path that `CONVKIT_REQUIRE_ISAS` names and
/// this CPU lacks is no reason: it fails the test ([`convkit_simd::testable_isas`]).
fn skip_reason<T: Element>(algorithm: &dyn ConvAlgorithm<T>, isa: Isa) -> Option<String> {
    convkit_simd::testable_isas();
    if !convkit_simd::available(isa) {
        return Some(format!("this CPU has no {isa}"));
    }
    match convkit_simd::forced_by_env() {
        Ok(Some(forced)) if forced != isa => {
            return Some(format!("{} forces {forced}", convkit_simd::ISA_ENV_VAR));
        }
        Err(error) => return Some(error.to_string()),
        _ => {}
    }
    (convkit_simd::resolve(algorithm.isas(), isa) != isa)
        .then(|| format!("{} has no {isa} path", algorithm.algorithm().name()))
}

/// Runs the property test for `algorithm` on `isa` over generated problems (count from
/// `PROPTEST_CASES`, default 256), printing which path ran or why it was skipped.
/// Failing seeds are saved to `regressions_file` and replayed first on every later run.
///
/// Panics (fails the test) with the minimized failing problem, or when every generated problem
/// was unsupported (a suite that checks nothing proves nothing).
pub fn run_conformance<T: Element>(
    algorithm: &dyn ConvAlgorithm<T>,
    isa: Isa,
    regressions_file: &'static str,
) -> Option<SuiteSummary> {
    let name = algorithm.algorithm().name();
    if let Some(reason) = skip_reason(algorithm, isa) {
        println!(
            "conformance {name} {} on {isa}: skipped ({reason})",
            T::NAME
        );
        return None;
    }
    let passed = Cell::new(0usize);
    let unsupported = Cell::new(0usize);
    let mut runner = TestRunner::new(Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions_file))),
        ..Config::default()
    });
    let problems: BoxedStrategy<_> = match algorithm.algorithm() {
        Algorithm::WinogradF2 | Algorithm::WinogradF4 | Algorithm::WinogradF6 => {
            winograd_problem().boxed()
        }
        _ => conv_problem().boxed(),
    };
    let result = runner.run(&problems, |problem| {
        match check_impl(algorithm, isa, &problem) {
            Ok(CheckOutcome::Passed(_)) => passed.set(passed.get() + 1),
            Ok(CheckOutcome::Unsupported(_)) => unsupported.set(unsupported.get() + 1),
            Ok(CheckOutcome::NoPathFor(isa)) => {
                return Err(TestCaseError::fail(format!("no {isa} path after all")));
            }
            Err(failure) => return Err(TestCaseError::fail(failure.message)),
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("conformance {name} {} on {isa} failed:\n{error}", T::NAME);
    }
    let summary = SuiteSummary {
        passed: passed.get(),
        unsupported: unsupported.get(),
    };
    println!(
        "conformance {name} {} on {isa}: ran, {} problems passed, {} unsupported",
        T::NAME,
        summary.passed,
        summary.unsupported
    );
    assert!(
        summary.passed > 0,
        "{name} on {isa}: no generated problem was supported"
    );
    Some(summary)
}

/// Instantiates the conformance property test for one algorithm and element type on every
/// ISA path: one `#[test]` per path, each skipped (with a printed reason) where this CPU or
/// the algorithm lacks the path, or where `CONVKIT_ISA` forces another, and failed where
/// `CONVKIT_REQUIRE_ISAS` requires a path this CPU lacks. Seeds of failures are kept in
/// `proptest-regressions/<file>.txt` (`<module>.txt` without a file name).
///
/// The workspace's suite expands the registry, `convkit::registered_algorithms!`, into one
/// such line per registered algorithm and element type (`tests/conformance.rs`).
///
/// ```
/// convkit_testkit::conformance_suite!(reference_f32, f32, convkit_reference::Reference);
/// convkit_testkit::conformance_suite!(
///     reference_half,
///     half::f16,
///     convkit_reference::Reference,
///     "reference_f16"
/// );
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($module:ident, $element:ty, $algorithm:expr) => {
        $crate::conformance_suite!($module, $element, $algorithm, stringify!($module));
    };
    ($module:ident, $element:ty, $algorithm:expr, $file:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            fn conformance(isa: $crate::__private::Isa) {
                let algorithm: &dyn $crate::__private::ConvAlgorithm<$element> = &$algorithm;
                let regressions = concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/proptest-regressions/",
                    $file,
                    ".txt"
                );
                $crate::run_conformance(algorithm, isa, regressions);
            }

            #[test]
            fn scalar() {
                conformance($crate::__private::Isa::Scalar);
            }

            #[test]
            fn avx2() {
                conformance($crate::__private::Isa::Avx2);
            }

            #[test]
            fn avx512() {
                conformance($crate::__private::Isa::Avx512);
            }

            #[test]
            fn neon() {
                conformance($crate::__private::Isa::Neon);
            }
        }
    };
}
