//! The Winograd transform matrices and the filter transforms.
//!
//! F(m, 3) computes `m` outputs of a 3-tap correlation from `α = m + 2` inputs with `α`
//! multiplications: `y = Aᵀ [(G g) ⊙ (Bᵀ d)]`, and in 2-D `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`.
//! F(m, 2) (`α = m + 1`) serves the even phase of stride-2 1×3 kernels ([`Form::Polyphase`]).
//! The matrices come from the Toom-Cook construction on `α − 1` finite interpolation points
//! plus the point at infinity; the points decide the accuracy (Barabasz et al., "Error
//! analysis and improving the accuracy of Winograd convolution", 2020: small points and their
//! reciprocals, symmetric pairs):
//!
//! | tile | α | points                               |
//! |------|---|--------------------------------------|
//! | F2   | 4 | 0, 1, −1, ∞                          |
//! | F4   | 6 | 0, 1, −1, 2, −2, ∞ (Lavin & Gray)    |
//! | F6   | 8 | 0, 1, −1, 2, −2, 1/2, −1/2, ∞        |
//!
//! and for F(m, 2): 0, −1, ∞ (F2); 0, 1, −1, 1/2, ∞ (F4); 0, 1, −1, 1/2, −1/2, 2, ∞ (F6), the
//! sets of smallest measured fp32 error among those tried (`docs/tuning.md`).
//!
//! Every entry of `Bᵀ` and `Aᵀ` is a small dyadic rational, exact in f32; `G` (with thirds,
//! ninths and 45ths) is applied once per weight at plan time in f64. A test proves each triple
//! against direct correlation.

/// Which convolutions a tile size computes, and so how its tiles, bands and transform-domain
/// products are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// F(m×m, 3×3): 3×3 kernels at stride 1, tiles of `m×m` outputs, `α²` products each.
    Plane,
    /// F(m, 3) along rows: 1×3 kernels at stride 1 (1-D convolutions, 1×3 layers), tiles of
    /// `1×m` outputs, `α` products each. At column dilation `d` the row splits into `d`
    /// phases (columns `≡ p mod d`), each an undilated correlation: a tile's outputs and
    /// inputs are `d` columns apart, and `d` tiles, one per phase, cover `m·d` consecutive
    /// outputs.
    Line,
    /// 1×3 kernels at stride 2 along rows, split into the input's even and odd columns
    /// (polyphase): taps 0 and 2 read only even columns, a 2-tap stride-1 correlation computed
    /// by F(m, 2) (`m + 1` products), and tap 1 reads only odd ones, `m` plain products. A
    /// `1×m` tile takes `2m + 1` products for the `3m` of a direct convolution.
    Polyphase,
    /// 3×3 kernels at stride 2 in both directions: the polyphase split along rows and along
    /// columns. Even input rows × even columns meet taps `(0|2, 0|2)`, a 2×2 stride-1
    /// correlation computed by F(m×m, 2×2) (`(m + 1)²` products); even rows × odd columns
    /// meet taps `(0|2, 1)`, F(m, 2) down each odd column (`(m + 1)·m` products, each row of
    /// them sharing one filter); odd rows × even columns the transpose; odd × odd tap
    /// `(1, 1)`, `m²` plain products of one filter. An `m×m` tile takes `(2m + 1)²` products
    /// for the `9m²` of a direct convolution (81 for 144 with F4).
    PlanePolyphase,
}

impl Form {
    /// Output rows per tile: `m` for planes, 1 along rows.
    pub const fn tile_rows(self, tile: Tile) -> usize {
        match self {
            Form::Plane | Form::PlanePolyphase => tile.output(),
            Form::Line | Form::Polyphase => 1,
        }
    }

    /// Input rows a row of tiles advances by: its output rows times the row stride.
    pub const fn row_step(self, tile: Tile) -> usize {
        match self {
            Form::Plane => tile.output(),
            Form::Line | Form::Polyphase => 1,
            Form::PlanePolyphase => 2 * tile.output(),
        }
    }

    /// Input columns a column of tiles advances by (a column of tiles is `phases` tiles, one
    /// per phase of a dilated row, 1 elsewhere): `m·phases`, or `2m` at stride 2.
    pub const fn column_step(self, tile: Tile, phases: usize) -> usize {
        match self {
            Form::Plane => tile.output(),
            Form::Line => tile.output() * phases,
            Form::Polyphase | Form::PlanePolyphase => 2 * tile.output(),
        }
    }

