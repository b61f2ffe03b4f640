//! The activation fused after the bias add.

use crate::ConvError;

/// Function applied to every output element after the bias add.
///
/// NaN propagates through every activation (a NaN sum stays NaN), as it does in PyTorch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` for `x ≥ 0`, `slope·x` below.
    LeakyRelu(f32),
    /// `min(max(x, min), max)`: the general form of ReLU6.
    Clamp {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

impl Activation {
    /// Rejects parameters that make the function meaningless (NaN bounds or slope, `min > max`).
    pub fn validate(self) -> Result<Activation, ConvError> {
        let invalid = |reason| ConvError::InvalidActivation {
            activation: format!("{self:?}"),
            reason,
        };
        match self {
            Activation::LeakyRelu(slope) if !slope.is_finite() => {
                Err(invalid("slope must be finite"))
            }
            Activation::Clamp { min, max } if min.is_nan() || max.is_nan() => {
                Err(invalid("bounds must not be NaN"))
            }
            Activation::Clamp { min, max } if min > max => Err(invalid("min must not exceed max")),
            _ => Ok(self),
        }
    }

    /// `[lower, upper]` clamp bounds of this activation where it is a clamp (`None`, `Relu`,
    /// `Relu6`, `Clamp`); `None` for `LeakyRelu`.
    pub fn clamp_bounds(self) -> Option<[f32; 2]> {
        match self {
            Activation::None => Some([f32::NEG_INFINITY, f32::INFINITY]),
            Activation::Relu => Some([0.0, f32::INFINITY]),
            Activation::Relu6 => Some([0.0, 6.0]),
            Activation::Clamp { min, max } => Some([min, max]),
            Activation::LeakyRelu(_) => None,
        }
    }

    /// The activation in f64, the reference's precision. NaN in, NaN out.
    pub fn apply_f64(self, x: f64) -> f64 {
        match self {
            Activation::LeakyRelu(slope) => {
                if x < 0.0 {
                    f64::from(slope) * x
                } else {
                    x
                }
            }
            _ => {
                let [min, max] = self
                    .clamp_bounds()
                    .unwrap_or([f32::NEG_INFINITY, f32::INFINITY]);
                let (min, max) = (f64::from(min), f64::from(max));
                if x < min {
                    min
                } else if x > max {
                    max
                } else {
                    x
                }
            }
        }
    }

    /// The activation in f32, the compute precision of the SIMD algorithms. NaN in, NaN out.
    pub fn apply_f32(self, x: f32) -> f32 {
        match self {
            Activation::LeakyRelu(slope) => {
                if x < 0.0 {
                    slope * x
                } else {
                    x
                }
            }
            _ => {
                let [min, max] = self
                    .clamp_bounds()
                    .unwrap_or([f32::NEG_INFINITY, f32::INFINITY]);
                if x < min {
                    min
                } else if x > max {
                    max
                } else {
                    x
                }
            }
        }
    }

    /// Every kind of activation, with representative parameters (for tests and benches).
    pub const ALL: [Activation; 5] = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::LeakyRelu(0.125),
        Activation::Clamp {
            min: -0.5,
            max: 0.75,
        },
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_their_definitions_and_keep_nan() {
        assert_eq!(Activation::Relu.apply_f64(-2.0), 0.0);
        assert_eq!(Activation::Relu6.apply_f64(7.5), 6.0);
        assert_eq!(Activation::LeakyRelu(0.5).apply_f64(-2.0), -1.0);
        assert_eq!(
            Activation::Clamp {
                min: -1.0,
                max: 1.0
            }
            .apply_f32(-3.0),
            -1.0
        );
        for activation in Activation::ALL {
            assert!(activation.apply_f64(f64::NAN).is_nan(), "{activation:?}");
            assert!(activation.apply_f32(f32::NAN).is_nan(), "{activation:?}");
        }
    }

    #[test]
    fn meaningless_parameters_are_rejected() {
        assert!(Activation::LeakyRelu(f32::NAN).validate().is_err());
        assert!(Activation::Clamp { min: 1.0, max: 0.0 }.validate().is_err());
        assert!(Activation::Clamp { min: 0.0, max: 0.0 }.validate().is_ok());
    }
}
