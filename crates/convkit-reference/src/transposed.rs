//! The reference transposed convolution (`ConvTranspose2d`): the formula in
//! `convkit_core::TransposedSpec`'s module, written as plain loops in f64, each output
//! gathered from the input pixels whose scatter reaches it.

use crate::ExactOutput;
use convkit_core::{Activation, ConvError, Element, TransposedShape, TransposedSpec};

/// Computes output `(n, o, oy, ox)` of `shape` before the activation: `bias[o]` plus every
/// `in[n][c][iy][ix] · w[c][o mod (O/g)][ky][kx]` with `iy·sh + ky·dh = oy + pad_top` and
/// `ix·sw + kx·dw = ox + pad_left`, over the input channels `c` of `o`'s group.
///
/// Slices must have the shape's lengths (weights `[in][out / groups][kh][kw]`); indices must
/// be in range.
pub fn transposed_output<T: Element>(
    shape: &TransposedShape,
    input: &[T],
    weights: &[T],
    bias: Option<&[T]>,
    (n, o, oy, ox): (usize, usize, usize, usize),
) -> ExactOutput {
    let spec = shape.spec();
    let [in_h, in_w] = spec.input_hw();
    let [kernel_h, kernel_w] = spec.kernel_hw();
    let [stride_h, stride_w] = spec.stride_hw();
    let [dilation_h, dilation_w] = spec.dilation_hw();
    let padding = spec.padding_sides();
    let inputs_per_group = spec.in_channels() / spec.group_count();
    let outputs_per_group = spec.out_channels() / spec.group_count();
    let group = o / outputs_per_group;
    // The input pixel whose scatter puts tap `k` on padded position `padded`, if any.
    let source = |padded: usize, k: usize, dilation: usize, stride: usize, len: usize| {
        padded
            .checked_sub(k * dilation)
            .filter(|offset| offset % stride == 0)
            .map(|offset| offset / stride)
            .filter(|&at| at < len)
    };

    let bias = bias.map_or(0.0, |b| b[o].to_f64_exact());
    let mut exact = ExactOutput {
        sum: bias,
        magnitude: bias.abs(),
    };
    for c in group * inputs_per_group..(group + 1) * inputs_per_group {
        for ky in 0..kernel_h {
            let Some(iy) = source(oy + padding.top, ky, dilation_h, stride_h, in_h) else {
                continue;
            };
            for kx in 0..kernel_w {
                let Some(ix) = source(ox + padding.left, kx, dilation_w, stride_w, in_w) else {
                    continue;
                };
                let pixel = input[shape.input_index(n, c, iy, ix)].to_f64_exact();
                let weight =
                    weights[shape.weight_index(c, o % outputs_per_group, ky, kx)].to_f64_exact();
                exact.sum += pixel * weight;
                exact.magnitude += (pixel * weight).abs();
            }
        }
    }
    exact
}

