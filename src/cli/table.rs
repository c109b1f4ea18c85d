//! Terminal tables.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::result::{Roofline, RunResult};

/// A new table in the house style.
pub(super) fn new(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().map(Cell::new));
    t
}

/// Right-aligned cell, for numbers.
pub(super) fn num(text: impl ToString) -> Cell {
    Cell::new(text.to_string()).set_alignment(CellAlignment::Right)
}

/// One row per workload of a run. "per pass" is the median time of one execution: a whole
/// prefill pass, or one decode step (which makes one token per sequence). Power is the average
/// over the measured window, with where it came from.
pub(super) fn workloads(doc: &RunResult) -> Table {
    let mut t = new(&[
        "workload",
        "math",
        "per pass",
        "CV",
        "tokens/s",
        "GFLOP/s",
        "GB/s",
        "% peak FLOP/s",
        "% peak GB/s",
        "W",
        "tokens/J",
        "power from",
        "valid",
    ]);
    // A share above the plausible bound is marked, and explained by `roofline_warnings`.
    let pct = |share: Option<f64>| {
        share.map_or("-".to_string(), |s| {
            let mark = if s > Roofline::PLAUSIBLE_SHARE {
                OVER_PEAK_MARK
            } else {
                ""
            };
            format!("{:.1}%{mark}", s * 100.0)
        })
    };
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |x| format!("{x:.digits$}"));
    for w in &doc.workloads {
        let p = &w.power;
        let provenance = serde_json::to_value(p.provenance)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let from = match &p.source {
            Some(source) => format!("{source} ({provenance})"),
            None => provenance,
        };
        t.add_row(vec![
            Cell::new(&w.id),
            Cell::new(w.math.as_ref().map_or("-", |m| m.tier.name())),
            num(format_duration(w.stats.median_s)),
            num(format!("{:.1}%", w.stats.cv * 100.0)),
            num(opt(w.tokens_per_s, 2)),
            num(format!("{:.2}", w.achieved_gflops)),
            num(format!("{:.2}", w.achieved_gbps)),
            num(pct(w.roofline.as_ref().map(|r| r.compute_share))),
            num(pct(w.roofline.as_ref().map(|r| r.bandwidth_share))),
            num(opt(p.avg_power_w, 1)),
            num(opt(w.tokens_per_j, 4)),
            Cell::new(from),
            Cell::new(if w.valid { "yes" } else { "NO" }),
        ]);
    }
    t
}

/// What marks a roofline share above [`Roofline::PLAUSIBLE_SHARE`] in the table.
const OVER_PEAK_MARK: &str = " (!)";

/// One line per workload whose roofline exceeds a probe's peak, for under the table: the share
/// marked "(!)" is not a fraction of the device's peak.
pub(super) fn roofline_warnings(doc: &RunResult) -> Vec<String> {
    doc.workloads
        .iter()
        .filter_map(|w| {
            let warning = w.roofline.as_ref()?.warning.as_ref()?;
            Some(
                format!("{OVER_PEAK_MARK} {}: {warning}", w.id)
                    .trim_start()
                    .to_string(),
            )
        })
        .collect()
}

