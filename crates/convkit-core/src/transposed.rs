//! The description of a transposed convolution (PyTorch's `ConvTranspose2d`, ONNX's
//! `ConvTranspose`, "deconvolution") and its validated, derived form.
//!
//! Each input pixel scatters its channels, times the kernel, onto the output at `stride`
//! spacing; the padding is then cropped from the result's sides:
//!
//! ```text
//! out[n][o][oy][ox] = bias[o] + Σ_{c in o's group} Σ_{ky, kx}
//!     in[n][c][iy][ix] · w[c][o mod (O/g)][ky][kx]
//!     over iy·sh + ky·dh = oy + pad_top, ix·sw + kx·dw = ox + pad_left
//! out_h = (in_h − 1)·sh − pad_top − pad_bottom + dh·(kh − 1) + output_padding_h + 1
//! ```
//!
//! with weights `[in_channels][out_channels / groups][kh][kw]`. It is the backward-data of the
//! forward convolution ([`TransposedShape::forward`]) whose input has this output's size and
//! whose output has this input's size; `output_padding` (smaller than the stride or the
//! dilation, as PyTorch requires) picks which of the input sizes that stride maps to the same
//! output size is meant.

use crate::spec::{divides_channels, flat_coords, flat_index, nonzero, product};
use crate::{ConvError, ConvSpec, Layout, Padding};

/// A transposed 2-D convolution, described once and planned once.
///
/// As with [`ConvSpec`], the constructor and builders never fail; every check happens in
/// [`TransposedSpec::shape`], which returns a [`ConvError`] naming the field at fault.
///
/// ```
/// use convkit_core::{Padding, TransposedSpec};
/// // A 2x upsampling head: 4x4 kernel, stride 2, padding 1.
/// let spec = TransposedSpec::new(1, 64, 32, [28, 28], [4, 4])
///     .stride([2, 2])
///     .padding(Padding::symmetric([1, 1]));
/// assert_eq!(spec.output_hw().unwrap(), [56, 56]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransposedSpec {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    input_hw: [usize; 2],
    kernel_hw: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: Padding,
    output_padding: [usize; 2],
    groups: usize,
    layout: Layout,
}

impl TransposedSpec {
    /// A transposed convolution with stride 1, dilation 1, no padding or output padding, one
    /// group, NCHW.
    pub const fn new(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        input_hw: [usize; 2],
        kernel_hw: [usize; 2],
    ) -> TransposedSpec {
        TransposedSpec {
            batch,
            in_channels,
            out_channels,
            input_hw,
            kernel_hw,
            stride: [1, 1],
            dilation: [1, 1],
            padding: Padding::ZERO,
            output_padding: [0, 0],
            groups: 1,
            layout: Layout::Nchw,
        }
    }

    /// Spacing of the input pixels on the output, `[vertical, horizontal]`.
    pub const fn stride(mut self, stride: [usize; 2]) -> TransposedSpec {
        self.stride = stride;
        self
    }

    /// Spacing between kernel taps, `[vertical, horizontal]`.
    pub const fn dilation(mut self, dilation: [usize; 2]) -> TransposedSpec {
        self.dilation = dilation;
        self
    }

    /// Rows and columns cropped from each side of the full scatter.
    pub const fn padding(mut self, padding: Padding) -> TransposedSpec {
        self.padding = padding;
        self
    }

    /// Rows added at the bottom and columns at the right, `[vertical, horizontal]`; each must
    /// be smaller than the stride or the dilation of its axis.
    pub const fn output_padding(mut self, output_padding: [usize; 2]) -> TransposedSpec {
        self.output_padding = output_padding;
        self
    }

    /// Number of groups: input and output channels are split into `groups` independent
    /// transposed convolutions.
    pub const fn groups(mut self, groups: usize) -> TransposedSpec {
        self.groups = groups;
        self
    }

