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
//! intermediate `α×α` tile (64 vectors for F6) lives on the stack, in L1. The 1-D transforms
//! are written out per tile size ([`OneD`]), sharing the subexpressions of symmetric points.

use crate::transforms::plane_polyphase_shares;
use convkit_simd::{Simd, VectorActivation};
use std::marker::PhantomData;

/// A tile size's 1-D transforms `Bᵀ x` and `Aᵀ x`, written out with shared subexpressions
/// (the symmetric point pairs ±p give rows `t_even ± t_odd`). The unit tests prove each equal
/// to its matrix in [`crate::transforms`].
pub(crate) trait OneD<const A: usize, const M: usize> {
    /// `Bᵀ x`.
    ///
    /// # Safety
    /// The CPU has `S::ISA`.
    unsafe fn input<S: Simd>(x: [S::F32; A]) -> [S::F32; A];
    /// `Aᵀ x`.
    ///
    /// # Safety
    /// The CPU has `S::ISA`.
    unsafe fn output<S: Simd>(x: [S::F32; A]) -> [S::F32; M];
}

/// F(2, 3): 4 adds in, 4 out.
pub(crate) struct F2;
/// F(4, 3): 12 operations in, 8 out.
pub(crate) struct F4;
/// F(6, 3): 26 operations in, 19 out.
pub(crate) struct F6;

impl OneD<4, 2> for F2 {
    #[inline(always)]
    unsafe fn input<S: Simd>([d0, d1, d2, d3]: [S::F32; 4]) -> [S::F32; 4] {
        // SAFETY: the caller guarantees the CPU has S::ISA.
        unsafe {
            [
                S::sub(d0, d2),
                S::add(d1, d2),
                S::sub(d2, d1),
                S::sub(d1, d3),
            ]
        }
    }

    #[inline(always)]
    unsafe fn output<S: Simd>([m0, m1, m2, m3]: [S::F32; 4]) -> [S::F32; 2] {
        // SAFETY: the caller guarantees the CPU has S::ISA.
        unsafe { [S::add(S::add(m0, m1), m2), S::sub(S::sub(m1, m2), m3)] }
    }
}

impl OneD<6, 4> for F4 {
    #[inline(always)]
    unsafe fn input<S: Simd>([d0, d1, d2, d3, d4, d5]: [S::F32; 6]) -> [S::F32; 6] {
        // SAFETY: the caller guarantees the CPU has S::ISA.
        unsafe {
            let (four, minus_four, minus_five) = (S::splat(4.0), S::splat(-4.0), S::splat(-5.0));
            let y0 = S::mul_add(four, d0, S::mul_add(minus_five, d2, d4));
            let y5 = S::mul_add(four, d1, S::mul_add(minus_five, d3, d5));
            let (t0, t1) = (
                S::mul_add(minus_four, d2, d4),
                S::mul_add(minus_four, d1, d3),
            );
            let (t2, t3) = (S::sub(d4, d2), S::mul(S::splat(2.0), S::sub(d3, d1)));
            [
                y0,
                S::add(t0, t1),
                S::sub(t0, t1),
                S::add(t2, t3),
                S::sub(t2, t3),
                y5,
            ]
        }
    }

    #[inline(always)]
    unsafe fn output<S: Simd>([m0, m1, m2, m3, m4, m5]: [S::F32; 6]) -> [S::F32; 4] {
        // SAFETY: the caller guarantees the CPU has S::ISA.
        unsafe {
            let (a, b) = (S::add(m1, m2), S::sub(m1, m2));
            let (c, d) = (S::add(m3, m4), S::sub(m3, m4));
            [
                S::add(S::add(m0, a), c),
                S::mul_add(S::splat(2.0), d, b),
                S::mul_add(S::splat(4.0), c, a),
                S::add(S::mul_add(S::splat(8.0), d, b), m5),
            ]
        }
    }
}

