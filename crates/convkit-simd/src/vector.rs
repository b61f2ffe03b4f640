//! The internal `Simd` trait: the vector operations convkit's kernels are written in, once,
//! generically, then compiled per path.
//!
//! A kernel body is an `#[inline(always)] fn body<S: Simd>(..)`; each path gets a tiny
//! `#[target_feature]` wrapper that calls `body::<Avx512>` (or `Avx2`, `Portable`), so that the
//! intrinsics below inline into code compiled for that path. The planner picks the wrapper once.
//!
//! - [`Portable`]: `wide::f32x8`, compiled for the build's baseline (SSE2 on x86-64, NEON on
//!   AArch64). Multiply and add stay separate: without FMA in the target, a fused multiply-add
//!   would be a libm call.
//! - [`Avx2`]: `__m256` with FMA, masked loads and stores for tails, F16C for f16 storage.
//! - [`Avx512`]: `__m512` with FMA and `__mmask16` tails.

use convkit_core::{Activation, Isa};
use half::{bf16, f16};

/// Vector operations on f32 lanes for one instruction-set path.
///
/// # Safety
/// Implementations may use instructions of [`Simd::ISA`]: every method may only be called on a
/// CPU that has that path (the planner checks it once with [`crate::available`]). Pointer
/// arguments must be valid for the lanes they touch.
pub unsafe trait Simd: Copy + Send + Sync + 'static {
    /// The path this implementation compiles to.
    const ISA: Isa;
    /// f32 lanes per vector.
    const LANES: usize;
    /// One vector of `LANES` f32.
    type F32: Copy;

    /// All lanes zero.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`].
    unsafe fn zero() -> Self::F32;
    /// All lanes `value`.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`].
    unsafe fn splat(value: f32) -> Self::F32;
    /// `LANES` values from `ptr` (unaligned).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `ptr` is readable for `LANES` f32.
    unsafe fn load(ptr: *const f32) -> Self::F32;
    /// The first `len < LANES` lanes from `ptr`, the others zero.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `ptr` is readable for `len` f32.
    unsafe fn load_partial(ptr: *const f32, len: usize) -> Self::F32;
    /// The even-indexed values of the `2·LANES` at `ptr` (a stride-2 gather).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `ptr` is readable for `2·LANES` f32.
    unsafe fn load_even(ptr: *const f32) -> Self::F32;
    /// The even-indexed values of the `2·len − 1` at `ptr` in the first `len ≤ LANES` lanes,
    /// the others zero: the end of a stride-2 run. This default goes through a buffer; the
    /// x86 paths use masked loads.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `1 ≤ len ≤ LANES ≤ 16`; `ptr` is readable for
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
    /// The CPU has [`Simd::ISA`]; `ptr` is writable for `LANES` f32.
    unsafe fn store(ptr: *mut f32, value: Self::F32);
    /// Stores the first `len < LANES` lanes to `ptr`.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `ptr` is writable for `len` f32.
    unsafe fn store_partial(ptr: *mut f32, value: Self::F32, len: usize);
    /// Lanes `from..LANES` from `ptr + lane`, the others zero (`ptr` itself may lie before
    /// the readable range: only the lanes read count).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `from ≤ LANES`; `ptr + lane` is readable for every lane
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
    /// The CPU has [`Simd::ISA`]; `from ≤ LANES`; `ptr + lane` is writable for every lane
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
    /// The CPU has [`Simd::ISA`].
    unsafe fn mul_add(a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// `a + b`.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`].
    unsafe fn add(a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a − b`.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`].
    unsafe fn sub(a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a · b`.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`].
    unsafe fn mul(a: Self::F32, b: Self::F32) -> Self::F32;
    /// `lo` where `x < lo`, `hi` where `x > hi`, else `x` (NaN stays NaN).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`].
    unsafe fn clamp(x: Self::F32, lo: Self::F32, hi: Self::F32) -> Self::F32;
    /// `x · slope` where `x < 0`, else `x` (NaN stays NaN).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`].
    unsafe fn leaky(x: Self::F32, slope: Self::F32) -> Self::F32;
    /// `LANES` f16 values from `ptr` (unaligned), widened to f32 (exact).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `ptr` is readable for `LANES` values.
    unsafe fn load_f16(ptr: *const f16) -> Self::F32;
    /// `value` rounded to f16 (nearest even), stored as `LANES` values at `ptr` (unaligned).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `ptr` is writable for `LANES` values.
    unsafe fn store_f16(ptr: *mut f16, value: Self::F32);
    /// `LANES` bf16 values from `ptr` (unaligned), widened to f32 (exact).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `ptr` is readable for `LANES` values.
    unsafe fn load_bf16(ptr: *const bf16) -> Self::F32;
    /// `value` rounded to bf16 (nearest even; NaN stays NaN), stored as `LANES` values at
    /// `ptr` (unaligned).
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `ptr` is writable for `LANES` values.
    unsafe fn store_bf16(ptr: *mut bf16, value: Self::F32);
    /// Stores `rows` transposed: `out[k·stride + r] = rows[r][k]` for `r < rows.len()` and
    /// `k < channels`: a register tile of pixels × channel vectors into channel planes.
    /// This default parks the rows and copies value by value; the x86 paths transpose in
    /// registers and store whole runs of pixels.
    ///
    /// # Safety
    /// The CPU has [`Simd::ISA`]; `rows.len() ≤ 8`, `channels ≤ LANES`, and `out + k·stride`
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
    /// The CPU has [`Simd::ISA`]; `rows ≤ 8`, `channels ≤ LANES`, and `out + k·stride` is
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

/// The portable path: `wide::f32x8`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

// SAFETY: `wide` compiles for the build's baseline target, which every CPU running the binary
// has; pointer accesses stay within the lanes the callers vouch for.
unsafe impl Simd for Portable {
    const ISA: Isa = Isa::Scalar;
    const LANES: usize = 8;
    type F32 = wide::f32x8;

    #[inline(always)]
    unsafe fn zero() -> wide::f32x8 {
        wide::f32x8::ZERO
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> wide::f32x8 {
        wide::f32x8::splat(value)
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> wide::f32x8 {
        // SAFETY: the caller guarantees 8 readable f32 at `ptr`.
        wide::f32x8::from(unsafe { ptr.cast::<[f32; 8]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn load_partial(ptr: *const f32, len: usize) -> wide::f32x8 {
        let mut lanes = [0.0f32; 8];
        // SAFETY: the caller guarantees `len` (< 8) readable f32 at `ptr`.
        unsafe { std::ptr::copy_nonoverlapping(ptr, lanes.as_mut_ptr(), len) };
        wide::f32x8::from(lanes)
    }
    #[inline(always)]
    unsafe fn load_even(ptr: *const f32) -> wide::f32x8 {
        // SAFETY: the caller guarantees 16 readable f32 at `ptr`.
        let pairs = unsafe { ptr.cast::<[[f32; 2]; 8]>().read_unaligned() };
        wide::f32x8::from(pairs.map(|[even, _]| even))
    }
    #[inline(always)]
    unsafe fn store(ptr: *mut f32, value: wide::f32x8) {
        // SAFETY: the caller guarantees 8 writable f32 at `ptr`.
        unsafe { ptr.cast::<[f32; 8]>().write_unaligned(value.to_array()) }
    }
    #[inline(always)]
    unsafe fn store_partial(ptr: *mut f32, value: wide::f32x8, len: usize) {
        let lanes = value.to_array();
        // SAFETY: the caller guarantees `len` (< 8) writable f32 at `ptr`.
        unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), ptr, len) };
    }
    #[inline(always)]
    unsafe fn load_f16(ptr: *const f16) -> wide::f32x8 {
        // SAFETY: the caller guarantees 8 readable f16 at `ptr`.
        let halves = unsafe { ptr.cast::<[f16; 8]>().read_unaligned() };
        wide::f32x8::from(halves.map(f16::to_f32))
    }
    #[inline(always)]
    unsafe fn store_f16(ptr: *mut f16, value: wide::f32x8) {
        let halves = value.to_array().map(f16::from_f32);
        // SAFETY: the caller guarantees 8 writable f16 at `ptr`.
        unsafe { ptr.cast::<[f16; 8]>().write_unaligned(halves) }
    }
    #[inline(always)]
    unsafe fn load_bf16(ptr: *const bf16) -> wide::f32x8 {
        // SAFETY: the caller guarantees 8 readable bf16 at `ptr`.
        let halves = unsafe { ptr.cast::<[bf16; 8]>().read_unaligned() };
        wide::f32x8::from(halves.map(bf16::to_f32))
    }
    #[inline(always)]
    unsafe fn store_bf16(ptr: *mut bf16, value: wide::f32x8) {
        let halves = value.to_array().map(bf16::from_f32);
        // SAFETY: the caller guarantees 8 writable bf16 at `ptr`.
        unsafe { ptr.cast::<[bf16; 8]>().write_unaligned(halves) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: wide::f32x8, b: wide::f32x8, c: wide::f32x8) -> wide::f32x8 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn add(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a * b
    }
    #[inline(always)]
    unsafe fn clamp(x: wide::f32x8, lo: wide::f32x8, hi: wide::f32x8) -> wide::f32x8 {
        let raised = x.simd_lt(lo).select(lo, x);
        raised.simd_gt(hi).select(hi, raised)
    }
    #[inline(always)]
    unsafe fn leaky(x: wide::f32x8, slope: wide::f32x8) -> wide::f32x8 {
        x.simd_lt(wide::f32x8::ZERO).select(x * slope, x)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::transpose8x8;
#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use convkit_core::Isa;
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// The AVX2 + FMA path (with F16C, which every AVX2 CPU has, for f16 storage).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Avx2;

    /// `_mm256_maskload_ps` mask with the first `len` lanes set.
    #[inline(always)]
    unsafe fn mask256(len: usize) -> __m256i {
        const TABLE: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        // SAFETY: `len <= 8`, so the 8 lanes read start within the 16-entry table; AVX is
        // available (this path is only used on AVX2 CPUs).
        unsafe { _mm256_loadu_si256(TABLE.as_ptr().add(8 - len).cast()) }
    }

    /// `_mm256_maskload_ps` mask with lanes `from..8` set.
    #[inline(always)]
    unsafe fn tail_mask256(from: usize) -> __m256i {
        const TABLE: [i32; 16] = [0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1];
        // SAFETY: `from <= 8`, so the 8 lanes read start within the 16-entry table; AVX is
        // available (this path is only used on AVX2 CPUs).
        unsafe { _mm256_loadu_si256(TABLE.as_ptr().add(8 - from).cast()) }
    }

    /// The 8x8 transpose of `rows`: `columns[j][i] = rows[i][j]` (8 unpacks, 8 shuffles and
    /// 8 lane permutes).
    ///
    /// # Safety
    /// The CPU has AVX.
    #[inline(always)]
    pub(crate) unsafe fn transpose8x8(r: [__m256; 8]) -> [__m256; 8] {
        // SAFETY: AVX is available (contract).
        unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ]
        }
    }

    /// Up to eight 8-lane rows, missing ones zero.
    ///
    /// # Safety
    /// The CPU has AVX.
    #[inline(always)]
    unsafe fn eight_rows(rows: &[__m256]) -> [__m256; 8] {
        // SAFETY: AVX is available (contract).
        let mut padded = [unsafe { _mm256_setzero_ps() }; 8];
        for (slot, &row) in padded.iter_mut().zip(rows) {
            *slot = row;
        }
        padded
    }

    // SAFETY: every method uses AVX/AVX2/FMA/F16C instructions only, and callers run on CPUs
    // with AVX2, FMA and F16C (checked at plan time); memory accesses stay within the vouched lanes.
    unsafe impl Simd for Avx2 {
        const ISA: Isa = Isa::Avx2;
        const LANES: usize = 8;
        type F32 = __m256;

        #[inline(always)]
        unsafe fn zero() -> __m256 {
            // SAFETY: AVX is available.
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> __m256 {
            // SAFETY: AVX is available.
            unsafe { _mm256_set1_ps(value) }
        }
        #[inline(always)]
        unsafe fn load(ptr: *const f32) -> __m256 {
            // SAFETY: AVX is available; 8 readable f32 at `ptr`.
            unsafe { _mm256_loadu_ps(ptr) }
        }
        #[inline(always)]
        unsafe fn load_partial(ptr: *const f32, len: usize) -> __m256 {
            // SAFETY: AVX is available; masked-off lanes are not accessed.
            unsafe { _mm256_maskload_ps(ptr, mask256(len)) }
        }
        #[inline(always)]
        unsafe fn load_even(ptr: *const f32) -> __m256 {
            // SAFETY: AVX2 is available; 16 readable f32 at `ptr`.
            unsafe {
                let (low, high) = (_mm256_loadu_ps(ptr), _mm256_loadu_ps(ptr.add(8)));
                // [l0 l2 h0 h2 | l4 l6 h4 h6], then put the 64-bit pairs in order.
                let evens = _mm256_shuffle_ps::<0b10_00_10_00>(low, high);
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                    evens,
                )))
            }
        }
        #[inline(always)]
        unsafe fn load_even_partial(ptr: *const f32, len: usize) -> __m256 {
            // SAFETY: AVX2 is available; the masks touch only the first `2·len − 1 ≤ 15`
            // values.
            unsafe {
                let count = 2 * len - 1;
                let low = _mm256_maskload_ps(ptr, mask256(count.min(8)));
                let high = _mm256_maskload_ps(ptr.add(8), mask256(count.saturating_sub(8)));
                let evens = _mm256_shuffle_ps::<0b10_00_10_00>(low, high);
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                    evens,
                )))
            }
        }
        #[inline(always)]
        unsafe fn store(ptr: *mut f32, value: __m256) {
            // SAFETY: AVX is available; 8 writable f32 at `ptr`.
            unsafe { _mm256_storeu_ps(ptr, value) }
        }
        #[inline(always)]
        unsafe fn store_partial(ptr: *mut f32, value: __m256, len: usize) {
            // SAFETY: AVX is available; masked-off lanes are not accessed.
            unsafe { _mm256_maskstore_ps(ptr, mask256(len), value) }
        }
        #[inline(always)]
        unsafe fn load_tail(ptr: *const f32, from: usize) -> __m256 {
            // SAFETY: AVX is available; masked-off lanes are not accessed.
            unsafe { _mm256_maskload_ps(ptr, tail_mask256(from)) }
        }
        #[inline(always)]
        unsafe fn store_tail(ptr: *mut f32, value: __m256, from: usize) {
            // SAFETY: AVX is available; masked-off lanes are not accessed.
            unsafe { _mm256_maskstore_ps(ptr, tail_mask256(from), value) }
        }
        #[inline(always)]
        unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: FMA is available.
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX is available.
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX is available.
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m256, b: __m256) -> __m256 {
            // SAFETY: AVX is available.
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn clamp(x: __m256, lo: __m256, hi: __m256) -> __m256 {
            // max/min return the second operand when either is NaN: x goes second.
            // SAFETY: AVX is available.
            unsafe { _mm256_min_ps(hi, _mm256_max_ps(lo, x)) }
        }
        #[inline(always)]
        unsafe fn leaky(x: __m256, slope: __m256) -> __m256 {
            // SAFETY: AVX is available.
            unsafe {
                let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
                _mm256_blendv_ps(x, _mm256_mul_ps(x, slope), negative)
            }
        }
        #[inline(always)]
        unsafe fn load_f16(ptr: *const f16) -> __m256 {
            // SAFETY: F16C is available (part of the AVX2 path); 8 readable f16 at `ptr`.
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(ptr.cast::<__m128i>())) }
        }
        #[inline(always)]
        unsafe fn store_f16(ptr: *mut f16, value: __m256) {
            // SAFETY: F16C is available (part of the AVX2 path); 8 writable f16 at `ptr`.
            unsafe {
                let halves = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(value);
                _mm_storeu_si128(ptr.cast::<__m128i>(), halves);
            }
        }
        #[inline(always)]
        unsafe fn load_bf16(ptr: *const bf16) -> __m256 {
            // SAFETY: AVX2 is available; 8 readable bf16 at `ptr`.
            unsafe {
                let halves = _mm_loadu_si128(ptr.cast::<__m128i>());
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(halves)))
            }
        }
        #[inline(always)]
        unsafe fn store_bf16(ptr: *mut bf16, value: __m256) {
            // SAFETY: AVX2 is available; 8 writable bf16 at `ptr`.
            unsafe {
                let bits = _mm256_castps_si256(value);
                // Round to nearest even on the dropped half; NaN keeps its top half, quieted.
                let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
                let bias = _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff));
                let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(bits, bias));
                let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(0x40));
                let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(value, value));
                let halves = _mm256_blendv_epi8(rounded, quiet, nan);
                // Pack the 32-bit lanes (all below 2^16) to 16 bits: [0-3 0-3 | 4-7 4-7],
                // then bring 4-7 next to 0-3.
                let packed = _mm256_packus_epi32(halves, halves);
                let ordered = _mm256_permute4x64_epi64::<0b00_00_10_00>(packed);
                _mm_storeu_si128(ptr.cast::<__m128i>(), _mm256_castsi256_si128(ordered));
            }
        }
        #[inline(always)]
        unsafe fn store_transposed(rows: &[__m256], out: *mut f32, stride: usize, channels: usize) {
            // SAFETY: AVX2 is available; each channel's store touches its first `rows.len()`
            // values only (a full store when there are 8 rows), vouched by the caller.
            unsafe {
                let columns = transpose8x8(eight_rows(rows));
                let mask = mask256(rows.len());
                for (k, &column) in columns.iter().enumerate() {
                    if k >= channels {
                        break;
                    }
                    if rows.len() == 8 {
                        _mm256_storeu_ps(out.add(k * stride), column);
                    } else {
                        _mm256_maskstore_ps(out.add(k * stride), mask, column);
                    }
                }
            }
        }
        #[inline(always)]
        unsafe fn load_transposed(
            out: *const f32,
            stride: usize,
            rows: usize,
            channels: usize,
        ) -> [__m256; 8] {
            // SAFETY: AVX2 is available; each channel's masked load touches its first `rows`
            // values only, vouched by the caller.
            unsafe {
                let mask = mask256(rows);
                let mut columns = [_mm256_setzero_ps(); 8];
                for (k, column) in columns.iter_mut().enumerate() {
                    if k < channels {
                        *column = _mm256_maskload_ps(out.add(k * stride), mask);
                    }
                }
                transpose8x8(columns)
            }
        }
    }

    /// The AVX-512 path (F + BW + VL + DQ).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Avx512;

    #[inline(always)]
    fn mask512(len: usize) -> __mmask16 {
        ((1u32 << len) - 1) as __mmask16
    }

    // SAFETY: every method uses AVX-512F instructions only, and callers run on CPUs with the
    // AVX-512 path (checked at plan time); masked accesses touch only the vouched lanes.
    unsafe impl Simd for Avx512 {
        const ISA: Isa = Isa::Avx512;
        const LANES: usize = 16;
        type F32 = __m512;

        #[inline(always)]
        unsafe fn zero() -> __m512 {
            // SAFETY: AVX-512F is available.
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> __m512 {
            // SAFETY: AVX-512F is available.
            unsafe { _mm512_set1_ps(value) }
        }
        #[inline(always)]
        unsafe fn load(ptr: *const f32) -> __m512 {
            // SAFETY: AVX-512F is available; 16 readable f32 at `ptr`.
            unsafe { _mm512_loadu_ps(ptr) }
        }
        #[inline(always)]
        unsafe fn load_partial(ptr: *const f32, len: usize) -> __m512 {
            // SAFETY: AVX-512F is available; masked-off lanes are not accessed.
            unsafe { _mm512_maskz_loadu_ps(mask512(len), ptr) }
        }
        #[inline(always)]
        unsafe fn load_even(ptr: *const f32) -> __m512 {
            // SAFETY: AVX-512F is available; 32 readable f32 at `ptr`.
            unsafe {
                let index =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                _mm512_permutex2var_ps(_mm512_loadu_ps(ptr), index, _mm512_loadu_ps(ptr.add(16)))
            }
        }
        #[inline(always)]
        unsafe fn load_even_partial(ptr: *const f32, len: usize) -> __m512 {
            // SAFETY: AVX-512F is available; the masks touch only the first `2·len − 1 ≤ 31`
            // values.
            unsafe {
                let count = 2 * len - 1;
                let index =
                    _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let low = _mm512_maskz_loadu_ps(mask512(count.min(16)), ptr);
                let high = _mm512_maskz_loadu_ps(mask512(count.saturating_sub(16)), ptr.add(16));
                _mm512_permutex2var_ps(low, index, high)
            }
        }
        #[inline(always)]
        unsafe fn store(ptr: *mut f32, value: __m512) {
            // SAFETY: AVX-512F is available; 16 writable f32 at `ptr`.
            unsafe { _mm512_storeu_ps(ptr, value) }
        }
        #[inline(always)]
        unsafe fn store_partial(ptr: *mut f32, value: __m512, len: usize) {
            // SAFETY: AVX-512F is available; masked-off lanes are not accessed.
            unsafe { _mm512_mask_storeu_ps(ptr, mask512(len), value) }
        }
        #[inline(always)]
        unsafe fn load_tail(ptr: *const f32, from: usize) -> __m512 {
            // SAFETY: AVX-512F is available; masked-off lanes are not accessed.
            unsafe { _mm512_maskz_loadu_ps(!mask512(from), ptr) }
        }
        #[inline(always)]
        unsafe fn store_tail(ptr: *mut f32, value: __m512, from: usize) {
            // SAFETY: AVX-512F is available; masked-off lanes are not accessed.
            unsafe { _mm512_mask_storeu_ps(ptr, !mask512(from), value) }
        }
        #[inline(always)]
        unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: AVX-512F is available.
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F is available.
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn sub(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F is available.
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn mul(a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F is available.
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn clamp(x: __m512, lo: __m512, hi: __m512) -> __m512 {
            // max/min return the second operand when either is NaN: x goes second.
            // SAFETY: AVX-512F is available.
            unsafe { _mm512_min_ps(hi, _mm512_max_ps(lo, x)) }
        }
        #[inline(always)]
        unsafe fn leaky(x: __m512, slope: __m512) -> __m512 {
            // SAFETY: AVX-512F is available.
            unsafe {
                let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
                _mm512_mask_mul_ps(x, negative, x, slope)
            }
        }
        #[inline(always)]
        unsafe fn load_f16(ptr: *const f16) -> __m512 {
            // SAFETY: AVX-512F is available; 16 readable f16 at `ptr`.
            unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(ptr.cast::<__m256i>())) }
        }
        #[inline(always)]
        unsafe fn store_f16(ptr: *mut f16, value: __m512) {
            // SAFETY: AVX-512F is available; 16 writable f16 at `ptr`.
            unsafe {
                let halves = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(value);
                _mm256_storeu_si256(ptr.cast::<__m256i>(), halves);
            }
        }
        #[inline(always)]
        unsafe fn load_bf16(ptr: *const bf16) -> __m512 {
            // SAFETY: AVX-512F is available; 16 readable bf16 at `ptr`.
            unsafe {
                let halves = _mm256_loadu_si256(ptr.cast::<__m256i>());
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(halves)))
            }
        }
        #[inline(always)]
        unsafe fn store_bf16(ptr: *mut bf16, value: __m512) {
            // SAFETY: AVX-512F is available; 16 writable bf16 at `ptr`.
            unsafe {
                let bits = _mm512_castps_si512(value);
                // Round to nearest even on the dropped half; NaN keeps its top half, quieted.
                let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
                let bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
                let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(bits, bias));
                let quiet = _mm512_or_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(0x40));
                let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(value, value);
                let halves = _mm512_mask_mov_epi32(rounded, nan, quiet);
                _mm256_storeu_si256(ptr.cast::<__m256i>(), _mm512_cvtepi32_epi16(halves));
            }
        }
        #[inline(always)]
        unsafe fn store_transposed(rows: &[__m512], out: *mut f32, stride: usize, channels: usize) {
            // SAFETY: the AVX-512 path (F, DQ, VL) is available; each channel's masked store
            // touches its first `rows.len()` values only, vouched by the caller.
            unsafe {
                let mut low = [_mm256_setzero_ps(); 8];
                let mut high = [_mm256_setzero_ps(); 8];
                for (r, &row) in rows.iter().enumerate() {
                    low[r] = _mm512_castps512_ps256(row);
                    high[r] = _mm512_extractf32x8_ps::<1>(row);
                }
                let mask = ((1u32 << rows.len()) - 1) as __mmask8;
                // Whole unrolled loops with constant indices, so that the columns stay in
                // registers.
                for (k, &column) in transpose8x8(low).iter().enumerate() {
                    if k < channels {
                        _mm256_mask_storeu_ps(out.add(k * stride), mask, column);
                    }
                }
                for (k, &column) in transpose8x8(high).iter().enumerate() {
                    if 8 + k < channels {
                        _mm256_mask_storeu_ps(out.add((8 + k) * stride), mask, column);
                    }
                }
            }
        }
        #[inline(always)]
        unsafe fn load_transposed(
            out: *const f32,
            stride: usize,
            rows: usize,
            channels: usize,
        ) -> [__m512; 8] {
            // SAFETY: the AVX-512 path (F, DQ, VL) is available; each channel's masked load
            // touches its first `rows` values only, vouched by the caller.
            unsafe {
                let mask = ((1u32 << rows) - 1) as __mmask8;
                let mut low = [_mm256_setzero_ps(); 8];
                let mut high = [_mm256_setzero_ps(); 8];
                for k in 0..8 {
                    if k < channels {
                        low[k] = _mm256_maskz_loadu_ps(mask, out.add(k * stride));
                    }
                    if 8 + k < channels {
                        high[k] = _mm256_maskz_loadu_ps(mask, out.add((8 + k) * stride));
                    }
                }
                let (low, high) = (transpose8x8(low), transpose8x8(high));
                std::array::from_fn(|r| {
                    _mm512_insertf32x8::<1>(_mm512_castps256_ps512(low[r]), high[r])
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn portable_operations() {
        // SAFETY: the portable path runs everywhere.
        unsafe { exercise::<Portable>() }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_operations() {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn run() {
            // SAFETY: only called after detection below.
            unsafe { exercise::<Avx2>() }
        }
        if crate::available(Isa::Avx2) {
            // SAFETY: AVX2, FMA and F16C were detected.
            unsafe { run() }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_operations() {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
        unsafe fn run() {
            // SAFETY: only called after detection below.
            unsafe { exercise::<Avx512>() }
        }
        if crate::available(Isa::Avx512) {
            // SAFETY: the AVX-512 path was detected.
            unsafe { run() }
        }
    }
}
