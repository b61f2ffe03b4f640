//! What `Algorithm::Auto` compares: each algorithm's estimate of a run ([`Cost`]), made of an
//! analytic model (FLOPs over the kernel's rate, copies, stores: written by each algorithm)
//! times a fitted correction ([`Correction`]) over a few shape features ([`CostFeatures`]).
//!
//! The analytic models see the mechanisms their authors thought of; real layers have more
//! (L2 spills, short reduction chains, strided gathers, small images). The correction is
//! `exp(w · f)` with `f` the features below and `w` fitted per algorithm by
//! `cargo xtask bench --planner-check N` on generated layers (least squares of
//! `ln(measured / analytic)`, ridge-regularized), so that the estimates of different
//! algorithms compare where the analytic terms alone do not. The fit, its figures and how to
//! redo it are in `docs/tuning.md` ("The cost model's correction").

use crate::{ConvShape, Layout};

/// Number of features of [`CostFeatures`].
pub const COST_FEATURES: usize = 17;

/// The features a [`Correction`] weighs, each a plain function of the shape (logarithms of
/// sizes, indicators of kinds of layer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostFeatures(pub [f64; COST_FEATURES]);

impl CostFeatures {
    /// Feature names, in order (the planner check writes them beside the values).
    pub const NAMES: [&'static str; COST_FEATURES] = [
        "bias",
        "ln_channels_per_group",
        "ln_outputs_per_group",
        "ln_output_pixels",
        "ln_spill",
        "strided",
        "nhwc",
        "pointwise",
        "one_d",
        "depthwise",
        "ln_taps",
        "dilated",
        "strided_pointwise",
        "ln_batch",
        "inv_channels_per_group",
        "inv_outputs_per_group",
        "strided_one_d",
    ];

    /// Activations and outputs of one run beyond this many bytes no longer stay in a core's
    /// L2 (1 MiB on Zen 4 and 5 and most Intel cores).
    const CACHED_BYTES: f64 = (1 << 20) as f64;

    /// The features of `shape`.
    pub fn of(shape: &ConvShape) -> CostFeatures {
        let [oh, ow] = shape.output_hw();
        let [kh, kw] = shape.kernel_hw();
        let strided = shape.stride() != [1, 1];
        let pointwise = kh * kw == 1;
        let one_d = shape.input_hw()[0] == 1 && kh == 1;
        let bytes = (shape.input_len() + shape.output_len()) as f64 * 4.0;
        let ln = |value: usize| (value.max(1) as f64).ln();
        let flag = |value: bool| if value { 1.0 } else { 0.0 };
        CostFeatures([
            1.0,
            ln(shape.in_channels_per_group()),
            ln(shape.out_channels_per_group()),
            ln(oh * ow),
            (bytes / Self::CACHED_BYTES).max(1.0).ln(),
            flag(strided),
            flag(shape.layout() == Layout::Nhwc),
            flag(pointwise),
            flag(one_d),
            flag(shape.groups() > 1 && shape.in_channels_per_group() == 1),
            ln(kh * kw),
            flag(shape.dilation() != [1, 1]),
            flag(strided && pointwise),
            ln(shape.batch()),
            // Per-output work that does not shrink with the reduction (stores, setup of a
            // chain) and per-input work that does not shrink with the outputs (packing).
            1.0 / shape.in_channels_per_group() as f64,
            1.0 / shape.out_channels_per_group() as f64,
            flag(strided && one_d),
        ])
    }
}

/// A fitted correction of an analytic estimate: the estimate times `exp(weights · features)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correction {
    pub weights: [f64; COST_FEATURES],
}

impl Correction {
    /// No correction (a factor of 1).
    pub const NONE: Correction = Correction {
        weights: [0.0; COST_FEATURES],
    };

    /// The factor this correction applies on `shape`.
    pub fn factor(&self, shape: &ConvShape) -> f64 {
        let features = CostFeatures::of(shape).0;
        let exponent: f64 = self.weights.iter().zip(features).map(|(w, f)| w * f).sum();
        exponent.exp()
    }
}

/// An algorithm's estimate of one run's cost, used by `Algorithm::Auto`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Cost {
    /// Estimated wall-clock seconds for one run on the current rayon pool's threads (the
    /// plan's work is cut for that pool, and some algorithms scale better than others):
    /// the analytic estimate with the algorithm's correction applied.
    pub seconds: f64,
    /// The analytic estimate alone (what a new correction is fitted against).
    pub analytic_seconds: f64,
}

impl Cost {
    /// The cost of an `analytic_seconds` estimate of `shape` corrected by `correction`.
    pub fn corrected(analytic_seconds: f64, correction: &Correction, shape: &ConvShape) -> Cost {
        Cost {
            seconds: analytic_seconds * correction.factor(shape),
            analytic_seconds,
        }
    }

    /// An estimate without a correction (the reference: never chosen by Auto).
    pub const fn analytic(seconds: f64) -> Cost {
        Cost {
            seconds,
            analytic_seconds: seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConvSpec, Padding};

    #[test]
    fn features_name_the_kind_of_layer() {
        let depthwise = ConvSpec::new(1, 32, 32, [28, 28], [3, 3])
            .padding(Padding::symmetric([1, 1]))
            .stride([2, 2])
            .groups(32)
            .shape()
            .unwrap();
        let f = CostFeatures::of(&depthwise).0;
        let named = |name: &str| f[CostFeatures::NAMES.iter().position(|n| *n == name).unwrap()];
        assert_eq!(named("depthwise"), 1.0);
        assert_eq!(named("strided"), 1.0);
        assert_eq!(named("pointwise"), 0.0);
        // Logarithms compared within a tolerance: miri perturbs transcendental results.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(named("ln_output_pixels"), (14.0f64 * 14.0).ln()));
        let one_d = ConvSpec::new(2, 8, 8, [1, 100], [1, 3]).shape().unwrap();
        let f = CostFeatures::of(&one_d).0;
        assert_eq!(f[8], 1.0);
        assert!(close(f[13], 2.0f64.ln()));
    }

    #[test]
    fn a_correction_scales_the_analytic_estimate() {
        let shape = ConvSpec::new(1, 8, 8, [8, 8], [1, 1]).shape().unwrap();
        let mut weights = [0.0; COST_FEATURES];
        weights[0] = 2.0f64.ln();
        let cost = Cost::corrected(1e-3, &Correction { weights }, &shape);
        assert!((cost.seconds - 2e-3).abs() < 1e-9);
        assert_eq!(cost.analytic_seconds, 1e-3);
        assert_eq!(
            Cost::corrected(1e-3, &Correction::NONE, &shape).seconds,
            1e-3
        );
    }
}