impl OneD<8, 6> for F6 {
    #[inline(always)]
    unsafe fn input<S: Simd>([d0, d1, d2, d3, d4, d5, d6, d7]: [S::F32; 8]) -> [S::F32; 8] {
        // SAFETY: the caller guarantees the CPU has S::ISA.
        unsafe {
            let k = S::splat;
            let y0 = S::mul_add(k(5.25), S::sub(d4, d2), S::sub(d0, d6));
            let y7 = S::mul_add(k(5.25), S::sub(d3, d5), S::sub(d7, d1));
            let t1 = S::mul_add(k(-4.25), d4, S::add(d2, d6));
            let t2 = S::mul_add(k(-4.25), d3, S::add(d1, d5));
            let t3 = S::mul_add(k(-1.25), d4, S::mul_add(k(0.25), d2, d6));
            let t4 = S::mul_add(k(2.0), d5, S::mul_add(k(-2.5), d3, S::mul(k(0.5), d1)));
            let t5 = S::mul_add(k(-5.0), d4, S::mul_add(k(4.0), d2, d6));
            let t6 = S::mul_add(k(0.5), d5, S::mul_add(k(-2.5), d3, S::mul(k(2.0), d1)));
            [
                y0,
                S::add(t1, t2),
                S::sub(t1, t2),
                S::add(t3, t4),
                S::sub(t3, t4),
                S::add(t5, t6),
                S::sub(t5, t6),
                y7,
            ]
        }
    }

    #[inline(always)]
    unsafe fn output<S: Simd>([m0, m1, m2, m3, m4, m5, m6, m7]: [S::F32; 8]) -> [S::F32; 6] {
        // SAFETY: the caller guarantees the CPU has S::ISA.
        unsafe {
            let k = S::splat;
            let (a1, b1) = (S::add(m1, m2), S::sub(m1, m2));
            let (a2, b2) = (S::add(m3, m4), S::sub(m3, m4));
            let (a3, b3) = (S::add(m5, m6), S::sub(m5, m6));
            [
                S::add(S::add(m0, a1), S::add(a2, a3)),
                S::mul_add(k(0.5), b3, S::mul_add(k(2.0), b2, b1)),
                S::mul_add(k(0.25), a3, S::mul_add(k(4.0), a2, a1)),
                S::mul_add(k(0.125), b3, S::mul_add(k(8.0), b2, b1)),
                S::mul_add(k(0.0625), a3, S::mul_add(k(16.0), a2, a1)),
                S::add(S::mul_add(k(0.03125), b3, S::mul_add(k(32.0), b2, b1)), m7),
            ]
        }
    }
}

/// F(2, 2): the even phase of [`crate::transforms::Form::Polyphase`] with 2-output tiles.
pub(crate) struct TwoTapF2;
/// F(4, 2).
pub(crate) struct TwoTapF4;
/// F(6, 2).
pub(crate) struct TwoTapF6;

/// `matrix · x` for a constant matrix of small dyadic entries: after inlining, the zero
/// entries vanish and the ±1 entries become additions.
#[inline(always)]
unsafe fn apply<S: Simd, const R: usize, const C: usize>(
    matrix: &[[f32; C]; R],
    x: [S::F32; C],
) -> [S::F32; R] {
    // SAFETY: the caller guarantees the CPU has S::ISA. (Loops, not `array::from_fn`: a
    // closure has no target features, so the intrinsics inside it would not inline.)
    unsafe {
        let mut out = [S::zero(); R];
        for (sum, row) in out.iter_mut().zip(matrix) {
            for (&entry, &value) in row.iter().zip(&x) {
                *sum = match entry {
                    0.0 => *sum,
                    1.0 => S::add(*sum, value),
                    -1.0 => S::sub(*sum, value),
                    _ => S::mul_add(S::splat(entry), value, *sum),
                };
            }
        }
        out
    }
}

/// `N` vectors loaded from `base + i·step` (a loop rather than `array::from_fn`, whose
/// closure would keep the loads from inlining into the path's code).
///
/// # Safety
/// The CPU has `S::ISA`; every `base + i·step` is readable for `LANES` values.
#[inline(always)]
unsafe fn load_strided<S: Simd, const N: usize>(base: *const f32, step: usize) -> [S::F32; N] {
    // SAFETY: forwarded contract.
    unsafe {
        let mut values = [S::zero(); N];
        for (i, value) in values.iter_mut().enumerate() {
            *value = S::load(base.add(i * step));
        }
        values
    }
}

