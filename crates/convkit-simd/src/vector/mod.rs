//! The internal `Simd` trait: the vector operations convkit's kernels are written in, once,
//! generically, then compiled per path.
//!
//! A kernel body is an `#[inline(always)]` function generic over `S: Simd`, run through the
//! ISA table's one `#[target_feature]` wrapper per path ([`crate::paths`]), so that the
//! intrinsics below inline into code compiled for that path. The planner picks the path once.
//!
//! One file per path:
//! - [`Portable`] (`portable.rs`): `wide::f32x8`, compiled for the build's baseline (SSE2 on
//!   x86-64, NEON on AArch64). Multiply and add stay separate: without FMA in the target, a
//!   fused multiply-add would be a libm call.
//! - [`Avx2`] (`avx2.rs`): `__m256` with FMA, masked loads and stores for tails, F16C for f16
//!   storage.
//! - [`Avx512`] (`avx512.rs`): `__m512` with FMA and `__mmask16` tails.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::transpose8x8;
#[cfg(target_arch = "x86_64")]
pub use avx512::Avx512;
pub use portable::Portable;

use crate::IsaPath;
use convkit_core::Activation;
use half::{bf16, f16};

/// Vector operations on f32 lanes for one instruction-set path (its row of the ISA table,
/// [`IsaPath`], gives its name, lanes and registers).
///
/// # Safety
/// Implementations may use instructions of [`IsaPath::ISA`]: every method may only be called
/// on a CPU that has that path (the planner checks it once with [`crate::available`]).
/// Pointer arguments must be valid for the lanes they touch.
pub unsafe trait Simd: IsaPath {
    /// One vector of `LANES` f32.
    type F32: Copy;

