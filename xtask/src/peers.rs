//! `cargo xtask bench --compare onnxruntime,torch`: the same layers timed by other libraries
//! in the same run, through a small Python script (`peers.py`, shipped in xtask). A missing
//! Python or package is a note in the report, never a failure.

use crate::peak::Peak;
use crate::report::Row;
use crate::suite::Layer;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// Peers the script knows, with the names their rows carry.
pub const PEERS: [&str; 2] = ["onnxruntime", "torch"];

/// The peer script.
const SCRIPT: &str = include_str!("peers.py");

#[derive(Debug, Deserialize)]
struct Output {
    peers: HashMap<String, PeerResult>,
}

#[derive(Debug, Deserialize)]
struct PeerResult {
    status: String,
    #[serde(default)]
    version: Option<String>,
    median_ms: HashMap<String, f64>,
}

/// What one peer did at one thread count: its rows, and its version or why it has none.
pub struct PeerRun {
    pub note: String,
    pub rows: Vec<Row>,
}

/// Timing settings forwarded to the script.
#[derive(Clone, Copy, Debug)]
pub struct PeerTiming {
    pub min_seconds: f64,
    pub min_runs: usize,
    pub max_runs: usize,
}

/// Runs the script for `peers` on `layers` at `threads` threads.
pub fn run(
    peers: &[&'static str],
    layers: &[Layer],
    threads: usize,
    timing: PeerTiming,
    peak: &Peak,
) -> Vec<PeerRun> {
    let job = serde_json::json!({
        "peers": peers,
        "threads": threads,
        "min_seconds": timing.min_seconds,
        "min_runs": timing.min_runs,
        "max_runs": timing.max_runs,
        "layers": layers.iter().map(describe).collect::<Vec<_>>(),
    });
    let failed = |note: String| {
        peers
            .iter()
            .map(|_| PeerRun {
                note: note.clone(),
                rows: Vec::new(),
            })
            .collect()
    };
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let child = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => return failed(format!("{python} could not be started: {error}")),
    };
    if let Some(mut stdin) = child.stdin.take()
        && let Err(error) = stdin.write_all(job.to_string().as_bytes())
    {
        return failed(format!("writing the job to {python}: {error}"));
    }
    let output = match child.wait_with_output() {
        Ok(output) => output,
        Err(error) => return failed(format!("{python} failed: {error}")),
    };
    if !output.status.success() {
        return failed(format!(
            "{python} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let parsed: Output = match serde_json::from_slice(&output.stdout) {
        Ok(parsed) => parsed,
        Err(error) => return failed(format!("unreadable output of the peer script: {error}")),
    };
    peers
        .iter()
        .map(|&name| {
            let Some(result) = parsed.peers.get(name) else {
                return PeerRun {
                    note: format!("{name}: no result"),
                    rows: Vec::new(),
                };
            };
            let rows = layers
                .iter()
                .filter_map(|layer| {
                    let ms = *result.median_ms.get(layer.name)?;
                    Some(Row::peer(layer, name, threads, ms / 1e3, peak))
                })
                .collect();
            let note = match &result.version {
                Some(version) => format!("{name} {version}: {}", result.status),
                None => format!("{name}: {}", result.status),
            };
            PeerRun { note, rows }
        })
        .collect()
}

/// A layer as the script reads it (peers run NCHW whatever the bench's layout).
fn describe(layer: &Layer) -> serde_json::Value {
    let shape = layer.spec.shape().expect("suite layers are valid");
    let padding = shape.padding();
    let [h, w] = shape.input_hw();
    let [kh, kw] = shape.kernel_hw();
    serde_json::json!({
        "name": layer.name,
        "n": shape.batch(),
        "c": shape.in_channels(),
        "k": shape.out_channels(),
        "h": h,
        "w": w,
        "kh": kh,
        "kw": kw,
        "stride": shape.stride(),
        "dilation": shape.dilation(),
        "pads": [padding.top, padding.left, padding.bottom, padding.right],
        "groups": shape.groups(),
    })
}
