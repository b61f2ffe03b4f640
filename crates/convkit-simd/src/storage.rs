//! Element types the f32 algorithms read and write: f32 itself, and the half-precision
//! storage types, widened exactly and narrowed with one rounding to nearest even.
//!
//! f16 converts eight lanes at a time with F16C's `vcvtph2ps`/`vcvtps2ph` where the CPU has
//! them (detected once); bf16 is a shift (widening) and a rounding add
//! (narrowing), loops the compiler vectorizes. Kernels that read or write storage a vector
//! at a time use `load_lanes`/`store_lanes` (and their partial and transposed forms), which
//! convert in registers on each path (`Simd::load_f16`, `Simd::store_bf16`, ...).

use crate::Simd;
#[cfg(target_arch = "x86_64")]
use crate::{Avx2, Avx512, IsaPath, SimdOp};
use convkit_core::Element;
#[cfg(target_arch = "x86_64")]
use convkit_core::Isa;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use std::borrow::Cow;

/// Most lanes of any path's vector (AVX-512).
const MAX_LANES: usize = 16;

/// An element type the f32 algorithms can serve.
pub trait F32Storage: Element {
    /// Whether values convert to and from f32 (false for f32 itself).
    const CONVERTS: bool;
    /// `dst[i] = src[i]` as f32 (exact).
    ///
    /// # Panics
    /// When the lengths differ.
    fn widen(src: &[Self], dst: &mut [f32]);
    /// `dst[i] = src[i]` rounded to nearest even.
    ///
    /// # Panics
    /// When the lengths differ.
    fn narrow(src: &[f32], dst: &mut [Self]);
    /// The values themselves when `Self` is f32 (no conversion needed).
    fn as_f32(values: &[Self]) -> Option<&[f32]>;
    /// The values themselves, writable, when `Self` is f32.
    fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]>;

    /// `src` widened into a new vector (weights and bias at plan time).
    fn widen_vec(src: &[Self]) -> Vec<f32> {
        let mut wide = vec![0.0; src.len()];
        Self::widen(src, &mut wide);
        wide
    }

    /// `values` as f32: borrowed when `Self` is f32, else widened into a new vector (weights
    /// and bias at plan time).
    fn widened(values: &[Self]) -> Cow<'_, [f32]> {
        match Self::as_f32(values) {
            Some(values) => Cow::Borrowed(values),
            None => Cow::Owned(Self::widen_vec(values)),
        }
    }

    /// `S::LANES` values from `ptr` (unaligned), widened: a kernel's vector load.
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `ptr` is readable for `S::LANES` values.
    unsafe fn load_lanes<S: Simd>(ptr: *const Self) -> S::F32;

    /// `value` narrowed to `Self` (one rounding) and stored as `S::LANES` values at `ptr`: a
    /// kernel's vector store.
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `ptr` is writable for `S::LANES` values.
    unsafe fn store_lanes<S: Simd>(ptr: *mut Self, value: S::F32);

    /// The first `len < S::LANES` values from `ptr`, widened, the other lanes zero.
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `ptr` is readable for `len` values.
    #[inline(always)]
    unsafe fn load_lanes_partial<S: Simd>(ptr: *const Self, len: usize) -> S::F32 {
        let mut lanes = [Self::default(); MAX_LANES];
        // SAFETY: `len < LANES ≤ 16` readable values (contract); the copy holds 16.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, lanes.as_mut_ptr(), len);
            Self::load_lanes::<S>(lanes.as_ptr())
        }
    }

    /// The first `len < S::LANES` lanes of `value`, narrowed, stored at `ptr`.
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `ptr` is writable for `len` values.
    #[inline(always)]
    unsafe fn store_lanes_partial<S: Simd>(ptr: *mut Self, value: S::F32, len: usize) {
        let mut lanes = [Self::default(); MAX_LANES];
        // SAFETY: the parking buffer holds 16 ≥ LANES values; `len` writable (contract).
        unsafe {
            Self::store_lanes::<S>(lanes.as_mut_ptr(), value);
            std::ptr::copy_nonoverlapping(lanes.as_ptr(), ptr, len);
        }
    }

    /// [`Simd::store_transposed`] into `Self` storage: `out[k·stride + r] = rows[r][k]`,
    /// narrowed, for `r < rows.len()` and `k < channels`. This default transposes into an
    /// f32 block, narrows the block in one pass and copies each channel's run.
    ///
    /// # Safety
    /// As [`Simd::store_transposed`].
    #[inline(always)]
    unsafe fn store_transposed<S: Simd>(
        rows: &[S::F32],
        out: *mut Self,
        stride: usize,
        channels: usize,
    ) {
        const MAX_BLOCK: usize = 8 * MAX_LANES;
        let pixels = rows.len();
        let mut block = [0.0f32; MAX_BLOCK];
        let mut narrow = [Self::default(); MAX_BLOCK];
        // SAFETY: `pixels ≤ 8` and `channels ≤ LANES ≤ 16` (contract), so the block holds
        // channel `k`'s run at `k·pixels`; the output writes are vouched by the caller.
        unsafe {
            S::store_transposed(rows, block.as_mut_ptr(), pixels, channels);
            let len = channels * pixels;
            Self::narrow(&block[..len], &mut narrow[..len]);
            for k in 0..channels {
                std::ptr::copy_nonoverlapping(
                    narrow.as_ptr().add(k * pixels),
                    out.add(k * stride),
                    pixels,
                );
            }
        }
    }
}

