//! Terminal tables (comfy-table, in the house style of `tokbench run`).

use std::fmt::Write as _;

use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::grid::{self, Align, Grid, Span};
use super::{check_headline, check_lists, check_rule, clean, counts_line, prices_line};
use crate::report::check::CheckReport;
use crate::report::compare::{CompareReport, WorkloadComparison};

/// The grid as a terminal table: text with control characters escaped, alerts in upper case.
fn render(g: &Grid) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(g.headers.iter().map(comfy_table::Cell::new));
    for row in &g.rows {
        t.add_row(row.cells.iter().zip(&g.align).map(|(cell, align)| {
            let text = cell.join(|span| match span {
                Span::Text(s) | Span::Strong(s) => clean(s),
                Span::Figure(s) => s.clone(),
                Span::Alert(s) => s.to_uppercase(),
            });
            let cell = comfy_table::Cell::new(text);
            match align {
                Align::Right => cell.set_alignment(CellAlignment::Right),
                Align::Left => cell,
            }
        }));
    }
    t
}

/// The comparison as tables, one block per workload.
pub(super) fn compare(r: &CompareReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tokbench compare: {}", counts_line(r));
    if let Some(line) = prices_line(r) {
        let _ = writeln!(out, "{}", clean(&line));
    }
    for w in &r.workloads {
        out.push('\n');
        workload(&mut out, r, w);
    }
    if let Some(g) = grid::by_format(r) {
        let _ = writeln!(
            out,
            "\ntokens/s by weight format (each node's own results; formats are different workloads, never ranked together)\n{}",
            render(&g)
        );
    }
    if let Some(g) = grid::nodes(r) {
        let _ = writeln!(
            out,
            "\nnodes ranked by their summaries (run --adapter all: every GPU at once; node tokens/s is the sum over its GPUs)\n{}",
            render(&g)
        );
    }
    if let Some(g) = grid::probes(r) {
        let _ = writeln!(out, "\nmeasured peaks (probes)\n{}", render(&g));
    }
    if let (Some(s), Some(ranking), Some(points)) = (
        &r.serving,
        grid::serving_ranking(r),
        grid::serving_points(r, false),
    ) {
        let _ = writeln!(
            out,
            "\nserving, ranked by {}\n{}\nserving points (one row per concurrency; estimated rows are the analytic estimate)\n{}",
            s.ranked_by,
            render(&ranking),
            render(&points)
        );
    }
    if let Some(g) = grid::references(r, false) {
        let _ = writeln!(
            out,
            "\nreference rows from other tools (their engines and weights; not ranked)\n{}",
            render(&g)
        );
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(out, "\nskipped:");
        for s in &r.skipped {
            let _ = writeln!(out, "  {}: {}", clean(&s.source), clean(&s.reason));
        }
    }
    out
}

fn workload(out: &mut String, r: &CompareReport, w: &WorkloadComparison) {
    let _ = writeln!(
        out,
        "{} — {}",
        clean(&w.workload.id),
        clean(&w.workload.describe())
    );
    if w.ranked {
        let _ = writeln!(
            out,
            "ranked by {} ({} is better)",
            w.metric.label(),
            w.metric.better()
        );
    }
    if let Some(note) = &w.note {
        let _ = writeln!(out, "note: {}", clean(note));
    }
    let _ = writeln!(out, "{}", render(&grid::ranking(r, w)));
    if !w.excluded.is_empty() {
        let _ = writeln!(out, "left out:");
        for e in &w.excluded {
            let _ = writeln!(
                out,
                "  {} ({}): {}",
                clean(&e.node),
                clean(&e.source),
                clean(&e.reason)
            );
        }
    }
    if let Some(g) = grid::fleet(w) {
        let _ = writeln!(
            out,
            "fleet ({} by hardware group)\n{}",
            w.fleet_metric.label(),
            render(&g)
        );
    }
}

/// The verdict as a table.
pub(super) fn check(r: &CheckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tokbench check: {}", check_headline(r));
    let _ = writeln!(out, "rule: {}", check_rule(r));
    for (role, side) in [("baseline", &r.baseline), ("current", &r.current)] {
        let _ = writeln!(
            out,
            "{role}: {} ({}, {}, started {})",
            clean(&side.source),
            clean(&side.node),
            clean(&side.adapter),
            clean(&side.started_at)
        );
    }
    let _ = writeln!(out, "{}", render(&grid::check(r)));
    for line in check_lists(r) {
        let _ = writeln!(out, "{}", clean(&line));
    }
    out
}
