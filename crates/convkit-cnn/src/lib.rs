//! # convkit-cnn
//!
//! A small convolutional network library built on convkit: the proof that the kernels serve
//! a real network end to end, forward and backward, and a place to see what a CNN learns.
//!
//! - Layers ([`Layer`]): [`Conv2d`] (a convkit plan with bias and activation fused),
//!   [`MaxPool2d`], [`Flatten`], [`Dense`] (on convkit-gemm's SGEMM), [`Relu`]; a
//!   [`Sequential`] container built from [`LayerSpec`]s with seeded He initialization.
//! - Backward: a convolution's input and weight gradients are themselves convolutions
//!   ([`grad`]), run through convkit's plans like the forward pass.
//! - [`loss::softmax_cross_entropy`], optimizers [`Sgd`] (momentum) and [`Adam`], training
//!   epochs and evaluation ([`train`]), the vendored MNIST sample ([`mnist`]), and saving and
//!   loading as safetensors ([`model_io`]).
//!
//! Batches are NCHW `[N, C, H, W]` [`Tensor`]s. Work is parallel through rayon inside the
//! caller's pool (convkit's plans, pooling and elementwise layers).
//!
//! ```
//! use convkit_cnn::{LayerSpec, Nonlinearity, Sequential, mnist};
//!
//! # fn main() -> Result<(), convkit_cnn::CnnError> {
//! let network = Sequential::new([1, 28, 28], &convkit_cnn::lenet(), 7)?;
//! assert_eq!(network.output_shapes(32)?.last(), Some(&[32, 10, 1, 1]));
//! let data = mnist::load()?;
//! assert_eq!((data.train.len(), data.test.len()), (4000, 1000));
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_code)]

mod conv;
mod dense;
mod elementwise;
mod error;
pub mod grad;
mod layer;
pub mod loss;
pub mod mnist;
pub mod model_io;
mod optim;
mod pool;
mod sequential;
mod tensor;
pub mod train;

pub use conv::Conv2d;
pub use dense::Dense;
pub use elementwise::{Flatten, Relu};
pub use error::CnnError;
pub use layer::{Layer, LayerSpec, Mode, Nonlinearity, Parameter};
pub use optim::{Adam, Optimizer, Sgd};
pub use pool::MaxPool2d;
pub use sequential::{Sequential, StepOutcome, build_layer};
pub use tensor::Tensor;

/// The digits network: conv 5x5 (1→12, ReLU) → max pool 2 → conv 5x5 (12→32, ReLU) → max
/// pool 2 → dense 512→120 (ReLU) → dense 120→10, for `[1, 28, 28]` inputs.
pub fn lenet() -> Vec<LayerSpec> {
    vec![
        LayerSpec::Conv2d {
            in_channels: 1,
            out_channels: 12,
            kernel: [5, 5],
            stride: [1, 1],
            padding: [0, 0],
            activation: Nonlinearity::Relu,
        },
        LayerSpec::MaxPool2d {
            size: [2, 2],
            stride: [2, 2],
        },
        LayerSpec::Conv2d {
            in_channels: 12,
            out_channels: 32,
            kernel: [5, 5],
            stride: [1, 1],
            padding: [0, 0],
            activation: Nonlinearity::Relu,
        },
        LayerSpec::MaxPool2d {
            size: [2, 2],
            stride: [2, 2],
        },
        LayerSpec::Flatten,
        LayerSpec::Dense {
            inputs: 512,
            outputs: 120,
        },
        LayerSpec::Relu,
        LayerSpec::Dense {
            inputs: 120,
            outputs: 10,
        },
    ]
}
