//! Half-precision storage converted while packing: an f16 or bf16 im2col+GEMM or direct plan
//! computes exactly what the f32 plan computes on the widened values (the same products,
//! summed in the same order), rounded once. Checked bit for bit on every path of this CPU, for
//! each of im2col's operand layouts (pitched padded copies, stride phases, pixel rows, the
//! per-row lowering, 1x1 layers read through a widening packer, NHWC) and each direct kernel
//! (general over NCHW and NHWC bands, columns at strides 1 and 2, depthwise in both
//! layouts), at sizes that split the output among tasks and stage it block by block, on one
//! and two workers.

use convkit::{
    Activation, Algorithm, ConvSpec, F32Storage, Isa, Layout, Padding, PlanOptions, Registered,
    bf16, f16,
};
use convkit_testkit::{integers, isas, pool};

/// Layers that take each of im2col's operand layouts and each direct kernel.
fn specs() -> Vec<ConvSpec> {
    vec![
        // Pitched columns over padded copies, more output channels than one staged block.
        ConvSpec::new(2, 20, 150, [13, 17], [3, 3]).padding(Padding::symmetric([1, 1])),
        // Pixel rows (a small image), C stored transposed.
        ConvSpec::new(1, 64, 96, [7, 7], [3, 3]).padding(Padding::symmetric([1, 1])),
        // Stride 2, 7x7: padded copies split into phases (a stem), widened at stride 2.
        ConvSpec::new(1, 3, 20, [30, 29], [7, 7])
            .stride([2, 2])
            .padding(Padding::symmetric([3, 3])),
        // Stride 3: the per-row lowering.
        ConvSpec::new(1, 5, 70, [23, 19], [3, 3]).stride([3, 3]),
        // 1x1: the input packed (widened) instead of read in place.
        ConvSpec::new(2, 40, 130, [9, 11], [1, 1]),
        // Grouped and dilated.
        ConvSpec::new(1, 12, 18, [15, 15], [3, 3])
            .groups(3)
            .dilation([2, 2])
            .padding(Padding::symmetric([2, 2])),
        // Depthwise, dense 3x3 and strided 5x5.
        ConvSpec::new(2, 20, 20, [13, 11], [3, 3])
            .groups(20)
            .padding(Padding::symmetric([1, 1])),
        ConvSpec::new(1, 9, 9, [14, 12], [5, 5])
            .groups(9)
            .stride([2, 2])
            .padding(Padding::symmetric([2, 2])),
        // The direct kernel widens NCHW bands eight channels at a time: many channels, and
        // bands longer than one widening run with a channel group of fewer than eight.
        ConvSpec::new(1, 600, 19, [5, 6], [3, 3]).padding(Padding::symmetric([1, 1])),
        ConvSpec::new(1, 6, 8, [80, 80], [3, 3]).padding(Padding::symmetric([1, 1])),
    ]
}

/// The output of `spec` planned for `T` on `isa`, widened.
fn run<T: Registered + F32Storage>(
    spec: &ConvSpec,
    (algorithm, isa): (Algorithm, Isa),
    [input, weights, bias]: [&[f32]; 3],
) -> Vec<f32> {
    let narrow = |values: &[f32]| {
        let mut narrow = vec![T::zero(); values.len()];
        T::narrow(values, &mut narrow);
        narrow
    };
    let options = PlanOptions::new()
        .algorithm(algorithm)
        .activation(Activation::Relu)
        .isa(isa);
    let plan = convkit::plan(spec, &narrow(weights), Some(&narrow(bias)), &options)
        .expect("im2col and direct plan every layer");
    let mut output = vec![T::zero(); spec.output_len().expect("a valid spec")];
    plan.run(&narrow(input), &mut output)
        .expect("lengths match");
    let mut wide = vec![0.0; output.len()];
    T::widen(&output, &mut wide);
    wide
}

/// `run::<T>` equals the f32 plan's output rounded to `T`.
fn check<T: Registered + F32Storage>() {
    for threads in [1, 2] {
        let pool = pool(threads);
        for path in [Algorithm::Im2colGemm, Algorithm::Direct]
            .into_iter()
            .flat_map(|algorithm| isas().iter().map(move |&isa| (algorithm, isa)))
        {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                for spec in specs() {
                    let spec = spec.layout(layout);
                    // Scaled so that sums exceed f16's and bf16's exact integers.
                    let data = [
                        integers(spec.input_len().unwrap(), 1),
                        integers(spec.weight_len().unwrap(), 2)
                            .iter()
                            .map(|w| w * 0.375)
                            .collect(),
                        integers(spec.out_channels(), 3),
                    ];
                    let data = [&data[0][..], &data[1][..], &data[2][..]];
                    let (half, single) = pool
                        .install(|| (run::<T>(&spec, path, data), run::<f32>(&spec, path, data)));
                    let mut rounded = vec![T::zero(); single.len()];
                    T::narrow(&single, &mut rounded);
                    let mut expected = vec![0.0; single.len()];
                    T::widen(&rounded, &mut expected);
                    let mismatch = half
                        .iter()
                        .zip(&expected)
                        .position(|(a, b)| a.to_bits() != b.to_bits());
                    assert!(
                        mismatch.is_none(),
                        "{} {path:?} {threads} thread(s) {spec:?}: first mismatch at {mismatch:?}",
                        T::NAME
                    );
                }
            }
        }
    }
}

#[test]
fn f16_plans_are_the_f32_result_rounded_once() {
    check::<f16>();
}

#[test]
fn bf16_plans_are_the_f32_result_rounded_once() {
    check::<bf16>();
}
