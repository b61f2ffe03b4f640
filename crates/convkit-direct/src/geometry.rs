//! Index arithmetic shared by the direct kernels: strides of the input and output in either
//! layout, and which output columns see every kernel column inside the image.

use convkit_core::{ConvShape, Layout};
use convkit_simd::F32Storage;

/// The order of a channel block's `(tap, input channel)` steps in packed weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepOrder {
    /// All channels of a tap, tap after tap.
    TapMajor,
    /// All taps of a channel, channel after channel.
    ChannelMajor,
}

/// How a band-buffer line holds its padded columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineOrder {
    /// Column `j` at `j`.
    Plain,
    /// Column `j` at `(j % 2)·width/2 + j / 2` (`width` even): the even columns, then the odd
    /// ones, so that a column-stride-2 tile reads its inputs for one tap as one run.
    SplitByParity,
}

/// Input values widened at a time for a line split by parity.
const PARITY_PIECE: usize = 64;

/// `values[i]`, at padded column `column + i`, into `even[(column + i) / 2]` or
/// `odd[(column + i) / 2]` by the column's parity.
fn scatter_by_parity(values: &[f32], column: usize, even: &mut [f32], odd: &mut [f32]) {
    let first_even = column % 2;
    let evens = values[first_even..].iter().step_by(2);
    for (slot, &x) in even[(column + first_even) / 2..].iter_mut().zip(evens) {
        *slot = x;
    }
    let first_odd = 1 - first_even;
    let odds = values[first_odd.min(values.len())..].iter().step_by(2);
    for (slot, &x) in odd[(column + first_odd) / 2..].iter_mut().zip(odds) {
        *slot = x;
    }
}

/// Strides (in elements) and sizes the kernels index with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, left]` padding.
    pub pad: [usize; 2],
    pub groups: usize,
    /// Input channels per group.
    pub cg: usize,
    /// Output channels per group.
    pub kg: usize,
    /// Input: between images, rows, pixels of a row, channels.
    pub in_image: usize,
    pub in_row: usize,
    pub in_pixel: usize,
    pub in_channel: usize,
    /// Output: between images, rows, pixels of a row, channels.
    pub out_image: usize,
    pub out_row: usize,
    pub out_pixel: usize,
    pub out_channel: usize,
    /// Output columns `[lo, hi)` whose taps all land inside the input's columns.
    pub interior: [usize; 2],
}

impl Geometry {
    pub fn new(shape: &ConvShape) -> Geometry {
        let [h, w] = shape.input_hw();
        let [oh, ow] = shape.output_hw();
        let (c, k) = (shape.in_channels(), shape.out_channels());
        let padding = shape.padding();
        let (in_strides, out_strides) = match shape.layout() {
            Layout::Nchw => ([c * h * w, w, 1, h * w], [k * oh * ow, ow, 1, oh * ow]),
            Layout::Nhwc => ([h * w * c, w * c, c, 1], [oh * ow * k, ow * k, k, 1]),
        };
        let [sw, dw, kw] = [shape.stride()[1], shape.dilation()[1], shape.kernel_hw()[1]];
        // ox·sw − left ≥ 0 for the first tap, ox·sw − left + (kw−1)·dw < w for the last.
        let lo = padding.left.div_ceil(sw).min(ow);
        let reach = (kw - 1) * dw;
        let hi = if w + padding.left > reach {
            ((w + padding.left - reach - 1) / sw + 1).min(ow)
        } else {
            0
        };
        Geometry {
            in_hw: [h, w],
            out_hw: [oh, ow],
            kernel: shape.kernel_hw(),
            stride: shape.stride(),
            dilation: shape.dilation(),
            pad: [padding.top, padding.left],
            groups: shape.groups(),
            cg: shape.in_channels_per_group(),
            kg: shape.out_channels_per_group(),
            in_image: in_strides[0],
            in_row: in_strides[1],
            in_pixel: in_strides[2],
            in_channel: in_strides[3],
            out_image: out_strides[0],
            out_row: out_strides[1],
            out_pixel: out_strides[2],
            out_channel: out_strides[3],
            interior: [lo, hi.max(lo)],
        }
    }

