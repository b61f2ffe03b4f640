//! The bench report: a table on stdout, `report.md` and `report.json` on disk.

use crate::model::{Contender, LayerRatio, NetworkTotal, Report, Row};
use std::fmt::Write as _;
use std::path::Path;

/// Per row: the median of the f32 `auto` row of the same shape and thread count.
fn f32_auto_medians(rows: &[Row]) -> Vec<Option<f64>> {
    rows.iter()
        .map(|row| {
            rows.iter()
                .find(|r| {
                    r.shape == row.shape
                        && r.threads == row.threads
                        && r.algorithm.is_auto()
                        && r.dtype == "f32"
                })
                .and_then(|r| r.median_ms)
        })
        .collect()
}

/// Fills `auto_speedup` of every peer row: the peer's median over Auto's, in its status too.
pub fn rate_peers(rows: &mut [Row]) {
    let auto = f32_auto_medians(rows);
    for (row, auto_ms) in rows.iter_mut().zip(auto) {
        let (Some(ms), Some(auto_ms), true) = (
            row.median_ms,
            auto_ms,
            matches!(row.algorithm, Contender::Peer(_)),
        ) else {
            continue;
        };
        let speedup = ms / auto_ms;
        row.auto_speedup = Some(speedup);
        row.status = format!("ok (NCHW): convkit auto {speedup:.2}x as fast");
    }
}

/// Fills `auto_vs_best` of every `auto` row and notes the choice in its status: the ratio to
/// the fastest other algorithm on the same shape and thread count, flagged beyond 5%.
pub fn rate_auto(rows: &mut [Row]) {
    let best: Vec<Option<(f64, &'static str)>> = rows
        .iter()
        .map(|auto| {
            rows.iter()
                .filter(|r| {
                    r.shape == auto.shape
                        && r.threads == auto.threads
                        && r.dtype == "f32"
                        && r.algorithm.is_concrete()
                })
                .filter_map(|r| Some((r.median_ms?, r.algorithm.name())))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        })
        .collect();
    let f32_auto = f32_auto_medians(rows);
    for ((row, best), f32_ms) in rows.iter_mut().zip(best).zip(f32_auto) {
        if row.algorithm.is_auto()
            && row.dtype != "f32"
            && let (Some(ms), Some(f32_ms)) = (row.median_ms, f32_ms)
        {
            row.status = format!(
                "ok: chose {}, {:.2}x the f32 time",
                row.ran.unwrap_or("-"),
                ms / f32_ms
            );
            continue;
        }
        let (Some(ms), Some((best_ms, best_name)), true) = (
            row.median_ms,
            best,
            row.algorithm.is_auto() && row.dtype == "f32",
        ) else {
            continue;
        };
        let ratio = ms / best_ms;
        row.auto_vs_best = Some(ratio);
        let ran = row.ran.unwrap_or("-");
        row.status = if ratio <= 1.05 {
            format!("ok: chose {ran}, {ratio:.2}x the best ({best_name})")
        } else if ran == best_name {
            // The same algorithm in two rows of one run: what differs is the host.
            format!(
                "SLOWER: chose {ran}, {ratio:.2}x the best ({best_name}: the same algorithm, \
                 timed apart; the host's throughput moved)"
            )
        } else {
            format!("SLOWER: chose {ran}, {ratio:.2}x the best ({best_name})")
        };
    }
}

fn cell(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), format)
}

fn kib(bytes: Option<usize>) -> String {
    bytes.map_or_else(|| "-".to_owned(), |b| format!("{:.1}", b as f64 / 1024.0))
}

const HEADER: [&str; 12] = [
    "shape",
    "algorithm",
    "type",
    "isa",
    "thr",
    "median ms",
    "GFLOP/s",
    "% peak",
    "max rel err",
    "scratch KiB",
    "plan KiB",
    "status",
];

fn cells(row: &Row) -> [String; 12] {
    [
        row.shape.to_owned(),
        row.algorithm.name().to_owned(),
        row.dtype.to_owned(),
        row.isa.unwrap_or("-").to_owned(),
        row.threads.to_string(),
        cell(row.median_ms, |v| format!("{v:.3}")),
        cell(row.gflops, |v| format!("{v:.2}")),
        cell(row.percent_of_peak, |v| format!("{v:.1}")),
        cell(row.max_relative_error, |v| format!("{v:.1e}")),
        kib(row.scratch_bytes),
        kib(row.plan_bytes),
        row.status.clone(),
    ]
}

