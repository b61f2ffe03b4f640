//! Depthwise NCHW convolution on channel blocks, [`DepthwiseChannelBlocks`].
//!
//! `out[n][c][oy][ox] = act(bias[c] + Σ_{ky,kx} x[n][c][iy][ix] · w[c][ky][kx])`, computed a
//! block of `LANES` channels at a time: each item interleaves its block's band of input rows
//! into a zero-padded buffer, a vector of the block's channels per pixel (what an NCHWc
//! reorder does, one band at a time so that it stays in cache), convolves it with one vector
//! FMA per output pixel and tap, and de-interleaves the outputs back into the channels'
//! planes.
//!
//! It serves the layers where vectors of output columns ([`crate::depthwise::DepthwiseNchw`])
//! serve badly: small planes (a 7x7 or 14x14 plane is one or two vectors of columns, so a
//! per-channel item is mostly fixed cost: its band copy, its partial vectors, its scheduling)
//! and strided ones (a vector of channels is a plain load at any stride, where a vector of
//! columns needs even-lane loads and shuffles at stride 2 and gathers beyond).
//!
//! Register tiles: `RW` output pixels (row-major across the band's rows), all of the block's
//! channels: `RW` accumulators + one weight vector + one input vector. `RW` is 8 on AVX2 and the portable
//! path (16 registers), 16 on AVX-512 (32), then 4, 2 and 1 for the band's last pixels. Dense
//! 3x3 kernels (any stride) have constant taps, so their tap loops unroll.
//! Scratch per worker: the input band (about [`BAND_BUDGET`] floats), the band's outputs and
//! the band's image rows before they are placed between the padding.

use crate::geometry::Geometry;
use crate::{Item, ItemKernel};
use convkit_core::Isa;
use convkit_simd::transpose::{deinterleave8, interleave8};
use convkit_simd::{F32Storage, Simd, VectorActivation};

/// Floats of input band one item interleaves: 64 KiB, half the L2 share the band's outputs
/// and the next item's inputs leave room for.
const BAND_BUDGET: usize = 16 * 1024;

/// Largest band of one output row (floats) the kernel takes on: rows spread wider than that
/// by a huge stride, dilation or padding (4 MiB per worker, in no cache) go to a kernel
/// that does not copy them.
const MAX_ROW_BAND: usize = 1 << 20;

/// Rows of at least this many pixels are interleaved in place, shorter ones staged.
const LONG_ROW: usize = 32;

/// Depthwise convolution on NCHW data, `LANES` channels per item.
#[derive(Debug)]
pub(crate) struct DepthwiseChannelBlocks {
    pub geometry: Geometry,
    /// Channels per block: the path's lanes.
    lanes: usize,
    /// Channels rounded up to whole blocks.
    padded_channels: usize,
    /// `[tap][padded channel]`: a vector of the block's weights per tap.
    weights: Vec<f32>,
    /// `[padded channel]`.
    bias: Vec<f32>,
    activation: VectorActivation,
    /// Pixels per input band row: every column a tile reads and every image column.
    width: usize,
    /// Output rows per band.
    pub band_rows: usize,
}

impl DepthwiseChannelBlocks {
    /// The kernel for `geometry`, or `None` when one output row's band exceeds
    /// [`MAX_ROW_BAND`].
    pub fn new(
        geometry: Geometry,
        lanes: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
        activation: VectorActivation,
    ) -> Option<DepthwiseChannelBlocks> {
        let [oh, ow] = geometry.out_hw;
        let read = (ow - 1) * geometry.stride[1] + (geometry.kernel[1] - 1) * geometry.dilation[1];
        let width = (read + 1).max(geometry.pad[1] + geometry.in_hw[1]);
        let row_band = geometry
            .band_input_rows(1)
            .checked_mul(width)?
            .checked_mul(lanes)?;
        if row_band > MAX_ROW_BAND {
            return None;
        }
        let channels = geometry.groups;
        let taps = geometry.taps();
        let padded_channels = channels.div_ceil(lanes) * lanes;
        let mut packed = vec![0.0; taps * padded_channels];
        for c in 0..channels {
            for tap in 0..taps {
                packed[tap * padded_channels + c] = weights[c * taps + tap];
            }
        }
        let mut packed_bias = vec![0.0; padded_channels];
        if let Some(bias) = bias {
            packed_bias[..channels].copy_from_slice(bias);
        }
        // Checked: a huge row stride overflows the band of a second row long before the
        // budget would stop it (the first row's is bounded above).
        let band_len = |rows: usize| {
            (rows - 1)
                .checked_mul(geometry.stride[0])?
                .checked_add(geometry.band_input_rows(1))?
                .checked_mul(width)?
                .checked_mul(lanes)
        };
        let mut band_rows = 1;
        while band_rows < oh && band_len(band_rows + 1).is_some_and(|len| len <= BAND_BUDGET) {
            band_rows += 1;
        }
        Some(DepthwiseChannelBlocks {
            geometry,
            lanes,
            padded_channels,
            weights: packed,
            bias: packed_bias,
            activation,
            width,
            band_rows,
        })
    }