    /// All lanes zero.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`].
    unsafe fn zero() -> Self::F32;
    /// All lanes `value`.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`].
    unsafe fn splat(value: f32) -> Self::F32;
    /// `LANES` values from `ptr` (unaligned).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is readable for `LANES` f32.
    unsafe fn load(ptr: *const f32) -> Self::F32;
    /// The first `len < LANES` lanes from `ptr`, the others zero.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is readable for `len` f32.
    unsafe fn load_partial(ptr: *const f32, len: usize) -> Self::F32;
    /// The even-indexed values of the `2·LANES` at `ptr` (a stride-2 gather).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is readable for `2·LANES` f32.
    unsafe fn load_even(ptr: *const f32) -> Self::F32;
    /// The even-indexed values of the `2·len − 1` at `ptr` in the first `len ≤ LANES` lanes,
    /// the others zero: the end of a stride-2 run. This default goes through a buffer; the
    /// x86 paths use masked loads.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `1 ≤ len ≤ LANES ≤ 16`; `ptr` is readable for
    /// `2·len − 1` f32.
    #[inline(always)]
    unsafe fn load_even_partial(ptr: *const f32, len: usize) -> Self::F32 {
        let mut buffer = [0.0f32; 32];
        // SAFETY: `2·len − 1 ≤ 31` values are readable at `ptr` and fit the buffer, which
        // holds the `2·LANES ≤ 32` values `load_even` reads.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, buffer.as_mut_ptr(), 2 * len - 1);
            Self::load_even(buffer.as_ptr())
        }
    }
    /// Stores all lanes to `ptr` (unaligned).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is writable for `LANES` f32.
    unsafe fn store(ptr: *mut f32, value: Self::F32);
    /// Stores the first `len < LANES` lanes to `ptr`.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is writable for `len` f32.
    unsafe fn store_partial(ptr: *mut f32, value: Self::F32, len: usize);
    /// Lanes `from..LANES` from `ptr + lane`, the others zero (`ptr` itself may lie before
    /// the readable range: only the lanes read count).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `from ≤ LANES`; `ptr + lane` is readable for every lane
    /// in `from..LANES`.
    #[inline(always)]
    unsafe fn load_tail(ptr: *const f32, from: usize) -> Self::F32 {
        let mut buffer = [0.0f32; 16];
        // SAFETY: the lanes copied are readable (contract) and fit the 16-value buffer.
        unsafe {
            for (lane, slot) in buffer.iter_mut().enumerate().take(Self::LANES).skip(from) {
                *slot = *ptr.wrapping_add(lane);
            }
            Self::load(buffer.as_ptr())
        }
    }
    /// Stores lanes `from..LANES` to `ptr + lane` (`ptr` itself may lie before the
    /// writable range: only the lanes stored count).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `from ≤ LANES`; `ptr + lane` is writable for every lane
    /// in `from..LANES`.
    #[inline(always)]
    unsafe fn store_tail(ptr: *mut f32, value: Self::F32, from: usize) {
        let mut buffer = [0.0f32; 16];
        // SAFETY: the buffer holds `LANES ≤ 16` values; the lanes copied are writable
        // (contract).
        unsafe {
            Self::store(buffer.as_mut_ptr(), value);
            for (lane, value) in buffer.iter().enumerate().take(Self::LANES).skip(from) {
                *ptr.wrapping_add(lane) = *value;
            }
        }
    }
    /// `a · b + c`, fused on the FMA paths.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`].
    unsafe fn mul_add(a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// `a + b`.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`].
    unsafe fn add(a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a − b`.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`].
    unsafe fn sub(a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a · b`.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`].
    unsafe fn mul(a: Self::F32, b: Self::F32) -> Self::F32;
    /// `lo` where `x < lo`, `hi` where `x > hi`, else `x` (NaN stays NaN).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`].
    unsafe fn clamp(x: Self::F32, lo: Self::F32, hi: Self::F32) -> Self::F32;
    /// `x · slope` where `x < 0`, else `x` (NaN stays NaN).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`].
    unsafe fn leaky(x: Self::F32, slope: Self::F32) -> Self::F32;
    /// `LANES` f16 values from `ptr` (unaligned), widened to f32 (exact).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is readable for `LANES` values.
    unsafe fn load_f16(ptr: *const f16) -> Self::F32;
    /// `value` rounded to f16 (nearest even), stored as `LANES` values at `ptr` (unaligned).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is writable for `LANES` values.
    unsafe fn store_f16(ptr: *mut f16, value: Self::F32);
    /// `LANES` bf16 values from `ptr` (unaligned), widened to f32 (exact).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is readable for `LANES` values.
    unsafe fn load_bf16(ptr: *const bf16) -> Self::F32;
    /// `value` rounded to bf16 (nearest even; NaN stays NaN), stored as `LANES` values at
    /// `ptr` (unaligned).
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `ptr` is writable for `LANES` values.
    unsafe fn store_bf16(ptr: *mut bf16, value: Self::F32);
    /// Stores `rows` transposed: `out[k·stride + r] = rows[r][k]` for `r < rows.len()` and
    /// `k < channels`: a register tile of pixels × channel vectors into channel planes.
    /// This default parks the rows and copies value by value; the x86 paths transpose in
    /// registers and store whole runs of pixels.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `rows.len() ≤ 8`, `channels ≤ LANES`, and `out + k·stride`
    /// is writable for `rows.len()` f32 for every `k < channels`.
    #[inline(always)]
    unsafe fn store_transposed(rows: &[Self::F32], out: *mut f32, stride: usize, channels: usize) {
        const MAX_PARKED: usize = 8 * 16;
        debug_assert!(rows.len() <= 8 && Self::LANES <= 16);
        let mut buffer = std::mem::MaybeUninit::<[f32; MAX_PARKED]>::uninit();
        let parked = buffer.as_mut_ptr().cast::<f32>();
        // SAFETY: the buffer holds 8·16 ≥ rows.len()·LANES values, and only the stored part
        // is read back; the output writes are vouched by the caller.
        unsafe {
            for (r, &row) in rows.iter().enumerate() {
                Self::store(parked.add(r * Self::LANES), row);
            }
            for k in 0..channels {
                for r in 0..rows.len() {
                    *out.add(k * stride + r) = *parked.add(r * Self::LANES + k);
                }
            }
        }
    }
    /// The inverse of [`Simd::store_transposed`]: row `r < rows` of the result holds
    /// `out[k·stride + r]` in lane `k < channels` and zero in the others; rows from `rows` on
    /// are zero. This default gathers value by value; the x86 paths load each channel's run
    /// of pixels and transpose in registers.
    ///
    /// # Safety
    /// The CPU has [`IsaPath::ISA`]; `rows ≤ 8`, `channels ≤ LANES`, and `out + k·stride` is
    /// readable for `rows` f32 for every `k < channels`.
    #[inline(always)]
    unsafe fn load_transposed(
        out: *const f32,
        stride: usize,
        rows: usize,
        channels: usize,
    ) -> [Self::F32; 8] {
        debug_assert!(rows <= 8 && Self::LANES <= 16);
        let mut buffer = [[0.0f32; 16]; 8];
        // SAFETY: the reads are vouched by the caller; the buffer holds 8 rows of 16 lanes.
        unsafe {
            for (r, row) in buffer.iter_mut().enumerate().take(rows) {
                for (k, value) in row.iter_mut().enumerate().take(channels) {
                    *value = *out.add(k * stride + r);
                }
            }
            buffer.map(|row| Self::load(row.as_ptr()))
        }
    }
}

/// An activation in the form the vector epilogues apply it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VectorActivation {
    /// Identity.
    Identity,
    /// Clamp to `[lo, hi]` (ReLU, ReLU6, Clamp).
    Clamp {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// Leaky ReLU.
    Leaky {
        /// Slope below zero.
        slope: f32,
    },
}