macro_rules! two_tap_transforms {
    ($($name:ident, $a:literal, $m:literal, $bt:ident, $at:ident;)+) => {$(
        impl OneD<$a, $m> for $name {
            #[inline(always)]
            unsafe fn input<S: Simd>(x: [S::F32; $a]) -> [S::F32; $a] {
                // SAFETY: the caller guarantees the CPU has S::ISA.
                unsafe { apply::<S, $a, $a>(&crate::transforms::$bt, x) }
            }

            #[inline(always)]
            unsafe fn output<S: Simd>(x: [S::F32; $a]) -> [S::F32; $m] {
                // SAFETY: the caller guarantees the CPU has S::ISA.
                unsafe { apply::<S, $m, $a>(&crate::transforms::$at, x) }
            }
        }
    )+};
}

two_tap_transforms! {
    TwoTapF2, 3, 2, BT2_TWO_TAP, AT2_TWO_TAP;
    TwoTapF4, 5, 4, BT4_TWO_TAP, AT4_TWO_TAP;
    TwoTapF6, 7, 6, BT6_TWO_TAP, AT6_TWO_TAP;
}

/// Where the input transform writes: element `e` of tile `t` at `v + e·element + t·tile`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    /// Distance between tiles.
    pub tile: usize,
    /// Distance between transform-domain elements.
    pub element: usize,
}

impl Operand {
    /// Where row `row` of element share `share` starts (a share holds one row per tile).
    #[inline(always)]
    pub(crate) const fn offset(&self, share: usize, row: usize) -> usize {
        share * self.element + row * self.tile
    }
}

/// Input transform of `tiles = [rows, cols]` tiles whose pixels start at `band` (one channel
/// vector, tile `(r, c)` at band row `r·M`, column `c·M`), written for tile `r·cols + c`.
///
/// # Safety
/// The CPU has `S::ISA`; `band` is readable for `(rows·M + 2)` rows of `row_stride` values
/// covering `(cols·M + 2)·LANES` each; `v` is writable at every element × tile offset
/// (+ `LANES`).
#[inline(always)]
pub(crate) unsafe fn input_tiles<S: Simd, T: OneD<A, M>, const A: usize, const M: usize>(
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
                    let transformed = T::input::<S>(column);
                    for (row, value) in middle.iter_mut().zip(transformed) {
                        row[j] = value;
                    }
                }
                for (i, row) in middle.iter().enumerate() {
                    let transformed = T::input::<S>(*row);
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
pub(crate) unsafe fn output_tiles<S: Simd, T: OneD<A, M>, const A: usize, const M: usize>(
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
                    let transformed = T::output::<S>(column);
                    for (row, value) in middle.iter_mut().zip(transformed) {
                        row[j] = value;
                    }
                }
                let origin = band.add(r * M * row_stride + c * M * lanes);
                for (i, row) in middle.iter().enumerate() {
                    let transformed = T::output::<S>(*row);
                    for (j, value) in transformed.into_iter().enumerate() {
                        let y = activation.apply::<S>(S::add(value, bias));
                        S::store(origin.add(i * row_stride + j * lanes), y);
                    }
                }
            }
        }
    }
}

/// One form's tile transforms (see [`crate::transforms::Form`]), on a band of one channel
/// vector. `input` writes V, `output` reads M; both address tile `(r, c, p)` (tile row,
/// tile column, phase of a dilated row) as `(r·cols + c)·phases + p`.
pub(crate) trait TileTransforms {
    /// The input transform of `tiles = [rows, cols, phases]` tiles of the band (rows
    /// `row_stride` values apart) into V.
    ///
    /// # Safety
    /// The CPU has `S::ISA`; the band is readable for the form's input pixels of these tiles
    /// (`Form::input_pixels`), `LANES` values per pixel; `v` is writable at every product of
    /// every tile (+ `LANES`).
    unsafe fn input<S: Simd>(
        band: *const f32,
        row_stride: usize,
        tiles: [usize; 3],
        v: *mut f32,
        operand: Operand,
    );

