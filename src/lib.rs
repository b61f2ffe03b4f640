//! # convkit
//!
//! SIMD 2-D convolution for Rust, verified against a naive reference. Describe a convolution
//! once with [`ConvSpec`], [`plan`] it (weights packed, algorithm and instruction set chosen
//! once), then [`Plan::run`] it many times into your own buffers.
//!
//! ```
//! use convkit::{Activation, Algorithm, ConvSpec, Layout, Padding, PlanOptions};
//!
//! # fn main() -> Result<(), convkit::ConvError> {
//! // 3 -> 8 channels, 3x3 kernel, "same" padding, on a 2 x 3 x 16 x 16 NCHW batch.
//! let spec = ConvSpec::new(2, 3, 8, [16, 16], [3, 3])
//!     .padding(Padding::symmetric([1, 1]))
//!     .layout(Layout::Nchw);
//! let [oh, ow] = spec.output_hw()?;
//! let weights = vec![0.1f32; spec.weight_len()?]; // OIHW
//! let bias = vec![0.5f32; 8];
//! let conv = convkit::plan::<f32>(
//!     &spec,
//!     &weights,
//!     Some(&bias[..]),
//!     &PlanOptions::new().algorithm(Algorithm::Auto).activation(Activation::Relu),
//! )?;
//! let input = vec![1.0f32; spec.input_len()?];
//! let mut output = vec![0.0f32; spec.output_len()?];
//! conv.run(&input, &mut output)?;
//! assert_eq!(output.len(), 2 * 8 * oh * ow);
//! // The centre pixel sees all 27 taps: 0.5 + 27 * 0.1.
//! assert!((output[oh / 2 * ow + ow / 2] - 3.2).abs() < 1e-5);
//! println!("ran {:?} on {}", conv.algorithm(), conv.isa());
//! # Ok(())
//! # }
//! ```
//!
//! Semantics are PyTorch's: cross-correlation, OIHW weights whatever the activation layout,
//! `out = floor((in + pad_begin + pad_end − dilation·(k−1) − 1) / stride) + 1`, bias and
//! activation applied per output channel after the sum. Bad input returns a [`ConvError`]
//! naming the field at fault and leaves the output untouched; nothing panics.
//!
//! `run` parallelizes with rayon inside the caller's current pool (wrap it in
//! `ThreadPool::install` to choose the thread count); convkit never builds the global pool.

#[cfg(feature = "ndarray")]
mod arrays;
mod registry;
mod tune;

pub use convkit_core::{
    Accuracy, Activation, Algorithm, COST_FEATURES, ConvAlgorithm, ConvError, ConvPlan, ConvShape,
    ConvSpec, ConvSpec1d, Correction, Cost, CostFeatures, Element, Isa, Layout, Layout1d, Padding,
    Padding1d, TransposedShape, TransposedSpec,
};
pub use convkit_simd::F32Storage;
pub use half::{bf16, f16};
pub use registry::{Registered, algorithms};

/// The algorithms [`registered_algorithms!`] names (not part of the API).
#[doc(hidden)]
pub mod __registry {
    pub use convkit_direct::Direct;
    pub use convkit_im2col::Im2colGemm;
    pub use convkit_reference::Reference;
    pub use convkit_winograd::Winograd;
}

use std::sync::Mutex;

/// How to plan a convolution: algorithm, fused activation, instruction-set path.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PlanOptions {
    algorithm: Option<Algorithm>,
    activation: Activation,
    isa: Option<Isa>,
    tune: bool,
}

impl PlanOptions {
    /// `Algorithm::Auto`, no activation, the widest path this CPU runs (or `CONVKIT_ISA`).
    pub fn new() -> PlanOptions {
        PlanOptions::default()
    }

    /// Forces an algorithm; `Algorithm::Auto` (the default) lets the planner choose.
    pub fn algorithm(mut self, algorithm: Algorithm) -> PlanOptions {
        self.algorithm = Some(algorithm);
        self
    }

    /// The activation fused after the bias add.
    pub fn activation(mut self, activation: Activation) -> PlanOptions {
        self.activation = activation;
        self
    }

    /// Caps the instruction-set path (the plan uses the widest path its algorithm has that is
    /// no wider). Asking for a path this CPU lacks is `ConvError::IsaUnavailable`. Without it,
    /// `CONVKIT_ISA` applies, then the widest path this CPU runs.
    pub fn isa(mut self, isa: Isa) -> PlanOptions {
        self.isa = Some(isa);
        self
    }

    /// With `Algorithm::Auto`: instead of trusting the cost model, prepare the candidates the
    /// model rates within [`TUNE_CANDIDATE_RATIO`] of its best, time each on zero buffers of
    /// the spec's shape in the current rayon pool, and keep the fastest. The winner is cached
    /// per (spec, element type, path, thread count) for the life of the process, so later
    /// plans of the same problem only pack weights. Results differ from untuned plans only
    /// within the chosen algorithm's declared error bound.
    pub fn tune(mut self, tune: bool) -> PlanOptions {
        self.tune = tune;
        self
    }
}

/// Tuning times only the candidates the cost model rates within this factor of its best.
pub const TUNE_CANDIDATE_RATIO: f64 = 3.0;

/// A prepared convolution. `Send + Sync`: one plan can run from several threads at once.
pub struct Plan<T: Element> {
    inner: Box<dyn ConvPlan<T>>,
    scratch: Mutex<Vec<f32>>,
}

