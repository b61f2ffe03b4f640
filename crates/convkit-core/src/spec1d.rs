//! One-dimensional convolutions (audio front ends, TCNs, sequence models): a
//! [`ConvSpec1d`] is a 2-D [`ConvSpec`] of height 1 with a kernel of height 1, described
//! and validated in 1-D terms, and planned like any other spec (it is `AsRef<ConvSpec>`).

use crate::{ConvError, ConvShape, ConvSpec, Layout, Padding};

/// Zero padding before the first and after the last sample of a 1-D convolution (a causal
/// convolution pads `dilation·(kernel − 1)` at the beginning only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Padding1d {
    pub begin: usize,
    pub end: usize,
}

/// Memory order of a 1-D convolution's input and output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout1d {
    /// `[batch][channel][length]` (PyTorch's `Conv1d`; stored as NCHW with height 1).
    #[default]
    Ncl,
    /// `[batch][length][channel]` (channels-last; stored as NHWC with height 1).
    Nlc,
}

/// A 1-D convolution: `out[n][k][t] = bias[k] + Σ_{c, j} x[n][c][t·stride + j·dilation −
/// begin] · w[k][c][j]`, weights `[out][in / groups][kernel]` (OIW, which is OIHW with height
/// 1).
///
/// ```
/// use convkit_core::{ConvSpec, Layout1d, Padding1d};
/// // Whisper's second front-end convolution: 512 -> 512 channels, kernel 3, stride 2.
/// let spec = ConvSpec::new_1d(1, 512, 512, 3000, 3)
///     .stride(2)
///     .padding(Padding1d { begin: 1, end: 1 })
///     .layout(Layout1d::Ncl);
/// assert_eq!(spec.output_length().unwrap(), 1500);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpec1d {
    spec: ConvSpec,
}

impl ConvSpec {
    /// A 1-D convolution over `length` samples with a `kernel`-tap window: stride 1,
    /// dilation 1, no padding, one group, NCL.
    pub const fn new_1d(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        length: usize,
        kernel: usize,
    ) -> ConvSpec1d {
        ConvSpec1d {
            spec: ConvSpec::new(batch, in_channels, out_channels, [1, length], [1, kernel]),
        }
    }
}

impl ConvSpec1d {
    /// Step between output samples.
    pub const fn stride(self, stride: usize) -> ConvSpec1d {
        ConvSpec1d {
            spec: self.spec.stride([1, stride]),
        }
    }

    /// Spacing between kernel taps (1 = dense kernel).
    pub const fn dilation(self, dilation: usize) -> ConvSpec1d {
        ConvSpec1d {
            spec: self.spec.dilation([1, dilation]),
        }
    }

    /// Zero padding before and after the sequence.
    pub const fn padding(self, padding: Padding1d) -> ConvSpec1d {
        ConvSpec1d {
            spec: self.spec.padding(Padding {
                top: 0,
                bottom: 0,
                left: padding.begin,
                right: padding.end,
            }),
        }
    }

    /// Number of groups (`groups == in_channels`: depthwise).
    pub const fn groups(self, groups: usize) -> ConvSpec1d {
        ConvSpec1d {
            spec: self.spec.groups(groups),
        }
    }

    /// Memory order of input and output.
    pub const fn layout(self, layout: Layout1d) -> ConvSpec1d {
        ConvSpec1d {
            spec: self.spec.layout(match layout {
                Layout1d::Ncl => Layout::Nchw,
                Layout1d::Nlc => Layout::Nhwc,
            }),
        }
    }

    /// The 2-D spec it runs as: height 1, a kernel of height 1.
    pub const fn spec(&self) -> ConvSpec {
        self.spec
    }

    /// The validated shape (as [`ConvSpec::shape`]).
    pub fn shape(&self) -> Result<ConvShape, ConvError> {
        self.spec.shape()
    }

    /// Output samples per channel.
    pub fn output_length(&self) -> Result<usize, ConvError> {
        Ok(self.spec.output_hw()?[1])
    }

    /// Elements of the input tensor.
    pub fn input_len(&self) -> Result<usize, ConvError> {
        self.spec.input_len()
    }

    /// Elements of the weight tensor.
    pub fn weight_len(&self) -> Result<usize, ConvError> {
        self.spec.weight_len()
    }

    /// Elements of the output tensor.
    pub fn output_len(&self) -> Result<usize, ConvError> {
        self.spec.output_len()
    }
}

impl AsRef<ConvSpec> for ConvSpec1d {
    fn as_ref(&self) -> &ConvSpec {
        &self.spec
    }
}

impl From<ConvSpec1d> for ConvSpec {
    fn from(spec: ConvSpec1d) -> ConvSpec {
        spec.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1d_spec_is_a_2d_spec_of_height_1() {
        let spec = ConvSpec::new_1d(2, 8, 4, 100, 5)
            .stride(2)
            .dilation(3)
            .padding(Padding1d { begin: 12, end: 0 })
            .groups(4)
            .layout(Layout1d::Nlc);
        let two_d = ConvSpec::new(2, 8, 4, [1, 100], [1, 5])
            .stride([1, 2])
            .dilation([1, 3])
            .padding(Padding {
                top: 0,
                bottom: 0,
                left: 12,
                right: 0,
            })
            .groups(4)
            .layout(Layout::Nhwc);
        assert_eq!(spec.spec(), two_d);
        // (100 + 12 − 3·4 − 1) / 2 + 1
        assert_eq!(spec.output_length(), Ok(50));
        assert_eq!(spec.weight_len(), Ok(4 * 2 * 5));
    }

    #[test]
    fn bad_1d_specs_are_errors() {
        assert!(ConvSpec::new_1d(1, 4, 4, 3, 5).shape().is_err());
        assert!(ConvSpec::new_1d(1, 4, 4, 30, 3).groups(3).shape().is_err());
        assert!(ConvSpec::new_1d(1, 4, 4, 30, 3).stride(0).shape().is_err());
    }
}
