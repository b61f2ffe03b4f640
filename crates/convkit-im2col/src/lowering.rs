//! The lowered (im2col) input as a GEMM panel source, packed straight from the image one
//! block at a time: the whole lowered matrix never exists.
//!
//! - NCHW: the lowered matrix is B, `(C/g·KH·KW) × (OH·OW)` per image and group; its outer
//!   index is the output pixel and its depth `(c, ky, kx)`, the OIHW weight order. A panel
//!   row (one depth, NR consecutive pixels) is a run of an input row: copied with `memcpy`
//!   at stride 1, gathered otherwise, zero where it falls in the padding.
//! - NHWC: the lowered matrix is A, `(N·OH·OW) × (KH·KW·C/g)`; its depth order is
//!   `(ky, kx, c)` (the weights are re-laid to match at plan time), so each tap of each
//!   pixel is a contiguous run of channels.

use convkit_core::ConvShape;
use convkit_gemm::{PanelSource, packed_len};
use std::ops::Range;

/// Geometry shared by both lowerings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    input_hw: [usize; 2],
    output_hw: [usize; 2],
    kernel_hw: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad_top: usize,
    pad_left: usize,
}

impl Window {
    pub(crate) fn new(shape: &ConvShape) -> Window {
        Window {
            input_hw: shape.input_hw(),
            output_hw: shape.output_hw(),
            kernel_hw: shape.kernel_hw(),
            stride: shape.stride(),
            dilation: shape.dilation(),
            pad_top: shape.padding().top,
            pad_left: shape.padding().left,
        }
    }

    /// Input row read by output row `oy` at kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride[0] + ky * self.dilation[0])
            .checked_sub(self.pad_top)
            .filter(|&y| y < self.input_hw[0])
    }

    /// Writes the values of input row `row` (a slice of one channel, `W` long) read by output
    /// columns `ox0..ox0 + dst.len()` at kernel column `kx`; zero in the padding.
    fn copy_row_segment(&self, row: &[f32], ox0: usize, kx: usize, dst: &mut [f32]) {
        let width = self.input_hw[1];
        let [_, stride] = self.stride;
        // Padded coordinate of the first value; the image starts at `pad_left`.
        let start = ox0 * stride + kx * self.dilation[1];
        if stride == 1 {
            // Output columns whose input column lies in [pad_left, pad_left + width).
            let first = self.pad_left.saturating_sub(start).min(dst.len());
            let last = (self.pad_left + width).saturating_sub(start).min(dst.len());
            dst[..first].fill(0.0);
            if first < last {
                let x0 = start + first - self.pad_left;
                dst[first..last].copy_from_slice(&row[x0..x0 + last - first]);
            }
            dst[last.max(first)..].fill(0.0);
        } else {
            for (i, value) in dst.iter_mut().enumerate() {
                *value = (start + i * stride)
                    .checked_sub(self.pad_left)
                    .filter(|&x| x < width)
                    .map_or(0.0, |x| row[x]);
            }
        }
    }
}

/// NCHW lowering of one image and group: outer = output pixel, depth = `(c, ky, kx)`.
pub(crate) struct NchwLowering<'a> {
    /// The group's first input channel of the image: `C/g` planes of `H·W`.
    pub input: &'a [f32],
    pub window: Window,
}

impl PanelSource for NchwLowering<'_> {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        let w = &self.window;
        let [kh, kw] = w.kernel_hw;
        let [in_h, in_w] = w.input_hw;
        let out_w = w.output_hw[1];
        let depth_len = depth.len();
        let groups =
            dst[..packed_len(outer.len(), depth_len, width)].chunks_exact_mut(width * depth_len);
        for (group, panel) in groups.enumerate() {
            let first = outer.start + group * width;
            let valid = width.min(outer.end - first);
            for (r, lanes) in depth.clone().zip(panel.chunks_exact_mut(width)) {
                let (c, ky, kx) = (r / (kh * kw), r / kw % kh, r % kw);
                let plane = &self.input[c * in_h * in_w..(c + 1) * in_h * in_w];
                // Walk the output rows the `valid` pixels span.
                let mut pixel = first;
                let mut filled = 0;
                while filled < valid {
                    let (oy, ox) = (pixel / out_w, pixel % out_w);
                    let run = (out_w - ox).min(valid - filled);
                    let dst_run = &mut lanes[filled..filled + run];
                    match w.input_row(oy, ky) {
                        Some(y) => {
                            w.copy_row_segment(&plane[y * in_w..(y + 1) * in_w], ox, kx, dst_run)
                        }
                        None => dst_run.fill(0.0),
                    }
                    filled += run;
                    pixel += run;
                }
                lanes[valid..].fill(0.0);
            }
        }
    }
}

/// NHWC lowering of the whole batch for one group: outer = `(n, oy, ox)`, depth =
/// `(ky, kx, c)`.
pub(crate) struct NhwcLowering<'a> {
    /// The whole input tensor.
    pub input: &'a [f32],
    /// Channels of the input tensor (the pixel stride).
    pub channels: usize,
    /// First channel of the group.
    pub channel_offset: usize,
    /// Channels per group.
    pub group_channels: usize,
    pub window: Window,
}

impl PanelSource for NhwcLowering<'_> {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        let w = &self.window;
        let [_, kw] = w.kernel_hw;
        let [in_h, in_w] = w.input_hw;
        let [out_h, out_w] = w.output_hw;
        let cg = self.group_channels;
        let depth_len = depth.len();
        let groups =
            dst[..packed_len(outer.len(), depth_len, width)].chunks_exact_mut(width * depth_len);
        for (group, panel) in groups.enumerate() {
            let first = outer.start + group * width;
            for lane in 0..width {
                let pixel = first + lane;
                if pixel >= outer.end {
                    for p in 0..depth_len {
                        panel[p * width + lane] = 0.0;
                    }
                    continue;
                }
                let (n, oy, ox) = (
                    pixel / (out_h * out_w),
                    pixel / out_w % out_h,
                    pixel % out_w,
                );
                // Depth runs one tap (ky, kx) at a time: a contiguous run of channels.
                let mut r = depth.start;
                while r < depth.end {
                    let (tap, c0) = (r / cg, r % cg);
                    let run = (cg - c0).min(depth.end - r);
                    let (ky, kx) = (tap / kw, tap % kw);
                    let y = w.input_row(oy, ky);
                    let x = (ox * w.stride[1] + kx * w.dilation[1])
                        .checked_sub(w.pad_left)
                        .filter(|&x| x < in_w);
                    let out = &mut panel[(r - depth.start) * width + lane..];
                    match (y, x) {
                        (Some(y), Some(x)) => {
                            let base = ((n * in_h + y) * in_w + x) * self.channels
                                + self.channel_offset
                                + c0;
                            for (i, &value) in self.input[base..base + run].iter().enumerate() {
                                out[i * width] = value;
                            }
                        }
                        _ => {
                            for i in 0..run {
                                out[i * width] = 0.0;
                            }
                        }
                    }
                    r += run;
                }
            }
        }
    }
}
