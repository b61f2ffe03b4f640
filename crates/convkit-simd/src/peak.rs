//! FMA throughput probe: the machine's f32 peak, measured rather than assumed.
//!
//! Each kernel keeps `ACCUMULATORS` independent vector accumulators in registers and issues
//! `acc = acc * m + a` on all of them per iteration. Twelve chains cover Zen 4's 4-cycle FMA
//! latency on its 2 FMA pipes (8 needed) with slack, and fit in 16 ymm (AVX2) or 32 zmm
//! (AVX-512) registers together with the two constant operands. One FMA lane = 2 FLOP.

use convkit_core::Isa;

/// Independent accumulator chains per kernel.
pub const ACCUMULATORS: usize = 12;

/// f32 lanes per vector on `isa`'s probe (the portable probe uses `wide::f32x8`).
pub const fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Neon => 4,
        Isa::Scalar | Isa::Avx2 => 8,
    }
}

/// FLOPs executed by [`run`] for `iterations`.
pub const fn flops(isa: Isa, iterations: u64) -> u64 {
    iterations * (ACCUMULATORS * lanes(isa) * 2) as u64
}

/// Runs the probe for `iterations` on the current thread and returns a checksum (so the work
/// cannot be optimized away). `isa` must be available on this CPU; an unavailable path runs
/// the portable probe instead.
pub fn run(isa: Isa, iterations: u64) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 && crate::available(Isa::Avx512) {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { x86::fma_avx512(iterations) };
        }
        if isa == Isa::Avx2 && crate::available(Isa::Avx2) {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { x86::fma_avx2(iterations) };
        }
    }
    portable(iterations)
}

/// Portable probe on `wide` (multiply then add: `wide` cannot emit a fused FMA without
/// compile-time target features).
fn portable(iterations: u64) -> f32 {
    use wide::f32x8;
    let multiplier = f32x8::splat(std::hint::black_box(0.999_999));
    let addend = f32x8::splat(std::hint::black_box(1e-7));
    let mut acc = [f32x8::splat(1.0); ACCUMULATORS];
    for _ in 0..iterations {
        for a in &mut acc {
            *a = *a * multiplier + addend;
        }
    }
    acc.iter().map(|a| a.reduce_add()).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACCUMULATORS;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iterations: u64) -> f32 {
        let multiplier = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let addend = _mm256_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS];
        for _ in 0..iterations {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, multiplier, addend);
            }
        }
        let mut total = _mm256_setzero_ps();
        for a in acc {
            total = _mm256_add_ps(total, a);
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds exactly 8 f32, the width of one unaligned 256-bit store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
        lanes.iter().sum()
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iterations: u64) -> f32 {
        let multiplier = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let addend = _mm512_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS];
        for _ in 0..iterations {
            for a in &mut acc {
                *a = _mm512_fmadd_ps(*a, multiplier, addend);
            }
        }
        let mut total = _mm512_setzero_ps();
        for a in acc {
            total = _mm512_add_ps(total, a);
        }
        _mm512_reduce_add_ps(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_available_probe_computes_the_same_recurrence() {
        let expected = run(Isa::Scalar, 100);
        assert!(expected.is_finite() && expected > 0.0);
        for &isa in crate::available_isas() {
            let per_lane = run(isa, 100) / lanes(isa) as f32;
            let scalar_per_lane = expected / lanes(Isa::Scalar) as f32;
            assert!(
                (per_lane - scalar_per_lane).abs() <= 1e-3 * scalar_per_lane,
                "{isa}"
            );
        }
    }
}
