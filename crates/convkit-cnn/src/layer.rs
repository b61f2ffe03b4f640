//! The layer trait, trainable parameters, and the serializable description of a layer.

use crate::{CnnError, Tensor};
use serde::{Deserialize, Serialize};

/// Whether a forward pass keeps what the backward pass needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Keep inputs, masks and indices for [`Layer::backward`].
    Train,
    /// Inference only: keep nothing.
    Eval,
}

/// A trainable tensor and the gradient the last backward pass accumulated for it.
#[derive(Clone, Debug)]
pub struct Parameter {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
    grad: Vec<f32>,
    generation: u64,
}

impl Parameter {
    /// A parameter with a name (unique within its layer), shape and initial values.
    pub fn new(name: &str, shape: Vec<usize>, values: Vec<f32>) -> Parameter {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Parameter {
            name: name.to_owned(),
            grad: vec![0.0; values.len()],
            shape,
            values,
            generation: 0,
        }
    }

    /// The name within its layer (`weight`, `bias`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shape (OIHW for convolution weights, `[out, in]` for dense weights).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The values, for an optimizer step or a load; marks the parameter changed, so that
    /// layers re-pack what they derived from it.
    pub fn values_mut(&mut self) -> &mut [f32] {
        self.generation += 1;
        &mut self.values
    }

    /// The accumulated gradient.
    pub fn grad(&self) -> &[f32] {
        &self.grad
    }

    /// Values and gradient together, for an optimizer step (marks the values changed).
    pub fn values_and_grad(&mut self) -> (&mut [f32], &[f32]) {
        self.generation += 1;
        (&mut self.values, &self.grad)
    }

    /// Sets the gradient (backward passes write it; they do not accumulate across calls).
    pub(crate) fn set_grad(&mut self, grad: &[f32]) {
        self.grad.copy_from_slice(grad);
    }

    /// Changes every time the values may have changed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

/// An activation fused into a convolution, with the derivative the backward pass needs,
/// computed from the layer's output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nonlinearity {
    /// `y = x`.
    #[default]
    Identity,
    /// `y = max(x, 0)`.
    Relu,
    /// `y = min(max(x, 0), 6)`.
    Relu6,
    /// `y = x` for `x > 0`, else `slope · x`; the slope must be positive so that the sign of
    /// `y` tells the branch.
    LeakyRelu {
        /// The negative side's slope.
        slope: f32,
    },
}

impl Nonlinearity {
    /// convkit's fused activation.
    pub fn activation(self) -> convkit::Activation {
        match self {
            Nonlinearity::Identity => convkit::Activation::None,
            Nonlinearity::Relu => convkit::Activation::Relu,
            Nonlinearity::Relu6 => convkit::Activation::Relu6,
            Nonlinearity::LeakyRelu { slope } => convkit::Activation::LeakyRelu(slope),
        }
    }

    pub(crate) fn validate(self) -> Result<(), CnnError> {
        match self {
            Nonlinearity::LeakyRelu { slope } if !(slope > 0.0 && slope.is_finite()) => Err(
                CnnError::Config(format!("leaky ReLU slope must be positive, got {slope}")),
            ),
            _ => Ok(()),
        }
    }

    /// `dy/dx` at the point where the activation output `y`.
    pub fn derivative_at_output(self, y: f32) -> f32 {
        match self {
            Nonlinearity::Identity => 1.0,
            Nonlinearity::Relu => f32::from(u8::from(y > 0.0)),
            Nonlinearity::Relu6 => f32::from(u8::from(y > 0.0 && y < 6.0)),
            Nonlinearity::LeakyRelu { slope } => {
                if y > 0.0 {
                    1.0
                } else {
                    slope
                }
            }
        }
    }
}

/// A layer's architecture, as saved with a model (everything but the parameter values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "layer", rename_all = "snake_case")]
pub enum LayerSpec {
    /// A 2-D convolution (cross-correlation, OIHW weights, one group) with bias and a fused
    /// activation.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// `[height, width]` of the kernel.
        kernel: [usize; 2],
        /// `[vertical, horizontal]` stride.
        stride: [usize; 2],
        /// `[rows, columns]` of zero padding on each side.
        padding: [usize; 2],
        /// The activation fused after the bias.
        activation: Nonlinearity,
    },
    /// Max pooling over `size` windows moved by `stride`, no padding.
    MaxPool2d {
        /// `[height, width]` of the window.
        size: [usize; 2],
        /// `[vertical, horizontal]` step.
        stride: [usize; 2],
    },
    /// `[N, C, H, W]` to `[N, C·H·W, 1, 1]`.
    Flatten,
    /// A fully connected layer `y = x·Wᵀ + b`.
    Dense {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
    },
    /// `max(x, 0)` on its own.
    Relu,
}

/// One layer of a [`crate::Sequential`] network.
pub trait Layer: Send + std::fmt::Debug {
    /// The architecture (what a saved model records).
    fn spec(&self) -> LayerSpec;

    /// The output shape for an input shape, or why the input does not fit.
    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], CnnError>;

    /// The forward pass. In [`Mode::Train`] the layer keeps what [`Layer::backward`] needs.
    fn forward(&mut self, input: Tensor, mode: Mode) -> Result<Tensor, CnnError>;

    /// The backward pass for the last training-mode forward: sets the parameters' gradients
    /// and returns the gradient with respect to the input when `input_grad` is set.
    fn backward(
        &mut self,
        grad_output: Tensor,
        input_grad: bool,
    ) -> Result<Option<Tensor>, CnnError>;

    /// The trainable parameters, in a fixed order.
    fn parameters(&self) -> Vec<&Parameter> {
        Vec::new()
    }

    /// The trainable parameters, mutable, in the same order.
    fn parameters_mut(&mut self) -> Vec<&mut Parameter> {
        Vec::new()
    }
}

/// The error for an input of the wrong shape.
pub(crate) fn shape_error(layer: &dyn Layer, expected: String, actual: [usize; 4]) -> CnnError {
    CnnError::Shape {
        layer: format!("{:?}", layer.spec()),
        expected,
        actual,
    }
}

/// Checks that an output gradient has the shape the layer produced for `input_shape`.
pub(crate) fn check_output_grad(
    layer: &dyn Layer,
    input_shape: [usize; 4],
    grad_output: &Tensor,
) -> Result<[usize; 4], CnnError> {
    let expected = layer.output_shape(input_shape)?;
    if grad_output.shape() != expected {
        return Err(shape_error(
            layer,
            format!("an output gradient of {expected:?}"),
            grad_output.shape(),
        ));
    }
    Ok(expected)
}
