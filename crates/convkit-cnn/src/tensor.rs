//! A batch of activations in NCHW order.

use crate::CnnError;

/// `[batch, channels, height, width]` values in NCHW order; a batch of feature vectors is
/// `[batch, features, 1, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: [usize; 4],
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor over `data`, which must hold exactly the shape's product of values.
    pub fn new(shape: [usize; 4], data: Vec<f32>) -> Result<Tensor, CnnError> {
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| CnnError::Config(format!("tensor shape {shape:?} overflows")))?;
        if data.len() != expected {
            return Err(CnnError::Config(format!(
                "tensor shape {shape:?} needs {expected} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: [usize; 4]) -> Tensor {
        Tensor {
            shape,
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// `[batch, channels, height, width]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.shape[0]
    }

    /// Values per sample (`channels · height · width`).
    pub fn sample_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }

    /// The values, NCHW.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, NCHW, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// One sample's values.
    pub fn sample(&self, index: usize) -> &[f32] {
        let len = self.sample_len();
        &self.data[index * len..(index + 1) * len]
    }

    /// The values, giving up the tensor.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The same values under another shape with the same number of values.
    pub fn reshape(self, shape: [usize; 4]) -> Result<Tensor, CnnError> {
        Tensor::new(shape, self.data)
    }
}
