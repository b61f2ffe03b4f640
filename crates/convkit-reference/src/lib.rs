//! The reference convolution: the definition of correct for every other convkit algorithm.
//!
//! It is the lecture's formula written as plain loops, for every parameter convkit accepts
//! (batch, per-axis stride and dilation, asymmetric padding, groups, NCHW and NHWC, bias and
//! activation), generic over the element type and accumulating in f64:
//!
//! ```text
//! out[n][k][oy][ox] = act( bias[k] + Σ_{c < C/g} Σ_{ky < KH} Σ_{kx < KW}
//!     in[n][g·C/g + c][oy·sh + ky·dh − pad_top][ox·sw + kx·dw − pad_left] · w[k][c][ky][kx] )
//! ```
//!
//! where `g = k / (K/groups)` is the group of output channel `k` and input pixels outside the
//! image are zero. It is cross-correlation: the kernel is not flipped.
#![deny(unsafe_code)]

pub mod backward;
pub mod transposed;

use convkit_core::{
    Accuracy, Activation, Algorithm, ConvAlgorithm, ConvError, ConvPlan, ConvShape, ConvSpec, Cost,
    Element, Isa, PlanRequest,
};
use rayon::prelude::*;

/// One output before the activation, in f64: the sum and the magnitude it was built from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExactOutput {
    /// `bias[k] + Σ x·w`, accumulated in f64 from the stored (already rounded) inputs.
    pub sum: f64,
    /// `|bias[k]| + Σ |x·w|`: the scale error bounds are relative to.
    pub magnitude: f64,
}

/// Computes output `(n, k, oy, ox)` of `shape` before the activation.
///
/// Slices must have the shape's lengths (`bias`: one per output channel); indices must be in
/// range. This is the formula in the crate documentation, term by term.
pub fn exact_output<T: Element>(
    shape: &ConvShape,
    input: &[T],
    weights: &[T],
    bias: Option<&[T]>,
    (n, k, oy, ox): (usize, usize, usize, usize),
) -> ExactOutput {
    let [in_h, in_w] = shape.input_hw();
    let [kernel_h, kernel_w] = shape.kernel_hw();
    let [stride_h, stride_w] = shape.stride();
    let [dilation_h, dilation_w] = shape.dilation();
    let padding = shape.padding();
    let channels_per_group = shape.in_channels_per_group();
    let group = k / shape.out_channels_per_group();

    let bias = bias.map_or(0.0, |b| b[k].to_f64_exact());
    let mut sum = bias;
    let mut magnitude = bias.abs();
    for c in 0..channels_per_group {
        let input_channel = group * channels_per_group + c;
        for ky in 0..kernel_h {
            // Row in padded coordinates; rows inside the top or bottom padding contribute zero.
            let padded_y = oy * stride_h + ky * dilation_h;
            if padded_y < padding.top || padded_y - padding.top >= in_h {
                continue;
            }
            let y = padded_y - padding.top;
            for kx in 0..kernel_w {
                let padded_x = ox * stride_w + kx * dilation_w;
                if padded_x < padding.left || padded_x - padding.left >= in_w {
                    continue;
                }
                let x = padded_x - padding.left;
                let pixel = input[shape.input_index(n, input_channel, y, x)].to_f64_exact();
                let weight = weights[shape.weight_index(k, c, ky, kx)].to_f64_exact();
                sum += pixel * weight;
                magnitude += (pixel * weight).abs();
            }
        }
    }
    ExactOutput { sum, magnitude }
}

/// What a tile-based method (Winograd) mixes into one output, from the window widened by a
/// halo: see [`neighborhood`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighborhood {
    /// The typical `Σ|x·w|` of the finite values, in units of one window.
    pub magnitude: f64,
    /// Whether an input or weight in it is NaN or infinite.
    pub non_finite: bool,
}

