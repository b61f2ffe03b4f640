//! The ISA table and the one dispatch that every kernel crate uses.
//!
//! Each instruction-set path is one row of `isa_table!`: its [`Simd`] type, its [`Isa`]
//! name, its lanes and vector registers, whether it fuses multiply-adds and converts f16 in
//! hardware, and the `#[target_feature]` list its code is compiled with. That list is
//! written once, here: the row expands into the path's detection and into the one
//! `#[target_feature]` wrapper ([`IsaPath::entry`]) through which every kernel body runs.
//!
//! A kernel body is written once, generic over the path, as a [`SimdKernel`] (arguments as
//! one value, for entry points kept in a plan as function pointers) or a [`SimdOp`] (the
//! arguments are the value itself, for a call made on the spot). [`entry`] and [`dispatch`]
//! are the runtime match from an [`Isa`] to that path's wrapper; [`IsaPath::entry`] and
//! [`IsaPath::run`] name the path statically (a tile list of one path compiles no other
//! path's tiles).
//!
//! The wrapper's body must inline into it for the path's instructions to be used: the
//! `run` methods of kernels and ops, and every function they call down to the [`Simd`]
//! methods, are `#[inline(always)]`.
//!
//! Adding a path (NEON, say) is one [`Simd`] impl in `vector/` and one row below; every
//! kernel of every algorithm then compiles for it.

use crate::Simd;
use crate::vector::Portable;
#[cfg(target_arch = "x86_64")]
use crate::vector::{Avx2, Avx512};
use convkit_core::Isa;
use std::marker::PhantomData;

/// A kernel body written once over [`Simd`]: it borrows its context (the plan-time data it
/// reads throughout, such as a kernel's packed weights and geometry, or a tile's epilogue),
/// borrows a buffer exclusively (a worker's band or panel buffer; empty where there is none)
/// and takes its arguments by value.
///
/// The context and the buffer are reference parameters of the path's entry point itself,
/// so that the compiler knows that the kernel's stores through raw output pointers leave
/// them alone, and keeps the context's fields and the buffer's values in registers across
/// those stores; references folded into one by-value argument lose that.
pub trait SimdKernel {
    /// What every call borrows.
    type Context: ?Sized;
    /// The arguments of one call.
    type Args;
    /// What one call returns.
    type Output;

    /// The body, compiled for path `S` (inline it: `#[inline(always)]`).
    ///
    /// # Safety
    /// The CPU has `S`'s path, and `context` and `args` meet the kernel's own contract.
    unsafe fn run<S: Simd>(
        context: &Self::Context,
        buffer: &mut [f32],
        args: Self::Args,
    ) -> Self::Output;
}

/// A kernel's entry point on one path: the path's `#[target_feature]` wrapper around
/// [`SimdKernel::run`].
///
/// # Safety (of a call)
/// The CPU has the entry's path, and the arguments meet the kernel's contract.
pub type Entry<K> = unsafe fn(
    &<K as SimdKernel>::Context,
    &mut [f32],
    <K as SimdKernel>::Args,
) -> <K as SimdKernel>::Output;

/// A body written once over [`Simd`] whose value is its arguments: a call made on the spot
/// through [`dispatch`] or [`IsaPath::run`]. (References inside the value are not known to
/// stay unchanged by the body's stores: a hot kernel that reads plan-time data throughout
/// borrows it as a [`SimdKernel`]'s context instead.)
pub trait SimdOp {
    /// What the call returns.
    type Output;

    /// The body, compiled for path `S` (inline it: `#[inline(always)]`).
    ///
    /// # Safety
    /// The CPU has `S`'s path, and `self` meets the op's own contract.
    unsafe fn run<S: Simd>(self) -> Self::Output;
}

/// The [`SimdKernel`] that runs a [`SimdOp`].
struct OpKernel<Op>(PhantomData<Op>);

impl<Op: SimdOp> SimdKernel for OpKernel<Op> {
    type Context = ();
    type Args = Op;
    type Output = Op::Output;