    /// Memory order of input and output.
    pub const fn layout(mut self, layout: Layout) -> TransposedSpec {
        self.layout = layout;
        self
    }

    /// Batch size N.
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Input channels.
    pub const fn in_channels(&self) -> usize {
        self.in_channels
    }
    /// Output channels.
    pub const fn out_channels(&self) -> usize {
        self.out_channels
    }
    /// Input `[height, width]`.
    pub const fn input_hw(&self) -> [usize; 2] {
        self.input_hw
    }
    /// Kernel `[height, width]`.
    pub const fn kernel_hw(&self) -> [usize; 2] {
        self.kernel_hw
    }
    /// `[vertical, horizontal]` stride.
    pub const fn stride_hw(&self) -> [usize; 2] {
        self.stride
    }
    /// `[vertical, horizontal]` dilation.
    pub const fn dilation_hw(&self) -> [usize; 2] {
        self.dilation
    }
    /// Padding per side.
    pub const fn padding_sides(&self) -> Padding {
        self.padding
    }
    /// `[vertical, horizontal]` output padding.
    pub const fn output_padding_hw(&self) -> [usize; 2] {
        self.output_padding
    }
    /// Group count.
    pub const fn group_count(&self) -> usize {
        self.groups
    }
    /// Activation layout.
    pub const fn activation_layout(&self) -> Layout {
        self.layout
    }

    /// Checks every parameter and computes all derived sizes with checked arithmetic.
    pub fn shape(&self) -> Result<TransposedShape, ConvError> {
        TransposedShape::new(*self)
    }

    /// `[out_h, out_w]`, or the reason the spec is invalid.
    pub fn output_hw(&self) -> Result<[usize; 2], ConvError> {
        Ok(self.shape()?.output_hw())
    }
}

/// A [`TransposedSpec`] that passed validation: every size below fits in `usize` (the FLOP
/// count in `u64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransposedShape {
    spec: TransposedSpec,
    output_hw: [usize; 2],
    input_len: usize,
    weight_len: usize,
    output_len: usize,
    flops: u64,
}

impl TransposedShape {
    fn new(spec: TransposedSpec) -> Result<TransposedShape, ConvError> {
        let TransposedSpec {
            batch,
            in_channels,
            out_channels,
            input_hw,
            kernel_hw,
            stride,
            dilation,
            padding,
            output_padding,
            groups,
            layout: _,
        } = spec;
        // Checked here rather than by the forward convolution below, so that errors name
        // this spec's fields (the forward's input channels are this output's).
        for (value, field) in [
            (batch, "batch"),
            (in_channels, "in_channels"),
            (out_channels, "out_channels"),
            (input_hw[0], "input height"),
            (input_hw[1], "input width"),
            (kernel_hw[0], "kernel height"),
            (kernel_hw[1], "kernel width"),
            (stride[0], "vertical stride"),
            (stride[1], "horizontal stride"),
            (dilation[0], "vertical dilation"),
            (dilation[1], "horizontal dilation"),
            (groups, "groups"),
        ] {
            nonzero(value, field)?;
        }
        divides_channels(groups, in_channels, out_channels)?;
        let axes = [
            ("vertical", padding.top, padding.bottom),
            ("horizontal", padding.left, padding.right),
        ];
        let mut output_hw = [0; 2];
        for (axis, (name, begin, end)) in axes.into_iter().enumerate() {
            if output_padding[axis] >= stride[axis] && output_padding[axis] >= dilation[axis] {
                return Err(ConvError::OutputPadding {
                    axis: name,
                    output_padding: output_padding[axis],
                    stride: stride[axis],
                    dilation: dilation[axis],
                });
            }
            let overflow = ConvError::Overflow {
                quantity: "transposed output size",
            };
            // The full scatter's extent: (in − 1)·s + d·(k − 1) + 1, plus the output padding.
            let extent = (input_hw[axis] - 1)
                .checked_mul(stride[axis])
                .and_then(|e| e.checked_add((kernel_hw[axis] - 1).checked_mul(dilation[axis])?))
                .and_then(|e| e.checked_add(output_padding[axis] + 1))
                .ok_or(overflow)?;
            let cropped = begin.checked_add(end).ok_or(ConvError::Overflow {
                quantity: "transposed padding",
            })?;
            if cropped >= extent {
                return Err(ConvError::PaddingTooLarge {
                    axis: name,
                    padding: cropped,
                    extent,
                });
            }
            output_hw[axis] = extent - cropped;
        }
        let forward = ConvSpec::new(batch, out_channels, in_channels, output_hw, kernel_hw)
            .stride(stride)
            .dilation(dilation)
            .padding(padding)
            .groups(groups)
            .layout(spec.layout)
            .shape()?;
        let input_len = product(
            &[batch, in_channels, input_hw[0], input_hw[1]],
            "input length",
        )?;
        // The scatter's multiply-adds: every input value times the `O/g·KH·KW` weights it
        // meets, taps cropped by the padding included (the direct method computes them).
        let flops = u64::try_from(input_len)
            .ok()
            .and_then(|len| {
                len.checked_mul(2 * u64::try_from(forward.in_channels_per_group()).ok()?)
            })
            .and_then(|f| f.checked_mul(u64::try_from(kernel_hw[0] * kernel_hw[1]).ok()?))
            .ok_or(ConvError::Overflow {
                quantity: "FLOP count",
            })?;
        Ok(TransposedShape {
            spec,
            output_hw,
            input_len,
            weight_len: forward.weight_len(),
            output_len: forward.input_len(),
            flops,
        })
    }