impl VectorActivation {
    /// The vector form of `activation`.
    pub fn new(activation: Activation) -> VectorActivation {
        match (activation, activation.clamp_bounds()) {
            (Activation::None, _) => VectorActivation::Identity,
            (Activation::LeakyRelu(slope), _) => VectorActivation::Leaky { slope },
            (_, Some([lo, hi])) => VectorActivation::Clamp { lo, hi },
            (_, None) => VectorActivation::Identity,
        }
    }

    /// Applies the activation to every lane of `x`.
    ///
    /// # Safety
    /// The CPU has `S::ISA`.
    #[inline(always)]
    pub unsafe fn apply<S: Simd>(self, x: S::F32) -> S::F32 {
        // SAFETY: the caller guarantees the CPU has S::ISA.
        unsafe {
            match self {
                VectorActivation::Identity => x,
                VectorActivation::Clamp { lo, hi } => S::clamp(x, S::splat(lo), S::splat(hi)),
                VectorActivation::Leaky { slope } => S::leaky(x, S::splat(slope)),
            }
        }
    }

    /// Applies the activation to every lane of every vector of `values`, choosing the
    /// operation once (a register tile's epilogue: the loop stays free of branches).
    ///
    /// # Safety
    /// The CPU has `S::ISA`.
    #[inline(always)]
    pub unsafe fn apply_each<S: Simd>(self, values: &mut [S::F32]) {
        // SAFETY: the caller guarantees the CPU has S::ISA.
        unsafe {
            match self {
                VectorActivation::Identity => {}
                VectorActivation::Clamp { lo, hi } => {
                    let (lo, hi) = (S::splat(lo), S::splat(hi));
                    for x in values {
                        *x = S::clamp(*x, lo, hi);
                    }
                }
                VectorActivation::Leaky { slope } => {
                    let slope = S::splat(slope);
                    for x in values {
                        *x = S::leaky(*x, slope);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimdOp;

    /// Exercises every operation of `S` against scalar arithmetic.
    ///
    /// # Safety
    /// The CPU has `S::ISA`.
    #[inline(always)]
    unsafe fn exercise<S: Simd>() {
        let lanes = S::LANES;
        let a: Vec<f32> = (0..lanes).map(|i| i as f32 - 3.5).collect();
        let b: Vec<f32> = (0..lanes).map(|i| 0.25 * i as f32).collect();
        let mut out = vec![f32::NAN; lanes];
        // SAFETY: the caller guarantees the ISA; all buffers hold `lanes` f32.
        unsafe {
            let (va, vb) = (S::load(a.as_ptr()), S::load(b.as_ptr()));
            S::store(out.as_mut_ptr(), S::mul_add(va, vb, S::splat(1.0)));
            for i in 0..lanes {
                assert_eq!(out[i], a[i] * b[i] + 1.0);
            }
            S::store(out.as_mut_ptr(), S::sub(va, vb));
            for i in 0..lanes {
                assert_eq!(out[i], a[i] - b[i]);
            }
            S::store(
                out.as_mut_ptr(),
                S::clamp(va, S::splat(-1.0), S::splat(2.0)),
            );
            for i in 0..lanes {
                assert_eq!(out[i], a[i].clamp(-1.0, 2.0));
            }
            S::store(out.as_mut_ptr(), S::leaky(va, S::splat(0.5)));
            for i in 0..lanes {
                assert_eq!(out[i], if a[i] < 0.0 { 0.5 * a[i] } else { a[i] });
            }
            // Half storage: ties to even, overflow, NaN, signed zero, subnormals.
            let specials = [
                f32::from_bits(0x3f80_8000),
                f32::from_bits(0x3f81_8000),
                1.000_488_3,
                -1.000_976_6,
                1e6,
                f32::NAN,
                -0.0,
                1e-7,
                f32::INFINITY,
                -3.7,
                65_519.0,
                5.960_464_5e-8,
                0.1,
                -2.5e-39,
                1e38,
                7.0,
            ];
            let mut halves = vec![f16::ZERO; lanes];
            let mut brains = vec![bf16::ZERO; lanes];
            for chunk in specials.chunks(lanes) {
                let values = S::load(chunk.as_ptr());
                S::store_f16(halves.as_mut_ptr(), values);
                S::store_bf16(brains.as_mut_ptr(), values);
                for i in 0..lanes {
                    let (x, h, b) = (chunk[i], halves[i], brains[i]);
                    assert_eq!(h.to_bits(), f16::from_f32(x).to_bits(), "f16 of {x:e}");
                    if x.is_nan() {
                        assert!(b.is_nan(), "bf16 of NaN");
                    } else {
                        assert_eq!(b.to_bits(), bf16::from_f32(x).to_bits(), "bf16 of {x:e}");
                    }
                }
                S::store(out.as_mut_ptr(), S::load_f16(halves.as_ptr()));
                for i in 0..lanes {
                    assert_eq!(
                        out[i].to_bits(),
                        halves[i].to_f32().to_bits(),
                        "f16 widened"
                    );
                }
                S::store(out.as_mut_ptr(), S::load_bf16(brains.as_ptr()));
                for i in 0..lanes {
                    assert_eq!(
                        out[i].to_bits(),
                        brains[i].to_f32().to_bits(),
                        "bf16 widened"
                    );
                }
            }
            let nan = S::splat(f32::NAN);
            S::store(out.as_mut_ptr(), S::clamp(nan, S::zero(), S::splat(6.0)));
            assert!(out.iter().all(|v| v.is_nan()));
            S::store(out.as_mut_ptr(), S::leaky(nan, S::splat(0.5)));
            assert!(out.iter().all(|v| v.is_nan()));
            let wide: Vec<f32> = (0..2 * lanes).map(|i| i as f32).collect();
            S::store(out.as_mut_ptr(), S::load_even(wide.as_ptr()));
            for (i, &value) in out.iter().enumerate() {
                assert_eq!(value, (2 * i) as f32);
            }
            for len in 1..=lanes {
                // A slice of exactly the 2·len − 1 values the load may read.
                let run = &wide[..2 * len - 1];
                S::store(out.as_mut_ptr(), S::load_even_partial(run.as_ptr(), len));
                for (i, &value) in out.iter().enumerate() {
                    assert_eq!(value, if i < len { (2 * i) as f32 } else { 0.0 }, "{len}");
                }
            }
            for len in 0..lanes {
                out.fill(-9.0);
                let partial = S::load_partial(a.as_ptr(), len);
                S::store_partial(
                    out.as_mut_ptr(),
                    S::add(partial, S::mul(vb, S::zero())),
                    len,
                );
                for i in 0..lanes {
                    assert_eq!(out[i], if i < len { a[i] } else { -9.0 });
                }
            }
            for from in 0..=lanes {
                // Lanes `from..` only, through a base `from` values before the slice.
                let tail = &a[from..];
                let base = tail.as_ptr().wrapping_sub(from);
                let loaded = S::load_tail(base, from);
                out.fill(-9.0);
                let out_tail = out[from..].as_mut_ptr().wrapping_sub(from);
                S::store_tail(out_tail, S::add(loaded, S::splat(1.0)), from);
                for i in 0..lanes {
                    let expected = if i < from { -9.0 } else { a[i] + 1.0 };
                    assert_eq!(out[i], expected, "from {from}");
                }
                S::store(out.as_mut_ptr(), loaded);
                for i in 0..lanes {
                    assert_eq!(out[i], if i < from { 0.0 } else { a[i] }, "from {from}");
                }
            }
            for rows in 1..=8 {
                for channels in [1, lanes / 2, lanes] {
                    const STRIDE: usize = 11;
                    let planes: Vec<f32> = (0..STRIDE * lanes).map(|i| i as f32).collect();
                    let loaded = S::load_transposed(planes.as_ptr(), STRIDE, rows, channels);
                    for (r, &row) in loaded.iter().enumerate() {
                        S::store(out.as_mut_ptr(), row);
                        for k in 0..lanes {
                            let expected = if r < rows && k < channels {
                                planes[k * STRIDE + r]
                            } else {
                                0.0
                            };
                            assert_eq!(out[k], expected, "{rows} rows, {channels} channels");
                        }
                    }
                }
            }
            const STRIDE: usize = 11;
            for rows in 1..=8 {
                for channels in [1, lanes / 2, lanes] {
                    let vectors: Vec<S::F32> = (0..rows)
                        .map(|r| S::add(va, S::splat(100.0 * r as f32)))
                        .collect();
                    let mut planes = vec![-1.0; STRIDE * lanes];
                    S::store_transposed(&vectors, planes.as_mut_ptr(), STRIDE, channels);
                    for k in 0..lanes {
                        for r in 0..STRIDE {
                            let expected = if k < channels && r < rows {
                                a[k] + 100.0 * r as f32
                            } else {
                                -1.0
                            };
                            assert_eq!(planes[k * STRIDE + r], expected, "{rows} rows");
                        }
                    }
                }
            }
        }
    }

    /// [`exercise`] as an op, run on every path this CPU has.
    struct Exercise;

    impl SimdOp for Exercise {
        type Output = ();

        #[inline(always)]
        unsafe fn run<S: Simd>(self) {
            // SAFETY: forwarded contract.
            unsafe { exercise::<S>() }
        }
    }

    #[test]
    fn every_available_path_computes_each_operation() {
        for &isa in crate::testable_isas() {
            // SAFETY: `isa` is available on this CPU.
            unsafe { crate::dispatch(isa, Exercise) }
        }
    }
}
