//! The general direct kernel: any stride, dilation, padding, groups and layout.
//!
//! Computes `out[n][oy][ox][k] = act(bias[k] + Σ_{ky,kx,c} x[n][iy][ix][c] · w[k][c][ky][kx])`
//! tile by tile, straight from the input (no lowered matrix, no padded copy).
//!
//! Blocking: a register tile is `RW` consecutive output pixels of one row × `KV` vectors of
//! output channels of one group (`KB = KV·LANES` channels). For each tap `(ky, kx)` and input
//! channel `c` it loads `KV` weight vectors and broadcasts one input value per pixel:
//! `RW·KV` FMAs for `KV + RW` loads. Weights are re-laid at plan time as
//! `[group][channel block][ky][kx][c][KB]` (zero-padded to `KB`), so the tile streams them in
//! order. Register budget: `RW·KV` accumulators + `KV` weights + 1 broadcast — AVX-512
//! (32 registers) 6×4, 8×3, 8×2 or 8×1 by the group's output channels; AVX2 (16) 6×2 or 8×1;
//! portable (`f32x8` as two SSE halves) 4×1.
//!
//! Borders: input rows outside the image skip their kernel row. Tiles whose every tap column
//! lies inside the image (the `interior` columns) take the fast path; the columns at the
//! edges, and the remainder of a row, are computed one pixel at a time, skipping the taps that
//! fall in the padding. Output: NHWC stores channel vectors per pixel; NCHW goes through a
//! small stack buffer to rows of pixels per channel.

use crate::geometry::{Geometry, StepOrder};
use convkit_simd::{Simd, VectorActivation};

/// Largest `RW` and `KB` of any path (stack buffer for NCHW stores).
const MAX_TILE: usize = 8 * 64;

/// A register tile's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileShape {
    /// Output pixels along a row.
    pub rw: usize,
    /// Vectors of output channels.
    pub kv: usize,
}

impl TileShape {
    /// The tile for `kg` output channels per group on a path with `lanes` lanes and
    /// `registers` vector registers.
    pub fn choose(kg: usize, lanes: usize, registers: usize) -> TileShape {
        let vectors = kg.div_ceil(lanes);
        match (registers, vectors) {
            (32, 4..) => TileShape { rw: 6, kv: 4 },
            (32, 3) => TileShape { rw: 8, kv: 3 },
            (32, 2) => TileShape { rw: 8, kv: 2 },
            (32, _) => TileShape { rw: 8, kv: 1 },
            (16, 2..) => TileShape { rw: 6, kv: 2 },
            (16, _) => TileShape { rw: 8, kv: 1 },
            _ => TileShape { rw: 4, kv: 1 },
        }
    }
}

/// `acc[r][j] += Σ_c x[offsets[r] + c·channel_stride] · w[c][j]` over `channels` input
/// channels, `w` holding `KV` vectors per channel: the innermost loop, kept apart so that the
/// accumulators stay in registers.
///
/// # Safety
/// The CPU has `S::ISA`; the reads stay inside the input and the weights.
#[inline(always)]
unsafe fn accumulate<S: Simd, const RW: usize, const KV: usize>(
    mut acc: [[S::F32; KV]; RW],
    x: *const f32,
    offsets: &[usize; RW],
    channel_stride: usize,
    w: *const f32,
    channels: usize,
) -> [[S::F32; KV]; RW] {
    // SAFETY: forwarded contract.
    unsafe {
        let (mut x, mut w) = (x, w);
        for _ in 0..channels {
            let mut weights = [S::zero(); KV];
            for (j, v) in weights.iter_mut().enumerate() {
                *v = S::load(w.add(j * S::LANES));
            }
            for (row, &offset) in acc.iter_mut().zip(offsets) {
                let value = S::splat(*x.add(offset));
                for (sum, &wj) in row.iter_mut().zip(&weights) {
                    *sum = S::mul_add(value, wj, *sum);
                }
            }
            x = x.add(channel_stride);
            w = w.add(KV * S::LANES);
        }
        acc
    }
}

