//! The vendored MNIST sample: 5,000 real handwritten digits, 500 per class.
//!
//! `data/mnist_5k.csv.gz` (see `data/README.md` for its source and licence) is embedded in
//! the crate. [`load`] splits it deterministically: the last 100 images of each digit, in
//! file order, are the test set (1,000 images); the other 4,000 train.

use crate::{CnnError, Tensor};
use flate2::read::GzDecoder;
use rand::{Rng, RngExt};
use std::io::{BufRead, BufReader};

/// Side of an image in pixels.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;
/// Digit classes.
pub const CLASSES: usize = 10;
/// Test images kept per class.
pub const TEST_PER_CLASS: usize = 100;
/// Mean of MNIST's pixel intensities in [0, 1] (the usual normalization constants).
pub const MEAN: f32 = 0.1307;
/// Standard deviation of MNIST's pixel intensities in [0, 1].
pub const STD: f32 = 0.3081;

static VENDORED: &[u8] = include_bytes!("../data/mnist_5k.csv.gz");

/// Grayscale 28x28 digits (0 = background, 255 = ink) and their labels.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

/// The vendored sample, split.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 400 images per digit.
    pub train: Dataset,
    /// 100 images per digit (the last of each in the file).
    pub test: Dataset,
}

/// A pixel in 0..=255 as the network sees it: scaled to [0, 1], then standardized.
pub fn normalize(pixel: u8) -> f32 {
    (f32::from(pixel) / 255.0 - MEAN) / STD
}

impl Dataset {
    /// Images (row-major 28x28 each, `PIXELS` bytes) and labels 0..=9.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>) -> Result<Dataset, CnnError> {
        if pixels.len() != labels.len() * PIXELS {
            return Err(CnnError::Data(format!(
                "{} pixels for {} images of {PIXELS}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| usize::from(l) >= CLASSES) {
            return Err(CnnError::Data(format!("label {bad} is not a digit")));
        }
        Ok(Dataset { pixels, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The raw pixels of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.pixels[index * PIXELS..(index + 1) * PIXELS]
    }

    /// The labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The images at `indices`, normalized, as a `[len, 1, 28, 28]` batch, and their labels.
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Vec<u8>) {
        let data = indices
            .iter()
            .flat_map(|&i| self.image(i).iter().map(|&p| normalize(p)))
            .collect();
        let tensor =
            Tensor::new([indices.len(), 1, SIDE, SIDE], data).expect("PIXELS values per image");
        (tensor, indices.iter().map(|&i| self.labels[i]).collect())
    }

    /// Like [`Dataset::batch`], each image moved by a random [`Augmentation`] (bilinear
    /// resampling; what comes from outside the image is background). Cheap regularization
    /// for a training set of only 4,000 digits.
    pub fn augmented_batch(
        &self,
        indices: &[usize],
        augmentation: &Augmentation,
        rng: &mut impl Rng,
    ) -> (Tensor, Vec<u8>) {
        let mut data = vec![0.0f32; indices.len() * PIXELS];
        for (&index, out) in indices.iter().zip(data.chunks_exact_mut(PIXELS)) {
            let transform = augmentation.draw(rng);
            let image = self.image(index);
            let pixel = |y: isize, x: isize| -> f32 {
                if (0..SIDE as isize).contains(&y) && (0..SIDE as isize).contains(&x) {
                    f32::from(image[y as usize * SIDE + x as usize])
                } else {
                    0.0
                }
            };
            for (i, slot) in out.iter_mut().enumerate() {
                let [sy, sx] = transform.source([(i / SIDE) as f32, (i % SIDE) as f32]);
                let (y0, x0) = (sy.floor(), sx.floor());
                let (fy, fx) = (sy - y0, sx - x0);
                let (y0, x0) = (y0 as isize, x0 as isize);
                let value = (1.0 - fy) * ((1.0 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1))
                    + fy * ((1.0 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1));
                *slot = (value / 255.0 - MEAN) / STD;
            }
        }
        let tensor =
            Tensor::new([indices.len(), 1, SIDE, SIDE], data).expect("PIXELS values per image");
        (tensor, indices.iter().map(|&i| self.labels[i]).collect())
    }
}

/// Random affine distortions of training digits: each image is rotated, scaled and shifted
/// about its centre by amounts drawn uniformly within these bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmentation {
    /// Largest shift, in pixels, along each axis.
    pub max_shift: f32,
    /// Largest rotation, in degrees, either way.
    pub max_rotation_degrees: f32,
    /// Largest relative change of size (0.1: between 90% and 110%).
    pub max_scale: f32,
}

impl Augmentation {
    /// No distortion.
    pub const NONE: Augmentation = Augmentation {
        max_shift: 0.0,
        max_rotation_degrees: 0.0,
        max_scale: 0.0,
    };

    /// Whether this distorts at all.
    pub fn is_none(&self) -> bool {
        *self == Augmentation::NONE
    }

    fn draw(&self, rng: &mut impl Rng) -> Affine {
        let mut uniform = |bound: f32| {
            if bound > 0.0 {
                rng.random_range(-bound..=bound)
            } else {
                0.0
            }
        };
        let angle = uniform(self.max_rotation_degrees).to_radians();
        let scale = 1.0 + uniform(self.max_scale);
        let shift = [uniform(self.max_shift), uniform(self.max_shift)];
        Affine {
            cos: angle.cos() / scale,
            sin: angle.sin() / scale,
            shift,
        }
    }
}

/// Maps an output pixel to the source position it samples (the inverse transform).
#[derive(Clone, Copy, Debug)]
struct Affine {
    cos: f32,
    sin: f32,
    shift: [f32; 2],
}

impl Affine {
    fn source(&self, [y, x]: [f32; 2]) -> [f32; 2] {
        let centre = (SIDE as f32 - 1.0) / 2.0;
        let (dy, dx) = (y - centre - self.shift[0], x - centre - self.shift[1]);
        [
            centre + self.cos * dy - self.sin * dx,
            centre + self.sin * dy + self.cos * dx,
        ]
    }
}

/// Parses the CSV (784 pixel values 0..=255, then the label, per line).
pub fn parse_csv(reader: impl BufRead) -> Result<Dataset, CnnError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| CnnError::Data(format!("line {}: {e}", number + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let values = line
            .split(',')
            .map(|v| v.trim().parse::<u8>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CnnError::Data(format!("line {}: {e}", number + 1)))?;
        if values.len() != PIXELS + 1 {
            return Err(CnnError::Data(format!(
                "line {}: {} values, expected {}",
                number + 1,
                values.len(),
                PIXELS + 1
            )));
        }
        pixels.extend_from_slice(&values[..PIXELS]);
        labels.push(values[PIXELS]);
    }
    Dataset::new(pixels, labels)
}

/// Loads and splits the vendored 5,000 digits.
pub fn load() -> Result<Mnist, CnnError> {
    let all = parse_csv(BufReader::new(GzDecoder::new(VENDORED)))?;
    let mut per_class = [0usize; CLASSES];
    all.labels()
        .iter()
        .for_each(|&l| per_class[usize::from(l)] += 1);
    let mut seen = [0usize; CLASSES];
    let (mut train, mut test) = (Dataset::default(), Dataset::default());
    for index in 0..all.len() {
        let label = usize::from(all.labels[index]);
        seen[label] += 1;
        let part = if seen[label] > per_class[label].saturating_sub(TEST_PER_CLASS) {
            &mut test
        } else {
            &mut train
        };
        part.pixels.extend_from_slice(all.image(index));
        part.labels.push(all.labels[index]);
    }
    Ok(Mnist { train, test })
}
