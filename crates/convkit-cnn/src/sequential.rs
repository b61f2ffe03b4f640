//! `Sequential`: layers run in order, built from their specs with a seeded initializer.

use crate::conv::Conv2d;
use crate::dense::Dense;
use crate::elementwise::{Flatten, Relu};
use crate::layer::{Layer, LayerSpec, Mode, Parameter};
use crate::loss::{LossOutput, softmax_cross_entropy};
use crate::optim::Optimizer;
use crate::pool::MaxPool2d;
use crate::{CnnError, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a training step measured on its batch (before the update).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Mean softmax cross-entropy.
    pub loss: f32,
    /// Samples whose largest logit is their label.
    pub correct: usize,
}

/// A network: layers applied in order to `[N, C, H, W]` batches of a fixed per-sample shape.
#[derive(Debug)]
pub struct Sequential {
    input_shape: [usize; 3],
    layers: Vec<Box<dyn Layer>>,
}

/// Builds one layer, drawing its initial weights from `rng`.
pub fn build_layer(spec: &LayerSpec, rng: &mut ChaCha8Rng) -> Result<Box<dyn Layer>, CnnError> {
    Ok(match *spec {
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            activation,
        } => Box::new(Conv2d::new(
            [in_channels, out_channels],
            kernel,
            stride,
            padding,
            activation,
            rng,
        )?),
        LayerSpec::MaxPool2d { size, stride } => Box::new(MaxPool2d::new(size, stride)?),
        LayerSpec::Flatten => Box::new(Flatten::new()),
        LayerSpec::Dense { inputs, outputs } => Box::new(Dense::new([inputs, outputs], rng)?),
        LayerSpec::Relu => Box::new(Relu::new()),
    })
}

impl Sequential {
    /// The network of `specs` for samples of `[channels, height, width]`, weights drawn from
    /// a ChaCha8 generator seeded with `seed` (the same seed gives the same network). Checks
    /// that every layer accepts the previous one's output.
    pub fn new(
        input_shape: [usize; 3],
        specs: &[LayerSpec],
        seed: u64,
    ) -> Result<Sequential, CnnError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = specs
            .iter()
            .map(|spec| build_layer(spec, &mut rng))
            .collect::<Result<Vec<_>, _>>()?;
        let network = Sequential {
            input_shape,
            layers,
        };
        network.output_shapes(1)?;
        Ok(network)
    }

    /// The per-sample input shape `[channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input_shape
    }

    /// The layers' specs, in order.
    pub fn specs(&self) -> Vec<LayerSpec> {
        self.layers.iter().map(|layer| layer.spec()).collect()
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Each layer's output shape for a batch of `batch`.
    pub fn output_shapes(&self, batch: usize) -> Result<Vec<[usize; 4]>, CnnError> {
        let [c, h, w] = self.input_shape;
        let mut shape = [batch, c, h, w];
        self.layers
            .iter()
            .map(|layer| {
                shape = layer.output_shape(shape)?;
                Ok(shape)
            })
            .collect()
    }

    /// A table of layers, output shapes and parameter counts.
    pub fn summary(&self) -> Result<String, CnnError> {
        let mut lines = Vec::new();
        let shapes = self.output_shapes(1)?;
        for (index, (layer, shape)) in self.layers.iter().zip(shapes).enumerate() {
            let count: usize = layer.parameters().iter().map(|p| p.values().len()).sum();
            lines.push(format!(
                "{index:>2}  {:<60}  out {:?}  params {count}",
                format!("{:?}", layer.spec()),
                &shape[1..]
            ));
        }
        Ok(lines.join("\n"))
    }

    fn check_input(&self, input: &Tensor) -> Result<(), CnnError> {
        if input.shape()[1..] != self.input_shape {
            return Err(CnnError::Shape {
                layer: "network input".into(),
                expected: format!("[N, {:?}]", self.input_shape),
                actual: input.shape(),
            });
        }
        Ok(())
    }

    /// Runs every layer; in [`Mode::Train`] the layers keep what [`Sequential::backward`]
    /// needs.
    pub fn forward(&mut self, input: Tensor, mode: Mode) -> Result<Tensor, CnnError> {
        self.check_input(&input)?;
        self.layers
            .iter_mut()
            .try_fold(input, |x, layer| layer.forward(x, mode))
    }

    /// Every layer's output for `input`, in inference mode (feature maps, logits).
    pub fn forward_trace(&mut self, input: Tensor) -> Result<Vec<Tensor>, CnnError> {
        self.check_input(&input)?;
        let mut outputs: Vec<Tensor> = Vec::with_capacity(self.layers.len());
        let mut x = input;
        for layer in &mut self.layers {
            x = layer.forward(x, Mode::Eval)?;
            outputs.push(x.clone());
        }
        Ok(outputs)
    }

    /// Back-propagates the gradient of the loss with respect to the network's output, setting
    /// every parameter's gradient (the first layer's input gradient is not computed).
    pub fn backward(&mut self, grad_output: Tensor) -> Result<(), CnnError> {
        let mut grad = Some(grad_output);
        for (index, layer) in self.layers.iter_mut().enumerate().rev() {
            let g = grad
                .take()
                .ok_or_else(|| CnnError::Config("a layer returned no input gradient".into()))?;
            grad = layer.backward(g, index > 0)?;
        }
        Ok(())
    }

    /// Every trainable parameter, in a fixed order.
    pub fn parameters(&self) -> Vec<&Parameter> {
        self.layers.iter().flat_map(|l| l.parameters()).collect()
    }

    /// Every trainable parameter, mutable, in the same order.
    pub fn parameters_mut(&mut self) -> Vec<&mut Parameter> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.parameters_mut())
            .collect()
    }

    /// Parameters with their saved names, `"{layer index}.{name}"`.
    pub fn named_parameters(&self) -> Vec<(String, &Parameter)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                l.parameters()
                    .into_iter()
                    .map(move |p| (format!("{i}.{}", p.name()), p))
            })
            .collect()
    }

    /// One training step on a batch: forward, softmax cross-entropy, backward, optimizer
    /// step. Returns the batch's mean loss and how many samples it classified right.
    pub fn train_step(
        &mut self,
        images: Tensor,
        labels: &[u8],
        optimizer: &mut dyn Optimizer,
    ) -> Result<StepOutcome, CnnError> {
        let logits = self.forward(images, Mode::Train)?;
        let LossOutput {
            loss,
            grad,
            correct,
        } = softmax_cross_entropy(&logits, labels)?;
        self.backward(grad)?;
        optimizer.step(&mut self.parameters_mut())?;
        Ok(StepOutcome { loss, correct })
    }
}
