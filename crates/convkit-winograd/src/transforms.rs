//! The Winograd transform matrices and the filter transform.
//!
//! F(m, 3) computes `m` outputs of a 3-tap correlation from `α = m + 2` inputs with `α`
//! multiplications: `y = Aᵀ [(G g) ⊙ (Bᵀ d)]`, and in 2-D `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`.
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
//! Every entry of `Bᵀ` and `Aᵀ` is a small dyadic rational, exact in f32; `G` (with thirds,
//! ninths and 45ths) is applied once per weight at plan time in f64. A test proves each triple
//! against direct correlation.

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

    /// `Aᵀ [(G g) ⊙ (Bᵀ d)]` equals the correlation of `d` with `g` for small integers, where
    /// every step is exact in f64.
    fn check_one_d<const A: usize, const M: usize>(
        tile: Tile,
        bt: &[[f32; A]; A],
        at: &[[f32; A]; M],
    ) {
        let g = tile.g();
        for seed in 0..200u32 {
            let value = |i: u32| {
                f64::from((seed.wrapping_mul(2654435761).wrapping_add(i * 40503) >> 7) % 19) - 9.0
            };
            let d: [f64; A] = std::array::from_fn(|i| value(i as u32));
            let w = [value(100), value(101), value(102)];
            let u: Vec<f64> = g
                .iter()
                .map(|row| (0..3).map(|a| row[a] * w[a]).sum())
                .collect();
            let v: Vec<f64> = bt
                .iter()
                .map(|row| (0..A).map(|j| f64::from(row[j]) * d[j]).sum())
                .collect();
            for (o, row) in at.iter().enumerate() {
                let y: f64 = (0..A).map(|j| f64::from(row[j]) * u[j] * v[j]).sum();
                let exact: f64 = (0..3).map(|a| d[o + a] * w[a]).sum();
                assert!(
                    (y - exact).abs() <= 1e-9 * (1.0 + exact.abs()),
                    "{tile:?} output {o}: {y} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn transforms_compute_the_correlation() {
        check_one_d(Tile::F2, &BT2, &AT2);
        check_one_d(Tile::F4, &BT4, &AT4);
        check_one_d(Tile::F6, &BT6, &AT6);
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