    #[inline(always)]
    unsafe fn run<S: Simd>(_: &(), _: &mut [f32], op: Op) -> Op::Output {
        // SAFETY: forwarded contract.
        unsafe { op.run::<S>() }
    }
}

/// One row of the ISA table, as constants of the path's [`Simd`] type.
pub trait IsaPath: Copy + Send + Sync + 'static {
    /// The path's name.
    const ISA: Isa;
    /// f32 lanes per vector.
    const LANES: usize;
    /// Vector registers the path's code may keep live (the portable path's `f32x8` takes two
    /// of SSE2's sixteen).
    const REGISTERS: usize;
    /// Whether `mul_add` is one fused instruction.
    const FMA: bool;
    /// Whether f16 converts in hardware.
    const F16C: bool;
    /// The target features its code is compiled with.
    const FEATURES: &'static [&'static str];

    /// `K`'s entry point compiled for this path.
    fn entry<K: SimdKernel>() -> Entry<K>;

    /// Runs `op` compiled for this path.
    ///
    /// # Safety
    /// The CPU has this path, and `op` meets its own contract.
    #[inline(always)]
    unsafe fn run<Op: SimdOp>(op: Op) -> Op::Output {
        // SAFETY: forwarded contract.
        unsafe { Self::entry::<OpKernel<Op>>()(&(), &mut [], op) }
    }
}

/// One path's row of the table, for run-time questions ([`path_info`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathInfo {
    /// The path's name.
    pub isa: Isa,
    /// f32 lanes per vector.
    pub lanes: usize,
    /// Vector registers.
    pub registers: usize,
    /// Fused multiply-add.
    pub fma: bool,
    /// Hardware f16 conversion.
    pub f16c: bool,
    /// The target features its code is compiled with.
    pub features: &'static [&'static str],
}

impl PathInfo {
    const fn of<P: IsaPath>() -> PathInfo {
        PathInfo {
            isa: P::ISA,
            lanes: P::LANES,
            registers: P::REGISTERS,
            fma: P::FMA,
            f16c: P::F16C,
            features: P::FEATURES,
        }
    }
}

/// `true` and every feature detected (a row without a detection macro has no features).
macro_rules! detect_features {
    (; ) => {
        true
    };
    ($detect:ident; $($feature:tt),*) => {
        true $(&& std::arch::$detect!($feature))*
    };
}

