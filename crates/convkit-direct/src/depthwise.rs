//! Depthwise kernels: one input and one output channel per group (`groups == C == K`).
//!
//! `out[n][c][oy][ox] = act(bias[c] + Σ_{ky,kx} x[n][c][iy][ix] · w[c][ky][kx])`: no sum over
//! channels, so the general kernel would use one lane in `LANES`. These vectorize along the
//! axis that is contiguous in the layout instead.
//!
//! - NHWC, [`DepthwiseNhwc`]: vectors of channels. A tile is `RW` pixels × `CV` channel
//!   vectors; per tap it loads `CV` weight vectors (weights re-laid `[ky][kx][C]`, zero-padded)
//!   and `RW·CV` input vectors: one load per FMA, the bound of any depthwise convolution.
//!   Registers: `RW·CV` accumulators + `CV` weights + 1 input — 16 accumulators on AVX-512
//!   (16×1, 8×2, 5×3 or 4×4 by the channel vectors), 8 on AVX2 (8×1, 4×2), 2×1 portable. Borders as in the general kernel: interior tiles, single edge pixels.
//! - NCHW, [`DepthwiseNchw`]: vectors of output columns. Each task copies a band of input
//!   rows of one channel into a zero-padded buffer (per worker, ≤ 64 KiB), so every tap is a
//!   plain vector load (stride 1), an even-lane load (stride 2) or a short gather (larger
//!   strides) with a broadcast weight; register tiles of output rows × vectors of columns
//!   sized to the registers (AVX-512 up to 2 × 8, AVX2 2 × 4 dense and 1 × 8 otherwise),
//!   so that the FMA latency chains overlap without spilling. Dense 3x3 (stride and
//!   dilation 1), the common case, walks the tile's input rows once instead of once per
//!   kernel row: each loaded vector feeds the up to 3 output rows that read it (registers:
//!   the tile's accumulators + one row of `RV` input vectors + a weight, 2·8 + 8 + 1 on
//!   AVX-512, 2·4 + 4 + 1 on AVX2).
//!
//! Half-precision storage: NHWC tiles widen their input vectors as they load them, NCHW
//! bands widen as they are copied; output vectors round once as they are stored.

use crate::geometry::{Geometry, LineOrder};
use crate::{Item, ItemKernel};
use convkit_core::Isa;
use convkit_simd::{F32Storage, Simd, VectorActivation};

/// Most channel vectors in an NHWC depthwise tile.
const MAX_CHANNEL_VECTORS: usize = 4;

/// Depthwise convolution on NHWC data.
#[derive(Debug)]
pub(crate) struct DepthwiseNhwc {
    pub geometry: Geometry,
    /// Channels rounded up to whole blocks of [`MAX_CHANNEL_VECTORS`] vectors.
    pub padded_channels: usize,
    /// `[ky][kx][padded channel]`.
    pub weights: Vec<f32>,
    /// `[padded channel]`.
    pub bias: Vec<f32>,
    pub activation: VectorActivation,
}

impl DepthwiseNhwc {
    pub fn new(
        geometry: Geometry,
        lanes: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
        activation: VectorActivation,
    ) -> DepthwiseNhwc {
        let channels = geometry.groups;
        let taps = geometry.taps();
        // Whole channel blocks of the widest tile (4 vectors), so that a tile's weight loads
        // stay inside even where its last vectors hold no channels.
        let block = MAX_CHANNEL_VECTORS * lanes;
        let padded_channels = channels.div_ceil(block) * block;
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
        DepthwiseNhwc {
            geometry,
            padded_channels,
            weights: packed,
            bias: packed_bias,
            activation,
        }
    }

