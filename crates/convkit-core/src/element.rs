//! The element types a convolution can store its tensors in.

use half::{bf16, f16};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// A tensor element type: `f32`, `f64`, `half::f16` or `half::bf16`.
///
/// `f16` and `bf16` are storage types: the SIMD algorithms compute in f32 and round once on
/// store; the reference computes in f64 for every type.
pub trait Element:
    num_traits::Float + Default + Send + Sync + std::fmt::Debug + 'static + sealed::Sealed
{
    /// `"f32"`, `"f64"`, `"f16"` or `"bf16"`.
    const NAME: &'static str;
    /// Unit roundoff `2^-p` (half an ulp of 1.0): the relative error of one rounding.
    const UNIT_ROUNDOFF: f64;
    /// The smallest positive subnormal: bounds the absolute error of rounding a tiny value.
    const MIN_POSITIVE_SUBNORMAL: f64;

    /// Exact widening to f64.
    fn to_f64_exact(self) -> f64;
    /// Round-to-nearest-even from f64 (one rounding).
    fn from_f64_rounded(value: f64) -> Self;
    /// Widening to f32 (exact except for f64, which rounds).
    fn to_f32_lossy(self) -> f32;
    /// Round-to-nearest-even from f32.
    fn from_f32_rounded(value: f32) -> Self;
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    const UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;
    const MIN_POSITIVE_SUBNORMAL: f64 = f32::from_bits(1) as f64;
    fn to_f64_exact(self) -> f64 {
        f64::from(self)
    }
    fn from_f64_rounded(value: f64) -> f32 {
        value as f32
    }
    fn to_f32_lossy(self) -> f32 {
        self
    }
    fn from_f32_rounded(value: f32) -> f32 {
        value
    }
}

impl Element for f64 {
    const NAME: &'static str = "f64";
    const UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;
    const MIN_POSITIVE_SUBNORMAL: f64 = f64::from_bits(1);
    fn to_f64_exact(self) -> f64 {
        self
    }
    fn from_f64_rounded(value: f64) -> f64 {
        value
    }
    fn to_f32_lossy(self) -> f32 {
        self as f32
    }
    fn from_f32_rounded(value: f32) -> f64 {
        f64::from(value)
    }
}

impl Element for f16 {
    const NAME: &'static str = "f16";
    const UNIT_ROUNDOFF: f64 = 4.8828125e-4; // 2^-11
    const MIN_POSITIVE_SUBNORMAL: f64 = 5.960_464_477_539_063e-8; // 2^-24
    fn to_f64_exact(self) -> f64 {
        self.to_f64()
    }
    fn from_f64_rounded(value: f64) -> f16 {
        f16::from_f64(value)
    }
    fn to_f32_lossy(self) -> f32 {
        self.to_f32()
    }
    fn from_f32_rounded(value: f32) -> f16 {
        f16::from_f32(value)
    }
}

impl Element for bf16 {
    const NAME: &'static str = "bf16";
    const UNIT_ROUNDOFF: f64 = 3.90625e-3; // 2^-8
    const MIN_POSITIVE_SUBNORMAL: f64 = 9.183_549_615_799_121e-41; // 2^-133
    fn to_f64_exact(self) -> f64 {
        self.to_f64()
    }
    fn from_f64_rounded(value: f64) -> bf16 {
        bf16::from_f64(value)
    }
    fn to_f32_lossy(self) -> f32 {
        self.to_f32()
    }
    fn from_f32_rounded(value: f32) -> bf16 {
        bf16::from_f32(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_constants<T: Element>() {
        let one_plus = T::from_f64_rounded(1.0 + T::UNIT_ROUNDOFF * 2.0);
        assert!(one_plus.to_f64_exact() > 1.0, "{}", T::NAME);
        let half_ulp = T::from_f64_rounded(1.0 + T::UNIT_ROUNDOFF);
        assert_eq!(
            half_ulp.to_f64_exact(),
            1.0,
            "{} rounds ties to even",
            T::NAME
        );
        let tiny = T::from_f64_rounded(T::MIN_POSITIVE_SUBNORMAL);
        assert_eq!(
            tiny.to_f64_exact(),
            T::MIN_POSITIVE_SUBNORMAL,
            "{}",
            T::NAME
        );
        assert_eq!(
            T::from_f64_rounded(T::MIN_POSITIVE_SUBNORMAL / 4.0).to_f64_exact(),
            0.0
        );
    }

    #[test]
    fn roundoff_and_subnormal_constants_are_right() {
        check_constants::<f32>();
        check_constants::<f64>();
        check_constants::<f16>();
        check_constants::<bf16>();
    }
}