impl<T: Element> std::fmt::Debug for Plan<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("algorithm", &self.algorithm())
            .field("isa", &self.isa())
            .field("shape", self.shape())
            .field("scratch_len", &self.scratch_len())
            .finish()
    }
}

/// Plans `spec` (a [`ConvSpec`], or a [`ConvSpec1d`] with OIW weights) with OIHW `weights`
/// and an optional bias (one per output channel).
///
/// Validates the spec, every length and the activation; picks the algorithm (`Auto`: the
/// lowest estimated cost among the registered algorithms that support the problem) and the
/// instruction-set path; packs the weights. A forced algorithm that cannot run the problem is
/// `ConvError::Unsupported` with the reason, never a silent fallback.
pub fn plan<T: Registered>(
    spec: &impl AsRef<ConvSpec>,
    weights: &[T],
    bias: Option<&[T]>,
    options: &PlanOptions,
) -> Result<Plan<T>, ConvError> {
    let spec = spec.as_ref();
    let ceiling = convkit_simd::select(options.isa)?;
    let shape = spec.shape()?;
    let requested = options.algorithm.unwrap_or(Algorithm::Auto);
    let registered = algorithms::<T>();
    if requested == Algorithm::Auto && options.tune {
        return tune::plan(spec, &shape, weights, bias, options.activation, ceiling);
    }
    let algorithm = if requested == Algorithm::Auto {
        registered
            .iter()
            .filter_map(|a| {
                let isa = convkit_simd::resolve(a.isas(), ceiling);
                a.cost(&shape, isa).ok().map(|cost| (cost, *a))
            })
            .min_by(|(x, _), (y, _)| x.seconds.total_cmp(&y.seconds))
            .map(|(_, a)| a)
            .ok_or_else(|| ConvError::Unsupported {
                algorithm: Algorithm::Auto,
                reason: "no registered algorithm supports this problem".to_owned(),
            })?
    } else {
        *registered
            .iter()
            .find(|a| a.algorithm() == requested)
            .ok_or_else(|| ConvError::Unsupported {
                algorithm: requested,
                reason: format!(
                    "{} is not implemented for {} yet",
                    requested.name(),
                    T::NAME
                ),
            })?
    };
    let isa = convkit_simd::resolve(algorithm.isas(), ceiling);
    algorithm.cost(&shape, isa)?;
    let request = convkit_core::PlanRequest::new(spec, weights, bias, options.activation, isa)?;
    let inner = algorithm.prepare(&request)?;
    Ok(Plan::new(inner))
}

impl<T: Element> Plan<T> {
    /// Wraps a prepared plan; its scratch is allocated on the first [`Plan::run`].
    fn new(inner: Box<dyn ConvPlan<T>>) -> Plan<T> {
        Plan {
            inner,
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// Runs the convolution: `input` and `output` in the spec's layout, lengths
    /// `spec.input_len()` and `spec.output_len()`. Every output element is written; on error
    /// none is.
    pub fn run(&self, input: &[T], output: &mut [T]) -> Result<(), ConvError> {
        if self.inner.scratch_len() == 0 {
            return self.inner.run(input, output, &mut []);
        }
        match self.scratch.try_lock() {
            Ok(mut scratch) => {
                // Allocated on the first run, not at planning: a plan made for one run (or run
                // only through `run_with_scratch`) never pays for it.
                if scratch.len() < self.inner.scratch_len() {
                    scratch.resize(self.inner.scratch_len(), 0.0);
                }
                self.inner.run(input, output, &mut scratch)
            }
            // Another thread is running this plan: use a scratch of our own.
            Err(_) => self
                .inner
                .run(input, output, &mut vec![0.0; self.inner.scratch_len()]),
        }
    }

    /// Like [`Plan::run`] with caller-owned scratch of at least [`Plan::scratch_len`] f32s,
    /// so that a hot loop allocates nothing even when runs overlap.
    pub fn run_with_scratch(
        &self,
        input: &[T],
        output: &mut [T],
        scratch: &mut [f32],
    ) -> Result<(), ConvError> {
        self.inner.run(input, output, scratch)
    }

    /// f32 elements of scratch one run needs.
    pub fn scratch_len(&self) -> usize {
        self.inner.scratch_len()
    }

    /// Bytes the plan holds (packed weights, bias, tables), not counting scratch.
    pub fn plan_bytes(&self) -> usize {
        self.inner.plan_bytes()
    }

    /// The algorithm that runs.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }

    /// The instruction-set path that runs.
    pub fn isa(&self) -> Isa {
        self.inner.isa()
    }

    /// The validated shape (output size, lengths, FLOPs).
    pub fn shape(&self) -> &ConvShape {
        self.inner.shape()
    }
}

impl<T: Registered> Plan<T> {
    /// The accuracy the algorithm that runs declares for the plan's shape: the bound its
    /// outputs keep to against the exact convolution (Winograd's grows with its tile and is
    /// not exact on integers; the others sum in one f32 chain per output).
    pub fn accuracy(&self) -> Accuracy {
        algorithms::<T>()
            .into_iter()
            .find(|registered| registered.algorithm() == self.algorithm())
            .map(|registered| registered.accuracy(self.shape()))
            .expect("a plan runs a registered algorithm")
    }
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
