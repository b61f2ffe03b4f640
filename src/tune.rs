//! `PlanOptions::tune(true)`: the measured choice between the cost model's best candidates,
//! cached per problem for the life of the process.

use crate::{Plan, Registered, algorithms};
use convkit_core::{
    Activation, Algorithm, ConvAlgorithm, ConvError, ConvShape, ConvSpec, Isa, PlanRequest,
};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// What a tuned choice depends on: the problem, the element type, the path ceiling and the
/// pool's thread count.
type Key = (ConvSpec, &'static str, Isa, usize);

/// Winners so far.
fn cache() -> &'static Mutex<HashMap<Key, Algorithm>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Algorithm>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Timed runs per candidate after one warm-up; the fastest counts.
const TIMED_RUNS: usize = 3;

/// Plans `spec` with the cached winner, or times the candidates and caches the fastest.
pub(crate) fn plan<T: Registered>(
    spec: &ConvSpec,
    shape: &ConvShape,
    weights: &[T],
    bias: Option<&[T]>,
    activation: Activation,
    ceiling: Isa,
) -> Result<Plan<T>, ConvError> {
    let key = (*spec, T::NAME, ceiling, rayon::current_num_threads());
    let registered = algorithms::<T>();
    let cached = cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
        .copied();
    let prepare = |algorithm: &dyn ConvAlgorithm<T>| {
        let isa = convkit_simd::resolve(algorithm.isas(), ceiling);
        let request = PlanRequest::new(spec, weights, bias, activation, isa)?;
        algorithm.prepare(&request).map(Plan::new)
    };
    if let Some(winner) = cached
        && let Some(algorithm) = registered.iter().find(|a| a.algorithm() == winner)
    {
        return prepare(*algorithm);
    }
    let mut candidates: Vec<(f64, &dyn ConvAlgorithm<T>)> = registered
        .iter()
        .filter(|a| a.algorithm() != Algorithm::Reference)
        .filter_map(|a| {
            let isa = convkit_simd::resolve(a.isas(), ceiling);
            Some((a.cost(shape, isa).ok()?.seconds, *a))
        })
        .collect();
    candidates.sort_by(|x, y| x.0.total_cmp(&y.0));
    let Some(&(best_estimate, _)) = candidates.first() else {
        return Err(ConvError::Unsupported {
            algorithm: Algorithm::Auto,
            reason: "no registered algorithm supports this problem".to_owned(),
        });
    };
    let input = vec![T::from_f64_rounded(0.0); shape.input_len()];
    let mut output = vec![T::from_f64_rounded(0.0); shape.output_len()];
    let mut fastest: Option<(f64, Plan<T>)> = None;
    for (estimate, algorithm) in candidates {
        if estimate > best_estimate * crate::TUNE_CANDIDATE_RATIO {
            break;
        }
        let plan = prepare(algorithm)?;
        let mut scratch = vec![0.0f32; plan.scratch_len()];
        let mut best = f64::INFINITY;
        for run in 0..=TIMED_RUNS {
            let start = Instant::now();
            plan.run_with_scratch(&input, &mut output, &mut scratch)?;
            if run > 0 {
                best = best.min(start.elapsed().as_secs_f64());
            }
        }
        if fastest.as_ref().is_none_or(|(seconds, _)| best < *seconds) {
            fastest = Some((best, plan));
        }
    }
    let (_, plan) = fastest.ok_or_else(|| ConvError::Unsupported {
        algorithm: Algorithm::Auto,
        reason: "no candidate could be timed".to_owned(),
    })?;
    cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(key, plan.algorithm());
    Ok(plan)
}
