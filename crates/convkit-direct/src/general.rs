//! The general direct kernel: any stride, dilation, padding, groups and layout.
//!
//! Computes `out[n][oy][ox][k] = act(bias[k] + Σ_{ky,kx,c} x[n][iy][ix][c] · w[k][c][ky][kx])`
//! tile by tile: an f32 input in place (NHWC always; NCHW when the lines a tile reads fit half
//! the L1d, its broadcasts then stepping from channel plane to channel plane); any other input
//! through bands of input rows that each work item copies channels-last into its worker's
//! buffer ([`General::run_band`]: a band of tiles, every channel block of the group or a run
//! of them), widening half-precision values as they are copied. No lowered matrix, no padded
//! copy.
//!
//! Blocking: a register tile is `RW` consecutive output pixels of one image in raster order
//! (a tile may wrap onto the next output row) × `KV` vectors of output channels of one group
//! (`KB = KV·LANES` channels). For each tap `(ky, kx)` and input channel `c` it loads `KV`
//! weight vectors and broadcasts one input value per pixel: `RW·KV` FMAs for `KV + RW` loads,
//! the broadcasts reading `RW` runs of channels (contiguous, or a plane apart in place from
//! NCHW). Weights are re-laid at plan time as `[group][channel block][ky][kx][c][KB]`
//! (zero-padded to `KB`), so the tile streams them in order. Register budget: `RW·KV`
//! accumulators + `KV` weights + 1 broadcast — AVX-512 (32 registers) 6×4, 8×3, 8×2 or 8×1 by
//! the group's output channels; AVX2 (16) 6×2 or 8×1; portable (`f32x8` as two SSE halves)
//! 4×1.
//!
//! Borders: a tile whose pixels lie on one output row with every tap column inside the image
//! (the `interior` columns) reads its pixels a fixed step apart and skips the kernel rows
//! outside the image. Every other tile (image borders, a tile wrapping onto the next row, the
//! last tile of an image) points each pixel of each tap at its input channels, or at a row of
//! zeros when the tap falls in the padding: the same FMAs as an interior tile, no per-pixel
//! branch in the channel loop (each pixel steps between channels by its own stride: 0 on the
//! zero row). Output: NHWC stores channel vectors per pixel; NCHW transposes each channel
//! vector of the tile in registers into runs of pixels per channel (a tile's pixels are
//! consecutive in an NCHW channel plane even when it wraps). Half-precision
//! outputs round once as the vectors (or transposed runs) are stored.

use crate::geometry::{Geometry, StepOrder};
use convkit_core::{Isa, Layout};
use convkit_simd::{F32Storage, Simd, VectorActivation};
use std::ops::Range;

/// A register tile's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileShape {
    /// Output pixels.
    pub rw: usize,
    /// Vectors of output channels.
    pub kv: usize,
}

impl TileShape {
    /// The tile for `kg` output channels per group on `isa` (`lanes` lanes): the widest of
    /// the path's list that `kg` fills.
    pub fn choose(isa: Isa, kg: usize, lanes: usize) -> TileShape {
        let (rw, kv) = register_tiles!(general, choose_tile!(isa, kg.div_ceil(lanes)));
        TileShape { rw, kv }
    }
}

/// `acc[r][j] += Σ_c pixels[r][c·steps[r]] · w[c][j]` over `channels` input channels, `w`
/// holding `KV` vectors per channel, pixel `r`'s channels `steps[r]` apart (1 channels-last, a
/// plane in place from NCHW, 0 on the zero row): the innermost loop, kept apart so that the
/// accumulators stay in registers.
///
/// # Safety
/// The CPU has `S::ISA`; every pixel pointer reads `channels` values its step apart and `w`
/// holds `channels·KV·LANES`.
#[inline(always)]
unsafe fn accumulate<S: Simd, const RW: usize, const KV: usize>(
    mut acc: [[S::F32; KV]; RW],
    pixels: &[*const f32; RW],
    steps: &[usize; RW],
    w: *const f32,
    channels: usize,
) -> [[S::F32; KV]; RW] {
    // SAFETY: forwarded contract.
    unsafe {
        let mut w = w;
        let mut pixels = *pixels;
        for _ in 0..channels {
            let mut weights = [S::zero(); KV];
            for (j, v) in weights.iter_mut().enumerate() {
                *v = S::load(w.add(j * S::LANES));
            }
            for ((row, pixel), &step) in acc.iter_mut().zip(pixels.iter_mut()).zip(steps) {
                let value = S::splat(**pixel);
                *pixel = pixel.add(step);
                for (sum, &wj) in row.iter_mut().zip(&weights) {
                    *sum = S::mul_add(value, wj, *sum);
                }
            }
            w = w.add(KV * S::LANES);
        }
        acc
    }
}

