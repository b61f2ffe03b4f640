//! The SIMD transforms, written once over [`Simd`] and compiled per path.
//!
//! Both work on *bands*: a block of tiles' pixels with `LANES` channels interleaved per pixel
//! (`band[(row·cols + col)·LANES + lane]`), so a vector holds one pixel of `LANES` channels and
//! every transform is plain vector arithmetic across pixels. Borders are already zero in the
//! input band and the output band is cropped when drained, so no tile has an edge case.
//!
//! - Input: for each tile, `Bᵀ d B` as two passes of the 1-D transform (columns, then rows):
//!   `2α` transforms of `α` vectors, then `α²` stores, one per transform-domain element, into
//!   that element's GEMM operand (`[element][tile][channel]`).
//! - Output: for each tile, `Aᵀ M A` (α columns, then `m` rows), then the bias and the
//!   activation, into the output band.
//!
//! Register budget: a 1-D transform holds its `α` inputs and `α` outputs (≤ 16 vectors); the
//! intermediate `α×α` tile (64 vectors for F6) lives on the stack, in L1. The matrices are
//! constants: after inlining, zero coefficients vanish and `±1` ones become adds.

use convkit_simd::{Simd, VectorActivation};

/// `out[i] = Σ_j matrix[i][j] · x[j]` over the non-zero coefficients.
///
/// # Safety
/// The CPU has `S::ISA`.
#[inline(always)]
unsafe fn apply<S: Simd, const A: usize, const N: usize>(
    matrix: &[[f32; A]; N],
    x: &[S::F32; A],
) -> [S::F32; N] {
    // SAFETY: the caller guarantees the CPU has S::ISA.
    unsafe {
        let mut out = [S::zero(); N];
        for (slot, row) in out.iter_mut().zip(matrix) {
            let mut sum: Option<S::F32> = None;
            for (&coefficient, &value) in row.iter().zip(x) {
                if coefficient == 0.0 {
                    continue;
                }
                sum = Some(match sum {
                    None if coefficient == 1.0 => value,
                    None => S::mul(S::splat(coefficient), value),
                    Some(partial) => S::mul_add(S::splat(coefficient), value, partial),
                });
            }
            if let Some(sum) = sum {
                *slot = sum;
            }
        }
        out
    }
}

/// Where the input transform writes: element `e` of tile `t` at `v + e·element + t·tile`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    /// Distance between tiles.
    pub tile: usize,
    /// Distance between transform-domain elements.
    pub element: usize,
}

/// Input transform of `tiles = [rows, cols]` tiles whose pixels start at `band` (one channel
/// vector, tile `(r, c)` at band row `r·M`, column `c·M`), written for tile `r·cols + c`.
///
/// # Safety
/// The CPU has `S::ISA`; `band` is readable for `(rows·M + 2)` rows of `row_stride` values
/// covering `(cols·M + 2)·LANES` each; `v` is writable at every element × tile offset
/// (+ `LANES`).
#[inline(always)]
pub(crate) unsafe fn input_tiles<S: Simd, const A: usize, const M: usize>(
    bt: &[[f32; A]; A],
    band: *const f32,
    row_stride: usize,
    [rows, cols]: [usize; 2],
    v: *mut f32,
    operand: Operand,
) {
    let lanes = S::LANES;
    // SAFETY: every load is inside the band rows and columns of a tile the caller vouches
    // for; every store is at an element × tile offset of `v`.
    unsafe {
        let mut middle = [[S::zero(); A]; A];
        for r in 0..rows {
            for c in 0..cols {
                let origin = band.add(r * M * row_stride + c * M * lanes);
                let out = v.add((r * cols + c) * operand.tile);
                for j in 0..A {
                    let mut column = [S::zero(); A];
                    for (i, value) in column.iter_mut().enumerate() {
                        *value = S::load(origin.add(i * row_stride + j * lanes));
                    }
                    let transformed = apply::<S, A, A>(bt, &column);
                    for (row, value) in middle.iter_mut().zip(transformed) {
                        row[j] = value;
                    }
                }
                for (i, row) in middle.iter().enumerate() {
                    let transformed = apply::<S, A, A>(bt, row);
                    for (j, value) in transformed.into_iter().enumerate() {
                        S::store(out.add((i * A + j) * operand.element), value);
                    }
                }
            }
        }
    }
}

/// Output transform of `tiles = [rows, cols]` tiles from the GEMM products (element `e` of
/// tile `t` at `products + e·element + t·tile`, one channel vector), plus `bias` (`LANES`
/// values) and the activation, into the output band (tile `(r, c)` at band row `r·M`, column
/// `c·M`).
///
/// # Safety
/// The CPU has `S::ISA`; `products` is readable at every element × tile offset (+ `LANES`);
/// `bias` holds `LANES` values; `band` is writable for `rows·M` rows of `row_stride` values
/// covering `cols·M·LANES` each.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn output_tiles<S: Simd, const A: usize, const M: usize>(
    at: &[[f32; A]; M],
    products: *const f32,
    operand: Operand,
    [rows, cols]: [usize; 2],
    band: *mut f32,
    row_stride: usize,
    bias: *const f32,
    activation: VectorActivation,
) {
    let lanes = S::LANES;
    // SAFETY: loads at element × tile offsets and from `bias`, stores inside the band rows and
    // columns of the tiles, as the caller vouches.
    unsafe {
        let bias = S::load(bias);
        let mut middle = [[S::zero(); A]; M];
        for r in 0..rows {
            for c in 0..cols {
                let source = products.add((r * cols + c) * operand.tile);
                for j in 0..A {
                    let mut column = [S::zero(); A];
                    for (i, value) in column.iter_mut().enumerate() {
                        *value = S::load(source.add((i * A + j) * operand.element));
                    }
                    let transformed = apply::<S, A, M>(at, &column);
                    for (row, value) in middle.iter_mut().zip(transformed) {
                        row[j] = value;
                    }
                }
                let origin = band.add(r * M * row_stride + c * M * lanes);
                for (i, row) in middle.iter().enumerate() {
                    let transformed = apply::<S, A, M>(at, row);
                    for (j, value) in transformed.into_iter().enumerate() {
                        let y = activation.apply::<S>(S::add(value, bias));
                        S::store(origin.add(i * row_stride + j * lanes), y);
                    }
                }
            }
        }
    }
}
