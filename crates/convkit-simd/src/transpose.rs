//! 8-lane interleaving through 8x8 register transposes: eight rows into every `stride`-th
//! group of eight slots, and back. Packing a GEMM operand and converting NCHW rows to and from
//! channel-interleaved bands are both this operation.
//!
//! With AVX2 (detected once per process), eight values of each row move per 8x8 transpose
//! (8 loads, 24 shuffles, 8 stores); the remainder, and other CPUs, go value by value.

use crate::available;
use convkit_core::Isa;

/// `dst[p·stride + offset + lane] = rows[lane][p]` for every `p < rows[0].len()`.
///
/// # Panics
/// When the rows differ in length, `offset + 8 > stride`, or `dst` is too short.
pub fn interleave8(rows: [&[f32]; 8], dst: &mut [f32], stride: usize, offset: usize) {
    let len = rows[0].len();
    assert!(
        rows.iter().all(|r| r.len() == len)
            && offset + 8 <= stride
            && (len == 0 || dst.len() >= (len - 1) * stride + offset + 8),
        "interleave8: rows of unequal length or destination too short"
    );
    let blocks = if has_avx2() { len / 8 } else { 0 };
    #[cfg(target_arch = "x86_64")]
    if blocks > 0 {
        // SAFETY: AVX2 was detected; every row holds `len ≥ 8·blocks` values and `dst`
        // reaches `(len − 1)·stride + offset + 8`, checked above.
        unsafe {
            for block in 0..blocks {
                let p = 8 * block;
                let out = dst.as_mut_ptr().add(p * stride + offset);
                x86::transpose(
                    std::array::from_fn(|lane| rows[lane].as_ptr().add(p)),
                    std::array::from_fn(|j| out.add(j * stride)),
                );
            }
        }
    }
    for p in blocks * 8..len {
        for (lane, row) in rows.iter().enumerate() {
            dst[p * stride + offset + lane] = row[p];
        }
    }
}

/// `rows[lane][p] = src[p·stride + offset + lane]` for every `p < rows[0].len()`: the inverse
/// of [`interleave8`].
///
/// # Panics
/// When the rows differ in length, `offset + 8 > stride`, or `src` is too short.
pub fn deinterleave8(src: &[f32], stride: usize, offset: usize, rows: [&mut [f32]; 8]) {
    let len = rows[0].len();
    assert!(
        rows.iter().all(|r| r.len() == len)
            && offset + 8 <= stride
            && (len == 0 || src.len() >= (len - 1) * stride + offset + 8),
        "deinterleave8: rows of unequal length or source too short"
    );
    let mut rows = rows;
    let blocks = if has_avx2() { len / 8 } else { 0 };
    #[cfg(target_arch = "x86_64")]
    if blocks > 0 {
        // SAFETY: AVX2 was detected; `src` reaches `(len − 1)·stride + offset + 8` and every
        // row holds `len ≥ 8·blocks` values, checked above.
        unsafe {
            for block in 0..blocks {
                let p = 8 * block;
                let base = src.as_ptr().add(p * stride + offset);
                x86::transpose(
                    std::array::from_fn(|j| base.add(j * stride)),
                    std::array::from_fn(|lane| rows[lane].as_mut_ptr().add(p)),
                );
            }
        }
    }
    for p in blocks * 8..len {
        for (lane, row) in rows.iter_mut().enumerate() {
            row[p] = src[p * stride + offset + lane];
        }
    }
}

/// Whether the AVX2 transposes can run.
fn has_avx2() -> bool {
    cfg!(target_arch = "x86_64") && available(Isa::Avx2)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Reads eight values from each `rows[i]` and writes column `j` (value `j` of every row)
    /// to `columns[j]`.
    ///
    /// # Safety
    /// The CPU has AVX2; each source is readable and each destination writable for 8 f32.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn transpose(rows: [*const f32; 8], columns: [*mut f32; 8]) {
        // SAFETY: the caller guarantees the pointers and the CPU.
        unsafe {
            let r = [
                _mm256_loadu_ps(rows[0]),
                _mm256_loadu_ps(rows[1]),
                _mm256_loadu_ps(rows[2]),
                _mm256_loadu_ps(rows[3]),
                _mm256_loadu_ps(rows[4]),
                _mm256_loadu_ps(rows[5]),
                _mm256_loadu_ps(rows[6]),
                _mm256_loadu_ps(rows[7]),
            ];
            let transposed = crate::vector::transpose8x8(r);
            for (&column, &dst) in transposed.iter().zip(&columns) {
                _mm256_storeu_ps(dst, column);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_and_deinterleave_are_inverse_for_every_length() {
        for len in 0..27 {
            let rows: Vec<Vec<f32>> = (0..8)
                .map(|lane| (0..len).map(|p| (lane * 100 + p) as f32).collect())
                .collect();
            let stride = 19;
            let mut dst = vec![f32::NAN; len * stride + 8];
            interleave8(
                std::array::from_fn(|i| rows[i].as_slice()),
                &mut dst,
                stride,
                3,
            );
            for p in 0..len {
                for lane in 0..8 {
                    assert_eq!(dst[p * stride + 3 + lane], rows[lane][p]);
                }
            }
            let mut back = vec![vec![f32::NAN; len]; 8];
            let [r0, r1, r2, r3, r4, r5, r6, r7] = back.as_mut_slice() else {
                unreachable!()
            };
            deinterleave8(&dst, stride, 3, [r0, r1, r2, r3, r4, r5, r6, r7]);
            assert_eq!(back, rows);
        }
    }
}