    /// Computes output rows `rows` of image `n`, every channel.
    ///
    /// # Safety
    /// The CPU has `S::ISA`; `input` and `output` hold the plan's tensors; no other thread
    /// writes these rows meanwhile.
    #[inline(always)]
    pub unsafe fn run_rows<S: Simd, T: F32Storage>(
        &self,
        input: *const T,
        output: *mut T,
        n: usize,
        rows: std::ops::Range<usize>,
    ) {
        let vectors = self.geometry.groups.div_ceil(S::LANES);
        // SAFETY: forwarded contract.
        unsafe {
            match (S::ISA, vectors) {
                (Isa::Avx512, 1) => self.rows_with::<S, T, 16, 1>(input, output, n, rows),
                (Isa::Avx512, 2) => self.rows_with::<S, T, 8, 2>(input, output, n, rows),
                (Isa::Avx512, 3) => self.rows_with::<S, T, 5, 3>(input, output, n, rows),
                (Isa::Avx512, _) => self.rows_with::<S, T, 4, 4>(input, output, n, rows),
                (Isa::Avx2, 1) => self.rows_with::<S, T, 8, 1>(input, output, n, rows),
                (Isa::Avx2, _) => self.rows_with::<S, T, 4, 2>(input, output, n, rows),
                _ => self.rows_with::<S, T, 2, 1>(input, output, n, rows),
            }
        }
    }

    #[inline(always)]
    unsafe fn rows_with<S: Simd, T: F32Storage, const RW: usize, const CV: usize>(
        &self,
        input: *const T,
        output: *mut T,
        n: usize,
        rows: std::ops::Range<usize>,
    ) {
        let geo = &self.geometry;
        let [lo, hi] = geo.interior;
        let fast_end = lo + (hi - lo) / RW * RW;
        let block = CV * S::LANES;
        for oy in rows {
            for c0 in (0..geo.groups).step_by(block) {
                // SAFETY: forwarded contract; pixels in 0..OW, channels in 0..C.
                unsafe {
                    for ox in 0..lo {
                        self.tile::<S, T, 1, CV>(input, output, n, oy, ox, c0, false);
                    }
                    for ox in (lo..fast_end).step_by(RW) {
                        self.tile::<S, T, RW, CV>(input, output, n, oy, ox, c0, true);
                    }
                    for ox in fast_end..geo.out_hw[1] {
                        self.tile::<S, T, 1, CV>(input, output, n, oy, ox, c0, false);
                    }
                }
            }
        }
    }

    /// `RW` pixels from `ox0` × the channel vectors from `c0`. With `interior`, every tap
    /// column is inside the image; otherwise (`RW == 1`) out-of-image taps are skipped.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn tile<S: Simd, T: F32Storage, const RW: usize, const CV: usize>(
        &self,
        input: *const T,
        output: *mut T,
        n: usize,
        oy: usize,
        ox0: usize,
        c0: usize,
        interior: bool,
    ) {
        let geo = &self.geometry;
        let channels = geo.groups;
        let mut lanes = [0usize; CV];
        for (j, count) in lanes.iter_mut().enumerate() {
            *count = channels.saturating_sub(c0 + j * S::LANES).min(S::LANES);
        }
        // SAFETY: the CPU has S::ISA; input reads are at checked rows and (interior or
        // checked) columns, `lanes[j]` channels each; weights and bias are padded to whole
        // vectors; output writes are this tile's pixels and channels.
        unsafe {
            let mut acc = [[S::zero(); CV]; RW];
            // Wrapping: with a huge stride only one pixel of a tile is ever read, at offset 0.
            let pixel_step = geo.stride[1].wrapping_mul(geo.in_pixel);
            for ky in 0..geo.kernel[0] {
                let Some(iy) = geo.input_row(oy, ky) else {
                    continue;
                };
                for kx in 0..geo.kernel[1] {
                    let ix0 = if interior {
                        ox0 * geo.stride[1] + kx * geo.dilation[1] - geo.pad[1]
                    } else {
                        match geo.input_column(ox0, kx) {
                            Some(ix) => ix,
                            None => continue,
                        }
                    };
                    let w = self
                        .weights
                        .as_ptr()
                        .add((ky * geo.kernel[1] + kx) * self.padded_channels + c0);
                    let x = input.add(n * geo.in_image + iy * geo.in_row + ix0 * geo.in_pixel + c0);
                    acc = accumulate_tap::<S, T, RW, CV>(acc, x, pixel_step, w, &lanes);
                }
            }
            let out = output.add(n * geo.out_image + oy * geo.out_row + ox0 * geo.out_pixel + c0);
            for (r, vectors) in acc.iter().enumerate() {
                for (j, &v) in vectors.iter().enumerate() {
                    if lanes[j] == 0 {
                        continue;
                    }
                    let bias = S::load(self.bias.as_ptr().add(c0 + j * S::LANES));
                    let v = self.activation.apply::<S>(S::add(v, bias));
                    let dst = out.add(r * geo.out_pixel + j * S::LANES);
                    if lanes[j] == S::LANES {
                        T::store_lanes::<S>(dst, v);
                    } else {
                        T::store_lanes_partial::<S>(dst, v, lanes[j]);
                    }
                }
            }
        }
    }
}

