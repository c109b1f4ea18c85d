//! The one validator of a result document: every reader (`result::io::load` and `parse`, and
//! the reports' loader through them) holds a document to the same rules, and every error names
//! the field by its JSON path (for example `workloads[0].stats.samples_s[1]`).
//!
//! Two kinds of rule, applied together by [`check`]:
//! - over the whole JSON tree: every number finite and non-negative, unless its field is listed
//!   in [`MAY_BE_NEGATIVE`]; so a field added to the schema later is covered without a new rule;
//! - over the typed document: figures no measurement can produce, zero durations and rates (a
//!   cost per token would divide by them), a workload without samples, and finiteness of the
//!   figures a document built in memory could hold as NaN (JSON has no NaN, so the tree walk
//!   never sees one).

use serde_json::Value;

use super::RunResult;

/// Fields that may be negative: energy above idle can dip below zero in noise, and so can the
/// tokens/J computed from it.
pub const MAY_BE_NEGATIVE: &[&str] = &[
    "dynamic_energy_j",
    "tokens_per_j_dynamic",
    "throughput_drift",
    "power_drift",
    "relative_gap",
];

/// Checks every figure of `doc`; the error names the first bad field by its JSON path, with the
/// workload's id when the field is in one.
pub fn check(doc: &RunResult) -> Result<(), String> {
    let value = serde_json::to_value(doc).map_err(|e| format!("cannot serialise: {e}"))?;
    walk(&value, &value, &mut String::new())?;
    typed(doc)
}

/// " (workload ID)" for a path inside `workloads[i]`, read from the document itself.
fn workload_suffix(root: &Value, path: &str) -> String {
    let Some(rest) = path.strip_prefix("workloads[") else {
        return String::new();
    };
    let index = rest.split(']').next().and_then(|i| i.parse::<usize>().ok());
    index
        .and_then(|i| root["workloads"][i]["id"].as_str())
        .map(|id| format!(" (workload {id})"))
        .unwrap_or_default()
}

