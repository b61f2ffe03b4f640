//! Small helpers the workspace's tests share: thread pools, integer-valued data, layout
//! conversion and the paths to test.

use convkit_core::Isa;

/// A rayon pool of `threads` workers.
///
/// # Panics
/// When the pool cannot be built.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

/// `len` integer values in `-4..=4`, a deterministic pattern per `seed`: exact in every
/// storage type, and every partial sum of a small reduction exact in f32.
pub fn integers(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7 + seed * 13) % 9) as f32 - 4.0)
        .collect()
}

/// An NCHW tensor `[n][c][h][w]` reordered to NHWC.
///
/// # Panics
/// When `data` does not hold `n·c·h·w` values.
pub fn nchw_to_nhwc<T: Copy>(data: &[T], [n, c, h, w]: [usize; 4]) -> Vec<T> {
    assert_eq!(data.len(), n * c * h * w, "nchw_to_nhwc: length");
    let mut out = data.to_vec();
    for ni in 0..n {
        for ci in 0..c {
            for pixel in 0..h * w {
                out[(ni * h * w + pixel) * c + ci] = data[(ni * c + ci) * h * w + pixel];
            }
        }
    }
    out
}

/// The paths a test checks: every one this CPU has (a required one it lacks fails, see
/// [`convkit_simd::testable_isas`]).
pub fn isas() -> &'static [Isa] {
    convkit_simd::testable_isas()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhwc_puts_each_pixels_channels_together() {
        // Two channels of a 1x3 image: [a0 a1 a2 | b0 b1 b2] -> [a0 b0 a1 b1 a2 b2].
        let nchw = [1, 2, 3, 10, 20, 30];
        assert_eq!(nchw_to_nhwc(&nchw, [1, 2, 1, 3]), [1, 10, 2, 20, 3, 30]);
        assert!(
            integers(50, 3)
                .iter()
                .all(|v| v.fract() == 0.0 && v.abs() <= 4.0)
        );
    }
}
