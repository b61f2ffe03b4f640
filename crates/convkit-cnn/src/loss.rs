//! Softmax cross-entropy, the classifier's loss.

use crate::{CnnError, Tensor};

/// The loss of a batch and its gradient with respect to the logits.
#[derive(Clone, Debug)]
pub struct LossOutput {
    /// Mean over the batch of `−log softmax(logits)[label]`.
    pub loss: f32,
    /// `(softmax(logits) − onehot(label)) / N`, shaped like the logits.
    pub grad: Tensor,
    /// Samples whose largest logit is their label.
    pub correct: usize,
}

/// Row-wise softmax of `[N, classes, 1, 1]` logits, computed stably (max subtracted).
pub fn softmax(logits: &Tensor) -> Vec<f32> {
    let classes = logits.sample_len();
    let mut out = logits.data().to_vec();
    for row in out.chunks_exact_mut(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for x in row.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        row.iter_mut().for_each(|x| *x /= sum);
    }
    out
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// Softmax cross-entropy of `[N, classes, 1, 1]` logits against `labels` (one per sample).
pub fn softmax_cross_entropy(logits: &Tensor, labels: &[u8]) -> Result<LossOutput, CnnError> {
    let classes = logits.sample_len();
    if labels.len() != logits.batch() || labels.iter().any(|&l| usize::from(l) >= classes) {
        return Err(CnnError::Config(format!(
            "{} labels in 0..{classes} needed for logits of shape {:?}",
            logits.batch(),
            logits.shape()
        )));
    }
    let mut probabilities = softmax(logits);
    let batch = logits.batch() as f32;
    let mut loss = 0.0f64;
    let mut correct = 0;
    for ((row, logit_row), &label) in probabilities
        .chunks_exact_mut(classes)
        .zip(logits.data().chunks_exact(classes))
        .zip(labels)
    {
        let label = usize::from(label);
        loss -= f64::from(row[label].max(f32::MIN_POSITIVE)).ln();
        correct += usize::from(argmax(logit_row) == label);
        row[label] -= 1.0;
        row.iter_mut().for_each(|g| *g /= batch);
    }
    Ok(LossOutput {
        loss: (loss / f64::from(batch)) as f32,
        grad: Tensor::new(logits.shape(), probabilities)?,
        correct,
    })
}
