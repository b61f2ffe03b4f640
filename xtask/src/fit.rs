//! `cargo xtask fit-cost TRAIN.json... [--check OTHER.json]`: fits each algorithm's cost
//! correction ([`convkit::Correction`]) to planner-check measurements and prints the weights
//! as the Rust constants the kernel crates hold.
//!
//! Per algorithm, the least-squares fit of `ln(measured / analytic)` (the analytic estimate of
//! the code as it is now, not the one the check recorded) on the layer's
//! [`convkit::CostFeatures`], ridge-regularized (every weight but the bias pulled towards 0, so
//! that a feature few layers have cannot swing the estimate), over the layers of `TRAIN` that
//! the algorithm ran. It then rates the choice Auto would make with the fitted corrections,
//! on `TRAIN` and on each `--check` file (layers drawn from another seed, not fitted on).

use crate::model::Geometry;
use convkit::{COST_FEATURES, CostFeatures};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// `planner-check-*.json` files from `cargo xtask bench --planner-check N`, fitted on
    /// together.
    #[arg(required = true)]
    train: Vec<PathBuf>,
    /// Other planner-check files to rate the fitted choice on.
    #[arg(long)]
    check: Vec<PathBuf>,
    /// Ridge strength per 100 layers.
    #[arg(long, default_value_t = 0.3)]
    ridge: f64,
}

#[derive(Deserialize)]
struct CheckFile {
    threads: usize,
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    spec: String,
    geometry: Geometry,
    medians: Vec<(String, f64)>,
    /// The analytic estimates the check recorded; replaced on loading by the current code's
    /// ([`Layer::with_current_analytic`]).
    analytic: Vec<(String, f64)>,
}

impl Layer {
    fn features(&self) -> Result<[f64; COST_FEATURES], String> {
        let shape = self
            .geometry
            .spec()
            .shape()
            .map_err(|error| format!("{}: {error}", self.spec))?;
        Ok(CostFeatures::of(&shape).0)
    }

    fn fastest(&self) -> f64 {
        self.medians
            .iter()
            .map(|m| m.1)
            .fold(f64::INFINITY, f64::min)
    }

    /// The layer with each algorithm's analytic estimate (ms) from the code as it is now, on
    /// the widest path this CPU runs (the one the check timed), so that a changed analytic
    /// model is refitted on earlier timings without timing them again. Call it in a pool of
    /// the check's thread count: the estimates split the work over the pool's workers.
    fn with_current_analytic(mut self) -> Result<Layer, String> {
        let shape = self
            .geometry
            .spec()
            .shape()
            .map_err(|error| format!("{}: {error}", self.spec))?;
        self.analytic = convkit::algorithms::<f32>()
            .iter()
            .filter_map(|algorithm| {
                let isa = convkit_simd::resolve(algorithm.isas(), convkit_simd::best());
                let cost = algorithm.cost(&shape, isa).ok()?;
                Some((
                    algorithm.algorithm().name().to_owned(),
                    cost.analytic_seconds * 1e3,
                ))
            })
            .collect();
        Ok(self)
    }

    fn analytic(&self, algorithm: &str) -> Option<f64> {
        self.analytic
            .iter()
            .find(|(n, _)| n == algorithm)
            .map(|a| a.1)
    }
}

/// Times beyond this multiple of a layer's fastest are fitted as this multiple, or as the
/// analytic estimate where that is slower still (see [`fitted_target`]).
const SLOW_CLIP: f64 = 3.0;

/// What the correction should make of `analytic` for a `measured` time on a layer whose
/// fastest algorithm took `fastest`: the measured time where it is within [`SLOW_CLIP`] of
/// the fastest; beyond, only "slow": the clip, or the analytic estimate itself where that
/// already lies between the clip and the measured time (pulling an estimate that knows the
/// algorithm is hopeless here down to the clip would move every other layer's for nothing).
fn fitted_target(measured: f64, analytic: f64, fastest: f64) -> f64 {
    let clip = SLOW_CLIP * fastest;
    if measured <= clip {
        measured
    } else {
        analytic.clamp(clip, measured)
    }
}

fn load(path: &Path) -> Result<Vec<Layer>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let file: CheckFile = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a planner check: {error}", path.display()))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(file.threads)
        .build()
        .map_err(|error| format!("a pool of {} threads: {error}", file.threads))?;
    pool.install(|| {
        file.layers
            .into_iter()
            .map(Layer::with_current_analytic)
            .collect()
    })
}

/// Solves `a · x = b` (symmetric positive definite) by Gaussian elimination with pivoting.
fn solve(mut a: Vec<[f64; COST_FEATURES]>, mut b: [f64; COST_FEATURES]) -> [f64; COST_FEATURES] {
    let n = COST_FEATURES;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let diagonal = a[col][col];
        if diagonal.abs() < 1e-12 {
            continue;
        }
        let pivot_row = a[col];
        for row in col + 1..n {
            let factor = a[row][col] / diagonal;
            for (value, &above) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *value -= factor * above;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = [0.0; COST_FEATURES];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = if a[row][row].abs() < 1e-12 {
            0.0
        } else {
            (b[row] - tail) / a[row][row]
        };
    }
    x
}

/// Weights per algorithm, fitted on `layers`; prints each fit's spread before and after.
/// One layer's features and `ln(measured / analytic)` for one algorithm.
type Sample = ([f64; COST_FEATURES], f64);