/// The input step between a tile's pixels and each pixel's offset from the first. Wrapping:
/// with a huge stride only one pixel of a tile is ever read, at offset 0.
#[inline(always)]
fn pixel_offsets<const RW: usize>(geo: &Geometry) -> (usize, [usize; RW]) {
    let pixel_step = geo.stride[1].wrapping_mul(geo.in_pixel);
    let mut offsets = [0usize; RW];
    for (r, offset) in offsets.iter_mut().enumerate() {
        *offset = r.wrapping_mul(pixel_step);
    }
    (pixel_step, offsets)
}

/// Plan-time data of the general kernel.
#[derive(Debug)]
pub(crate) struct General {
    pub geometry: Geometry,
    pub tile: TileShape,
    /// `KV·LANES`.
    pub block: usize,
    /// Channel blocks per group.
    pub blocks: usize,
    /// `[group][block][ky][kx][c][block lanes]`.
    pub weights: Vec<f32>,
    /// `[group][block][block lanes]`, zero where there is no bias.
    pub bias: Vec<f32>,
    pub activation: VectorActivation,
}

impl General {
    pub fn new(
        geometry: Geometry,
        tile: TileShape,
        lanes: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
        activation: VectorActivation,
    ) -> General {
        let block = tile.kv * lanes;
        let blocks = geometry.kg.div_ceil(block);
        let (packed, packed_bias) = geometry.pack_blocks(weights, bias, block, StepOrder::TapMajor);
        General {
            geometry,
            tile,
            block,
            blocks,
            weights: packed,
            bias: packed_bias,
            activation,
        }
    }

    /// Units of parallel work per output row: groups × channel blocks.
    pub fn row_units(&self) -> usize {
        self.geometry.groups * self.blocks
    }

    /// Computes output rows `rows` of image `n` for channel block `unit` (group-major).
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `input` and `output` hold the whole tensors of the plan's shape;
    /// no other thread writes these output rows of this unit's channels meanwhile.
    /// `NARROW` rows (mostly edge, [`General::narrow`]) are covered by whole tiles
    /// that skip padded taps per pixel; wide rows by interior tiles and single edge pixels.
    /// The two are separate instantiations, compiled apart, so that neither burdens the
    /// other's register allocation.
    #[inline(always)]
    pub unsafe fn run_rows<S: Simd, const NARROW: bool>(
        &self,
        input: *const f32,
        output: *mut f32,
        n: usize,
        unit: usize,
        rows: std::ops::Range<usize>,
    ) {
        macro_rules! with_tile {
            ($($rw:literal x $kv:literal),*) => {
                match (self.tile.rw, self.tile.kv) {
                    $(($rw, $kv) => {
                        // SAFETY: forwarded contract.
                        unsafe {
                            self.rows_with::<S, $rw, $kv, NARROW>(input, output, n, unit, rows)
                        }
                    })*
                    _ => unreachable!("tile shapes come from TileShape::choose"),
                }
            };
        }
        with_tile!(6 x 4, 8 x 3, 8 x 2, 8 x 1, 6 x 2, 4 x 1)
    }

    /// Whether interior tiles would cover less than half of each output row, so that whole
    /// edge tiles are worth their per-tap checks.
    pub fn narrow(&self) -> bool {
        let [lo, hi] = self.geometry.interior;
        let rw = self.tile.rw;
        2 * ((hi - lo) / rw * rw) < self.geometry.out_hw[1]
    }

