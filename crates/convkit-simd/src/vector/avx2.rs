//! The AVX2 path: `__m256` with FMA, masked loads and stores for tails, F16C for half storage.

use super::Simd;
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