/// The reference transposed convolution: validates every length, then writes every output as
/// `activation(transposed_output(..).sum)` rounded once to `T`. On error the output is
/// untouched.
pub fn transposed<T: Element>(
    spec: &TransposedSpec,
    input: &[T],
    weights: &[T],
    bias: Option<&[T]>,
    activation: Activation,
    output: &mut [T],
) -> Result<(), ConvError> {
    let shape = spec.shape()?;
    activation.validate()?;
    let lengths = [
        ("input", input.len(), shape.input_len()),
        ("weights", weights.len(), shape.weight_len()),
        ("output", output.len(), shape.output_len()),
    ];
    let bias_length = bias.map(|b| ("bias", b.len(), shape.bias_len()));
    for (buffer, actual, expected) in lengths.into_iter().chain(bias_length) {
        if actual != expected {
            return Err(ConvError::BufferLength {
                buffer,
                expected,
                actual,
            });
        }
    }
    for (index, value) in output.iter_mut().enumerate() {
        let exact = transposed_output(&shape, input, weights, bias, shape.output_coords(index));
        *value = T::from_f64_rounded(activation.apply_f64(exact.sum));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use convkit_core::{Layout, Padding};

    /// The output of `spec` on `input` and `weights`, without bias or activation.
    fn run(spec: TransposedSpec, input: &[f32], weights: &[f32]) -> Vec<f32> {
        let mut output = vec![f32::NAN; spec.shape().unwrap().output_len()];
        transposed(&spec, input, weights, None, Activation::None, &mut output).unwrap();
        output
    }

    // Hand-computed cases pinning PyTorch's ConvTranspose2d / ONNX ConvTranspose semantics
    // (each also checked against torch.nn.functional.conv_transpose2d 2.15; asymmetric
    // padding as the symmetric result cropped), on one row: x = [1, 2], kernel [1, 10, 100]
    // unless stated.
    const ROW: [f32; 2] = [1.0, 2.0];
    const TAPS: [f32; 3] = [1.0, 10.0, 100.0];

    #[test]
    fn stride_scatters_each_input_times_the_kernel() {
        // x0·w at 0..2, x1·w at 2..4: (2 − 1)·2 + 3 = 5 outputs.
        let spec = TransposedSpec::new(1, 1, 1, [1, 2], [1, 3]).stride([1, 2]);
        assert_eq!(run(spec, &ROW, &TAPS), [1.0, 10.0, 102.0, 20.0, 200.0]);
    }

    #[test]
    fn asymmetric_padding_crops_each_side() {
        // The 5-output scatter above without its first value and its last two.
        let spec = TransposedSpec::new(1, 1, 1, [1, 2], [1, 3])
            .stride([1, 2])
            .padding(Padding {
                top: 0,
                bottom: 0,
                left: 1,
                right: 2,
            });
        assert_eq!(run(spec, &ROW, &TAPS), [10.0, 102.0]);
    }

    #[test]
    fn output_padding_adds_trailing_outputs() {
        // One more column at the right, which no tap reaches: 0.
        let spec = TransposedSpec::new(1, 1, 1, [1, 2], [1, 3])
            .stride([1, 2])
            .output_padding([0, 1]);
        assert_eq!(run(spec, &ROW, &TAPS), [1.0, 10.0, 102.0, 20.0, 200.0, 0.0]);
        // With padding 1 on the right, the extra column is the scatter's last one.
        let spec = spec.padding(Padding {
            top: 0,
            bottom: 0,
            left: 0,
            right: 1,
        });
        assert_eq!(run(spec, &ROW, &TAPS), [1.0, 10.0, 102.0, 20.0, 200.0]);
        // Output padding may reach the stride while it stays below the dilation.
        let spec = TransposedSpec::new(1, 1, 1, [1, 2], [1, 2])
            .dilation([1, 3])
            .output_padding([0, 2]);
        assert_eq!(
            run(spec, &ROW, &[1.0, 10.0]),
            [1.0, 2.0, 0.0, 10.0, 20.0, 0.0, 0.0]
        );
    }

    #[test]
    fn dilation_spreads_the_taps() {
        // Stride 1, kernel [1, 10] at dilation 2: x0 at 0 and 2, x1 at 1 and 3.
        let spec = TransposedSpec::new(1, 1, 1, [1, 2], [1, 2]).dilation([1, 2]);
        assert_eq!(run(spec, &ROW, &[1.0, 10.0]), [1.0, 2.0, 10.0, 20.0]);
    }

    #[test]
    fn weights_are_in_by_out_per_group_and_groups_keep_to_themselves() {
        // 1x1 kernels. One group, 2 inputs → 3 outputs: w[c][o] = 10^o·(c + 1),
        // out[o] = Σ_c x[c]·w[c][o].
        let weights = [1.0, 10.0, 100.0, 2.0, 20.0, 200.0];
        let spec = TransposedSpec::new(1, 2, 3, [1, 1], [1, 1]);
        assert_eq!(run(spec, &ROW, &weights), [5.0, 50.0, 500.0]);
        // Two groups, 2 inputs → 4 outputs, 2 per group: w[c][o] for o of c's group only.
        let weights = [1.0, 10.0, 100.0, 1000.0];
        let spec = TransposedSpec::new(1, 2, 4, [1, 1], [1, 1]).groups(2);
        assert_eq!(run(spec, &ROW, &weights), [1.0, 10.0, 200.0, 2000.0]);
    }

    #[test]
    fn nhwc_is_nchw_reordered_and_bias_activation_follow_the_sum() {
        // 2 input channels, 2x1 image, kernel 2x1 stride 2: 4x1 outputs of 1 channel.
        let x_nchw = [1.0f32, 2.0, 3.0, 4.0]; // c0: [1, 2], c1: [3, 4]
        let x_nhwc = [1.0f32, 3.0, 2.0, 4.0];
        let weights = [1.0f32, 10.0, 100.0, 1000.0]; // w[c][0][ky][0]
        let spec = TransposedSpec::new(1, 2, 1, [2, 1], [2, 1]).stride([2, 1]);
        // oy 0: x[0][0]·1 + x[1][0]·100 = 301, oy 1: 10 + 3000, oy 2: 2 + 400, oy 3: 20 + 4000.
        let expected = [301.0, 3010.0, 402.0, 4020.0];
        assert_eq!(run(spec, &x_nchw, &weights), expected);
        assert_eq!(run(spec.layout(Layout::Nhwc), &x_nhwc, &weights), expected);
        let mut output = [0.0f32; 4];
        transposed(
            &spec,
            &x_nchw,
            &weights,
            Some(&[-1000.0]),
            Activation::Relu,
            &mut output,
        )
        .unwrap();
        assert_eq!(output, [0.0, 2010.0, 0.0, 3020.0]);
    }

    #[test]
    fn errors_leave_the_output_untouched() {
        let spec = TransposedSpec::new(1, 1, 1, [1, 2], [1, 3]).stride([1, 2]);
        let mut output = [7.0f32; 5];
        let short = transposed(&spec, &ROW[..1], &TAPS, None, Activation::None, &mut output);
        assert!(matches!(
            short,
            Err(ConvError::BufferLength {
                buffer: "input",
                ..
            })
        ));
        let bias = transposed(&spec, &ROW, &TAPS, Some(&[]), Activation::None, &mut output);
        assert!(matches!(
            bias,
            Err(ConvError::BufferLength { buffer: "bias", .. })
        ));
        assert_eq!(output, [7.0; 5]);
    }
}
