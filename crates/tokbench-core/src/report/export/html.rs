//! HTML: one self-contained file (inline CSS, inline SVG charts drawn with plotters, no script,
//! nothing fetched). Every string from a result file is escaped, and a Content-Security-Policy
//! forbids scripts in case anything ever slips through.

use std::fmt::Write as _;

use anyhow::anyhow;
use plotters::prelude::*;

use super::grid::{self, Align, Grid, Span};
use super::{clean, counts_line, entities, prices_line};
use crate::report::compare::{CompareReport, Entry, WorkloadComparison};
use crate::units::num;

/// `text` safe as HTML text or attribute value.
pub(crate) fn esc(text: &str) -> String {
    entities(text, |ch, out| match ch {
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        _ => out.push(ch),
    })
}

/// The grid as an HTML table: text escaped, strong spans and alerts in bold, numbers in
/// right-aligned cells, flagged rows marked for the style sheet.
fn render(h: &mut String, g: &Grid) {
    h.push_str("<table>\n<tr>");
    for head in &g.headers {
        let _ = write!(h, "<th>{}</th>", esc(head));
    }
    h.push_str("</tr>\n");
    for row in &g.rows {
        let _ = write!(
            h,
            "<tr{}>",
            if row.flagged { " class=\"slow\"" } else { "" }
        );
        for (cell, align) in row.cells.iter().zip(&g.align) {
            let text = cell.join(|span| match span {
                Span::Text(s) => esc(s),
                Span::Figure(s) => s.clone(),
                Span::Strong(s) => format!("<b>{}</b>", esc(s)),
                Span::Alert(s) => format!("<b>{s}</b>"),
            });
            let class = match align {
                Align::Right => " class=\"n\"",
                Align::Left => "",
            };
            let _ = write!(h, "<td{class}>{text}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// The style sheet every tokbench HTML page shares.
pub(crate) const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:.5rem 0 1rem}\
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.slow td{background:#fde8e8}\
.note{background:#fff6d6;padding:.25rem .5rem}\
.charts{display:flex;flex-wrap:wrap;gap:1rem}\
section{border-top:1px solid #ddd;margin-top:1.5rem}";

/// The start of a self-contained page titled `title` (also its heading), styled by [`STYLE`]
/// and `extra_style`: no scripts, nothing fetched.
pub(crate) fn page_start(title: &str, extra_style: &str) -> String {
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    );
    let _ = writeln!(
        h,
        "<title>{title}</title>\n<style>{STYLE}{extra_style}</style>\n</head>\n<body>\n<h1>{title}</h1>"
    );
    h
}

/// The comparison as an HTML page.
pub(super) fn compare(r: &CompareReport) -> anyhow::Result<String> {
    let mut h = page_start("tokbench compare", "");
    let _ = writeln!(h, "<p>{}.</p>", counts_line(r));
    if let Some(line) = prices_line(r) {
        let _ = writeln!(h, "<p>{}</p>", esc(&line));
    }
    for w in &r.workloads {
        workload(&mut h, r, w)?;
    }
    if let Some(g) = grid::by_format(r) {
        h.push_str(
            "<section>\n<h2>Tokens/s by weight format</h2>\n<p>Each node's own results; formats are different workloads, never ranked together.</p>\n",
        );
        render(&mut h, &g);
        h.push_str("</section>\n");
    }
    if let Some(g) = grid::nodes(r) {
        h.push_str(
            "<section>\n<h2>Nodes</h2>\n<p>Ranked by their node summaries (<code>run --adapter all</code>: every GPU at once; node tokens/s is the sum over its GPUs).</p>\n",
        );
        render(&mut h, &g);
        h.push_str("</section>\n");
    }
    if let Some(g) = grid::probes(r) {
        h.push_str("<section>\n<h2>Measured peaks (probes)</h2>\n");
        render(&mut h, &g);
        h.push_str("</section>\n");
    }
    serving(&mut h, r)?;
    if let Some(g) = grid::references(r, false) {
        h.push_str(
            "<section>\n<h2>Reference rows from other tools</h2>\n<p>Their engines and weights, measured their way: shown beside tokbench's figures, not ranked.</p>\n",
        );
        render(&mut h, &g);
        h.push_str("</section>\n");
    }
    if !r.skipped.is_empty() {
        h.push_str("<section>\n<h2>Skipped</h2>\n<ul>\n");
        for s in &r.skipped {
            let _ = writeln!(h, "<li>{}: {}</li>", esc(&s.source), esc(&s.reason));
        }
        h.push_str("</ul>\n</section>\n");
    }
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

fn workload(h: &mut String, r: &CompareReport, w: &WorkloadComparison) -> anyhow::Result<()> {
    let _ = writeln!(
        h,
        "<section>\n<h2>{}</h2>\n<p>{}.",
        esc(&w.workload.id),
        esc(&w.workload.describe())
    );
    if w.ranked {
        let _ = write!(
            h,
            " Ranked by <b>{}</b> ({} is better).",
            w.metric.label(),
            w.metric.better()
        );
    }
    h.push_str("</p>\n");
    if let Some(note) = &w.note {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(note));
    }

    h.push_str("<div class=\"charts\">\n");
    let bar = |e: &Entry, v: f64| Bar {
        label: e.node.clone(),
        value: v,
        flagged: e.slow,
    };
    let tps: Vec<Bar> = w.entries.iter().map(|e| bar(e, e.tokens_per_s)).collect();
    h.push_str(&bar_chart(
        "tokens/s per node",
        &tps,
        RGBColor(70, 110, 180),
    )?);
    let tpj: Vec<Bar> = w
        .entries
        .iter()
        .filter_map(|e| e.tokens_per_j.map(|v| bar(e, v)))
        .collect();
    if !tpj.is_empty() {
        let title = if w.tokens_per_j_comparable {
            "tokens/J per node"
        } else {
            "tokens/J per node (not comparable)"
        };
        h.push_str(&bar_chart(title, &tpj, RGBColor(60, 150, 90))?);
    }
    h.push_str("</div>\n");
    render(h, &grid::ranking(r, w));
    if !w.excluded.is_empty() {
        h.push_str("<p>Left out:</p>\n<ul>\n");
        for x in &w.excluded {
            let _ = writeln!(
                h,
                "<li>{} ({}): {}</li>",
                esc(&x.node),
                esc(&x.source),
                esc(&x.reason)
            );
        }
        h.push_str("</ul>\n");
    }
    if let Some(g) = grid::fleet(w) {
        let _ = writeln!(
            h,
            "<p>Fleet ({} by hardware group):</p>",
            w.fleet_metric.label()
        );
        render(h, &g);
    }
    h.push_str("</section>\n");
    Ok(())
}

/// The serving section: the ranking, one curve chart per group of nodes that served the same
/// requests, and the points.
fn serving(h: &mut String, r: &CompareReport) -> anyhow::Result<()> {
    let (Some(s), Some(ranking), Some(points)) = (
        &r.serving,
        grid::serving_ranking(r),
        grid::serving_points(r, false),
    ) else {
        return Ok(());
    };
    let _ = writeln!(
        h,
        "<section>\n<h2>Serving</h2>\n<p>Ranked by {}.</p>",
        esc(&s.ranked_by)
    );
    render(h, &ranking);
    let mut groups: Vec<&str> = s.nodes.iter().map(|n| n.group.as_str()).collect();
    groups.dedup();
    for group in groups {
        let curves: Vec<Curve> = s
            .nodes
            .iter()
            .filter(|n| n.group == group)
            .map(|n| {
                let mut executed: Vec<&crate::result::ServingPoint> = n
                    .points
                    .iter()
                    .filter(|p| p.source == crate::result::PointSource::Executed)
                    .collect();
                executed.sort_by_key(|p| p.concurrency);
                Curve {
                    label: n.node.clone(),
                    points: executed
                        .iter()
                        .map(|p| (p.tokens_per_s_per_user, p.output_tokens_per_s_per_gpu))
                        .collect(),
                    estimated: n
                        .points
                        .iter()
                        .filter(|p| p.source == crate::result::PointSource::Estimated)
                        .map(|p| (p.tokens_per_s_per_user, p.output_tokens_per_s_per_gpu))
                        .collect(),
                }
            })
            .collect();
        h.push_str(&curve_chart(
            &format!("{group}: throughput per GPU against interactivity"),
            &curves,
        )?);
    }
    h.push_str(
        "<p>Filled marks and lines: executed points, by concurrency; hollow marks: the analytic estimate.</p>\n",
    );
    render(h, &points);
    h.push_str("</section>\n");
    Ok(())
}

/// One node's serving curve.
struct Curve {
    /// The node: untrusted text, cut to [`LABEL_CHARS`].
    label: String,
    /// Executed (tokens/s per user, output tokens/s per GPU), by concurrency.
    points: Vec<(f64, f64)>,
    /// Estimated points.
    estimated: Vec<(f64, f64)>,
}

/// Output tokens/s per GPU (y) against tokens/s per user (x), a line per node.
fn curve_chart(title: &str, curves: &[Curve]) -> anyhow::Result<String> {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
    ];
    let all = curves
        .iter()
        .flat_map(|c| c.points.iter().chain(&c.estimated));
    let (x_max, y_max) = all.fold((0.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let x_max = if x_max > 0.0 { x_max * 1.1 } else { 1.0 };
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let chart_err = |e: &dyn std::fmt::Display| anyhow!("drawing the chart {title:?}: {e}");
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| chart_err(&e))?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 12))
            .x_desc("tokens/s per user (1 / median TPOT)")
            .y_desc("output tokens/s per GPU")
            .x_label_formatter(&|x| axis_num(*x))
            .y_label_formatter(&|y| axis_num(*y))
            .draw()
            .map_err(|e| chart_err(&e))?;
        for (i, c) in curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(std::iter::once(PathElement::new(
                    c.points.clone(),
                    color.stroke_width(2),
                )))
                .map_err(|e| chart_err(&e))?
                .label(short(&c.label))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(c.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| chart_err(&e))?;
            chart
                .draw_series(
                    c.estimated
                        .iter()
                        .map(|&p| Circle::new(p, 4, color.stroke_width(1))),
                )
                .map_err(|e| chart_err(&e))?;
        }
        draw_legend(&mut chart).map_err(|e| chart_err(&e))?;
        root.present().map_err(|e| chart_err(&e))?;
    }
    Ok(svg + "\n")
}

/// Draws the series' labels at the top right of `chart`, on a light box.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()
}

