//! FMA throughput probe: the machine's f32 peak, measured rather than assumed.
//!
//! Each kernel keeps `ACCUMULATORS` independent vector accumulators in registers and issues
//! `acc = acc * m + a` on all of them per iteration. Twelve chains cover the
//! [`FMA_CHAINS`] that the FMA latency needs with slack, and fit in 16 ymm (AVX2) or 32 zmm
//! (AVX-512) registers together with the two constant operands. One FMA lane = 2 FLOP.

use crate::{Simd, SimdOp};
use convkit_core::Isa;

/// Independent multiply-add chains that keep the FMA units busy: latency 4 × 2 pipes on Zen
/// 3/4/5 and recent Intel. Kernels with fewer accumulators wait on the latency.
pub const FMA_CHAINS: usize = 8;

/// Independent accumulator chains per kernel.
pub const ACCUMULATORS: usize = 12;

/// f32 lanes per vector on `isa`'s probe (its row of the ISA table).
pub fn lanes(isa: Isa) -> usize {
    crate::lanes(isa)
}

/// FLOPs executed by [`run`] for `iterations`.
pub fn flops(isa: Isa, iterations: u64) -> u64 {
    iterations * (ACCUMULATORS * lanes(isa) * 2) as u64
}

/// Runs the probe for `iterations` on the current thread and returns a checksum (so the work
/// cannot be optimized away). An unavailable path runs the portable probe instead.
pub fn run(isa: Isa, iterations: u64) -> f32 {
    let isa = if crate::available(isa) {
        isa
    } else {
        Isa::Scalar
    };
    // SAFETY: `isa` is available on this CPU.
    unsafe { crate::dispatch(isa, FmaProbe { iterations }) }
}

/// `acc = acc · m + a` on [`ACCUMULATORS`] vectors, `iterations` times: one fused
/// instruction per vector on the FMA paths, a multiply and an add on the portable one
/// (`wide` cannot emit a fused FMA without compile-time target features).
struct FmaProbe {
    iterations: u64,
}

impl SimdOp for FmaProbe {
    type Output = f32;

    #[inline(always)]
    unsafe fn run<S: Simd>(self) -> f32 {
        // SAFETY: the CPU has S's path (contract); the lane buffer holds 16 ≥ LANES values.
        unsafe {
            let multiplier = S::splat(std::hint::black_box(0.999_999));
            let addend = S::splat(std::hint::black_box(1e-7));
            let mut acc = [S::splat(1.0); ACCUMULATORS];
            for _ in 0..self.iterations {
                for a in &mut acc {
                    *a = S::mul_add(*a, multiplier, addend);
                }
            }
            let mut total = S::zero();
            for a in acc {
                total = S::add(total, a);
            }
            let mut lanes = [0.0f32; 16];
            S::store(lanes.as_mut_ptr(), total);
            lanes[..S::LANES].iter().sum()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_available_probe_computes_the_same_recurrence() {
        let expected = run(Isa::Scalar, 100);
        assert!(expected.is_finite() && expected > 0.0);
        for &isa in crate::testable_isas() {
            let per_lane = run(isa, 100) / lanes(isa) as f32;
            let scalar_per_lane = expected / lanes(Isa::Scalar) as f32;
            assert!(
                (per_lane - scalar_per_lane).abs() <= 1e-3 * scalar_per_lane,
                "{isa}"
            );
        }
    }
}
