//! Which algorithms exist for which element type.

use convkit_core::{ConvAlgorithm, Element};
use convkit_direct::Direct;
use convkit_im2col::Im2colGemm;
use convkit_reference::Reference;
use convkit_winograd::Winograd;

/// Element types convkit can plan for, each with its registry of algorithms.
pub trait Registered: Element {
    /// Every algorithm implemented for this element type.
    fn registered() -> Vec<&'static dyn ConvAlgorithm<Self>>;
}

impl Registered for f32 {
    fn registered() -> Vec<&'static dyn ConvAlgorithm<f32>> {
        vec![
            &Reference,
            &Im2colGemm,
            &Direct,
            &Winograd::F2,
            &Winograd::F4,
            &Winograd::F6,
        ]
    }
}

impl Registered for f64 {
    fn registered() -> Vec<&'static dyn ConvAlgorithm<f64>> {
        vec![&Reference]
    }
}

/// Half-precision storage: the reference, and every SIMD algorithm natively (converted while
/// packing: the padded copies, panels and bands widen the input; the staged C blocks, output
/// bands and stored vectors are rounded once into the output).
macro_rules! half_storage {
    ($($element:ty),*) => {$(
        impl Registered for $element {
            fn registered() -> Vec<&'static dyn ConvAlgorithm<$element>> {
                vec![
                    &Reference,
                    &Im2colGemm,
                    &Direct,
                    &Winograd::F2,
                    &Winograd::F4,
                    &Winograd::F6,
                ]
            }
        }
    )*};
}

half_storage!(half::f16, half::bf16);

/// Every algorithm registered for `T`: what `Algorithm::Auto` chooses from, and what the
/// conformance suite and the `differential` fuzz target check.
pub fn algorithms<T: Registered>() -> Vec<&'static dyn ConvAlgorithm<T>> {
    T::registered()
}