/// The neighborhood of output `(n, k, oy, ox)`: `Σ_c mean|w[k][c]| · Σ|x[c]|` over the window
/// widened by `halo` pixels on every side (padding counts as zero), scaled by
/// `KH·KW / widened area` — the magnitude of the data a tile-based method (Winograd) mixes
/// into this output, in units of one window — over its finite values, and whether it holds a
/// non-finite one.
pub fn neighborhood<T: Element>(
    shape: &ConvShape,
    input: &[T],
    weights: &[T],
    (n, k, oy, ox): (usize, usize, usize, usize),
    halo: usize,
) -> Neighborhood {
    let [in_h, in_w] = shape.input_hw();
    let [kernel_h, kernel_w] = shape.kernel_hw();
    let [extent_h, extent_w] = shape.dilated_kernel_hw();
    let [stride_h, stride_w] = shape.stride();
    let padding = shape.padding();
    let channels_per_group = shape.in_channels_per_group();
    let group = k / shape.out_channels_per_group();
    // Widened window in padded coordinates, clipped to the image.
    let rows = (oy * stride_h).saturating_sub(halo).max(padding.top)
        ..(oy * stride_h + extent_h + halo).min(padding.top + in_h);
    let cols = (ox * stride_w).saturating_sub(halo).max(padding.left)
        ..(ox * stride_w + extent_w + halo).min(padding.left + in_w);
    let mut magnitude = 0.0;
    let mut non_finite = false;
    // Sums of |v| over the finite values; whether any was not finite.
    let mut finite_sum = |values: &mut dyn Iterator<Item = f64>| {
        values.fold(0.0, |sum, v| {
            if v.is_finite() {
                sum + v.abs()
            } else {
                non_finite = true;
                sum
            }
        })
    };
    for c in 0..channels_per_group {
        let input_channel = group * channels_per_group + c;
        let weight_sum = finite_sum(&mut (0..kernel_h * kernel_w).map(|tap| {
            weights[shape.weight_index(k, c, tap / kernel_w, tap % kernel_w)].to_f64_exact()
        }));
        let pixel_sum = finite_sum(&mut rows.clone().flat_map(|y| {
            cols.clone().map(move |x| {
                input[shape.input_index(n, input_channel, y - padding.top, x - padding.left)]
                    .to_f64_exact()
            })
        }));
        magnitude += weight_sum / (kernel_h * kernel_w) as f64 * pixel_sum;
    }
    let area = ((extent_h + 2 * halo) * (extent_w + 2 * halo)) as f64;
    Neighborhood {
        magnitude: magnitude * (kernel_h * kernel_w) as f64 / area,
        non_finite,
    }
}

/// The reference convolution, sequential: validates every length, then writes every output as
/// `activation(exact_output(..).sum)` rounded once to `T`. On error the output is untouched.
pub fn conv2d<T: Element>(
    spec: &ConvSpec,
    input: &[T],
    weights: &[T],
    bias: Option<&[T]>,
    activation: Activation,
    output: &mut [T],
) -> Result<(), ConvError> {
    let request = PlanRequest::new(spec, weights, bias, activation, Isa::Scalar)?;
    let plan = ReferencePlan::from_request(&request);
    plan.check_buffers(input, output)?;
    plan.write_outputs(input, 0, output);
    Ok(())
}

/// The reference as a convkit algorithm (`Algorithm::Reference`): every problem, every element
/// type, parallel over output chunks in the caller's rayon pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

/// Outputs per parallel task: large enough to amortize scheduling, small enough to balance.
const OUTPUTS_PER_TASK: usize = 512;

/// Rough throughput of the f64 loops, for `Algorithm::Auto`'s cost model.
const ESTIMATED_FLOPS_PER_SECOND: f64 = 1.0e9;

impl<T: Element> ConvAlgorithm<T> for Reference {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Reference
    }

    fn isas(&self) -> &'static [Isa] {
        &[Isa::Scalar]
    }

    fn accuracy(&self, shape: &ConvShape) -> Accuracy {
        // f64 summation of the products and the bias, then one rounding to T (accounted for
        // separately by the harness).
        Accuracy::summation(shape.reduction_len() + 1, f64::EPSILON / 2.0)
    }

    fn cost(&self, shape: &ConvShape, _isa: Isa) -> Result<Cost, ConvError> {
        Ok(Cost::analytic(
            shape.flops() as f64 / ESTIMATED_FLOPS_PER_SECOND,
        ))
    }

    fn prepare(&self, request: &PlanRequest<'_, T>) -> Result<Box<dyn ConvPlan<T>>, ConvError> {
        Ok(Box::new(ReferencePlan::from_request(request)))
    }
}