fn peaks_line(report: &Report) -> String {
    let line = report
        .peaks
        .iter()
        .map(|set| {
            let paths: Vec<String> = set
                .by_isa
                .iter()
                .map(|p| format!("{} {:.1}", p.isa, p.gflops))
                .collect();
            format!(
                "{} thread(s) {:.1} GFLOP/s on {} ({})",
                set.threads,
                set.best.gflops,
                set.best.isa,
                paths.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let after: Vec<String> = report
        .peaks_after
        .iter()
        .map(|set| format!("{} thread(s) {:.1}", set.threads, set.best.gflops))
        .collect();
    // The largest change of any thread count's peak between the start and the end.
    let drift = report
        .peaks
        .iter()
        .zip(&report.peaks_after)
        .map(|(start, end)| (end.best.gflops / start.best.gflops - 1.0).abs())
        .fold(0.0, f64::max);
    let verdict = if drift > PEAK_DRIFT_WARNING {
        "the host's throughput moved during the run: compare rows as ratios, and rerun for \
         % of peak"
    } else {
        "steady"
    };
    format!(
        "{line}; again after the rows: {} ({:.0} % change, {verdict})",
        after.join(", "),
        drift * 100.0
    )
}

/// A change of the peak between a run's start and end beyond which the report says that
/// its "% of peak" figures are not to be trusted.
const PEAK_DRIFT_WARNING: f64 = 0.05;

pub fn print_table(report: &Report) {
    let table: Vec<[String; 12]> = report.rows.iter().map(cells).collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].len())
                .chain([HEADER[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!(
        "\nconvkit bench on {} ({} cores, {})",
        report.machine,
        report.cores,
        report.isas.join("+")
    );
    println!("measured f32 FMA peak: {}", peaks_line(report));
    for note in &report.peer_notes {
        println!("compared with {note}");
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (text, &w))| {
                if c < 4 || c == 11 {
                    format!("{text:<w$}")
                } else {
                    format!("{text:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(HEADER.to_vec()));
    for row in &table {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// `layer 0.91x, layer 0.95x` (or "none").
fn ratios(list: &[LayerRatio]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    list.iter()
        .map(|r| format!("{} {:.2}x", r.layer, r.ratio))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The per-network summary as text lines: one total line per network and thread count, then
/// per peer the layers Auto is slower on and the five lowest ratios.
fn network_lines(networks: &[NetworkTotal]) -> Vec<String> {
    let mut lines = Vec::new();
    if networks.is_empty() {
        return lines;
    }
    lines.push(
        "Network totals: Σ layer median x count (f32 Auto); ratio = peer total / convkit \
         total (above 1: convkit is faster)."
            .to_owned(),
    );
    for total in networks {
        let mut line = format!(
            "{} at {} thread(s), {} layers: convkit {:.2} ms",
            total.network, total.threads, total.layers, total.auto_ms
        );
        for peer in &total.peers {
            let _ = write!(
                line,
                "; {} {:.2} ms, ratio {:.2}",
                peer.peer.name(),
                peer.total_ms,
                peer.ratio
            );
            if peer.missing > 0 {
                let _ = write!(line, " ({} layers untimed, left out)", peer.missing);
            }
        }
        lines.push(line);
        for peer in &total.peers {
            lines.push(format!(
                "  slower than {} on {} layer(s): {}",
                peer.peer.name(),
                peer.slower.len(),
                ratios(&peer.slower)
            ));
            lines.push(format!(
                "  slowest five against {}: {}",
                peer.peer.name(),
                ratios(&peer.slowest)
            ));
        }
    }
    lines
}

/// Prints the per-network totals of a `--models` run.
pub fn print_networks(report: &Report) {
    let lines = network_lines(&report.networks);
    if !lines.is_empty() {
        println!();
    }
    for line in lines {
        println!("{line}");
    }
}

fn markdown(report: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# convkit bench report\n");
    let _ = writeln!(
        md,
        "Machine: {} ({} cores; paths: {}){}.\n",
        report.machine,
        report.cores,
        report.isas.join(", "),
        if report.quick {
            "; **quick smoke run, one timed run per row**"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "Measured f32 FMA peak: {}.\n", peaks_line(report));
    for note in &report.peer_notes {
        let _ = writeln!(md, "Compared with {note}.\n");
    }
    let _ = writeln!(
        md,
        "GFLOP/s counts the direct method's FLOPs (2·N·K·C/g·OH·OW·KH·KW) over the median \
         time; % peak is against the peak measured above for the same thread count; max rel \
         err is the worst |y − exact| / (Σ|x·w| + |bias|) against the f64 reference.\n"
    );
    for line in network_lines(&report.networks) {
        let _ = writeln!(md, "{}", line.replacen("  ", "- ", 1));
    }
    if !report.networks.is_empty() {
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "| {} |", HEADER.join(" | "));
    let _ = writeln!(md, "|{}|", HEADER.map(|_| "---").join("|"));
    for row in &report.rows {
        let _ = writeln!(md, "| {} |", cells(row).join(" | "));
    }
    let _ = writeln!(md, "\nLayers:\n");
    let mut seen = Vec::new();
    for row in &report.rows {
        if !seen.contains(&row.shape) {
            seen.push(row.shape);
            let _ = writeln!(md, "- `{}`: {}", row.shape, row.spec);
        }
    }
    md
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The self-contained HTML report: summary, inline SVG charts, the full table.
fn html(report: &Report) -> Result<String, String> {
    let mut threads: Vec<usize> = report.peaks.iter().map(|p| p.threads).collect();
    threads.sort_unstable();
    let mut charts = Vec::new();
    for &t in &threads {
        charts.push(crate::charts::gflops(report, t)?);
    }
    for &t in &threads {
        charts.push(crate::charts::auto_speedup(report, t)?);
    }
    for total in &report.networks {
        if !total.peers.is_empty() {
            charts.push(crate::charts::network(report, total)?);
        }
    }
    charts.push(crate::charts::thread_scaling(report)?);
    charts.push(crate::charts::errors(report)?);
    let mut page = String::new();
    let _ = writeln!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>convkit bench report</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:1250px}}\
         table{{border-collapse:collapse;font-size:12px}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}\
         td:nth-child(-n+3),td:last-child{{text-align:left}}\
         tr.slow td{{background:#fdd}} .chart{{margin:1em 0}}</style></head><body>"
    );
    let _ = writeln!(page, "<h1>convkit bench report</h1>");
    let _ = writeln!(
        page,
        "<p>Machine: {} ({} cores; paths: {}){}.<br>Measured f32 FMA peak: {}.</p>",
        escape(&report.machine),
        report.cores,
        report.isas.join(", "),
        if report.quick {
            "; <b>quick smoke run, one timed run per row</b>"
        } else {
            ""
        },
        escape(&peaks_line(report))
    );
    for note in &report.peer_notes {
        let _ = writeln!(page, "<p>Compared with {}.</p>", escape(note));
    }
    if !report.networks.is_empty() {
        let _ = writeln!(page, "<h2>Networks</h2><ul>");
        for line in network_lines(&report.networks) {
            let _ = writeln!(page, "<li>{}</li>", escape(line.trim_start()));
        }
        let _ = writeln!(page, "</ul>");
    }
    let slower: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.auto_vs_best.is_some_and(|ratio| ratio > 1.05))
        .map(|r| format!("{} at {} thread(s)", r.shape, r.threads))
        .collect();
    let _ = writeln!(
        page,
        "<p>GFLOP/s counts the direct method's FLOPs (2·N·K·C/g·OH·OW·KH·KW) over the median \
         time, so Winograd can exceed the FMA peak. Auto is within 5% of the best algorithm of \
         this run on every layer{}.</p>",
        if slower.is_empty() {
            String::new()
        } else {
            format!(" <b>except</b>: {}", escape(&slower.join(", ")))
        }
    );
    for svg in charts {
        let _ = writeln!(page, "<div class=\"chart\">{svg}</div>");
    }
    let _ = writeln!(page, "<h2>All rows</h2><table><tr>");
    for title in HEADER {
        let _ = write!(page, "<th>{}</th>", escape(title));
    }
    let _ = writeln!(page, "</tr>");
    for row in &report.rows {
        let class = if row.auto_vs_best.is_some_and(|ratio| ratio > 1.05) {
            " class=\"slow\""
        } else {
            ""
        };
        let _ = write!(page, "<tr{class}>");
        for value in cells(row) {
            let _ = write!(page, "<td>{}</td>", escape(&value));
        }
        let _ = writeln!(page, "</tr>");
    }
    let _ = writeln!(page, "</table><h2>Layers</h2><ul>");
    let mut seen = Vec::new();
    for row in &report.rows {
        if !seen.contains(&row.shape) {
            seen.push(row.shape);
            let _ = writeln!(
                page,
                "<li><code>{}</code>: {}</li>",
                row.shape,
                escape(&row.spec)
            );
        }
    }
    let _ = writeln!(page, "</ul></body></html>");
    Ok(page)
}

pub fn write(report: &Report, folder: &Path) -> Result<(), String> {
    std::fs::create_dir_all(folder)
        .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    for (name, text) in [
        ("report.json", json),
        ("report.md", markdown(report)),
        ("index.html", html(report)?),
    ] {
        let path = folder.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rate_auto;
    use crate::model::Row;
    use crate::suite::layers;
    use convkit::Algorithm;

    /// A timed f32 row of the first suite layer on one thread.
    fn timed(algorithm: Algorithm, ms: f64, ran: Option<&'static str>) -> Row {
        let layer = &layers()[0];
        Row {
            median_ms: Some(ms),
            ran,
            ..Row::new(layer, algorithm, "f32", 1)
        }
    }

    #[test]
    fn auto_is_rated_against_the_fastest_algorithm_of_its_shape() {
        let direct = Some(Algorithm::Direct.name());
        let mut rows = vec![
            timed(Algorithm::Auto, 1.04, direct),
            timed(Algorithm::Direct, 1.0, None),
            timed(Algorithm::Im2colGemm, 2.0, None),
        ];
        rate_auto(&mut rows);
        assert!(rows[0].status.starts_with("ok: chose direct, 1.04x"));
        // Slower than the same algorithm's own row: marked, and said to be the host.
        rows[0].median_ms = Some(1.5);
        rate_auto(&mut rows);
        assert!(rows[0].status.starts_with("SLOWER"));
        assert!(rows[0].status.contains("the same algorithm"));
        // Slower than another algorithm: marked, without that reading.
        rows[1].median_ms = Some(3.0);
        rows[2].median_ms = Some(1.0);
        rate_auto(&mut rows);
        assert!(
            rows[0]
                .status
                .starts_with("SLOWER: chose direct, 1.50x the best (im2col-gemm)")
        );
    }
}
