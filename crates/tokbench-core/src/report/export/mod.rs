//! Rendering reports: one file per format, chosen through [`CompareFormat`] and [`CheckFormat`].
//!
//! Every string that comes from a result file (host names, adapter names, paths, ids) is
//! untrusted: control characters are escaped in text formats, Markdown and HTML metacharacters
//! in theirs, and spreadsheet formulas are defused in CSV.

mod bmf;
mod card;
mod csv;
pub(crate) mod grid;
mod html;
mod json;
mod markdown;
mod table;

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::card::cards;
use super::check::CheckReport;
use super::compare::CompareReport;
use crate::InputError;
use crate::units::{duration, num, signed_pct};

/// Formats of `tokbench compare`.
#[derive(strum::EnumString, strum::IntoStaticStr, strum::EnumIter, strum::EnumMessage)]
#[strum(serialize_all = "lowercase")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareFormat {
    /// Terminal tables.
    Table,
    /// Markdown (GitHub-flavoured tables).
    Md,
    /// One row per node and workload.
    Csv,
    /// The whole report as one JSON document.
    Json,
    /// One self-contained HTML file with SVG charts.
    Html,
    /// A node card per result: JSON (schema/card-v1.schema.json), or an HTML page with its
    /// charts when --out ends in .html.
    Card,
}

/// Formats of `tokbench check`.
#[derive(strum::EnumString, strum::IntoStaticStr, strum::EnumIter, strum::EnumMessage)]
#[strum(serialize_all = "lowercase")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFormat {
    /// Terminal tables.
    Table,
    /// Markdown, for a CI step summary.
    Md,
    /// The whole verdict as one JSON document.
    Json,
    /// Bencher Metric Format: the current result's figures, for `bencher run --adapter json`.
    Bmf,
}

impl CompareFormat {
    /// The report in this format.
    pub fn render(self, report: &CompareReport) -> anyhow::Result<String> {
        Ok(match self {
            Self::Table => table::compare(report),
            Self::Md => markdown::compare(report),
            Self::Csv => csv::compare(report)?,
            Self::Json => json::render(report)?,
            Self::Html => html::compare(report)?,
            Self::Card => card::json(&cards(report, &now()))?,
        })
    }

    /// The report in this format for `out`: like [`Self::render`], except that a card for a
    /// path ending in `.html` or `.htm` is the HTML page.
    pub fn render_for(self, report: &CompareReport, out: Option<&Path>) -> anyhow::Result<String> {
        let html = out
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "html" | "htm"));
        match self {
            Self::Card if html => card::html(&cards(report, &now())),
            _ => self.render(report),
        }
    }
}

/// Now, as cards date their estimates: RFC 3339, UTC, whole seconds.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl CheckFormat {
    /// The verdict in this format.
    pub fn render(self, report: &CheckReport) -> anyhow::Result<String> {
        Ok(match self {
            Self::Table => table::check(report),
            Self::Md => markdown::check(report),
            Self::Json => json::render(report)?,
            Self::Bmf => bmf::check(report)?,
        })
    }
}

/// Writes `text` to `out` (replacing it atomically, as results are written), or to stdout
/// without one.
pub fn write_output(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    let Some(path) = out else {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing to stdout");
    };
    crate::result::io::replace_atomically(path, text.as_bytes())
        .map_err(|e| InputError::new(format!("--out {}: cannot write: {e}", path.display())).into())
}

/// `text` with control characters (terminal escapes, new lines) shown escaped.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

/// "3 result(s), 2 workload(s), 0 skipped": what a comparison read, as its headline says.
pub(crate) fn counts_line(r: &CompareReport) -> String {
    format!(
        "{} result(s), {} workload(s), {} skipped",
        r.results,
        r.workloads.len(),
        r.skipped.len()
    )
}

/// `text` with control characters escaped (see [`clean`]) and `&`, `<` and `>` as HTML
/// entities, for Markdown and HTML; `other` writes every other character.
pub(crate) fn entities(text: &str, other: impl Fn(char, &mut String)) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in clean(text).chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => other(ch, &mut out),
        }
    }
    out
}