fn fit(layers: &[Layer], ridge: f64) -> Result<BTreeMap<String, [f64; COST_FEATURES]>, String> {
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for layer in layers {
        let features = layer.features()?;
        // A time beyond SLOW_CLIP times the fastest needs estimating as slow, not exactly:
        // clipped, such outliers (depthwise NHWC as a GEMM of one row) do not swing the fit.
        let fastest = layer.fastest();
        for (algorithm, measured) in &layer.medians {
            if let Some(analytic) = layer.analytic(algorithm) {
                let target = fitted_target(*measured, analytic, fastest);
                samples
                    .entry(algorithm.clone())
                    .or_default()
                    .push((features, (target / analytic).ln()));
            }
        }
    }
    let mut weights = BTreeMap::new();
    for (algorithm, points) in samples {
        let mut normal = vec![[0.0; COST_FEATURES]; COST_FEATURES];
        let mut rhs = [0.0; COST_FEATURES];
        for (f, y) in &points {
            for i in 0..COST_FEATURES {
                for j in 0..COST_FEATURES {
                    normal[i][j] += f[i] * f[j];
                }
                rhs[i] += f[i] * y;
            }
        }
        let strength = ridge * points.len() as f64 / 100.0;
        for (i, row) in normal.iter_mut().enumerate().skip(1) {
            row[i] += strength;
        }
        let w = solve(normal, rhs);
        let spread = |residual: &dyn Fn(&Sample) -> f64| {
            let values: Vec<f64> = points.iter().map(residual).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
        };
        let before = spread(&|(_, y)| *y);
        let after = spread(&|(f, y)| y - f.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>());
        println!(
            "{algorithm:<12} {} layers: sd of ln(measured/estimate) {before:.2} -> {after:.2}",
            points.len()
        );
        weights.insert(algorithm, w);
    }
    Ok(weights)
}

/// Auto's choice with `weights` (or without corrections) on `layers`: share within 10% of
/// the fastest, worst ratio, geometric mean ratio.
fn rate(layers: &[Layer], weights: Option<&BTreeMap<String, [f64; COST_FEATURES]>>) -> String {
    let mut hits = 0;
    let mut worst: f64 = 1.0;
    let mut log_sum = 0.0;
    let mut misses = Vec::new();
    for layer in layers {
        let features = layer.features().unwrap_or([0.0; COST_FEATURES]);
        let estimate = |algorithm: &str| -> Option<f64> {
            let analytic = layer.analytic(algorithm)?;
            let w = weights.and_then(|w| w.get(algorithm));
            let exponent: f64 =
                w.map_or(0.0, |w| w.iter().zip(&features).map(|(a, b)| a * b).sum());
            Some(analytic * exponent.exp())
        };
        let best = layer.fastest();
        let (chosen, name) = layer
            .medians
            .iter()
            .filter_map(|(name, ms)| Some((estimate(name)?, *ms, name.as_str())))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or((best, "?"), |(_, ms, name)| (ms, name));
        let ratio = chosen / best;
        if ratio > 1.10 {
            misses.push((ratio, format!("{ratio:.2}x {} chose {name}", layer.spec)));
        }
        hits += usize::from(ratio <= 1.10);
        worst = worst.max(ratio);
        log_sum += ratio.ln();
    }
    misses.sort_by(|a, b| b.0.total_cmp(&a.0));
    let worst_five: Vec<String> = misses.into_iter().take(5).map(|m| m.1).collect();
    format!(
        "within 10% on {:.1}%, worst {worst:.2}x, geometric mean {:.3}x; worst misses: {}",
        100.0 * hits as f64 / layers.len() as f64,
        (log_sum / layers.len() as f64).exp(),
        worst_five.join("; ")
    )
}

pub fn run(args: &FitArgs) -> Result<(), String> {
    let mut train = Vec::new();
    for path in &args.train {
        train.extend(load(path)?);
    }
    let weights = fit(&train, args.ridge)?;
    println!("\ntraining set: analytic only {}", rate(&train, None));
    println!("training set: fitted {}", rate(&train, Some(&weights)));
    for path in &args.check {
        let layers = load(path)?;
        println!("{}: analytic only {}", path.display(), rate(&layers, None));
        println!(
            "{}: fitted {}",
            path.display(),
            rate(&layers, Some(&weights))
        );
    }
    println!("\nweights, in the order of CostFeatures::NAMES:");
    for (algorithm, w) in &weights {
        let values: Vec<String> = w.iter().map(|v| format!("{v:.3}")).collect();
        println!("{algorithm}: [{}]", values.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fitted_target;

    #[test]
    fn slow_times_are_fitted_as_slow_not_exactly() {
        // Within three times the fastest: the measured time itself.
        assert_eq!(fitted_target(2.5, 1.0, 1.0), 2.5);
        // Beyond: the clip where the estimate is below it,
        assert_eq!(fitted_target(40.0, 1.0, 1.0), 3.0);
        // the estimate where it already lies between the clip and the measured time,
        assert_eq!(fitted_target(40.0, 25.0, 1.0), 25.0);
        // the measured time where the estimate overshoots it.
        assert_eq!(fitted_target(40.0, 90.0, 1.0), 40.0);
    }
}
