//! The NCHW column kernel: output columns in vector lanes, output channels broadcast.
//!
//! Computes `out[n][k][oy][ox] = act(bias[k] + Σ_{c,ky,kx} x[n][c][iy][ix] · w[k][c][ky][kx])`
//! for NCHW layers with column stride 1 or 2, where a row of outputs is contiguous: the tile
//! is `KR` output channels × `RV` vectors of one output row, stored straight into the output
//! rows (no transpose), and each `(c, ky, kx)` step loads `RV` input vectors and broadcasts
//! `KR` weights for `KR·RV` FMAs.
//!
//! Each work item copies, for one image and group, a band of input rows of all the group's
//! channels into a zero-padded buffer (≤ 256 KiB per worker), so borders cost nothing and
//! every input vector is one load: at column stride 2 each buffer line holds its even
//! columns, then its odd ones, so the inputs of one tap are again one contiguous run. Weights
//! are re-laid at plan time as `[group][channel block][c][ky][kx][KR]`. A row's vectors are
//! covered by tiles of `RV` and one narrower tile for the rest. Half-precision input widens
//! as the band is copied; a tile's output vectors round once as they are stored.
//!
//! Register budget: `KR·RV` accumulators + `RV` inputs + 1 broadcast. AVX-512: 6×4, 8×3,
//! 12×2 or 16×1 by the vectors per output row; AVX2: 6×2 or 8×1; portable: 4×1.

use crate::geometry::{Geometry, LineOrder, StepOrder};
use crate::{Item, ItemKernel};
use convkit_core::Isa;
use convkit_simd::{F32Storage, Simd, VectorActivation};

/// Largest band buffer (f32 elements) per worker: 256 KiB.
pub(crate) const BAND_BUDGET: usize = 64 * 1024;

/// A register tile: `kr` output channels × `rv` column vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ColumnTile {
    pub kr: usize,
    pub rv: usize,
}

impl ColumnTile {
    /// The tile for rows of `vectors` column vectors on `isa`: the widest of the path's list
    /// that the rows fill.
    pub fn choose(isa: Isa, vectors: usize) -> ColumnTile {
        let (kr, rv) = register_tiles!(columns, choose_tile!(isa, vectors));
        ColumnTile { kr, rv }
    }
}

/// Plan-time data of the column kernel.
#[derive(Debug)]
pub(crate) struct Columns {
    pub geometry: Geometry,
    pub tile: ColumnTile,
    /// Channel blocks of `kr` per group.
    pub blocks: usize,
    /// `[group][block][c][ky][kx][kr]`.
    pub weights: Vec<f32>,
    /// `[group][block][kr]`.
    pub bias: Vec<f32>,
    pub activation: VectorActivation,
    /// Columns of a buffer row: every column a tile reads, zero outside the image.
    pub buffer_width: usize,
    /// How a buffer line holds its columns: split by parity at column stride 2.
    pub line_order: LineOrder,
    /// Output rows per band.
    pub band_rows: usize,
    /// Per `(c, ky, kx)` step, in weight order: where its inputs start in a band buffer,
    /// relative to the tile's first output column on the buffer's first row.
    pub step_offsets: Vec<usize>,
}

