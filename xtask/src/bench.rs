//! `cargo xtask bench`: every algorithm on every suite layer, at 1 thread and all threads.

use crate::peak::{self, Peak, PeakSet};
use crate::report::{self, Report, Row};
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
    /// Only these layers (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Only these algorithms (comma-separated: reference, direct, im2col-gemm, ...).
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
    /// rows for `auto`.
    #[arg(long, value_delimiter = ',', default_value = "f32,f16,bf16", value_parser = ["f32", "f16", "bf16"])]
    types: Vec<String>,
    /// Report folder, relative to the workspace root.
    #[arg(long, default_value = "target/convkit-report")]
    out: PathBuf,
}

/// How long and how often each row is timed.
#[derive(Clone, Copy, Debug)]
struct Timing {
    min_seconds: f64,
    min_runs: usize,
    max_runs: usize,
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

fn select_layers(names: &[String]) -> Result<Vec<Layer>, String> {
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

fn select_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
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

/// Times one layer with one algorithm at one thread count; returns the row and the output.
fn bench_row<T: Registered>(
    layer: &Layer,
    problem: &ConvProblem,
    data: &LayerData<T>,
    algorithm: Algorithm,
    threads: usize,
    peak: &Peak,
    timing: Timing,
) -> (Row, Option<Vec<T>>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool of the requested size");
    let options = PlanOptions::new()
        .algorithm(algorithm)
        .activation(problem.activation);
    let mut row = Row::new(layer, algorithm, T::NAME, threads);
    let plan = match pool
        .install(|| convkit::plan(&layer.spec, &data.weights, data.bias.as_deref(), &options))
    {
        Ok(plan) => plan,
        Err(ConvError::Unsupported { reason, .. }) => {
            row.status = format!("unsupported: {reason}");
            return (row, None);
        }
        Err(error) => {
            row.status = format!("error: {error}");
            return (row, None);
        }
    };
    let mut output = vec![T::from_f64_rounded(0.0); plan.shape().output_len()];
    let mut scratch = vec![0.0f32; plan.scratch_len()];
    let (seconds, runs) = pool.install(|| {
        time_runs(
            || {
                plan.run_with_scratch(&data.input, &mut output, &mut scratch)
                    .expect("benchmark buffers have the plan's lengths");
            },
            timing,
        )
    });
    row.record(&plan, seconds, runs, peak);
    (row, Some(output))
}

struct LayerData<T> {
    input: Vec<T>,
    weights: Vec<T>,
    bias: Option<Vec<T>>,
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let layout = if args.layout == "nhwc" {
        Layout::Nhwc
    } else {
        Layout::Nchw
    };
    let layers: Vec<Layer> = select_layers(&args.shapes)?
        .into_iter()
        .map(|layer| Layer {
            spec: layer.spec.layout(layout),
            ..layer
        })
        .collect();
    let algorithms = select_algorithms(&args.algos)?;
    if let Some(unknown) = args
        .compare
        .iter()
        .find(|name| !crate::peers::PEERS.contains(&name.as_str()))
    {
        return Err(format!(
            "unknown peer {unknown}; known: {}",
            crate::peers::PEERS.join(", ")
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
    if args.shapes.is_empty() || args.shapes.iter().any(|s| s == SGEMM_ROW) {
        for (&threads, peak) in thread_counts.iter().zip(&peaks) {
            eprintln!("{SGEMM_ROW:<18} {threads} thread(s)");
            rows.push(bench_sgemm(threads, &peak.best, timing));
        }
    }
    for layer in &layers {
        let problem = ConvProblem::new(layer.spec, true, Activation::None, Values::Real, 1);
        let context = LayerRun {
            layer,
            problem: &problem,
            thread_counts: &thread_counts,
            peaks: &peaks,
            timing,
        };
        rows.extend(context.rows::<f32>(&algorithms)?);
        // Half-precision storage runs the same f32 kernels behind a conversion: Auto's rows
        // show what it costs.
        let auto = [Algorithm::Auto];
        let half_algorithms = if algorithms.contains(&Algorithm::Auto) {
            &auto[..]
        } else {
            &[]
        };
        if args.types.iter().any(|t| t == "f16") {
            rows.extend(context.rows::<f16>(half_algorithms)?);
        }
        if args.types.iter().any(|t| t == "bf16") {
            rows.extend(context.rows::<bf16>(half_algorithms)?);
        }
    }

    let peers: Vec<&'static str> = crate::peers::PEERS
        .into_iter()
        .filter(|peer| args.compare.iter().any(|name| name == peer))
        .collect();
    let mut peer_notes = Vec::new();
    if !peers.is_empty() {
        let peer_timing = crate::peers::PeerTiming {
            min_seconds: timing.min_seconds,
            min_runs: timing.min_runs,
            max_runs: timing.max_runs,
        };
        for (&threads, peak) in thread_counts.iter().zip(&peaks) {
            eprintln!("peers {peers:?} on {threads} thread(s)");
            for run in crate::peers::run(&peers, &layers, threads, peer_timing, &peak.best) {
                peer_notes.push(format!("{} ({threads} thread(s))", run.note));
                rows.extend(run.rows);
            }
        }
    }
    eprintln!("measuring the FMA peak again");
    let peaks_after = measure_peaks(&thread_counts, args.quick);
    report::rate_auto(&mut rows);
    report::rate_peers(&mut rows);
    let report = Report::new(peaks, peaks_after, rows, args.quick, peer_notes);
    report::print_table(&report);
    let out = workspace_root().join(&args.out);
    report::write(&report, &out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// One layer's rows for one element type.
struct LayerRun<'a> {
    layer: &'a Layer,
    problem: &'a ConvProblem,
    thread_counts: &'a [usize],
    peaks: &'a [PeakSet],
    timing: Timing,
}

impl LayerRun<'_> {
    /// Every algorithm of `algorithms` at every thread count, with `T` tensors.
    fn rows<T: Registered>(&self, algorithms: &[Algorithm]) -> Result<Vec<Row>, String> {
        let LayerRun {
            layer,
            problem,
            thread_counts,
            peaks,
            timing,
        } = *self;
        let data = LayerData::<T> {
            input: problem.input(),
            weights: problem.weights(),
            bias: problem.bias(),
        };
        let mut rows = Vec::new();
        for &algorithm in algorithms {
            let mut error: Option<f64> = None;
            for (&threads, peak) in thread_counts.iter().zip(peaks) {
                eprintln!(
                    "{:<18} {:<12} {:<4} {threads} thread(s)",
                    layer.name,
                    algorithm.name(),
                    T::NAME
                );
                let (mut row, output) = bench_row(
                    layer, problem, &data, algorithm, threads, &peak.best, timing,
                );
                if let (None, Some(output), Some(ran)) = (error, output, row.ran) {
                    let ran = Algorithm::from_name(ran).unwrap_or(algorithm);
                    error = Some(measure_error(layer, problem, &data, ran, &output)?);
                }
                row.max_relative_error = error;
                rows.push(row);
            }
        }
        Ok(rows)
    }
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
