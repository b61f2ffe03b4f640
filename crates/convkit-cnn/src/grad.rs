//! A convolution's gradients, computed as two more convolutions through convkit's plans.
//!
//! For the forward pass `y = conv(x, w)` (NCHW, one group, stride `s`, dilation `d`, padding
//! `p` per side, kernel `k`), with `x` of shape `[N, C, H, W]`, `w` of `[O, C, KH, KW]` and
//! `y` of `[N, O, OH, OW]`:
//!
//! - **Input gradient.** `dx[n,c,i] = Σ_{o,t} dy[n,o,(i + p − t·d)/s] · w[o,c,t]` over the
//!   `t` for which the division is exact. Spreading `dy` onto a grid `s` times finer (zeros
//!   between, [`upsample`]) turns this into a plain convolution of that grid with the kernel
//!   flipped and its channel axes swapped (`w'[c,o,t] = w[o,c,k−1−t]`), dilation `d`, padding
//!   `d·(k−1) − p_begin` before and `H + p_begin − Hu` after (`Hu` the fine grid's size).
//!   It needs every padding side ≤ `d·(k−1)` (wider padding only pads outputs nobody reads).
//! - **Weight gradient.** `dw[o,c,t] = Σ_{n,j} dy[n,o,j] · x[n,c,j·s − p + t·d]`: a
//!   convolution whose batch is the input channels and whose channels are the batch —
//!   input `xᵀ` of shape `[C, N, H, W]`, kernel `dyᵀ` of shape `[O, N, OH, OW]`, stride `d`,
//!   dilation `s`, the forward padding — giving `[C, O, KH', KW']` with `KH' ≥ KH`; the first
//!   `KH × KW` of each are `dw`, transposed back to OIHW.
//!
//! Both run with whatever algorithm the options choose, so the backward pass gets the same
//! kernels (and the same verification) as the forward one. Generic over the element type:
//! the tests run them in f64, against finite differences.

use crate::CnnError;
use convkit::{ConvShape, ConvSpec, Layout, Padding, PlanOptions, Registered};

/// Checks that `spec` is a forward convolution whose gradients this module computes.
fn backward_shape(spec: &ConvSpec) -> Result<ConvShape, CnnError> {
    let shape = spec.shape()?;
    if shape.groups() != 1 {
        return Err(CnnError::Config(format!(
            "gradients are implemented for one group, not {}",
            shape.groups()
        )));
    }
    if spec.activation_layout() != Layout::Nchw {
        return Err(CnnError::Config(
            "gradients are implemented for NCHW".into(),
        ));
    }
    Ok(shape)
}

/// The convolution that computes the input gradient (over [`upsample`]d output gradients,
/// with [`flipped_transposed`] weights).
pub fn input_grad_spec(spec: &ConvSpec) -> Result<ConvSpec, CnnError> {
    let shape = backward_shape(spec)?;
    let [h, w] = shape.input_hw();
    let [kh, kw] = shape.kernel_hw();
    let [dh, dw] = shape.dilation();
    let [hu, wu] = upsampled_hw(&shape);
    let pad = shape.padding();
    let (extent_h, extent_w) = (dh * (kh - 1), dw * (kw - 1));
    if pad.top.max(pad.bottom) > extent_h || pad.left.max(pad.right) > extent_w {
        return Err(CnnError::Config(format!(
            "input gradient needs padding within the dilated kernel's reach \
             ({extent_h} rows, {extent_w} columns), got {pad:?}"
        )));
    }
    Ok(ConvSpec::new(
        shape.batch(),
        shape.out_channels(),
        shape.in_channels(),
        [hu, wu],
        [kh, kw],
    )
    .dilation([dh, dw])
    .padding(Padding {
        top: extent_h - pad.top,
        bottom: h + pad.top - hu,
        left: extent_w - pad.left,
        right: w + pad.left - wu,
    }))
}

/// The convolution that computes the weight gradient (before cropping to the kernel).
pub fn weight_grad_spec(spec: &ConvSpec) -> Result<ConvSpec, CnnError> {
    let shape = backward_shape(spec)?;
    Ok(ConvSpec::new(
        shape.in_channels(),
        shape.batch(),
        shape.out_channels(),
        shape.input_hw(),
        shape.output_hw(),
    )
    .stride(shape.dilation())
    .dilation(shape.stride())
    .padding(shape.padding()))
}

/// Size of the output gradient spread onto the stride-1 grid.
fn upsampled_hw(shape: &ConvShape) -> [usize; 2] {
    let [oh, ow] = shape.output_hw();
    let [sh, sw] = shape.stride();
    [(oh - 1) * sh + 1, (ow - 1) * sw + 1]
}

