//! One measured window: what its start holds, how each kind of source turns it into a
//! [`PowerRecord`], and the figures derived from that record (tokens per joule, duty cycle).

use std::sync::Arc;
use std::time::Instant;

use super::counter::{CounterWatch, OdometerReading};
use super::declared::DeclaredSource;
use super::integrate::integrate_window;
use super::sampler::Sampler;
use super::source::{CounterSource, GaugeSource, SourceInfo};
use crate::result::{PowerRecord, SampleCoverage};

/// Cross-check and counter differing by more than this share of the counter get a warning.
const CROSS_CHECK_TOLERANCE: f64 = 0.10;
/// Below this share of the window covered by good samples, a sampled figure is not given.
const MIN_COVERAGE: f64 = 0.5;
/// Below this coverage a sampled figure carries a warning.
const WARN_COVERAGE: f64 = 0.9;
/// Below this duty cycle a record warns that the window held idle time.
const WARN_DUTY_CYCLE: f64 = 0.9;

/// The source in use, started: what windows are measured with.
pub(super) struct Active {
    /// The source, by kind, with the threads its kind needs.
    pub(super) metering: Metering,
    /// Warnings that hold for every figure (an ambiguous device match, RAPL for a GPU).
    pub(super) notes: Vec<String>,
}

/// A source and what its kind needs: a gauge always has its sampler.
pub(super) enum Metering {
    /// An energy counter, with sampled power beside it where the device has both (NVML).
    Counter {
        /// The counter.
        source: Arc<dyn CounterSource>,
        /// Its running total, read often enough that no wrap is missed.
        watch: CounterWatch,
        /// Sampled power over the same windows.
        cross_check: Option<(Arc<dyn GaugeSource>, Sampler)>,
    },
    /// A power gauge and its sampler thread.
    Gauge {
        /// The gauge.
        source: Arc<dyn GaugeSource>,
        /// Its samples.
        sampler: Sampler,
    },
    /// Declared watts.
    Declared(DeclaredSource),
}

impl Active {
    /// Name, scope and description of the source in use.
    pub(super) fn info(&self) -> &dyn SourceInfo {
        match &self.metering {
            Metering::Counter { source, .. } => source.as_ref(),
            Metering::Gauge { source, .. } => source.as_ref(),
            Metering::Declared(d) => d,
        }
    }

    /// The samplers running for this source.
    fn samplers(&self) -> impl Iterator<Item = &Sampler> {
        let (main, cross) = match &self.metering {
            Metering::Counter { cross_check, .. } => (None, cross_check.as_ref().map(|c| &c.1)),
            Metering::Gauge { sampler, .. } => (Some(sampler), None),
            Metering::Declared(_) => (None, None),
        };
        main.into_iter().chain(cross)
    }
}

/// The start of a measured window, from [`PowerMeter::begin`](super::PowerMeter::begin).
#[derive(Debug, Clone)]
pub struct WindowStart {
    at: Instant,
    /// Counter sources: the counter's running total at the start.
    counter: Option<OdometerReading>,
}

impl WindowStart {
    /// When the window started (monotonic clock).
    pub fn at(&self) -> Instant {
        self.at
    }
}

/// Starts a window: reads a counter source now.
pub(super) fn begin(active: Option<&Active>) -> WindowStart {
    let Some(a) = active else {
        return WindowStart {
            at: Instant::now(),
            counter: None,
        };
    };
    for sampler in a.samplers() {
        sampler.forget_before(Instant::now());
    }
    match &a.metering {
        Metering::Counter { watch, .. } => {
            watch.forget_before(Instant::now());
            let counter = watch.read();
            WindowStart {
                at: counter.at,
                counter: Some(counter),
            }
        }
        Metering::Gauge { .. } | Metering::Declared(_) => WindowStart {
            at: Instant::now(),
            counter: None,
        },
    }
}

/// The record of the window begun at `start`, in which the workload ran `executions` times.
pub(super) fn end(
    a: &Active,
    start: &WindowStart,
    executions: u64,
    idle_power_w: Option<f64>,
) -> PowerRecord {
    match &a.metering {
        Metering::Counter {
            source,
            watch,
            cross_check,
        } => end_counter(
            source.as_ref(),
            watch,
            cross_check.as_ref(),
            start,
            executions,
            idle_power_w,
        ),
        Metering::Gauge { source, sampler } => end_sampled(
            source.as_ref(),
            sampler,
            start,
            Instant::now(),
            executions,
            idle_power_w,
        ),
        Metering::Declared(d) => {
            let window_s = start.at.elapsed().as_secs_f64();
            PowerRecord::declared(d.name(), d.scope(), d.watts(), window_s, executions)
        }
    }
}

