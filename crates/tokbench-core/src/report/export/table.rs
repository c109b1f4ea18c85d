//! Terminal tables (comfy-table, in the house style of `tokbench run`).

use std::fmt::Write as _;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::{
    change_text, check_figures, check_headline, check_lists, check_rule, clean, cost_headers, num,
    opt_num, pct, prices_line,
};
use crate::report::check::{CheckMetric, CheckReport};
use crate::report::compare::{CompareReport, WorkloadComparison};

fn new(header: &[String]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().map(Cell::new));
    t
}

fn right(text: impl ToString) -> Cell {
    Cell::new(text.to_string()).set_alignment(CellAlignment::Right)
}

/// The comparison as tables, one block per workload.
pub(super) fn compare(r: &CompareReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tokbench compare: {} result(s), {} workload(s), {} skipped",
        r.results,
        r.workloads.len(),
        r.skipped.len()
    );
    if let Some(line) = prices_line(r) {
        let _ = writeln!(out, "{}", clean(&line));
    }
    for w in &r.workloads {
        out.push('\n');
        workload(&mut out, r, w);
    }
    if !r.probes.is_empty() {
        let mut t = new(&["node", "adapter", "FMA GFLOP/s", "copy GB/s"].map(String::from));
        for p in &r.probes {
            t.add_row(vec![
                Cell::new(clean(&p.node)),
                Cell::new(clean(&p.adapter)),
                right(num(p.fma_gflops)),
                right(num(p.copy_gbps)),
            ]);
        }
        let _ = writeln!(out, "\nmeasured peaks (probes)\n{t}");
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
    let direction = if w.metric.higher_is_better() {
        "higher is better"
    } else {
        "lower is better"
    };
    let _ = writeln!(
        out,
        "{} — {}",
        clean(&w.workload.id),
        clean(&w.workload.describe())
    );
    if w.ranked {
        let _ = writeln!(out, "ranked by {} ({direction})", w.metric.label());
    }
    if let Some(note) = &w.note {
        let _ = writeln!(out, "note: {}", clean(note));
    }
    let tpj = if w.tokens_per_j_comparable {
        "tokens/J".to_string()
    } else {
        "tokens/J (not comparable)".to_string()
    };
    let mut header: Vec<String> = vec![
        "rank".into(),
        "node".into(),
        "adapter".into(),
        "tokens/s".into(),
        tpj,
    ];
    let costs = cost_headers(r);
    if let Some(c) = &costs {
        header.extend(c.iter().cloned());
    }
    header.extend(["of best".to_string(), "notes".to_string()]);
    let mut t = new(&header);
    for e in &w.entries {
        let mut row = vec![
            right(e.rank.map_or("-".into(), |r| r.to_string())),
            Cell::new(clean(&e.node)),
            Cell::new(clean(&e.hardware.adapter)),
            right(num(e.tokens_per_s)),
            right(opt_num(e.tokens_per_j)),
        ];
        if costs.is_some() {
            let c = e.cost.clone().unwrap_or_default();
            row.extend([
                right(opt_num(c.energy_per_mtok)),
                right(opt_num(c.hardware_per_mtok)),
                right(opt_num(c.total_per_mtok)),
            ]);
        }
        let mut notes: Vec<String> = Vec::new();
        if e.slow {
            notes.push("SLOW NODE".into());
        }
        notes.extend(e.notes.iter().map(|n| clean(n)));
        row.push(right(e.relative_to_best.map_or("-".into(), pct)));
        row.push(Cell::new(notes.join("; ")));
        t.add_row(row);
    }
    let _ = writeln!(out, "{t}");
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
    if !w.has_fleet() {
        return;
    }
    let mut t = new(&[
        "hardware group",
        "nodes",
        "median",
        "p10",
        "p90",
        "spread",
        "slow nodes",
    ]
    .map(String::from));
    for g in &w.fleet {
        t.add_row(vec![
            Cell::new(clean(&g.hardware.label())),
            right(g.stats.nodes),
            right(num(g.stats.median)),
            right(num(g.stats.p10)),
            right(num(g.stats.p90)),
            right(pct(g.stats.spread)),
            Cell::new(
                g.slow_nodes
                    .iter()
                    .map(|n| clean(n))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ]);
    }
    let _ = writeln!(
        out,
        "fleet ({} by hardware group)\n{t}",
        w.fleet_metric.label()
    );
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
    let (unit, change) = match r.metric {
        CheckMetric::TokensPerS => ("tok/s", "time change"),
        CheckMetric::TokensPerJ => ("tok/J", "tokens/J change"),
    };
    let mut t = new(&[
        "workload",
        "baseline",
        "current",
        change,
        "95% interval",
        "verdict",
        "note",
    ]
    .map(String::from));
    for w in &r.workloads {
        let (b, c) = check_figures(w, unit);
        let (ch, interval) = change_text(w);
        t.add_row(vec![
            Cell::new(clean(&w.id)),
            right(b),
            right(c),
            right(ch),
            right(interval),
            Cell::new(w.verdict_text()),
            Cell::new(w.note.as_deref().map(clean).unwrap_or_default()),
        ]);
    }
    let _ = writeln!(out, "{t}");
    for line in check_lists(r) {
        let _ = writeln!(out, "{}", clean(&line));
    }
    out
}
