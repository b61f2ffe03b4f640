//! This machine's f32 FMA peak, measured with `convkit_simd::peak` on every available path.

use convkit::Isa;
use std::time::Instant;

/// The measured peak on some number of threads.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Peak {
    /// Threads that ran the probe at once.
    pub threads: usize,
    /// The path that gave the highest throughput.
    pub isa: &'static str,
    /// Median GFLOP/s over the repetitions.
    pub gflops: f64,
}

/// Runs the probe on `threads` threads at once; returns the total GFLOP/s.
fn probe(isa: Isa, threads: usize, iterations: u64) -> f64 {
    let barrier = std::sync::Barrier::new(threads + 1);
    let start = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                std::hint::black_box(convkit_simd::peak::run(isa, iterations));
            });
        }
        barrier.wait();
        Instant::now()
    });
    let seconds = start.elapsed().as_secs_f64();
    (convkit_simd::peak::flops(isa, iterations) * threads as u64) as f64 / seconds / 1e9
}

/// The peak on `threads` threads: every path's median of `repetitions` probes of
/// ~`seconds` each, and the best of them (what "% of peak" divides by).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PeakSet {
    pub threads: usize,
    pub by_isa: Vec<Peak>,
    pub best: Peak,
}

pub fn measure(threads: usize, seconds: f64, repetitions: usize) -> PeakSet {
    let by_isa: Vec<Peak> = convkit_simd::available_isas()
        .iter()
        .map(|&isa| {
            // Calibrate the iteration count to the requested duration on one thread.
            let mut iterations = 1u64 << 16;
            loop {
                let start = Instant::now();
                std::hint::black_box(convkit_simd::peak::run(isa, iterations));
                let elapsed = start.elapsed().as_secs_f64();
                if elapsed >= seconds / 4.0 {
                    iterations = ((seconds / (elapsed / iterations as f64)) as u64).max(1);
                    break;
                }
                iterations *= 2;
            }
            let mut samples: Vec<f64> = (0..repetitions)
                .map(|_| probe(isa, threads, iterations))
                .collect();
            samples.sort_by(f64::total_cmp);
            Peak {
                threads,
                isa: isa.name(),
                gflops: samples[samples.len() / 2],
            }
        })
        .collect();
    let best = *by_isa
        .iter()
        .max_by(|a, b| a.gflops.total_cmp(&b.gflops))
        .expect("the portable path is always available");
    PeakSet {
        threads,
        by_isa,
        best,
    }
}