    /// Input pixels `[rows, cols]` read by a block of `[rows, cols]` tile columns.
    pub const fn input_pixels(
        self,
        tile: Tile,
        phases: usize,
        [rows, cols]: [usize; 2],
    ) -> [usize; 2] {
        let m = tile.output();
        match self {
            Form::Plane => [rows * m + 2, cols * m + 2],
            Form::Line => [rows, (cols * m + 2) * phases],
            Form::Polyphase => [rows, 2 * cols * m + 1],
            Form::PlanePolyphase => [2 * rows * m + 1, 2 * cols * m + 1],
        }
    }

    /// Transform-domain products per tile: one GEMM row each.
    pub const fn elements(self, tile: Tile) -> usize {
        match self {
            Form::Plane => tile.elements(),
            Form::Line => tile.input(),
            Form::Polyphase => 2 * tile.output() + 1,
            Form::PlanePolyphase => (2 * tile.output() + 1) * (2 * tile.output() + 1),
        }
    }

    /// Distinct transformed filters per output × input channel: the odd phase's `m`
    /// products share one.
    pub const fn filters(self, tile: Tile) -> usize {
        match self {
            Form::Plane | Form::Line => self.elements(tile),
            Form::Polyphase => tile.output() + 2,
            Form::PlanePolyphase => (tile.output() + 2) * (tile.output() + 2),
        }
    }

    /// Where filter `f`'s products lie in a block's V and M: `(first, rows)`, its products
    /// starting at element share `first` (a share holds one product of every tile of the
    /// block) and taking `rows` products per tile, tile-major (product `j` of tile `t` is row
    /// `t·rows + j` from there), so that the products of one filter are one GEMM operand.
    ///
    /// With `A = m + 1`: the even phases' products each have their own filter (shares
    /// `0..A`, or `0..A²` in 2-D); the 1-D odd phase's `m` products share filter `A`; in 2-D
    /// filter `A² + i` takes the `m` products of row `i` of the even-rows × odd-columns phase,
    /// `A² + A + j` those of column `j` of the odd-rows × even-columns phase, and the last
    /// the `m²` odd × odd products.
    pub const fn filter_region(self, tile: Tile, f: usize) -> (usize, usize) {
        let (a, m) = (tile.output() + 1, tile.output());
        match self {
            Form::Plane | Form::Line => (f, 1),
            Form::Polyphase if f < a => (f, 1),
            Form::Polyphase => (a, m),
            Form::PlanePolyphase if f < a * a => (f, 1),
            Form::PlanePolyphase if f < a * a + 2 * a => {
                let [even_odd, _, _] = plane_polyphase_shares(a, m);
                (even_odd + (f - a * a) * m, m)
            }
            Form::PlanePolyphase => (plane_polyphase_shares(a, m)[2], m * m),
        }
    }

    /// Taps of the kernels this form computes.
    pub const fn taps(self) -> usize {
        match self {
            Form::Plane | Form::PlanePolyphase => 9,
            Form::Line | Form::Polyphase => 3,
        }
    }

    /// The transformed filters of one kernel (`taps` values, row-major), in f64:
    /// `G g Gᵀ` for planes, `G g` along rows, for the polyphase form `G₂ (g₀, g₂)`
    /// followed by `g₁`, and for the 2-D one, in the order of [`Form::filter_region`],
    /// `G₂ g_ee G₂ᵀ` (taps `(0|2, 0|2)`), `G₂ (g₀₁, g₂₁)`, `G₂ (g₁₀, g₁₂)` and `g₁₁`.
    pub(crate) fn transform_filter(self, tile: Tile, kernel: &[f32]) -> Vec<f64> {
        match self {
            Form::Plane => {
                let mut square = [0.0f32; 9];
                square.copy_from_slice(kernel);
                transform_filter(tile, &square)
            }
            Form::Line => tile
                .g()
                .iter()
                .map(|row| (0..3).map(|a| row[a] * f64::from(kernel[a])).sum())
                .collect(),
            Form::Polyphase => {
                let even = [f64::from(kernel[0]), f64::from(kernel[2])];
                let mut values: Vec<f64> = tile
                    .g_two_tap()
                    .iter()
                    .map(|row| row[0] * even[0] + row[1] * even[1])
                    .collect();
                values.push(f64::from(kernel[1]));
                values
            }
            Form::PlanePolyphase => {
                let g = tile.g_two_tap();
                let tap = |r: usize, c: usize| f64::from(kernel[r * 3 + c]);
                let two_tap =
                    |first: f64, last: f64| g.iter().map(move |row| row[0] * first + row[1] * last);
                // (G₂ g_ee): A×2, then times G₂ᵀ.
                let left: Vec<[f64; 2]> = g
                    .iter()
                    .map(|row| {
                        std::array::from_fn(|c| row[0] * tap(0, 2 * c) + row[1] * tap(2, 2 * c))
                    })
                    .collect();
                let mut values: Vec<f64> = left
                    .iter()
                    .flat_map(|pair| two_tap(pair[0], pair[1]))
                    .collect();
                values.extend(two_tap(tap(0, 1), tap(2, 1)));
                values.extend(two_tap(tap(1, 0), tap(1, 2)));
                values.push(tap(1, 1));
                values
            }
        }
    }
}

