//! Criterion benches of the reference convolution (the baseline every algorithm is
//! compared with). Run: `cargo bench --bench reference`.

use convkit::{Algorithm, ConvSpec, Padding, PlanOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn reference(c: &mut Criterion) {
    let mut group = c.benchmark_group("reference");
    group.sample_size(10);
    let shapes = [
        ("mnist_conv2_5x5", ConvSpec::new(1, 8, 16, [12, 12], [5, 5])),
        (
            "cifar_conv1_3x3",
            ConvSpec::new(1, 3, 32, [32, 32], [3, 3]).padding(Padding::symmetric([1, 1])),
        ),
    ];
    for (name, spec) in shapes {
        let weights = vec![0.01f32; spec.weight_len().expect("valid bench shape")];
        let input = vec![1.0f32; spec.input_len().expect("valid bench shape")];
        let mut output = vec![0.0f32; spec.output_len().expect("valid bench shape")];
        let options = PlanOptions::new().algorithm(Algorithm::Reference);
        let plan = convkit::plan(&spec, &weights, None, &options).expect("plannable bench shape");
        group.throughput(Throughput::Elements(
            spec.flops().expect("valid bench shape"),
        ));
        group.bench_function(name, |b| {
            b.iter(|| plan.run(&input, &mut output).expect("run"));
        });
    }
    group.finish();
}

criterion_group!(benches, reference);
criterion_main!(benches);
