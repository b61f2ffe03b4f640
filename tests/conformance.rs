//! The conformance suite: every algorithm, for every element type it supports, on every ISA
//! path this machine has, against the f64 reference (see `convkit-testkit`).
//!
//! `CONVKIT_ISA=scalar|avx2|avx512` restricts the run to one path; `PROPTEST_CASES` sets the
//! number of generated problems per test. `cargo test --test conformance -- --nocapture`
//! prints which paths ran.

use convkit::Isa;

/// One conformance suite per registered algorithm and element type, in a module per element
/// type (`f32::direct::avx2`), expanded from the registry itself: registering an algorithm
/// is what instantiates its tests.
macro_rules! suites_of_the_registry {
    ($($element:ident = $ty:ty: $($name:ident = $algorithm:expr),+;)*) => {$(
        mod $element {
            $(convkit_testkit::conformance_suite!(
                $name,
                $ty,
                $algorithm,
                concat!(stringify!($name), "_", stringify!($element))
            );)+
        }
    )*};
}

convkit::registered_algorithms!(suites_of_the_registry);

#[test]
fn every_registered_algorithm_lists_its_paths() {
    let forced = convkit_simd::forced_by_env().expect("CONVKIT_ISA names a known path");
    println!(
        "CPU paths: {:?}; forced: {:?}",
        convkit_simd::testable_isas(),
        forced
    );
    for algorithm in convkit::algorithms::<f32>() {
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

/// Problems big enough to be split across workers (the generated ones stay on one thread),
/// run in pools of 2 and 3 threads on every algorithm and path.
#[test]
fn multi_worker_problems_match_the_reference() {
    use convkit::{Activation, ConvSpec, Layout, Padding};
    use convkit_testkit::{ConvProblem, Values};
    let specs = [
        ConvSpec::new(1, 40, 72, [23, 29], [3, 3]).padding(Padding::symmetric([1, 1])),
        ConvSpec::new(2, 24, 36, [17, 15], [3, 2])
            .stride([2, 1])
            .groups(3),
        ConvSpec::new(1, 96, 200, [7, 7], [3, 3]).padding(Padding::symmetric([1, 1])),
        ConvSpec::new(3, 64, 48, [12, 13], [1, 1]),
        // Im2colGemm pads two of these images at a time: a batch in waves.
        ConvSpec::new(3, 4, 8, [160, 170], [3, 3]).padding(Padding::symmetric([1, 1])),
        // Too wide for a band of padded rows: Im2colGemm's per-row lowering, strides 1 and 2.
        ConvSpec::new(1, 16, 4, [6, 2800], [3, 3]).padding(Padding::symmetric([1, 1])),
        ConvSpec::new(1, 16, 4, [9, 2900], [3, 2])
            .stride([2, 2])
            .padding(Padding::symmetric([1, 1])),
        // Depthwise: Direct's NCHW kernel in bands of rows and tiles of more than 8 vectors of
        // columns, strides 1, 2 (even-lane loads) and 3 (gathers); NHWC over channel vectors.
        ConvSpec::new(2, 21, 21, [150, 203], [3, 3])
            .groups(21)
            .padding(Padding::symmetric([1, 1])),
        ConvSpec::new(1, 35, 35, [61, 140], [5, 3])
            .groups(35)
            .stride([2, 2])
            .dilation([1, 2])
            .padding(Padding {
                top: 2,
                bottom: 0,
                left: 1,
                right: 3,
            }),
        // Dense 3x3 (Direct's NCHW row-sharing tiles): asymmetric padding, and a row of
        // under one vector (one column vector, eight-row tiles).
        ConvSpec::new(1, 5, 5, [37, 9], [3, 3])
            .groups(5)
            .padding(Padding {
                top: 2,
                bottom: 0,
                left: 0,
                right: 2,
            }),
        ConvSpec::new(1, 17, 17, [40, 90], [3, 3])
            .groups(17)
            .stride([3, 3])
            .padding(Padding::symmetric([1, 1])),
        // Few input channels at column stride 2: Direct's NCHW column kernel on lines split
        // by column parity (odd and even left padding, dilated taps, a narrower last tile).
        ConvSpec::new(1, 3, 20, [61, 117], [7, 7])
            .stride([2, 2])
            .padding(Padding {
                top: 3,
                bottom: 2,
                left: 3,
                right: 2,
            }),
        ConvSpec::new(2, 2, 13, [30, 150], [3, 5])
            .stride([1, 2])
            .dilation([2, 3])
            .padding(Padding {
                top: 1,
                bottom: 0,
                left: 2,
                right: 5,
            }),
        // Winograd F6: a tile row longer than one block's budget, so blocks split rows.
        ConvSpec::new(1, 250, 16, [2, 400], [3, 3]).padding(Padding {
            top: 0,
            bottom: 1,
            left: 2,
            right: 1,
        }),
        // Winograd on one small image with many output channels: the channels split into
        // chunks among the workers (80 + 50 on two, 48 + 48 + 34 on three).
        ConvSpec::new(1, 16, 130, [12, 12], [3, 3]).padding(Padding::symmetric([1, 1])),
        // Output lines of whole vectors: Im2colGemm's tiles skip the dropped columns between
        // lines (a 64-column line: tiles that cross it, and a narrower last tile; the stem's
        // 112 columns at stride 2).
        ConvSpec::new(2, 5, 12, [11, 64], [3, 3]).padding(Padding::symmetric([1, 1])),
        ConvSpec::new(1, 3, 20, [40, 224], [7, 7])
            .stride([2, 2])
            .padding(Padding::symmetric([3, 3])),
        // One image that fits a padded copy, among the workers: Im2colGemm's worker bands
        // (25 + 25 and 17 + 17 + 16 rows; 18 + 17 at stride 2, phased).
        ConvSpec::new(1, 4, 6, [50, 20], [3, 3]).padding(Padding::symmetric([1, 1])),
        ConvSpec::new(1, 3, 10, [70, 30], [5, 5])
            .stride([2, 2])
            .padding(Padding::symmetric([2, 2])),
        // Too large for one padded copy: Im2colGemm convolves it in bands of output rows.
        ConvSpec::new(1, 8, 8, [190, 180], [3, 3]).padding(Padding {
            top: 1,
            bottom: 2,
            left: 0,
            right: 1,
        }),
    ];
    for threads in [2, 3] {
        let pool = convkit_testkit::pool(threads);
        for spec in specs {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                let problem = ConvProblem::new(
                    spec.layout(layout),
                    true,
                    Activation::Relu,
                    Values::Integer,
                    9,
                );
                pool.install(|| every_path_matches::<f32>(&problem, &format!("{threads} threads")));
            }
        }
    }
}

/// Half-precision 1x1 layers, which the random problems rarely draw: Im2colGemm rounds their
/// C from the microkernels' registers and, in NHWC, widens the input's pixels as rows; over
/// one and two depth blocks (64 and 300 input channels), in both layouts, on two workers.
#[test]
fn half_precision_pointwise_layers_match_the_reference() {
    use convkit::{Activation, ConvSpec, Layout};
    use convkit_testkit::{ConvProblem, Values};
    let pool = convkit_testkit::pool(2);
    for spec in [
        ConvSpec::new(2, 64, 40, [9, 11], [1, 1]),
        ConvSpec::new(1, 300, 24, [7, 13], [1, 1]),
    ] {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let problem = ConvProblem::new(
                spec.layout(layout),
                true,
                Activation::Relu,
                Values::Integer,
                11,
            );
            pool.install(|| {
                every_path_matches::<half::f16>(&problem, "f16");
                every_path_matches::<half::bf16>(&problem, "bf16");
            });
        }
    }
}

/// Every registered algorithm of `T` on every path of this CPU against one reference of
/// `problem` (declining the problem, or a path, passes); panics with the first failure.
fn every_path_matches<T: convkit::Element + convkit::Registered>(
    problem: &convkit_testkit::ConvProblem,
    context: &str,
) {
    let algorithms = convkit::algorithms::<T>();
    if let Err(failure) =
        convkit_testkit::check_algorithms(&algorithms, convkit_testkit::isas(), problem)
    {
        panic!("{context}: {failure}");
    }
}
