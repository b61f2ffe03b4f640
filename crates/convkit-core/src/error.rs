use crate::{Algorithm, Isa};

/// Everything that can go wrong when describing, planning or running a convolution.
///
/// Messages name the field and the values at fault. No convkit entry point panics on bad input;
/// and when one of these is returned, the output buffer has not been written.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvError {
    /// A dimension, stride, dilation or group count is zero.
    #[error("{field} must be at least 1, got 0")]
    ZeroDimension {
        /// Which field of the spec is zero.
        field: &'static str,
    },
    /// `groups` does not divide the input or output channel count.
    #[error("groups {groups} does not divide {field} {channels}")]
    GroupsMismatch {
        /// `in_channels` or `out_channels`.
        field: &'static str,
        /// The channel count.
        channels: usize,
        /// The group count.
        groups: usize,
    },
    /// The dilated kernel does not fit in the padded input along some axis.
    #[error(
        "kernel {kernel_h}x{kernel_w} dilated to {dilated_h}x{dilated_w} is larger than the padded input {padded_h}x{padded_w}"
    )]
    KernelTooLarge {
        /// Kernel height.
        kernel_h: usize,
        /// Kernel width.
        kernel_w: usize,
        /// `dilation_h * (kernel_h - 1) + 1`.
        dilated_h: usize,
        /// `dilation_w * (kernel_w - 1) + 1`.
        dilated_w: usize,
        /// Input height plus top and bottom padding.
        padded_h: usize,
        /// Input width plus left and right padding.
        padded_w: usize,
    },
    /// A transposed convolution's output padding is not smaller than its stride or its
    /// dilation (PyTorch's rule: the extra rows would otherwise be a whole stride step).
    #[error(
        "{axis} output_padding {output_padding} must be smaller than the stride {stride} or the dilation {dilation}"
    )]
    OutputPadding {
        /// `vertical` or `horizontal`.
        axis: &'static str,
        /// The output padding given.
        output_padding: usize,
        /// The stride of that axis.
        stride: usize,
        /// The dilation of that axis.
        dilation: usize,
    },
    /// A transposed convolution's padding crops its whole output along an axis.
    #[error("{axis} padding {padding} leaves nothing of the transposed output's {extent} pixels")]
    PaddingTooLarge {
        /// `vertical` or `horizontal`.
        axis: &'static str,
        /// Padding at both ends of the axis.
        padding: usize,
        /// `(in − 1)·stride + dilation·(k − 1) + output_padding + 1`.
        extent: usize,
    },
    /// Some size derived from the spec does not fit in `usize` (or the FLOP count in `u64`).
    #[error("shape arithmetic overflows: {quantity}")]
    Overflow {
        /// The quantity whose computation overflowed.
        quantity: &'static str,
    },
    /// A caller buffer has the wrong number of elements.
    #[error("{buffer} has {actual} elements, expected {expected}")]
    BufferLength {
        /// `input`, `weights`, `bias`, `output` or `scratch`.
        buffer: &'static str,
        /// What the spec requires.
        expected: usize,
        /// What was passed.
        actual: usize,
    },
    /// An activation parameter is not usable (NaN slope, `min > max`, ...).
    #[error("activation {activation}: {reason}")]
    InvalidActivation {
        /// The activation as written.
        activation: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// An `ndarray` view passed to `Plan::run_array` has the wrong dimensions, or strides
    /// that are not the standard (C-contiguous) order.
    #[error("{array} array: {reason}")]
    ArrayLayout {
        /// Which array (`"input"` or `"output"`).
        array: &'static str,
        /// What is wrong with its shape or strides.
        reason: String,
    },
    /// The algorithm does not exist yet, or does not handle this problem.
    #[error("algorithm {algorithm:?} does not support this convolution: {reason}")]
    Unsupported {
        /// The algorithm that was asked for.
        algorithm: Algorithm,
        /// Why it cannot run this problem.
        reason: String,
    },
    /// The requested instruction set is not present on this CPU (or not compiled in).
    #[error("instruction set {isa} is not available on this CPU")]
    IsaUnavailable {
        /// The requested path.
        isa: Isa,
    },
    /// `CONVKIT_ISA` (or a string given to [`Isa::from_name`]) names no known path.
    #[error("unknown instruction set {name:?}: expected one of scalar, avx2, avx512, neon")]
    UnknownIsa {
        /// The string that was given.
        name: String,
    },
}
