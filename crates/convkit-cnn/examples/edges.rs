//! The lecture's demonstration: two hand-made edge kernels on a real digit, then pooling.
//!
//! `cargo run --release -p convkit-cnn --example edges [-- DIGIT]`
//!
//! Takes the first test image of DIGIT (default 7), convolves it through convkit with the
//! vertical-line kernel `[[-1,0,1],[-2,0,2],[-1,0,1]]` and the horizontal-line kernel
//! `[[-1,-2,-1],[0,0,0],[1,2,1]]` (one plan, two output channels, "same" padding), applies
//! 2x2 max pooling, and writes `target/convkit-cnn/edges.png`: input | vertical | horizontal |
//! vertical pooled | horizontal pooled (responses: zero mid-gray, positive light, negative
//! dark), plus each step as its own PNG.

mod common;

use common::{Contrast, save_grid};
use convkit::{ConvSpec, Padding, PlanOptions};
use convkit_cnn::mnist::{self, SIDE};
use convkit_cnn::{Layer, MaxPool2d, Mode, Tensor};
use std::path::Path;

const VERTICAL: [f32; 9] = [-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
const HORIZONTAL: [f32; 9] = [-1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let digit: u8 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .ok()
            .filter(|&d: &u8| d < 10)
            .ok_or_else(|| format!("`{arg}` is not a digit 0-9"))?,
        None => 7,
    };
    let data = mnist::load()?;
    let index = data
        .test
        .labels()
        .iter()
        .position(|&l| l == digit)
        .ok_or("no such digit in the test set")?;
    let image: Vec<f32> = data
        .test
        .image(index)
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();

    let spec = ConvSpec::new(1, 1, 2, [SIDE, SIDE], [3, 3]).padding(Padding::symmetric([1, 1]));
    let weights = [VERTICAL, HORIZONTAL].concat();
    let conv = convkit::plan::<f32>(&spec, &weights, None, &PlanOptions::new())?;
    let mut responses = vec![0.0; spec.output_len()?];
    conv.run(&image, &mut responses)?;
    println!(
        "convolved a test {digit} with both kernels: {:?} on {}",
        conv.algorithm(),
        conv.isa()
    );

    let mut pool = MaxPool2d::new([2, 2], [2, 2])?;
    let pooled = pool.forward(
        Tensor::new([1, 2, SIDE, SIDE], responses.clone())?,
        Mode::Eval,
    )?;
    let half = SIDE / 2;
    // Each pooled value shown over the 2x2 block it summarizes, to line up with the rest.
    let enlarge = |plane: &[f32]| -> Vec<f32> {
        (0..SIDE * SIDE)
            .map(|i| plane[(i / SIDE / 2) * half + (i % SIDE) / 2])
            .collect()
    };
    let (vertical, horizontal) = responses.split_at(SIDE * SIDE);
    let (vertical_pooled, horizontal_pooled) = pooled.data().split_at(half * half);
    let out = Path::new("target/convkit-cnn");
    std::fs::create_dir_all(out)?;
    let steps: [(&str, &[f32], usize, Contrast); 5] = [
        ("input", &image, SIDE, Contrast::PerTile),
        ("vertical", vertical, SIDE, Contrast::Signed),
        ("horizontal", horizontal, SIDE, Contrast::Signed),
        ("vertical_pooled", vertical_pooled, half, Contrast::Signed),
        (
            "horizontal_pooled",
            horizontal_pooled,
            half,
            Contrast::Signed,
        ),
    ];
    for (name, values, side, contrast) in steps {
        let path = out.join(format!("edges_{name}.png"));
        save_grid(&path, &[values], [side, side], 1, 8 * SIDE / side, contrast)?;
        println!("wrote {}", path.display());
    }
    let (vp, hp) = (enlarge(vertical_pooled), enlarge(horizontal_pooled));
    let path = out.join("edges.png");
    // Signed contrast for all five: the input is non-negative, so it shows light on gray.
    save_grid(
        &path,
        &[&image, vertical, horizontal, &vp, &hp],
        [SIDE, SIDE],
        5,
        8,
        Contrast::Signed,
    )?;
    println!(
        "wrote {} (input | vertical | horizontal | both pooled 2x2)",
        path.display()
    );
    Ok(())
}
