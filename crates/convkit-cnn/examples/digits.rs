//! Trains the digits network on the vendored MNIST sample and shows what it learned.
//!
//! `cargo run --release -p convkit-cnn --example digits [-- --threads 2 --epochs 30]`
//!
//! Prints a progress bar per epoch (loss, accuracy, images/s), the test accuracy as
//! `test accuracy: NN.N%`, a confusion matrix, and writes to `--out`
//! (default `target/convkit-cnn/`): the model (`digits.safetensors`), `filters.png` (the
//! first layer's learned 5x5 filters), `feature_maps_conv1.png` and `feature_maps_conv2.png`
//! (one test digit after each convolution), `training_curve.png` and `digit.png` (that test
//! digit, for the `predict` example).
//!
//! `--plain` trains PyTorch's reference recipe instead (Adam 1e-3, no schedule, no
//! augmentation, 15 epochs), to compare training speed like for like.

mod common;

use clap::Parser;
use common::{Contrast, save_grid};
use convkit_cnn::mnist::{self, Augmentation, SIDE};
use convkit_cnn::train::{EpochOptions, evaluate, train_epoch};
use convkit_cnn::{Adam, Optimizer, Sequential, lenet};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Parser)]
struct Args {
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Passes over the 4,000 training images.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Seed of the initial weights, the batch order and the augmentation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// PyTorch's reference recipe (for speed comparisons): Adam 1e-3, no augmentation.
    #[arg(long)]
    plain: bool,
    /// Where the model and the PNGs go.
    #[arg(long, default_value = "target/convkit-cnn")]
    out: PathBuf,
}

/// The recipe: AdamW with a cosine learning-rate decay, and mild random affine distortions
/// of the training digits (4,000 images overfit without them).
struct Recipe {
    epochs: usize,
    rate: f32,
    weight_decay: f32,
    cosine: bool,
    augmentation: Augmentation,
}

impl Recipe {
    fn new(plain: bool, epochs: Option<usize>) -> Recipe {
        if plain {
            Recipe {
                epochs: epochs.unwrap_or(15),
                rate: 1e-3,
                weight_decay: 0.0,
                cosine: false,
                augmentation: Augmentation::NONE,
            }
        } else {
            Recipe {
                epochs: epochs.unwrap_or(30),
                rate: 2e-3,
                weight_decay: 0.05,
                cosine: true,
                augmentation: Augmentation {
                    max_shift: 2.0,
                    max_rotation_degrees: 10.0,
                    max_scale: 0.1,
                },
            }
        }
    }