    /// f32 values of the re-laid weights and bias.
    pub fn packed_len(&self) -> usize {
        self.weights.len() + self.bias.len()
    }

    /// Channel blocks per image.
    pub fn blocks(&self) -> usize {
        self.padded_channels / self.lanes
    }

    /// f32 elements of one worker's buffer: the input band, the band's outputs, and the
    /// staging rows the band's image rows are interleaved into before they are placed.
    pub fn buffer_len(&self) -> usize {
        self.input_len() + self.outputs_len() + self.staging_len()
    }

    fn input_len(&self) -> usize {
        self.geometry.band_input_rows(self.band_rows) * self.width * self.lanes
    }

    fn outputs_len(&self) -> usize {
        self.band_rows * self.geometry.out_hw[1] * self.lanes
    }

    fn staging_len(&self) -> usize {
        let w = self.geometry.in_hw[1];
        if w < LONG_ROW {
            self.geometry.band_input_rows(self.band_rows) * w * self.lanes
        } else {
            0
        }
    }

    /// Interleaves channels `c0..c0 + valid` of image `n`, padded input rows `first..` (as
    /// many as `band` holds), into `band`: pixel `(r, j)` at `(r·width + j)·LANES`, zero
    /// outside the image and in lanes past `valid`. Rows of at least [`LONG_ROW`] pixels are
    /// interleaved straight into their place; shorter ones (whose transposes would mostly be
    /// remainders, value by value) in one pass over the band's image rows, a contiguous run
    /// of each channel's plane, into `staging`, then placed row by row.
    fn fill_band<T: F32Storage>(
        &self,
        input: &[T],
        [n, c0, valid]: [usize; 3],
        first: usize,
        band: &mut [f32],
        staging: &mut [f32],
    ) {
        let geo = &self.geometry;
        let lanes = self.lanes;
        let [h, w] = geo.in_hw;
        let left = geo.pad[1];
        let rows = band.len() / (self.width * lanes);
        // Image rows y0..y1 fall in the band.
        let y0 = first.saturating_sub(geo.pad[0]).min(h);
        let y1 = (first + rows).saturating_sub(geo.pad[0]).min(h);
        let from = |y: usize, len: usize| {
            move |c: usize| {
                let start = n * geo.in_image + c * geo.in_channel + y * geo.in_row;
                &input[start..start + len]
            }
        };
        let staged = w < LONG_ROW;
        if staged {
            let run = (y1 - y0) * w;
            self.interleave(from(y0, run), [c0, valid], &mut staging[..run * lanes]);
        }
        for (r, line) in band.chunks_exact_mut(self.width * lanes).enumerate() {
            let Some(iy) = (first + r).checked_sub(geo.pad[0]).filter(|&iy| iy < h) else {
                line.fill(0.0);
                continue;
            };
            line[..left * lanes].fill(0.0);
            line[(left + w) * lanes..].fill(0.0);
            let inside = &mut line[left * lanes..(left + w) * lanes];
            if staged {
                let source = (iy - y0) * w * lanes;
                inside.copy_from_slice(&staging[source..source + w * lanes]);
            } else {
                self.interleave(from(iy, w), [c0, valid], inside);
            }
        }
    }