    /// The output transform of `tiles` tiles from M, plus `bias` (`LANES` values) and the
    /// activation, into the output band (rows `row_stride` values apart).
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `products` is readable at every product of every tile
    /// (+ `LANES`); `bias` holds `LANES` values; the band is writable for the tiles' outputs.
    #[allow(clippy::too_many_arguments)]
    unsafe fn output<S: Simd>(
        products: *const f32,
        operand: Operand,
        tiles: [usize; 3],
        band: *mut f32,
        row_stride: usize,
        bias: *const f32,
        activation: VectorActivation,
    );
}

/// [`crate::transforms::Form::Plane`] with the 1-D transforms `D`.
pub(crate) struct Plane<D, const A: usize, const M: usize>(PhantomData<D>);
/// [`crate::transforms::Form::Line`] with the 1-D transforms `D`.
pub(crate) struct Line<D, const A: usize, const M: usize>(PhantomData<D>);
/// [`crate::transforms::Form::Polyphase`] with the F(m, 2) transforms `D` on the even phase.
pub(crate) struct Phases<D, const A: usize, const M: usize>(PhantomData<D>);
/// [`crate::transforms::Form::PlanePolyphase`] with the F(m, 2) transforms `D` along each
/// even axis.
pub(crate) struct PlanePhases<D, const A: usize, const M: usize>(PhantomData<D>);

impl<D: OneD<A, M>, const A: usize, const M: usize> TileTransforms for Plane<D, A, M> {
    #[inline(always)]
    unsafe fn input<S: Simd>(
        band: *const f32,
        row_stride: usize,
        tiles: [usize; 3],
        v: *mut f32,
        operand: Operand,
    ) {
        debug_assert_eq!(tiles[2], 1, "3x3 tiles have one phase");
        // SAFETY: forwarded contract.
        unsafe { input_tiles::<S, D, A, M>(band, row_stride, [tiles[0], tiles[1]], v, operand) }
    }

    #[inline(always)]
    unsafe fn output<S: Simd>(
        products: *const f32,
        operand: Operand,
        tiles: [usize; 3],
        band: *mut f32,
        row_stride: usize,
        bias: *const f32,
        activation: VectorActivation,
    ) {
        debug_assert_eq!(tiles[2], 1, "3x3 tiles have one phase");
        let tiles = [tiles[0], tiles[1]];
        // SAFETY: forwarded contract.
        unsafe {
            output_tiles::<S, D, A, M>(products, operand, tiles, band, row_stride, bias, activation)
        }
    }
}

