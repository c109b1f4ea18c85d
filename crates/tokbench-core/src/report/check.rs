//! `tokbench check`: a CI gate that compares a current result with a committed baseline and
//! calls a regression only when the evidence says so (criterion's rule).
//!
//! For tokens/s, the interval of the relative change of the time per execution comes from one
//! of two bases:
//! - **Repetitions** (at least [`MIN_REPETITIONS`] on both sides, `run --repeat`): the
//!   repetitions' median times, through [`rank_ratio_interval`]: the Hodges–Lehmann estimate of
//!   the ratio with its exact Mann–Whitney interval (95%, or the full range and its lower
//!   confidence when the counts cannot reach 95%: 3 against 3 give 90%). The repetition is the
//!   unit that carries run-to-run variance (scheduler, caches, clocks, neighbours), and there
//!   are only a handful of them: a rank interval is exact at any count and assumes no
//!   distribution (lavapipe's times are skewed, and one repetition hit by a neighbour's build
//!   moves it only by one rank), where a bootstrap of 3 to 5 values can only reshuffle them and
//!   comes out too narrow.
//! - **Samples** (fewer repetitions): one run's raw samples, bootstrapped [`RESAMPLES`] times
//!   (the 2.5% and 97.5% percentiles of median(current) / median(baseline)). That interval
//!   cannot see run-to-run variance, so the report says so, and it is widened by a noise floor:
//!   the largest factor by which the two runs' probes moved (they time the device itself, so
//!   their movement is the machine's).
//!
//! Slower is worse, with threshold t:
//! - regression: the whole interval lies above +t;
//! - improvement: the whole interval lies below −t;
//! - inconclusive: it reaches above +t and is wider than the whole ±t band, so neither a
//!   regression nor noise can be called; the report says about how many repetitions would
//!   narrow it enough (widths shrink with the square root of the count), and `--strict` fails
//!   on it;
//! - noise: anything else.
//!
//! The probes (FMA peak, copy bandwidth) are checked the same way but do not gate: they are the
//! yardstick of the device, not tokbench's work, and when they move the machine has changed
//! (busier, clocked differently), which the report then says.
//!
//! For tokens/J no raw samples exist (one energy figure per window), so the point values are
//! compared against the threshold, and the report says so.

use std::collections::BTreeMap;

use serde::Serialize;

use super::identity::{Fingerprint, WorkloadKey, node_label};
use super::load::Source;
use crate::InputError;
use crate::result::{RunResult, Stats, WorkloadResult};
use crate::stats::{bootstrap_median_ratio, rank_ratio_interval};

/// Bootstrap resamples per workload.
pub const RESAMPLES: usize = 10_000;
/// Confidence level of the interval.
pub const LEVEL: f64 = 0.95;
/// Fewest samples on each side for an interval worth gating on.
pub const MIN_SAMPLES: usize = 5;
/// Fewest repetitions on each side for an interval over repetitions (which holds run-to-run
/// variance); fewer fall back to one run's samples.
pub const MIN_REPETITIONS: usize = 3;
/// The most repetitions `repetitions_to_decide` suggests (`run --repeat` allows 1000).
const MAX_REPETITIONS: usize = 1000;
/// Base seed of the bootstrap; mixed with the workload id so each workload has its own stream.
const SEED: u64 = 0x746f_6b62_656e_6368;

/// What `check` gates on.
#[derive(
    Serialize, strum::EnumString, strum::IntoStaticStr, strum::EnumIter, strum::EnumMessage,
)]
#[serde(rename_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMetric {
    /// Time per execution from the raw samples (tokens/s for token workloads).
    #[strum(serialize = "tokens_per_s", serialize = "tokens-per-s")]
    TokensPerS,
    /// Tokens per joule, point values (no samples exist for energy).
    #[strum(serialize = "tokens_per_j", serialize = "tokens-per-j")]
    TokensPerJ,
}

/// How to check.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// What to gate on.
    pub metric: CheckMetric,
    /// Relative change that matters, as a fraction (0.05 = 5%).
    pub threshold: f64,
    /// Compare even when the hardware fingerprints differ.
    pub allow_different_hardware: bool,
    /// Fail on an inconclusive verdict too.
    pub strict: bool,
}

/// A workload's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Worse beyond the threshold, with confidence.
    Regression,
    /// Better beyond the threshold, with confidence.
    Improvement,
    /// No change beyond the threshold can be told from noise.
    Noise,
    /// The interval reaches beyond the threshold and is wider than the whole ±threshold band:
    /// no call can be made; more repetitions would decide it. Passes unless `--strict`.
    Inconclusive,
    /// The current result failed its correctness check.
    Invalid,
    /// Could not be compared; `note` says why.
    NotCompared,
}

impl Verdict {
    /// The word in tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Regression => "regression",
            Self::Improvement => "improvement",
            Self::Noise => "noise",
            Self::Inconclusive => "inconclusive",
            Self::Invalid => "INVALID",
            Self::NotCompared => "not compared",
        }
    }
}