/// `grad_output` (`[N, O, OH, OW]`) spread onto the stride-1 grid, zeros between.
pub fn upsample<T: Registered>(shape: &ConvShape, grad_output: &[T]) -> Vec<T> {
    let [oh, ow] = shape.output_hw();
    let [sh, sw] = shape.stride();
    let [hu, wu] = upsampled_hw(shape);
    let mut fine = vec![T::zero(); shape.batch() * shape.out_channels() * hu * wu];
    for (plane, coarse) in fine
        .chunks_exact_mut(hu * wu)
        .zip(grad_output.chunks_exact(oh * ow))
    {
        for (y, row) in coarse.chunks_exact(ow).enumerate() {
            let fine_row = &mut plane[y * sh * wu..];
            for (x, &value) in row.iter().enumerate() {
                fine_row[x * sw] = value;
            }
        }
    }
    fine
}

/// OIHW weights `[O, C, KH, KW]` as `[C, O, KH, KW]`, each kernel rotated by 180°.
pub fn flipped_transposed<T: Registered>(shape: &ConvShape, weights: &[T]) -> Vec<T> {
    let (o, c) = (shape.out_channels(), shape.in_channels());
    let [kh, kw] = shape.kernel_hw();
    let taps = kh * kw;
    let mut out = vec![T::zero(); weights.len()];
    for oi in 0..o {
        for ci in 0..c {
            let src = &weights[(oi * c + ci) * taps..][..taps];
            let dst = &mut out[(ci * o + oi) * taps..][..taps];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    out
}

/// Swaps the two leading axes of `[a, b, rest]`.
fn swap_leading<T: Registered>(data: &[T], a: usize, b: usize) -> Vec<T> {
    if a == 1 || b == 1 {
        return data.to_vec();
    }
    let rest = data.len() / (a * b);
    let mut out = vec![T::zero(); data.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * rest..][..rest].copy_from_slice(&data[(i * b + j) * rest..][..rest]);
        }
    }
    out
}

/// Plans and runs one convolution with caller scratch.
fn convolve<T: Registered>(
    spec: &ConvSpec,
    input: &[T],
    weights: &[T],
    options: &PlanOptions,
    scratch: &mut Vec<f32>,
) -> Result<Vec<T>, CnnError> {
    let plan = convkit::plan::<T>(spec, weights, None, options)?;
    if scratch.len() < plan.scratch_len() {
        scratch.resize(plan.scratch_len(), 0.0);
    }
    let mut output = vec![T::zero(); spec.output_len()?];
    plan.run_with_scratch(input, &mut output, scratch)?;
    Ok(output)
}

/// The gradient with respect to the input (`[N, C, H, W]`) of the convolution `spec` with
/// OIHW `weights`, given the gradient with respect to its output (`[N, O, OH, OW]`, after the
/// activation's derivative).
pub fn input_grad<T: Registered>(
    spec: &ConvSpec,
    weights: &[T],
    grad_output: &[T],
    options: &PlanOptions,
    scratch: &mut Vec<f32>,
) -> Result<Vec<T>, CnnError> {
    let shape = backward_shape(spec)?;
    let grad_spec = input_grad_spec(spec)?;
    check_len("weights", shape.weight_len(), weights.len())?;
    check_len("output gradient", shape.output_len(), grad_output.len())?;
    let rotated = flipped_transposed(&shape, weights);
    if shape.stride() == [1, 1] {
        convolve(&grad_spec, grad_output, &rotated, options, scratch)
    } else {
        let fine = upsample(&shape, grad_output);
        convolve(&grad_spec, &fine, &rotated, options, scratch)
    }
}

/// The gradient with respect to the OIHW weights of the convolution `spec` run on `input`,
/// given the gradient with respect to its output (`[N, O, OH, OW]`).
pub fn weight_grad<T: Registered>(
    spec: &ConvSpec,
    input: &[T],
    grad_output: &[T],
    options: &PlanOptions,
    scratch: &mut Vec<f32>,
) -> Result<Vec<T>, CnnError> {
    let shape = backward_shape(spec)?;
    let grad_spec = weight_grad_spec(spec)?;
    check_len("input", shape.input_len(), input.len())?;
    check_len("output gradient", shape.output_len(), grad_output.len())?;
    let (n, c, o) = (shape.batch(), shape.in_channels(), shape.out_channels());
    let inputs_by_channel = swap_leading(input, n, c);
    let kernels = swap_leading(grad_output, n, o);
    let wide = convolve(&grad_spec, &inputs_by_channel, &kernels, options, scratch)?;
    let [kh, kw] = shape.kernel_hw();
    let [wide_h, wide_w] = grad_spec.output_hw()?;
    let mut weights = vec![T::zero(); shape.weight_len()];
    for ci in 0..c {
        for oi in 0..o {
            let src = &wide[(ci * o + oi) * wide_h * wide_w..];
            let dst = &mut weights[(oi * c + ci) * kh * kw..][..kh * kw];
            for (y, row) in dst.chunks_exact_mut(kw).enumerate() {
                row.copy_from_slice(&src[y * wide_w..][..kw]);
            }
        }
    }
    Ok(weights)
}

fn check_len(buffer: &'static str, expected: usize, actual: usize) -> Result<(), CnnError> {
    if expected == actual {
        Ok(())
    } else {
        Err(convkit::ConvError::BufferLength {
            buffer,
            expected,
            actual,
        }
        .into())
    }
}
