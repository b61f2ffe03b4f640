//! The report's charts: SVG strings drawn with plotters' SVG backend (text is emitted as SVG
//! `<text>`, so no font files are needed), embedded in `index.html`.

use crate::model::{Contender, NetworkTotal, Report, Row};
use convkit::Algorithm;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Distinct colors for algorithms, in registry order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Layers in report order (the standalone SGEMM row excluded).
fn shapes(report: &Report) -> Vec<&'static str> {
    let mut shapes = Vec::new();
    for row in report
        .rows
        .iter()
        .filter(|r| r.algorithm != Contender::Sgemm)
    {
        if !shapes.contains(&row.shape) {
            shapes.push(row.shape);
        }
    }
    shapes
}

/// Algorithms in report order.
fn algorithms(report: &Report) -> Vec<Contender> {
    let mut algorithms = Vec::new();
    for row in report
        .rows
        .iter()
        .filter(|r| r.algorithm != Contender::Sgemm)
    {
        if !algorithms.contains(&row.algorithm) {
            algorithms.push(row.algorithm);
        }
    }
    algorithms
}

fn find<'a>(
    report: &'a Report,
    shape: &str,
    algorithm: Contender,
    threads: usize,
) -> Option<&'a Row> {
    report.rows.iter().find(|r| {
        r.shape == shape && r.algorithm == algorithm && r.threads == threads && r.dtype == "f32"
    })
}

type ChartResult = Result<(), Box<dyn std::error::Error>>;

/// The category axis of horizontal bar charts: one unit band per layer, labelled at its
/// middle.
fn categories(shapes: &[&str]) -> RangedCoordf64 {
    (0.0..shapes.len() as f64).into()
}

/// Writes each layer's name left of the middle of its band (plotters' own labels would land
/// on round numbers, not on the bands).
fn label_bands<X: Ranged<ValueType = f64>>(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    chart: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, RangedCoordf64>>,
    left: f64,
    shapes: &[&str],
) -> ChartResult {
    let style = ("sans-serif", 12)
        .into_font()
        .into_text_style(root)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for (index, shape) in shapes.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(left, band(shapes.len(), index) + 0.5));
        root.draw(&Text::new(*shape, (x - 6, y), style.clone()))?;
    }
    Ok(())
}

/// Draws the series legend at `position`, on a translucent white box.
fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> ChartResult {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(position)
        .label_font(("sans-serif", 11))
        .draw()?;
    Ok(())
}

/// Pixel height of a chart with `per_layer` pixels per layer band.
fn height(layers: usize, per_layer: u32) -> u32 {
    100 + per_layer.saturating_mul(u32::try_from(layers).unwrap_or(1000))
}

/// Bottom of layer `index`'s band: the first layer at the top.
fn band(layers: usize, index: usize) -> f64 {
    (layers - 1 - index) as f64
}