impl F32Storage for f32 {
    const CONVERTS: bool = false;
    #[inline]
    fn widen(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    #[inline]
    fn narrow(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    #[inline]
    fn as_f32(values: &[f32]) -> Option<&[f32]> {
        Some(values)
    }
    #[inline]
    fn as_f32_mut(values: &mut [f32]) -> Option<&mut [f32]> {
        Some(values)
    }
    #[inline(always)]
    unsafe fn load_lanes<S: Simd>(ptr: *const f32) -> S::F32 {
        // SAFETY: forwarded contract.
        unsafe { S::load(ptr) }
    }
    #[inline(always)]
    unsafe fn store_lanes<S: Simd>(ptr: *mut f32, value: S::F32) {
        // SAFETY: forwarded contract.
        unsafe { S::store(ptr, value) }
    }
    #[inline(always)]
    unsafe fn load_lanes_partial<S: Simd>(ptr: *const f32, len: usize) -> S::F32 {
        // SAFETY: forwarded contract.
        unsafe { S::load_partial(ptr, len) }
    }
    #[inline(always)]
    unsafe fn store_lanes_partial<S: Simd>(ptr: *mut f32, value: S::F32, len: usize) {
        // SAFETY: forwarded contract.
        unsafe { S::store_partial(ptr, value, len) }
    }
    #[inline(always)]
    unsafe fn store_transposed<S: Simd>(
        rows: &[S::F32],
        out: *mut f32,
        stride: usize,
        channels: usize,
    ) {
        // SAFETY: forwarded contract.
        unsafe { S::store_transposed(rows, out, stride, channels) }
    }
}

/// bf16 is the top half of an f32: widening is a shift, which the compiler vectorizes.
#[inline(always)]
fn widen_bf16(src: &[bf16], dst: &mut [f32]) {
    for (wide, narrow) in dst.iter_mut().zip(src) {
        *wide = f32::from_bits(u32::from(narrow.to_bits()) << 16);
    }
}

/// Round to nearest even on the dropped half; NaNs stay NaN (quiet bit set). Branch-free, so
/// the compiler vectorizes it.
#[inline(always)]
fn narrow_bf16(src: &[f32], dst: &mut [bf16]) {
    for (narrow, wide) in dst.iter_mut().zip(src) {
        let bits = wide.to_bits();
        let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
        let quiet_nan = (bits >> 16) | 0x40;
        let value = if wide.is_nan() { quiet_nan } else { rounded };
        *narrow = bf16::from_bits(value as u16);
    }
}

/// Runs `op` on the AVX2 path where this CPU has it: whether it ran.
#[cfg(target_arch = "x86_64")]
fn on_avx2<Op: SimdOp<Output = ()>>(op: Op) -> bool {
    if !crate::available(Isa::Avx2) {
        return false;
    }
    // SAFETY: the AVX2 path is available.
    unsafe { Avx2::run(op) };
    true
}

impl F32Storage for bf16 {
    const CONVERTS: bool = true;
    fn widen(src: &[bf16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "widen: lengths differ");
        #[cfg(target_arch = "x86_64")]
        if on_avx2(x86::HalfLoop::WidenBf16(src, dst)) {
            return;
        }
        widen_bf16(src, dst);
    }
    fn narrow(src: &[f32], dst: &mut [bf16]) {
        assert_eq!(src.len(), dst.len(), "narrow: lengths differ");
        #[cfg(target_arch = "x86_64")]
        if on_avx2(x86::HalfLoop::NarrowBf16(src, dst)) {
            return;
        }
        narrow_bf16(src, dst);
    }
    #[inline]
    fn as_f32(_: &[bf16]) -> Option<&[f32]> {
        None
    }
    #[inline]
    fn as_f32_mut(_: &mut [bf16]) -> Option<&mut [f32]> {
        None
    }
    #[inline(always)]
    unsafe fn load_lanes<S: Simd>(ptr: *const bf16) -> S::F32 {
        // SAFETY: forwarded contract.
        unsafe { S::load_bf16(ptr) }
    }
    #[inline(always)]
    unsafe fn store_lanes<S: Simd>(ptr: *mut bf16, value: S::F32) {
        // SAFETY: forwarded contract.
        unsafe { S::store_bf16(ptr, value) }
    }
}

impl F32Storage for f16 {
    const CONVERTS: bool = true;
    fn widen(src: &[f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "widen: lengths differ");
        #[cfg(target_arch = "x86_64")]
        if on_avx2(x86::HalfLoop::WidenF16(src, dst)) {
            return;
        }
        src.convert_to_f32_slice(dst);
    }
    fn narrow(src: &[f32], dst: &mut [f16]) {
        assert_eq!(src.len(), dst.len(), "narrow: lengths differ");
        #[cfg(target_arch = "x86_64")]
        if src.len() >= 16 && crate::available(Isa::Avx512) {
            // SAFETY: the AVX-512 path is available; the lengths are equal and at least 16.
            unsafe { Avx512::run(x86::HalfLoop::NarrowF16x16(src, dst)) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if on_avx2(x86::HalfLoop::NarrowF16(src, dst)) {
            return;
        }
        dst.convert_from_f32_slice(src);
    }
    #[inline]
    fn as_f32(_: &[f16]) -> Option<&[f32]> {
        None
    }
    #[inline]
    fn as_f32_mut(_: &mut [f16]) -> Option<&mut [f32]> {
        None
    }
    #[inline(always)]
    unsafe fn load_lanes<S: Simd>(ptr: *const f16) -> S::F32 {
        // SAFETY: forwarded contract.
        unsafe { S::load_f16(ptr) }
    }
    #[inline(always)]
    unsafe fn store_lanes<S: Simd>(ptr: *mut f16, value: S::F32) {
        // SAFETY: forwarded contract.
        unsafe { S::store_f16(ptr, value) }
    }
}

/// The x86 conversions, each an op run on the path it needs ([`crate::IsaPath::run`]); their
/// bodies use that path's instructions directly, whatever `S` they are instantiated with.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::{Simd, SimdOp};
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// The half-precision conversions on an x86 path.
    ///
    /// - `WidenBf16`, `NarrowBf16`: [`super::widen_bf16`] and [`super::narrow_bf16`],
    ///   vectorized by the compiler for the path they run on (the baseline build gets SSE2).
    /// - `WidenF16` (F16C): eight lanes at a time; a tail under eight is covered by one more eight-lane
    ///   step that ends at the last element (it converts a few elements twice, to the same
    ///   values), so short rows (the bands' row segments) take no per-element path. Rows
    ///   under eight lanes convert one element at a time.
    /// - `NarrowF16`: eight lanes at a time (round to nearest even), the tail as above.
    /// - `NarrowF16x16`: sixteen lanes at a time, one conversion per 32-byte store, for slices of
    ///   at least 16 (AVX-512 path only).
    ///
    /// Run on a path with AVX2 and F16C (`NarrowF16x16`: AVX-512); the slices have equal
    /// lengths.
    pub(super) enum HalfLoop<'a> {
        WidenBf16(&'a [bf16], &'a mut [f32]),
        NarrowBf16(&'a [f32], &'a mut [bf16]),
        WidenF16(&'a [f16], &'a mut [f32]),
        NarrowF16(&'a [f32], &'a mut [f16]),
        NarrowF16x16(&'a [f32], &'a mut [f16]),
    }

    impl SimdOp for HalfLoop<'_> {
        type Output = ();

        #[inline(always)]
        unsafe fn run<S: Simd>(self) {
            // SAFETY: the path's instructions are available (contract); every access below
            // is in bounds of the equal-length slices (i + 8 or i + 16 <= len); f16 is a
            // 16-bit value.
            unsafe {
                match self {
                    HalfLoop::WidenBf16(src, dst) => super::widen_bf16(src, dst),
                    HalfLoop::NarrowBf16(src, dst) => super::narrow_bf16(src, dst),
                    HalfLoop::WidenF16(src, dst) if src.len() < 8 => {
                        for (wide, narrow) in dst.iter_mut().zip(src) {
                            let packed = _mm_cvtsi32_si128(i32::from(narrow.to_bits()));
                            *wide = _mm_cvtss_f32(_mm_cvtph_ps(packed));
                        }
                    }
                    HalfLoop::WidenF16(src, dst) => {
                        for i in crate::transpose::block_starts::<8>(src.len()) {
                            let halves = _mm_loadu_si128(src.as_ptr().add(i).cast::<__m128i>());
                            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(halves));
                        }
                    }
                    HalfLoop::NarrowF16(src, dst) if src.len() < 8 => {
                        for (narrow, &wide) in dst.iter_mut().zip(src) {
                            let packed =
                                _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(wide));
                            *narrow = f16::from_bits(_mm_extract_epi16::<0>(packed) as u16);
                        }
                    }
                    HalfLoop::NarrowF16(src, dst) => {
                        for i in crate::transpose::block_starts::<8>(src.len()) {
                            let singles = _mm256_loadu_ps(src.as_ptr().add(i));
                            let halves = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(singles);
                            _mm_storeu_si128(dst.as_mut_ptr().add(i).cast::<__m128i>(), halves);
                        }
                    }
                    HalfLoop::NarrowF16x16(src, dst) => {
                        for i in crate::transpose::block_starts::<16>(src.len()) {
                            let singles = _mm512_loadu_ps(src.as_ptr().add(i));
                            let halves = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(singles);
                            _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast::<__m256i>(), halves);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_round_to_nearest_even() {
        for len in 0..40 {
            let values: Vec<f32> = (0..len).map(|i| (i as f32 - 17.3) * 0.371).collect();
            let mut halves = vec![f16::ZERO; len];
            f16::narrow(&values, &mut halves);
            let expected: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
            assert_eq!(halves, expected);
            let mut back = vec![f32::NAN; len];
            f16::widen(&halves, &mut back);
            assert!(back.iter().zip(&halves).all(|(b, h)| *b == h.to_f32()));
            let mut brains = vec![bf16::ZERO; len];
            bf16::narrow(&values, &mut brains);
            assert!(
                brains
                    .iter()
                    .zip(&values)
                    .all(|(b, v)| *b == bf16::from_f32(*v))
            );
        }
    }
}
