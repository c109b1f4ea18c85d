//! Markdown: GitHub-flavoured tables, for pull requests and CI step summaries.

use std::fmt::Write as _;

use super::{
    change_text, check_figures, check_headline, check_lists, check_rule, clean, cost_headers, num,
    opt_num, pct, prices_line,
};
use crate::report::check::{CheckMetric, CheckReport, Verdict};
use crate::report::compare::{CompareReport, WorkloadComparison};

/// `text` safe inside Markdown and its table cells: HTML metacharacters as entities, Markdown
/// punctuation backslash-escaped, control characters escaped.
pub(crate) fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in clean(text).chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// A header row and its rule; columns for which `right` holds are right-aligned (numbers).
fn header(cells: &[String], right: impl Fn(usize) -> bool) -> String {
    let rule: Vec<&str> = (0..cells.len())
        .map(|i| if right(i) { "---:" } else { "---" })
        .collect();
    format!("{}| {} |\n", row(cells), rule.join(" | "))
}

/// The comparison in Markdown.
pub(super) fn compare(r: &CompareReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## tokbench compare\n");
    let _ = writeln!(
        out,
        "{} result(s), {} workload(s), {} skipped.",
        r.results,
        r.workloads.len(),
        r.skipped.len()
    );
    if let Some(line) = prices_line(r) {
        let _ = writeln!(out, "\n{}", md(&line));
    }
    for w in &r.workloads {
        out.push('\n');
        workload(&mut out, r, w);
    }
    if !r.probes.is_empty() {
        let _ = writeln!(out, "\n### Measured peaks (probes)\n");
        out.push_str(&header(
            &["node", "adapter", "FMA GFLOP/s", "copy GB/s"].map(String::from),
            |i| i >= 2,
        ));
        for p in &r.probes {
            out.push_str(&row(&[
                md(&p.node),
                md(&p.adapter),
                num(p.fma_gflops),
                num(p.copy_gbps),
            ]));
        }
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
        let direction = if w.metric.higher_is_better() {
            "higher"
        } else {
            "lower"
        };
        let _ = write!(
            out,
            " Ranked by **{}** ({direction} is better).",
            md(w.metric.label())
        );
    }
    out.push('\n');
    if let Some(note) = &w.note {
        let _ = writeln!(out, "\n> {}", md(note));
    }
    out.push('\n');
    let tpj = if w.tokens_per_j_comparable {
        "tokens/J"
    } else {
        "tokens/J (not comparable)"
    };
    let mut cells: Vec<String> = ["rank", "node", "adapter", "tokens/s", tpj]
        .map(String::from)
        .into();
    let costs = cost_headers(r);
    if let Some(c) = &costs {
        cells.extend(c.iter().map(|h| md(h)));
    }
    cells.extend(["of best".into(), "notes".into()]);
    let notes_col = cells.len() - 1;
    out.push_str(&header(&cells, |i| i == 0 || (3..notes_col).contains(&i)));
    for e in &w.entries {
        let mut cells = vec![
            e.rank.map_or("-".into(), |r| r.to_string()),
            md(&e.node),
            md(&e.hardware.adapter),
            num(e.tokens_per_s),
            opt_num(e.tokens_per_j),
        ];
        if costs.is_some() {
            let c = e.cost.clone().unwrap_or_default();
            cells.extend([
                opt_num(c.energy_per_mtok),
                opt_num(c.hardware_per_mtok),
                opt_num(c.total_per_mtok),
            ]);
        }
        cells.push(e.relative_to_best.map_or("-".into(), pct));
        let mut notes: Vec<String> = Vec::new();
        if e.slow {
            notes.push("**slow node**".into());
        }
        notes.extend(e.notes.iter().map(|n| md(n)));
        cells.push(notes.join("; "));
        out.push_str(&row(&cells));
    }
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
    if !w.has_fleet() {
        return;
    }
    let _ = writeln!(
        out,
        "\nFleet ({} by hardware group):\n",
        md(w.fleet_metric.label())
    );
    out.push_str(&header(
        &[
            "hardware group",
            "nodes",
            "median",
            "p10",
            "p90",
            "spread",
            "slow nodes",
        ]
        .map(String::from),
        |i| (1..6).contains(&i),
    ));
    for g in &w.fleet {
        let slow: Vec<String> = g.slow_nodes.iter().map(|n| md(n)).collect();
        out.push_str(&row(&[
            md(&g.hardware.label()),
            g.stats.nodes.to_string(),
            num(g.stats.median),
            num(g.stats.p10),
            num(g.stats.p90),
            pct(g.stats.spread),
            slow.join(", "),
        ]));
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
    let (unit, change) = match r.metric {
        CheckMetric::TokensPerS => ("tok/s", "time change"),
        CheckMetric::TokensPerJ => ("tok/J", "tokens/J change"),
    };
    out.push_str(&header(
        &[
            "workload",
            "baseline",
            "current",
            change,
            "95% interval",
            "verdict",
            "note",
        ]
        .map(String::from),
        |i| (1..5).contains(&i),
    ));
    for w in &r.workloads {
        let (b, c) = check_figures(w, unit);
        let (ch, interval) = change_text(w);
        let verdict = match w.verdict {
            Verdict::Regression | Verdict::Invalid if w.gated => {
                format!("**{}**", w.verdict_text())
            }
            _ => w.verdict_text(),
        };
        out.push_str(&row(&[
            md(&w.id),
            b,
            c,
            ch,
            interval,
            verdict,
            w.note.as_deref().map(md).unwrap_or_default(),
        ]));
    }
    let lists = check_lists(r);
    if !lists.is_empty() {
        out.push('\n');
        for line in lists {
            let _ = writeln!(out, "- {}", md(&line));
        }
    }
    out
}