/// What a workload's interval was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// The repetitions' median times, at least [`MIN_REPETITIONS`] on each side: a rank
    /// interval that holds run-to-run variance.
    Repetitions,
    /// One run's raw samples, bootstrapped (widened by the probes' movement for gated
    /// workloads): it ignores run-to-run variance.
    Samples,
    /// tokens/J point values: no interval.
    PointValues,
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    /// The file.
    pub source: String,
    /// The node.
    pub node: String,
    /// Adapter name.
    pub adapter: String,
    /// When the run started.
    pub started_at: String,
    /// The commit the binary was built from.
    pub git_sha: Option<String>,
}

/// One workload present in both results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadCheck {
    /// Workload id.
    pub id: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Median time of one execution in the baseline, in seconds.
    pub baseline_median_s: f64,
    /// Median time of one execution now, in seconds.
    pub current_median_s: f64,
    /// The baseline's tokens/s or tokens/J (per `metric`); null for workloads without tokens.
    pub baseline_value: Option<f64>,
    /// The current tokens/s or tokens/J; null for workloads without tokens.
    pub current_value: Option<f64>,
    /// What the change measures: "time" (positive = slower) or "tokens_per_j" (positive =
    /// better).
    pub change_of: &'static str,
    /// Relative change, point estimate (0.2 = +20%); null when not compared.
    pub change: Option<f64>,
    /// Lower end of the 95% interval of the change (equal to `change` for point values).
    pub change_low: Option<f64>,
    /// Upper end of the 95% interval of the change.
    pub change_high: Option<f64>,
    /// True when the change is between point values, with no interval (tokens/J).
    pub point_values: bool,
    /// What the interval was built from; null when not compared.
    pub basis: Option<Basis>,
    /// Repetitions of the workload in the baseline (1 when measured once).
    pub repetitions_baseline: usize,
    /// Repetitions of the workload in the current result.
    pub repetitions_current: usize,
    /// The interval's confidence (0.95; less for a repetition interval whose counts cannot
    /// reach it, such as 0.9 for 3 against 3); null for point values or when not compared.
    pub confidence: Option<f64>,
    /// The noise floor added on the samples basis: the factor by which the probes moved, minus
    /// 1 (0.1 = they moved 10%), by which both ends of the interval were widened; null on the
    /// repetitions basis, for probes, or when no probe is in both results.
    pub noise_floor: Option<f64>,
    /// For an inconclusive verdict: about how many repetitions on each side (`run --repeat`)
    /// would narrow the interval to the ±threshold band, so a call can be made.
    pub repetitions_to_decide: Option<usize>,
    /// False for the probes: they are reported, but never fail the check.
    pub gated: bool,
    /// Why the workload was not compared, or what qualifies the verdict.
    pub note: Option<String>,
}

impl WorkloadCheck {
    /// The verdict as tables show it.
    pub fn verdict_text(&self) -> String {
        if self.gated {
            self.verdict.label().to_string()
        } else {
            format!("{} (probe, not gated)", self.verdict.label())
        }
    }
}

/// The current result's figures, for Bencher's metric format.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentFigures {
    /// Workload id.
    pub id: String,
    /// Median time of one execution, in seconds.
    pub median_s: f64,
    /// 95% interval of the median time.
    pub ci95_s: (f64, f64),
    /// Tokens of one execution.
    pub tokens: Option<u64>,
    /// Tokens per second.
    pub tokens_per_s: Option<f64>,
    /// Tokens per joule.
    pub tokens_per_j: Option<f64>,
}

/// The outcome of `check`: what `--format json` writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// Always "tokbench-check".
    pub report: &'static str,
    /// Layout version of this JSON; bumped only when a field is renamed or changes meaning.
    pub version: u32,
    /// True when there is no regression and no invalid current result (exit code 0).
    pub passed: bool,
    /// What was gated on.
    pub metric: CheckMetric,
    /// The threshold, as a fraction.
    pub threshold: f64,
    /// True when inconclusive verdicts fail the check too (`--strict`).
    pub strict: bool,
    /// True when every gated workload was judged on at least [`MIN_REPETITIONS`] repetitions on
    /// both sides, so the intervals hold run-to-run variance; false when some verdict ignores
    /// it (one run's samples, widened by the probes' movement), which `notes` then says.
    pub run_to_run_noise: bool,
    /// Bootstrap resamples per workload.
    pub resamples: usize,
    /// The baseline.
    pub baseline: RunRef,
    /// The current result.
    pub current: RunRef,
    /// How the hardware differs (only with --allow-different-hardware; otherwise it is refused).
    pub hardware_differences: Vec<String>,
    /// One entry per workload present in both, in the current run's order.
    pub workloads: Vec<WorkloadCheck>,
    /// Workloads only the baseline has.
    pub only_in_baseline: Vec<String>,
    /// Workloads only the current result has.
    pub only_in_current: Vec<String>,
    /// Current workloads that failed their correctness check.
    pub invalid_current: Vec<String>,
    /// Anything that qualifies the whole comparison.
    pub notes: Vec<String>,
    /// Regressions found (probes not counted).
    pub regressions: usize,
    /// Improvements found (probes not counted).
    pub improvements: usize,
    /// Inconclusive verdicts (probes not counted); they fail the check only with `strict`.
    pub inconclusive: usize,
    /// The current result's figures, for `--format bmf`.
    #[serde(skip)]
    pub current_figures: Vec<CurrentFigures>,
}