/// An axis figure without trailing zeros: "2", "0.5", "20000".
fn axis_num(x: f64) -> String {
    let text = num(x);
    if text.contains('.') && !text.contains('e') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Longest label drawn in a chart; the tables carry the full names.
const LABEL_CHARS: usize = 28;

/// One bar of a chart.
pub(crate) struct Bar {
    /// What the bar is (a node, a workload): untrusted text, cut to [`LABEL_CHARS`].
    pub label: String,
    /// Its length.
    pub value: f64,
    /// Drawn in red (a slow node).
    pub flagged: bool,
}

/// `label` cleaned and cut to [`LABEL_CHARS`].
fn short(label: &str) -> String {
    let label = clean(label);
    if label.chars().count() > LABEL_CHARS {
        label.chars().take(LABEL_CHARS - 1).collect::<String>() + "…"
    } else {
        label
    }
}

/// A horizontal bar per entry, the first at the top; flagged ones in red. Plotters' SVG backend
/// escapes the labels it writes.
pub(crate) fn bar_chart(title: &str, bars: &[Bar], color: RGBColor) -> anyhow::Result<String> {
    let stacked: Vec<(String, Vec<f64>, bool)> = bars
        .iter()
        .map(|b| (b.label.clone(), vec![b.value], b.flagged))
        .collect();
    stacked_chart(title, &stacked, &[("", color)])
}

/// Horizontal bars made of parts laid end to end (energy then hardware cost), one colour per
/// part, with a legend when the parts are named; the first row at the top.
pub(crate) fn stacked_chart(
    title: &str,
    rows: &[(String, Vec<f64>, bool)],
    parts: &[(&str, RGBColor)],
) -> anyhow::Result<String> {
    let n = rows.len();
    let labels: Vec<String> = rows.iter().rev().map(|(l, _, _)| short(l)).collect();
    let max = rows
        .iter()
        .map(|(_, v, _)| v.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let legend = parts.iter().any(|(name, _)| !name.is_empty());
    // Room on the right for the legend, so no bar runs under it.
    let headroom = if legend { 1.45 } else { 1.1 };
    let x_max = if max > 0.0 { max * headroom } else { 1.0 };
    let height = 70 + 26 * n.max(2) as u32 + if legend { 24 } else { 0 };
    let mut svg = String::new();
    {
        let chart_err = |e: &dyn std::fmt::Display| anyhow!("drawing the chart {title:?}: {e}");
        let root = SVGBackend::with_string(&mut svg, (560, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(190)
            // An integer range is inclusive here: 0..n-1 gives n segments.
            // One bar still needs a range that is not empty: 0..1, its segment and one above.
            .build_cartesian_2d(0.0..x_max, (0..n.saturating_sub(1).max(1)).into_segmented())
            .map_err(|e| chart_err(&e))?;
        chart
            .configure_mesh()
            // A fixed size: plotters' default scales with the chart, unreadable on short ones.
            .label_style(("sans-serif", 12))
            .disable_y_mesh()
            .max_light_lines(1)
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_labels(5)
            .x_label_formatter(&|x| axis_num(*x))
            .draw()
            .map_err(|e| chart_err(&e))?;
        let slow_color = RGBColor(200, 60, 60);
        for (p, (name, color)) in parts.iter().enumerate() {
            let series = chart
                .draw_series(
                    rows.iter()
                        .rev()
                        .enumerate()
                        .map(|(i, (_, values, flagged))| {
                            let start: f64 = values.iter().take(p).sum();
                            let end = start + values.get(p).copied().unwrap_or(0.0);
                            let fill = if *flagged { slow_color } else { *color };
                            let mut bar = Rectangle::new(
                                [
                                    (start, SegmentValue::Exact(i)),
                                    (end, SegmentValue::Exact(i + 1)),
                                ],
                                fill.filled(),
                            );
                            bar.set_margin(3, 3, 0, 0);
                            bar
                        }),
                )
                .map_err(|e| chart_err(&e))?;
            if !name.is_empty() {
                let c = *color;
                series.label(*name).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled())
                });
            }
        }
        if legend {
            draw_legend(&mut chart).map_err(|e| chart_err(&e))?;
        }
        root.present().map_err(|e| chart_err(&e))?;
    }
    Ok(svg + "\n")
}
