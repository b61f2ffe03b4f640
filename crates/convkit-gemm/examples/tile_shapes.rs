//! Times every microkernel tile shape of the widest path on one product, single-threaded:
//! `cargo run --release -p convkit-gemm --example tile_shapes -- [m n k]`.

use convkit_gemm::{Epilogue, KernelShape, Sgemm};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let [m, n, k] = match args[..] {
        [m, n, k] => [m, n, k],
        _ => [384, 480, 2048],
    };
    let isa = convkit_simd::resolve(KernelShape::ISAS, convkit_simd::best());
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
    let mut c = vec![0.0f32; m * n];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    println!("{m}x{n}x{k} on {isa}, one thread, best of 7:");
    for kernel in KernelShape::candidates(isa) {
        let sgemm = Sgemm::with_kernel(kernel);
        let best = (0..7)
            .map(|_| {
                let start = Instant::now();
                pool.install(|| {
                    sgemm.gemm([m, n, k], &a, k, &b, n, &mut c, n, &Epilogue::default())
                })
                .expect("valid product");
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!("  {:>2}x{:<2}: {gflops:7.1} GFLOP/s", kernel.mr, kernel.nr);
    }
}
