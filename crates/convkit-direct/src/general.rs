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

use crate::geometry::Geometry;
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
        let Geometry { cg, kg, groups, .. } = geometry;
        let taps = geometry.taps();
        let block = tile.kv * lanes;
        let blocks = kg.div_ceil(block);
        let mut packed = vec![0.0; groups * blocks * taps * cg * block];
        let mut packed_bias = vec![0.0; groups * blocks * block];
        for g in 0..groups {
            for k in 0..kg {
                let (b, lane) = (k / block, k % block);
                let channel = g * kg + k;
                packed_bias[(g * blocks + b) * block + lane] =
                    bias.map_or(0.0, |bias| bias[channel]);
                for c in 0..cg {
                    for tap in 0..taps {
                        packed[(((g * blocks + b) * taps + tap) * cg + c) * block + lane] =
                            weights[(channel * cg + c) * taps + tap];
                    }
                }
            }
        }
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
    #[inline(always)]
    pub unsafe fn run_rows<S: Simd>(
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
                        unsafe { self.rows_with::<S, $rw, $kv>(input, output, n, unit, rows) }
                    })*
                    _ => unreachable!("tile shapes come from TileShape::choose"),
                }
            };
        }
        with_tile!(6 x 4, 8 x 3, 8 x 2, 8 x 1, 6 x 2, 4 x 1)
    }

    #[inline(always)]
    unsafe fn rows_with<S: Simd, const RW: usize, const KV: usize>(
        &self,
        input: *const f32,
        output: *mut f32,
        n: usize,
        unit: usize,
        rows: std::ops::Range<usize>,
    ) {
        let geo = &self.geometry;
        let [lo, hi] = geo.interior;
        let interior_tiles = (hi - lo) / RW;
        let fast_end = lo + interior_tiles * RW;
        for oy in rows {
            // SAFETY: forwarded contract; pixels lie in 0..OW.
            unsafe {
                for ox in 0..lo {
                    self.pixel::<S, KV>(input, output, n, unit, oy, ox);
                }
                for ox in (lo..fast_end).step_by(RW) {
                    self.tile::<S, RW, KV>(input, output, n, unit, oy, ox);
                }
                for ox in fast_end..geo.out_hw[1] {
                    self.pixel::<S, KV>(input, output, n, unit, oy, ox);
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
        let pixel_step = geo.stride[1] * geo.in_pixel;
        let offsets: [usize; RW] = std::array::from_fn(|r| r * pixel_step);
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
            self.store::<S, RW, KV>(acc, output, n, unit, oy, ox0);
        }
    }

    /// One output pixel, skipping the taps that fall in the padding.
    #[inline(always)]
    unsafe fn pixel<S: Simd, const KV: usize>(
        &self,
        input: *const f32,
        output: *mut f32,
        n: usize,
        unit: usize,
        oy: usize,
        ox: usize,
    ) {
        let geo = &self.geometry;
        let (cg, block) = (geo.cg, self.block);
        // SAFETY: as in `tile`, with every tap's row and column checked.
        unsafe {
            let mut acc = [[S::zero(); KV]; 1];
            let weights_base = self.weights.as_ptr().add(unit * geo.taps() * cg * block);
            for ky in 0..geo.kernel[0] {
                let Some(iy) = geo.input_row(oy, ky) else {
                    continue;
                };
                for kx in 0..geo.kernel[1] {
                    let Some(ix) = geo.input_column(ox, kx) else {
                        continue;
                    };
                    let w = weights_base.add((ky * geo.kernel[1] + kx) * cg * block);
                    let x = input.add(self.input_offset(n, unit, iy, ix));
                    acc = accumulate::<S, 1, KV>(acc, x, &[0], geo.in_channel, w, cg);
                }
            }
            self.store::<S, 1, KV>(acc, output, n, unit, oy, ox);
        }
    }

    /// Bias, activation and store of a tile of `RW` pixels from `ox0`.
    #[inline(always)]
    unsafe fn store<S: Simd, const RW: usize, const KV: usize>(
        &self,
        acc: [[S::F32; KV]; RW],
        output: *mut f32,
        n: usize,
        unit: usize,
        oy: usize,
        ox0: usize,
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
            let finished: [[S::F32; KV]; RW] = std::array::from_fn(|r| {
                std::array::from_fn(|j| {
                    let sum = S::add(acc[r][j], S::load(bias.add(j * S::LANES)));
                    self.activation.apply::<S>(sum)
                })
            });
            if geo.out_channel == 1 {
                for (r, vectors) in finished.iter().enumerate() {
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
                let mut buffer = [0.0f32; MAX_TILE];
                for (r, vectors) in finished.iter().enumerate() {
                    for (j, &v) in vectors.iter().enumerate() {
                        S::store(buffer.as_mut_ptr().add(r * self.block + j * S::LANES), v);
                    }
                }
                for k in 0..valid {
                    let out = output.add(base + (channel0 + k) * geo.out_channel);
                    for r in 0..RW {
                        *out.add(r * geo.out_pixel) = buffer[r * self.block + k];
                    }
                }
            }
        }
    }
}