/// Seconds as a short human duration: "812 µs", "12.3 ms", "1.52 s".
pub(super) fn format_duration(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// One line per cooperative-matrix product workload that has a SIMT workload of the same shape
/// and dtype in the run: both GFLOP/s and their ratio.
pub(super) fn math_ratios(doc: &RunResult) -> Vec<String> {
    let tier = |w: &crate::result::WorkloadResult| w.math.as_ref().map(|m| m.tier);
    doc.workloads
        .iter()
        .filter(|w| tier(w).is_some_and(|t| t.is_coop()))
        .filter_map(|coop| {
            let simt = doc.workloads.iter().find(|w| {
                w.kind == coop.kind
                    && w.shape == coop.shape
                    && w.dtype == coop.dtype
                    && tier(w).is_some_and(|t| !t.is_coop())
            })?;
            Some(format!(
                "{}: {} {:.2} GFLOP/s vs {} {:.2} GFLOP/s: {:.2}x{}",
                coop.id,
                tier(coop)?.name(),
                coop.achieved_gflops,
                tier(simt)?.name(),
                simt.achieved_gflops,
                coop.achieved_gflops / simt.achieved_gflops,
                if coop.valid && simt.valid {
                    ""
                } else {
                    " (a result is invalid)"
                }
            ))
        })
        .collect()
}

/// One line per mixture-of-experts workload: the experts its router touched per MoE layer
/// beside E·(1 − (1 − k/E)^B), and the weight bytes per token that count gives.
pub(super) fn experts_touched(doc: &RunResult) -> Vec<String> {
    doc.workloads
        .iter()
        .filter_map(|w| {
            let e = w.experts.as_ref()?;
            let per_token = w.tokens.map(|t| w.bytes / t as f64);
            Some(format!(
                "{}: {:.1} of {} experts touched per MoE layer{} (expected {:.1} for {} tokens of top-{}){}",
                w.id,
                e.touched_per_layer,
                e.n_experts,
                match e.touched_by_step.len() {
                    0 | 1 => String::new(),
                    n => format!(", mean of {n} steps"),
                },
                e.expected_per_layer,
                e.tokens_routed,
                e.n_experts_active,
                per_token.map_or(String::new(), |b| format!(", {:.1} MB streamed per token", b / 1e6))
            ))
        })
        .collect()
}

/// The node summary of `--adapter all`: its GPUs, then per workload the node's tokens/s and how
/// far its GPUs are apart.
pub(super) fn node_summary(s: &crate::report::node_summary::NodeSummary) -> String {
    let mut gpus = new(&["adapter", "GPU", "backend", "exit", "result"]);
    for g in &s.gpus {
        gpus.add_row(vec![
            num(g.adapter_index),
            Cell::new(&g.adapter),
            Cell::new(&g.backend),
            num(g.exit_code),
            Cell::new(g.result.as_deref().or(g.error.as_deref()).unwrap_or("-")),
        ]);
    }
    let mut node = new(&[
        "workload",
        "GPUs",
        "node tokens/s",
        "slowest GPU",
        "fastest GPU",
        "spread",
        "node tokens/J",
    ]);
    for w in &s.workloads {
        node.add_row(vec![
            Cell::new(&w.id),
            num(w.gpus),
            num(format!("{:.2}", w.tokens_per_s)),
            num(format!("{:.2}", w.slowest_tokens_per_s)),
            num(format!("{:.2}", w.fastest_tokens_per_s)),
            num(format!("{:.1}%", w.spread * 100.0)),
            num(w.tokens_per_j.map_or("-".into(), |j| format!("{j:.3}"))),
        ]);
    }
    format!("{gpus}\nnode {} ({})\n{node}", s.hostname, s.method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_over_the_peak_is_marked_in_the_table_and_explained_below_it() {
        let mut doc = crate::result::fixtures::run_with_samples("n", &[1.0, 1.0, 1.0]);
        let w = &mut doc.workloads[0];
        w.roofline = Some(Roofline::new(
            (1.0, 110.0),
            ("probe-fma", 1000.0),
            ("probe-read", 100.0),
        ));
        let table = workloads(&doc).to_string();
        assert!(table.contains("110.0% (!)"), "{table}");
        let notes = roofline_warnings(&doc);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("(!)")
                && notes[0].contains(&doc.workloads[0].id)
                && notes[0].contains("did not reach the device's peak"),
            "{notes:?}"
        );
        doc.workloads[0].roofline = Some(Roofline::new(
            (1.0, 90.0),
            ("probe-fma", 1000.0),
            ("probe-read", 100.0),
        ));
        assert!(!workloads(&doc).to_string().contains("(!)"));
        assert!(roofline_warnings(&doc).is_empty());
    }
}
