//! The description of a convolution and its validated, derived form.

use crate::ConvError;

/// Memory order of the activations (input and output). Weights are always OIHW.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `[batch][channels][height][width]`, PyTorch's default.
    #[default]
    Nchw,
    /// `[batch][height][width][channels]`, TensorFlow's and XNNPACK's default.
    Nhwc,
}

/// Zero padding added around the input, per side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Padding {
    /// Rows added above the input.
    pub top: usize,
    /// Rows added below the input.
    pub bottom: usize,
    /// Columns added left of the input.
    pub left: usize,
    /// Columns added right of the input.
    pub right: usize,
}

impl Padding {
    /// No padding ("valid" convolution).
    pub const ZERO: Padding = Padding {
        top: 0,
        bottom: 0,
        left: 0,
        right: 0,
    };

    /// `[ph, pw]` on both sides of each axis, as PyTorch's `padding=(ph, pw)`.
    pub const fn symmetric([ph, pw]: [usize; 2]) -> Padding {
        Padding {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        }
    }
}

/// A 2-D convolution, described once and planned once.
///
/// The constructor and builders never fail or panic; every check happens in
/// [`ConvSpec::shape`] (and therefore in [`ConvSpec::output_hw`] and in planning), which
/// returns a [`ConvError`] naming the field at fault.
///
/// ```
/// use convkit_core::{ConvSpec, Padding, Layout};
/// let spec = ConvSpec::new(1, 64, 64, [56, 56], [3, 3])
///     .padding(Padding::symmetric([1, 1]))
///     .layout(Layout::Nhwc);
/// assert_eq!(spec.output_hw().unwrap(), [56, 56]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpec {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    input_hw: [usize; 2],
    kernel_hw: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: Padding,
    groups: usize,
    layout: Layout,
}

impl ConvSpec {
    /// A convolution with stride 1, dilation 1, no padding, one group, NCHW.
    pub const fn new(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        input_hw: [usize; 2],
        kernel_hw: [usize; 2],
    ) -> ConvSpec {
        ConvSpec {
            batch,
            in_channels,
            out_channels,
            input_hw,
            kernel_hw,
            stride: [1, 1],
            dilation: [1, 1],
            padding: Padding::ZERO,
            groups: 1,
            layout: Layout::Nchw,
        }
    }

    /// Step between output pixels, `[vertical, horizontal]`.
    pub const fn stride(mut self, stride: [usize; 2]) -> ConvSpec {
        self.stride = stride;
        self
    }

    /// Spacing between kernel taps, `[vertical, horizontal]` (1 = dense kernel).
    pub const fn dilation(mut self, dilation: [usize; 2]) -> ConvSpec {
        self.dilation = dilation;
        self
    }

    /// Zero padding per side.
    pub const fn padding(mut self, padding: Padding) -> ConvSpec {
        self.padding = padding;
        self
    }

    /// Number of groups: input and output channels are split into `groups` independent
    /// convolutions. `groups == in_channels` is a depthwise convolution.
    pub const fn groups(mut self, groups: usize) -> ConvSpec {
        self.groups = groups;
        self
    }

    /// Memory order of input and output.
    pub const fn layout(mut self, layout: Layout) -> ConvSpec {
        self.layout = layout;
        self
    }

    /// Batch size N.
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Input channels C.
    pub const fn in_channels(&self) -> usize {
        self.in_channels
    }
    /// Output channels K.
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
    /// Group count.
    pub const fn group_count(&self) -> usize {
        self.groups
    }
    /// Activation layout.
    pub const fn activation_layout(&self) -> Layout {
        self.layout
    }

    /// Checks every parameter and computes all derived sizes with checked arithmetic.
    pub fn shape(&self) -> Result<ConvShape, ConvError> {
        ConvShape::new(*self)
    }

    /// `[out_h, out_w]`, or the reason the spec is invalid.
    pub fn output_hw(&self) -> Result<[usize; 2], ConvError> {
        Ok(self.shape()?.output_hw())
    }

    /// Elements of the input tensor: `N·C·H·W`.
    pub fn input_len(&self) -> Result<usize, ConvError> {
        Ok(self.shape()?.input_len())
    }

    /// Elements of the OIHW weight tensor: `K·(C/groups)·KH·KW`.
    pub fn weight_len(&self) -> Result<usize, ConvError> {
        Ok(self.shape()?.weight_len())
    }

