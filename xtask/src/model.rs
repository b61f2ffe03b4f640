//! The bench's data model, at the bottom of xtask's modules: what one row measured
//! ([`Row`]), who ran it ([`Contender`]: a convkit algorithm, a peer library or the
//! standalone SGEMM) and how long rows are timed ([`Timing`]). It imports only the suite's
//! layers and the peak's type; the bench, the report, the charts and the peers all build on
//! it, and none of them on each other's data.

use crate::peak::{Peak, PeakSet};
use crate::suite::Layer;
use convkit::{Algorithm, Plan};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt::Write as _;

/// A library timed beside convkit on the same layers (`--compare`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// ONNX Runtime's CPU provider (MLAS).
    OnnxRuntime,
    /// PyTorch (oneDNN).
    Torch,
}

impl Peer {
    /// Every peer the script knows.
    pub const ALL: [Peer; 2] = [Peer::OnnxRuntime, Peer::Torch];

    /// The name its rows, the command line and the peer script use.
    pub const fn name(self) -> &'static str {
        match self {
            Peer::OnnxRuntime => "onnxruntime",
            Peer::Torch => "torch",
        }
    }

    /// The peer named `name`, if any.
    pub fn from_name(name: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|peer| peer.name() == name)
    }
}

/// Who produced a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// A convkit algorithm (Auto included).
    Convkit(Algorithm),
    /// Another library.
    Peer(Peer),
    /// convkit's standalone SGEMM (`sgemm_1024`).
    Sgemm,
}

impl Contender {
    /// The name in tables, charts and `report.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Contender::Convkit(algorithm) => algorithm.name(),
            Contender::Peer(peer) => peer.name(),
            Contender::Sgemm => "sgemm",
        }
    }

    /// convkit's planner.
    pub fn is_auto(self) -> bool {
        self == Contender::Convkit(Algorithm::Auto)
    }

    /// A convkit algorithm that the planner may choose (not Auto itself).
    pub fn is_concrete(self) -> bool {
        matches!(self, Contender::Convkit(algorithm) if algorithm != Algorithm::Auto)
    }
}

impl Serialize for Peer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl Serialize for Contender {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// How long and how often each row is timed (the peer script's rows too).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub min_seconds: f64,
    pub min_runs: usize,
    pub max_runs: usize,
}

impl Timing {
    /// One of `parts` windows that together take this timing.
    pub fn share(self, parts: usize) -> Timing {
        Timing {
            min_seconds: self.min_seconds / parts as f64,
            min_runs: self.min_runs.div_ceil(parts),
            max_runs: self.max_runs.div_ceil(parts).max(1),
        }
    }
}

/// One (layer, algorithm, thread count) measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub shape: &'static str,
    pub spec: String,
    /// The network of a `--models` layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'static str>,
    /// How often the layer occurs in its network (1 for suite layers).
    pub count: usize,
    /// Who ran it (serialized as its name).
    pub algorithm: Contender,
    /// Element type of the tensors.
    pub dtype: &'static str,
    pub isa: Option<&'static str>,
    pub threads: usize,
    /// "ok", or why the row has no timing.
    pub status: String,
    pub flops: u64,
    pub median_ms: Option<f64>,
    pub runs: usize,
    pub gflops: Option<f64>,
    pub percent_of_peak: Option<f64>,
    /// Worst error relative to `Σ|x·w| + |bias|` against the f64 reference.
    pub max_relative_error: Option<f64>,
    pub scratch_bytes: Option<usize>,
    pub plan_bytes: Option<usize>,
    /// The algorithm that ran (the planner's choice on `auto` rows).
    pub ran: Option<&'static str>,
    /// Auto rows: the median over the fastest concrete algorithm's on the same shape and
    /// thread count (1.0 = Auto chose the best).
    pub auto_vs_best: Option<f64>,
    /// Peer rows: the peer's median over Auto's on the same shape and thread count (above 1:
    /// convkit is faster).
    pub auto_speedup: Option<f64>,
}

