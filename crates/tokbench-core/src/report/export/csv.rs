//! CSV: one row per node and workload (RFC 4180 quoting), for spreadsheets and scripts. Cost
//! columns appear only with a cost model. Figures are written in full precision.

use super::clean;
use crate::report::compare::{CompareReport, Entry, Excluded, WorkloadComparison};

/// One CSV field: quoted when it holds a comma, quote or line break; a text that a spreadsheet
/// would run as a formula (=, +, -, @ first) gets a leading apostrophe.
fn field(text: &str) -> String {
    let text = clean(text);
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn figure(x: Option<f64>) -> String {
    x.map_or_else(String::new, |v| v.to_string())
}

fn opt<T: ToString>(x: Option<T>) -> String {
    x.map_or_else(String::new, |v| v.to_string())
}

fn json_name<T: serde::Serialize>(v: Option<T>) -> String {
    v.and_then(|v| serde_json::to_value(v).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The comparison as CSV.
pub(super) fn compare(r: &CompareReport) -> String {
    let costed = r.prices.is_some();
    let mut header = vec![
        "workload",
        "phase",
        "preset",
        "dtype",
        "batch",
        "prompt_len",
        "depth",
        "layers_run",
        "metric",
        "status",
        "rank",
        "node",
        "adapter",
        "driver",
        "driver_info",
        "tokens_per_s",
        "tokens_per_j",
        "tokens_per_j_comparable",
        "power_scope",
        "power_provenance",
    ];
    if costed {
        header.extend([
            "energy_cost_per_mtok",
            "hardware_cost_per_mtok",
            "cost_per_mtok",
        ]);
    }
    header.extend(["relative_to_best", "slow_node", "notes", "source"]);
    let mut out = header.join(",") + "\n";
    for w in &r.workloads {
        for e in &w.entries {
            out.push_str(&entry_row(w, e, costed));
        }
        for x in &w.excluded {
            out.push_str(&excluded_row(w, x, costed));
        }
    }
    out
}

fn definition(w: &WorkloadComparison) -> Vec<String> {
    let k = &w.workload;
    vec![
        field(&k.id),
        field(k.phase.as_deref().unwrap_or("")),
        field(k.preset.as_deref().unwrap_or("")),
        field(&k.dtype),
        opt(k.batch),
        opt(k.prompt_len),
        opt(k.depth),
        opt(k.layers_run),
        w.metric.name().into(),
    ]
}

fn entry_row(w: &WorkloadComparison, e: &Entry, costed: bool) -> String {
    let mut cells = definition(w);
    cells.extend([
        if e.rank.is_some() {
            "ranked"
        } else {
            "unranked"
        }
        .to_string(),
        opt(e.rank),
        field(&e.node),
        field(&e.hardware.adapter),
        field(&e.hardware.driver),
        field(&e.hardware.driver_info),
        e.tokens_per_s.to_string(),
        figure(e.tokens_per_j),
        w.tokens_per_j_comparable.to_string(),
        json_name(e.power_scope),
        json_name(e.power_provenance),
    ]);
    if costed {
        let c = e.cost.clone().unwrap_or_default();
        cells.extend([
            figure(c.energy_per_mtok),
            figure(c.hardware_per_mtok),
            figure(c.total_per_mtok),
        ]);
    }
    cells.extend([
        figure(e.relative_to_best),
        e.slow.to_string(),
        field(&e.notes.join("; ")),
        field(&e.source),
    ]);
    cells.join(",") + "\n"
}

fn excluded_row(w: &WorkloadComparison, x: &Excluded, costed: bool) -> String {
    let mut cells = definition(w);
    cells.extend(["excluded".to_string(), String::new(), field(&x.node)]);
    // adapter .. power_provenance, and the cost columns, are empty for a result left out.
    let empty = 8 + if costed { 3 } else { 0 };
    cells.extend(std::iter::repeat_n(String::new(), empty));
    cells.extend([
        String::new(),
        String::new(),
        field(&x.reason),
        field(&x.source),
    ]);
    cells.join(",") + "\n"
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(field("line\nbreak"), "line\\nbreak");
    }
}