/// `acc[r][j] += x[r·pixel_step + j·LANES ..] · w[j·LANES ..]` for one tap, `lanes[j]`
/// channels of vector `j` (0: skipped; partial: masked load).
///
/// # Safety
/// The CPU has `S::ISA`; the reads stay inside the input and the padded weights.
#[inline(always)]
unsafe fn accumulate_tap<S: Simd, T: F32Storage, const RW: usize, const CV: usize>(
    mut acc: [[S::F32; CV]; RW],
    x: *const T,
    pixel_step: usize,
    w: *const f32,
    lanes: &[usize; CV],
) -> [[S::F32; CV]; RW] {
    // SAFETY: forwarded contract.
    unsafe {
        let mut weights = [S::zero(); CV];
        for (j, v) in weights.iter_mut().enumerate() {
            *v = S::load(w.add(j * S::LANES));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let pixel = x.wrapping_add(r.wrapping_mul(pixel_step));
            for (j, (sum, &wj)) in row.iter_mut().zip(&weights).enumerate() {
                let value = if lanes[j] == S::LANES {
                    T::load_lanes::<S>(pixel.add(j * S::LANES))
                } else if lanes[j] > 0 {
                    T::load_lanes_partial::<S>(pixel.add(j * S::LANES), lanes[j])
                } else {
                    continue;
                };
                *sum = S::mul_add(value, wj, *sum);
            }
        }
        acc
    }
}

/// Largest number of column vectors in an NCHW depthwise tile.
const MAX_ROW_VECTORS: usize = 8;

/// `acc[v] += Σ_kx row[v·LANES·sw + kx·dw ..] · taps[kx]` (lanes `sw` apart): one kernel row
/// of a tile of `RV` column vectors. `STRIDE` 1 or 2 reads with plain or even-lane loads, 0
/// gathers.
///
/// # Safety
/// The CPU has `S::ISA`; `row` is readable for every column the tile touches, `taps` for `kw`
/// values.
#[inline(always)]
unsafe fn accumulate_row<S: Simd, const RV: usize, const STRIDE: usize>(
    mut acc: [S::F32; RV],
    row: *const f32,
    taps: *const f32,
    kw: usize,
    [sw, dw]: [usize; 2],
) -> [S::F32; RV] {
    // SAFETY: forwarded contract.
    unsafe {
        for kx in 0..kw {
            let weight = S::splat(*taps.add(kx));
            let base = row.add(kx * dw);
            for (v, sum) in acc.iter_mut().enumerate() {
                let at = base.add(v * S::LANES * sw);
                let value = match STRIDE {
                    1 => S::load(at),
                    2 => S::load_even(at),
                    _ => {
                        let mut gathered = [0.0f32; 16];
                        for (l, slot) in gathered.iter_mut().take(S::LANES).enumerate() {
                            *slot = *at.add(l * sw);
                        }
                        S::load(gathered.as_ptr())
                    }
                };
                *sum = S::mul_add(value, weight, *sum);
            }
        }
        acc
    }
}

/// Largest padded band (f32 elements) an NCHW depthwise task copies: 64 KiB.
pub(crate) const BAND_BUDGET: usize = 16 * 1024;

/// Depthwise convolution on NCHW data.
#[derive(Debug)]
pub(crate) struct DepthwiseNchw {
    pub geometry: Geometry,
    /// `[c][ky][kx]` (OIHW as given).
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub activation: VectorActivation,
    /// Columns of the padded buffer: every column a tile may read, zero outside the image.
    pub buffer_width: usize,
    /// Output rows per band.
    pub band_rows: usize,
}

