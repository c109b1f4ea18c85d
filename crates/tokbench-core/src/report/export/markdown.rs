//! Markdown: GitHub-flavoured tables, for pull requests and CI step summaries.

use std::fmt::Write as _;

use super::grid::{self, Align, Grid, Span};
use super::{check_headline, check_lists, check_rule, counts_line, entities, prices_line};
use crate::report::check::CheckReport;
use crate::report::compare::{CompareReport, WorkloadComparison};

/// `text` safe inside Markdown and its table cells: HTML metacharacters as entities, Markdown
/// punctuation backslash-escaped, control characters escaped.
pub(crate) fn md(text: &str) -> String {
    entities(text, |ch, out| match ch {
        '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
            out.push('\\');
            out.push(ch);
        }
        _ => out.push(ch),
    })
}

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// The grid as a GitHub-flavoured table: text escaped, strong spans and alerts in bold,
/// numeric columns right-aligned.
fn render(g: &Grid) -> String {
    let headers: Vec<String> = g.headers.iter().map(|h| md(h)).collect();
    let rule: Vec<String> = g
        .align
        .iter()
        .map(|a| match a {
            Align::Right => "---:".into(),
            Align::Left => "---".into(),
        })
        .collect();
    let mut out = row(&headers) + &row(&rule);
    for r in &g.rows {
        let cells: Vec<String> = r
            .cells
            .iter()
            .map(|cell| {
                cell.join(|span| match span {
                    Span::Text(s) => md(s),
                    Span::Figure(s) => s.clone(),
                    Span::Strong(s) => format!("**{}**", md(s)),
                    Span::Alert(s) => format!("**{s}**"),
                })
            })
            .collect();
        out.push_str(&row(&cells));
    }
    out
}

/// The comparison in Markdown.
pub(super) fn compare(r: &CompareReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## tokbench compare\n");
    let _ = writeln!(out, "{}.", counts_line(r));
    if let Some(line) = prices_line(r) {
        let _ = writeln!(out, "\n{}", md(&line));
    }
    for w in &r.workloads {
        out.push('\n');
        workload(&mut out, r, w);
    }
    if let Some(g) = grid::by_format(r) {
        let _ = writeln!(
            out,
            "\n### Tokens/s by weight format\n\nEach node's own results; formats are different workloads, never ranked together.\n"
        );
        out.push_str(&render(&g));
    }
    if let Some(g) = grid::nodes(r) {
        let _ = writeln!(
            out,
            "\n### Nodes\n\nRanked by their node summaries (`run --adapter all`: every GPU at once; node tokens/s is the sum over its GPUs).\n"
        );
        out.push_str(&render(&g));
    }
    if let Some(g) = grid::probes(r) {
        let _ = writeln!(out, "\n### Measured peaks (probes)\n");
        out.push_str(&render(&g));
    }
    if let (Some(s), Some(ranking), Some(points)) = (
        &r.serving,
        grid::serving_ranking(r),
        grid::serving_points(r, false),
    ) {
        let _ = writeln!(out, "\n### Serving\n\nRanked by {}.\n", md(&s.ranked_by));
        out.push_str(&render(&ranking));
        let _ = writeln!(
            out,
            "\nOne row per point; estimated rows are the analytic estimate, not a measurement.\n"
        );
        out.push_str(&render(&points));
    }
    if let Some(g) = grid::references(r, false) {
        let _ = writeln!(
            out,
            "\n### Reference rows from other tools\n\nTheir engines and weights, measured their way: shown beside tokbench's figures, not ranked.\n"
        );
        out.push_str(&render(&g));
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(out, "\n### Skipped\n");
        for s in &r.skipped {
            let _ = writeln!(out, "- {}: {}", md(&s.source), md(&s.reason));
        }
    }
    out
}

fn workload(out: &mut String, r: &CompareReport, w: &WorkloadComparison) {
    let _ = writeln!(out, "### {}\n", md(&w.workload.id));
    let _ = write!(out, "{}.", md(&w.workload.describe()));
    if w.ranked {
        let _ = write!(
            out,
            " Ranked by **{}** ({} is better).",
            md(w.metric.label()),
            w.metric.better()
        );
    }
    out.push('\n');
    if let Some(note) = &w.note {
        let _ = writeln!(out, "\n> {}", md(note));
    }
    out.push('\n');
    out.push_str(&render(&grid::ranking(r, w)));
    if !w.excluded.is_empty() {
        let _ = writeln!(out, "\nLeft out:\n");
        for e in &w.excluded {
            let _ = writeln!(
                out,
                "- {} ({}): {}",
                md(&e.node),
                md(&e.source),
                md(&e.reason)
            );
        }
    }
    if let Some(g) = grid::fleet(w) {
        let _ = writeln!(
            out,
            "\nFleet ({} by hardware group):\n",
            md(w.fleet_metric.label())
        );
        out.push_str(&render(&g));
    }
}

/// The verdict in Markdown, for `$GITHUB_STEP_SUMMARY`.
pub(super) fn check(r: &CheckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## tokbench check: {}\n", check_headline(r));
    let _ = writeln!(out, "Rule: {}.\n", md(&check_rule(r)));
    for (role, side) in [("Baseline", &r.baseline), ("Current", &r.current)] {
        let _ = writeln!(
            out,
            "- {role}: {} ({}, {}, started {}{})",
            md(&side.source),
            md(&side.node),
            md(&side.adapter),
            md(&side.started_at),
            side.git_sha
                .as_deref()
                .map(|s| format!(", commit {}", md(s)))
                .unwrap_or_default()
        );
    }
    out.push('\n');
    out.push_str(&render(&grid::check(r)));
    let lists = check_lists(r);
    if !lists.is_empty() {
        out.push('\n');
        for line in lists {
            let _ = writeln!(out, "- {}", md(&line));
        }
    }
    out
}