/// The first element shares of [`Form::PlanePolyphase`]'s even-rows × odd-columns,
/// odd-rows × even-columns and odd × odd products, for `a = m + 1` even samples and `m` odd
/// ones per axis (after the `a²` even × even products, `a·m`, `a·m` and `m²` of them): the
/// one statement of the layout that [`Form::filter_region`] and the SIMD transforms share.
pub(crate) const fn plane_polyphase_shares(a: usize, m: usize) -> [usize; 3] {
    [a * a, a * a + a * m, a * a + 2 * a * m]
}

/// Output tile edge `m` of F(m×m, 3×3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// F(2x2, 3x3): 16 products per 4 outputs (2.25× fewer than direct).
    F2,
    /// F(4x4, 3x3): 36 products per 16 outputs (4×).
    F4,
    /// F(6x6, 3x3): 64 products per 36 outputs (5.06×).
    F6,
}

impl Tile {
    /// Outputs per tile edge, `m`.
    pub const fn output(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
            Tile::F6 => 6,
        }
    }

    /// Inputs per tile edge, `α = m + 2`.
    pub const fn input(self) -> usize {
        self.output() + 2
    }

    /// Transform-domain elements per tile, `α²`: one GEMM each.
    pub const fn elements(self) -> usize {
        self.input() * self.input()
    }

    /// `G` (α×3), row-major, in f64.
    pub(crate) fn g(self) -> &'static [[f64; 3]] {
        match self {
            Tile::F2 => &G2,
            Tile::F4 => &G4,
            Tile::F6 => &G6,
        }
    }

    /// `G` (`(m + 1)`×2) of F(m, 2), in f64.
    pub(crate) fn g_two_tap(self) -> &'static [[f64; 2]] {
        match self {
            Tile::F2 => &G2_TWO_TAP,
            Tile::F4 => &G4_TWO_TAP,
            Tile::F6 => &G6_TWO_TAP,
        }
    }

    /// The relative error tolerance this tile size is held to: per output,
    /// `|y − exact| ≤ tolerance · Σ|x·w|` (fp32, any channel count the GEMM sums in blocks).
    pub const fn tolerance(self) -> f64 {
        match self {
            Tile::F2 => 2e-5,
            Tile::F4 => 1e-4,
            Tile::F6 => 1e-3,
        }
    }
}

