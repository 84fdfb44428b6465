//! The report's PNG charts, drawn with plotters' bitmap backend: P50 and
//! P99 latency by offered rate for each kind of open-loop scenario, and peak
//! RSS and CPU per request of every target in every scenario.
//!
//! Values across targets span three orders of magnitude (corelay's 30 µs of
//! CPU per request against LiteLLM's milliseconds), so every value axis is
//! logarithmic. Text (titles, axes, legends) needs a font file: plotters'
//! `ab_glyph` feature draws with a TrueType font the harness finds on the
//! system (`FONT_FILES`), not one it ships. Without one the charts are drawn
//! with no text at all, and the report's Markdown carries the titles and the
//! colour legend either way, so a chart is never the only place a figure is.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::oha::Load;
use super::report::Metric;
use super::run::Measurement;
use super::targets::Target;

/// Where Debian (fonts-dejavu-core) and other distributions keep a plain
/// sans-serif font; the first that exists is used.
const FONT_FILES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
const FONT: &str = "sans-serif";
/// Pixels of each chart; bar charts widen with their scenarios.
const SIZE: (u32, u32) = (960, 540);
/// Width of one scenario's group of bars, beyond the first eight.
const BAR_GROUP_PX: u32 = 120;
/// Sideways shift of each target's points in a latency chart, as a share
/// of a step, so targets at the same value do not hide one another.
const DODGE: f64 = 0.03;
/// Share of a bar chart's height kept clear above the bars, for the legend
/// (five entries).
const LEGEND_SHARE: f64 = 0.3;

/// One chart written next to the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File name in the results folder.
    pub file: String,
    pub title: String,
}

/// The colour of a target, the same in every chart.
pub fn colour(target: Target) -> RGBColor {
    match target {
        Target::Mock => RGBColor(128, 128, 128),
        Target::Corelay => RGBColor(31, 119, 180),
        Target::Crabllm => RGBColor(255, 127, 14),
        Target::Litellm => RGBColor(44, 160, 44),
        Target::Tensorzero => RGBColor(148, 103, 189),
    }
}

/// The colour's name, for the legend in the Markdown.
pub fn colour_name(target: Target) -> &'static str {
    match target {
        Target::Mock => "grey",
        Target::Corelay => "blue",
        Target::Crabllm => "orange",
        Target::Litellm => "green",
        Target::Tensorzero => "purple",
    }
}

/// Draws every chart the runs allow into `dir`; returns those written, and
/// a message for each that failed.
pub fn draw(dir: &Path, runs: &[Measurement]) -> (Vec<Chart>, Vec<String>) {
    let text = font_registered();
    let mut charts = Vec::new();
    let mut failures = Vec::new();
    let mut keep = |chart: Chart, result: anyhow::Result<()>| match result {
        Ok(()) => charts.push(chart),
        Err(e) => failures.push(format!("{}: {e:#}", chart.file)),
    };
    for group in latency_groups(runs) {
        let chart = Chart { file: format!("latency-{}.png", group.slug), title: group.title.clone() };
        let result = draw_latency(&dir.join(&chart.file), &group, text);
        keep(chart, result);
    }
    for (metric, slug, title) in [
        (Metric::PeakRss, "peak-rss", "Peak RSS (MB, log scale) by scenario"),
        (Metric::CpuPerRequest, "cpu-per-request", "CPU per request (µs, log scale) by scenario"),
    ] {
        let bars = bars(runs, metric);
        if bars.scenarios.is_empty() {
            continue;
        }
        let chart = Chart { file: format!("{slug}.png"), title: title.to_owned() };
        let result = draw_bars(&dir.join(&chart.file), title, &bars, text);
        keep(chart, result);
    }
    (charts, failures)
}

/// Registers the first font of `FONT_FILES` that exists, once; whether one was.
pub fn font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        FONT_FILES.iter().any(|path| {
            let Ok(bytes) = std::fs::read(path) else { return false };
            // plotters keeps fonts for the life of the process, by `'static`
            // reference; this is done once per process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok()
        })
    })
}