    /// The spec this shape was derived from.
    pub const fn spec(&self) -> &TransposedSpec {
        &self.spec
    }

    /// The forward convolution this transposes: its input has this output's size and
    /// channels, its OIHW weights are this one's `[in][out / groups][kh][kw]` weights as they
    /// lie in memory, and its output has this input's channels and `in + output_padding /
    /// stride` pixels per axis: this input's size unless the output padding reaches the stride
    /// (allowed below the dilation), where its last outputs have no transposed input.
    pub fn forward(&self) -> ConvSpec {
        let spec = &self.spec;
        ConvSpec::new(
            spec.batch,
            spec.out_channels,
            spec.in_channels,
            self.output_hw,
            spec.kernel_hw,
        )
        .stride(spec.stride)
        .dilation(spec.dilation)
        .padding(spec.padding)
        .groups(spec.groups)
        .layout(spec.layout)
    }

    /// Batch size N.
    pub const fn batch(&self) -> usize {
        self.spec.batch
    }
    /// Input channels.
    pub const fn in_channels(&self) -> usize {
        self.spec.in_channels
    }
    /// Output channels.
    pub const fn out_channels(&self) -> usize {
        self.spec.out_channels
    }
    /// Group count.
    pub const fn groups(&self) -> usize {
        self.spec.groups
    }
    /// Input `[height, width]`.
    pub const fn input_hw(&self) -> [usize; 2] {
        self.spec.input_hw
    }
    /// Output `[height, width]`.
    pub const fn output_hw(&self) -> [usize; 2] {
        self.output_hw
    }
    /// Elements of the input tensor.
    pub const fn input_len(&self) -> usize {
        self.input_len
    }
    /// Elements of the `[in][out / groups][kh][kw]` weight tensor.
    pub const fn weight_len(&self) -> usize {
        self.weight_len
    }
    /// Elements of the bias vector (one per output channel).
    pub const fn bias_len(&self) -> usize {
        self.spec.out_channels
    }
    /// Elements of the output tensor.
    pub const fn output_len(&self) -> usize {
        self.output_len
    }
    /// Floating-point operations of the direct scatter, as the forward convolution's.
    pub const fn flops(&self) -> u64 {
        self.flops
    }