    /// `dst[p·LANES + lane] = run_of(c0 + lane)[p]` (widened) for lanes `..valid`, zero in
    /// the others.
    fn interleave<'a, T: F32Storage>(
        &self,
        run_of: impl Fn(usize) -> &'a [T],
        [c0, valid]: [usize; 2],
        dst: &mut [f32],
    ) {
        let lanes = self.lanes;
        if dst.is_empty() {
            // An empty run (a band wholly in the padding): nothing to move.
            return;
        }
        for lane0 in (0..lanes).step_by(8) {
            if lane0 + 8 <= valid {
                interleave8(
                    std::array::from_fn(|i| run_of(c0 + lane0 + i)),
                    dst,
                    lanes,
                    lane0,
                );
                continue;
            }
            for lane in lane0..(lane0 + 8).min(lanes) {
                let slots = dst[lane..].iter_mut().step_by(lanes);
                if lane < valid {
                    for (slot, &value) in slots.zip(run_of(c0 + lane)) {
                        *slot = value.to_f32_lossy();
                    }
                } else {
                    slots.for_each(|slot| *slot = 0.0);
                }
            }
        }
    }

    /// Copies the band's outputs (`rows`, pixel `(r, j)` at `(r·OW + j)·LANES`), lanes
    /// `..valid`, into output channels `c0..` of image `n`, rounded once to `T`: the rows are
    /// one contiguous run of each channel's plane, de-interleaved in one pass.
    ///
    /// # Safety
    /// `output` holds the plan's output; no other thread writes these rows meanwhile.
    unsafe fn drain_band<T: F32Storage>(
        &self,
        outputs: &[f32],
        [n, c0, valid]: [usize; 3],
        rows: std::ops::Range<usize>,
        output: *mut T,
    ) {
        let geo = &self.geometry;
        let lanes = self.lanes;
        let run = rows.len() * geo.out_hw[1];
        let start = |c: usize| n * geo.out_image + c * geo.out_channel + rows.start * geo.out_row;
        // SAFETY: rows `rows` of channel `c` are `run` contiguous outputs owned by this item;
        // no two slices made here overlap (each is another channel's).
        let plane_of =
            |c: usize| unsafe { std::slice::from_raw_parts_mut(output.add(start(c)), run) };
        for lane0 in (0..valid).step_by(8) {
            if lane0 + 8 <= valid {
                deinterleave8(
                    outputs,
                    lanes,
                    lane0,
                    std::array::from_fn(|i| plane_of(c0 + lane0 + i)),
                );
                continue;
            }
            for lane in lane0..valid {
                let values = outputs[lane..].iter().step_by(lanes);
                for (out, &value) in plane_of(c0 + lane).iter_mut().zip(values) {
                    *out = T::from_f32_rounded(value);
                }
            }
        }
    }

    /// Output rows `rows` of the block from channel `c0` into `outputs`, in tiles of `RW`
    /// pixels (then 4, 2 and 1) taken in row-major order across the rows: a 7-pixel row does
    /// not end in tiles of 2 and 1 pixels, whose few accumulators leave the FMAs waiting on
    /// each other.
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `band` holds the rows' input band from padded row `first`.
    #[inline(always)]
    unsafe fn rows_with<S: Simd, const RW: usize, const DENSE_3X3: bool>(
        &self,
        band: &[f32],
        first: usize,
        c0: usize,
        rows: std::ops::Range<usize>,
        outputs: &mut [f32],
    ) {
        let ow = self.geometry.out_hw[1];
        let pixels = rows.len() * ow;
        let mut cursor = Cursor {
            pixel: 0,
            oy: rows.start,
            ox: 0,
        };
        // SAFETY: forwarded contract; every tile's pixels are below `pixels`.
        unsafe {
            while cursor.pixel + RW <= pixels {
                self.tile::<S, RW, DENSE_3X3>(band, first, c0, &mut cursor, outputs);
            }
            if RW > 4 && cursor.pixel + 4 <= pixels {
                self.tile::<S, 4, DENSE_3X3>(band, first, c0, &mut cursor, outputs);
            }
            if RW > 2 && cursor.pixel + 2 <= pixels {
                self.tile::<S, 2, DENSE_3X3>(band, first, c0, &mut cursor, outputs);
            }
            while cursor.pixel < pixels {
                self.tile::<S, 1, DENSE_3X3>(band, first, c0, &mut cursor, outputs);
            }
        }
    }

    /// The `RW` output pixels from `cursor` on (advanced past them), stored to `outputs`
    /// (the band's outputs, row-major).
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `band` holds the input band from padded row `first`, covering
    /// the tile's rows; the tile's pixels are inside the band's outputs.
    #[inline(always)]
    unsafe fn tile<S: Simd, const RW: usize, const DENSE_3X3: bool>(
        &self,
        band: &[f32],
        first: usize,
        c0: usize,
        cursor: &mut Cursor,
        outputs: &mut [f32],
    ) {
        let geo = &self.geometry;
        let [sh, sw] = geo.stride;
        // A dense 3x3 kernel's taps are constants: its loops unroll into 9 FMA groups.
        let ([dh, dw], [kh, kw]) = if DENSE_3X3 {
            ([1, 1], [3, 3])
        } else {
            (geo.dilation, geo.kernel)
        };
        let ow = geo.out_hw[1];
        let lanes = S::LANES;
        let row_step = self.width * lanes;
        let pixel0 = cursor.pixel;
        // Each pixel's first tap in the band; the taps add one offset to all of them. A tile
        // inside one output row (most tiles of rows wider than a tile) steps its pixels by
        // the column stride, without working out each pixel's row.
        let start = |at: &Cursor| (at.oy * sh - first) * row_step + at.ox * sw * lanes;
        let starts: [usize; RW] = if cursor.ox + RW <= ow {
            // `r · sw` before the lanes: a huge column stride with a one-pixel row (only
            // `r = 0`) must not overflow a product that no pixel uses.
            let first_start = start(cursor);
            cursor.advance(RW, ow);
            std::array::from_fn(|r| first_start + r * sw * lanes)
        } else {
            std::array::from_fn(|_| {
                let pixel_start = start(cursor);
                cursor.advance(1, ow);
                pixel_start
            })
        };
        // SAFETY: the CPU has S::ISA; every read is a pixel of the band (its rows cover the
        // tile's input rows, its width every column a tile reads) or a weight or bias vector
        // inside the padded channels; every write is one of the tile's pixels in `outputs`,
        // checked below.
        unsafe {
            let mut acc = [S::zero(); RW];
            let base = band.as_ptr();
            for ky in 0..kh {
                for kx in 0..kw {
                    let weight = S::load(
                        self.weights
                            .as_ptr()
                            .add((ky * kw + kx) * self.padded_channels + c0),
                    );
                    let tap = base.add(ky * dh * row_step + kx * dw * lanes);
                    for (sum, &start) in acc.iter_mut().zip(&starts) {
                        *sum = S::mul_add(S::load(tap.add(start)), weight, *sum);
                    }
                }
            }
            let bias = S::load(self.bias.as_ptr().add(c0));
            let dst = outputs[pixel0 * lanes..(pixel0 + RW) * lanes].as_mut_ptr();
            for (r, &sum) in acc.iter().enumerate() {
                let value = self.activation.apply::<S>(S::add(sum, bias));
                S::store(dst.add(r * lanes), value);
            }
        }
    }
}