impl Row {
    pub fn new(layer: &Layer, algorithm: Algorithm, dtype: &'static str, threads: usize) -> Row {
        Row {
            shape: layer.name,
            spec: describe(layer),
            network: layer.network,
            count: layer.count,
            algorithm: Contender::Convkit(algorithm),
            dtype,
            isa: None,
            threads,
            status: "ok".to_owned(),
            flops: layer.spec.flops().unwrap_or(0),
            median_ms: None,
            runs: 0,
            gflops: None,
            percent_of_peak: None,
            max_relative_error: None,
            scratch_bytes: None,
            plan_bytes: None,
            ran: None,
            auto_vs_best: None,
            auto_speedup: None,
        }
    }

    /// A row for a peer library's timing of `layer`.
    pub fn peer(layer: &Layer, peer: Peer, threads: usize, seconds: f64, peak: &Peak) -> Row {
        let flops = layer.spec.flops().unwrap_or(0);
        let gflops = flops as f64 / seconds / 1e9;
        Row {
            shape: layer.name,
            spec: describe(layer),
            network: layer.network,
            count: layer.count,
            algorithm: Contender::Peer(peer),
            dtype: "f32",
            isa: None,
            threads,
            status: "ok".to_owned(),
            flops,
            median_ms: Some(seconds * 1e3),
            runs: 0,
            gflops: Some(gflops),
            percent_of_peak: Some(100.0 * gflops / peak.gflops),
            max_relative_error: None,
            scratch_bytes: None,
            plan_bytes: None,
            ran: Some(peer.name()),
            auto_vs_best: None,
            auto_speedup: None,
        }
    }

    /// A row for the standalone SGEMM.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(
        name: &'static str,
        isa: convkit::Isa,
        threads: usize,
        flops: u64,
        seconds: f64,
        runs: usize,
        peak: &Peak,
        scratch_bytes: usize,
    ) -> Row {
        let gflops = flops as f64 / seconds / 1e9;
        Row {
            shape: name,
            spec: "C = A·B, 1024x1024x1024 row-major".to_owned(),
            network: None,
            count: 1,
            algorithm: Contender::Sgemm,
            dtype: "f32",
            isa: Some(isa.name()),
            threads,
            status: "ok".to_owned(),
            flops,
            median_ms: Some(seconds * 1e3),
            runs,
            gflops: Some(gflops),
            percent_of_peak: Some(100.0 * gflops / peak.gflops),
            max_relative_error: None,
            scratch_bytes: Some(scratch_bytes),
            plan_bytes: None,
            ran: Some("sgemm"),
            auto_vs_best: None,
            auto_speedup: None,
        }
    }

    pub fn record<T: convkit::Element>(
        &mut self,
        plan: &Plan<T>,
        seconds: f64,
        runs: usize,
        peak: &Peak,
    ) {
        let gflops = self.flops as f64 / seconds / 1e9;
        self.isa = Some(plan.isa().name());
        self.median_ms = Some(seconds * 1e3);
        self.runs = runs;
        self.gflops = Some(gflops);
        self.percent_of_peak = Some(100.0 * gflops / peak.gflops);
        self.scratch_bytes = Some(plan.scratch_len() * std::mem::size_of::<f32>());
        self.plan_bytes = Some(plan.plan_bytes());
        self.ran = Some(plan.algorithm().name());
    }
}