/// The counter's running total from the window's start to now: the sum of the deltas of every
/// read in between (the edges' and the watch thread's), unless one of them failed.
fn end_counter(
    source: &dyn CounterSource,
    watch: &CounterWatch,
    cross_check: Option<&(Arc<dyn GaugeSource>, Sampler)>,
    start: &WindowStart,
    executions: u64,
    idle_power_w: Option<f64>,
) -> PowerRecord {
    let end = watch.read();
    let end_at = end.at;
    let window_s = (end_at - start.at).as_secs_f64();
    let Some(begin) = &start.counter else {
        return failed(
            source,
            "the window was begun without a source",
            window_s,
            executions,
        );
    };
    if let Some(e) = &end.error {
        let why = format!("energy counter unreadable at the window's end: {e}");
        return failed(source, &why, window_s, executions);
    }
    if let Some(e) = &begin.error {
        let why = format!("energy counter unreadable at the window's start: {e}");
        return failed(source, &why, window_s, executions);
    }
    if end.faults != begin.faults {
        let why = end
            .last_fault
            .as_deref()
            .unwrap_or("an energy counter read failed");
        return failed(source, why, window_s, executions);
    }
    let energy_j = end.total_j - begin.total_j;
    if energy_j <= 0.0 {
        let why = format!(
            "the energy counter did not advance over the {window_s:.3} s window (it updates \
             less often than that)"
        );
        return failed(source, &why, window_s, executions);
    }
    let mut record = PowerRecord::counter(
        source.name(),
        source.scope(),
        energy_j,
        idle_power_w,
        window_s,
        executions,
    );
    if let Some((cc, sampler)) = cross_check {
        let ws = sampler.window(start.at, end_at);
        let figure = integrate_window(&ws.trace, 0.0, window_s)
            .filter(|i| i.coverage >= MIN_COVERAGE && i.energy_j > 0.0);
        if let Some(i) = figure {
            let cc_w = i.energy_j / window_s;
            let counter_w = energy_j / window_s;
            record.cross_check_power_w = Some(cc_w);
            let off = (cc_w - counter_w) / counter_w;
            if off.abs() > CROSS_CHECK_TOLERANCE {
                record.warnings.push(format!(
                    "cross-check: {} sampled power averaged {cc_w:.1} W, {:+.0}% from the \
                     counter's {counter_w:.1} W",
                    cc.name(),
                    off * 100.0
                ));
            }
        }
    }
    record
}

fn end_sampled(
    source: &dyn GaugeSource,
    sampler: &Sampler,
    start: &WindowStart,
    end_at: Instant,
    executions: u64,
    idle_power_w: Option<f64>,
) -> PowerRecord {
    let window_s = (end_at - start.at).as_secs_f64();
    let ws = sampler.window(start.at, end_at);
    let failures = ws.failures.len();
    let first_failure = ws.failures.first().cloned().unwrap_or_default();
    let Some(integral) = integrate_window(&ws.trace, 0.0, window_s) else {
        let why = if failures > 0 {
            format!("every power reading in the window failed: {first_failure}")
        } else {
            "no power reading in or around the window".to_string()
        };
        return failed(source, &why, window_s, executions);
    };
    if failures > ws.attempted - failures || integral.coverage < MIN_COVERAGE {
        let why = format!(
            "{failures} of {} power readings in the window failed, good readings cover {:.0}% \
             of it{}",
            ws.attempted,
            integral.coverage * 100.0,
            if failures > 0 {
                format!(" (first failure: {first_failure})")
            } else {
                String::new()
            }
        );
        return failed(source, &why, window_s, executions);
    }
    if integral.energy_j <= 0.0 {
        return failed(
            source,
            "the source read 0 W throughout the window",
            window_s,
            executions,
        );
    }
    let mut record = PowerRecord::sampled(
        source.name(),
        source.scope(),
        integral.energy_j,
        idle_power_w,
        window_s,
        executions,
        SampleCoverage {
            samples: integral.samples,
            coverage: integral.coverage,
            max_gap_s: integral.max_gap_s,
        },
    );
    if failures > 0 {
        record.warnings.push(format!(
            "{failures} of {} power readings in the window failed: {first_failure}",
            ws.attempted
        ));
    }
    if integral.coverage < WARN_COVERAGE {
        record.warnings.push(format!(
            "power samples cover only {:.0}% of the window",
            integral.coverage * 100.0
        ));
    }
    record
}

/// Average power between `from` and `to` (inside the latest window), in watts: the counter's
/// advance or the integrated samples over that stretch; `None` for declared power and where
/// the source has no good figure for it.
pub(super) fn average_power_w(a: &Active, from: Instant, to: Instant) -> Option<f64> {
    let span_s = to.checked_duration_since(from)?.as_secs_f64();
    if span_s <= 0.0 {
        return None;
    }
    let energy_j = match &a.metering {
        Metering::Counter { watch, .. } => watch.energy_between(from, to)?,
        Metering::Gauge { sampler, .. } => {
            let ws = sampler.window(from, to);
            integrate_window(&ws.trace, 0.0, span_s)
                .filter(|i| i.coverage >= MIN_COVERAGE)?
                .energy_j
        }
        Metering::Declared(_) => return None,
    };
    (energy_j > 0.0).then(|| energy_j / span_s)
}