    fn rate_at(&self, epoch: usize) -> f32 {
        if self.cosine {
            let progress = epoch as f32 / self.epochs as f32;
            self.rate * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
        } else {
            self.rate
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| run(&args, threads))
}

fn run(args: &Args, threads: usize) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.out)?;
    let data = mnist::load()?;
    let recipe = Recipe::new(args.plain, args.epochs);
    let mut network = Sequential::new([1, SIDE, SIDE], &lenet(), args.seed)?;
    println!("{}", network.summary()?);
    println!(
        "training on {} images, testing on {}, {threads} thread(s), {} epochs, batch {}{}",
        data.train.len(),
        data.test.len(),
        recipe.epochs,
        args.batch,
        if args.plain { ", plain recipe" } else { "" }
    );
    let mut optimizer = Adam::new(recipe.rate).weight_decay(recipe.weight_decay);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let options = EpochOptions {
        batch_size: args.batch,
        augmentation: recipe.augmentation,
    };
    let style = ProgressStyle::with_template("epoch {prefix:>2} [{bar:30}] {pos:>4}/{len} {msg}")?
        .progress_chars("=> ");
    let (mut curve, mut train_seconds, mut trained) = (Vec::new(), 0.0, 0usize);
    for epoch in 0..recipe.epochs {
        optimizer.set_learning_rate(recipe.rate_at(epoch));
        let bar = ProgressBar::new(data.train.len() as u64)
            .with_style(style.clone())
            .with_prefix((epoch + 1).to_string());
        let stats = train_epoch(
            &mut network,
            &mut optimizer,
            &data.train,
            options,
            &mut rng,
            |p| {
                bar.set_position(p.images as u64);
                bar.set_message(format!(
                    "loss {:.4}  acc {:5.1}%  {:>6.0} img/s",
                    p.loss,
                    100.0 * p.accuracy,
                    p.images_per_second
                ));
            },
        )?;
        let test = evaluate(&mut network, &data.test, 250)?;
        let summary = format!(
            "loss {:.4}  acc {:5.1}%  {:>6.0} img/s  test {:5.1}%",
            stats.loss,
            100.0 * stats.accuracy,
            stats.images_per_second,
            100.0 * test.accuracy
        );
        if bar.is_hidden() {
            // Not a terminal (a log, CI): one line per epoch instead of the bar.
            println!("epoch {:>2}  {summary}", epoch + 1);
        }
        bar.finish_with_message(summary);
        train_seconds += stats.seconds;
        trained += data.train.len();
        curve.push((stats.loss, stats.accuracy, test.accuracy));
    }
    let test = evaluate(&mut network, &data.test, 250)?;
    println!("test accuracy: {:.1}%", 100.0 * test.accuracy);
    println!(
        "training: {:.1} s for {trained} images, {:.0} images/s on {threads} thread(s); \
         wall time so far {:.1} s",
        train_seconds,
        trained as f64 / train_seconds,
        started.elapsed().as_secs_f64()
    );
    println!(
        "confusion matrix (rows: true digit, columns: predicted)\n{}",
        test.confusion_table()
    );

    let model = args.out.join("digits.safetensors");
    network.save(&model)?;
    println!("saved {}", model.display());
    write_pictures(&mut network, &data.test, &args.out, &curve)?;
    println!("total wall time: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn write_pictures(
    network: &mut Sequential,
    test: &mnist::Dataset,
    out: &Path,
    curve: &[(f32, f32, f32)],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The first layer's filters: 12 kernels of 5x5, zero as mid-gray.
    let filters = network.parameters()[0];
    let [_, _, kh, kw] = <[usize; 4]>::try_from(filters.shape())?;
    let kernels: Vec<&[f32]> = filters.values().chunks_exact(kh * kw).collect();
    let path = out.join("filters.png");
    save_grid(&path, &kernels, [kh, kw], 6, 16, Contrast::Signed)?;
    println!("wrote {}", path.display());

    // One test digit and its feature maps after each convolution (layers 0 and 2).
    let index = test.labels().iter().position(|&l| l == 7).unwrap_or(0);
    let digit = test.image(index);
    image::GrayImage::from_raw(SIDE as u32, SIDE as u32, digit.to_vec())
        .ok_or("digit size")?
        .save(out.join("digit.png"))?;
    println!(
        "wrote {} (a test {})",
        out.join("digit.png").display(),
        test.labels()[index]
    );
    let (input, _) = test.batch(&[index]);
    let trace = network.forward_trace(input)?;
    for (layer, name) in [(0, "conv1"), (2, "conv2")] {
        let maps = &trace[layer];
        let [_, channels, h, w] = maps.shape();
        let planes: Vec<&[f32]> = maps.data().chunks_exact(h * w).take(channels).collect();
        let path = out.join(format!("feature_maps_{name}.png"));
        save_grid(
            &path,
            &planes,
            [h, w],
            if channels > 12 { 8 } else { 6 },
            6,
            Contrast::PerTile,
        )?;
        println!("wrote {}", path.display());
    }

    // Training curve: loss (red, left scale 0..max), train (blue) and test (green) accuracy
    // (0.9..1.0 on the same plot area).
    let path = out.join("training_curve.png");
    {
        let root = BitMapBackend::new(&path, (640, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let epochs = curve.len().max(2) as f32;
        let max_loss = curve.iter().map(|c| c.0).fold(0.0f32, f32::max).max(1e-3);
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(1f32..epochs, 0f32..1f32)?;
        // Grid and frame without text (the bitmap backend here has no font): quarters of
        // each scale, and a line per epoch along the bottom.
        for quarter in 0..=4 {
            let y = quarter as f32 / 4.0;
            chart.draw_series(LineSeries::new([(1.0, y), (epochs, y)], BLACK.mix(0.2)))?;
        }
        for epoch in 1..=curve.len() {
            let x = epoch as f32;
            chart.draw_series(LineSeries::new([(x, 0.0), (x, 0.02)], BLACK.mix(0.5)))?;
        }
        let series = |pick: fn(&(f32, f32, f32)) -> f32, scale: Box<dyn Fn(f32) -> f32>| {
            curve
                .iter()
                .enumerate()
                .map(|(i, c)| ((i + 1) as f32, scale(pick(c))))
                .collect::<Vec<_>>()
        };
        chart.draw_series(LineSeries::new(
            series(|c| c.0, Box::new(move |l| l / max_loss)),
            RED.stroke_width(2),
        ))?;
        let accuracy = |a: f32| ((a - 0.9) / 0.1).clamp(0.0, 1.0);
        chart.draw_series(LineSeries::new(
            series(|c| c.1, Box::new(accuracy)),
            BLUE.stroke_width(2),
        ))?;
        chart.draw_series(LineSeries::new(
            series(|c| c.2, Box::new(accuracy)),
            GREEN.stroke_width(2),
        ))?;
        root.present()?;
    }
    println!(
        "wrote {} (x: epochs 1..{}; red: training loss, 0..{:.3}; blue: training accuracy, \
         green: test accuracy, both 90%..100%; gray lines: quarters of each scale)",
        path.display(),
        curve.len(),
        curve.iter().map(|c| c.0).fold(0.0f32, f32::max)
    );
    Ok(())
}
