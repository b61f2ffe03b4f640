//! `cargo xtask bench`: every algorithm on every suite layer, at 1 thread and all threads.

use crate::model::{Peer, Report, Row, Timing};
use crate::models;
use crate::peak::{self, Peak, PeakSet};
use crate::peers::PeerSession;
use crate::report;
use crate::suite::{self, Layer};
use crate::workspace_root;
use convkit::{Activation, Algorithm, ConvError, Layout, PlanOptions, Registered, bf16, f16};
use convkit_testkit::{ConvProblem, Values, compare_with_reference};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Short smoke run: one timed run per row, short peak probe.
    #[arg(long)]
    quick: bool,
    /// Only these layers (comma-separated names; with `--models`, network names too).
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Time the layers of whole networks instead of the suite: every layer of the models file
    /// (default: the repository's `benches/models/models.json`), Auto and the `--compare` peers
    /// interleaved layer by layer, with per-network totals (layer median x count).
    #[arg(long, num_args = 0..=1, default_missing_value = models::DEFAULT_FILE)]
    models: Option<PathBuf>,
    /// Only these algorithms (comma-separated: auto, reference, direct, im2col-gemm, ...;
    /// default: every algorithm, or only auto with `--models`).
    #[arg(long, value_delimiter = ',')]
    algos: Vec<String>,
    /// Thread counts (default: 1 and every core).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Activation layout of every layer: nchw (the suite's) or nhwc.
    #[arg(long, default_value = "nchw", value_parser = ["nchw", "nhwc"])]
    layout: String,
    /// Also time these libraries on the same layers in the same run (comma-separated:
    /// onnxruntime, torch), through the Python in `PYTHON` (default `python3`).
    #[arg(long, value_delimiter = ',')]
    compare: Vec<String>,
    /// Element types: f32 runs every algorithm; f16 and bf16 (storage, f32 arithmetic) add
    /// rows for `auto` (default: all three, or only f32 with `--models`).
    #[arg(long, value_delimiter = ',', value_parser = ["f32", "f16", "bf16"])]
    types: Vec<String>,
    /// Instead of the suite: time every algorithm on this many generated layers and report how
    /// often, and by how much, Auto misses the fastest (at `--threads`, default 1).
    #[arg(long, value_name = "N")]
    planner_check: Option<usize>,
    /// The planner check's generator seed.
    #[arg(long, default_value_t = 29)]
    seed: u64,
    /// Report folder, relative to the workspace root.
    #[arg(long, default_value = "target/convkit-report")]
    out: PathBuf,
}

/// The standalone SGEMM row's name.
const SGEMM_ROW: &str = "sgemm_1024";

/// The FMA peak on each of `thread_counts` (a short probe when `quick`).
fn measure_peaks(thread_counts: &[usize], quick: bool) -> Vec<PeakSet> {
    let (seconds, repetitions) = if quick { (0.05, 3) } else { (0.25, 7) };
    thread_counts
        .iter()
        .map(|&threads| peak::measure(threads, seconds, repetitions))
        .collect()
}

/// Times `C = A·B` for 1024×1024×1024 row-major matrices on the widest path, planned for that
/// product ([`convkit_gemm::Sgemm::for_product`]).
fn bench_sgemm(threads: usize, peak: &Peak, timing: Timing) -> Row {
    const SIZE: usize = 1024;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool of the requested size");
    let isa = convkit_simd::resolve(convkit_gemm::KernelShape::ISAS, convkit_simd::best());
    let sgemm = convkit_gemm::Sgemm::for_product(isa, [SIZE; 3]);
    let a: Vec<f32> = (0..SIZE * SIZE)
        .map(|i| (i % 17) as f32 / 17.0 - 0.5)
        .collect();
    let b: Vec<f32> = (0..SIZE * SIZE)
        .map(|i| (i % 13) as f32 / 13.0 - 0.5)
        .collect();
    let mut c = vec![0.0f32; SIZE * SIZE];
    let epilogue = convkit_gemm::Epilogue::default();
    // Scratch allocated once, as a caller's hot loop would.
    let mut scratch = vec![0.0f32; sgemm.scratch_len(threads)];
    let (seconds, runs) = pool.install(|| {
        time_runs(
            || {
                sgemm
                    .gemm_strided(
                        [SIZE; 3],
                        convkit_gemm::StridedMatrix::new(&a, SIZE, 1),
                        convkit_gemm::StridedMatrix::new(&b, 1, SIZE),
                        &mut c,
                        SIZE,
                        &epilogue,
                        &mut scratch,
                    )
                    .expect("valid sgemm");
            },
            timing,
        )
    });
    let scratch = std::mem::size_of_val(scratch.as_slice());
    Row::sgemm(
        SGEMM_ROW,
        isa,
        threads,
        2 * (SIZE as u64).pow(3),
        seconds,
        runs,
        peak,
        scratch,
    )
}

