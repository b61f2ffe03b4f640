//! `cargo xtask bench --planner-check N`: how often, and by how much, Auto misses the fastest
//! convkit algorithm on N generated layers.
//!
//! The sixteen suite layers are too few to fit or check a cost model on, so this draws layers
//! the way real networks are built ([`generate`]): pointwise and dense 3x3 layers with the
//! channel ladders and image sizes of ResNet, MobileNet, Inception and SSD, strided
//! downsampling layers, depthwise layers of every stride and size in both layouts, grouped
//! layers, dilated layers, large-kernel stems on few channels and 1-D layers (height 1) with
//! strides, dilations, groups and batches. Every concrete algorithm that supports a layer is
//! timed beside the others (interleaved, as the bench does), and Auto's choice, read from its
//! plan, is rated by its own row's median against the fastest row's.

use crate::bench::{Contender, PlannedRow, sample_interleaved};
use crate::model::{Geometry, Timing};
use crate::suite::Layer;
use convkit::{Activation, Algorithm, ConvSpec, Cost, Layout, Padding, PlanOptions};
use convkit_testkit::{ConvProblem, Values};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Auto counts as a hit within this factor of the fastest algorithm.
const HIT_RATIO: f64 = 1.10;

/// Layers above this many FLOPs are drawn again (they would make the check long without
/// telling the model anything the smaller ones do not).
const MAX_FLOPS: u64 = 1_200_000_000;

/// Layers below this many FLOPs are drawn again (their time is the call overhead).
const MIN_FLOPS: u64 = 200_000;

/// Most elements in one activation tensor of a generated layer.
const MAX_TENSOR: usize = 4 << 20;

/// Channel counts of real networks.
const CHANNELS: [usize; 22] = [
    8, 16, 24, 32, 40, 48, 64, 80, 96, 128, 144, 160, 192, 256, 320, 384, 512, 576, 768, 960, 1024,
    2048,
];

/// Image sizes of real networks (ResNet, MobileNet, Inception's 35/17/8, SSD's 38/19/10,
/// AlexNet's 13, odd sizes after valid convolutions).
const SIZES: [usize; 18] = [
    6, 7, 8, 10, 13, 14, 17, 19, 28, 32, 35, 38, 56, 64, 73, 75, 112, 150,
];

fn pick<T: Copy>(rng: &mut ChaCha8Rng, values: &[T]) -> T {
    values[rng.random_range(0..values.len())]
}

/// Channels from the ladder that keep `channels · pixels` within [`MAX_TENSOR`] / 2.
fn channels_for(rng: &mut ChaCha8Rng, pixels: usize) -> usize {
    let fitting: Vec<usize> = CHANNELS
        .iter()
        .copied()
        .filter(|&c| c * pixels <= MAX_TENSOR / 2)
        .collect();
    if fitting.is_empty() {
        CHANNELS[0]
    } else {
        pick(rng, &fitting)
    }
}

/// `same` padding of a `kernel`-tap axis with `dilation`.
const fn same(kernel: usize, dilation: usize) -> usize {
    dilation * (kernel - 1) / 2
}

