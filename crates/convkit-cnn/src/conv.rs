//! `Conv2d`: a convolution layer whose forward and backward passes are convkit plans.

use crate::grad;
use crate::layer::{
    Layer, LayerSpec, Mode, Nonlinearity, Parameter, check_output_grad, shape_error,
};
use crate::{CnnError, Tensor};
use convkit::{ConvSpec, Padding, Plan, PlanOptions};
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// A planned forward convolution and what it was planned for.
#[derive(Debug)]
struct ForwardPlan {
    input_shape: [usize; 4],
    generations: (u64, u64),
    plan: Plan<f32>,
}

/// What the backward pass needs from the forward pass.
#[derive(Debug)]
struct Saved {
    input: Tensor,
    /// The output, when the activation's derivative depends on it.
    output: Option<Vec<f32>>,
}

/// A 2-D convolution with bias and a fused activation: cross-correlation with OIHW weights,
/// one group, symmetric zero padding. Forward is one convkit plan (re-planned only when the
/// weights or the batch shape change); backward runs the two gradient convolutions of
/// [`crate::grad`] through convkit as well.
#[derive(Debug)]
pub struct Conv2d {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    activation: Nonlinearity,
    weight: Parameter,
    bias: Parameter,
    forward_plan: Option<ForwardPlan>,
    saved: Option<Saved>,
    scratch: Vec<f32>,
}

impl Conv2d {
    /// A layer with He-normal weights (`σ = √(2 / fan_in)`) and zero bias.
    pub fn new(
        [in_channels, out_channels]: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        activation: Nonlinearity,
        rng: &mut impl Rng,
    ) -> Result<Conv2d, CnnError> {
        activation.validate()?;
        let sizes = [
            in_channels,
            out_channels,
            kernel[0],
            kernel[1],
            stride[0],
            stride[1],
        ];
        if sizes.contains(&0) {
            return Err(CnnError::Config(format!(
                "convolution sizes must be positive: channels {in_channels}->{out_channels}, \
                 kernel {kernel:?}, stride {stride:?}"
            )));
        }
        if padding[0] >= kernel[0] || padding[1] >= kernel[1] {
            return Err(CnnError::Config(format!(
                "padding {padding:?} must be smaller than the kernel {kernel:?}"
            )));
        }
        let fan_in = in_channels * kernel[0] * kernel[1];
        let normal = Normal::new(0.0, (2.0 / fan_in as f64).sqrt() as f32)
            .map_err(|e| CnnError::Config(e.to_string()))?;
        let shape = vec![out_channels, in_channels, kernel[0], kernel[1]];
        let weights = (0..shape.iter().product())
            .map(|_| normal.sample(rng))
            .collect();
        Ok(Conv2d {
            kernel,
            stride,
            padding,
            activation,
            weight: Parameter::new("weight", shape, weights),
            bias: Parameter::new("bias", vec![out_channels], vec![0.0; out_channels]),
            forward_plan: None,
            saved: None,
            scratch: Vec::new(),
        })
    }

    fn channels(&self) -> [usize; 2] {
        [self.weight.shape()[1], self.weight.shape()[0]]
    }

    fn conv_spec(&self, [n, _, h, w]: [usize; 4]) -> ConvSpec {
        let [c, o] = self.channels();
        ConvSpec::new(n, c, o, [h, w], self.kernel)
            .stride(self.stride)
            .padding(Padding::symmetric(self.padding))
    }

    fn generations(&self) -> (u64, u64) {
        (self.weight.generation(), self.bias.generation())
    }

    fn planned(&mut self, input_shape: [usize; 4]) -> Result<&Plan<f32>, CnnError> {
        let fresh = self
            .forward_plan
            .as_ref()
            .is_some_and(|p| p.input_shape == input_shape && p.generations == self.generations());
        if !fresh {
            let plan = convkit::plan::<f32>(
                &self.conv_spec(input_shape),
                self.weight.values(),
                Some(self.bias.values()),
                &PlanOptions::new().activation(self.activation.activation()),
            )?;
            self.forward_plan = Some(ForwardPlan {
                input_shape,
                generations: self.generations(),
                plan,
            });
        }
        Ok(&self.forward_plan.as_ref().expect("planned above").plan)
    }
}

impl Layer for Conv2d {
    fn spec(&self) -> LayerSpec {
        let [in_channels, out_channels] = self.channels();
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            activation: self.activation,
        }
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], CnnError> {
        let [c, o] = self.channels();
        if input[1] != c {
            return Err(shape_error(self, format!("{c} channels"), input));
        }
        let [oh, ow] = self
            .conv_spec(input)
            .output_hw()
            .map_err(|e| shape_error(self, e.to_string(), input))?;
        Ok([input[0], o, oh, ow])
    }

    fn forward(&mut self, input: Tensor, mode: Mode) -> Result<Tensor, CnnError> {
        let output_shape = self.output_shape(input.shape())?;
        let mut output = vec![0.0; output_shape.iter().product()];
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.planned(input.shape()).and_then(|plan| {
            if scratch.len() < plan.scratch_len() {
                scratch.resize(plan.scratch_len(), 0.0);
            }
            Ok(plan.run_with_scratch(input.data(), &mut output, &mut scratch)?)
        });
        self.scratch = scratch;
        result?;
        self.saved = (mode == Mode::Train).then(|| Saved {
            input,
            output: (self.activation != Nonlinearity::Identity).then(|| output.clone()),
        });
        Tensor::new(output_shape, output)
    }

    fn backward(
        &mut self,
        mut grad_output: Tensor,
        input_grad: bool,
    ) -> Result<Option<Tensor>, CnnError> {
        let saved = self.saved.take().ok_or_else(|| CnnError::NoForward {
            layer: format!("{:?}", self.spec()),
        })?;
        let input_shape = saved.input.shape();
        let expected = check_output_grad(self, input_shape, &grad_output)?;
        if let Some(output) = &saved.output {
            for (g, &y) in grad_output.data_mut().iter_mut().zip(output) {
                *g *= self.activation.derivative_at_output(y);
            }
        }
        let [_, o, oh, ow] = expected;
        let mut bias_grad = vec![0.0f32; o];
        for (index, plane) in grad_output.data().chunks_exact(oh * ow).enumerate() {
            bias_grad[index % o] += plane.iter().sum::<f32>();
        }
        self.bias.set_grad(&bias_grad);

        let spec = self.conv_spec(input_shape);
        let options = PlanOptions::new();
        let weight_grad = grad::weight_grad(
            &spec,
            saved.input.data(),
            grad_output.data(),
            &options,
            &mut self.scratch,
        )?;
        self.weight.set_grad(&weight_grad);
        if !input_grad {
            return Ok(None);
        }
        let input_grad = grad::input_grad(
            &spec,
            self.weight.values(),
            grad_output.data(),
            &options,
            &mut self.scratch,
        )?;
        Ok(Some(Tensor::new(input_shape, input_grad)?))
    }

    fn parameters(&self) -> Vec<&Parameter> {
        vec![&self.weight, &self.bias]
    }

    fn parameters_mut(&mut self) -> Vec<&mut Parameter> {
        vec![&mut self.weight, &mut self.bias]
    }
}
