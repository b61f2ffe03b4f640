//! The AVX-512 path: `__m512` with FMA, `__mmask16` tails, F16C-style conversions on 16 lanes.

use super::Simd;
use super::avx2::transpose8x8;
use half::{bf16, f16};
use std::arch::x86_64::*;

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