/// One drawn layer (not yet checked against the FLOP and size bounds).
fn draw(rng: &mut ChaCha8Rng) -> ConvSpec {
    let batch = if rng.random_range(0..8) == 0 {
        pick(rng, &[2, 4, 8])
    } else {
        1
    };
    let size = pick(rng, &SIZES);
    let class = rng.random_range(0..100);
    match class {
        // Pointwise, stride 1 (a fifth of them strided, as ResNet's projections).
        0..=29 => {
            let c = channels_for(rng, size * size);
            let k = channels_for(rng, size * size);
            let stride = if rng.random_range(0..5) == 0 { 2 } else { 1 };
            ConvSpec::new(batch, c, k, [size, size], [1, 1]).stride([stride, stride])
        }
        // Dense 3x3, stride 1 or 2.
        30..=49 => {
            let c = channels_for(rng, size * size);
            let k = channels_for(rng, size * size);
            let stride = if rng.random_range(0..3) == 0 { 2 } else { 1 };
            ConvSpec::new(batch, c, k, [size, size], [3, 3])
                .stride([stride, stride])
                .padding(Padding::symmetric([1, 1]))
        }
        // Depthwise 3x3 or 5x5, stride 1 or 2.
        50..=64 => {
            let c = channels_for(rng, size * size);
            let kernel = if rng.random_range(0..3) == 0 { 5 } else { 3 };
            let stride = pick(rng, &[1, 1, 2]);
            let pad = same(kernel, 1);
            ConvSpec::new(batch, c, c, [size, size], [kernel, kernel])
                .stride([stride, stride])
                .padding(Padding::symmetric([pad, pad]))
                .groups(c)
        }
        // Grouped 3x3 (ResNeXt, RegNet).
        65..=69 => {
            let groups = pick(rng, &[2, 4, 8, 16, 32]);
            let c = channels_for(rng, size * size).max(groups * 4) / groups * groups;
            let stride = pick(rng, &[1, 1, 2]);
            ConvSpec::new(batch, c, c, [size, size], [3, 3])
                .stride([stride, stride])
                .padding(Padding::symmetric([1, 1]))
                .groups(groups)
        }
        // Dilated 3x3 (DeepLab, context modules).
        70..=74 => {
            let dilation = pick(rng, &[2, 4, 6]);
            let size = size.max(2 * dilation + 2);
            let c = channels_for(rng, size * size);
            let k = channels_for(rng, size * size);
            ConvSpec::new(batch, c, k, [size, size], [3, 3])
                .dilation([dilation, dilation])
                .padding(Padding::symmetric([dilation, dilation]))
        }
        // Large-kernel stems on few channels.
        75..=81 => {
            let c = pick(rng, &[1, 3, 3, 4]);
            let (kernel, stride) = pick(rng, &[(5, 1), (5, 2), (7, 2), (11, 4), (3, 2), (4, 4)]);
            let size = pick(rng, &[64, 96, 128, 160, 224, 227]);
            let k = pick(rng, &[16, 24, 32, 48, 64, 96]);
            let pad = pick(rng, &[0, kernel / 2]);
            ConvSpec::new(batch, c, k, [size, size], [kernel, kernel])
                .stride([stride, stride])
                .padding(Padding::symmetric([pad, pad]))
        }
        // 1-D (height 1): audio front ends, TCNs, sequence models' depthwise convolutions.
        _ => {
            let length = rng.random_range(32..4096);
            let kernel = pick(rng, &[2, 3, 3, 4, 5, 7, 10, 11]);
            let depthwise = rng.random_range(0..4) == 0;
            let c = pick(rng, &[32, 64, 80, 128, 256, 384, 512, 768, 1024]);
            let (k, groups) = if depthwise {
                (c, c)
            } else {
                (pick(rng, &[32, 64, 128, 256, 384, 512, 768]), 1)
            };
            let stride = pick(rng, &[1, 1, 2]);
            let dilation = if stride == 1 {
                pick(rng, &[1, 1, 2, 4, 8])
            } else {
                1
            };
            // Causal (all padding before) or centred, or none.
            let reach = dilation * (kernel - 1);
            let (left, right) = pick(rng, &[(0, 0), (reach, 0), (reach / 2, reach - reach / 2)]);
            ConvSpec::new(batch, c, k, [1, length], [1, kernel])
                .stride([1, stride])
                .dilation([1, dilation])
                .padding(Padding {
                    top: 0,
                    bottom: 0,
                    left,
                    right,
                })
                .groups(groups)
        }
    }
}

