//! The conformance suite: every algorithm, for every element type it supports, on every ISA
//! path this machine has, against the f64 reference (see `convkit-testkit`).
//!
//! `CONVKIT_ISA=scalar|avx2|avx512` restricts the run to one path; `PROPTEST_CASES` sets the
//! number of generated problems per test. `cargo test --test conformance -- --nocapture`
//! prints which paths ran.

use convkit::{Algorithm, Isa};
use convkit_im2col::Im2colGemm;
use convkit_reference::Reference;
use convkit_testkit::conformance_suite;

conformance_suite!(reference_f32, f32, Reference);
conformance_suite!(reference_f64, f64, Reference);
conformance_suite!(reference_f16, half::f16, Reference);
conformance_suite!(reference_bf16, half::bf16, Reference);
conformance_suite!(im2col_gemm_f32, f32, Im2colGemm);

/// Algorithms instantiated above. A registered algorithm missing here fails the test below.
const INSTANTIATED: &[Algorithm] = &[Algorithm::Reference, Algorithm::Im2colGemm];

#[test]
fn every_registered_algorithm_is_instantiated_and_paths_are_listed() {
    let forced = convkit_simd::forced_by_env().expect("CONVKIT_ISA names a known path");
    println!(
        "CPU paths: {:?}; forced: {:?}",
        convkit_simd::available_isas(),
        forced
    );
    for algorithm in convkit::algorithms::<f32>() {
        assert!(
            INSTANTIATED.contains(&algorithm.algorithm()),
            "{:?} is registered but has no conformance_suite! line",
            algorithm.algorithm()
        );
        let paths: Vec<String> = Isa::ALL
            .iter()
            .map(|&isa| {
                let status = if !convkit_simd::available(isa) {
                    "cpu lacks"
                } else if forced.is_some_and(|f| f != isa) {
                    "not forced"
                } else if convkit_simd::resolve(algorithm.isas(), isa) != isa {
                    "no code path"
                } else {
                    "checked"
                };
                format!("{isa}: {status}")
            })
            .collect();
        println!("{:>12}: {}", algorithm.algorithm().name(), paths.join(", "));
    }
}