/// A reference plan: owns copies of the weights and bias.
#[derive(Debug)]
struct ReferencePlan<T> {
    shape: ConvShape,
    weights: Vec<T>,
    bias: Option<Vec<T>>,
    activation: Activation,
}

impl<T: Element> ReferencePlan<T> {
    fn from_request(request: &PlanRequest<'_, T>) -> ReferencePlan<T> {
        ReferencePlan {
            shape: *request.shape(),
            weights: request.weights().to_vec(),
            bias: request.bias().map(<[T]>::to_vec),
            activation: request.activation(),
        }
    }

    fn check_buffers(&self, input: &[T], output: &[T]) -> Result<(), ConvError> {
        for (buffer, expected, actual) in [
            ("input", self.shape.input_len(), input.len()),
            ("output", self.shape.output_len(), output.len()),
        ] {
            if expected != actual {
                return Err(ConvError::BufferLength {
                    buffer,
                    expected,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// Writes the outputs at flat indices `first..first + output.len()`.
    fn write_outputs(&self, input: &[T], first: usize, output: &mut [T]) {
        for (offset, out) in output.iter_mut().enumerate() {
            let coords = self.shape.output_coords(first + offset);
            let exact = exact_output(
                &self.shape,
                input,
                &self.weights,
                self.bias.as_deref(),
                coords,
            );
            *out = T::from_f64_rounded(self.activation.apply_f64(exact.sum));
        }
    }
}

impl<T: Element> ConvPlan<T> for ReferencePlan<T> {
    fn shape(&self) -> &ConvShape {
        &self.shape
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Reference
    }

    fn isa(&self) -> Isa {
        Isa::Scalar
    }

    fn scratch_len(&self) -> usize {
        0
    }

    fn plan_bytes(&self) -> usize {
        let elements = self.weights.len() + self.bias.as_ref().map_or(0, Vec::len);
        elements * std::mem::size_of::<T>()
    }

    fn execute(&self, input: &[T], output: &mut [T], _scratch: &mut [f32]) {
        output
            .par_chunks_mut(OUTPUTS_PER_TASK)
            .enumerate()
            .for_each(|(task, chunk)| self.write_outputs(input, task * OUTPUTS_PER_TASK, chunk));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convkit_core::{Layout, Padding};

    #[test]
    fn single_channel_valid_convolution_by_hand() {
        // 3x3 input, 2x2 kernel: each output is the dot product of a 2x2 window.
        let input = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let weights = [1.0f32, 0.0, 0.0, -1.0];
        let mut output = [f32::NAN; 4];
        let spec = ConvSpec::new(1, 1, 1, [3, 3], [2, 2]);
        conv2d(&spec, &input, &weights, None, Activation::None, &mut output).unwrap();
        assert_eq!(output, [1.0 - 5.0, 2.0 - 6.0, 4.0 - 8.0, 5.0 - 9.0]);
    }

    #[test]
    fn errors_leave_the_output_untouched() {
        let spec = ConvSpec::new(1, 1, 1, [3, 3], [2, 2]);
        let mut output = [7.0f64; 4];
        let err = conv2d(
            &spec,
            &[0.0; 8],
            &[0.0; 4],
            None,
            Activation::None,
            &mut output,
        );
        assert_eq!(
            err,
            Err(ConvError::BufferLength {
                buffer: "input",
                expected: 9,
                actual: 8
            })
        );
        assert_eq!(output, [7.0; 4]);
    }

    #[test]
    fn padding_only_outputs_are_the_activated_bias() {
        // 1x1 input, 1x1 kernel, padding 1: the 8 border outputs see only zeros.
        let spec = ConvSpec::new(1, 1, 1, [1, 1], [1, 1])
            .padding(Padding::symmetric([1, 1]))
            .layout(Layout::Nhwc);
        let mut output = [half::f16::NAN; 9];
        conv2d(
            &spec,
            &[half::f16::from_f32(2.0)],
            &[half::f16::from_f32(3.0)],
            Some(&[half::f16::from_f32(-1.0)]),
            Activation::Relu,
            &mut output,
        )
        .unwrap();
        let values: Vec<f32> = output.iter().map(|v| v.to_f32()).collect();
        assert_eq!(values, [0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
