//! Classifies a PNG with a model saved by the `digits` example.
//!
//! `cargo run --release -p convkit-cnn --example predict -- MODEL IMAGE.png`
//!
//! The image is read as grayscale and resized to 28x28 if needed. MNIST digits are light on
//! dark; an image with a light border (dark ink on paper) is inverted first. Prints the class
//! probabilities, most likely first.

use convkit_cnn::mnist::{SIDE, normalize};
use convkit_cnn::{Mode, Sequential, Tensor, loss};
use image::imageops::FilterType;
use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(picture)) = (args.next(), args.next()) else {
        return Err("usage: predict MODEL.safetensors IMAGE.png".into());
    };
    let mut network = Sequential::load(&PathBuf::from(&model)).map_err(|e| e.to_string())?;
    if network.input_shape() != [1, SIDE, SIDE] {
        return Err(format!(
            "{model} takes {:?} inputs, not 28x28 grayscale digits",
            network.input_shape()
        ));
    }
    let image = image::open(&picture)
        .map_err(|e| format!("{picture}: not a readable image ({e})"))?
        .to_luma8();
    let image = if image.dimensions() == (SIDE as u32, SIDE as u32) {
        image
    } else {
        println!("resizing {}x{} to 28x28", image.width(), image.height());
        image::imageops::resize(&image, SIDE as u32, SIDE as u32, FilterType::Triangle)
    };
    let pixels = image.into_raw();
    let border: Vec<u8> = (0..SIDE * SIDE)
        .filter(|i| {
            let (y, x) = (i / SIDE, i % SIDE);
            y == 0 || x == 0 || y == SIDE - 1 || x == SIDE - 1
        })
        .map(|i| pixels[i])
        .collect();
    let inverted = border.iter().map(|&p| usize::from(p)).sum::<usize>() / border.len() > 127;
    if inverted {
        println!("light background: inverting to MNIST's light-on-dark");
    }
    let input: Vec<f32> = pixels
        .iter()
        .map(|&p| normalize(if inverted { 255 - p } else { p }))
        .collect();
    let logits = network
        .forward(
            Tensor::new([1, 1, SIDE, SIDE], input).map_err(|e| e.to_string())?,
            Mode::Eval,
        )
        .map_err(|e| e.to_string())?;
    let probabilities = loss::softmax(&logits);
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("{picture}: predicted {}", ranked[0].0);
    for (class, p) in ranked {
        println!(
            "  {class}  {:6.2}%  {}",
            100.0 * p,
            "#".repeat((p * 40.0).round() as usize)
        );
    }
    Ok(())
}