impl Columns {
    /// The kernel for `geometry` on `isa`, if its column stride is 1 or 2 and a band of one
    /// output row fits the buffer budget.
    pub fn new(
        geometry: Geometry,
        isa: Isa,
        lanes: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
        activation: VectorActivation,
        parallel_bands: usize,
    ) -> Option<Columns> {
        if geometry.stride[1] > 2 {
            return None;
        }
        let vectors = geometry.out_hw[1].div_ceil(lanes);
        let tile = ColumnTile::choose(isa, vectors);
        let max_rows = geometry.out_hw[0].div_ceil(parallel_bands.max(1));
        let (width, band_rows) = geometry.band_layout(lanes, geometry.cg, BAND_BUDGET, max_rows)?;
        // At column stride 2 a line holds its two column parities in halves of equal length.
        let line_order = match geometry.stride[1] {
            1 => LineOrder::Plain,
            _ => LineOrder::SplitByParity,
        };
        let buffer_width = match line_order {
            LineOrder::Plain => width,
            LineOrder::SplitByParity => width.checked_next_multiple_of(2)?,
        };
        let blocks = geometry.kg.div_ceil(tile.kr);
        let (packed, packed_bias) =
            geometry.pack_blocks(weights, bias, tile.kr, StepOrder::ChannelMajor);
        let plane_len = geometry.band_input_rows(band_rows) * buffer_width;
        let [kh, kw] = geometry.kernel;
        let [dh, dw] = geometry.dilation;
        let tap_offset = |kx: usize| match line_order {
            LineOrder::Plain => kx * dw,
            LineOrder::SplitByParity => (kx * dw) % 2 * (buffer_width / 2) + kx * dw / 2,
        };
        let step_offsets = (0..geometry.cg)
            .flat_map(|c| (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (c, ky, kx))))
            .map(|(c, ky, kx)| c * plane_len + ky * dh * buffer_width + tap_offset(kx))
            .collect();
        Some(Columns {
            geometry,
            tile,
            blocks,
            weights: packed,
            bias: packed_bias,
            activation,
            buffer_width,
            line_order,
            band_rows,
            step_offsets,
        })
    }

    /// Input rows a band of `band_rows` output rows reads.
    fn buffer_rows(&self) -> usize {
        self.geometry.band_input_rows(self.band_rows)
    }

    /// f32 elements of one worker's band buffer.
    pub fn buffer_len(&self) -> usize {
        self.geometry.cg * self.buffer_rows() * self.buffer_width
    }

    #[inline(always)]
    unsafe fn band_with<S: Simd, T: F32Storage, const KR: usize, const RV: usize>(
        &self,
        band: &BandView<'_, T>,
        group: usize,
        rows: std::ops::Range<usize>,
    ) {
        let geo = &self.geometry;
        let ow = geo.out_hw[1];
        let vectors = ow.div_ceil(S::LANES);
        let full_tiles = vectors / RV;
        let rest = full_tiles * RV * S::LANES;
        for block in 0..self.blocks {
            for oy in rows.clone() {
                // SAFETY: forwarded contract; tiles cover the row's column vectors.
                unsafe {
                    for t in 0..full_tiles {
                        self.tile::<S, T, KR, RV>(band, group, block, oy, t * RV * S::LANES);
                    }
                    // The row's last vectors: one narrower tile.
                    match vectors % RV {
                        0 => {}
                        1 => self.tile::<S, T, KR, 1>(band, group, block, oy, rest),
                        2 => self.tile::<S, T, KR, 2>(band, group, block, oy, rest),
                        _ => self.tile::<S, T, KR, 3>(band, group, block, oy, rest),
                    }
                }
            }
        }
    }

    /// `KR` output channels of block `block` × `RV` column vectors from `ox0` of row `oy`.
    #[inline(always)]
    unsafe fn tile<S: Simd, T: F32Storage, const KR: usize, const RV: usize>(
        &self,
        band: &BandView<'_, T>,
        group: usize,
        block: usize,
        oy: usize,
        ox0: usize,
    ) {
        let geo = &self.geometry;
        let unit = group * self.blocks + block;
        // SAFETY: the CPU has S::ISA; buffer reads stay inside the band (its rows cover the
        // band's taps, its width every column a tile reads); weight reads stay in the block;
        // output writes are this tile's valid channels and columns.
        unsafe {
            let mut acc = [[S::zero(); RV]; KR];
            let mut w = self.weights.as_ptr().add(unit * geo.cg * geo.taps() * KR);
            let origin = band
                .buffer
                .as_ptr()
                .add((oy * geo.stride[0] - band.first) * self.buffer_width + ox0);
            // One loop over every step, so that the tile stays in registers.
            for &offset in &self.step_offsets {
                let mut inputs = [S::zero(); RV];
                for (v, x) in inputs.iter_mut().enumerate() {
                    *x = S::load(origin.add(offset + v * S::LANES));
                }
                for (k, sums) in acc.iter_mut().enumerate() {
                    let weight = S::splat(*w.add(k));
                    for (sum, &x) in sums.iter_mut().zip(&inputs) {
                        *sum = S::mul_add(x, weight, *sum);
                    }
                }
                w = w.add(KR);
            }
            let first_channel = block * KR;
            let valid = (geo.kg - first_channel).min(KR);
            let bias = self.bias.as_ptr().add(unit * KR);
            let ow = geo.out_hw[1];
            for (k, row) in acc.iter().enumerate() {
                if k >= valid {
                    break;
                }
                let channel = group * geo.kg + first_channel + k;
                let out = band
                    .output
                    .add(channel * geo.out_channel + oy * geo.out_row + ox0);
                let b = S::splat(*bias.add(k));
                for (v, &sum) in row.iter().enumerate() {
                    let value = self.activation.apply::<S>(S::add(sum, b));
                    let lanes = (ow - ox0 - v * S::LANES).min(S::LANES);
                    if lanes == S::LANES {
                        T::store_lanes::<S>(out.add(v * S::LANES), value);
                    } else {
                        T::store_lanes_partial::<S>(out.add(v * S::LANES), value, lanes);
                    }
                }
            }
        }
    }
}

/// One band's buffer and where its image's output starts.
struct BandView<'a, T> {
    buffer: &'a [f32],
    /// Padded input row held by the buffer's first row.
    first: usize,
    output: *mut T,
}

impl<T: F32Storage> ItemKernel<T> for Columns {
    /// Band `band` ([`Item::band`]) of every output channel of group `group` of image `n`, in `buffer` ([`Columns::buffer_len`]).
    #[inline(always)]
    unsafe fn run_item<S: Simd>(&self, buffer: &mut [f32], item: Item<'_, T>) {
        let (input, output) = (item.input.as_ptr(), item.output);
        let (n, group, band) = item.band();
        let geo = &self.geometry;
        let oh = geo.out_hw[0];
        let rows = band * self.band_rows..((band + 1) * self.band_rows).min(oh);
        let first = rows.start * geo.stride[0];
        let buffer_rows = self.buffer_rows();
        let plane_len = buffer_rows * self.buffer_width;
        for (c, lines) in buffer[..geo.cg * plane_len]
            .chunks_exact_mut(plane_len)
            .enumerate()
        {
            let plane = n * geo.in_image + (group * geo.cg + c) * geo.in_channel;
            // SAFETY: `plane` is channel `c` of this group of image `n` (contract).
            unsafe {
                geo.copy_padded_rows(
                    input,
                    plane,
                    first,
                    (self.buffer_width, self.line_order),
                    lines,
                )
            };
        }
        let band_view = BandView {
            buffer: &buffer[..geo.cg * plane_len],
            first,
            output: output.wrapping_add(n * geo.out_image),
        };
        register_tiles!(
            columns,
            with_tile!((S::ISA, self.tile.kr, self.tile.rv), |KR, RV| {
                // SAFETY: forwarded contract.
                unsafe { self.band_with::<S, T, KR, RV>(&band_view, group, rows) }
            })
        )
    }
}