/// `count` layers drawn from `seed`, each valid and within the FLOP and size bounds; a fifth
/// of them channels-last.
pub fn generate(count: usize, seed: u64) -> Vec<Layer> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut layers = Vec::with_capacity(count);
    while layers.len() < count {
        let spec = draw(&mut rng);
        let spec = if rng.random_range(0..5) == 0 {
            spec.layout(Layout::Nhwc)
        } else {
            spec
        };
        let Ok(shape) = spec.shape() else {
            continue;
        };
        let big = shape.input_len().max(shape.output_len()) > MAX_TENSOR;
        if big || !(MIN_FLOPS..=MAX_FLOPS).contains(&shape.flops()) {
            continue;
        }
        let name: &'static str = Box::leak(format!("gen_{:03}", layers.len()).into_boxed_str());
        layers.push(Layer {
            name,
            spec,
            bias: true,
            network: None,
            count: 1,
        });
    }
    layers
}

/// One layer's outcome.
#[derive(Debug, Serialize)]
pub struct Checked {
    pub layer: &'static str,
    pub spec: String,
    pub geometry: Geometry,
    /// Median ms of every algorithm that planned.
    pub medians: Vec<(&'static str, f64)>,
    /// The tenth percentile of the same runs: how fast each ran when the shared host let it
    /// (an A/A pair of checks shows how much steadier its ratios are than the medians').
    pub lows: Vec<(&'static str, f64)>,
    /// The cost model's ms for each of them (what Auto compared).
    pub estimates: Vec<(&'static str, f64)>,
    /// The analytic part of each estimate, before the algorithm's fitted correction.
    pub analytic: Vec<(&'static str, f64)>,
    pub chosen: &'static str,
    pub fastest: &'static str,
    /// The chosen algorithm's median over the fastest's.
    pub ratio: f64,
}

/// The whole check.
#[derive(Debug, Serialize)]
pub struct PlannerCheck {
    pub seed: u64,
    pub threads: usize,
    pub layers: Vec<Checked>,
    /// Share of layers where Auto's choice is within [`HIT_RATIO`] of the fastest.
    pub within_10_percent: f64,
    pub worst_ratio: f64,
    /// Geometric mean of the ratios.
    pub mean_ratio: f64,
}

/// Times every algorithm on `count` layers drawn from `seed` at `threads`, prints the
/// summary and the misses, and writes `planner-check.json` into `out`.
pub fn run(count: usize, seed: u64, threads: usize, out: &Path) -> Result<(), String> {
    let layers = generate(count, seed);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|error| format!("a pool of {threads} threads: {error}"))?;
    let timing = Timing {
        min_seconds: 0.1,
        min_runs: 5,
        max_runs: 500,
    };
    let algorithms: Vec<Algorithm> = convkit::algorithms::<f32>()
        .iter()
        .map(|a| a.algorithm())
        .filter(|&a| a != Algorithm::Reference)
        .collect();
    let mut checked = Vec::with_capacity(layers.len());
    for (index, layer) in layers.iter().enumerate() {
        let problem = ConvProblem::new(layer.spec, true, Activation::None, Values::Real, 1);
        let data = crate::bench::LayerData::<f32>::new(&problem);
        let chosen = pool
            .install(|| {
                convkit::plan(
                    &layer.spec,
                    &data.weights,
                    data.bias.as_deref(),
                    &PlanOptions::new(),
                )
            })
            .map_err(|error| format!("Auto cannot plan {}: {error}", layer.name))?
            .algorithm();
        let mut rows: Vec<PlannedRow<'_, f32>> = algorithms
            .iter()
            .map(|&algorithm| PlannedRow::new(layer, &problem, &data, algorithm, &pool))
            .filter(|row| row.planned())
            .collect();
        let mut contenders: Vec<&mut dyn Contender> =
            rows.iter_mut().map(|r| r as &mut dyn Contender).collect();
        let timed = pool.install(|| sample_interleaved(&mut contenders, timing));
        drop(contenders);
        let quantile = |at: fn(usize) -> usize| -> Vec<(&'static str, f64)> {
            rows.iter()
                .zip(&timed)
                .map(|(row, samples)| (row.algorithm().name(), samples[at(samples.len())] * 1e3))
                .collect()
        };
        let medians = quantile(|len| len / 2);
        let lows = quantile(|len| len / 10);
        let shape = problem.shape();
        let costs: Vec<(&'static str, Cost)> = pool.install(|| {
            convkit::algorithms::<f32>()
                .iter()
                .filter(|a| rows.iter().any(|r| r.algorithm() == a.algorithm()))
                .filter_map(|a| {
                    let isa = convkit_simd::resolve(a.isas(), convkit_simd::best());
                    Some((a.algorithm().name(), a.cost(&shape, isa).ok()?))
                })
                .collect()
        });
        let in_ms = |seconds: fn(&Cost) -> f64| -> Vec<(&'static str, f64)> {
            costs
                .iter()
                .map(|(name, cost)| (*name, seconds(cost) * 1e3))
                .collect()
        };

        let (fastest, best_ms) = medians
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .ok_or_else(|| format!("no algorithm planned {}", layer.name))?;
        let chosen_ms = medians
            .iter()
            .find(|(name, _)| *name == chosen.name())
            .map_or(f64::INFINITY, |m| m.1);
        let result = Checked {
            layer: layer.name,
            spec: crate::model::describe(layer),
            geometry: Geometry::of(&layer.spec),
            medians,
            lows,
            estimates: in_ms(|cost| cost.seconds),
            analytic: in_ms(|cost| cost.analytic_seconds),
            chosen: chosen.name(),
            fastest,
            ratio: chosen_ms / best_ms,
        };
        eprintln!(
            "{:>3}/{count} {:<8} {:<44} chose {:<12} fastest {:<12} {:.2}x",
            index + 1,
            result.layer,
            result.spec,
            result.chosen,
            result.fastest,
            result.ratio
        );
        checked.push(result);
    }
    let hits = checked.iter().filter(|c| c.ratio <= HIT_RATIO).count();
    let worst = checked.iter().map(|c| c.ratio).fold(1.0, f64::max);
    let mean = (checked.iter().map(|c| c.ratio.ln()).sum::<f64>() / checked.len() as f64).exp();
    let check = PlannerCheck {
        seed,
        threads,
        within_10_percent: hits as f64 / checked.len() as f64,
        worst_ratio: worst,
        mean_ratio: mean,
        layers: checked,
    };
    print!("{}", summary(&check));
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let path = out.join(format!("planner-check-{threads}t.json"));
    let json = serde_json::to_string_pretty(&check).map_err(|e| e.to_string())?;
    std::fs::write(&path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The check's figures and its misses, worst first.
fn summary(check: &PlannerCheck) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nplanner check, seed {}, {} thread(s), {} layers: Auto within 10% of the fastest \
         algorithm on {:.1}%, worst {:.2}x, geometric mean {:.3}x",
        check.seed,
        check.threads,
        check.layers.len(),
        100.0 * check.within_10_percent,
        check.worst_ratio,
        check.mean_ratio
    );
    let mut misses: Vec<&Checked> = check
        .layers
        .iter()
        .filter(|c| c.ratio > HIT_RATIO)
        .collect();
    misses.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
    for miss in misses {
        let medians: Vec<String> = miss
            .medians
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.3}"))
            .collect();
        let _ = writeln!(
            text,
            "  {:.2}x {} {}: chose {}, fastest {} (ms: {})",
            miss.ratio,
            miss.layer,
            miss.spec,
            miss.chosen,
            miss.fastest,
            medians.join(", ")
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_layers_are_valid_bounded_and_repeatable() {
        let layers = generate(200, 7);
        assert_eq!(layers.len(), 200);
        for layer in &layers {
            let shape = layer.spec.shape().unwrap();
            assert!((MIN_FLOPS..=MAX_FLOPS).contains(&shape.flops()));
        }
        let again = generate(200, 7);
        assert!(layers.iter().zip(&again).all(|(a, b)| a.spec == b.spec));
        // Every class shows up.
        assert!(layers.iter().any(|l| l.spec.input_hw()[0] == 1));
        assert!(
            layers
                .iter()
                .any(|l| l.spec.group_count() == l.spec.in_channels() && l.spec.group_count() > 1)
        );
        assert!(
            layers
                .iter()
                .any(|l| l.spec.activation_layout() == Layout::Nhwc)
        );
    }
}
