//! Warm-up to a plateau, then timed samples until both the sample count and the time floor of
//! the policy are met.

use std::time::{Duration, Instant};

use crate::gpu::{MAX_RUNS_PER_BATCH, Timer};
use crate::power::PowerMeter;
use crate::result::{PowerRecord, SamplePolicy, Sustain};

/// Consecutive warm-up iterations compared for the plateau test.
const PLATEAU_WINDOW: usize = 3;
/// Relative change of the windowed median under which times count as settled.
const PLATEAU_TOLERANCE: f64 = 0.05;
/// Warm-up never runs more iterations than this.
const MAX_WARMUP_ITERATIONS: usize = 50;
/// Aim for timed batches of about this long, so submission cost stays small and progress moves.
const TARGET_BATCH_S: f64 = 0.1;
/// Sampling stops after this many samples even if the time floor is not met.
const MAX_SAMPLES: usize = 100_000;

/// The raw outcome of measuring one workload.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Duration of each timed execution, in seconds.
    pub samples_s: Vec<f64>,
    /// Warm-up iterations run before sampling.
    pub warmup_iterations: u32,
    /// Host time span of the sampling phase (what energy is integrated over).
    pub window: Window,
    /// Power and energy over the window.
    pub power: PowerRecord,
}

/// The host-clock span in which the timed executions ran.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When the first timed batch was submitted.
    pub start: Instant,
    /// When the last timed batch had finished.
    pub end: Instant,
}

impl Window {
    /// Length of the window in seconds.
    pub fn duration_s(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

/// What measuring needs besides the work: how to sample, and the power meter whose window is
/// the sampling phase.
#[derive(Clone, Copy)]
pub struct MeasureEnv<'a> {
    /// Sample count, time floor, warm-up cap.
    pub policy: SamplePolicy,
    /// Power over the sampling window; `None` records power as unavailable.
    pub power: Option<&'a PowerMeter>,
}

/// Measures what `timer` runs: warm-up until per-iteration times plateau (or the policy's warm-up time
/// runs out), then samples, for at least the policy's count and time, and at least as long as
/// the power source needs for a trustworthy energy figure and the policy's `sustain_s` (whose
/// drift between the window's first and last tenth goes into `power.sustain`).
/// `on_progress(samples so far, total planned)` is called after every batch.
pub fn measure(
    timer: &dyn Timer,
    env: &MeasureEnv<'_>,
    on_progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Measured> {
    let policy = &env.policy;
    let warmup_start = Instant::now();
    let max_warmup = Duration::from_secs_f64(policy.max_warmup_s.max(0.0));
    let mut warmup: Vec<f64> = Vec::new();
    loop {
        warmup.extend(timer.time_runs(1)?);
        if plateaued(&warmup)
            || warmup.len() >= MAX_WARMUP_ITERATIONS
            || warmup_start.elapsed() >= max_warmup
        {
            break;
        }
    }
    let typical = crate::stats::median(&warmup[warmup.len().saturating_sub(PLATEAU_WINDOW)..]);
    let min_samples = policy.min_samples.max(1) as usize;
    // Enough samples for the time floor, estimated from the warm-up.
    let sustain_s = policy.sustain_s.unwrap_or(0.0);
    let planned = min_samples
        .max((policy.min_time_s.max(sustain_s) / typical.max(1e-9)).ceil() as usize)
        .min(MAX_SAMPLES);
    let batch = ((TARGET_BATCH_S / typical.max(1e-9)) as u32).clamp(1, MAX_RUNS_PER_BATCH);

    let min_window = Duration::from_secs_f64(
        env.power
            .map_or(0.0, PowerMeter::min_window_s)
            .max(sustain_s),
    );
    let mut samples = Vec::with_capacity(planned);
    let power_start = env.power.map(PowerMeter::begin);
    let start = Instant::now();
    while samples.len() < min_samples
        || (samples.len() < MAX_SAMPLES
            && (samples.iter().sum::<f64>() < policy.min_time_s || start.elapsed() < min_window))
    {
        samples.extend(timer.time_runs(batch)?);
        on_progress(samples.len(), planned.max(samples.len()));
    }
    let end = Instant::now();
    let window = Window { start, end };
    let executions = samples.len() as u64;
    let mut power = match (env.power, power_start) {
        (Some(meter), Some(begun)) => meter.end(begun, executions),
        _ => PowerRecord::unavailable(
            "no power meter in this run",
            window.duration_s(),
            executions,
        ),
    };
    crate::power::record_duty_cycle(&mut power, samples.iter().sum());
    if let Some(s) = policy.sustain_s {
        power.sustain = Some(sustained(s, &samples, window, env.power));
    }
    Ok(Measured {
        samples_s: samples,
        warmup_iterations: warmup.len() as u32,
        window,
        power,
    })
}

/// The drift of a sustained window: the first tenth of its samples and of its time against
/// the last tenth.
fn sustained(
    sustain_s: f64,
    samples: &[f64],
    window: Window,
    power: Option<&PowerMeter>,
) -> Sustain {
    use crate::stats::median;
    let tenth = (samples.len() / 10).max(1);
    let first_tenth_median_s = median(&samples[..tenth]);
    let last_tenth_median_s = median(&samples[samples.len() - tenth..]);
    let span = (window.end - window.start) / 10;
    let first_tenth_power_w =
        power.and_then(|m| m.average_power_w(window.start, window.start + span));
    let last_tenth_power_w = power.and_then(|m| m.average_power_w(window.end - span, window.end));
    Sustain {
        sustain_s,
        first_tenth_median_s,
        last_tenth_median_s,
        throughput_drift: first_tenth_median_s / last_tenth_median_s - 1.0,
        first_tenth_power_w,
        last_tenth_power_w,
        power_drift: first_tenth_power_w
            .zip(last_tenth_power_w)
            .map(|(first, last)| last / first - 1.0),
    }
}

/// True when the median of the last window of times is within the tolerance of the median of
/// the window before it.
fn plateaued(times: &[f64]) -> bool {
    use crate::stats::median;
    if times.len() < 2 * PLATEAU_WINDOW {
        return false;
    }
    let n = times.len();
    let last = median(&times[n - PLATEAU_WINDOW..]);
    let before = median(&times[n - 2 * PLATEAU_WINDOW..n - PLATEAU_WINDOW]);
    (last - before).abs() <= PLATEAU_TOLERANCE * last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_detection() {
        assert!(!plateaued(&[5.0, 3.0, 1.0]), "too few iterations");
        assert!(!plateaued(&[9.0, 7.0, 5.0, 3.0, 2.0, 1.0]), "still falling");
        assert!(plateaued(&[9.0, 1.0, 1.02, 0.99, 1.0, 1.01, 1.0]));
    }
}
