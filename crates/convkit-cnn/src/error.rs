//! The crate's one error type.

use convkit::ConvError;

/// Everything that can go wrong building, running, training, saving or loading a network.
#[derive(Debug, thiserror::Error)]
pub enum CnnError {
    /// A convolution or GEMM rejected its arguments.
    #[error(transparent)]
    Conv(#[from] ConvError),
    /// A layer got a tensor of the wrong shape.
    #[error("{layer}: expected input {expected}, got {actual:?}")]
    Shape {
        /// The layer's description.
        layer: String,
        /// What it expects.
        expected: String,
        /// The `[batch, channels, height, width]` it got.
        actual: [usize; 4],
    },
    /// A layer's or optimizer's configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// `backward` without a training-mode `forward` before it.
    #[error("{layer}: backward called without a training-mode forward pass before it")]
    NoForward {
        /// The layer's description.
        layer: String,
    },
    /// A dataset could not be read.
    #[error("dataset: {0}")]
    Data(String),
    /// A saved model is corrupt, of another version, or does not match the network.
    #[error("model file {path}: {reason}")]
    Model {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}