impl DepthwiseNchw {
    /// The kernel, if a band of one output row fits [`BAND_BUDGET`].
    pub fn new(
        geometry: Geometry,
        lanes: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
        activation: VectorActivation,
    ) -> Option<DepthwiseNchw> {
        let (buffer_width, band_rows) =
            geometry.band_layout(lanes, 1, BAND_BUDGET, geometry.out_hw[0])?;
        Some(DepthwiseNchw {
            geometry,
            weights: weights.to_vec(),
            bias: bias.map_or_else(|| vec![0.0; geometry.groups], <[f32]>::to_vec),
            activation,
            buffer_width,
            band_rows,
        })
    }

    /// f32 elements of one worker's band buffer.
    pub fn buffer_len(&self) -> usize {
        self.geometry.band_input_rows(self.band_rows) * self.buffer_width
    }

    /// Output rows of one band, in register tiles of `RR` rows × `RV` vectors of columns,
    /// sized to the path's registers. The dense 3x3 tile holds `RR·RV` accumulators, a row of
    /// `RV` inputs and a weight; the others `RR·RV` accumulators, an input and a weight.
    /// AVX-512 (32 registers): up to 8 vectors × 2 rows. AVX2 (16): dense 4 × 2, others
    /// 8 × 1 (a row of 8 vectors is 8 independent chains, as many as the FMA latency needs);
    /// the wider tiles this path had spilled accumulators every tap (`docs/tuning.md`, NCHW
    /// depthwise). Portable (8 registers of `f32x8` halves): 4 × 2. `STRIDE` is the column
    /// stride when 1 or 2 (plain or even-lane loads), 0 for any other (gathered).
    #[inline(always)]
    unsafe fn rows_with<S: Simd, T: F32Storage, const STRIDE: usize, const DENSE_3X3: bool>(
        &self,
        band: &Band<'_, T>,
        rows: std::ops::Range<usize>,
    ) {
        #[derive(Clone, Copy, PartialEq)]
        enum Registers {
            Portable,
            Sixteen,
            ThirtyTwo,
        }
        let registers = match (S::ISA, S::REGISTERS) {
            (Isa::Scalar, _) => Registers::Portable,
            (_, 32..) => Registers::ThirtyTwo,
            _ => Registers::Sixteen,
        };
        // AVX2's dense 3x3 tiles keep a row of inputs live: 4 vectors wide.
        let most = match registers {
            Registers::Sixteen if DENSE_3X3 => 4,
            Registers::Portable => 4,
            _ => MAX_ROW_VECTORS,
        };
        let vectors = self.geometry.out_hw[1].div_ceil(S::LANES);
        macro_rules! sweep {
            ($band:expr, $rv:literal, $rr:literal) => {{
                let band: &Band<'_, T> = $band;
                let ox0 = band.first_vector * S::LANES;
                let mut oy = rows.start;
                // SAFETY: forwarded contract (tiles stay inside the band's rows and the
                // buffer's columns).
                unsafe {
                    while rows.end - oy >= $rr {
                        self.tile::<S, T, $rv, $rr, STRIDE, DENSE_3X3>(band, oy, ox0);
                        oy += $rr;
                    }
                    // The rows left (all of a small image's) in tiles of 4 and 2 rows, whose
                    // accumulators' chains overlap, rather than row by row, where each
                    // vector's taps form one chain of dependent FMAs (`docs/tuning.md`, NCHW
                    // depthwise).
                    if $rr > 4 && oy + 4 <= rows.end {
                        self.tile::<S, T, $rv, 4, STRIDE, DENSE_3X3>(band, oy, ox0);
                        oy += 4;
                    }
                    if $rr > 2 && oy + 2 <= rows.end {
                        self.tile::<S, T, $rv, 2, STRIDE, DENSE_3X3>(band, oy, ox0);
                        oy += 2;
                    }
                    while oy < rows.end {
                        self.tile::<S, T, $rv, 1, STRIDE, DENSE_3X3>(band, oy, ox0);
                        oy += 1;
                    }
                }
            }};
        }
        // The groups of `most` vectors in a loop of their own and the last, narrower group
        // after it: in one loop over every group with a match on the group's width inside,
        // LLVM carried the address of every width's tiles across iterations (dozens of stack
        // slots stepped per group), which cost more than the tile itself on bands of one
        // output row (`docs/tuning.md`, NCHW depthwise).
        let full_groups = vectors / most;
        for group in 0..full_groups {
            let tiles = &Band {
                first_vector: group * most,
                ..*band
            };
            match (registers, DENSE_3X3) {
                (Registers::ThirtyTwo, _) => sweep!(tiles, 8, 2),
                (Registers::Sixteen, false) => sweep!(tiles, 8, 1),
                _ => sweep!(tiles, 4, 2),
            }
        }
        let tiles = &Band {
            first_vector: full_groups * most,
            ..*band
        };
        // Each of these tiles is exactly as wide as the vectors left: a tile stores every one
        // of its vectors, assuming each holds at least one column.
        match (vectors % most, registers) {
            (0, _) => {}
            (1, Registers::ThirtyTwo) => sweep!(tiles, 1, 8),
            (2, Registers::ThirtyTwo) => sweep!(tiles, 2, 8),
            (3, Registers::ThirtyTwo) => sweep!(tiles, 3, 4),
            (4, Registers::ThirtyTwo) => sweep!(tiles, 4, 4),
            (5, Registers::ThirtyTwo) => sweep!(tiles, 5, 2),
            (6, Registers::ThirtyTwo) => sweep!(tiles, 6, 2),
            (_, Registers::ThirtyTwo) => sweep!(tiles, 7, 2),
            (1, Registers::Sixteen) => sweep!(tiles, 1, 8),
            (2, Registers::Sixteen) => sweep!(tiles, 2, 4),
            (3, Registers::Sixteen) if DENSE_3X3 => sweep!(tiles, 3, 3),
            (3, Registers::Sixteen) => sweep!(tiles, 3, 4),
            (4, Registers::Sixteen) => sweep!(tiles, 4, 3),
            (5, Registers::Sixteen) => sweep!(tiles, 5, 2),
            (6, Registers::Sixteen) => sweep!(tiles, 6, 2),
            (_, Registers::Sixteen) => sweep!(tiles, 7, 2),
            (1, Registers::Portable) => sweep!(tiles, 1, 4),
            (2, Registers::Portable) => sweep!(tiles, 2, 2),
            (_, Registers::Portable) => sweep!(tiles, 3, 2),
        }
    }

