//! A two-layer convolutional network that uses convkit as its backend, the way an inference
//! engine would: each layer is described and planned once (weights packed, algorithm and
//! instruction set chosen), and every forward pass runs the plans into buffers the engine
//! owns, with caller-owned scratch so the hot loop allocates nothing.
//!
//! `cargo run --release -p tiny-backend` prints each layer's choice and the time per batch.

use convkit::{Activation, ConvError, ConvSpec, Layout, Padding, Plan, PlanOptions};
use std::time::Instant;

/// One planned convolution with its output buffer.
struct ConvLayer {
    plan: Plan<f32>,
    output: Vec<f32>,
}

impl ConvLayer {
    /// Plans `spec` with deterministic weights (a real engine loads them) and a fused
    /// activation; `tune` times the candidates once instead of trusting the cost model.
    fn new(spec: ConvSpec, activation: Activation, tune: bool) -> Result<ConvLayer, ConvError> {
        let weights: Vec<f32> = (0..spec.weight_len()?)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.1)
            .collect();
        let bias = vec![0.01f32; spec.shape()?.out_channels()];
        let options = PlanOptions::new().activation(activation).tune(tune);
        let plan = convkit::plan(&spec, &weights, Some(&bias), &options)?;
        let output = vec![0.0; spec.output_len()?];
        Ok(ConvLayer { plan, output })
    }
}

/// The network: 3 → 32 channels (ReLU), then 32 → 64 channels, 3x3 "same" convolutions on
/// a batch of NHWC images.
struct Network {
    layers: Vec<ConvLayer>,
    scratch: Vec<f32>,
}

impl Network {
    fn new(batch: usize, size: usize, tune: bool) -> Result<Network, ConvError> {
        let same = Padding::symmetric([1, 1]);
        let first = ConvSpec::new(batch, 3, 32, [size, size], [3, 3])
            .padding(same)
            .layout(Layout::Nhwc);
        let second = ConvSpec::new(batch, 32, 64, [size, size], [3, 3])
            .padding(same)
            .layout(Layout::Nhwc);
        let layers = vec![
            ConvLayer::new(first, Activation::Relu, tune)?,
            ConvLayer::new(second, Activation::None, tune)?,
        ];
        // One scratch buffer, as large as the largest layer needs, shared by all of them.
        let scratch = vec![
            0.0;
            layers
                .iter()
                .map(|l| l.plan.scratch_len())
                .max()
                .unwrap_or(0)
        ];
        Ok(Network { layers, scratch })
    }

    /// Runs every layer; the last layer's output is returned.
    fn forward<'a>(&'a mut self, input: &'a [f32]) -> Result<&'a [f32], ConvError> {
        let Network { layers, scratch } = self;
        for index in 0..layers.len() {
            let (done, rest) = layers.split_at_mut(index);
            let layer = &mut rest[0];
            let source = done.last().map_or(input, |previous| &previous.output[..]);
            layer
                .plan
                .run_with_scratch(source, &mut layer.output, scratch)?;
        }
        Ok(layers.last().map_or(input, |l| &l.output[..]))
    }
}

fn main() -> Result<(), ConvError> {
    let (batch, size, passes) = (8, 64, 50);
    let tune = std::env::args().any(|a| a == "--tune");
    let mut network = Network::new(batch, size, tune)?;
    for (index, layer) in network.layers.iter().enumerate() {
        println!(
            "layer {}: {:?} on {} ({} KiB packed weights, {} KiB scratch)",
            index + 1,
            layer.plan.algorithm(),
            layer.plan.isa(),
            layer.plan.plan_bytes() / 1024,
            layer.plan.scratch_len() * 4 / 1024
        );
    }
    let input: Vec<f32> = (0..batch * size * size * 3)
        .map(|i| (i % 255) as f32 / 255.0)
        .collect();
    network.forward(&input)?; // warm-up
    let start = Instant::now();
    for _ in 0..passes {
        network.forward(&input)?;
    }
    let per_pass = start.elapsed().as_secs_f64() / passes as f64;
    let flops: u64 = network.layers.iter().map(|l| l.plan.shape().flops()).sum();
    let output = network.forward(&input)?;
    let checksum: f64 = output.iter().map(|&v| f64::from(v)).sum();
    println!(
        "{batch} images of {size}x{size}: {:.3} ms per forward pass, {:.1} GFLOP/s; output checksum {checksum:.4}",
        per_pass * 1e3,
        flops as f64 / per_pass / 1e9
    );
    Ok(())
}