/// The open-loop runs of one scenario kind (with or without latency
/// correction), by target: P50 and P99 in ms at each offered rate.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyGroup {
    pub slug: String,
    pub title: String,
    /// The offered rates, ascending: the x axis, one step each.
    pub rates: Vec<u32>,
    pub lines: Vec<(Target, Vec<LatencyPoint>)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyPoint {
    pub rps: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub fn latency_groups(runs: &[Measurement]) -> Vec<LatencyGroup> {
    let mut groups: Vec<LatencyGroup> = Vec::new();
    for m in runs {
        let Load::Rate { rps, .. } = m.scenario.load else { continue };
        let (Some(p50), Some(p99)) = (m.outcome.p50_us, m.outcome.p99_us) else { continue };
        let lc = m.scenario.latency_correction;
        let slug = format!("{}{}", m.scenario.kind, if lc { "-lc" } else { "" });
        let index = match groups.iter().position(|g| g.slug == slug) {
            Some(i) => i,
            None => {
                let title = format!(
                    "{}{}: P50 (circles) and P99 (triangles) latency in ms, log scale, by offered rate",
                    m.scenario.kind,
                    if lc { ", latency-corrected" } else { "" }
                );
                groups.push(LatencyGroup { slug, title, rates: Vec::new(), lines: Vec::new() });
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        if !group.rates.contains(&rps) {
            group.rates.push(rps);
        }
        let point = LatencyPoint { rps, p50_ms: p50 / 1000.0, p99_ms: p99 / 1000.0 };
        match group.lines.iter_mut().find(|(t, _)| *t == m.target) {
            Some((_, points)) => points.push(point),
            None => group.lines.push((m.target, vec![point])),
        }
    }
    for group in &mut groups {
        group.rates.sort_unstable();
        for (_, points) in &mut group.lines {
            points.sort_by_key(|p| p.rps);
        }
    }
    groups
}

/// One metric of every target in every scenario: a group of bars per
/// scenario, one bar per target.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub scenarios: Vec<String>,
    pub targets: Vec<Target>,
    /// `values[scenario][target]`, in the chart's unit (MB or µs).
    pub values: Vec<Vec<Option<f64>>>,
}

pub fn bars(runs: &[Measurement], metric: Metric) -> Bars {
    let mut scenarios: Vec<String> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    for m in runs {
        if !scenarios.contains(&m.scenario.name) {
            scenarios.push(m.scenario.name.clone());
        }
        if !targets.contains(&m.target) {
            targets.push(m.target);
        }
    }
    targets.sort_by_key(|t| Target::ALL.iter().position(|a| a == t));
    let unit = |v: f64| if metric == Metric::PeakRss { v / 1048576.0 } else { v };
    let values = scenarios
        .iter()
        .map(|s| {
            targets
                .iter()
                .map(|&t| {
                    let m = runs.iter().find(|m| &m.scenario.name == s && m.target == t)?;
                    metric.value(m).map(unit).filter(|v| *v > 0.0)
                })
                .collect()
        })
        .collect();
    Bars { scenarios, targets, values }
}

/// A log-scale range that holds every value with some room: from half the
/// smallest to twice the largest, and higher still so that the top
/// `free_share` of the axis stays clear (for the legend).
fn log_range(values: impl Iterator<Item = f64>, free_share: f64) -> anyhow::Result<std::ops::Range<f64>> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        bail!("no positive value to draw");
    }
    let (bottom, top) = (lo / 2.0, hi * 2.0);
    // In decades: room / (span + room) = free_share.
    let room = free_share / (1.0 - free_share) * (top / bottom).log10();
    Ok(bottom..top * 10f64.powf(room))
}