    /// Elements of the output tensor: `N·K·OH·OW`.
    pub fn output_len(&self) -> Result<usize, ConvError> {
        Ok(self.shape()?.output_len())
    }

    /// Floating-point operations of the direct method: `2·N·K·(C/groups)·OH·OW·KH·KW`.
    pub fn flops(&self) -> Result<u64, ConvError> {
        Ok(self.shape()?.flops())
    }
}

/// A [`ConvSpec`] is its own spec; `convkit::plan` takes any `AsRef<ConvSpec>` (a 1-D spec
/// too).
impl AsRef<ConvSpec> for ConvSpec {
    fn as_ref(&self) -> &ConvSpec {
        self
    }
}

/// A [`ConvSpec`] that passed validation, with every derived size computed once.
///
/// Holding a `ConvShape` proves that every product below fits in `usize` (and the FLOP count in
/// `u64`), so kernels may index with plain arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    spec: ConvSpec,
    output_hw: [usize; 2],
    dilated_kernel_hw: [usize; 2],
    input_len: usize,
    weight_len: usize,
    output_len: usize,
    flops: u64,
}

pub(crate) fn nonzero(value: usize, field: &'static str) -> Result<usize, ConvError> {
    if value == 0 {
        Err(ConvError::ZeroDimension { field })
    } else {
        Ok(value)
    }
}

pub(crate) fn product(factors: &[usize], quantity: &'static str) -> Result<usize, ConvError> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or(ConvError::Overflow { quantity })
}

/// `GroupsMismatch` naming the first of `in_channels` and `out_channels` that `groups`
/// does not divide.
pub(crate) fn divides_channels(
    groups: usize,
    in_channels: usize,
    out_channels: usize,
) -> Result<(), ConvError> {
    for (field, channels) in [("in_channels", in_channels), ("out_channels", out_channels)] {
        if channels % groups != 0 {
            return Err(ConvError::GroupsMismatch {
                field,
                channels,
                groups,
            });
        }
    }
    Ok(())
}

/// Flat index of `(n, c, y, x)` in a `layout` tensor of `channels` channels of `[h, w]`.
pub(crate) const fn flat_index(
    layout: Layout,
    channels: usize,
    [h, w]: [usize; 2],
    (n, c, y, x): (usize, usize, usize, usize),
) -> usize {
    match layout {
        Layout::Nchw => ((n * channels + c) * h + y) * w + x,
        Layout::Nhwc => ((n * h + y) * w + x) * channels + c,
    }
}

/// `(n, c, y, x)` of flat index `index` in a `layout` tensor of `channels` channels of
/// `[h, w]` (inverse of [`flat_index`]).
pub(crate) const fn flat_coords(
    layout: Layout,
    channels: usize,
    [h, w]: [usize; 2],
    index: usize,
) -> (usize, usize, usize, usize) {
    match layout {
        Layout::Nchw => {
            let x = index % w;
            let y = (index / w) % h;
            let c = (index / (w * h)) % channels;
            (index / (w * h * channels), c, y, x)
        }
        Layout::Nhwc => {
            let c = index % channels;
            let x = (index / channels) % w;
            let y = (index / (channels * w)) % h;
            (index / (channels * w * h), c, y, x)
        }
    }
}