/// F2 input transform `Bᵀ` (4×4).
pub const BT2: [[f32; 4]; 4] = [
    [1.0, 0.0, -1.0, 0.0],
    [0.0, 1.0, 1.0, 0.0],
    [0.0, -1.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, -1.0],
];
/// F2 output transform `Aᵀ` (2×4).
pub const AT2: [[f32; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
/// F2 filter transform `G` (4×3).
const G2: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// F4 input transform `Bᵀ` (6×6).
pub const BT4: [[f32; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];
/// F4 output transform `Aᵀ` (4×6).
pub const AT4: [[f32; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];
/// F4 filter transform `G` (6×3).
const G4: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// F6 input transform `Bᵀ` (8×8).
pub const BT6: [[f32; 8]; 8] = [
    [1.0, 0.0, -5.25, 0.0, 5.25, 0.0, -1.0, 0.0],
    [0.0, 1.0, 1.0, -4.25, -4.25, 1.0, 1.0, 0.0],
    [0.0, -1.0, 1.0, 4.25, -4.25, -1.0, 1.0, 0.0],
    [0.0, 0.5, 0.25, -2.5, -1.25, 2.0, 1.0, 0.0],
    [0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0],
    [0.0, 2.0, 4.0, -2.5, -5.0, 0.5, 1.0, 0.0],
    [0.0, -2.0, 4.0, 2.5, -5.0, -0.5, 1.0, 0.0],
    [0.0, -1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0],
];
/// F6 output transform `Aᵀ` (6×8).
pub const AT6: [[f32; 8]; 6] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.25, 0.25, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 0.0],
    [0.0, 1.0, 1.0, 16.0, 16.0, 0.0625, 0.0625, 0.0],
    [0.0, 1.0, -1.0, 32.0, -32.0, 0.03125, -0.03125, 1.0],
];
/// F6 filter transform `G` (8×3).
const G6: [[f64; 3]; 8] = [
    [1.0, 0.0, 0.0],
    [-2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0],
    [-2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0],
    [1.0 / 90.0, 1.0 / 45.0, 2.0 / 45.0],
    [1.0 / 90.0, -1.0 / 45.0, 2.0 / 45.0],
    [32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0],
    [32.0 / 45.0, -16.0 / 45.0, 8.0 / 45.0],
    [0.0, 0.0, 1.0],
];

/// F(2, 2) input transform `Bᵀ` (3×3), points 0, −1, ∞.
pub const BT2_TWO_TAP: [[f32; 3]; 3] = [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]];
/// F(2, 2) output transform `Aᵀ` (2×3).
pub const AT2_TWO_TAP: [[f32; 3]; 2] = [[1.0, 1.0, 0.0], [0.0, -1.0, 1.0]];
/// F(2, 2) filter transform `G` (3×2).
const G2_TWO_TAP: [[f64; 2]; 3] = [[1.0, 0.0], [-1.0, 1.0], [0.0, 1.0]];

/// F(4, 2) input transform `Bᵀ` (5×5), points 0, 1, −1, 1/2, ∞.
pub const BT4_TWO_TAP: [[f32; 5]; 5] = [
    [0.5, -1.0, -0.5, 1.0, 0.0],
    [0.0, -0.5, 0.5, 1.0, 0.0],
    [0.0, 0.5, -1.5, 1.0, 0.0],
    [0.0, -1.0, 0.0, 1.0, 0.0],
    [0.0, 0.5, -1.0, -0.5, 1.0],
];
/// F(4, 2) output transform `Aᵀ` (4×5).
pub const AT4_TWO_TAP: [[f32; 5]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 0.5, 0.0],
    [0.0, 1.0, 1.0, 0.25, 0.0],
    [0.0, 1.0, -1.0, 0.125, 1.0],
];
/// F(4, 2) filter transform `G` (5×2).
const G4_TWO_TAP: [[f64; 2]; 5] = [
    [2.0, 0.0],
    [1.0, 1.0],
    [-1.0 / 3.0, 1.0 / 3.0],
    [-8.0 / 3.0, -4.0 / 3.0],
    [0.0, 1.0],
];

/// F(6, 2) input transform `Bᵀ` (7×7), points 0, 1, −1, 1/2, −1/2, 2, ∞.
pub const BT6_TWO_TAP: [[f32; 7]; 7] = [
    [-0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0],
    [0.0, 0.5, 0.25, -2.25, -1.0, 1.0, 0.0],
    [0.0, -0.5, 0.75, 1.75, -3.0, 1.0, 0.0],
    [0.0, 1.0, 1.5, -2.0, -1.5, 1.0, 0.0],
    [0.0, -1.0, 2.5, 0.0, -2.5, 1.0, 0.0],
    [0.0, 0.25, 0.0, -1.25, 0.0, 1.0, 0.0],
    [0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0],
];
/// F(6, 2) output transform `Aᵀ` (6×7).
pub const AT6_TWO_TAP: [[f32; 7]; 6] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 0.0],
    [0.0, 1.0, 1.0, 0.25, 0.25, 4.0, 0.0],
    [0.0, 1.0, -1.0, 0.125, -0.125, 8.0, 0.0],
    [0.0, 1.0, 1.0, 0.0625, 0.0625, 16.0, 0.0],
    [0.0, 1.0, -1.0, 0.03125, -0.03125, 32.0, 1.0],
];
/// F(6, 2) filter transform `G` (7×2).
const G6_TWO_TAP: [[f64; 2]; 7] = [
    [-2.0, 0.0],
    [-2.0 / 3.0, -2.0 / 3.0],
    [-2.0 / 9.0, 2.0 / 9.0],
    [16.0 / 9.0, 8.0 / 9.0],
    [16.0 / 15.0, -8.0 / 15.0],
    [2.0 / 45.0, 4.0 / 45.0],
    [0.0, 1.0],
];

