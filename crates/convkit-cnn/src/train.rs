//! Training epochs and evaluation.

use crate::layer::Mode;
use crate::loss::{argmax, softmax_cross_entropy};
use crate::mnist::{Augmentation, CLASSES, Dataset};
use crate::optim::Optimizer;
use crate::{CnnError, Sequential};
use rand::Rng;
use rand::seq::SliceRandom;
use std::time::Instant;

/// How an epoch draws its batches.
#[derive(Clone, Copy, Debug)]
pub struct EpochOptions {
    /// Images per step.
    pub batch_size: usize,
    /// Random distortion of the training images.
    pub augmentation: Augmentation,
}

/// Progress after one step, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct StepProgress {
    /// Images trained on so far in this epoch.
    pub images: usize,
    /// Mean loss over them.
    pub loss: f32,
    /// Fraction of them classified right (before the step that used them).
    pub accuracy: f32,
    /// Training throughput so far in this epoch.
    pub images_per_second: f32,
}

/// What one epoch did.
#[derive(Clone, Copy, Debug)]
pub struct EpochStats {
    /// Mean training loss.
    pub loss: f32,
    /// Training accuracy (on the batches as they were seen).
    pub accuracy: f32,
    /// Wall time.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

/// One pass over `data` in a random order: a training step per batch (the last batch may be
/// smaller), calling `on_step` after each.
pub fn train_epoch(
    network: &mut Sequential,
    optimizer: &mut dyn Optimizer,
    data: &Dataset,
    options: EpochOptions,
    rng: &mut impl Rng,
    mut on_step: impl FnMut(StepProgress),
) -> Result<EpochStats, CnnError> {
    if options.batch_size == 0 || data.is_empty() {
        return Err(CnnError::Config(
            "an epoch needs images and a batch size".into(),
        ));
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(rng);
    let started = Instant::now();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    for indices in order.chunks(options.batch_size) {
        let (images, labels) = if !options.augmentation.is_none() {
            data.augmented_batch(indices, &options.augmentation, rng)
        } else {
            data.batch(indices)
        };
        let step = network.train_step(images, &labels, optimizer)?;
        loss_sum += f64::from(step.loss) * indices.len() as f64;
        correct += step.correct;
        seen += indices.len();
        on_step(StepProgress {
            images: seen,
            loss: (loss_sum / seen as f64) as f32,
            accuracy: correct as f32 / seen as f32,
            images_per_second: (seen as f64 / started.elapsed().as_secs_f64()) as f32,
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(EpochStats {
        loss: (loss_sum / seen as f64) as f32,
        accuracy: correct as f32 / seen as f32,
        seconds,
        images_per_second: seen as f64 / seconds,
    })
}

/// A network's results on a labelled set.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean softmax cross-entropy.
    pub loss: f32,
    /// Fraction classified right.
    pub accuracy: f32,
    /// `confusion[true][predicted]` counts.
    pub confusion: [[usize; CLASSES]; CLASSES],
}

impl Evaluation {
    /// The confusion matrix as a text table (rows: true digit, columns: predicted).
    pub fn confusion_table(&self) -> String {
        let mut out = String::from("true\\pred");
        for p in 0..CLASSES {
            out.push_str(&format!("{p:>5}"));
        }
        for (t, row) in self.confusion.iter().enumerate() {
            out.push_str(&format!("\n{t:>9}"));
            for count in row {
                out.push_str(&format!("{count:>5}"));
            }
        }
        out
    }
}

/// Evaluates `network` on all of `data` in batches of `batch_size`.
pub fn evaluate(
    network: &mut Sequential,
    data: &Dataset,
    batch_size: usize,
) -> Result<Evaluation, CnnError> {
    if batch_size == 0 || data.is_empty() {
        return Err(CnnError::Config(
            "evaluation needs images and a batch size".into(),
        ));
    }
    let mut confusion = [[0usize; CLASSES]; CLASSES];
    let mut loss_sum = 0.0f64;
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size) {
        let (images, labels) = data.batch(chunk);
        let logits = network.forward(images, Mode::Eval)?;
        let loss = softmax_cross_entropy(&logits, &labels)?;
        loss_sum += f64::from(loss.loss) * chunk.len() as f64;
        for (row, &label) in logits.data().chunks_exact(logits.sample_len()).zip(&labels) {
            confusion[usize::from(label)][argmax(row).min(CLASSES - 1)] += 1;
        }
    }
    let correct: usize = (0..CLASSES).map(|c| confusion[c][c]).sum();
    Ok(Evaluation {
        loss: (loss_sum / data.len() as f64) as f32,
        accuracy: correct as f32 / data.len() as f32,
        confusion,
    })
}