    /// Flat index of input element `(n, c, y, x)` in this shape's layout.
    pub const fn input_index(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        let spec = &self.spec;
        flat_index(spec.layout, spec.in_channels, spec.input_hw, (n, c, y, x))
    }

    /// Flat index of output element `(n, o, y, x)` in this shape's layout.
    pub const fn output_index(&self, n: usize, o: usize, y: usize, x: usize) -> usize {
        let spec = &self.spec;
        flat_index(spec.layout, spec.out_channels, self.output_hw, (n, o, y, x))
    }

    /// `(n, o, y, x)` of the output element at flat index `index`.
    pub const fn output_coords(&self, index: usize) -> (usize, usize, usize, usize) {
        flat_coords(
            self.spec.layout,
            self.spec.out_channels,
            self.output_hw,
            index,
        )
    }

    /// Flat index of weight `(c, o, ky, kx)`: input channel `c`, output channel `o` of its
    /// group (`o < out_channels / groups`).
    pub const fn weight_index(&self, c: usize, o: usize, ky: usize, kx: usize) -> usize {
        let [kh, kw] = self.spec.kernel_hw;
        ((c * (self.spec.out_channels / self.spec.groups) + o) * kh + ky) * kw + kx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_the_pytorch_formula() {
        // (in − 1)·s − pads + d·(k − 1) + output_padding + 1.
        let spec = TransposedSpec::new(1, 4, 6, [5, 7], [3, 2])
            .stride([2, 3])
            .dilation([2, 1])
            .padding(Padding {
                top: 1,
                bottom: 2,
                left: 0,
                right: 1,
            })
            .output_padding([1, 2]);
        assert_eq!(
            spec.output_hw().unwrap(),
            [4 * 2 - 3 + 2 * 2 + 1 + 1, 6 * 3 - 1 + 1 + 2 + 1]
        );
        let shape = spec.shape().unwrap();
        assert_eq!(shape.forward().output_hw().unwrap(), [5, 7]);
        assert_eq!(shape.weight_len(), 4 * 6 * 3 * 2);
        // Every input value meets O·KH·KW weights.
        assert_eq!(shape.flops(), 2 * (4 * 5 * 7) * 6 * 3 * 2);
        assert_eq!(shape.flops(), shape.forward().flops().unwrap());
    }

    #[test]
    fn invalid_specs_name_the_field() {
        let spec = TransposedSpec::new(1, 4, 6, [5, 5], [3, 3]).stride([2, 2]);
        assert!(matches!(
            spec.output_padding([2, 0]).shape(),
            Err(ConvError::OutputPadding {
                axis: "vertical",
                ..
            })
        ));
        // Smaller than the dilation is allowed even at the stride.
        assert!(spec.dilation([1, 3]).output_padding([0, 2]).shape().is_ok());
        assert!(matches!(
            spec.padding(Padding::symmetric([0, 6])).shape(),
            Err(ConvError::PaddingTooLarge {
                axis: "horizontal",
                ..
            })
        ));
        assert!(matches!(
            spec.groups(4).shape(),
            Err(ConvError::GroupsMismatch { .. })
        ));
        assert!(matches!(
            TransposedSpec::new(1, 4, 6, [0, 5], [3, 3]).shape(),
            Err(ConvError::ZeroDimension {
                field: "input height"
            })
        ));
        assert!(matches!(
            TransposedSpec::new(1, 4, 6, [5, 5], [3, 3])
                .stride([usize::MAX, 1])
                .shape(),
            Err(ConvError::Overflow { .. })
        ));
    }

    #[test]
    fn output_coords_invert_output_index() {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let shape = TransposedSpec::new(2, 3, 4, [2, 3], [2, 2])
                .stride([2, 1])
                .layout(layout)
                .shape()
                .unwrap();
            for index in 0..shape.output_len() {
                let (n, o, y, x) = shape.output_coords(index);
                assert_eq!(shape.output_index(n, o, y, x), index);
            }
        }
    }
}
