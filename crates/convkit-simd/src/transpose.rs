//! 8- and 16-lane interleaving through register transposes: eight (sixteen) rows into every
//! `stride`-th group of eight (sixteen) f32 slots, and back. Packing a GEMM operand and
//! converting NCHW rows to and from channel-interleaved bands are both this operation.
//!
//! With AVX2 (detected once per process), eight values of each row move per 8x8 transpose
//! (8 loads, 24 shuffles, 8 stores); with AVX-512, sixteen per 16x16 transpose (16 whole-line
//! loads, 64 shuffles, 16 whole-line stores: a third of the shuffles per value, and each
//! destination line written at once instead of in two halves). The rows may be any
//! [`F32Storage`]: half types convert in the transpose's loads and stores (`vcvtph2ps`, a
//! shift for bf16), with no staging pass. The remainder, and other CPUs, go value by value.

use crate::F32Storage;
#[cfg(target_arch = "x86_64")]
use crate::{Avx2, Avx512, IsaPath, available};
#[cfg(target_arch = "x86_64")]
use convkit_core::Isa;

/// `dst[p·stride + offset + lane] = rows[lane][p]` (widened) for every `p < rows[0].len()`.
///
/// # Panics
/// When the rows differ in length, `offset + 8 > stride`, or `dst` is too short.
pub fn interleave8<T: F32Storage>(rows: [&[T]; 8], dst: &mut [f32], stride: usize, offset: usize) {
    let len = checked_len(&rows, dst.len(), stride, offset);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx2) {
        // SAFETY: the AVX2 path is available; the lengths were checked.
        done = unsafe {
            x86::interleave_on::<Avx2, x86::Transpose8, T, 8>(&rows, dst, stride, offset)
        };
    }
    for p in done..len {
        for (lane, row) in rows.iter().enumerate() {
            dst[p * stride + offset + lane] = row[p].to_f32_lossy();
        }
    }
}

/// `dst[p·stride + offset + lane] = rows[lane][p]` (widened) for every `p < rows[0].len()`,
/// sixteen lanes: one 16x16 transpose per sixteen values of each row with AVX-512, the rest
/// (or all, without AVX-512) as two [`interleave8`]s.
///
/// # Panics
/// When the rows differ in length, `offset + 16 > stride`, or `dst` is too short.
pub fn interleave16<T: F32Storage>(
    rows: [&[T]; 16],
    dst: &mut [f32],
    stride: usize,
    offset: usize,
) {
    let len = checked_len(&rows, dst.len(), stride, offset);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx512) {
        // SAFETY: the AVX-512 path is available; the lengths were checked.
        done = unsafe {
            x86::interleave_on::<Avx512, x86::Transpose16, T, 16>(&rows, dst, stride, offset)
        };
    }
    if done < len {
        let rest = &mut dst[done * stride..];
        let low: [&[T]; 8] = std::array::from_fn(|lane| &rows[lane][done..]);
        let high: [&[T]; 8] = std::array::from_fn(|lane| &rows[8 + lane][done..]);
        interleave8(low, rest, stride, offset);
        interleave8(high, rest, stride, offset + 8);
    }
}

/// The common length of `N` rows to interleave into `N` slots from `offset` of every
/// `stride`-th group of a `dst_len` destination.
///
/// # Panics
/// When the rows differ in length, `offset + N > stride`, or the destination is too short.
fn checked_len<T, const N: usize>(
    rows: &[&[T]; N],
    dst_len: usize,
    stride: usize,
    offset: usize,
) -> usize {
    let len = rows[0].len();
    assert!(
        rows.iter().all(|r| r.len() == len)
            && offset + N <= stride
            && (len == 0 || dst_len >= (len - 1) * stride + offset + N),
        "interleave{N}: rows of unequal length or destination too short"
    );
    len
}

/// Where the blocks of `N` values of rows of `len` start: every whole block, and where a
/// remainder is left, one more block ending at the last value (it moves a few values twice,
/// to the same places), so that rows of at least `N` values take no value-by-value path.
/// None for shorter rows.
pub(crate) fn block_starts<const N: usize>(len: usize) -> impl Iterator<Item = usize> {
    let whole = if len >= N { len - N + 1 } else { 0 };
    let tail = len > N && !len.is_multiple_of(N);
    (0..whole).step_by(N).chain(tail.then(|| len - N))
}