    /// Input row of kernel row `ky` for output row `oy`, if inside the image.
    #[inline(always)]
    pub fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride[0] + ky * self.dilation[0])
            .checked_sub(self.pad[0])
            .filter(|&iy| iy < self.in_hw[0])
    }

    /// Input column of kernel column `kx` for output column `ox`, if inside the image.
    #[inline(always)]
    pub fn input_column(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.stride[1] + kx * self.dilation[1])
            .checked_sub(self.pad[1])
            .filter(|&ix| ix < self.in_hw[1])
    }

    /// The layout of a zero-padded band buffer holding `channels` channels of input rows for
    /// column-vector kernels: `(buffer width, output rows per band)`, each band at most
    /// `budget` f32 and at most `max_rows` output rows; `None` when one output row's band
    /// already exceeds the budget (or its size overflows).
    pub fn band_layout(
        &self,
        lanes: usize,
        channels: usize,
        budget: usize,
        max_rows: usize,
    ) -> Option<(usize, usize)> {
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let [kh, kw] = self.kernel;
        let [oh, ow] = self.out_hw;
        // Tiles compute whole vectors of output columns; an even-lane load reads 2·LANES.
        let columns = ow.checked_next_multiple_of(lanes)?;
        let width = (columns - 1)
            .checked_mul(sw)?
            .checked_add((kw - 1).checked_mul(dw)?)?
            .checked_add(2 * lanes)?
            .max(self.in_hw[1] + self.pad[1]);
        let len_for = |band: usize| -> Option<usize> {
            let rows = (band - 1)
                .checked_mul(sh)?
                .checked_add((kh - 1).checked_mul(dh)?)?
                .checked_add(1)?;
            rows.checked_mul(width)?.checked_mul(channels)
        };
        if len_for(1)? > budget {
            return None;
        }
        let mut band_rows = 1;
        while band_rows < oh.min(max_rows.max(1))
            && len_for(band_rows + 1).is_some_and(|len| len <= budget)
        {
            band_rows += 1;
        }
        Some((width, band_rows))
    }

    /// Input rows a band of `band_rows` output rows reads.
    pub fn band_input_rows(&self, band_rows: usize) -> usize {
        (band_rows - 1) * self.stride[0] + (self.kernel[0] - 1) * self.dilation[0] + 1
    }

    /// Fills `lines` (rows of a band buffer, each `width ≥ W + left padding` long) with the
    /// input rows of one channel plane starting at `plane`, widened to f32: line `r` holds
    /// padded row `first + r`, zero outside the image, its columns in `order`.
    ///
    /// # Safety
    /// `input` holds the plan's input tensor and `plane` is a channel plane's offset in it.
    pub unsafe fn copy_padded_rows<T: F32Storage>(
        &self,
        input: *const T,
        plane: usize,
        first: usize,
        (width, order): (usize, LineOrder),
        lines: &mut [f32],
    ) {
        let [h, w] = self.in_hw;
        let left = self.pad[1];
        // Lines narrower than this are zeroed in one pass over the whole band before the rows
        // are copied in, rather than margin by margin (three short fills a line cost more
        // than the row itself on small images; `docs/tuning.md`, NCHW depthwise).
        const NARROW: usize = 64;
        let narrow = order == LineOrder::Plain && width <= NARROW;
        if narrow {
            lines.fill(0.0);
        }
        for (r, line) in lines.chunks_exact_mut(width).enumerate() {
            let Some(iy) = (first + r).checked_sub(self.pad[0]).filter(|&iy| iy < h) else {
                if !narrow {
                    line.fill(0.0);
                }
                continue;
            };
            // SAFETY: row `iy` of the plane is inside the input tensor (contract).
            let src = unsafe { std::slice::from_raw_parts(input.add(plane + iy * self.in_row), w) };
            match order {
                LineOrder::Plain if narrow => T::widen(src, &mut line[left..left + w]),
                LineOrder::Plain => {
                    line[..left].fill(0.0);
                    T::widen(src, &mut line[left..left + w]);
                    line[left + w..].fill(0.0);
                }
                LineOrder::SplitByParity => {
                    line.fill(0.0);
                    // Padded column `left + ix` goes to the half of its parity; the row is
                    // widened a piece at a time.
                    let (even, odd) = line.split_at_mut(width / 2);
                    let mut wide = [0.0f32; PARITY_PIECE];
                    for (piece, narrow) in src.chunks(PARITY_PIECE).enumerate() {
                        let values = &mut wide[..narrow.len()];
                        T::widen(narrow, values);
                        scatter_by_parity(values, left + piece * PARITY_PIECE, even, odd);
                    }
                }
            }
        }
    }

    /// OIHW weights and a bias re-laid in blocks of `block` output channels of a group, zero
    /// padded: weights `[group][block][step][block lane]`, where a block's steps are
    /// `(tap, c)` tap-major (`TapMajor`, the general kernel) or `(c, tap)` channel-major
    /// (the column kernel); bias `[group][block][block lane]`.
    pub fn pack_blocks(
        &self,
        weights: &[f32],
        bias: Option<&[f32]>,
        block: usize,
        order: StepOrder,
    ) -> (Vec<f32>, Vec<f32>) {
        let (cg, kg, groups, taps) = (self.cg, self.kg, self.groups, self.taps());
        let blocks = kg.div_ceil(block);
        let mut packed = vec![0.0; groups * blocks * taps * cg * block];
        let mut packed_bias = vec![0.0; groups * blocks * block];
        for g in 0..groups {
            for k in 0..kg {
                let (b, lane) = (k / block, k % block);
                let channel = g * kg + k;
                let unit = g * blocks + b;
                packed_bias[unit * block + lane] = bias.map_or(0.0, |bias| bias[channel]);
                for c in 0..cg {
                    for tap in 0..taps {
                        let step = match order {
                            StepOrder::TapMajor => tap * cg + c,
                            StepOrder::ChannelMajor => c * taps + tap,
                        };
                        packed[(unit * taps * cg + step) * block + lane] =
                            weights[(channel * cg + c) * taps + tap];
                    }
                }
            }
        }
        (packed, packed_bias)
    }

    pub fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}