/// "cost model: energy 0.3 EUR/kWh; facility power: measured power × PUE 1; hardware ..." —
/// the cost model in words, saying which power every cost used.
pub(crate) fn prices_line(report: &CompareReport) -> Option<String> {
    let p = report.prices.as_ref()?;
    let terms = report.cost_terms.as_ref()?;
    let currency = report.currency();
    let unit = if currency.is_empty() {
        String::new()
    } else {
        format!(" {currency}")
    };
    let mut parts = Vec::new();
    if let Some(kwh) = terms.energy_price_paid_kwh {
        if p.time_of_use.is_empty() {
            parts.push(format!("energy {kwh}{unit}/kWh"));
        } else {
            parts.push(format!(
                "energy {}{unit}/kWh paid (time-of-use prices over the run hours)",
                num(kwh)
            ));
        }
    }
    if p.prices_energy() || p.prices_carbon() {
        parts.push(format!("facility power: {}", terms.energy_basis.describe()));
    }
    let partial_day = terms.run_hours_per_day < crate::units::HOURS_PER_DAY;
    if partial_day {
        let ranges: Vec<String> = terms
            .run_hours
            .iter()
            .map(|[a, b]| format!("{a}-{b}"))
            .collect();
        parts.push(format!(
            "run hours {} ({} h a day)",
            ranges.join(","),
            terms.run_hours_per_day
        ));
    }
    if p.prices_hardware() {
        let busy = if partial_day {
            format!(
                "paid around the clock, busy {} h a day",
                terms.run_hours_per_day
            )
        } else {
            "busy around the clock".to_string()
        };
        let tier = p
            .default_tier
            .as_ref()
            .map(|t| format!(", tier {t} for the other nodes"))
            .unwrap_or_default();
        parts.push(format!(
            "hardware prices for {} node(s) and {} adapter(s){tier} (purchases spread over \
             their lifetime, {busy})",
            p.nodes.len(),
            p.adapters.len()
        ));
    }
    if let (Some(c), Some(g)) = (&p.carbon, terms.carbon_g_per_kwh) {
        parts.push(format!(
            "carbon {} gCO2e/kWh ({} green supply at {} g, grid at {} g)",
            num(g),
            crate::units::pct(c.green_share),
            c.green_g_per_kwh,
            c.grid_g_per_kwh
        ));
    }
    Some(format!("cost model: {}", parts.join("; ")))
}

/// Column headers of the cost columns, with the currency; the carbon column with a carbon
/// intensity. `None` without a cost model.
pub(crate) fn cost_headers(report: &CompareReport) -> Option<Vec<String>> {
    let prices = report.prices.as_ref()?;
    let c = report.currency();
    let unit = if c.is_empty() {
        String::new()
    } else {
        format!(" ({c})")
    };
    let mut headers = vec![
        format!("energy/Mtok{unit}"),
        format!("hardware/Mtok{unit}"),
        format!("cost/Mtok{unit}"),
    ];
    if prices.prices_carbon() {
        headers.push("gCO2e/Mtok".into());
    }
    Some(headers)
}

/// How the rule of `check` reads in one sentence.
pub(crate) fn check_rule(report: &CheckReport) -> String {
    use super::check::{CheckMetric, MIN_REPETITIONS};
    let t = report.threshold * 100.0;
    match report.metric {
        CheckMetric::TokensPerS => format!(
            "time per execution; regression when the whole interval of the change lies above \
             +{t:.1}%, inconclusive when it reaches above +{t:.1}% and is wider than ±{t:.1}%; \
             the interval is over the repetitions' median times (Hodges-Lehmann with its exact \
             Mann-Whitney interval) with {MIN_REPETITIONS} or more repetitions on both sides, \
             else the 95% bootstrap interval of one run's samples ({} resamples) widened by the \
             probes' movement",
            report.resamples
        ),
        CheckMetric::TokensPerJ => {
            format!("tokens/J point values; regression when they fall by more than {t:.1}%")
        }
    }
}