/// Copies pixels `pixels` of the NCHW image at `image` (`channels` planes of `plane` pixels)
/// into `dst`, which holds those pixels channels-last and widened to f32:
/// `dst[(p − start)·channels + c] = image[c·plane + p]`. Half types convert inside the
/// transposes' loads: each channel's run is read once, as a long stream.
pub(crate) fn to_channels_last<T: F32Storage>(
    image: &[T],
    channels: usize,
    plane: usize,
    pixels: Range<usize>,
    dst: &mut [f32],
) {
    let run = pixels.len();
    if run == 0 {
        return;
    }
    let row = |channel: usize| {
        let start = channel * plane + pixels.start;
        &image[start..start + run]
    };
    let sixteens = channels / 16;
    for v in 0..sixteens {
        let rows: [&[T]; 16] = std::array::from_fn(|lane| row(16 * v + lane));
        convkit_simd::transpose::interleave16(rows, dst, channels, 16 * v);
    }
    let vectors = channels / 8;
    for v in 2 * sixteens..vectors {
        let rows: [&[T]; 8] = std::array::from_fn(|lane| row(8 * v + lane));
        convkit_simd::transpose::interleave8(rows, dst, channels, 8 * v);
    }
    let first = 8 * vectors;
    let planes = |c: usize| &image[c * plane + pixels.start..c * plane + pixels.end];
    macro_rules! tail {
        ($($count:literal)*) => {
            match channels - first {
                $($count => interleave_tail::<T, $count>(
                    std::array::from_fn(|c| planes(first + c)),
                    dst,
                    channels,
                    first,
                ),)*
                _ => {}
            }
        };
    }
    tail!(1 2 3 4 5 6 7);
}

