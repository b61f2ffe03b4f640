//! `cargo xtask bench --compare onnxruntime,torch`: the same layers timed by other libraries
//! in the same run, through a small Python script (`peers.py`, shipped in xtask) that stays up
//! for the whole run, one per thread count, and times a layer's peers when the bench asks,
//! right after convkit's own rows of that layer. A missing Python or package is a note in the
//! report, never a failure.

use crate::model::{Peer, Row, Timing};
use crate::peak::Peak;
use crate::suite::Layer;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The peer script.
const SCRIPT: &str = include_str!("peers.py");

/// The script's answer to the setup.
#[derive(Debug, Deserialize)]
struct Ready {
    peers: HashMap<String, PeerStatus>,
}

#[derive(Debug, Deserialize)]
struct PeerStatus {
    status: String,
    #[serde(default)]
    version: Option<String>,
}

/// The script's answer to a layer.
#[derive(Debug, Deserialize)]
struct Timed {
    median_ms: HashMap<String, f64>,
    failed: HashMap<String, String>,
}

/// The peer script running for one thread count, every peer prepared on every layer.
pub struct PeerSession {
    threads: usize,
    /// `None` once the script has failed (the notes say why).
    pipes: Option<(Child, ChildStdin, BufReader<ChildStdout>)>,
    /// Per peer: its version and status, then anything that went wrong later.
    pub notes: Vec<String>,
}

impl PeerSession {
    /// Starts the script for `peers` on `layers` at `threads` threads and waits until it has
    /// prepared them.
    pub fn start(peers: &[Peer], layers: &[Layer], threads: usize) -> PeerSession {
        let mut session = PeerSession {
            threads,
            pipes: None,
            notes: Vec::new(),
        };
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let child = Command::new(&python)
            .arg("-c")
            .arg(SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => {
                session.fail(peers, format!("{python} could not be started: {error}"));
                return session;
            }
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            session.fail(peers, format!("no pipes to {python}"));
            return session;
        };
        session.pipes = Some((child, stdin, BufReader::new(stdout)));
        let setup = serde_json::json!({
            "peers": peers.iter().map(|peer| peer.name()).collect::<Vec<_>>(),
            "threads": threads,
            "layers": layers.iter().map(describe).collect::<Vec<_>>(),
        });
        match session.exchange::<Ready>(&setup) {
            Ok(ready) => {
                for name in peers.iter().map(|peer| peer.name()) {
                    let note = match ready.peers.get(name) {
                        Some(PeerStatus {
                            status,
                            version: Some(version),
                        }) => format!("{name} {version}: {status}"),
                        Some(PeerStatus { status, .. }) => format!("{name}: {status}"),
                        None => format!("{name}: no answer"),
                    };
                    session.notes.push(format!("{note} ({threads} thread(s))"));
                }
            }
            Err(why) => session.fail(peers, why),
        }
        session
    }

    /// Times every ready peer on `layer`: their rows (none once the script has failed).
    pub fn time(&mut self, layer: &Layer, timing: Timing, peak: &Peak) -> Vec<Row> {
        if self.pipes.is_none() {
            return Vec::new();
        }
        let request = serde_json::json!({
            "layer": layer.name,
            "min_seconds": timing.min_seconds,
            "min_runs": timing.min_runs,
            "max_runs": timing.max_runs,
        });
        let timed = match self.exchange::<Timed>(&request) {
            Ok(timed) => timed,
            Err(why) => {
                self.notes.push(format!(
                    "the peer script stopped at {} ({} thread(s)): {why}",
                    layer.name, self.threads
                ));
                self.pipes = None;
                return Vec::new();
            }
        };
        for (name, why) in &timed.failed {
            self.notes.push(format!(
                "{name} failed on {} ({} thread(s)): {why}",
                layer.name, self.threads
            ));
        }
        Peer::ALL
            .into_iter()
            .filter_map(|peer| {
                let ms = *timed.median_ms.get(peer.name())?;
                Some(Row::peer(layer, peer, self.threads, ms / 1e3, peak))
            })
            .collect()
    }

    /// Notes every peer as unavailable for `why`.
    fn fail(&mut self, peers: &[Peer], why: String) {
        let threads = self.threads;
        self.notes.extend(
            peers
                .iter()
                .map(|peer| format!("{}: {why} ({threads} thread(s))", peer.name())),
        );
        self.pipes = None;
    }

    /// Writes `message` as one line and reads the script's one-line answer.
    fn exchange<T: serde::de::DeserializeOwned>(
        &mut self,
        message: &serde_json::Value,
    ) -> Result<T, String> {
        let Some((_, stdin, stdout)) = &mut self.pipes else {
            return Err("the peer script is not running".to_owned());
        };
        writeln!(stdin, "{message}")
            .and_then(|()| stdin.flush())
            .map_err(|error| format!("writing to the peer script: {error}"))?;
        let mut line = String::new();
        match stdout.read_line(&mut line) {
            Ok(0) => Err("the peer script exited (its error is above)".to_owned()),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|error| format!("unreadable answer from the peer script: {error}")),
            Err(error) => Err(format!("reading from the peer script: {error}")),
        }
    }
}

impl Drop for PeerSession {
    /// Closes the script's input, which ends it, and waits for it.
    fn drop(&mut self) {
        if let Some((mut child, stdin, _)) = self.pipes.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
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
        "bias": layer.bias,
    })
}
