//! `cargo xtask fuzz`: every cargo-fuzz target for a bounded time, under AddressSanitizer.

use crate::workspace_root;
use std::process::Command;

/// The targets in `fuzz/fuzz_targets/`.
const TARGETS: [&str; 2] = ["api_robustness", "differential"];

#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Targets to run (default: all).
    targets: Vec<String>,
}

/// Runs `command`, turning a failure to start or a non-zero exit into an error message.
pub fn status_of(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} exited with {status}"))
    }
}

fn have_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

pub fn run(args: &FuzzArgs) -> Result<(), String> {
    if !have_cargo_fuzz() {
        eprintln!("cargo-fuzz is missing: installing it from crates.io");
        status_of(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        args.targets.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = targets.iter().find(|target| !TARGETS.contains(target)) {
        return Err(format!("unknown fuzz target {unknown}; known: {TARGETS:?}"));
    }
    if targets.len() > 1 {
        eprintln!("building the fuzz targets");
        status_of(cargo_fuzz().arg("build"))?;
    }
    for target in targets {
        eprintln!("fuzzing {target} for {} s", args.seconds);
        status_of(
            cargo_fuzz()
                .args(["run", target, "--"])
                .arg(format!("-max_total_time={}", args.seconds))
                .arg("-print_final_stats=1"),
        )?;
    }
    Ok(())
}

/// `cargo +nightly fuzz` in the workspace, its release builds without the workspace's
/// single codegen unit and thin LTO (there for the bench's code): an instrumented fuzz binary
/// built that way compiled on one core for 8–11 minutes, each, in CI.
fn cargo_fuzz() -> Command {
    let mut command = Command::new("cargo");
    command
        .args(["+nightly", "fuzz"])
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .current_dir(workspace_root());
    command
}
