//! The cost model: the estimated run time Auto compares (`estimated_seconds`), and the terms
//! the strategy choice weighs (what a transposed store and crowded L1 sets cost). The
//! constants were fitted on `cargo xtask bench`; their figures are in `docs/tuning.md`.

use crate::strategy::is_pointwise;
use convkit_core::{ConvShape, Correction, Isa, Layout};

/// The fitted correction of [`estimated_seconds`] (`docs/tuning.md`, "The cost model's
/// correction").
pub(crate) const CORRECTION: Correction = Correction {
    weights: [
        0.227, 0.032, -0.029, 0.011, 0.093, 0.184, -0.187, -0.063, 0.112, -0.269, 0.055, 0.114,
        -0.121, 0.029, -0.128, -0.277, -0.038,
    ],
};

/// The cost model's constants for one path, fitted to `cargo xtask bench` (one thread).
struct PathRates {
    /// FLOP/s of a large GEMM.
    large: f64,
    /// Output channels per group from which the broadcast side fills the microkernel's rows.
    full_channels: f64,
    /// Reduction length from which per-tile overheads stop showing.
    full_depth: f64,
    /// Pixels per product from which packing and edge tiles stop showing.
    full_pixels: f64,
    /// Share of the rate left where strides or dilations make the lowering gather taps.
    gathered: f64,
    /// Fixed cost of a run (task split, packing setup), from the smallest suite layers.
    overhead_seconds: f64,
    /// Cost of each run of a tap's channels an NHWC lowering packs (its 8- or 16-lane
    /// interleaves set up per run).
    nhwc_run_seconds: f64,
}

impl PathRates {
    /// AVX-512 fitted on Zen 5 (8-row tiles: 8 output channels fill them); AVX2 and the
    /// portable path on Zen 3 (`docs/tuning.md`, PathRates).
    fn of(isa: Isa) -> PathRates {
        let zen3 = |large| PathRates {
            large,
            full_channels: 16.0,
            full_depth: 64.0,
            full_pixels: 64.0,
            gathered: 1.0,
            overhead_seconds: 3e-6,
            nhwc_run_seconds: 16e-9,
        };
        match isa {
            Isa::Avx512 => PathRates {
                large: 240e9,
                full_channels: 8.0,
                full_depth: 40.0,
                full_pixels: 256.0,
                gathered: 0.92,
                overhead_seconds: 0.5e-6,
                nhwc_run_seconds: 9e-9,
            },
            Isa::Avx2 => zen3(100e9),
            _ => zen3(15e9),
        }
    }
}

/// Estimated run time of `shape` on `isa` with `workers` threads: a fixed cost plus the
/// FLOPs, split evenly over the workers, at the path's large-GEMM rate, scaled down where
/// the GEMM is small in one dimension — output channels per group (the broadcast side: 1 for
/// depthwise), the reduction `C/g·KH·KW` (per-tile overheads), and the pixels of one
/// product — and where the taps are gathered.
pub(crate) fn estimated_seconds(shape: &ConvShape, isa: Isa, workers: usize) -> f64 {
    let rates = PathRates::of(isa);
    let [oh, ow] = shape.output_hw();
    let pixels = match shape.layout() {
        Layout::Nchw => oh * ow,
        Layout::Nhwc => shape.batch() * oh * ow,
    };
    let channels = (shape.out_channels_per_group() as f64 / rates.full_channels).min(1.0);
    let depth = (shape.reduction_len() as f64 / rates.full_depth)
        .sqrt()
        .min(1.0);
    let width = (pixels as f64 / rates.full_pixels).sqrt().min(1.0);
    let gathered = if shape.stride() == [1, 1] && shape.dilation() == [1, 1] {
        1.0
    } else {
        rates.gathered
    };
    let rate = rates.large * channels * depth * width * gathered;
    // NHWC layers other than pointwise ones pack every lowered value into the panels, a run
    // of a tap's channels at a time, every group's: about 0.25 ns a value plus a cost per run
    // (`docs/tuning.md`, NHWC packing cost).
    let packing = match shape.layout() {
        Layout::Nhwc if !is_pointwise(shape) => {
            let values = (pixels * shape.reduction_len() * shape.groups()) as f64;
            values * (0.25e-9 + rates.nhwc_run_seconds / shape.in_channels_per_group() as f64)
        }
        _ => 0.0,
    };
    rates.overhead_seconds + (shape.flops() as f64 / rate + packing) / workers as f64
}

/// What the transposed store of a tile costs beyond a pitched one on `isa`, in depth steps of
/// the tile: [`Strategy::PixelRows`](crate::strategy::Strategy::PixelRows) must compute
/// `1 + this / depth` times less. AVX2's 6×16 tile stores 16 output planes for 6 pixels
/// (8-lane transposes, 6 rows of 8 filled), so the store weighs more on each tile's 12 FMAs
/// per step than AVX-512's (`docs/tuning.md`, transposed_store_steps; the estimate does not
/// see that a strided layer's pixel rows read an unphased copy).
pub(crate) fn transposed_store_steps(isa: Isa) -> f64 {
    match isa {
        Isa::Avx2 => 64.0,
        _ => 16.0,
    }
}

/// How crowded the transposed store of a pixel-rows tile leaves the L1 sets it touches, as
/// a multiple of a fair share (a third of the ways of the 64-set L1 that x86 cores have):
/// the tile stores one line into each of `lines` output planes `plane_len` values apart,
/// and planes of a multiple of 4 KiB all land in one set (`docs/tuning.md`,
/// l1_set_crowding).
pub(crate) fn l1_set_crowding(plane_len: usize, lines: usize) -> f64 {
    const SETS: usize = 64;
    const FAIR_SHARE: usize = 4;
    let step = plane_len.wrapping_mul(std::mem::size_of::<f32>()) / 64 % SETS;
    let sets = SETS / gcd(step, SETS);
    lines.div_ceil(sets) as f64 / FAIR_SHARE as f64
}

/// Greatest common divisor (`gcd(0, b) = b`).
fn gcd(mut a: usize, mut b: usize) -> usize {
    while a != 0 {
        (a, b) = (b % a, a);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::l1_set_crowding;

    #[test]
    fn planes_of_a_multiple_of_4_kib_crowd_the_l1_sets() {
        // 224×224 values: 49 pages, every line in one set.
        assert_eq!(l1_set_crowding(224 * 224, 64), 16.0);
        // 112×112: 784 lines, a step of 16 sets, four sets in all.
        assert_eq!(l1_set_crowding(112 * 112, 64), 4.0);
        // 56×56: a step of 4 sets, sixteen sets: a fair share.
        assert_eq!(l1_set_crowding(56 * 56, 64), 1.0);
        // 28×28: 49 lines, every set.
        assert_eq!(l1_set_crowding(28 * 28, 64), 0.25);
    }
}
