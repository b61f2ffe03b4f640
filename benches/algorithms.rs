//! Criterion benches, one group per algorithm family, on a few suite layers (NCHW, f32,
//! widest ISA path). Run: `cargo bench --bench algorithms`; criterion writes its HTML report
//! under `target/criterion/`. `cargo xtask bench` is the full-suite report.

use convkit::{Algorithm, ConvSpec, Padding, PlanOptions};
use convkit_gemm::{Epilogue, Sgemm};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn layers() -> [(&'static str, ConvSpec); 3] {
    [
        ("mnist_conv2_5x5", ConvSpec::new(1, 8, 16, [12, 12], [5, 5])),
        (
            "cifar_conv1_3x3",
            ConvSpec::new(1, 3, 32, [32, 32], [3, 3]).padding(Padding::symmetric([1, 1])),
        ),
        (
            "resnet_3x3_128",
            ConvSpec::new(1, 128, 128, [28, 28], [3, 3]).padding(Padding::symmetric([1, 1])),
        ),
    ]
}

/// One group: every layer through `algorithm`.
fn convolutions(c: &mut Criterion, algorithm: Algorithm, layers: &[(&'static str, ConvSpec)]) {
    let mut group = c.benchmark_group(algorithm.name());
    group.sample_size(10);
    for &(name, spec) in layers {
        let weights = vec![0.01f32; spec.weight_len().expect("valid bench shape")];
        let input = vec![1.0f32; spec.input_len().expect("valid bench shape")];
        let mut output = vec![0.0f32; spec.output_len().expect("valid bench shape")];
        let options = PlanOptions::new().algorithm(algorithm);
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

/// The reference on the two small layers only (it runs at about 1.5 GFLOP/s).
fn reference(c: &mut Criterion) {
    convolutions(c, Algorithm::Reference, &layers()[..2]);
}

fn im2col_gemm(c: &mut Criterion) {
    convolutions(c, Algorithm::Im2colGemm, &layers());
}

fn direct(c: &mut Criterion) {
    convolutions(c, Algorithm::Direct, &layers());
}

/// The three tile sizes on the 3x3 layers (their only ground).
fn winograd(c: &mut Criterion) {
    for algorithm in [
        Algorithm::WinogradF2,
        Algorithm::WinogradF4,
        Algorithm::WinogradF6,
    ] {
        convolutions(c, algorithm, &layers()[1..]);
    }
}

/// What a user gets without choosing.
fn auto(c: &mut Criterion) {
    convolutions(c, Algorithm::Auto, &layers());
}

/// The packed SGEMM alone, square sizes.
fn sgemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(10);
    let isa = convkit_simd::resolve(convkit_gemm::KernelShape::ISAS, convkit_simd::best());
    let sgemm = Sgemm::new(isa);
    for size in [256usize, 512] {
        let a = vec![0.5f32; size * size];
        let b = vec![0.25f32; size * size];
        let mut out = vec![0.0f32; size * size];
        group.throughput(Throughput::Elements(2 * (size as u64).pow(3)));
        group.bench_function(format!("{size}x{size}x{size}"), |bench| {
            bench.iter(|| {
                sgemm
                    .gemm(
                        [size; 3],
                        &a,
                        size,
                        &b,
                        size,
                        &mut out,
                        size,
                        &Epilogue::default(),
                    )
                    .expect("valid sgemm")
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    reference,
    im2col_gemm,
    direct,
    winograd,
    auto,
    sgemm
);
criterion_main!(benches);