    /// `RR` output rows from `oy0` × `RV` vectors of output columns from `ox0`.
    #[inline(always)]
    unsafe fn tile<
        S: Simd,
        T: F32Storage,
        const RV: usize,
        const RR: usize,
        const STRIDE: usize,
        const DENSE_3X3: bool,
    >(
        &self,
        band: &Band<'_, T>,
        oy0: usize,
        ox0: usize,
    ) {
        let geo = &self.geometry;
        let [sh, sw] = geo.stride;
        let [dh, dw] = geo.dilation;
        let [kh, kw] = geo.kernel;
        let ow = geo.out_hw[1];
        // SAFETY: the CPU has S::ISA; reads stay inside `band.buffer` (its width covers every
        // column a tile reads, its rows every row of the band's outputs); writes are `ow`
        // columns of this band's rows.
        unsafe {
            let mut acc = [[S::zero(); RV]; RR];
            if DENSE_3X3 {
                // 3x3, stride 1, dilation 1: the tile's RR + 2 input rows are walked once,
                // each loaded vector feeding every output row whose window holds that row
                // (loads per FMA 1/3 to 1 instead of 1). All bounds are constants, so the
                // loops unroll and the accumulators stay in registers.
                let top = band
                    .buffer
                    .as_ptr()
                    .add((oy0 - band.first) * self.buffer_width + ox0);
                let taps = band.weights.as_ptr();
                for d in 0..RR + 2 {
                    for kx in 0..3 {
                        let line = top.add(d * self.buffer_width + kx);
                        // A loop, not `array::from_fn`: a closure has no target features,
                        // so the loads inside it would not inline.
                        let mut inputs = [S::zero(); RV];
                        for (v, input) in inputs.iter_mut().enumerate() {
                            *input = S::load(line.add(v * S::LANES));
                        }
                        for (r, row) in acc.iter_mut().enumerate() {
                            if d < r || d - r >= 3 {
                                continue;
                            }
                            let weight = S::splat(*taps.add((d - r) * 3 + kx));
                            for (sum, &value) in row.iter_mut().zip(&inputs) {
                                *sum = S::mul_add(value, weight, *sum);
                            }
                        }
                    }
                }
            } else {
                for ky in 0..kh {
                    let taps = band.weights.as_ptr().add(ky * kw);
                    for (r, row) in acc.iter_mut().enumerate() {
                        let line = band
                            .buffer
                            .as_ptr()
                            .add(((oy0 + r) * sh + ky * dh - band.first) * self.buffer_width);
                        *row = accumulate_row::<S, RV, STRIDE>(
                            *row,
                            line.add(ox0 * sw),
                            taps,
                            kw,
                            [sw, dw],
                        );
                    }
                }
            }
            let bias = S::splat(band.bias);
            for (r, row) in acc.iter().enumerate() {
                let out = band.output.add((oy0 + r) * geo.out_row + ox0);
                for (v, &a) in row.iter().enumerate() {
                    let value = self.activation.apply::<S>(S::add(a, bias));
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

/// One band's inputs to the tile loop: the padded rows, the channel's taps and bias, and its
/// output plane.
#[derive(Clone, Copy)]
struct Band<'a, T> {
    buffer: &'a [f32],
    /// First column vector of the tiles being swept.
    first_vector: usize,
    weights: &'a [f32],
    bias: f32,
    output: *mut T,
    /// Padded input row held by the buffer's first row.
    first: usize,
}

impl<T: F32Storage> ItemKernel<T> for DepthwiseNchw {
    /// Band `band` ([`Item::band`]) of channel `c` of image `n`, in `buffer` ([`DepthwiseNchw::buffer_len`]).
    #[inline(always)]
    unsafe fn run_item<S: Simd>(&self, buffer: &mut [f32], item: Item<'_, T>) {
        let (input, output) = (item.input.as_ptr(), item.output);
        let (n, c, band) = item.band();
        let geo = &self.geometry;
        let oh = geo.out_hw[0];
        let [sh, sw] = geo.stride;
        let [kh, kw] = geo.kernel;
        let rows = band * self.band_rows..((band + 1) * self.band_rows).min(oh);
        // Buffer row r holds padded input row `first + r` (padded coordinates).
        let first = rows.start * sh;
        let buffer_rows = geo.band_input_rows(rows.len());
        let buffer = &mut buffer[..buffer_rows * self.buffer_width];
        let plane = n * geo.in_image + c * geo.in_channel;
        // SAFETY: `plane` is channel `c` of image `n` (contract).
        unsafe {
            geo.copy_padded_rows(
                input,
                plane,
                first,
                (self.buffer_width, LineOrder::Plain),
                buffer,
            )
        };
        let weights = &self.weights[c * kh * kw..(c + 1) * kh * kw];
        let out = Band {
            buffer,
            first_vector: 0,
            weights,
            bias: self.bias[c],
            output: output.wrapping_add(n * geo.out_image + c * geo.out_channel),
            first,
        };
        // SAFETY: forwarded contract; the buffer holds every column the tiles read.
        unsafe {
            let dense_3x3 = geo.kernel == [3, 3] && geo.stride == [1, 1] && geo.dilation == [1, 1];
            match (sw, dense_3x3) {
                (_, true) => self.rows_with::<S, T, 1, true>(&out, rows),
                (1, false) => self.rows_with::<S, T, 1, false>(&out, rows),
                (2, false) => self.rows_with::<S, T, 2, false>(&out, rows),
                _ => self.rows_with::<S, T, 0, false>(&out, rows),
            }
        }
    }
}