fn run_ref(s: &Source) -> RunRef {
    RunRef {
        source: s.label.clone(),
        node: node_label(&s.doc),
        adapter: s.doc.adapter.name.clone(),
        started_at: crate::result::timestamp(&s.doc.started_at),
        git_sha: s.doc.tool.git_sha.clone(),
    }
}

/// Compares `current` with `baseline`. Input errors (exit 2): different hardware (unless
/// allowed), a workload id whose definition changed, nothing in common, nothing comparable.
pub fn check(
    baseline: &Source,
    current: &Source,
    options: &CheckOptions,
) -> Result<CheckReport, InputError> {
    let (b, c) = (&baseline.doc, &current.doc);
    let differences = Fingerprint::of(b).differences(&Fingerprint::of(c));
    if !differences.is_empty() && !options.allow_different_hardware {
        return Err(InputError::new(format!(
            "the hardware differs, so timings do not compare:\n  {}\npass \
             --allow-different-hardware to compare anyway",
            differences.join("\n  ")
        )));
    }
    let base_by_id: BTreeMap<&str, &WorkloadResult> =
        b.workloads.iter().map(|w| (w.id.as_str(), w)).collect();
    let current_ids: Vec<&str> = c.workloads.iter().map(|w| w.id.as_str()).collect();
    let mut changed = Vec::new();
    for w in &c.workloads {
        if let Some(bw) = base_by_id.get(w.id.as_str()) {
            let d = WorkloadKey::of(bw).differences(&WorkloadKey::of(w));
            if !d.is_empty() {
                changed.push(format!("{}: {}", w.id, d.join(", ")));
            }
        }
    }
    if !changed.is_empty() {
        return Err(InputError::new(format!(
            "workload definitions differ between baseline and current:\n  {}",
            changed.join("\n  ")
        )));
    }
    let common: Vec<(&WorkloadResult, &WorkloadResult)> = c
        .workloads
        .iter()
        .filter_map(|w| base_by_id.get(w.id.as_str()).map(|bw| (*bw, w)))
        .collect();
    if common.is_empty() {
        return Err(InputError::new(format!(
            "no workload in common: the baseline has {}; the current result has {}",
            list_or_none(b.workloads.iter().map(|w| w.id.as_str())),
            list_or_none(current_ids.iter().copied())
        )));
    }

    let floor = probe_movement(&common);
    let workloads: Vec<WorkloadCheck> = common
        .iter()
        .map(|(bw, cw)| check_workload(bw, cw, options, floor))
        .collect();
    let invalid_current: Vec<String> = c
        .workloads
        .iter()
        .filter(|w| !w.valid)
        .map(|w| w.id.clone())
        .collect();
    let compared = workloads
        .iter()
        .filter(|w| w.gated && !matches!(w.verdict, Verdict::NotCompared | Verdict::Invalid))
        .count();
    if compared == 0 && invalid_current.is_empty() {
        let why: Vec<String> = workloads
            .iter()
            .map(|w| format!("{}: {}", w.id, w.note.as_deref().unwrap_or("not compared")))
            .collect();
        return Err(InputError::new(format!(
            "no workload could be compared:\n  {}",
            why.join("\n  ")
        )));
    }

    let mut notes = Vec::new();
    if b.timing_method != c.timing_method {
        notes.push(format!(
            "timing method differs: {:?} (baseline) vs {:?} (current); wall-clock times include \
             submission overhead",
            b.timing_method, c.timing_method
        ));
    }
    if c.interrupted {
        notes
            .push("the current run was interrupted; workloads it did not reach are missing".into());
    }
    if options.metric == CheckMetric::TokensPerJ {
        notes.push(
            "tokens/J: point values compared (energy has no per-sample figures), so there is no \
             confidence interval"
                .into(),
        );
    }
    let moved: Vec<String> = workloads
        .iter()
        .filter(|w| !w.gated && matches!(w.verdict, Verdict::Regression | Verdict::Improvement))
        .map(|w| {
            let (lo, hi) = (w.change_low.unwrap_or(0.0), w.change_high.unwrap_or(0.0));
            format!(
                "{} {:+.1}% [{:+.1}%, {:+.1}%]",
                w.id,
                w.change.unwrap_or(0.0) * 100.0,
                lo * 100.0,
                hi * 100.0
            )
        })
        .collect();
    if !moved.is_empty() {
        notes.push(format!(
            "the device's measured peaks moved (time per execution: {}): the machine was busier \
             or clocked differently than for the baseline, which moves every figure",
            moved.join(", ")
        ));
    }
    let on_samples: Vec<&WorkloadCheck> = workloads
        .iter()
        .filter(|w| w.gated && w.basis == Some(Basis::Samples))
        .collect();
    if let Some(w) = on_samples.first() {
        let widened = match floor {
            Some(f) => format!(
                "its interval is widened by the probes' movement ({:.1}%)",
                (f - 1.0) * 100.0
            ),
            None => "no probe is in both results, so nothing widens it".into(),
        };
        notes.push(format!(
            "the verdict ignores run-to-run noise: {} workload(s) have fewer than \
             {MIN_REPETITIONS} repetitions on a side ({} in the baseline, {} now), so only one \
             run's samples are compared and {widened}; run both with --repeat \
             {MIN_REPETITIONS} or more",
            on_samples.len(),
            w.repetitions_baseline,
            w.repetitions_current,
        ));
    }
    let count = |v: Verdict| {
        workloads
            .iter()
            .filter(|w| w.gated && w.verdict == v)
            .count()
    };
    let (regressions, improvements, inconclusive) = (
        count(Verdict::Regression),
        count(Verdict::Improvement),
        count(Verdict::Inconclusive),
    );
    Ok(CheckReport {
        report: "tokbench-check",
        version: 1,
        passed: regressions == 0
            && invalid_current.is_empty()
            && !(options.strict && inconclusive > 0),
        metric: options.metric,
        threshold: options.threshold,
        strict: options.strict,
        run_to_run_noise: on_samples.is_empty(),
        resamples: RESAMPLES,
        baseline: run_ref(baseline),
        current: run_ref(current),
        hardware_differences: differences,
        only_in_baseline: b
            .workloads
            .iter()
            .filter(|w| !current_ids.contains(&w.id.as_str()))
            .map(|w| w.id.clone())
            .collect(),
        only_in_current: c
            .workloads
            .iter()
            .filter(|w| !base_by_id.contains_key(w.id.as_str()))
            .map(|w| w.id.clone())
            .collect(),
        invalid_current,
        notes,
        regressions,
        improvements,
        inconclusive,
        workloads,
        current_figures: current_figures(c),
    })
}