/// "PASS: no regression" or "FAIL: 2 regressions, 1 invalid result"; inconclusive verdicts are
/// counted in both, and fail only under `--strict`.
pub fn check_headline(report: &CheckReport) -> String {
    let mut problems = Vec::new();
    if report.regressions > 0 {
        problems.push(format!(
            "{} regression{}",
            report.regressions,
            if report.regressions == 1 { "" } else { "s" }
        ));
    }
    if !report.invalid_current.is_empty() {
        problems.push(format!(
            "{} invalid current result(s)",
            report.invalid_current.len()
        ));
    }
    let mut also = String::new();
    if report.inconclusive > 0 {
        if report.strict {
            problems.push(format!("{} inconclusive (--strict)", report.inconclusive));
        } else {
            also.push_str(&format!(", {} inconclusive", report.inconclusive));
        }
    }
    if report.improvements > 0 {
        also.push_str(&format!(", {} improvement(s)", report.improvements));
    }
    if problems.is_empty() {
        format!("PASS: no regression{also}")
    } else {
        format!("FAIL: {}{also}", problems.join(", "))
    }
}

/// What a checked workload's interval stands on: "5 v 5 repetitions, 97%", "samples, 95%, probes
/// +10.0%", "point values", or "-" when not compared.
pub(crate) fn basis_text(w: &super::check::WorkloadCheck) -> String {
    use super::check::Basis;
    let level = w
        .confidence
        .map(|c| format!(", {:.0}%", c * 100.0))
        .unwrap_or_default();
    match w.basis {
        Some(Basis::Repetitions) => format!(
            "{} v {} repetitions{level}",
            w.repetitions_baseline, w.repetitions_current
        ),
        Some(Basis::Samples) => match w.noise_floor {
            Some(f) => format!("samples{level}, probes {}", signed_pct(f)),
            None => format!("samples{level}"),
        },
        Some(Basis::PointValues) => "point values".into(),
        None => "-".into(),
    }
}

/// The change of one checked workload: "+20.1% [+18.9%, +21.3%]", or "-" when not compared.
pub(crate) fn change_text(w: &super::check::WorkloadCheck) -> (String, String) {
    match (w.change, w.change_low, w.change_high) {
        (Some(c), Some(lo), Some(hi)) if !w.point_values => (
            signed_pct(c),
            format!("[{}, {}]", signed_pct(lo), signed_pct(hi)),
        ),
        (Some(c), _, _) => (signed_pct(c), "(point values)".into()),
        _ => ("-".into(), "-".into()),
    }
}

/// The baseline and current figures of one checked workload, as shown in tables.
pub(crate) fn check_figures(w: &super::check::WorkloadCheck, unit: &str) -> (String, String) {
    match (w.baseline_value, w.current_value) {
        (Some(b), Some(c)) => (format!("{} {unit}", num(b)), format!("{} {unit}", num(c))),
        _ => (duration(w.baseline_median_s), duration(w.current_median_s)),
    }
}

/// The lines under a check's table (raw text: each format escapes it).
pub(crate) fn check_lists(r: &CheckReport) -> Vec<String> {
    let mut out = Vec::new();
    for (label, items) in [
        ("hardware differs (allowed)", &r.hardware_differences),
        ("invalid in the current result", &r.invalid_current),
        ("only in the baseline (not run now)", &r.only_in_baseline),
        ("only in the current result", &r.only_in_current),
    ] {
        if !items.is_empty() {
            out.push(format!("{label}: {}", items.join(", ")));
        }
    }
    out.extend(r.notes.iter().map(|n| format!("note: {n}")));
    out
}

#[cfg(test)]
mod snapshots;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(clean("a\u{1b}[31mb\nc"), "a\\u{1b}[31mb\\nc");
    }

    #[test]
    fn output_files_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.md");
        write_output(Some(&path), "first").unwrap();
        write_output(Some(&path), "second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        let err = write_output(Some(&dir.path().join("no/such/dir/r.md")), "x").unwrap_err();
        assert!(
            crate::exit_code_for(&err) == std::process::ExitCode::from(2),
            "{err:#}"
        );
    }
}