    #[inline(always)]
    unsafe fn rows_with<S: Simd, const RW: usize, const KV: usize, const NARROW: bool>(
        &self,
        input: *const f32,
        output: *mut f32,
        n: usize,
        unit: usize,
        rows: std::ops::Range<usize>,
    ) {
        let geo = &self.geometry;
        let ow = geo.out_hw[1];
        let [lo, hi] = geo.interior;
        let fast_end = lo + (hi - lo) / RW * RW;
        // Narrow rows are mostly edge: cover them with whole tiles that skip the padded taps
        // per pixel. Wide rows take their few edge pixels one at a time (a whole tile per
        // edge pixel would cost as much as an interior tile).
        for oy in rows {
            // SAFETY: forwarded contract; every tile's pixels lie in 0..OW.
            unsafe {
                if NARROW {
                    for ox0 in (0..ow).step_by(RW) {
                        let pixels = (ow - ox0).min(RW);
                        self.edge_tile::<S, RW, KV>(input, output, n, unit, (oy, ox0), pixels);
                    }
                    continue;
                }
                for ox0 in 0..lo {
                    self.edge_tile::<S, 1, KV>(input, output, n, unit, (oy, ox0), 1);
                }
                for ox0 in (lo..fast_end).step_by(RW) {
                    self.tile::<S, RW, KV>(input, output, n, unit, oy, ox0);
                }
                for ox0 in fast_end..ow {
                    self.edge_tile::<S, 1, KV>(input, output, n, unit, (oy, ox0), 1);
                }
            }
        }
    }

    /// Pointer to input channel 0 of `unit`'s group at image `n`, row `iy`, column `ix`.
    #[inline(always)]
    fn input_offset(&self, n: usize, unit: usize, iy: usize, ix: usize) -> usize {
        let geo = &self.geometry;
        let group = unit / self.blocks;
        n * geo.in_image + group * geo.cg * geo.in_channel + iy * geo.in_row + ix * geo.in_pixel
    }

    /// An interior tile of `RW` pixels from `ox0`: every tap column is inside the image.
    #[inline(always)]
    unsafe fn tile<S: Simd, const RW: usize, const KV: usize>(
        &self,
        input: *const f32,
        output: *mut f32,
        n: usize,
        unit: usize,
        oy: usize,
        ox0: usize,
    ) {
        let geo = &self.geometry;
        let (cg, block) = (geo.cg, self.block);
        let (_, offsets) = pixel_offsets::<RW>(geo);
        let taps_len = geo.kernel[1] * cg * block;
        // SAFETY: the CPU has S::ISA (contract); every pointer below stays inside the weights
        // (block `unit`, all taps and channels) or the input (rows checked, columns interior).
        unsafe {
            let mut acc = [[S::zero(); KV]; RW];
            let mut w = self.weights.as_ptr().add(unit * geo.taps() * cg * block);
            for ky in 0..geo.kernel[0] {
                let Some(iy) = geo.input_row(oy, ky) else {
                    w = w.add(taps_len);
                    continue;
                };
                for kx in 0..geo.kernel[1] {
                    let ix0 = ox0 * geo.stride[1] + kx * geo.dilation[1] - geo.pad[1];
                    let x = input.add(self.input_offset(n, unit, iy, ix0));
                    acc = accumulate::<S, RW, KV>(acc, x, &offsets, geo.in_channel, w, cg);
                    w = w.add(cg * block);
                }
            }
            self.store::<S, RW, KV>(acc, output, n, unit, oy, ox0, RW);
        }
    }