/// A layer in one line: `N1 64->64 56x56 k3x3 p1`.
pub fn describe(layer: &Layer) -> String {
    let shape = layer.spec.shape().expect("suite layers are valid");
    let [h, w] = shape.input_hw();
    let [kh, kw] = shape.kernel_hw();
    let [sh, sw] = shape.stride();
    let [dh, dw] = shape.dilation();
    let mut text = format!(
        "N{} {}->{} {h}x{w} k{kh}x{kw}",
        shape.batch(),
        shape.in_channels(),
        shape.out_channels()
    );
    // One figure where both axes agree, `h x w` where they do not (1-D layers: height 1).
    let pair = |[h, w]: [usize; 2]| {
        if h == w {
            h.to_string()
        } else {
            format!("{h}x{w}")
        }
    };
    if [sh, sw] != [1, 1] {
        let _ = write!(text, " s{}", pair([sh, sw]));
    }
    let padding = shape.padding();
    if padding != convkit::Padding::ZERO {
        if [padding.top, padding.left] == [padding.bottom, padding.right] {
            let _ = write!(text, " p{}", pair([padding.top, padding.left]));
        } else {
            let _ = write!(
                text,
                " p{},{},{},{}",
                padding.top, padding.left, padding.bottom, padding.right
            );
        }
    }
    if [dh, dw] != [1, 1] {
        let _ = write!(text, " d{}", pair([dh, dw]));
    }
    if shape.groups() > 1 {
        let _ = write!(text, " g{}", shape.groups());
    }
    if shape.layout() == convkit::Layout::Nhwc {
        text.push_str(" NHWC");
    }
    text
}

/// Everything one bench run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub cores: usize,
    pub isas: Vec<&'static str>,
    pub quick: bool,
    pub peaks: Vec<PeakSet>,
    /// The peak measured again after every row: how much the host's throughput moved
    /// during the run (a shared machine's neighbours come and go).
    pub peaks_after: Vec<PeakSet>,
    pub rows: Vec<Row>,
    /// Per network and thread count (`--models` runs): totals and the layers slower than
    /// each peer.
    pub networks: Vec<NetworkTotal>,
    /// What each `--compare` peer did (version, or why it has no rows), per thread count.
    pub peer_notes: Vec<String>,
}