/// The next output pixel of a band's tiles: its index in the band and its row and column.
struct Cursor {
    pixel: usize,
    oy: usize,
    ox: usize,
}

impl Cursor {
    /// Moves `pixels` on along rows of `ow` pixels, to the next row's start where they end
    /// the row (a step of several pixels never crosses a row's end).
    #[inline(always)]
    fn advance(&mut self, pixels: usize, ow: usize) {
        self.pixel += pixels;
        self.ox += pixels;
        if self.ox == ow {
            self.ox = 0;
            self.oy += 1;
        }
    }
}

impl<T: F32Storage> ItemKernel<T> for DepthwiseChannelBlocks {
    /// Band `item.chunk` of channel block `item.outer % blocks` of image `item.outer / blocks`.
    #[inline(always)]
    unsafe fn run_item<S: Simd>(&self, buffer: &mut [f32], item: Item<'_, T>) {
        let geo = &self.geometry;
        let blocks = self.blocks();
        let (n, c0) = (item.outer / blocks, item.outer % blocks * self.lanes);
        let valid = (geo.groups - c0).min(self.lanes);
        let rows = item.chunk_of(geo.out_hw[0]);
        let first = rows.start * geo.stride[0];
        let (band, rest) = buffer.split_at_mut(self.input_len());
        let (outputs, staging) = rest.split_at_mut(self.outputs_len());
        let band = &mut band[..geo.band_input_rows(rows.len()) * self.width * self.lanes];
        self.fill_band(item.input, [n, c0, valid], first, band, staging);
        let outputs = &mut outputs[..rows.len() * geo.out_hw[1] * self.lanes];
        // SAFETY: forwarded contract; the band holds the rows' input rows.
        unsafe {
            let dense_3x3 = geo.kernel == [3, 3] && geo.dilation == [1, 1];
            let rows_ = rows.clone();
            match (S::ISA, dense_3x3) {
                (Isa::Avx512, true) => {
                    self.rows_with::<S, 16, true>(band, first, c0, rows_, outputs)
                }
                (Isa::Avx512, false) => {
                    self.rows_with::<S, 16, false>(band, first, c0, rows_, outputs)
                }
                (_, true) => self.rows_with::<S, 8, true>(band, first, c0, rows_, outputs),
                (_, false) => self.rows_with::<S, 8, false>(band, first, c0, rows_, outputs),
            }
            self.drain_band(outputs, [n, c0, valid], rows, item.output);
        }
    }
}