    /// A tile of `pixels` (≤ `RW`) pixels from `ox0` some of whose taps may fall in the
    /// padding: per tap, the pixels whose input column is inside the image (a contiguous run)
    /// accumulate; taps valid for a whole tile of `RW` take the fast loop.
    #[inline(always)]
    unsafe fn edge_tile<S: Simd, const RW: usize, const KV: usize>(
        &self,
        input: *const f32,
        output: *mut f32,
        n: usize,
        unit: usize,
        (oy, ox0): (usize, usize),
        pixels: usize,
    ) {
        let geo = &self.geometry;
        let (cg, block) = (geo.cg, self.block);
        let (pixel_step, offsets) = pixel_offsets::<RW>(geo);
        // SAFETY: as in `tile`; input reads are only made for pixels whose tap column is
        // inside the image (`valid`), starting from the first such pixel.
        unsafe {
            let mut acc = [[S::zero(); KV]; RW];
            let weights = self.weights.as_ptr().add(unit * geo.taps() * cg * block);
            for ky in 0..geo.kernel[0] {
                let Some(iy) = geo.input_row(oy, ky) else {
                    continue;
                };
                for kx in 0..geo.kernel[1] {
                    let valid = geo.valid_pixels(kx, ox0, pixels);
                    if valid.is_empty() {
                        continue;
                    }
                    let ix = geo
                        .input_column(ox0 + valid.start, kx)
                        .expect("valid pixels have their tap column inside the image");
                    let x = input.add(self.input_offset(n, unit, iy, ix));
                    let w = weights.add((ky * geo.kernel[1] + kx) * cg * block);
                    if valid == (0..RW) {
                        acc = accumulate::<S, RW, KV>(acc, x, &offsets, geo.in_channel, w, cg);
                    } else {
                        for (i, r) in valid.enumerate() {
                            let pixel = x.add(i * pixel_step);
                            acc[r] = accumulate::<S, 1, KV>(
                                [acc[r]],
                                pixel,
                                &[0],
                                geo.in_channel,
                                w,
                                cg,
                            )[0];
                        }
                    }
                }
            }
            self.store::<S, RW, KV>(acc, output, n, unit, oy, ox0, pixels);
        }
    }

    /// Bias, activation and store of the first `pixels` pixels of a tile from `ox0`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn store<S: Simd, const RW: usize, const KV: usize>(
        &self,
        acc: [[S::F32; KV]; RW],
        output: *mut f32,
        n: usize,
        unit: usize,
        oy: usize,
        ox0: usize,
        pixels: usize,
    ) {
        let geo = &self.geometry;
        let (group, b) = (unit / self.blocks, unit % self.blocks);
        let first = b * self.block;
        let valid = (geo.kg - first).min(self.block);
        let channel0 = group * geo.kg + first;
        let base = n * geo.out_image + oy * geo.out_row + ox0 * geo.out_pixel;
        // SAFETY: the CPU has S::ISA; the bias block holds KB values; stores stay inside the
        // tile's `valid` channels × RW pixels of the output (contract).
        unsafe {
            let bias = self.bias.as_ptr().add(unit * self.block);
            // Plain loops, not closures: a closure would be compiled without the path's
            // features and could be left out of line.
            let mut finished = acc;
            for row in finished.iter_mut() {
                for (j, sum) in row.iter_mut().enumerate() {
                    let biased = S::add(*sum, S::load(bias.add(j * S::LANES)));
                    *sum = self.activation.apply::<S>(biased);
                }
            }
            if geo.out_channel == 1 {
                for (r, vectors) in finished.iter().enumerate().take(pixels) {
                    let out = output.add(base + r * geo.out_pixel + channel0);
                    for (j, &v) in vectors.iter().enumerate() {
                        let lanes = valid.saturating_sub(j * S::LANES);
                        if lanes >= S::LANES {
                            S::store(out.add(j * S::LANES), v);
                        } else if lanes > 0 {
                            S::store_partial(out.add(j * S::LANES), v, lanes);
                        }
                    }
                }
            } else {
                // Parked tile, `[pixel][channel]`: only the stored part is read back.
                let mut buffer = std::mem::MaybeUninit::<[f32; MAX_TILE]>::uninit();
                let parked = buffer.as_mut_ptr().cast::<f32>();
                for (r, vectors) in finished.iter().enumerate() {
                    for (j, &v) in vectors.iter().enumerate() {
                        S::store(parked.add(r * self.block + j * S::LANES), v);
                    }
                }
                for k in 0..valid {
                    let out = output.add(base + (channel0 + k) * geo.out_channel);
                    // NCHW: the tile's pixels are consecutive in the output row.
                    for r in 0..RW {
                        if r < pixels {
                            *out.add(r) = *parked.add(r * self.block + k);
                        }
                    }
                }
            }
        }
    }
}