/// The values of each row through `X` (an N×N register transpose) in the blocks of
/// [`block_starts`]; returns how many values of each row were moved (all, or none for rows
/// under `N`). Inlined into each path's loop, so that the transpose is too (a call per block
/// cost as much as the shuffles).
///
/// # Safety
/// The CPU runs `X`; the rows and `dst` passed [`checked_len`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose_blocks<T, const N: usize, X: x86::BlockTranspose<T, N>>(
    rows: &[&[T]; N],
    dst: &mut [f32],
    stride: usize,
    offset: usize,
) -> usize {
    let len = rows[0].len();
    for p in block_starts::<N>(len) {
        // SAFETY: every row holds p + N ≤ len values; `dst` reaches
        // `(len − 1)·stride + offset + N` (checked).
        unsafe {
            let out = dst.as_mut_ptr().add(p * stride + offset);
            X::transpose(
                std::array::from_fn(|lane| rows[lane].as_ptr().add(p)),
                std::array::from_fn(|j| out.add(j * stride)),
            );
        }
    }
    if len >= N { len } else { 0 }
}

/// `rows[lane][p] = src[p·stride + offset + lane]` (rounded once to `T`) for every
/// `p < rows[0].len()`: the inverse of [`interleave8`].
///
/// # Panics
/// When the rows differ in length, `offset + 8 > stride`, or `src` is too short.
pub fn deinterleave8<T: F32Storage>(
    src: &[f32],
    stride: usize,
    offset: usize,
    rows: [&mut [T]; 8],
) {
    let len = rows[0].len();
    assert!(
        rows.iter().all(|r| r.len() == len)
            && offset + 8 <= stride
            && (len == 0 || src.len() >= (len - 1) * stride + offset + 8),
        "deinterleave8: rows of unequal length or source too short"
    );
    let mut rows = rows;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if available(Isa::Avx2) && len >= 8 {
        let op = x86::Deinterleave8 {
            src,
            stride,
            offset,
            rows: &mut rows,
        };
        // SAFETY: the AVX2 path is available; `src` reaches `(len − 1)·stride + offset + 8`
        // and every row holds `len` values, checked above.
        unsafe { Avx2::run(op) };
        done = len;
    }
    for p in done..len {
        for (lane, row) in rows.iter_mut().enumerate() {
            row[p] = T::from_f32_rounded(src[p * stride + offset + lane]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::{Avx2, Avx512, F32Storage, IsaPath, Simd, SimdOp};
    use std::arch::x86_64::*;

    /// An N×N register transpose of rows of `T` into f32 columns.
    pub(super) trait BlockTranspose<T, const N: usize> {
        /// Reads N values from each `rows[i]` (widened) and writes column `j` to
        /// `columns[j]`.
        ///
        /// # Safety
        /// The CPU has the transpose's path; each source is readable and each destination
        /// writable for N values.
        unsafe fn transpose(rows: [*const T; N], columns: [*mut f32; N]);
    }

    /// [`transpose`], on the AVX2 path.
    pub(super) struct Transpose8;

    impl<T: F32Storage> BlockTranspose<T, 8> for Transpose8 {
        #[inline(always)]
        unsafe fn transpose(rows: [*const T; 8], columns: [*mut f32; 8]) {
            // SAFETY: forwarded contract.
            unsafe { transpose(rows, columns) }
        }
    }

    /// [`transpose16`], on the AVX-512 path.
    pub(super) struct Transpose16;

    impl<T: F32Storage> BlockTranspose<T, 16> for Transpose16 {
        #[inline(always)]
        unsafe fn transpose(rows: [*const T; 16], columns: [*mut f32; 16]) {
            // SAFETY: forwarded contract.
            unsafe { transpose16(rows, columns) }
        }
    }

    /// [`super::transpose_blocks`] with the N×N transpose `X`; returns how many values of
    /// each row were moved.
    ///
    /// Run on a path that has `X`'s instructions; the rows and `dst` passed
    /// [`super::checked_len`].
    pub(super) struct Interleave<'a, 'b, T, X, const N: usize> {
        pub rows: &'a [&'b [T]; N],
        pub dst: &'a mut [f32],
        pub stride: usize,
        pub offset: usize,
        pub transpose: std::marker::PhantomData<X>,
    }

    /// Runs [`Interleave`] with transpose `X` on path `P`.
    ///
    /// # Safety
    /// The CPU has `P` and `X`'s instructions; the rows and `dst` passed
    /// [`super::checked_len`].
    pub(super) unsafe fn interleave_on<
        P: IsaPath,
        X: BlockTranspose<T, N>,
        T: F32Storage,
        const N: usize,
    >(
        rows: &[&[T]; N],
        dst: &mut [f32],
        stride: usize,
        offset: usize,
    ) -> usize {
        let op = Interleave::<T, X, N> {
            rows,
            dst,
            stride,
            offset,
            transpose: std::marker::PhantomData,
        };
        // SAFETY: forwarded contract.
        unsafe { P::run(op) }
    }

    impl<T: F32Storage, X: BlockTranspose<T, N>, const N: usize> SimdOp
        for Interleave<'_, '_, T, X, N>
    {
        type Output = usize;

        #[inline(always)]
        unsafe fn run<S: Simd>(self) -> usize {
            let Interleave {
                rows,
                dst,
                stride,
                offset,
                ..
            } = self;
            // SAFETY: forwarded contract; each block's pointers are in bounds.
            unsafe { super::transpose_blocks::<T, N, X>(rows, dst, stride, offset) }
        }
    }

    /// Every value of [`super::deinterleave8`], in the blocks of [`super::block_starts`].
    ///
    /// Run on a path with AVX2 and F16C; every row holds `len ≥ 8` values and `src` reaches
    /// `(len − 1)·stride + offset + 8`.
    pub(super) struct Deinterleave8<'a, 'b, T> {
        pub src: &'a [f32],
        pub stride: usize,
        pub offset: usize,
        pub rows: &'a mut [&'b mut [T]; 8],
    }

    impl<T: F32Storage> SimdOp for Deinterleave8<'_, '_, T> {
        type Output = ();

        #[inline(always)]
        unsafe fn run<S: Simd>(self) {
            let Deinterleave8 {
                src,
                stride,
                offset,
                rows,
            } = self;
            for p in super::block_starts::<8>(rows[0].len()) {
                // SAFETY: forwarded contract: the block at `p` (p + 8 ≤ len) of the source
                // and of every row.
                unsafe {
                    let base = src.as_ptr().add(p * stride + offset);
                    transpose(
                        std::array::from_fn(|j| base.add(j * stride)),
                        std::array::from_fn(|lane| rows[lane].as_mut_ptr().add(p)),
                    );
                }
            }
        }
    }

    /// Reads eight values from each `rows[i]` (widened) and writes column `j` (value `j` of
    /// every row, narrowed) to `columns[j]`.
    ///
    /// # Safety
    /// The CPU has the AVX2 path; each source is readable and each destination writable for
    /// 8 values.
    #[inline(always)]
    unsafe fn transpose<R: F32Storage, W: F32Storage>(rows: [*const R; 8], columns: [*mut W; 8]) {
        // SAFETY: the caller guarantees the pointers and the CPU.
        unsafe {
            let r = rows.map(|row| R::load_lanes::<Avx2>(row));
            let transposed = crate::vector::transpose8x8(r);
            for (&column, &dst) in transposed.iter().zip(&columns) {
                W::store_lanes::<Avx2>(dst, column);
            }
        }
    }

    /// Reads sixteen values from each `rows[i]` (widened) and writes column `j` (value `j`
    /// of every row) to `columns[j]`: 32-bit then 64-bit interleaves of row pairs, then two
    /// rounds of 128-bit lane shuffles (a 4x4 transpose of lanes).
    ///
    /// # Safety
    /// The CPU has the AVX-512 path; each source is readable for 16 values and each
    /// destination writable for 16 f32.
    #[inline(always)]
    unsafe fn transpose16<R: F32Storage>(rows: [*const R; 16], columns: [*mut f32; 16]) {
        // SAFETY: the caller guarantees the pointers and the CPU.
        unsafe {
            let r: [__m512; 16] = rows.map(|row| R::load_lanes::<Avx512>(row));
            // t[2i], t[2i+1], 128-bit lane k: rows 2i, 2i+1 interleaved at columns 4k, 4k+1
            // and 4k+2, 4k+3.
            let mut t = [_mm512_setzero_ps(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            // u[4g + j], lane k: rows 4g..4g+4 at column 4k + j.
            let mut u = [_mm512_setzero_ps(); 16];
            for g in 0..4 {
                let pd = |v: __m512| _mm512_castps_pd(v);
                let (a, b, c, d) = (
                    pd(t[4 * g]),
                    pd(t[4 * g + 1]),
                    pd(t[4 * g + 2]),
                    pd(t[4 * g + 3]),
                );
                u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
                u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
                u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
                u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
            }
            // Column 4k + j gathers lane k of u[j], u[4 + j], u[8 + j], u[12 + j].
            for j in 0..4 {
                let v0 = _mm512_shuffle_f32x4::<0b01_00_01_00>(u[j], u[4 + j]);
                let v1 = _mm512_shuffle_f32x4::<0b11_10_11_10>(u[j], u[4 + j]);
                let v2 = _mm512_shuffle_f32x4::<0b01_00_01_00>(u[8 + j], u[12 + j]);
                let v3 = _mm512_shuffle_f32x4::<0b11_10_11_10>(u[8 + j], u[12 + j]);
                _mm512_storeu_ps(columns[j], _mm512_shuffle_f32x4::<0b10_00_10_00>(v0, v2));
                _mm512_storeu_ps(
                    columns[4 + j],
                    _mm512_shuffle_f32x4::<0b11_01_11_01>(v0, v2),
                );
                _mm512_storeu_ps(
                    columns[8 + j],
                    _mm512_shuffle_f32x4::<0b10_00_10_00>(v1, v3),
                );
                _mm512_storeu_ps(
                    columns[12 + j],
                    _mm512_shuffle_f32x4::<0b11_01_11_01>(v1, v3),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `LANES` rows of `len` distinct values, interleaved by `interleave` at `stride` from
    /// `offset` and checked against the definition; the rows and the destination returned.
    fn check_interleave<const LANES: usize>(
        len: usize,
        (stride, offset): (usize, usize),
        interleave: fn([&[f32]; LANES], &mut [f32], usize, usize),
    ) -> (Vec<Vec<f32>>, Vec<f32>) {
        let rows: Vec<Vec<f32>> = (0..LANES)
            .map(|lane| (0..len).map(|p| (lane * 100 + p) as f32).collect())
            .collect();
        let mut dst = vec![f32::NAN; len * stride + LANES];
        interleave(
            std::array::from_fn(|i| rows[i].as_slice()),
            &mut dst,
            stride,
            offset,
        );
        for p in 0..len {
            for (lane, row) in rows.iter().enumerate() {
                assert_eq!(dst[p * stride + offset + lane], row[p], "p {p} lane {lane}");
            }
        }
        (rows, dst)
    }

    #[test]
    fn interleave16_matches_the_definition_for_every_length() {
        for len in 0..40 {
            check_interleave::<16>(len, (37, 5), interleave16);
        }
    }

    #[test]
    fn interleave_and_deinterleave_are_inverse_for_every_length() {
        for len in 0..27 {
            let (rows, dst) = check_interleave::<8>(len, (19, 3), interleave8);
            let mut back = vec![vec![f32::NAN; len]; 8];
            let [r0, r1, r2, r3, r4, r5, r6, r7] = back.as_mut_slice() else {
                unreachable!()
            };
            deinterleave8(&dst, 19, 3, [r0, r1, r2, r3, r4, r5, r6, r7]);
            assert_eq!(back, rows);
        }
    }

    #[test]
    fn half_rows_widen_on_the_way_in_and_round_once_on_the_way_out() {
        use half::{bf16, f16};
        for len in 0..40 {
            let rows: Vec<Vec<f16>> = (0..16)
                .map(|lane| {
                    (0..len)
                        .map(|p| f16::from_f32((lane * 64 + p) as f32 / 8.0))
                        .collect()
                })
                .collect();
            let (stride, offset) = (21, 3);
            let mut dst = vec![f32::NAN; len * stride + 16];
            interleave16(
                std::array::from_fn(|i| rows[i].as_slice()),
                &mut dst,
                stride,
                offset,
            );
            for p in 0..len {
                for (lane, row) in rows.iter().enumerate() {
                    assert_eq!(
                        dst[p * stride + offset + lane],
                        row[p].to_f32(),
                        "p {p} lane {lane}"
                    );
                }
            }
            // bf16 keeps 8 significant bits: lane·64 + p needs up to 11, so values round.
            let mut back = vec![vec![bf16::ZERO; len]; 8];
            let [r0, r1, r2, r3, r4, r5, r6, r7] = back.as_mut_slice() else {
                unreachable!()
            };
            deinterleave8(&dst, stride, offset + 8, [r0, r1, r2, r3, r4, r5, r6, r7]);
            for p in 0..len {
                for (lane, row) in back.iter().enumerate() {
                    let wide = rows[8 + lane][p].to_f32();
                    assert_eq!(row[p], bf16::from_f32(wide), "p {p} lane {lane}");
                }
            }
        }
    }
}