impl ConvShape {
    fn new(spec: ConvSpec) -> Result<ConvShape, ConvError> {
        let ConvSpec {
            batch,
            in_channels,
            out_channels,
            input_hw,
            kernel_hw,
            stride,
            dilation,
            padding,
            groups,
            layout: _,
        } = spec;
        nonzero(batch, "batch")?;
        nonzero(in_channels, "in_channels")?;
        nonzero(out_channels, "out_channels")?;
        nonzero(input_hw[0], "input height")?;
        nonzero(input_hw[1], "input width")?;
        nonzero(kernel_hw[0], "kernel height")?;
        nonzero(kernel_hw[1], "kernel width")?;
        nonzero(stride[0], "vertical stride")?;
        nonzero(stride[1], "horizontal stride")?;
        nonzero(dilation[0], "vertical dilation")?;
        nonzero(dilation[1], "horizontal dilation")?;
        nonzero(groups, "groups")?;
        divides_channels(groups, in_channels, out_channels)?;

        let overflow = |quantity| ConvError::Overflow { quantity };
        let dilated = |k: usize, d: usize, quantity| {
            (k - 1)
                .checked_mul(d)
                .and_then(|span| span.checked_add(1))
                .ok_or(overflow(quantity))
        };
        let dilated_kernel_hw = [
            dilated(kernel_hw[0], dilation[0], "dilated kernel height")?,
            dilated(kernel_hw[1], dilation[1], "dilated kernel width")?,
        ];
        let padded_h = input_hw[0]
            .checked_add(padding.top)
            .and_then(|h| h.checked_add(padding.bottom))
            .ok_or(overflow("padded input height"))?;
        let padded_w = input_hw[1]
            .checked_add(padding.left)
            .and_then(|w| w.checked_add(padding.right))
            .ok_or(overflow("padded input width"))?;
        if dilated_kernel_hw[0] > padded_h || dilated_kernel_hw[1] > padded_w {
            return Err(ConvError::KernelTooLarge {
                kernel_h: kernel_hw[0],
                kernel_w: kernel_hw[1],
                dilated_h: dilated_kernel_hw[0],
                dilated_w: dilated_kernel_hw[1],
                padded_h,
                padded_w,
            });
        }
        let output_hw = [
            (padded_h - dilated_kernel_hw[0]) / stride[0] + 1,
            (padded_w - dilated_kernel_hw[1]) / stride[1] + 1,
        ];

        let input_len = product(
            &[batch, in_channels, input_hw[0], input_hw[1]],
            "input length",
        )?;
        let weight_len = product(
            &[
                out_channels,
                in_channels / groups,
                kernel_hw[0],
                kernel_hw[1],
            ],
            "weight length",
        )?;
        let output_len = product(
            &[batch, out_channels, output_hw[0], output_hw[1]],
            "output length",
        )?;
        let flops = [
            batch,
            out_channels,
            in_channels / groups,
            output_hw[0],
            output_hw[1],
            kernel_hw[0],
            kernel_hw[1],
        ]
        .iter()
        .try_fold(2u64, |acc, &f| acc.checked_mul(u64::try_from(f).ok()?))
        .ok_or(overflow("FLOP count"))?;

        Ok(ConvShape {
            spec,
            output_hw,
            dilated_kernel_hw,
            input_len,
            weight_len,
            output_len,
            flops,
        })
    }

    /// The spec this shape was derived from.
    pub const fn spec(&self) -> &ConvSpec {
        &self.spec
    }
    /// Batch size N.
    pub const fn batch(&self) -> usize {
        self.spec.batch
    }
    /// Input channels C.
    pub const fn in_channels(&self) -> usize {
        self.spec.in_channels
    }
    /// Output channels K.
    pub const fn out_channels(&self) -> usize {
        self.spec.out_channels
    }
    /// Group count.
    pub const fn groups(&self) -> usize {
        self.spec.groups
    }
    /// Input channels per group, `C / groups`.
    pub const fn in_channels_per_group(&self) -> usize {
        self.spec.in_channels / self.spec.groups
    }
    /// Output channels per group, `K / groups`.
    pub const fn out_channels_per_group(&self) -> usize {
        self.spec.out_channels / self.spec.groups
    }
    /// Input `[height, width]`.
    pub const fn input_hw(&self) -> [usize; 2] {
        self.spec.input_hw
    }
    /// Kernel `[height, width]`.
    pub const fn kernel_hw(&self) -> [usize; 2] {
        self.spec.kernel_hw
    }
    /// Kernel extent after dilation, `dilation·(k−1)+1` per axis.
    pub const fn dilated_kernel_hw(&self) -> [usize; 2] {
        self.dilated_kernel_hw
    }
    /// `[vertical, horizontal]` stride.
    pub const fn stride(&self) -> [usize; 2] {
        self.spec.stride
    }
    /// `[vertical, horizontal]` dilation.
    pub const fn dilation(&self) -> [usize; 2] {
        self.spec.dilation
    }
    /// Padding per side.
    pub const fn padding(&self) -> Padding {
        self.spec.padding
    }
    /// Activation layout.
    pub const fn layout(&self) -> Layout {
        self.spec.layout
    }
    /// `[out_h, out_w]`.
    pub const fn output_hw(&self) -> [usize; 2] {
        self.output_hw
    }
    /// Elements of the input tensor.
    pub const fn input_len(&self) -> usize {
        self.input_len
    }
    /// Elements of the OIHW weight tensor.
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
    /// Products summed into each output: `(C/groups)·KH·KW`.
    pub const fn reduction_len(&self) -> usize {
        self.in_channels_per_group() * self.spec.kernel_hw[0] * self.spec.kernel_hw[1]
    }
    /// Floating-point operations of the direct method, `2·N·K·(C/groups)·OH·OW·KH·KW`.
    pub const fn flops(&self) -> u64 {
        self.flops
    }