/// Grouped bars of GFLOP/s per layer and algorithm at `threads`, with the measured peak as a
/// dashed line.
pub fn gflops(report: &Report, threads: usize) -> Result<String, String> {
    let shapes = shapes(report);
    let algorithms: Vec<Contender> = algorithms(report)
        .into_iter()
        .filter(|&a| a != Contender::Convkit(Algorithm::Reference))
        .collect();
    let peak = report
        .peaks
        .iter()
        .find(|p| p.threads == threads)
        .map_or(0.0, |p| p.best.gflops);
    let top = report
        .rows
        .iter()
        .filter(|r| r.threads == threads)
        .filter_map(|r| r.gflops)
        .fold(peak, f64::max)
        * 1.1;
    let mut svg = String::new();
    let draw = |svg: &mut String| -> ChartResult {
        let root = SVGBackend::with_string(
            svg,
            (
                1000,
                height(shapes.len(), 10 * algorithms.len().max(2) as u32),
            ),
        )
        .into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("GFLOP/s per layer, {threads} thread(s); dashed: measured FMA peak"),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(130)
            .build_cartesian_2d(0.0..top, categories(&shapes))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("GFLOP/s (direct-method FLOPs)")
            .draw()?;
        label_bands(&root, &chart, 0.0, &shapes)?;
        let width = 0.8 / algorithms.len().max(1) as f64;
        for (a, algorithm) in algorithms.iter().enumerate() {
            let color = PALETTE[a % PALETTE.len()];
            let bars: Vec<Rectangle<(f64, f64)>> = shapes
                .iter()
                .enumerate()
                .filter_map(|(s, shape)| {
                    let value = find(report, shape, *algorithm, threads)?.gflops?;
                    let y = band(shapes.len(), s) + 0.1 + a as f64 * width;
                    Some(Rectangle::new(
                        [(0.0, y), (value, y + width)],
                        color.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)?
                .label(algorithm.name())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart.draw_series(DashedLineSeries::new(
            [(peak, 0.0), (peak, shapes.len() as f64)],
            6,
            4,
            BLACK.stroke_width(2),
        ))?;
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| format!("drawing the GFLOP/s chart: {e}"))?;
    Ok(svg)
}

/// Per layer at `threads`: how many times faster Auto's plan ran than the slowest concrete
/// algorithm (reference excluded) and than the reference, on a log scale.
pub fn auto_speedup(report: &Report, threads: usize) -> Result<String, String> {
    let shapes = shapes(report);
    let speedups: Vec<(Option<f64>, Option<f64>)> = shapes
        .iter()
        .map(|shape| {
            let auto = find(report, shape, Contender::Convkit(Algorithm::Auto), threads)
                .and_then(|r| r.median_ms);
            let slowest = report
                .rows
                .iter()
                .filter(|r| {
                    r.shape == *shape
                        && r.threads == threads
                        && r.dtype == "f32"
                        && r.algorithm.is_concrete()
                        && r.algorithm != Contender::Convkit(Algorithm::Reference)
                })
                .filter_map(|r| r.median_ms)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            let reference = find(
                report,
                shape,
                Contender::Convkit(Algorithm::Reference),
                threads,
            )
            .and_then(|r| r.median_ms);
            (
                auto.zip(slowest).map(|(a, s)| s / a),
                auto.zip(reference).map(|(a, r)| r / a),
            )
        })
        .collect();
    let top = speedups
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .flatten()
        .fold(2.0, f64::max)
        * 1.5;
    let mut svg = String::new();
    let draw = |svg: &mut String| -> ChartResult {
        let root =
            SVGBackend::with_string(svg, (1000, height(shapes.len(), 30))).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Auto's speed-up, {threads} thread(s) (log scale)"),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(130)
            .build_cartesian_2d((0.5..top).log_scale(), categories(&shapes))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&|x| format!("{x}x"))
            .x_desc("times faster than")
            .draw()?;
        label_bands(&root, &chart, 0.5, &shapes)?;
        for (series, (name, color)) in [
            ("over the slowest algorithm", PALETTE[0]),
            ("over the reference", PALETTE[1]),
        ]
        .into_iter()
        .enumerate()
        {
            let bars: Vec<Rectangle<(f64, f64)>> = speedups
                .iter()
                .enumerate()
                .filter_map(|(s, pair)| {
                    let value = if series == 0 { pair.0 } else { pair.1 }?;
                    let y = band(shapes.len(), s) + 0.15 + series as f64 * 0.35;
                    Some(Rectangle::new(
                        [(0.5, y), (value, y + 0.35)],
                        color.filled(),
                    ))
                })
                .collect();
            chart.draw_series(bars)?.label(name).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
            });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| format!("drawing the speed-up chart: {e}"))?;
    Ok(svg)
}

/// One network at one thread count: per layer, each peer's time over Auto's (above 1: convkit
/// is faster), on a log scale with the break-even line.
pub fn network(report: &Report, total: &NetworkTotal) -> Result<String, String> {
    let shapes: Vec<&'static str> = shapes(report)
        .into_iter()
        .filter(|shape| {
            report
                .rows
                .iter()
                .any(|r| r.shape == *shape && r.network == Some(total.network))
        })
        .collect();
    // The peer rows' own rating (`report::rate_peers`): the peer's median over Auto's.
    let ratio = |shape: &str, peer: Contender| -> Option<f64> {
        find(report, shape, peer, total.threads)?.auto_speedup
    };
    let peers: Vec<Contender> = total
        .peers
        .iter()
        .map(|p| Contender::Peer(p.peer))
        .collect();
    let values: Vec<f64> = shapes
        .iter()
        .flat_map(|shape| peers.iter().filter_map(|&peer| ratio(shape, peer)))
        .collect();
    let low = values.iter().copied().fold(0.5, f64::min) / 1.2;
    let high = values.iter().copied().fold(2.0, f64::max) * 1.2;
    let per_peer = 0.8 / peers.len().max(1) as f64;
    let mut svg = String::new();
    let draw = |svg: &mut String| -> ChartResult {
        let root =
            SVGBackend::with_string(svg, (1000, height(shapes.len(), 24))).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}, {} thread(s): peer time / convkit Auto time per layer (log scale)",
                    total.network, total.threads
                ),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(170)
            .build_cartesian_2d((low..high).log_scale(), categories(&shapes))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&|x| format!("{x:.2}x"))
            .x_desc("above 1: convkit is faster")
            .draw()?;
        label_bands(&root, &chart, low, &shapes)?;
        for (index, &peer) in peers.iter().enumerate() {
            let color = PALETTE[(index + 1) % PALETTE.len()];
            let bars: Vec<Rectangle<(f64, f64)>> = shapes
                .iter()
                .enumerate()
                .filter_map(|(s, shape)| {
                    let value = ratio(shape, peer)?;
                    let y = band(shapes.len(), s) + 0.1 + index as f64 * per_peer;
                    Some(Rectangle::new(
                        [(low, y), (value, y + per_peer)],
                        color.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)?
                .label(peer.name())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart.draw_series(LineSeries::new(
            [(1.0, 0.0), (1.0, shapes.len() as f64)],
            BLACK.stroke_width(1),
        ))?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| format!("drawing the {} chart: {e}", total.network))?;
    Ok(svg)
}

/// Auto's GFLOP/s per layer against the thread count, one line per layer.
pub fn thread_scaling(report: &Report) -> Result<String, String> {
    let shapes = shapes(report);
    let mut threads: Vec<usize> = report.peaks.iter().map(|p| p.threads).collect();
    threads.sort_unstable();
    let max_threads = threads.last().copied().unwrap_or(1);
    let top = report
        .rows
        .iter()
        .filter(|r| r.algorithm.is_auto() && r.dtype == "f32")
        .filter_map(|r| r.gflops)
        .fold(1.0, f64::max)
        * 1.1;
    let mut svg = String::new();
    let draw = |svg: &mut String| -> ChartResult {
        let root = SVGBackend::with_string(svg, (900, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Thread scaling of Auto's plan", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(10)
            .build_cartesian_2d(0.8..max_threads as f64 + 0.2, 0.0..top)?;
        chart
            .configure_mesh()
            .x_labels(threads.len())
            .x_desc("threads")
            .y_desc("GFLOP/s")
            .draw()?;
        for (s, shape) in shapes.iter().enumerate() {
            let color = PALETTE[s % PALETTE.len()];
            let points: Vec<(f64, f64)> = threads
                .iter()
                .filter_map(|&t| {
                    Some((
                        t as f64,
                        find(report, shape, Contender::Convkit(Algorithm::Auto), t)?.gflops?,
                    ))
                })
                .collect();
            let style = if s < PALETTE.len() {
                color.stroke_width(2)
            } else {
                color.stroke_width(1)
            };
            chart
                .draw_series(LineSeries::new(points, style))?
                .label(*shape)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], style));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| format!("drawing the thread-scaling chart: {e}"))?;
    Ok(svg)
}

/// Worst measured error relative to `Σ|x·w|` per layer and algorithm (log scale).
pub fn errors(report: &Report) -> Result<String, String> {
    let shapes = shapes(report);
    let algorithms: Vec<Contender> = algorithms(report)
        .into_iter()
        .filter(|a| !a.is_auto())
        .collect();
    let values: Vec<f64> = report
        .rows
        .iter()
        .filter_map(|r| r.max_relative_error)
        .filter(|e| *e > 0.0)
        .collect();
    let low = values.iter().copied().fold(1e-8, f64::min) / 2.0;
    let high = values.iter().copied().fold(1e-6, f64::max) * 3.0;
    let mut svg = String::new();
    let draw = |svg: &mut String| -> ChartResult {
        let root =
            SVGBackend::with_string(svg, (1000, height(shapes.len(), 30))).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Worst |y − exact| / Σ|x·w| per layer (log scale)",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(130)
            .build_cartesian_2d((low..high).log_scale(), categories(&shapes))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .x_desc("relative error")
            .draw()?;
        label_bands(&root, &chart, low, &shapes)?;
        let step = 0.8 / algorithms.len().max(1) as f64;
        for (a, algorithm) in algorithms.iter().enumerate() {
            let color = PALETTE[a % PALETTE.len()];
            let points: Vec<Circle<(f64, f64), i32>> = shapes
                .iter()
                .enumerate()
                .filter_map(|(s, shape)| {
                    let error = report
                        .rows
                        .iter()
                        .filter(|r| {
                            r.shape == *shape && r.algorithm == *algorithm && r.dtype == "f32"
                        })
                        .find_map(|r| r.max_relative_error)?
                        .max(low);
                    Some(Circle::new(
                        (error, band(shapes.len(), s) + 0.1 + (a as f64 + 0.5) * step),
                        4,
                        color.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(points)?
                .label(algorithm.name())
                .legend(move |(x, y)| Circle::new((x + 5, y), 4, color.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| format!("drawing the error chart: {e}"))?;
    Ok(svg)
}
