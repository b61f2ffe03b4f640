//! `MaxPool2d`: the maximum of each window, with the winner's position kept for backward.

use crate::layer::{Layer, LayerSpec, Mode, check_output_grad, shape_error};
use crate::{CnnError, Tensor};
use rayon::prelude::*;

/// Max pooling over `size` windows moved by `stride` (no padding; a window must fit), in
/// parallel over the `N·C` planes. Backward routes each output gradient to the input that won
/// its window (the first maximum on ties).
#[derive(Debug)]
pub struct MaxPool2d {
    size: [usize; 2],
    stride: [usize; 2],
    /// Input shape and, per output, the winning input's index within its plane.
    saved: Option<([usize; 4], Vec<u32>)>,
}

impl MaxPool2d {
    /// Pooling with a window and a step (`[2, 2]` and `[2, 2]` halve each side).
    pub fn new(size: [usize; 2], stride: [usize; 2]) -> Result<MaxPool2d, CnnError> {
        if size.contains(&0) || stride.contains(&0) {
            return Err(CnnError::Config(format!(
                "pooling window {size:?} and stride {stride:?} must be positive"
            )));
        }
        Ok(MaxPool2d {
            size,
            stride,
            saved: None,
        })
    }
}

impl Layer for MaxPool2d {
    fn spec(&self) -> LayerSpec {
        LayerSpec::MaxPool2d {
            size: self.size,
            stride: self.stride,
        }
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], CnnError> {
        let [n, c, h, w] = input;
        if h < self.size[0] || w < self.size[1] || h * w > u32::MAX as usize {
            return Err(shape_error(
                self,
                format!("planes of at least {:?}", self.size),
                input,
            ));
        }
        Ok([
            n,
            c,
            (h - self.size[0]) / self.stride[0] + 1,
            (w - self.size[1]) / self.stride[1] + 1,
        ])
    }

    fn forward(&mut self, input: Tensor, mode: Mode) -> Result<Tensor, CnnError> {
        let shape = self.output_shape(input.shape())?;
        let [_, _, h, w] = input.shape();
        let [_, _, oh, ow] = shape;
        let ([size_h, size_w], [step_h, step_w]) = (self.size, self.stride);
        let mut output = vec![0.0f32; shape.iter().product()];
        let mut winners = vec![0u32; output.len()];
        output
            .par_chunks_mut(oh * ow)
            .zip(winners.par_chunks_mut(oh * ow))
            .zip(input.data().par_chunks(h * w))
            .for_each(|((out, win), plane)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (y0, x0) = (oy * step_h, ox * step_w);
                        let mut best = y0 * w + x0;
                        for y in y0..y0 + size_h {
                            for x in x0..x0 + size_w {
                                if plane[y * w + x] > plane[best] {
                                    best = y * w + x;
                                }
                            }
                        }
                        out[oy * ow + ox] = plane[best];
                        win[oy * ow + ox] = best as u32;
                    }
                }
            });
        self.saved = (mode == Mode::Train).then_some((input.shape(), winners));
        Tensor::new(shape, output)
    }

    fn backward(
        &mut self,
        grad_output: Tensor,
        input_grad: bool,
    ) -> Result<Option<Tensor>, CnnError> {
        let (input_shape, winners) = self.saved.take().ok_or_else(|| CnnError::NoForward {
            layer: format!("{:?}", self.spec()),
        })?;
        let expected = check_output_grad(self, input_shape, &grad_output)?;
        if !input_grad {
            return Ok(None);
        }
        let plane_in = input_shape[2] * input_shape[3];
        let plane_out = expected[2] * expected[3];
        let mut grad = vec![0.0f32; input_shape.iter().product()];
        grad.par_chunks_mut(plane_in)
            .zip(grad_output.data().par_chunks(plane_out))
            .zip(winners.par_chunks(plane_out))
            .for_each(|((dst, src), win)| {
                for (&g, &at) in src.iter().zip(win) {
                    dst[at as usize] += g;
                }
            });
        Ok(Some(Tensor::new(input_shape, grad)?))
    }
}