/// `G g Gᵀ` of one 3×3 kernel (row-major `g`), in f64, as α×α values row-major.
pub(crate) fn transform_filter(tile: Tile, kernel: &[f32; 9]) -> Vec<f64> {
    let g = tile.g();
    let alpha = tile.input();
    // (G g): α×3.
    let left: Vec<[f64; 3]> = g
        .iter()
        .map(|row| {
            std::array::from_fn(|b| {
                (0..3)
                    .map(|a| row[a] * f64::from(kernel[a * 3 + b]))
                    .sum::<f64>()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(alpha * alpha);
    for row in &left {
        out.extend(
            g.iter()
                .map(|gj| (0..3).map(|b| row[b] * gj[b]).sum::<f64>()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Aᵀ [(G g) ⊙ (Bᵀ d)]` equals the correlation of `d` with the `R`-tap `g` for small
    /// integers, where every step is exact in f64.
    fn check_one_d<const A: usize, const M: usize, const R: usize>(
        name: &str,
        g: &[[f64; R]],
        bt: &[[f32; A]; A],
        at: &[[f32; A]; M],
    ) {
        for seed in 0..200u32 {
            let value = |i: u32| {
                f64::from((seed.wrapping_mul(2654435761).wrapping_add(i * 40503) >> 7) % 19) - 9.0
            };
            let d: [f64; A] = std::array::from_fn(|i| value(i as u32));
            let w: [f64; R] = std::array::from_fn(|a| value(100 + a as u32));
            let u: Vec<f64> = g
                .iter()
                .map(|row| (0..R).map(|a| row[a] * w[a]).sum())
                .collect();
            let v = input_transform(bt, |j| d[j]);
            for o in 0..M {
                let y = output_transform(at, o, |j| u[j] * v[j]);
                let exact: f64 = (0..R).map(|a| d[o + a] * w[a]).sum();
                assert!(
                    (y - exact).abs() <= 1e-9 * (1.0 + exact.abs()),
                    "{name} output {o}: {y} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn transforms_compute_the_correlation() {
        check_one_d("F(2, 3)", Tile::F2.g(), &BT2, &AT2);
        check_one_d("F(4, 3)", Tile::F4.g(), &BT4, &AT4);
        check_one_d("F(6, 3)", Tile::F6.g(), &BT6, &AT6);
        check_one_d("F(2, 2)", Tile::F2.g_two_tap(), &BT2_TWO_TAP, &AT2_TWO_TAP);
        check_one_d("F(4, 2)", Tile::F4.g_two_tap(), &BT4_TWO_TAP, &AT4_TWO_TAP);
        check_one_d("F(6, 2)", Tile::F6.g_two_tap(), &BT6_TWO_TAP, &AT6_TWO_TAP);
    }

    /// `Bᵀ x` of the `A` values `x(j)`, in f64.
    fn input_transform<const A: usize>(bt: &[[f32; A]; A], x: impl Fn(usize) -> f64) -> Vec<f64> {
        bt.iter()
            .map(|row| (0..A).map(|j| f64::from(row[j]) * x(j)).sum())
            .collect()
    }

    /// Output `o` of `Aᵀ m` for the `A` values `m(j)`, in f64.
    fn output_transform<const A: usize, const M: usize>(
        at: &[[f32; A]; M],
        o: usize,
        m: impl Fn(usize) -> f64,
    ) -> f64 {
        (0..A).map(|j| f64::from(at[o][j]) * m(j)).sum()
    }

    /// The polyphase filters, applied as the kernels apply them (even phase through F(m, 2),
    /// odd phase as plain products), give the stride-2 correlation of a 3-tap kernel.
    #[test]
    fn polyphase_filters_compute_the_strided_correlation() {
        fn check<const A: usize, const M: usize>(
            tile: Tile,
            bt: &[[f32; A]; A],
            at: &[[f32; A]; M],
        ) {
            let kernel = [3.0f32, -2.0, 5.0];
            let d: Vec<f64> = (0..2 * M + 1)
                .map(|i| ((i * 7) % 11) as f64 - 5.0)
                .collect();
            let u = Form::Polyphase.transform_filter(tile, &kernel);
            assert_eq!(u.len(), Form::Polyphase.filters(tile));
            let v = input_transform(bt, |j| d[2 * j]);
            for o in 0..M {
                let even = output_transform(at, o, |j| u[j] * v[j]);
                let y = even + u[A] * d[2 * o + 1];
                let exact: f64 = (0..3).map(|a| f64::from(kernel[a]) * d[2 * o + a]).sum();
                assert!(
                    (y - exact).abs() <= 1e-9,
                    "{tile:?} output {o}: {y} vs {exact}"
                );
            }
        }
        check(Tile::F2, &BT2_TWO_TAP, &AT2_TWO_TAP);
        check(Tile::F4, &BT4_TWO_TAP, &AT4_TWO_TAP);
        check(Tile::F6, &BT6_TWO_TAP, &AT6_TWO_TAP);
    }

    /// The 2-D polyphase filters, applied in the layout of [`Form::filter_region`] (even ×
    /// even through F(m×m, 2×2), the mixed phases through F(m, 2) along their even axis, odd
    /// × odd as plain products), give the stride-2 correlation of a 3×3 kernel.
    #[test]
    fn plane_polyphase_filters_compute_the_strided_correlation() {
        fn check<const A: usize, const M: usize>(
            tile: Tile,
            bt: &[[f32; A]; A],
            at: &[[f32; A]; M],
        ) {
            let form = Form::PlanePolyphase;
            let kernel = [3.0f32, -2.0, 5.0, 1.0, -4.0, 2.0, -1.0, 6.0, -3.0];
            let d = |y: usize, x: usize| ((y * 13 + x * 7) % 11) as f64 - 5.0;
            let u = form.transform_filter(tile, &kernel);
            assert_eq!(u.len(), form.filters(tile));
            assert_eq!(
                form.filter_region(tile, form.filters(tile) - 1).0 + M * M,
                form.elements(tile)
            );
            // The filters in order: A² even × even, A even-rows × odd-columns, A odd-rows ×
            // even-columns, one odd × odd.
            let (even_odd, odd_even, odd_odd) = (A * A, A * A + A, A * A + 2 * A);
            // V of the even × even phase, A×A: down the even columns, then along the rows.
            let columns: Vec<Vec<f64>> = (0..A)
                .map(|b| input_transform(bt, |a| d(2 * a, 2 * b)))
                .collect();
            let v_ee: Vec<Vec<f64>> = (0..A)
                .map(|i| input_transform(bt, |b| columns[b][i]))
                .collect();
            for y in 0..M {
                for x in 0..M {
                    // Aᵀ (U ⊙ V) A at (y, x).
                    let products: Vec<f64> = (0..A)
                        .map(|i| output_transform(at, x, |j| u[i * A + j] * v_ee[i][j]))
                        .collect();
                    let v_eo = input_transform(bt, |a| d(2 * a, 2 * x + 1));
                    let v_oe = input_transform(bt, |b| d(2 * y + 1, 2 * b));
                    let sum = output_transform(at, y, |i| products[i])
                        + output_transform(at, y, |i| u[even_odd + i] * v_eo[i])
                        + output_transform(at, x, |j| u[odd_even + j] * v_oe[j])
                        + u[odd_odd] * d(2 * y + 1, 2 * x + 1);
                    let exact: f64 = (0..9)
                        .map(|tap| f64::from(kernel[tap]) * d(2 * y + tap / 3, 2 * x + tap % 3))
                        .sum();
                    assert!(
                        (sum - exact).abs() <= 1e-9,
                        "{tile:?} output ({y}, {x}): {sum} vs {exact}"
                    );
                }
            }
        }
        check(Tile::F2, &BT2_TWO_TAP, &AT2_TWO_TAP);
        check(Tile::F4, &BT4_TWO_TAP, &AT4_TWO_TAP);
        check(Tile::F6, &BT6_TWO_TAP, &AT6_TWO_TAP);
    }

    #[test]
    fn filter_transform_of_a_delta_is_the_outer_product_of_a_column_of_g() {
        let mut delta = [0.0f32; 9];
        delta[4] = 1.0;
        for tile in [Tile::F2, Tile::F4, Tile::F6] {
            let u = transform_filter(tile, &delta);
            let g = tile.g();
            for (i, gi) in g.iter().enumerate() {
                for (j, gj) in g.iter().enumerate() {
                    assert_eq!(u[i * tile.input() + j], gi[1] * gj[1]);
                }
            }
        }
    }
}