/// Expands the ISA table: per row the [`IsaPath`] impl (with the `#[target_feature]`
/// wrapper), and once the run-time match ([`entry`]), the rows ([`PATHS`]) and detection.
macro_rules! isa_table {
    ($(
        $(#[$cfg:meta])*
        $path:ident: $isa:ident, lanes $lanes:literal, registers $registers:literal,
        fma $fma:literal, f16c $f16c:literal,
        features [$($feature:tt),*] $(detected by $detect:ident)?;
    )*) => {
        $(
            $(#[$cfg])*
            impl IsaPath for $path {
                const ISA: Isa = Isa::$isa;
                const LANES: usize = $lanes;
                const REGISTERS: usize = $registers;
                const FMA: bool = $fma;
                const F16C: bool = $f16c;
                const FEATURES: &'static [&'static str] = &[$($feature),*];

                fn entry<K: SimdKernel>() -> Entry<K> {
                    /// # Safety
                    /// As [`SimdKernel::run`] on this path.
                    $(#[target_feature(enable = $feature)])*
                    unsafe fn path_entry<K: SimdKernel>(
                        context: &K::Context,
                        buffer: &mut [f32],
                        args: K::Args,
                    ) -> K::Output {
                        // SAFETY: forwarded contract; the path's features are enabled here.
                        unsafe { K::run::<$path>(context, buffer, args) }
                    }
                    path_entry::<K>
                }
            }
        )*

        /// The rows of the ISA table this build compiles, portable first.
        pub const PATHS: &[PathInfo] = &[$($(#[$cfg])* PathInfo::of::<$path>()),*];

        /// The row of the path that `isa`'s kernels run on (the portable row for a path
        /// without one of its own).
        #[inline]
        pub fn path_info(isa: Isa) -> &'static PathInfo {
            match isa {
                $($(#[$cfg])* Isa::$isa => {
                    const ROW: PathInfo = PathInfo::of::<$path>();
                    &ROW
                })*
                #[allow(unreachable_patterns)]
                _ => &PATHS[0],
            }
        }

        /// `K`'s entry point on `isa`'s path (the portable one for a path without a row).
        pub fn entry<K: SimdKernel>(isa: Isa) -> Entry<K> {
            match isa {
                $($(#[$cfg])* Isa::$isa => <$path as IsaPath>::entry::<K>(),)*
                #[allow(unreachable_patterns)]
                _ => <Portable as IsaPath>::entry::<K>(),
            }
        }

        /// Whether this CPU has every feature of `isa`'s row (false for a path without one).
        pub(crate) fn detect_row(isa: Isa) -> bool {
            match isa {
                $($(#[$cfg])* Isa::$isa => detect_features!($($detect)?; $($feature),*),)*
                #[allow(unreachable_patterns)]
                _ => false,
            }
        }
    };
}

isa_table! {
    Portable: Scalar, lanes 8, registers 8, fma false, f16c false, features [];
    #[cfg(target_arch = "x86_64")]
    Avx2: Avx2, lanes 8, registers 16, fma true, f16c true,
        features ["avx2", "fma", "f16c"] detected by is_x86_feature_detected;
    #[cfg(target_arch = "x86_64")]
    Avx512: Avx512, lanes 16, registers 32, fma true, f16c true,
        features ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma", "f16c"]
        detected by is_x86_feature_detected;
}

/// Runs `op` on `isa`'s path.
///
/// # Safety
/// The CPU has `isa` ([`crate::available`]), and `op` meets its own contract.
#[inline(always)]
pub unsafe fn dispatch<Op: SimdOp>(isa: Isa, op: Op) -> Op::Output {
    // SAFETY: forwarded contract.
    unsafe { entry::<OpKernel<Op>>(isa)(&(), &mut [], op) }
}

/// Runs kernel `K` on `isa`'s path with `context`, `buffer` and `args`.
///
/// # Safety
/// The CPU has `isa` ([`crate::available`]), and the arguments meet `K`'s contract.
#[inline(always)]
pub unsafe fn call<K: SimdKernel>(
    isa: Isa,
    context: &K::Context,
    buffer: &mut [f32],
    args: K::Args,
) -> K::Output {
    // SAFETY: forwarded contract.
    unsafe { entry::<K>(isa)(context, buffer, args) }
}

/// f32 lanes per vector of the code `isa` runs.
#[inline]
pub fn lanes(isa: Isa) -> usize {
    path_info(isa).lanes
}

/// Vector registers of the code `isa` runs.
#[inline]
pub fn registers(isa: Isa) -> usize {
    path_info(isa).registers
}

#[cfg(test)]
mod tests {
    use super::*;

    struct LanesOf;

    impl SimdOp for LanesOf {
        type Output = (Isa, usize);

        #[inline(always)]
        unsafe fn run<S: Simd>(self) -> (Isa, usize) {
            (S::ISA, S::LANES)
        }
    }

    #[test]
    fn every_available_row_dispatches_to_its_own_path() {
        for &isa in crate::available_isas() {
            // SAFETY: `isa` is available.
            let (ran, lanes) = unsafe { dispatch(isa, LanesOf) };
            assert_eq!(ran, path_info(isa).isa);
            assert_eq!(lanes, super::lanes(isa));
        }
    }

    #[test]
    fn the_portable_row_comes_first_and_needs_nothing() {
        assert_eq!(PATHS[0].isa, Isa::Scalar);
        assert!(PATHS[0].features.is_empty());
        assert!(detect_row(Isa::Scalar));
    }
}
