//! convkit's shared vocabulary.
//!
//! Everything the algorithm crates and the planner agree on lives here: the description of a
//! convolution ([`ConvSpec`]) and its validated form ([`ConvShape`]), the element types
//! ([`Element`]), the fused epilogue ([`Activation`]), the instruction-set paths ([`Isa`]), the
//! error type ([`ConvError`]) and the two traits that form the seam between the planner and the
//! algorithms ([`ConvAlgorithm`], [`ConvPlan`]).
//!
//! Semantics are PyTorch's / ONNX's: cross-correlation (the kernel is not flipped), OIHW
//! weights, and per spatial axis
//! `out = floor((in + pad_begin + pad_end - dilation*(k-1) - 1) / stride) + 1`.
#![deny(unsafe_code)]

mod activation;
mod algorithm;
mod cost;
mod element;
mod error;
mod isa;
mod spec;
mod spec1d;
mod transposed;

pub use activation::Activation;
pub use algorithm::{Accuracy, Algorithm, ConvAlgorithm, ConvPlan, PlanRequest};
pub use cost::{COST_FEATURES, Correction, Cost, CostFeatures};
pub use element::Element;
pub use error::ConvError;
pub use isa::Isa;
pub use spec::{ConvShape, ConvSpec, Layout, Padding};
pub use spec1d::{ConvSpec1d, Layout1d, Padding1d};
pub use transposed::{TransposedShape, TransposedSpec};
