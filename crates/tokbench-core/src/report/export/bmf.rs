//! Bencher Metric Format (<https://bencher.dev/docs/reference/bencher-metric-format/>): the
//! current result's figures by workload, for `bencher run --adapter json --file ...`, so a
//! Bencher project can track them over time. Bencher applies its own thresholds; `check`'s
//! verdict is in the exit code.
//!
//! Measures: `latency` (median nanoseconds of one execution, with the 95% interval of the
//! median), `tokens-per-s` (with the interval mapped through tokens / time) and `tokens-per-j`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::check::CheckReport;

/// One measure's figure.
#[derive(Serialize)]
struct Metric {
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_value: Option<f64>,
}

/// The current result in BMF.
pub(super) fn check(r: &CheckReport) -> anyhow::Result<String> {
    let mut doc: BTreeMap<&str, BTreeMap<&str, Metric>> = BTreeMap::new();
    for f in &r.current_figures {
        let mut measures = BTreeMap::new();
        measures.insert(
            "latency",
            Metric {
                value: f.median_s * 1e9,
                lower_value: Some(f.ci95_s.0 * 1e9),
                upper_value: Some(f.ci95_s.1 * 1e9),
            },
        );
        if let (Some(tps), Some(tokens)) = (f.tokens_per_s, f.tokens) {
            let tokens = tokens as f64;
            measures.insert(
                "tokens-per-s",
                Metric {
                    value: tps,
                    lower_value: Some(tokens / f.ci95_s.1),
                    upper_value: Some(tokens / f.ci95_s.0),
                },
            );
        }
        if let Some(tpj) = f.tokens_per_j {
            measures.insert(
                "tokens-per-j",
                Metric {
                    value: tpj,
                    lower_value: None,
                    upper_value: None,
                },
            );
        }
        doc.insert(&f.id, measures);
    }
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}