impl Report {
    pub fn new(
        peaks: Vec<PeakSet>,
        peaks_after: Vec<PeakSet>,
        rows: Vec<Row>,
        quick: bool,
        peer_notes: Vec<String>,
    ) -> Report {
        Report {
            machine: {
                let caches = convkit_simd::CacheSizes::detect();
                format!(
                    "{}, L1d {} KiB, L2 {} KiB per core",
                    cpu_model(),
                    caches.l1d >> 10,
                    caches.l2 >> 10
                )
            },
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            isas: convkit_simd::available_isas()
                .iter()
                .map(|i| i.name())
                .collect(),
            quick,
            peaks,
            peaks_after,
            networks: NetworkTotal::from_rows(&rows),
            rows,
            peer_notes,
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// A layer's peer time over Auto's (above 1: convkit is faster).
#[derive(Clone, Debug, Serialize)]
pub struct LayerRatio {
    pub layer: &'static str,
    pub ratio: f64,
}

/// How convkit's whole network compares with one peer's.
#[derive(Debug, Serialize)]
pub struct PeerTotal {
    pub peer: Peer,
    /// Σ median × count over the layers both timed.
    pub total_ms: f64,
    /// The peer's total over Auto's on the same layers.
    pub ratio: f64,
    /// Layers where Auto ran slower than the peer, slowest first.
    pub slower: Vec<LayerRatio>,
    /// The five layers with the lowest ratios, lowest first.
    pub slowest: Vec<LayerRatio>,
    /// Layers without a timing from both (left out of both totals).
    pub missing: usize,
}

/// One network at one thread count: Auto's f32 total (Σ layer median × its count) and each
/// peer's.
#[derive(Debug, Serialize)]
pub struct NetworkTotal {
    pub network: &'static str,
    pub threads: usize,
    pub layers: usize,
    /// Σ median × count of Auto over every layer it timed.
    pub auto_ms: f64,
    pub peers: Vec<PeerTotal>,
}

impl NetworkTotal {
    /// The totals of every network and thread count among `rows`, in row order.
    pub fn from_rows(rows: &[Row]) -> Vec<NetworkTotal> {
        let mut keys: Vec<(&'static str, usize)> = Vec::new();
        for row in rows {
            if let Some(network) = row.network
                && !keys.contains(&(network, row.threads))
            {
                keys.push((network, row.threads));
            }
        }
        keys.into_iter()
            .map(|(network, threads)| {
                let of = |contender: Contender| -> Vec<(&'static str, usize, Option<f64>)> {
                    rows.iter()
                        .filter(|r| {
                            r.network == Some(network)
                                && r.threads == threads
                                && r.dtype == "f32"
                                && r.algorithm == contender
                        })
                        .map(|r| (r.shape, r.count, r.median_ms))
                        .collect()
                };
                let auto = of(Contender::Convkit(Algorithm::Auto));
                let peers = Peer::ALL
                    .into_iter()
                    .filter_map(|peer| {
                        let timed = of(Contender::Peer(peer));
                        if timed.is_empty() {
                            return None;
                        }
                        Some(PeerTotal::new(peer, &auto, &timed))
                    })
                    .collect();
                NetworkTotal {
                    network,
                    threads,
                    layers: auto.len(),
                    auto_ms: auto
                        .iter()
                        .filter_map(|&(_, count, ms)| Some(ms? * count as f64))
                        .sum(),
                    peers,
                }
            })
            .collect()
    }
}

impl PeerTotal {
    /// `peer`'s total against Auto's over the layers both timed (`(layer, count, median)`).
    fn new(
        peer: Peer,
        auto: &[(&'static str, usize, Option<f64>)],
        timed: &[(&'static str, usize, Option<f64>)],
    ) -> PeerTotal {
        let mut pairs = Vec::new();
        let mut missing = 0;
        for &(layer, count, auto_ms) in auto {
            let peer_ms = timed
                .iter()
                .find(|(name, ..)| *name == layer)
                .and_then(|t| t.2);
            match (auto_ms, peer_ms) {
                (Some(a), Some(p)) => pairs.push((layer, count as f64, a, p)),
                _ => missing += 1,
            }
        }
        let auto_total: f64 = pairs.iter().map(|&(_, n, a, _)| n * a).sum();
        let total_ms: f64 = pairs.iter().map(|&(_, n, _, p)| n * p).sum();
        let mut ratios: Vec<LayerRatio> = pairs
            .iter()
            .map(|&(layer, _, a, p)| LayerRatio {
                layer,
                ratio: p / a,
            })
            .collect();
        ratios.sort_by(|x, y| x.ratio.total_cmp(&y.ratio));
        PeerTotal {
            peer,
            total_ms,
            ratio: total_ms / auto_total,
            slower: ratios.iter().filter(|r| r.ratio < 1.0).cloned().collect(),
            slowest: ratios.iter().take(5).cloned().collect(),
            missing,
        }
    }
}

/// A layer's whole spec, as plain numbers (what the planner check writes, so that a later
/// fit can recompute any feature of the shape).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Geometry {
    pub n: usize,
    pub c: usize,
    pub k: usize,
    pub hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub nhwc: bool,
}

impl Geometry {
    pub fn of(spec: &convkit::ConvSpec) -> Geometry {
        let padding = spec.padding_sides();
        Geometry {
            n: spec.batch(),
            c: spec.in_channels(),
            k: spec.out_channels(),
            hw: spec.input_hw(),
            kernel: spec.kernel_hw(),
            stride: spec.stride_hw(),
            pads: [padding.top, padding.left, padding.bottom, padding.right],
            dilation: spec.dilation_hw(),
            groups: spec.group_count(),
            nhwc: spec.activation_layout() == convkit::Layout::Nhwc,
        }
    }

    pub fn spec(&self) -> convkit::ConvSpec {
        let [top, left, bottom, right] = self.pads;
        let layout = if self.nhwc {
            convkit::Layout::Nhwc
        } else {
            convkit::Layout::Nchw
        };
        convkit::ConvSpec::new(self.n, self.c, self.k, self.hw, self.kernel)
            .stride(self.stride)
            .padding(convkit::Padding {
                top,
                bottom,
                left,
                right,
            })
            .dilation(self.dilation)
            .groups(self.groups)
            .layout(layout)
    }
}