fn list_or_none<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = ids.collect();
    if v.is_empty() {
        "no workloads".into()
    } else {
        v.join(", ")
    }
}

/// The largest factor by which a probe's median time moved between the two results (1.1 for
/// 10% either way), over the valid probes in both; `None` without any.
fn probe_movement(common: &[(&WorkloadResult, &WorkloadResult)]) -> Option<f64> {
    common
        .iter()
        .filter(|(b, c)| c.kind.is_probe() && b.valid && c.valid)
        .map(|(b, c)| {
            let r = c.stats.median_s / b.stats.median_s;
            r.max(1.0 / r)
        })
        .filter(|f| f.is_finite())
        .max_by(f64::total_cmp)
}

/// Repetitions a workload was measured in: 1 without any.
fn repetition_count(w: &WorkloadResult) -> usize {
    w.repetitions.len().max(1)
}

/// The verdict for an interval [lo, hi] of the change of time (positive = slower).
fn judge(lo: f64, hi: f64, threshold: f64) -> Verdict {
    if lo > threshold {
        Verdict::Regression
    } else if hi < -threshold {
        Verdict::Improvement
    } else if hi > threshold && hi - lo > 2.0 * threshold {
        Verdict::Inconclusive
    } else {
        Verdict::Noise
    }
}

/// About how many repetitions on each side narrow an interval of `width` over `n` of them to
/// the ±threshold band: widths shrink with √n. At least [`MIN_REPETITIONS`], so that
/// run-to-run variance is measured at all.
fn repetitions_to_decide(width: f64, threshold: f64, n: usize) -> usize {
    let scale = (width / (2.0 * threshold)).powi(2);
    let needed = (n as f64 * scale).ceil();
    if needed.is_finite() {
        (needed as usize).clamp(MIN_REPETITIONS, MAX_REPETITIONS)
    } else {
        MAX_REPETITIONS
    }
}

