//! The gradients of the reference convolution: what correct means for backward-data and
//! backward-weights, as plain loops accumulating in f64.
//!
//! The forward convolution is a sum of terms `x[i] · w[j]` into `y[o]`, one term for every
//! (input pixel, weight, output) triple that the formula in the crate documentation pairs
//! (padding pairs none). Its gradients with respect to a loss `L` whose gradient at the
//! output is `dy` are the same terms read the other way:
//!
//! ```text
//! dx[i] = Σ_{(i, j, o)} dy[o] · w[j]        (backward-data)
//! dw[j] = Σ_{(i, j, o)} x[i] · dy[o]        (backward-weights)
//! db[k] = Σ_{n, oy, ox} dy[n][k][oy][ox]    (bias)
//! ```
//!
//! so that `<conv(x, w), dy> = <x, dx> = <w, dw>` (the adjoint identities the tests check).
//! Each gradient comes as [`ExactOutput`]s: the f64 sum and `Σ|term|`, the scale the error
//! bound of a fast implementation is relative to.

use crate::ExactOutput;
use convkit_core::{ConvShape, Element};

/// Visits every term of `shape`'s convolution as `(input index, weight index, output index)`,
/// indices into the flat tensors in the shape's layout (weights OIHW).
pub fn for_each_term(shape: &ConvShape, mut visit: impl FnMut(usize, usize, usize)) {
    let [in_h, in_w] = shape.input_hw();
    let [out_h, out_w] = shape.output_hw();
    let [kernel_h, kernel_w] = shape.kernel_hw();
    let [stride_h, stride_w] = shape.stride();
    let [dilation_h, dilation_w] = shape.dilation();
    let padding = shape.padding();
    let channels_per_group = shape.in_channels_per_group();
    let outputs_per_group = shape.out_channels_per_group();
    // Input coordinate of padded coordinate `padded` along an axis of `len` pixels starting
    // after `pad` pixels of padding, if it is inside the image.
    let inside =
        |padded: usize, pad: usize, len: usize| padded.checked_sub(pad).filter(|&at| at < len);
    for n in 0..shape.batch() {
        for k in 0..shape.out_channels() {
            let group = k / outputs_per_group;
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let output = shape.output_index(n, k, oy, ox);
                    for c in 0..channels_per_group {
                        let input_channel = group * channels_per_group + c;
                        for ky in 0..kernel_h {
                            let Some(y) =
                                inside(oy * stride_h + ky * dilation_h, padding.top, in_h)
                            else {
                                continue;
                            };
                            for kx in 0..kernel_w {
                                let Some(x) =
                                    inside(ox * stride_w + kx * dilation_w, padding.left, in_w)
                                else {
                                    continue;
                                };
                                visit(
                                    shape.input_index(n, input_channel, y, x),
                                    shape.weight_index(k, c, ky, kx),
                                    output,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds `a · b` to a sum and its magnitude.
fn accumulate(into: &mut ExactOutput, a: f64, b: f64) {
    into.sum += a * b;
    into.magnitude += (a * b).abs();
}

fn zeros(len: usize) -> Vec<ExactOutput> {
    vec![
        ExactOutput {
            sum: 0.0,
            magnitude: 0.0,
        };
        len
    ]
}

/// Asserts that `slice` has `expected` elements (the reference's callers are tests: a wrong
/// length is their bug, named here).
fn check_len<T>(name: &str, slice: &[T], expected: usize) {
    assert_eq!(
        slice.len(),
        expected,
        "{name} has {} elements, the shape needs {expected}",
        slice.len()
    );
}

/// The gradient with respect to the input, `dx[i] = Σ dy[o] · w[j]`, in the input's layout.
///
/// # Panics
/// If `grad_output` or `weights` does not have the shape's output or weight length.
pub fn backward_data<T: Element>(
    shape: &ConvShape,
    grad_output: &[T],
    weights: &[T],
) -> Vec<ExactOutput> {
    check_len("grad_output", grad_output, shape.output_len());
    check_len("weights", weights, shape.weight_len());
    let mut grad_input = zeros(shape.input_len());
    for_each_term(shape, |input, weight, output| {
        accumulate(
            &mut grad_input[input],
            grad_output[output].to_f64_exact(),
            weights[weight].to_f64_exact(),
        );
    });
    grad_input
}

/// The gradients with respect to the weights (OIHW) and the bias.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightGradients {
    /// `dw[j] = Σ x[i] · dy[o]`, OIHW.
    pub weights: Vec<ExactOutput>,
    /// `db[k] = Σ dy[n][k][..]`, one per output channel.
    pub bias: Vec<ExactOutput>,
}

/// The gradients with respect to the weights and the bias.
///
/// # Panics
/// If `input` or `grad_output` does not have the shape's input or output length.
pub fn backward_weights<T: Element>(
    shape: &ConvShape,
    input: &[T],
    grad_output: &[T],
) -> WeightGradients {
    check_len("input", input, shape.input_len());
    check_len("grad_output", grad_output, shape.output_len());
    let mut weights = zeros(shape.weight_len());
    for_each_term(shape, |input_at, weight, output| {
        accumulate(
            &mut weights[weight],
            input[input_at].to_f64_exact(),
            grad_output[output].to_f64_exact(),
        );
    });
    let mut bias = zeros(shape.bias_len());
    for (index, value) in grad_output.iter().enumerate() {
        let (_, k, _, _) = shape.output_coords(index);
        accumulate(&mut bias[k], value.to_f64_exact(), 1.0);
    }
    WeightGradients { weights, bias }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convkit_core::{ConvSpec, Layout, Padding};

    fn sums(values: &[ExactOutput]) -> Vec<f64> {
        values.iter().map(|v| v.sum).collect()
    }

    #[test]
    fn stride_two_backward_data_by_hand() {
        // 1 channel, 5 pixels, kernel [1, 2] at stride 2: y0 = x0 + 2·x1, y1 = x2 + 2·x3;
        // x4 is read by no window.
        let shape = ConvSpec::new(1, 1, 1, [1, 5], [1, 2])
            .stride([1, 2])
            .shape()
            .unwrap();
        let grad = backward_data::<f32>(&shape, &[10.0, 100.0], &[1.0, 2.0]);
        assert_eq!(sums(&grad), [10.0, 20.0, 100.0, 200.0, 0.0]);
    }

    #[test]
    fn padded_backward_weights_and_bias_by_hand() {
        // 1 channel, 3 pixels, kernel [1, 3], padding 1 on each side, 2 output channels
        // sharing the input: dw[k][kx] = Σ_ox x[ox + kx − 1] · dy[k][ox].
        let shape = ConvSpec::new(1, 1, 2, [1, 3], [1, 3])
            .padding(Padding {
                top: 0,
                bottom: 0,
                left: 1,
                right: 1,
            })
            .layout(Layout::Nhwc)
            .shape()
            .unwrap();
        let input = [1.0f32, 2.0, 3.0];
        // NHWC: (pixel, channel) pairs; channel 0 gets [1, 0, 0], channel 1 [0, 0, 1].
        let grad_output = [1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0];
        let grads = backward_weights(&shape, &input, &grad_output);
        // k 0: only ox 0, reading x[-1] (padding), x0, x1. k 1: only ox 2: x1, x2, x[3].
        assert_eq!(sums(&grads.weights), [0.0, 1.0, 2.0, 2.0, 3.0, 0.0]);
        assert_eq!(sums(&grads.bias), [1.0, 1.0]);
    }
}