fn draw_latency(path: &Path, group: &LatencyGroup, text: bool) -> anyhow::Result<()> {
    let values = group.lines.iter().flat_map(|(_, points)| points.iter().flat_map(|p| [p.p50_ms, p.p99_ms]));
    let y = log_range(values, 0.0)?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let steps = group.rates.len() as f64;
    let mut chart = builder(&root, &group.title, text).build_cartesian_2d(0.0..steps, y.clone().log_scale())?;
    mesh(&mut chart, text, "ms")?;
    let x_of = |rps: u32, line: usize| {
        let dodge = (line as f64 - (group.lines.len() as f64 - 1.0) / 2.0) * DODGE;
        group.rates.iter().position(|&r| r == rps).unwrap_or(0) as f64 + 0.5 + dodge
    };
    for (line, (target, points)) in group.lines.iter().enumerate() {
        let style = colour(*target).stroke_width(2);
        let p50: Vec<(f64, f64)> = points.iter().map(|p| (x_of(p.rps, line), p.p50_ms)).collect();
        let p99: Vec<(f64, f64)> = points.iter().map(|p| (x_of(p.rps, line), p.p99_ms)).collect();
        let series = chart.draw_series(LineSeries::new(p50.clone(), style))?;
        if text {
            series
                .label(target.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour(*target).stroke_width(2)));
        }
        chart.draw_series(LineSeries::new(p99.clone(), colour(*target).stroke_width(1)))?;
        chart.draw_series(p50.iter().map(|&c| Circle::new(c, 5, colour(*target).filled())))?;
        chart.draw_series(p99.iter().map(|&c| TriangleMarker::new(c, 6, colour(*target).filled())))?;
    }
    if text {
        let labels: Vec<String> = group.rates.iter().map(|r| format!("{r} rps")).collect();
        category_labels(&root, &chart, &labels, y.start)?;
        legend(&mut chart)?;
    }
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn draw_bars(path: &Path, title: &str, bars: &Bars, text: bool) -> anyhow::Result<()> {
    // The legend sits in the top left corner, over the first group.
    let y = log_range(bars.values.iter().flatten().flatten().copied(), LEGEND_SHARE)?;
    let extra = (bars.scenarios.len() as u32).saturating_sub(8) * BAR_GROUP_PX;
    let root = BitMapBackend::new(path, (SIZE.0 + extra, SIZE.1)).into_drawing_area();
    root.fill(&WHITE)?;
    let groups = bars.scenarios.len() as f64;
    let mut chart = builder(&root, title, text).build_cartesian_2d(0.0..groups, y.clone().log_scale())?;
    let unit = if title.contains("RSS") { "MB" } else { "µs" };
    mesh(&mut chart, text, unit)?;
    // Each scenario's step holds one bar per target, with a margin of a
    // tenth of the step on each side.
    let width = 0.8 / bars.targets.len() as f64;
    for (t, &target) in bars.targets.iter().enumerate() {
        let rects = bars.values.iter().enumerate().filter_map(|(s, values)| {
            let value = values[t]?;
            let left = s as f64 + 0.1 + t as f64 * width;
            Some(Rectangle::new([(left, y.start), (left + width * 0.9, value)], colour(target).filled()))
        });
        let series = chart.draw_series(rects)?;
        if text {
            series
                .label(target.name())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour(target).filled()));
        }
    }
    if text {
        category_labels(&root, &chart, &bars.scenarios, y.start)?;
        legend(&mut chart)?;
    }
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

type LogChart<'a> = ChartContext<
    'a,
    BitMapBackend<'a>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::combinators::LogCoord<f64>>,
>;

/// A chart builder with room for the title and labels, or with none when
/// there is no font.
fn builder<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
    text: bool,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder.margin(20);
    if text {
        builder.caption(title, (FONT, 18)).x_label_area_size(40).y_label_area_size(70);
    }
    builder
}

/// Horizontal grid lines and, with a font, the value axis's labels.
fn mesh(chart: &mut LogChart<'_>, text: bool, unit: &str) -> anyhow::Result<()> {
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh().x_labels(0);
    if text {
        mesh.y_desc(unit).label_style((FONT, 14)).y_label_formatter(&|v| format_value(*v));
    } else {
        mesh.y_labels(0);
    }
    mesh.draw()?;
    Ok(())
}

/// A label under the middle of each step of the x axis (the axis itself is
/// continuous, so plotters would not put its labels there).
fn category_labels(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    chart: &LogChart<'_>,
    labels: &[String],
    y_bottom: f64,
) -> anyhow::Result<()> {
    let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, label) in labels.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, y_bottom));
        root.draw(&Text::new(label.clone(), (x, y + 8), style.clone()))?;
    }
    Ok(())
}