fn check_workload(
    b: &WorkloadResult,
    c: &WorkloadResult,
    options: &CheckOptions,
    floor: Option<f64>,
) -> WorkloadCheck {
    let mut out = WorkloadCheck {
        id: c.id.clone(),
        verdict: Verdict::NotCompared,
        baseline_median_s: b.stats.median_s,
        current_median_s: c.stats.median_s,
        baseline_value: None,
        current_value: None,
        change_of: "time",
        change: None,
        change_low: None,
        change_high: None,
        point_values: false,
        basis: None,
        repetitions_baseline: repetition_count(b),
        repetitions_current: repetition_count(c),
        confidence: None,
        noise_floor: None,
        repetitions_to_decide: None,
        gated: !c.kind.is_probe(),
        note: None,
    };
    let t = options.threshold;
    match options.metric {
        CheckMetric::TokensPerS => {
            out.baseline_value = b.tokens_per_s;
            out.current_value = c.tokens_per_s;
        }
        CheckMetric::TokensPerJ => {
            out.baseline_value = b.tokens_per_j;
            out.current_value = c.tokens_per_j;
            out.change_of = "tokens_per_j";
            out.point_values = true;
        }
    }
    if !c.valid {
        out.verdict = Verdict::Invalid;
        out.note = Some(format!(
            "the current result failed its correctness check: {}",
            c.correctness
                .failure
                .as_deref()
                .unwrap_or("no reason recorded")
        ));
        return out;
    }
    if !b.valid {
        out.note =
            Some("the baseline failed its correctness check; choose another baseline".into());
        return out;
    }
    match options.metric {
        CheckMetric::TokensPerS => {
            let fewest_reps = out.repetitions_baseline.min(out.repetitions_current);
            let (point, mut lo, mut hi) = if fewest_reps >= MIN_REPETITIONS {
                let medians = |w: &WorkloadResult| -> Vec<f64> {
                    w.repetitions.iter().map(|r| r.stats.median_s).collect()
                };
                let r = rank_ratio_interval(&medians(b), &medians(c), LEVEL);
                out.basis = Some(Basis::Repetitions);
                out.confidence = Some(r.confidence);
                (r.ratio.point - 1.0, r.ratio.low - 1.0, r.ratio.high - 1.0)
            } else {
                let (bs, cs) = (&b.stats.samples_s, &c.stats.samples_s);
                let fewest = bs.len().min(cs.len());
                if fewest < MIN_SAMPLES {
                    out.note = Some(format!(
                        "{fewest} samples; an interval needs at least {MIN_SAMPLES} on each side \
                         (run with --samples 10 or more)"
                    ));
                    return out;
                }
                let r = bootstrap_median_ratio(bs, cs, RESAMPLES, LEVEL, SEED ^ fnv1a(&c.id));
                out.basis = Some(Basis::Samples);
                out.confidence = Some(LEVEL);
                (r.point - 1.0, r.low - 1.0, r.high - 1.0)
            };
            if let (Some(f), true, Some(Basis::Samples)) = (floor, out.gated, out.basis) {
                // The machine moved by a factor f between the runs: either end may be off by it.
                lo = (1.0 + lo) / f - 1.0;
                hi = (1.0 + hi) * f - 1.0;
                out.noise_floor = Some(f - 1.0);
            }
            out.change = Some(point);
            out.change_low = Some(lo);
            out.change_high = Some(hi);
            out.verdict = judge(lo, hi, t);
            if out.verdict == Verdict::Inconclusive {
                let n = repetitions_to_decide(hi - lo, t, fewest_reps);
                out.repetitions_to_decide = Some(n);
                out.note = Some(format!(
                    "the interval is wider than ±{:.1}%: about {n} repetitions on each side \
                     (run --repeat {n}) would decide it",
                    t * 100.0
                ));
            }
        }
        CheckMetric::TokensPerJ => {
            let (Some(bv), Some(cv)) = (b.tokens_per_j, c.tokens_per_j) else {
                let side = if b.tokens_per_j.is_none() {
                    "baseline"
                } else {
                    "current result"
                };
                out.note = Some(format!("the {side} has no tokens/J figure"));
                return out;
            };
            let class = |w: &WorkloadResult| (w.power.scope, w.power.provenance);
            if class(b) != class(c) {
                out.note = Some(format!(
                    "tokens/J not comparable: power measured as {:?}/{:?} (baseline) vs {:?}/{:?} (current)",
                    b.power.scope, b.power.provenance, c.power.scope, c.power.provenance
                ));
                return out;
            }
            let change = cv / bv - 1.0;
            out.basis = Some(Basis::PointValues);
            out.change = Some(change);
            out.change_low = Some(change);
            out.change_high = Some(change);
            // Fewer tokens per joule is worse.
            out.verdict = if change < -t {
                Verdict::Regression
            } else if change > t {
                Verdict::Improvement
            } else {
                Verdict::Noise
            };
        }
    }
    out
}

/// Multiplies every time in `doc` by `factor` (samples, statistics, repetitions) and divides
/// the rates by it: a synthetic slowdown (1.25 = 25% slower) for measuring whether the gate
/// catches one (`check --scale-current`). Energy figures are left as they are.
pub fn scale_times(doc: &mut RunResult, factor: f64) {
    fn scale(s: &mut Stats, f: f64) {
        for x in [
            &mut s.median_s,
            &mut s.mean_s,
            &mut s.stddev_s,
            &mut s.min_s,
            &mut s.max_s,
            &mut s.p10_s,
            &mut s.p90_s,
            &mut s.ci95_low_s,
            &mut s.ci95_high_s,
        ] {
            *x *= f;
        }
        s.samples_s.iter_mut().for_each(|x| *x *= f);
    }
    for w in &mut doc.workloads {
        scale(&mut w.stats, factor);
        w.achieved_gflops /= factor;
        w.achieved_gbps /= factor;
        w.tokens_per_s = w.tokens_per_s.map(|t| t / factor);
        if let Some(r) = w.roofline.as_mut() {
            r.compute_share /= factor;
            r.bandwidth_share /= factor;
        }
        for r in &mut w.repetitions {
            scale(&mut r.stats, factor);
            r.tokens_per_s = r.tokens_per_s.map(|t| t / factor);
        }
    }
}