/// The layers named in `names` (all when empty) of the suite, or of the models file when
/// `models` names one (where a network's name selects its layers).
fn select_layers(names: &[String], models: Option<&PathBuf>) -> Result<Vec<Layer>, String> {
    if let Some(file) = models {
        let all = models::load(&workspace_root().join(file))?;
        let named = |layer: &Layer, name: &str| layer.name == name || layer.network == Some(name);
        if let Some(unknown) = names
            .iter()
            .find(|name| !all.iter().any(|l| named(l, name)))
        {
            return Err(format!(
                "{} has no layer or network {unknown}",
                file.display()
            ));
        }
        return Ok(all
            .into_iter()
            .filter(|l| names.is_empty() || names.iter().any(|name| named(l, name)))
            .collect());
    }
    let all = suite::layers();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .filter(|name| *name != SGEMM_ROW)
        .map(|name| {
            all.iter().find(|l| l.name == name).copied().ok_or_else(|| {
                let known: Vec<&str> = all.iter().map(|l| l.name).collect();
                format!(
                    "unknown shape {name}; known: {SGEMM_ROW}, {}",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// The algorithms named in `names`; when empty, every registered one and Auto, or only Auto
/// for whole networks.
fn select_algorithms(names: &[String], networks: bool) -> Result<Vec<Algorithm>, String> {
    if names.is_empty() && networks {
        return Ok(vec![Algorithm::Auto]);
    }
    let registered: Vec<Algorithm> = convkit::algorithms::<f32>()
        .iter()
        .map(|a| a.algorithm())
        .chain([Algorithm::Auto])
        .collect();
    if names.is_empty() {
        return Ok(registered);
    }
    names
        .iter()
        .map(|name| {
            Algorithm::from_name(name).ok_or_else(|| {
                format!(
                    "unknown algorithm {name}; known: auto, {}",
                    Algorithm::CONCRETE.map(Algorithm::name).join(", ")
                )
            })
        })
        .collect()
}

/// Median seconds of one run, and the number of timed runs.
fn time_runs(mut run: impl FnMut(), timing: Timing) -> (f64, usize) {
    run(); // warm caches and lazily touched pages
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < timing.min_runs
        || (started.elapsed().as_secs_f64() < timing.min_seconds && samples.len() < timing.max_runs)
    {
        let start = Instant::now();
        run();
        samples.push(start.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples.len())
}

/// Seconds of runs each plan gets per round of [`time_interleaved`].
const ROUND_SECONDS: f64 = 0.01;

/// Most runs of one plan per round of [`time_interleaved`].
const MAX_RUNS_PER_ROUND: usize = 50;

/// Times every contender in the same window: rounds in which each plan runs once untimed
/// (its data back in cache after the others ran, so that the rows are warm, steady-state
/// figures, as back-to-back runs would be) and then, timed, for about [`ROUND_SECONDS`] (at
/// least once), until each has `timing.min_runs` runs and together they had
/// `timing.min_seconds` per plan (or all reached `timing.max_runs`). A host whose speed drifts
/// during the run then moves every plan alike, so that their ratios (Auto against the best
/// algorithm, f16 against f32) hold even where absolute times do not. Returns each plan's
/// median seconds per run and its number of timed runs.
pub fn time_interleaved(
    contenders: &mut [&mut dyn Contender],
    timing: Timing,
) -> Vec<(f64, usize)> {
    sample_interleaved(contenders, timing)
        .into_iter()
        .map(|samples| (samples[samples.len() / 2], samples.len()))
        .collect()
}

/// [`time_interleaved`]'s samples: each contender's seconds per timed run, sorted.
pub fn sample_interleaved(contenders: &mut [&mut dyn Contender], timing: Timing) -> Vec<Vec<f64>> {
    // Two runs each: the first touches the pages, the second sizes the plan's rounds.
    let repeats: Vec<usize> = contenders
        .iter_mut()
        .map(|contender| {
            contender.run();
            let start = Instant::now();
            contender.run();
            let seconds = start.elapsed().as_secs_f64().max(1e-9);
            ((ROUND_SECONDS / seconds) as usize).clamp(1, MAX_RUNS_PER_ROUND)
        })
        .collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let budget = timing.min_seconds * contenders.len() as f64;
    let started = Instant::now();
    loop {
        let enough_runs = samples.iter().all(|s| s.len() >= timing.min_runs);
        let all_full = samples.iter().all(|s| s.len() >= timing.max_runs);
        if enough_runs && (all_full || started.elapsed().as_secs_f64() >= budget) {
            break;
        }
        for ((contender, samples), &repeats) in
            contenders.iter_mut().zip(&mut samples).zip(&repeats)
        {
            let runs = repeats.min(timing.max_runs.saturating_sub(samples.len()));
            if runs == 0 {
                continue;
            }
            contender.run();
            for _ in 0..runs {
                let start = Instant::now();
                contender.run();
                samples.push(start.elapsed().as_secs_f64());
            }
        }
    }
    for samples in &mut samples {
        samples.sort_by(f64::total_cmp);
    }
    samples
}

/// Windows of convkit and of the peers per layer and thread count (see [`LayerRun::rows`]).
const ALTERNATIONS: usize = 3;

/// Per contender, the median of its rounds' medians (its runs summed).
fn median_rounds(rounds: &[Vec<(f64, usize)>]) -> Vec<(f64, usize)> {
    let contenders = rounds.first().map_or(0, Vec::len);
    (0..contenders)
        .map(|i| {
            let mut medians: Vec<f64> = rounds.iter().map(|round| round[i].0).collect();
            medians.sort_by(f64::total_cmp);
            let runs = rounds.iter().map(|round| round[i].1).sum();
            (medians[medians.len() / 2], runs)
        })
        .collect()
}

/// Per peer, its row from its median round (a peer that failed in some rounds: among the
/// rounds it ran).
fn median_peer_rows(rounds: Vec<Vec<Row>>) -> Vec<Row> {
    let mut by_peer: Vec<Vec<Row>> = Vec::new();
    for row in rounds.into_iter().flatten() {
        match by_peer
            .iter_mut()
            .find(|rows| rows[0].algorithm == row.algorithm)
        {
            Some(rows) => rows.push(row),
            None => by_peer.push(vec![row]),
        }
    }
    by_peer
        .into_iter()
        .map(|mut rows| {
            rows.sort_by(|a, b| {
                a.median_ms
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.median_ms.unwrap_or(f64::INFINITY))
            });
            let middle = rows.len() / 2;
            rows.swap_remove(middle)
        })
        .collect()
}

/// One row's plan, timed with the other plans of its layer and thread count.
pub trait Contender: Send {
    /// Runs the plan once.
    fn run(&mut self);
    /// Whether planning succeeded (else there is nothing to run).
    fn planned(&self) -> bool;
}

/// A planned row (or one whose planning failed: `plan` is `None`, the row says why) with its
/// buffers.
pub struct PlannedRow<'a, T: Registered> {
    row: Row,
    algorithm: Algorithm,
    plan: Option<convkit::Plan<T>>,
    data: &'a LayerData<T>,
    output: Vec<T>,
    scratch: Vec<f32>,
}

impl<'a, T: Registered> PlannedRow<'a, T> {
    /// Plans `layer` with `algorithm` in `pool`.
    pub fn new(
        layer: &Layer,
        problem: &ConvProblem,
        data: &'a LayerData<T>,
        algorithm: Algorithm,
        pool: &rayon::ThreadPool,
    ) -> PlannedRow<'a, T> {
        let options = PlanOptions::new()
            .algorithm(algorithm)
            .activation(problem.activation);
        let mut row = Row::new(layer, algorithm, T::NAME, pool.current_num_threads());
        let plan = match pool
            .install(|| convkit::plan(&layer.spec, &data.weights, data.bias.as_deref(), &options))
        {
            Ok(plan) => Some(plan),
            Err(ConvError::Unsupported { reason, .. }) => {
                row.status = format!("unsupported: {reason}");
                None
            }
            Err(error) => {
                row.status = format!("error: {error}");
                None
            }
        };
        let (output_len, scratch_len) = plan.as_ref().map_or((0, 0), |plan| {
            (plan.shape().output_len(), plan.scratch_len())
        });
        PlannedRow {
            row,
            algorithm,
            plan,
            data,
            output: vec![T::from_f64_rounded(0.0); output_len],
            scratch: vec![0.0; scratch_len],
        }
    }

    /// The row with its timing, and the error of the plan's output against the reference
    /// (measured once per element type and algorithm: `error` carries it across thread
    /// counts).
    fn finish(
        mut self,
        (seconds, runs): (f64, usize),
        peak: &Peak,
        (layer, problem): (&Layer, &ConvProblem),
        error: &mut Option<f64>,
    ) -> Result<Row, String> {
        let Some(plan) = &self.plan else {
            return Ok(self.row);
        };
        self.row.record(plan, seconds, runs, peak);
        if let (None, Some(ran)) = (*error, self.row.ran) {
            let algorithm = Algorithm::from_name(ran).unwrap_or(plan.algorithm());
            *error = Some(measure_error(
                layer,
                problem,
                self.data,
                algorithm,
                &self.output,
            )?);
        }
        self.row.max_relative_error = *error;
        Ok(self.row)
    }
}

impl<T: Registered> PlannedRow<'_, T> {
    /// The algorithm the row was planned with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl<T: Registered> Contender for PlannedRow<'_, T> {
    fn run(&mut self) {
        if let Some(plan) = &self.plan {
            plan.run_with_scratch(&self.data.input, &mut self.output, &mut self.scratch)
                .expect("benchmark buffers have the plan's lengths");
        }
    }

    fn planned(&self) -> bool {
        self.plan.is_some()
    }
}

pub struct LayerData<T> {
    pub input: Vec<T>,
    pub weights: Vec<T>,
    pub bias: Option<Vec<T>>,
}

impl<T: Registered> LayerData<T> {
    pub fn new(problem: &ConvProblem) -> LayerData<T> {
        LayerData {
            input: problem.input(),
            weights: problem.weights(),
            bias: problem.bias(),
        }
    }
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    if let Some(count) = args.planner_check {
        let out = workspace_root().join(&args.out);
        let threads = if args.threads.is_empty() {
            vec![1]
        } else {
            args.threads.clone()
        };
        for threads in threads {
            crate::planner::run(count, args.seed, threads, &out)?;
        }
        return Ok(());
    }
    let layout = if args.layout == "nhwc" {
        Layout::Nhwc
    } else {
        Layout::Nchw
    };
    let networks = args.models.is_some();
    let layers: Vec<Layer> = select_layers(&args.shapes, args.models.as_ref())?
        .into_iter()
        .map(|layer| Layer {
            spec: layer.spec.layout(layout),
            ..layer
        })
        .collect();
    let algorithms = select_algorithms(&args.algos, networks)?;
    let types: Vec<&str> = if !args.types.is_empty() {
        args.types.iter().map(String::as_str).collect()
    } else if networks {
        vec!["f32"]
    } else {
        vec!["f32", "f16", "bf16"]
    };
    if let Some(unknown) = args
        .compare
        .iter()
        .find(|name| Peer::from_name(name).is_none())
    {
        let known: Vec<&str> = Peer::ALL.iter().map(|peer| peer.name()).collect();
        return Err(format!(
            "unknown peer {unknown}; known: {}",
            known.join(", ")
        ));
    }
    let all_threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut thread_counts = if args.threads.is_empty() {
        vec![1, all_threads]
    } else {
        args.threads.clone()
    };
    thread_counts.sort_unstable();
    thread_counts.dedup();
    if thread_counts.contains(&0) {
        return Err("thread counts start at 1".to_owned());
    }
    let timing = if args.quick {
        Timing {
            min_seconds: 0.0,
            min_runs: 1,
            max_runs: 1,
        }
    } else {
        Timing {
            min_seconds: 1.0,
            min_runs: 5,
            max_runs: 2000,
        }
    };

    eprintln!("measuring the FMA peak on {thread_counts:?} threads");
    let peaks = measure_peaks(&thread_counts, args.quick);

    let mut rows = Vec::new();
    if !networks && (args.shapes.is_empty() || args.shapes.iter().any(|s| s == SGEMM_ROW)) {
        for (&threads, peak) in thread_counts.iter().zip(&peaks) {
            eprintln!("{SGEMM_ROW:<18} {threads} thread(s)");
            rows.push(bench_sgemm(threads, &peak.best, timing));
        }
    }
    let half_types =
        ["f16", "bf16"].map(|name| algorithms.contains(&Algorithm::Auto) && types.contains(&name));
    let peers: Vec<Peer> = Peer::ALL
        .into_iter()
        .filter(|peer| args.compare.iter().any(|name| name == peer.name()))
        .collect();
    let mut sessions: Vec<PeerSession> = if peers.is_empty() {
        Vec::new()
    } else {
        eprintln!("preparing {peers:?} on every layer");
        thread_counts
            .iter()
            .map(|&threads| PeerSession::start(&peers, &layers, threads))
            .collect()
    };
    let mut peer_rows = Vec::new();
    for layer in &layers {
        let problem = ConvProblem::new(layer.spec, layer.bias, Activation::None, Values::Real, 1);
        let context = LayerRun {
            layer,
            problem: &problem,
            thread_counts: &thread_counts,
            peaks: &peaks,
            timing,
        };
        rows.extend(context.rows(&algorithms, half_types, &mut sessions, &mut peer_rows)?);
    }
    rows.extend(peer_rows);
    let peer_notes: Vec<String> = sessions
        .iter_mut()
        .flat_map(|session| std::mem::take(&mut session.notes))
        .collect();
    drop(sessions);
    eprintln!("measuring the FMA peak again");
    let peaks_after = measure_peaks(&thread_counts, args.quick);
    report::rate_auto(&mut rows);
    report::rate_peers(&mut rows);
    let report = Report::new(peaks, peaks_after, rows, args.quick, peer_notes);
    report::print_table(&report);
    report::print_networks(&report);
    let out = workspace_root().join(&args.out);
    report::write(&report, &out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// One layer's rows.
struct LayerRun<'a> {
    layer: &'a Layer,
    problem: &'a ConvProblem,
    thread_counts: &'a [usize],
    peaks: &'a [PeakSet],
    timing: Timing,
}

impl LayerRun<'_> {
    /// Every algorithm of `algorithms` with f32 tensors, and Auto with f16 and bf16 storage
    /// where `[f16, bf16]` say so (half-precision storage runs the f32 kernels, converting
    /// while packing or around them: Auto's rows show what it costs), at every thread count;
    /// the plans of one thread count timed together ([`time_interleaved`]), then the peers of
    /// that thread count's session (`peers[i]` for `thread_counts[i]`) on the layer, their rows
    /// appended to `peer_rows`. Rows in order of element type, algorithm, thread count.
    fn rows(
        &self,
        algorithms: &[Algorithm],
        [f16_auto, bf16_auto]: [bool; 2],
        peers: &mut [PeerSession],
        peer_rows: &mut Vec<Row>,
    ) -> Result<Vec<Row>, String> {
        let LayerRun {
            layer,
            problem,
            thread_counts,
            peaks,
            timing,
        } = *self;
        let single = LayerData::<f32>::new(problem);
        let half = f16_auto.then(|| LayerData::<f16>::new(problem));
        let brain = bf16_auto.then(|| LayerData::<bf16>::new(problem));
        let count = algorithms.len() + usize::from(f16_auto) + usize::from(bf16_auto);
        // Per contender (in row order): its rows, and its error once measured.
        let mut rows: Vec<Vec<Row>> = vec![Vec::new(); count];
        let mut errors: Vec<Option<f64>> = vec![None; count];
        for (round, (&threads, peak)) in thread_counts.iter().zip(peaks).enumerate() {
            eprintln!("{:<18} {count} plans, {threads} thread(s)", layer.name);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a rayon pool of the requested size");
            let mut singles: Vec<PlannedRow<'_, f32>> = algorithms
                .iter()
                .map(|&algorithm| PlannedRow::new(layer, problem, &single, algorithm, &pool))
                .collect();
            let mut halves: Vec<PlannedRow<'_, f16>> = half
                .iter()
                .map(|data| PlannedRow::new(layer, problem, data, Algorithm::Auto, &pool))
                .collect();
            let mut brains: Vec<PlannedRow<'_, bf16>> = brain
                .iter()
                .map(|data| PlannedRow::new(layer, problem, data, Algorithm::Auto, &pool))
                .collect();
            // Only the rows that planned are timed; the others keep their status.
            let every: Vec<&mut dyn Contender> =
                (singles.iter_mut().map(|c| c as &mut dyn Contender))
                    .chain(halves.iter_mut().map(|c| c as &mut dyn Contender))
                    .chain(brains.iter_mut().map(|c| c as &mut dyn Contender))
                    .collect();
            let (indices, mut planned): (Vec<usize>, Vec<&mut dyn Contender>) = every
                .into_iter()
                .enumerate()
                .filter(|(_, contender)| contender.planned())
                .unzip();
            // With peers, convkit's window and theirs alternate [`ALTERNATIONS`] times, each
            // with its share of the timing, and every contender keeps its median round: a
            // neighbour's burst on the shared host then slows one round of one side, not all
            // of one side's samples.
            let mut session = peers.get_mut(round);
            let rounds = if session.is_some() { ALTERNATIONS } else { 1 };
            let share = timing.share(rounds);
            let mut convkit_rounds = Vec::with_capacity(rounds);
            let mut peer_rounds = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                convkit_rounds.push(pool.install(|| time_interleaved(&mut planned, share)));
                if let Some(session) = session.as_deref_mut() {
                    peer_rounds.push(session.time(layer, share, &peak.best));
                }
            }
            drop(planned);
            peer_rows.extend(median_peer_rows(peer_rounds));
            let timed = median_rounds(&convkit_rounds);
            let mut timings = vec![(0.0, 0); count];
            for (index, timing) in indices.into_iter().zip(timed) {
                timings[index] = timing;
            }
            let context = (layer, problem);
            let (halves_first, brains_first) = (singles.len(), singles.len() + halves.len());
            let finished = (&timings[..], &peak.best, context);
            finish_rows(singles, 0, finished, &mut rows, &mut errors)?;
            finish_rows(halves, halves_first, finished, &mut rows, &mut errors)?;
            finish_rows(brains, brains_first, finished, &mut rows, &mut errors)?;
        }
        Ok(rows.into_iter().flatten().collect())
    }
}

/// Finishes the rows of `planned`, contenders `first..` of a thread count, with `timings`
/// (per contender) and `peak`, appending each to its contender's `rows`.
fn finish_rows<T: Registered>(
    planned: Vec<PlannedRow<'_, T>>,
    first: usize,
    (timings, peak, context): (&[(f64, usize)], &Peak, (&Layer, &ConvProblem)),
    rows: &mut [Vec<Row>],
    errors: &mut [Option<f64>],
) -> Result<(), String> {
    for (index, planned) in (first..).zip(planned) {
        rows[index].push(planned.finish(timings[index], peak, context, &mut errors[index])?);
    }
    Ok(())
}

/// Worst `|y − exact| / Σ|x·w|` over the layer's outputs, checked against the algorithm's bound.
fn measure_error<T: Registered>(
    layer: &Layer,
    problem: &ConvProblem,
    data: &LayerData<T>,
    algorithm: Algorithm,
    output: &[T],
) -> Result<f64, String> {
    let implementation = convkit::algorithms::<T>()
        .into_iter()
        .find(|a| a.algorithm() == algorithm)
        .ok_or_else(|| format!("{} is not registered", algorithm.name()))?;
    let shape = problem.shape();
    compare_with_reference(
        &shape,
        &data.input,
        &data.weights,
        data.bias.as_deref(),
        problem.activation,
        implementation.accuracy(&shape),
        false,
        output,
    )
    .map(|report| report.max_relative_error)
    .map_err(|failure| format!("{} on {} is wrong: {failure}", algorithm.name(), layer.name))
}