    /// Flat index of input element `(n, c, y, x)` in this shape's layout.
    pub const fn input_index(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        let spec = &self.spec;
        flat_index(spec.layout, spec.in_channels, spec.input_hw, (n, c, y, x))
    }

    /// Flat index of output element `(n, k, y, x)` in this shape's layout.
    pub const fn output_index(&self, n: usize, k: usize, y: usize, x: usize) -> usize {
        let spec = &self.spec;
        flat_index(spec.layout, spec.out_channels, self.output_hw, (n, k, y, x))
    }

    /// `(n, k, y, x)` of the output element at flat index `index` (inverse of
    /// [`ConvShape::output_index`]).
    pub const fn output_coords(&self, index: usize) -> (usize, usize, usize, usize) {
        flat_coords(
            self.spec.layout,
            self.spec.out_channels,
            self.output_hw,
            index,
        )
    }

    /// Flat index of weight `(k, c_in_group, ky, kx)` in OIHW order.
    pub const fn weight_index(&self, k: usize, c: usize, ky: usize, kx: usize) -> usize {
        let [kh, kw] = self.spec.kernel_hw;
        ((k * self.in_channels_per_group() + c) * kh + ky) * kw + kx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_follows_the_pytorch_formula() {
        let spec = ConvSpec::new(1, 3, 8, [7, 10], [3, 2])
            .stride([2, 3])
            .dilation([2, 1])
            .padding(Padding {
                top: 1,
                bottom: 0,
                left: 2,
                right: 1,
            });
        // (7 + 1 + 0 - 2*2 - 1)/2 + 1 = 2 ; (10 + 3 - 1*1 - 1)/3 + 1 = 4
        assert_eq!(spec.output_hw(), Ok([2, 4]));
        assert_eq!(spec.flops(), Ok(2 * 8 * 3 * 2 * 4 * 3 * 2));
    }

    #[test]
    fn kernel_larger_than_padded_input_names_both_sizes() {
        let err = ConvSpec::new(1, 1, 1, [4, 8], [5, 5])
            .dilation([2, 2])
            .output_hw()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel 5x5 dilated to 9x9 is larger than the padded input 4x8"
        );
    }

    #[test]
    fn zero_fields_and_group_mismatch_are_errors() {
        let base = ConvSpec::new(1, 4, 6, [5, 5], [3, 3]);
        assert_eq!(
            base.stride([0, 1]).output_hw(),
            Err(ConvError::ZeroDimension {
                field: "vertical stride"
            })
        );
        assert_eq!(
            base.groups(0).output_hw(),
            Err(ConvError::ZeroDimension { field: "groups" })
        );
        assert_eq!(
            base.groups(4).output_hw(),
            Err(ConvError::GroupsMismatch {
                field: "out_channels",
                channels: 6,
                groups: 4
            })
        );
    }

    #[test]
    fn overflowing_products_are_errors() {
        let huge = usize::MAX / 2;
        assert!(matches!(
            ConvSpec::new(huge, huge, 1, [1, 1], [1, 1]).input_len(),
            Err(ConvError::Overflow { .. })
        ));
        assert!(matches!(
            ConvSpec::new(1, 1, 1, [huge, 1], [3, 1])
                .padding(Padding::symmetric([huge, 0]))
                .output_hw(),
            Err(ConvError::Overflow { .. })
        ));
        assert!(matches!(
            ConvSpec::new(1, 1, 1, [8, 8], [3, 3])
                .dilation([usize::MAX, 1])
                .output_hw(),
            Err(ConvError::Overflow { .. })
        ));
    }

    #[test]
    fn output_coords_invert_output_index() {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let shape = ConvSpec::new(2, 3, 5, [4, 6], [1, 2])
                .layout(layout)
                .shape()
                .unwrap();
            for index in 0..shape.output_len() {
                let (n, k, y, x) = shape.output_coords(index);
                assert_eq!(shape.output_index(n, k, y, x), index);
            }
        }
    }
}