fn walk(root: &Value, value: &Value, path: &mut String) -> Result<(), String> {
    match value {
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            let key = path.rsplit('.').next().unwrap_or("");
            let key = key.split('[').next().unwrap_or(key);
            let at = || format!("{path} = {n}");
            if !v.is_finite() {
                return Err(format!(
                    "{} is not a finite number{}",
                    at(),
                    workload_suffix(root, path)
                ));
            }
            if v < 0.0 && !MAY_BE_NEGATIVE.contains(&key) {
                return Err(format!(
                    "{} is negative{}",
                    at(),
                    workload_suffix(root, path)
                ));
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(root, item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(root, item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A named figure's rule: the message names `field`.
type Rule = fn(&str, f64) -> Result<(), String>;

fn typed(doc: &RunResult) -> Result<(), String> {
    if let Some(p) = &doc.probes {
        non_negative("probes.fma_gflops", p.fma_gflops)?;
        non_negative("probes.copy_gbps", p.copy_gbps)?;
    }
    non_negative("power.idle_s", doc.power.idle_s)?;
    optional(non_negative, "power.idle_power_w", doc.power.idle_power_w)?;
    for (i, w) in doc.workloads.iter().enumerate() {
        let id = format!(" (workload {})", w.id);
        let named = |rule: Rule, name: &str, v: f64| {
            rule(&format!("workloads[{i}].{name}"), v).map_err(|e| e + &id)
        };
        let s = &w.stats;
        for (name, v) in [
            ("median_s", s.median_s),
            ("mean_s", s.mean_s),
            ("stddev_s", s.stddev_s),
            ("min_s", s.min_s),
            ("max_s", s.max_s),
            ("p10_s", s.p10_s),
            ("p90_s", s.p90_s),
            ("cv", s.cv),
            ("ci95_low_s", s.ci95_low_s),
            ("ci95_high_s", s.ci95_high_s),
        ] {
            named(non_negative, &format!("stats.{name}"), v)?;
        }
        if s.samples_s.is_empty() {
            return Err(format!("workloads[{i}].stats.samples_s: no samples{id}"));
        }
        for (j, v) in s.samples_s.iter().enumerate() {
            named(positive, &format!("stats.samples_s[{j}]"), *v)?;
        }
        for (name, v) in [
            ("flops", w.flops),
            ("bytes", w.bytes),
            ("achieved_gflops", w.achieved_gflops),
            ("achieved_gbps", w.achieved_gbps),
            ("power.window_s", w.power.window_s),
        ] {
            named(non_negative, name, v)?;
        }
        if let Some(r) = &w.roofline {
            named(non_negative, "roofline.compute_share", r.compute_share)?;
            named(non_negative, "roofline.bandwidth_share", r.bandwidth_share)?;
        }
        for (name, v) in [
            ("tokens_per_s", w.tokens_per_s),
            ("tokens_per_j", w.tokens_per_j),
            ("j_per_token", w.j_per_token),
        ] {
            v.map_or(Ok(()), |v| named(positive, name, v))?;
        }
        for (name, v) in [
            ("power.energy_j", w.power.energy_j),
            ("power.avg_power_w", w.power.avg_power_w),
            ("power.idle_power_w", w.power.idle_power_w),
            ("correctness.nmse", w.correctness.nmse),
            ("correctness.max_abs_err", w.correctness.max_abs_err),
        ] {
            v.map_or(Ok(()), |v| named(non_negative, name, v))?;
        }
        // Energy above idle may dip below zero within measurement noise; only finiteness holds.
        for (name, v) in [
            ("power.dynamic_energy_j", w.power.dynamic_energy_j),
            ("tokens_per_j_dynamic", w.tokens_per_j_dynamic),
        ] {
            v.map_or(Ok(()), |v| named(finite, name, v))?;
        }
    }
    Ok(())
}

fn finite(field: &str, v: f64) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("{field} = {v} is not a finite number"))
    }
}

fn non_negative(field: &str, v: f64) -> Result<(), String> {
    finite(field, v)?;
    if v < 0.0 {
        Err(format!("{field} = {v} is negative"))
    } else {
        Ok(())
    }
}

fn positive(field: &str, v: f64) -> Result<(), String> {
    non_negative(field, v)?;
    if v == 0.0 {
        Err(format!("{field} = 0 must be positive"))
    } else {
        Ok(())
    }
}

fn optional(rule: Rule, field: &str, v: Option<f64>) -> Result<(), String> {
    v.map_or(Ok(()), |v| rule(field, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::fixtures::run_with_samples;

    #[test]
    fn every_rule_names_the_field_by_its_json_path() {
        let doc = run_with_samples("n", &[1.0, 2.0]);
        assert_eq!(check(&doc), Ok(()));
        let id = &doc.workloads[0].id;
        let mut bad = doc.clone();
        bad.workloads[0].stats.samples_s[1] = -2.0;
        assert_eq!(
            check(&bad).unwrap_err(),
            format!("workloads[0].stats.samples_s[1] = -2.0 is negative (workload {id})")
        );
        let mut zero = doc.clone();
        zero.workloads[0].stats.samples_s[0] = 0.0;
        assert_eq!(
            check(&zero).unwrap_err(),
            format!("workloads[0].stats.samples_s[0] = 0 must be positive (workload {id})")
        );
        // NaN serialises to null, so only the typed rules can see it.
        let mut nan = doc.clone();
        nan.workloads[0].stats.median_s = f64::NAN;
        assert_eq!(
            check(&nan).unwrap_err(),
            format!("workloads[0].stats.median_s = NaN is not a finite number (workload {id})")
        );
        let mut empty = doc.clone();
        empty.workloads[0].stats.samples_s.clear();
        assert!(check(&empty).unwrap_err().contains("no samples"));
        // Energy above idle may be negative; energy itself may not.
        let mut dynamic = doc.clone();
        dynamic.workloads[0].power.dynamic_energy_j = Some(-0.5);
        assert_eq!(check(&dynamic), Ok(()));
        dynamic.workloads[0].power.energy_j = Some(-0.5);
        assert!(
            check(&dynamic)
                .unwrap_err()
                .starts_with("workloads[0].power.energy_j = -0.5 is negative")
        );
    }
}
