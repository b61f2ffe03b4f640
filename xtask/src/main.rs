//! `cargo xtask`: the project's own commands.
//!
//! - `cargo xtask bench`: measures this machine's FMA peak and times every algorithm on the
//!   suite of real network layers; prints a table and writes `target/convkit-report/`.
//!   `--models` times whole networks' layers instead, with per-network totals.
//! - `cargo xtask fit-cost`: fits the cost model's corrections to a planner check.
//! - `cargo xtask fuzz`: runs each cargo-fuzz target for a bounded time.
//! - `cargo xtask ci`: runs `.ci/run`, exactly what CI runs.

mod bench;
mod charts;
mod fit;
mod fuzz;
mod model;
mod models;
mod peak;
mod peers;
mod planner;
mod report;
mod suite;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "convkit's bench, fuzz and CI commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the FMA peak, time every algorithm on the layer suite, write the report.
    Bench(bench::BenchArgs),
    /// Fit the cost model's corrections to planner-check measurements; print the weights.
    FitCost(fit::FitArgs),
    /// Run each fuzz target for a bounded time (installs cargo-fuzz if missing).
    Fuzz(fuzz::FuzzArgs),
    /// Run `.ci/run`.
    Ci,
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Bench(args) => bench::run(&args),
        Command::FitCost(args) => fit::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Ci => fuzz::status_of(
            std::process::Command::new("bash")
                .arg(".ci/run")
                .current_dir(workspace_root()),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
