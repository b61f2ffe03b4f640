//! convkit's verification harness: one oracle for unit tests, proptest, fuzz targets and the
//! bench's error column.
//!
//! - [`ConvProblem`]: a convolution plus deterministic data, with a proptest strategy
//!   ([`conv_problem`]) and an `arbitrary::Arbitrary` impl that cover batch 1..4, channels
//!   1..40, kernels 1..7 (non-square), stride 1..4, dilation 1..3, asymmetric padding
//!   0..=kernel, groups (including depthwise), both layouts, bias and every activation, and
//!   outputs down to 1x1.
//! - [`check_impl`]: runs one algorithm on one ISA path into NaN-filled output and scratch, and
//!   compares every output with the f64 reference under the algorithm's declared error bound
//!   (relative to `Σ|x·w| + |bias|`), bit-exactly on integer-valued data where the algorithm
//!   declares exactness, and checks that a second run reproduces the first bit for bit.
//! - [`conformance_suite!`]: instantiates the property test for an algorithm on every ISA path.
//! - [`check_golden`]: a hand-computed case on every algorithm, path and layout.
//! - Helpers the tests share: [`pool`], [`integers`], [`nchw_to_nhwc`], [`isas`].

mod check;
mod golden;
mod helpers;
mod problem;
mod suite;

pub use check::{
    CheckFailure, CheckOutcome, CheckReport, check_algorithms, check_impl, compare_with_reference,
};
pub use golden::{GoldenCase, check_golden};
pub use helpers::{integers, isas, nchw_to_nhwc, pool};
pub use problem::{ConvProblem, MAC_BUDGET, ProblemParams, Values, conv_problem, winograd_problem};
pub use suite::{SuiteSummary, run_conformance};

#[doc(hidden)]
pub mod __private {
    pub use convkit_core::{ConvAlgorithm, Isa};
}