fn legend(chart: &mut LogChart<'_>) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    Ok(())
}

/// 0.05, 0.5, 5, 50, 5000: short labels for a log axis.
fn format_value(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scenario: &str, target: Target, p50_us: f64, p99_us: f64, cpu_us: f64, rss_mb: u64) -> Measurement {
        crate::harness::fixtures::measurement(scenario, target, p50_us, p99_us, cpu_us, rss_mb, 100.0)
    }

    fn sample() -> Vec<Measurement> {
        vec![
            run("chat-minimal@1000", Target::Corelay, 150.0, 400.0, 30.0, 8),
            run("chat-minimal@5000", Target::Corelay, 180.0, 3000.0, 32.0, 9),
            run("chat-minimal@5000", Target::Litellm, 270_000.0, 1_000_000.0, 6000.0, 350),
            run("chat-minimal@1000", Target::Litellm, 250_000.0, 900_000.0, 5800.0, 340),
            run("chat-minimal@5000+lc", Target::Corelay, 130.0, 270.0, 21.0, 8),
            run("concurrent-100", Target::Crabllm, 20_000.0, 25_000.0, 200.0, 107),
        ]
    }

    #[test]
    fn latency_groups_by_kind_and_correction_with_sorted_rates() {
        let groups = latency_groups(&sample());
        let slugs: Vec<&str> = groups.iter().map(|g| g.slug.as_str()).collect();
        // concurrent-100 is closed loop: it has no offered rate.
        assert_eq!(slugs, ["chat-minimal", "chat-minimal-lc"]);
        assert_eq!(groups[0].rates, [1000, 5000]);
        let (target, points) = &groups[0].lines[1];
        assert_eq!(*target, Target::Litellm);
        assert_eq!(points.iter().map(|p| p.rps).collect::<Vec<_>>(), [1000, 5000]);
        assert!((points[0].p50_ms - 250.0).abs() < 1e-9);
    }

    #[test]
    fn bars_hold_every_scenario_and_target_in_order() {
        let bars = bars(&sample(), Metric::PeakRss);
        assert_eq!(bars.targets, [Target::Corelay, Target::Crabllm, Target::Litellm]);
        assert_eq!(bars.scenarios.len(), 4);
        assert_eq!(bars.values[0], [Some(8.0), None, Some(340.0)]);
        assert_eq!(bars.values[3], [None, Some(107.0), None]);
    }

    #[test]
    fn log_ranges_pad_the_extremes() {
        assert_eq!(log_range([2.0, 8.0, 0.0].into_iter(), 0.0).unwrap(), 1.0..16.0);
        assert!(log_range([0.0, f64::NAN].into_iter(), 0.0).is_err());
        // 1..16 spans 1.2 decades; half the axis clear doubles that.
        let r = log_range([2.0, 8.0].into_iter(), 0.5).unwrap();
        assert!((r.end - 256.0).abs() < 1e-6, "{r:?}");
    }

    #[test]
    fn charts_are_pngs_with_and_without_text() {
        let dir = std::env::temp_dir().join(format!("corelay-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let runs = sample();
        let group = &latency_groups(&runs)[0];
        let bars = bars(&runs, Metric::CpuPerRequest);
        for text in [false, font_registered()] {
            let latency = dir.join(format!("latency-{text}.png"));
            draw_latency(&latency, group, text).unwrap();
            let cpu = dir.join(format!("cpu-{text}.png"));
            draw_bars(&cpu, "CPU per request", &bars, text).unwrap();
            for path in [latency, cpu] {
                let bytes = std::fs::read(&path).unwrap();
                assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", path.display());
            }
        }
        let (charts, failures) = draw(&dir, &runs);
        assert!(failures.is_empty(), "{failures:?}");
        let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(
            files,
            ["latency-chat-minimal.png", "latency-chat-minimal-lc.png", "peak-rss.png", "cpu-per-request.png"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