/// FNV-1a: a stable hash of a workload id for its bootstrap seed.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn current_figures(doc: &RunResult) -> Vec<CurrentFigures> {
    doc.workloads
        .iter()
        .filter(|w| w.valid)
        .map(|w| CurrentFigures {
            id: w.id.clone(),
            median_s: w.stats.median_s,
            ci95_s: (w.stats.ci95_low_s, w.stats.ci95_high_s),
            tokens: w.tokens,
            tokens_per_s: w.tokens_per_s,
            tokens_per_j: w.tokens_per_j,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{self, decode, jittered, prefill, source, with_power};
    use crate::result::{Provenance, Scope};

    const OPTIONS: CheckOptions = CheckOptions {
        metric: CheckMetric::TokensPerS,
        threshold: 0.05,
        allow_different_hardware: false,
        strict: false,
    };

    /// Baseline and current with one prefill each: medians `base_s` and `cur_s`, samples within
    /// ±`spread` of them.
    fn pair(base_s: f64, cur_s: f64, spread: f64, n: usize) -> (Source, Source) {
        let b = fixtures::run(
            "ci",
            "GPU A",
            vec![prefill(64, &jittered(base_s, spread, n, 11))],
        );
        let c = fixtures::run(
            "ci",
            "GPU A",
            vec![prefill(64, &jittered(cur_s, spread, n, 12))],
        );
        (source(b), source(c))
    }

    #[test]
    fn a_20_percent_slowdown_with_tight_samples_is_a_regression() {
        let (b, c) = pair(0.010, 0.012, 0.01, 20);
        let r = check(&b, &c, &OPTIONS).unwrap();
        let w = &r.workloads[0];
        assert_eq!(w.verdict, Verdict::Regression, "{w:?}");
        assert!(
            w.change_low.unwrap() > 0.15 && w.change_high.unwrap() < 0.25,
            "{w:?}"
        );
        assert!(!r.passed && r.regressions == 1);
    }

    #[test]
    fn one_percent_either_way_is_noise() {
        for cur in [0.0101, 0.0099] {
            let (b, c) = pair(0.010, cur, 0.01, 20);
            let r = check(&b, &c, &OPTIONS).unwrap();
            assert_eq!(
                r.workloads[0].verdict,
                Verdict::Noise,
                "{:?}",
                r.workloads[0]
            );
            assert!(r.passed);
        }
    }

    #[test]
    fn a_20_percent_slowdown_with_wildly_noisy_samples_is_inconclusive() {
        let (b, c) = pair(0.010, 0.012, 0.8, 10);
        let r = check(&b, &c, &OPTIONS).unwrap();
        let w = &r.workloads[0];
        // Not a regression (the evidence does not say it is real), and not noise either: the
        // interval is far wider than ±5%.
        assert_eq!(w.verdict, Verdict::Inconclusive, "{w:?}");
        assert!(w.change_low.unwrap() < 0.05, "{w:?}");
        assert!(r.passed && r.inconclusive == 1 && r.regressions == 0);
        let n = w.repetitions_to_decide.unwrap();
        assert!(n >= MIN_REPETITIONS, "{w:?}");
        assert!(
            w.note
                .as_deref()
                .unwrap()
                .contains(&format!("run --repeat {n}")),
            "{w:?}"
        );
        let strict = CheckOptions {
            strict: true,
            ..OPTIONS
        };
        assert!(!check(&b, &c, &strict).unwrap().passed);
    }

    /// Baseline and current prefills measured in repetitions with these medians, each of 20
    /// samples within ±1%.
    fn repeated_pair(base_s: &[f64], cur_s: &[f64]) -> (Source, Source) {
        let side = |medians: &[f64], seed| {
            let w = fixtures::repeated(prefill(64, &[1.0]), medians, 0.01, 20, seed);
            source(fixtures::run("ci", "GPU A", vec![w]))
        };
        (side(base_s, 100), side(cur_s, 200))
    }

    #[test]
    fn run_to_run_variance_one_runs_samples_cannot_see_does_not_fail_the_gate() {
        // Within each run the samples agree to ±1%, but the repetitions' medians move ±12%
        // from run to run, and the current run happens to sit 8% higher.
        let base = [0.0100, 0.0112, 0.0090, 0.0105, 0.0097];
        let cur: Vec<f64> = [0.0097, 0.0112, 0.0105, 0.0100, 0.0090]
            .iter()
            .map(|x| x * 1.08)
            .collect();
        let (b, c) = repeated_pair(&base, &cur);
        let r = check(&b, &c, &OPTIONS).unwrap();
        let w = &r.workloads[0];
        assert_eq!(w.basis, Some(Basis::Repetitions));
        assert_ne!(w.verdict, Verdict::Regression, "{w:?}");
        assert!(w.change_low.unwrap() < 0.0, "{w:?}");
        assert!(r.passed && r.run_to_run_noise, "{:?}", r.notes);
        assert!((w.confidence.unwrap() - (1.0 - 8.0 / 252.0)).abs() < 1e-12);
        // One repetition of each, the same two medians as the pair's middle runs: one run's
        // tight samples call it a regression.
        let (b1, c1) = pair(0.0100, 0.0108, 0.01, 20);
        assert_eq!(
            check(&b1, &c1, &OPTIONS).unwrap().workloads[0].verdict,
            Verdict::Regression
        );
    }

    #[test]
    fn a_25_percent_slowdown_over_repetitions_is_a_regression() {
        let base = [0.0100, 0.0104, 0.0097, 0.0102, 0.0099];
        let cur: Vec<f64> = base.iter().map(|x| x * 1.25).collect();
        let (b, c) = repeated_pair(&base, &cur);
        let r = check(&b, &c, &OPTIONS).unwrap();
        let w = &r.workloads[0];
        assert_eq!(
            (w.verdict, w.basis),
            (Verdict::Regression, Some(Basis::Repetitions))
        );
        assert_eq!((w.repetitions_baseline, w.repetitions_current), (5, 5));
        assert!((w.change.unwrap() - 0.25).abs() < 0.01, "{w:?}");
        assert!(
            w.change_low.unwrap() > 0.15 && w.noise_floor.is_none(),
            "{w:?}"
        );
        assert!(!r.passed && r.run_to_run_noise);
        // Three repetitions reach 90% at most: the full range of their ratios.
        let (b, c) = repeated_pair(&base[..3], &cur[..3]);
        let w = check(&b, &c, &OPTIONS).unwrap().workloads.remove(0);
        assert_eq!(w.verdict, Verdict::Regression);
        assert!((w.confidence.unwrap() - 0.9).abs() < 1e-12, "{w:?}");
    }

    #[test]
    fn fewer_than_three_repetitions_say_so_and_widen_by_the_probes_movement() {
        let base = [0.0100, 0.0101];
        let cur: Vec<f64> = base.iter().map(|x| x * 1.08).collect();
        let (mut b, mut c) = repeated_pair(&base, &cur);
        // Without probes: one run's samples, nothing to widen by; +8% is a regression.
        let r = check(&b, &c, &OPTIONS).unwrap();
        let w = &r.workloads[0];
        assert_eq!(
            (w.basis, w.verdict),
            (Some(Basis::Samples), Verdict::Regression)
        );
        assert_eq!(w.noise_floor, None);
        assert!(!r.run_to_run_noise);
        let note = r
            .notes
            .iter()
            .find(|n| n.contains("ignores run-to-run noise"));
        assert!(
            note.is_some_and(|n| n.contains("(2 in the baseline, 2 now)")
                && n.contains("no probe is in both results")),
            "{:?}",
            r.notes
        );
        // The probes moved 10% between the runs: the interval widens by that factor and the
        // +8% can no longer be told from the machine's own movement.
        b.doc.workloads.push(fixtures::probe(
            crate::result::WorkloadKind::ProbeFma,
            &jittered(0.050, 0.01, 20, 1),
        ));
        c.doc.workloads.push(fixtures::probe(
            crate::result::WorkloadKind::ProbeFma,
            &jittered(0.055, 0.01, 20, 2),
        ));
        let r = check(&b, &c, &OPTIONS).unwrap();
        let w = &r.workloads[0];
        let floor = w.noise_floor.unwrap();
        assert!((floor - 0.1).abs() < 0.01, "{w:?}");
        assert!(
            w.change_low.unwrap() < 0.0 && w.change_high.unwrap() > 0.15,
            "{w:?}"
        );
        assert_ne!(w.verdict, Verdict::Regression);
        assert!(r.passed && !r.run_to_run_noise);
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("widened by the probes' movement (9.")),
            "{:?}",
            r.notes
        );
        // The probe itself is not widened.
        assert_eq!(r.workloads[1].noise_floor, None);
    }

    #[test]
    fn scaled_times_are_a_synthetic_slowdown() {
        let base = [0.0100, 0.0104, 0.0097];
        let (b, mut c) = repeated_pair(&base, &base);
        assert_eq!(check(&b, &c, &OPTIONS).unwrap().regressions, 0);
        let before = c.doc.workloads[0].clone();
        scale_times(&mut c.doc, 1.25);
        let w = &c.doc.workloads[0];
        let tps = before.tokens_per_s.unwrap();
        assert!((w.tokens_per_s.unwrap() * 1.25 - tps).abs() < 1e-9 * tps);
        let (now, was) = (&w.repetitions[2].stats, &before.repetitions[2].stats);
        assert!((now.median_s - 1.25 * was.median_s).abs() < 1e-15);
        assert!((now.samples_s[7] - 1.25 * was.samples_s[7]).abs() < 1e-15);
        let r = check(&b, &c, &OPTIONS).unwrap();
        assert_eq!(
            r.workloads[0].verdict,
            Verdict::Regression,
            "{:?}",
            r.workloads[0]
        );
    }

    #[test]
    fn a_20_percent_speedup_is_an_improvement_and_verdicts_are_reproducible() {
        let (b, c) = pair(0.012, 0.010, 0.01, 20);
        let r = check(&b, &c, &OPTIONS).unwrap();
        assert_eq!(r.workloads[0].verdict, Verdict::Improvement);
        assert_eq!(r, check(&b, &c, &OPTIONS).unwrap());
    }

    #[test]
    fn probes_are_reported_but_never_gate() {
        let probe = |median_s: f64, seed: u64| {
            fixtures::probe(
                crate::result::WorkloadKind::ProbeCopy,
                &jittered(median_s, 0.01, 20, seed),
            )
        };
        let (mut b, mut c) = pair(0.010, 0.010, 0.01, 20);
        b.doc.workloads.push(probe(0.05, 1));
        c.doc.workloads.push(probe(0.06, 2));
        let r = check(&b, &c, &OPTIONS).unwrap();
        let p = &r.workloads[1];
        assert_eq!((p.verdict, p.gated), (Verdict::Regression, false));
        assert_eq!(p.verdict_text(), "regression (probe, not gated)");
        assert!(r.passed && r.regressions == 0);
        assert!(
            r.notes[0]
                .starts_with("the device's measured peaks moved (time per execution: probe-copy +"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn an_invalid_current_result_fails_the_check() {
        let (b, mut c) = pair(0.010, 0.010, 0.01, 20);
        c.doc.workloads[0].valid = false;
        let r = check(&b, &c, &OPTIONS).unwrap();
        assert_eq!(r.workloads[0].verdict, Verdict::Invalid);
        assert_eq!(r.invalid_current, ["prefill-tiny-f32-b1-p64"]);
        assert!(!r.passed);
    }

    #[test]
    fn different_hardware_is_refused_unless_allowed() {
        let (b, mut c) = pair(0.010, 0.010, 0.01, 20);
        c.doc.adapter.name = "GPU B".into();
        let err = check(&b, &c, &OPTIONS).unwrap_err().to_string();
        assert!(
            err.contains("adapter.name: \"GPU A\" (baseline) vs \"GPU B\" (current)"),
            "{err}"
        );
        assert!(err.contains("--allow-different-hardware"), "{err}");
        let allowed = CheckOptions {
            allow_different_hardware: true,
            ..OPTIONS
        };
        let r = check(&b, &c, &allowed).unwrap();
        assert_eq!(r.hardware_differences.len(), 1);
    }

    #[test]
    fn changed_definitions_or_nothing_in_common_are_refused() {
        let (b, mut c) = pair(0.010, 0.010, 0.01, 20);
        c.doc.workloads[0].batch = Some(4);
        let err = check(&b, &c, &OPTIONS).unwrap_err().to_string();
        assert!(
            err.contains("prefill-tiny-f32-b1-p64: batch 4 instead of 1"),
            "{err}"
        );
        let (b, mut c) = pair(0.010, 0.010, 0.01, 20);
        c.doc.workloads = vec![decode(512, &jittered(0.001, 0.01, 20, 1))];
        let err = check(&b, &c, &OPTIONS).unwrap_err().to_string();
        assert!(err.contains("no workload in common"), "{err}");
    }

    #[test]
    fn too_few_samples_cannot_be_gated() {
        let (b, c) = pair(0.010, 0.02, 0.01, 3);
        let err = check(&b, &c, &OPTIONS).unwrap_err().to_string();
        assert!(
            err.contains("3 samples; an interval needs at least 5"),
            "{err}"
        );
    }

    #[test]
    fn tokens_per_j_compares_point_values_of_like_power() {
        let powered = |watts: f64, scope: Scope| {
            let w = with_power(
                prefill(64, &jittered(0.01, 0.01, 20, 5)),
                scope,
                Provenance::MeasuredCounter,
                watts,
            );
            source(fixtures::run("ci", "GPU A", vec![w]))
        };
        let options = CheckOptions {
            metric: CheckMetric::TokensPerJ,
            ..OPTIONS
        };
        let r = check(
            &powered(100.0, Scope::GpuBoard),
            &powered(125.0, Scope::GpuBoard),
            &options,
        )
        .unwrap();
        let w = &r.workloads[0];
        assert_eq!(w.verdict, Verdict::Regression);
        assert!((w.change.unwrap() + 0.2).abs() < 1e-9 && w.point_values);
        assert!(r.notes.iter().any(|n| n.contains("point values")));
        let err = check(
            &powered(100.0, Scope::GpuBoard),
            &powered(100.0, Scope::NodeWall),
            &options,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tokens/J not comparable"), "{err}");
    }
}