impl<D: OneD<A, M>, const A: usize, const M: usize> TileTransforms for Line<D, A, M> {
    /// Per tile: `A` pixels `phases` apart, transformed once, one store per product.
    #[inline(always)]
    unsafe fn input<S: Simd>(
        band: *const f32,
        row_stride: usize,
        [rows, cols, phases]: [usize; 3],
        v: *mut f32,
        operand: Operand,
    ) {
        let lanes = S::LANES;
        let step = phases * lanes;
        // SAFETY: tile (r, c, p) reads band row r, pixels c·M·phases + p + i·phases for
        // i < A, inside the band's (cols·M + 2)·phases; it writes its A products of V.
        unsafe {
            for r in 0..rows {
                for c in 0..cols {
                    for p in 0..phases {
                        let origin = band.add(r * row_stride + (c * M * phases + p) * lanes);
                        let values = load_strided::<S, A>(origin, step);
                        let out = v.add(((r * cols + c) * phases + p) * operand.tile);
                        for (e, value) in D::input::<S>(values).into_iter().enumerate() {
                            S::store(out.add(e * operand.element), value);
                        }
                    }
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn output<S: Simd>(
        products: *const f32,
        operand: Operand,
        [rows, cols, phases]: [usize; 3],
        band: *mut f32,
        row_stride: usize,
        bias: *const f32,
        activation: VectorActivation,
    ) {
        let lanes = S::LANES;
        let step = phases * lanes;
        // SAFETY: tile (r, c, p) reads its A products and writes band row r, pixels
        // c·M·phases + p + j·phases for j < M, inside the band's cols·M·phases.
        unsafe {
            let bias = S::load(bias);
            for r in 0..rows {
                for c in 0..cols {
                    for p in 0..phases {
                        let t = (r * cols + c) * phases + p;
                        let source = products.add(t * operand.tile);
                        let values = load_strided::<S, A>(source, operand.element);
                        let origin = band.add(r * row_stride + (c * M * phases + p) * lanes);
                        for (j, value) in D::output::<S>(values).into_iter().enumerate() {
                            let y = activation.apply::<S>(S::add(value, bias));
                            S::store(origin.add(j * step), y);
                        }
                    }
                }
            }
        }
    }
}

/// The polyphase layout of V and M: the even phase's `A` products of tile `t` at
/// `e·element + t·tile`, as every form, then the odd phase's `M` products tile-major from
/// `A·element`: product `j` of tile `t` at `A·element + (t·M + j)·tile`, so that the odd
/// products of a block's tiles are one matrix of `tiles·M` rows (one GEMM, one filter).
impl<D: OneD<A, M>, const A: usize, const M: usize> TileTransforms for Phases<D, A, M> {
    #[inline(always)]
    unsafe fn input<S: Simd>(
        band: *const f32,
        row_stride: usize,
        [rows, cols, phases]: [usize; 3],
        v: *mut f32,
        operand: Operand,
    ) {
        debug_assert_eq!(phases, 1, "the polyphase form has no dilation");
        let lanes = S::LANES;
        // SAFETY: tile (r, c) reads band row r, pixels 2c·M..=2c·M + 2M (= 2(A − 1)), inside
        // the band; it writes its A even and M odd products of V.
        unsafe {
            let odd_region = v.add(A * operand.element);
            for r in 0..rows {
                for c in 0..cols {
                    let t = r * cols + c;
                    let origin = band.add(r * row_stride + 2 * c * M * lanes);
                    let even = load_strided::<S, A>(origin, 2 * lanes);
                    let out = v.add(t * operand.tile);
                    for (e, value) in D::input::<S>(even).into_iter().enumerate() {
                        S::store(out.add(e * operand.element), value);
                    }
                    let odd_out = odd_region.add(t * M * operand.tile);
                    for j in 0..M {
                        let value = S::load(origin.add((2 * j + 1) * lanes));
                        S::store(odd_out.add(j * operand.tile), value);
                    }
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn output<S: Simd>(
        products: *const f32,
        operand: Operand,
        [rows, cols, phases]: [usize; 3],
        band: *mut f32,
        row_stride: usize,
        bias: *const f32,
        activation: VectorActivation,
    ) {
        debug_assert_eq!(phases, 1, "the polyphase form has no dilation");
        let lanes = S::LANES;
        // SAFETY: tile (r, c) reads its A even and M odd products and writes band row r,
        // pixels c·M..(c + 1)·M, inside the band.
        unsafe {
            let bias = S::load(bias);
            let odd_region = products.add(A * operand.element);
            for r in 0..rows {
                for c in 0..cols {
                    let t = r * cols + c;
                    let source = products.add(t * operand.tile);
                    let values = load_strided::<S, A>(source, operand.element);
                    let odd = odd_region.add(t * M * operand.tile);
                    let origin = band.add(r * row_stride + c * M * lanes);
                    for (j, value) in D::output::<S>(values).into_iter().enumerate() {
                        let sum = S::add(value, S::load(odd.add(j * operand.tile)));
                        let y = activation.apply::<S>(S::add(sum, bias));
                        S::store(origin.add(j * lanes), y);
                    }
                }
            }
        }
    }
}

/// The 2-D polyphase layout of V and M ([`crate::transforms::Form::filter_region`]): tile
/// `t`'s even × even product `(i, j)` at share `i·A + j`; its even-rows × odd-columns product
/// `(i, x)` at share `A² + i·M`, row `t·M + x`; odd-rows × even-columns `(y, j)` at share
/// `A² + (A + j)·M`, row `t·M + y`; odd × odd `(y, x)` at share `A² + 2A·M`, row
/// `t·M² + y·M + x` (a share is `element` values, a row `tile`).
///
/// A tile reads the `(2M + 1)²` pixels from band row `2M·r`, column `2M·c`; its pixel
/// `(2a + py, 2b + px)` is sample `(a, b)` of phase `(py, px)`. Register budget: one 1-D
/// transform (`2A` vectors); the `A×A` intermediate and the `M×M` output tile live on the
/// stack, in L1.
impl<D: OneD<A, M>, const A: usize, const M: usize> TileTransforms for PlanePhases<D, A, M> {
    #[inline(always)]
    unsafe fn input<S: Simd>(
        band: *const f32,
        row_stride: usize,
        [rows, cols, phases]: [usize; 3],
        v: *mut f32,
        operand: Operand,
    ) {
        debug_assert_eq!(phases, 1, "the polyphase form has no dilation");
        let lanes = S::LANES;
        let (even_rows, even_cols) = (2 * row_stride, 2 * lanes);
        // First shares of the even × odd, odd × even and odd × odd products.
        let [even_odd, odd_even, odd_odd] = plane_polyphase_shares(A, M);
        // SAFETY: tile (r, c) reads band rows 2M·r..=2M·r + 2M, pixels 2M·c..=2M·c + 2M,
        // inside the band (`Form::input_pixels`); it writes its (2M + 1)² products of V at
        // the shares and rows of the layout above.
        unsafe {
            let mut middle = [[S::zero(); A]; A];
            for r in 0..rows {
                for c in 0..cols {
                    let t = r * cols + c;
                    let origin = band.add(2 * M * (r * row_stride + c * lanes));
                    let out = v.add(t * operand.tile);
                    // Even × even: the 2-D transform, down the even columns then along rows.
                    for b in 0..A {
                        let column = origin.add(b * even_cols);
                        let values = D::input::<S>(load_strided::<S, A>(column, even_rows));
                        for (row, value) in middle.iter_mut().zip(values) {
                            row[b] = value;
                        }
                    }
                    for (i, row) in middle.iter().enumerate() {
                        for (j, value) in D::input::<S>(*row).into_iter().enumerate() {
                            S::store(out.add(operand.offset(i * A + j, 0)), value);
                        }
                    }
                    // Even rows × odd columns: down each odd column.
                    for x in 0..M {
                        let column = origin.add((2 * x + 1) * lanes);
                        let values = D::input::<S>(load_strided::<S, A>(column, even_rows));
                        for (i, value) in values.into_iter().enumerate() {
                            S::store(v.add(operand.offset(even_odd + i * M, t * M + x)), value);
                        }
                    }
                    // Odd rows × even columns: along each odd row; odd × odd as they are.
                    for y in 0..M {
                        let row = origin.add((2 * y + 1) * row_stride);
                        let values = D::input::<S>(load_strided::<S, A>(row, even_cols));
                        for (j, value) in values.into_iter().enumerate() {
                            S::store(v.add(operand.offset(odd_even + j * M, t * M + y)), value);
                        }
                        for x in 0..M {
                            let value = S::load(row.add((2 * x + 1) * lanes));
                            S::store(v.add(operand.offset(odd_odd, (t * M + y) * M + x)), value);
                        }
                    }
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn output<S: Simd>(
        products: *const f32,
        operand: Operand,
        [rows, cols, phases]: [usize; 3],
        band: *mut f32,
        row_stride: usize,
        bias: *const f32,
        activation: VectorActivation,
    ) {
        debug_assert_eq!(phases, 1, "the polyphase form has no dilation");
        let lanes = S::LANES;
        // First shares of the even × odd, odd × even and odd × odd products.
        let [even_odd, odd_even, odd_odd] = plane_polyphase_shares(A, M);
        // SAFETY: tile (r, c) reads its (2M + 1)² products at the layout's shares and rows,
        // and writes band rows M·r.., pixels M·c.. of its M×M outputs, inside the band.
        unsafe {
            let bias = S::load(bias);
            let mut middle = [[S::zero(); A]; M];
            let mut sums = [[S::zero(); M]; M];
            for r in 0..rows {
                for c in 0..cols {
                    let t = r * cols + c;
                    let tile = products.add(t * operand.tile);
                    // Even × even: Aᵀ M A, down the columns then along the rows.
                    for j in 0..A {
                        let column = load_strided::<S, A>(
                            tile.add(operand.offset(j, 0)),
                            A * operand.element,
                        );
                        for (row, value) in middle.iter_mut().zip(D::output::<S>(column)) {
                            row[j] = value;
                        }
                    }
                    for (sum, row) in sums.iter_mut().zip(&middle) {
                        *sum = D::output::<S>(*row);
                    }
                    // Even rows × odd columns: Aᵀ down each output column x.
                    for x in 0..M {
                        let column = load_strided::<S, A>(
                            products.add(operand.offset(even_odd, t * M + x)),
                            M * operand.element,
                        );
                        for (sum, value) in sums.iter_mut().zip(D::output::<S>(column)) {
                            sum[x] = S::add(sum[x], value);
                        }
                    }
                    // Odd rows × even columns: Aᵀ along each output row y; odd × odd as
                    // they are.
                    for (y, sum) in sums.iter_mut().enumerate() {
                        let row = load_strided::<S, A>(
                            products.add(operand.offset(odd_even, t * M + y)),
                            M * operand.element,
                        );
                        for (x, value) in D::output::<S>(row).into_iter().enumerate() {
                            let odd =
                                S::load(products.add(operand.offset(odd_odd, (t * M + y) * M + x)));
                            sum[x] = S::add(S::add(sum[x], value), odd);
                        }
                    }
                    let origin = band.add(M * (r * row_stride + c * lanes));
                    for (y, sum) in sums.iter().enumerate() {
                        for (x, &value) in sum.iter().enumerate() {
                            let out = activation.apply::<S>(S::add(value, bias));
                            S::store(origin.add(y * row_stride + x * lanes), out);
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
    use crate::transforms::{
        AT2, AT2_TWO_TAP, AT4, AT4_TWO_TAP, AT6, AT6_TWO_TAP, BT2, BT2_TWO_TAP, BT4, BT4_TWO_TAP,
        BT6, BT6_TWO_TAP,
    };
    use convkit_simd::Portable;

    /// Applies `T`'s transforms to the unit vectors and compares the columns with the matrices.
    fn matches_matrices<T: OneD<A, M>, const A: usize, const M: usize>(
        bt: &[[f32; A]; A],
        at: &[[f32; A]; M],
    ) {
        for j in 0..A {
            // SAFETY: the portable path runs everywhere.
            let (input, output) = unsafe {
                let mut unit = [Portable::zero(); A];
                unit[j] = Portable::splat(1.0);
                (T::input::<Portable>(unit), T::output::<Portable>(unit))
            };
            for (i, row) in bt.iter().enumerate() {
                assert_eq!(input[i].to_array()[0], row[j], "Bᵀ[{i}][{j}]");
            }
            for (i, row) in at.iter().enumerate() {
                assert_eq!(output[i].to_array()[0], row[j], "Aᵀ[{i}][{j}]");
            }
        }
    }

    #[test]
    fn written_out_transforms_equal_their_matrices() {
        matches_matrices::<F2, 4, 2>(&BT2, &AT2);
        matches_matrices::<F4, 6, 4>(&BT4, &AT4);
        matches_matrices::<F6, 8, 6>(&BT6, &AT6);
        matches_matrices::<TwoTapF2, 3, 2>(&BT2_TWO_TAP, &AT2_TWO_TAP);
        matches_matrices::<TwoTapF4, 5, 4>(&BT4_TWO_TAP, &AT4_TWO_TAP);
        matches_matrices::<TwoTapF6, 7, 6>(&BT6_TWO_TAP, &AT6_TWO_TAP);
    }
}