/// The record of a window `source` failed in: unavailable, saying why.
fn failed(source: &dyn SourceInfo, why: &str, window_s: f64, executions: u64) -> PowerRecord {
    let mut r = PowerRecord::unavailable(why, window_s, executions);
    r.source = Some(source.name().into());
    r.warnings.push(format!(
        "{} gave no figure for this window: {why}",
        source.name()
    ));
    r
}

/// Tokens per joule and its companions for one window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TokenEnergy {
    /// Tokens executed in the window ÷ joules of the window.
    pub tokens_per_j: Option<f64>,
    /// Tokens executed in the window ÷ joules above idle.
    pub tokens_per_j_dynamic: Option<f64>,
    /// Joules per token: 1 / tokens_per_j.
    pub j_per_token: Option<f64>,
}

/// Tokens per joule of a window: the tokens executed in it (`tokens` per execution ×
/// `power.executions`) ÷ its energy (`power.energy_j`), and the dynamic twin ÷
/// `power.dynamic_energy_j`. One definition for every source: with declared power W it is
/// tokens ÷ (W × window_s). Every figure is `None` without energy (or without tokens); the
/// dynamic one also without idle power, or when the window drew no more than idle.
pub fn token_energy(tokens: Option<u64>, power: &PowerRecord) -> TokenEnergy {
    let window_tokens = tokens.map(|t| t as f64 * power.executions as f64);
    let per_j = |energy_j: Option<f64>| match (window_tokens, energy_j) {
        (Some(t), Some(j)) if t > 0.0 && j.is_finite() && j > 0.0 => Some(t / j),
        _ => None,
    };
    let tokens_per_j = per_j(power.energy_j);
    TokenEnergy {
        tokens_per_j,
        tokens_per_j_dynamic: per_j(power.dynamic_energy_j),
        j_per_token: tokens_per_j.map(|t| 1.0 / t),
    }
}

/// Records the window's duty cycle: `timed_s` (the summed GPU-timed seconds of its executions)
/// ÷ `window_s`, with a warning below 0.9 where the record has an energy figure (that energy
/// then includes the device idling between executions).
pub fn record_duty_cycle(record: &mut PowerRecord, timed_s: f64) {
    if !(record.window_s > 0.0 && timed_s.is_finite() && timed_s >= 0.0) {
        return;
    }
    let duty = timed_s / record.window_s;
    record.duty_cycle = Some(duty);
    if duty < WARN_DUTY_CYCLE && record.energy_j.is_some() {
        record.warnings.push(format!(
            "the GPU ran timed work for {:.0}% of the energy window (duty cycle {duty:.2}); the \
             rest is host encoding, submission and readback, whose energy lowers tokens/J",
            duty * 100.0
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duty_cycle_is_timed_seconds_over_the_window_and_warns_below_ninety_percent() {
        let mut r = PowerRecord::unavailable("none", 2.0, 10);
        record_duty_cycle(&mut r, 1.0);
        assert_eq!(r.duty_cycle, Some(0.5));
        assert!(r.warnings.is_empty(), "no energy, nothing to warn about");
        r.energy_j = Some(100.0);
        record_duty_cycle(&mut r, 1.9);
        assert_eq!(r.duty_cycle, Some(0.95));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        record_duty_cycle(&mut r, 1.7);
        assert_eq!(r.duty_cycle, Some(0.85));
        assert!(
            r.warnings.len() == 1 && r.warnings[0].contains("duty cycle 0.85"),
            "{:?}",
            r.warnings
        );
        let mut empty = PowerRecord::unavailable("none", 0.0, 0);
        record_duty_cycle(&mut empty, 0.0);
        assert_eq!(empty.duty_cycle, None);
    }

    #[test]
    fn tokens_per_joule_counts_every_execution_in_the_window() {
        // 4 executions over 10 s with 2 W idle, drawing `energy_j` in all.
        let counted = |energy_j| {
            PowerRecord::counter(
                "rapl",
                crate::result::Scope::CpuPackage,
                energy_j,
                Some(2.0),
                10.0,
                4,
            )
        };
        let r = counted(50.0);
        // 4 executions of 25 tokens over 50 J gross, 50 − 2 × 10 = 30 J dynamic.
        let te = token_energy(Some(25), &r);
        assert_eq!(te.tokens_per_j, Some(2.0));
        assert_eq!(te.j_per_token, Some(0.5));
        assert_eq!(te.tokens_per_j_dynamic, Some(100.0 / 30.0));
        let below_idle = counted(10.0);
        assert_eq!(
            token_energy(Some(25), &below_idle).tokens_per_j_dynamic,
            None
        );
    }
}
