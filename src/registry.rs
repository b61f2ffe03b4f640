//! Which algorithms exist for which element type, declared once in
//! [`registered_algorithms!`](crate::registered_algorithms): the registry below and the
//! conformance suite (`tests/conformance.rs`) both expand that one declaration, so a new
//! algorithm is one line there and is checked on every path as soon as it is registered.

use convkit_core::{ConvAlgorithm, Element};

/// Element types convkit can plan for, each with its registry of algorithms.
pub trait Registered: Element {
    /// Every algorithm implemented for this element type.
    fn registered() -> Vec<&'static dyn ConvAlgorithm<Self>>;
}

/// The registry: for each element type (`name = type`), every algorithm implemented for it
/// (`name = algorithm`), handed to the macro `$then`. Half-precision storage has every SIMD
/// algorithm natively (converted while packing: the padded copies, panels and bands widen
/// the input; the staged C blocks, output bands and stored vectors are rounded once into the
/// output).
///
/// A test expands it to instantiate one check per registered algorithm and element type:
///
/// ```
/// macro_rules! count {
///     ($($element:ident = $ty:ty: $($name:ident = $algorithm:expr),+;)*) => {
///         [$($(stringify!($name)),+),*].len()
///     };
/// }
/// let pairs = convkit::registered_algorithms!(count);
/// let expected: usize = [
///     convkit::algorithms::<f32>().len(),
///     convkit::algorithms::<f64>().len(),
///     convkit::algorithms::<half::f16>().len(),
///     convkit::algorithms::<half::bf16>().len(),
/// ]
/// .iter()
/// .sum();
/// assert_eq!(pairs, expected);
/// ```
#[macro_export]
macro_rules! registered_algorithms {
    ($then:ident) => {
        $crate::registered_algorithms! {
            @expand $then;
            simd_storage: [f32 = ::core::primitive::f32, f16 = $crate::f16, bf16 = $crate::bf16];
            reference_only: [f64 = ::core::primitive::f64]
        }
    };
    // Every SIMD algorithm for each storage type, written once; f64 has the reference.
    (@expand $then:ident;
        simd_storage: [$($element:ident = $ty:ty),+];
        reference_only: [$($ref_element:ident = $ref_ty:ty),+]
    ) => {
        $then! {
            $($element = $ty:
                reference = $crate::__registry::Reference,
                im2col_gemm = $crate::__registry::Im2colGemm,
                direct = $crate::__registry::Direct,
                winograd_f2 = $crate::__registry::Winograd::F2,
                winograd_f4 = $crate::__registry::Winograd::F4,
                winograd_f6 = $crate::__registry::Winograd::F6;)+
            $($ref_element = $ref_ty: reference = $crate::__registry::Reference;)+
        }
    };
}

/// [`Registered`] for every element type of the declaration.
macro_rules! impl_registered {
    ($($element:ident = $ty:ty: $($name:ident = $algorithm:expr),+;)*) => {$(
        impl Registered for $ty {
            fn registered() -> Vec<&'static dyn ConvAlgorithm<$ty>> {
                vec![$(&$algorithm),+]
            }
        }
    )*};
}

registered_algorithms!(impl_registered);

/// Every algorithm registered for `T`: what `Algorithm::Auto` chooses from, and what the
/// conformance suite and the `differential` fuzz target check.
pub fn algorithms<T: Registered>() -> Vec<&'static dyn ConvAlgorithm<T>> {
    T::registered()
}
