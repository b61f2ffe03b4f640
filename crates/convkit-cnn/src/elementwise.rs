//! Layers without parameters that keep the values in place: `Relu` and `Flatten`.

use crate::layer::{Layer, LayerSpec, Mode, shape_error};
use crate::{CnnError, Tensor};
use rayon::prelude::*;

/// Values per parallel chunk of an elementwise pass.
const CHUNK: usize = 1 << 14;

/// `max(x, 0)` as a layer of its own (convolutions fuse theirs instead).
#[derive(Debug, Default)]
pub struct Relu {
    /// Which inputs were positive in the last training forward.
    mask: Option<Vec<bool>>,
}

impl Relu {
    /// The layer.
    pub fn new() -> Relu {
        Relu::default()
    }
}

impl Layer for Relu {
    fn spec(&self) -> LayerSpec {
        LayerSpec::Relu
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], CnnError> {
        Ok(input)
    }

    fn forward(&mut self, mut input: Tensor, mode: Mode) -> Result<Tensor, CnnError> {
        input
            .data_mut()
            .par_chunks_mut(CHUNK)
            .for_each(|chunk| chunk.iter_mut().for_each(|x| *x = x.max(0.0)));
        self.mask = (mode == Mode::Train).then(|| input.data().iter().map(|&y| y > 0.0).collect());
        Ok(input)
    }

    fn backward(
        &mut self,
        mut grad_output: Tensor,
        input_grad: bool,
    ) -> Result<Option<Tensor>, CnnError> {
        let mask = self.mask.take().ok_or_else(|| CnnError::NoForward {
            layer: "relu".into(),
        })?;
        if mask.len() != grad_output.data().len() {
            return Err(shape_error(
                self,
                format!("an output gradient of {} values", mask.len()),
                grad_output.shape(),
            ));
        }
        if !input_grad {
            return Ok(None);
        }
        for (g, &positive) in grad_output.data_mut().iter_mut().zip(&mask) {
            if !positive {
                *g = 0.0;
            }
        }
        Ok(Some(grad_output))
    }
}

/// `[N, C, H, W]` to `[N, C·H·W, 1, 1]` (NCHW order is kept: no copy).
#[derive(Debug, Default)]
pub struct Flatten {
    input_shape: Option<[usize; 4]>,
}

impl Flatten {
    /// The layer.
    pub fn new() -> Flatten {
        Flatten::default()
    }
}

impl Layer for Flatten {
    fn spec(&self) -> LayerSpec {
        LayerSpec::Flatten
    }

    fn output_shape(&self, [n, c, h, w]: [usize; 4]) -> Result<[usize; 4], CnnError> {
        Ok([n, c * h * w, 1, 1])
    }

    fn forward(&mut self, input: Tensor, mode: Mode) -> Result<Tensor, CnnError> {
        let shape = self.output_shape(input.shape())?;
        self.input_shape = (mode == Mode::Train).then_some(input.shape());
        input.reshape(shape)
    }

    fn backward(
        &mut self,
        grad_output: Tensor,
        input_grad: bool,
    ) -> Result<Option<Tensor>, CnnError> {
        let shape = self.input_shape.take().ok_or_else(|| CnnError::NoForward {
            layer: "flatten".into(),
        })?;
        if !input_grad {
            return Ok(None);
        }
        Ok(Some(grad_output.reshape(shape)?))
    }
}