/// `dst[p·stride + offset + c] = rows[c][p]` for the `C < 8` channels left over by the 8x8
/// transposes, one pixel at a time.
fn interleave_tail<T: F32Storage, const C: usize>(
    rows: [&[T]; C],
    dst: &mut [f32],
    stride: usize,
    offset: usize,
) {
    for (p, pixel) in dst[offset..].chunks_mut(stride).enumerate() {
        for (slot, row) in pixel[..C].iter_mut().zip(&rows) {
            *slot = row[p].to_f32_lossy();
        }
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
    /// One pixel's input channels of a group, all zero: what taps in the padding read.
    zeros: Vec<f32>,
    /// Register tiles per work item where the kernel reads channels-last bands of the input
    /// that each item copies ([`General::run_band`]); `None` where it reads an f32 input in
    /// place.
    pub band_tiles: Option<usize>,
    /// The input's layout (what a band copies from).
    layout: Layout,
    /// Channel blocks per work item with bands (all of a group's unless that leaves too few
    /// items: small images).
    band_blocks: usize,
    /// Strides of what the tiles read (the input in place, or a channels-last band of one
    /// group's channels): between rows, pixels and channels.
    in_row: usize,
    in_pixel: usize,
    in_channel: usize,
}

/// Where a run of tiles reads its input: the group's first channel at input row
/// `first_row`, column 0.
#[derive(Clone, Copy)]
pub(crate) struct InputRows {
    pub base: *const f32,
    pub first_row: usize,
}

impl General {
    /// The kernel for `geometry` on a `layout` input; with `bands` (NCHW or half-precision
    /// inputs) `(bands, items)`, the output of each image and group is cut into about `bands`
    /// bands of tiles, and its channel blocks into runs so that there are about `items`
    /// items; each item copies the input rows it reads.
    pub fn new(
        geometry: Geometry,
        layout: Layout,
        tile: TileShape,
        lanes: usize,
        (weights, bias): (&[f32], Option<&[f32]>),
        activation: VectorActivation,
        bands: Option<(usize, usize)>,
    ) -> General {
        let block = tile.kv * lanes;
        let blocks = geometry.kg.div_ceil(block);
        let (packed, packed_bias) = geometry.pack_blocks(weights, bias, block, StepOrder::TapMajor);
        let [oh, ow] = geometry.out_hw;
        let tiles = (oh * ow).div_ceil(tile.rw);
        let band_tiles = bands.map(|(bands, _)| tiles.div_ceil(bands.clamp(1, tiles)));
        let band_blocks = match (bands, band_tiles) {
            (Some((_, items)), Some(band_tiles)) => {
                let splits = items.div_ceil(tiles.div_ceil(band_tiles)).clamp(1, blocks);
                blocks.div_ceil(splits)
            }
            _ => 1,
        };
        let w = geometry.in_hw[1];
        let (in_row, in_pixel, in_channel) = match band_tiles {
            Some(_) => (w * geometry.cg, geometry.cg, 1),
            None => (geometry.in_row, geometry.in_pixel, geometry.in_channel),
        };
        General {
            geometry,
            tile,
            block,
            blocks,
            weights: packed,
            bias: packed_bias,
            activation,
            zeros: vec![0.0; geometry.cg],
            band_tiles,
            layout,
            band_blocks,
            in_row,
            in_pixel,
            in_channel,
        }
    }

    /// Units of parallel work per tile: groups × channel blocks, or × runs of blocks where
    /// each item copies a band (and runs those blocks on it).
    pub fn units(&self) -> usize {
        match self.band_tiles {
            Some(_) => self.geometry.groups * self.blocks.div_ceil(self.band_blocks),
            None => self.geometry.groups * self.blocks,
        }
    }

    /// Input rows `[first, end)` that tiles `tiles` read.
    fn band_rows(&self, tiles: &Range<usize>) -> Range<usize> {
        let geo = &self.geometry;
        let [oh, ow] = geo.out_hw;
        let last_pixel = (tiles.end * self.tile.rw).min(oh * ow) - 1;
        let (top, bottom) = (tiles.start * self.tile.rw / ow, last_pixel / ow);
        let h = geo.in_hw[0];
        let first = (top * geo.stride[0]).saturating_sub(geo.pad[0]).min(h);
        let reach = bottom * geo.stride[0] + (geo.kernel[0] - 1) * geo.dilation[0] + 1;
        first..reach.saturating_sub(geo.pad[0]).clamp(first, h)
    }

    /// f32 elements of one worker's buffer: its band (zero without bands).
    pub fn buffer_len(&self) -> usize {
        let Some(band_tiles) = self.band_tiles else {
            return 0;
        };
        let [oh, ow] = self.geometry.out_hw;
        // A run of tiles spans at most this many output rows, wherever it starts (and the
        // rows of valid outputs keep every product below within the shape's checked sizes).
        let rows = ((band_tiles * self.tile.rw).div_ceil(ow) + 1).min(oh);
        let geo = &self.geometry;
        let input_rows = ((rows - 1) * geo.stride[0] + (geo.kernel[0] - 1) * geo.dilation[0] + 1)
            .min(geo.in_hw[0]);
        input_rows * self.in_row
    }

    /// Copies the input rows that tiles `tiles` of image `n` read, channels last and widened
    /// to f32, into `buffer`, then computes those tiles for the channel blocks of `unit` (a
    /// group's run of blocks).
    ///
    /// # Safety
    /// As [`General::run_tiles`], with `input` the whole input and `buffer` holding
    /// [`General::buffer_len`] elements.
    #[inline(always)]
    pub unsafe fn run_band<S: Simd, T: F32Storage>(
        &self,
        input: &[T],
        output: *mut T,
        (n, unit): (usize, usize),
        tiles: Range<usize>,
        buffer: &mut [f32],
    ) {
        let geo = &self.geometry;
        let runs = self.blocks.div_ceil(self.band_blocks);
        let (group, run) = (unit / runs, unit % runs);
        let [h, w] = geo.in_hw;
        let rows = self.band_rows(&tiles);
        let image = &input[n * geo.in_image + group * geo.cg * geo.in_channel..];
        let band = &mut buffer[..rows.len() * self.in_row];
        let pixels = rows.start * w..rows.end * w;
        match self.layout {
            Layout::Nchw => to_channels_last(image, geo.cg, h * w, pixels, band),
            Layout::Nhwc if geo.groups == 1 => {
                T::widen(&image[pixels.start * geo.cg..pixels.end * geo.cg], band);
            }
            Layout::Nhwc => {
                for (p, wide) in band.chunks_exact_mut(geo.cg).enumerate() {
                    let at = (pixels.start + p) * geo.in_pixel;
                    T::widen(&image[at..at + geo.cg], wide);
                }
            }
        }
        let view = InputRows {
            base: band.as_ptr(),
            first_row: rows.start,
        };
        let first_block = run * self.band_blocks;
        for block in first_block..(first_block + self.band_blocks).min(self.blocks) {
            let unit = group * self.blocks + block;
            // SAFETY: forwarded contract; the band holds every input row the tiles read.
            unsafe { self.run_tiles::<S, T>(view, output, n, unit, tiles.clone()) };
        }
    }

    /// Register tiles per image and unit.
    pub fn tiles(&self) -> usize {
        let [oh, ow] = self.geometry.out_hw;
        (oh * ow).div_ceil(self.tile.rw)
    }

    /// Computes tiles `tiles` of image `n` for channel block `unit` (group-major).
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `input` holds, channels-last with this kernel's strides, every
    /// input row that the tiles read, and `output` the whole output tensor of the plan's
    /// shape; no other thread writes these tiles of this unit's channels meanwhile.
    #[inline(always)]
    pub unsafe fn run_tiles<S: Simd, T: F32Storage>(
        &self,
        input: InputRows,
        output: *mut T,
        n: usize,
        unit: usize,
        tiles: Range<usize>,
    ) {
        register_tiles!(
            general,
            with_tile!((S::ISA, self.tile.rw, self.tile.kv), |RW, KV| {
                // SAFETY: forwarded contract.
                unsafe { self.tiles_with::<S, T, RW, KV>(input, output, n, unit, tiles) }
            })
        )
    }

    #[inline(always)]
    unsafe fn tiles_with<S: Simd, T: F32Storage, const RW: usize, const KV: usize>(
        &self,
        image: InputRows,
        output: *mut T,
        n: usize,
        unit: usize,
        tiles: Range<usize>,
    ) {
        let geo = &self.geometry;
        let [oh, ow] = geo.out_hw;
        let [lo, hi] = geo.interior;
        for tile in tiles {
            let first = tile * RW;
            let pixels = (oh * ow - first).min(RW);
            let (oy, ox0) = (first / ow, first % ow);
            // SAFETY: forwarded contract; the tile's pixels lie in the image.
            unsafe {
                let acc = if pixels == RW && ox0 >= lo && ox0 + RW <= hi {
                    self.row_tile::<S, RW, KV>(image, unit, oy, ox0)
                } else {
                    self.gathered_tile::<S, RW, KV>(image, unit, first, pixels)
                };
                self.store::<S, T, RW, KV>(acc, output, n, unit, first, pixels);
            }
        }
    }

    /// The sums of an interior tile of `RW` pixels from `(oy, ox0)`: every tap column is inside
    /// the image.
    #[inline(always)]
    unsafe fn row_tile<S: Simd, const RW: usize, const KV: usize>(
        &self,
        image: InputRows,
        unit: usize,
        oy: usize,
        ox0: usize,
    ) -> [[S::F32; KV]; RW] {
        let geo = &self.geometry;
        let (cg, block) = (geo.cg, self.block);
        let pixel_step = geo.stride[1] * self.in_pixel;
        let tap_len = cg * block;
        // SAFETY: the CPU has S::ISA (contract); every pointer below stays inside the weights
        // (block `unit`, all taps and channels) or the image (rows checked, columns interior).
        unsafe {
            let mut acc = [[S::zero(); KV]; RW];
            let mut w = self.weights.as_ptr().add(unit * geo.taps() * tap_len);
            for ky in 0..geo.kernel[0] {
                let Some(iy) = geo.input_row(oy, ky) else {
                    w = w.add(geo.kernel[1] * tap_len);
                    continue;
                };
                // Channels-last with one group (or a band) and dilation 1, a kernel row's taps
                // read one run of `KW·cg` values per pixel, and its weights are one run too:
                // one chain.
                let chained = self.in_pixel == cg && self.in_channel == 1;
                let (taps, run) = if chained && geo.dilation[1] == 1 {
                    (1, geo.kernel[1] * cg)
                } else {
                    (geo.kernel[1], cg)
                };
                for kx in 0..taps {
                    let ix0 = ox0 * geo.stride[1] + kx * geo.dilation[1] - geo.pad[1];
                    let x = image
                        .base
                        .add((iy - image.first_row) * self.in_row + ix0 * self.in_pixel);
                    let mut pixels = [x; RW];
                    for (r, pixel) in pixels.iter_mut().enumerate() {
                        *pixel = x.add(r * pixel_step);
                    }
                    let steps = [self.in_channel; RW];
                    acc = accumulate::<S, RW, KV>(acc, &pixels, &steps, w, run);
                    w = w.add(run * block);
                }
            }
            acc
        }
    }

    /// The sums of `pixels` (≤ `RW`) pixels from flat output index `first`, anywhere in the
    /// image: per tap, each pixel reads its input channels or the zero row.
    #[inline(always)]
    unsafe fn gathered_tile<S: Simd, const RW: usize, const KV: usize>(
        &self,
        image: InputRows,
        unit: usize,
        first: usize,
        pixels: usize,
    ) -> [[S::F32; KV]; RW] {
        let geo = &self.geometry;
        let (cg, block) = (geo.cg, self.block);
        let [h, w] = geo.in_hw;
        let ow = geo.out_hw[1];
        // Input row and column of tap (0, 0) per pixel, wrapping below zero (so that adding a
        // tap's offset lands on the right row or an out-of-image one); pixels past `pixels`
        // start below the image and never read.
        let mut origins = [(h, 0); RW];
        for (r, origin) in origins.iter_mut().enumerate().take(pixels) {
            let (oy, ox) = ((first + r) / ow, (first + r) % ow);
            *origin = (
                (oy * geo.stride[0]).wrapping_sub(geo.pad[0]),
                (ox * geo.stride[1]).wrapping_sub(geo.pad[1]),
            );
        }
        // SAFETY: the CPU has S::ISA (contract); a pixel pointer is formed only for a tap
        // inside the image (row < H, column < W) and otherwise is the zero row (cg values);
        // weights stay inside block `unit`.
        unsafe {
            let mut acc = [[S::zero(); KV]; RW];
            let weights = self.weights.as_ptr().add(unit * geo.taps() * cg * block);
            for ky in 0..geo.kernel[0] {
                for kx in 0..geo.kernel[1] {
                    let mut inputs = [self.zeros.as_ptr(); RW];
                    let mut any = false;
                    for (input, &(iy0, ix0)) in inputs.iter_mut().zip(&origins) {
                        let iy = iy0.wrapping_add(ky * geo.dilation[0]);
                        let ix = ix0.wrapping_add(kx * geo.dilation[1]);
                        if iy < h && ix < w {
                            *input = image
                                .base
                                .add((iy - image.first_row) * self.in_row + ix * self.in_pixel);
                            any = true;
                        }
                    }
                    if any {
                        let tap = weights.add((ky * geo.kernel[1] + kx) * cg * block);
                        let mut steps = [self.in_channel; RW];
                        for (step, &input) in steps.iter_mut().zip(&inputs) {
                            if input == self.zeros.as_ptr() {
                                *step = 0;
                            }
                        }
                        acc = accumulate::<S, RW, KV>(acc, &inputs, &steps, tap, cg);
                    }
                }
            }
            acc
        }
    }

    /// Bias, activation and store of the first `pixels` pixels of a tile from flat output
    /// index `first`.
    #[inline(always)]
    unsafe fn store<S: Simd, T: F32Storage, const RW: usize, const KV: usize>(
        &self,
        acc: [[S::F32; KV]; RW],
        output: *mut T,
        n: usize,
        unit: usize,
        first: usize,
        pixels: usize,
    ) {
        let geo = &self.geometry;
        let (group, b) = (unit / self.blocks, unit % self.blocks);
        let first_channel = b * self.block;
        let valid = (geo.kg - first_channel).min(self.block);
        let channel0 = group * geo.kg + first_channel;
        // Dense outputs: flat pixel `p` sits at `p·out_pixel` in either layout.
        let base = n * geo.out_image + first * geo.out_pixel;
        // SAFETY: the CPU has S::ISA; the bias block holds KB values; stores stay inside the
        // tile's `valid` channels × `pixels` pixels of the output (contract).
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
                            T::store_lanes::<S>(out.add(j * S::LANES), v);
                        } else if lanes > 0 {
                            T::store_lanes_partial::<S>(out.add(j * S::LANES), v, lanes);
                        }
                    }
                }
            } else {
                // NCHW: each channel vector of the tile goes out as runs of pixels.
                for j in 0..KV {
                    let channels = valid.saturating_sub(j * S::LANES).min(S::LANES);
                    if channels == 0 {
                        break;
                    }
                    let mut rows = [S::zero(); RW];
                    for (row, vectors) in rows.iter_mut().zip(&finished) {
                        *row = vectors[j];
                    }
                    let out = output.add(base + (channel0 + j * S::LANES) * geo.out_channel);
                    T::store_transposed::<S>(&rows[..pixels], out, geo.out_channel, channels);
                }
            }
        }
    }
}
