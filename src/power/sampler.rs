//! Reads a power gauge on its own thread at a fixed rate, time-stamping every
//! reading with the monotonic clock, and hands out the samples that span a window.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::integrate::TracePoint;
use super::source::GaugeSource;

/// The buffer never holds more samples than this (hours at 10 Hz); the oldest go first.
const MAX_BUFFERED: usize = 1_000_000;

/// One reading of the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Midpoint of the read (a slow command's reading belongs to neither end).
    pub at: Instant,
    /// Watts, or why the read failed.
    pub watts: Result<f64, String>,
}

/// A sampler thread and the samples it has taken.
pub struct Sampler {
    shared: Arc<Shared>,
    period: Duration,
    max_read: Duration,
    /// Declared last: dropping it stops the thread.
    _thread: Periodic,
}

struct Shared {
    samples: Mutex<VecDeque<Sample>>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Sample>> {
        lock(&self.samples)
    }
}

/// Locks `m`; a panic on a sampler thread cannot leave its data half-written, so keep going.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A thread that calls a function at a fixed period until it is dropped.
pub(crate) struct Periodic {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Periodic {
    /// Starts a thread named `name` that calls `tick` now and then every `period`. A slow tick
    /// pushes the next one back rather than bunching ticks to catch up.
    pub(crate) fn spawn(
        name: String,
        period: Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut next = Instant::now();
                loop {
                    if *lock(stopped) {
                        return;
                    }
                    tick();
                    next = (next + period).max(Instant::now());
                    let mut stop = lock(stopped);
                    while !*stop {
                        let now = Instant::now();
                        if now >= next {
                            break;
                        }
                        stop = wake
                            .wait_timeout(stop, next - now)
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                }
            })
            .context("starting a power sampler thread")?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *lock(stopped) = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            // At most one tick long: a command past its time limit is killed.
            let _ = t.join();
        }
    }
}

/// The samples that bear on one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowSamples {
    /// Good samples, times in seconds from the window's start: the last one at or before the
    /// start, those inside, and the first one at or after the end.
    pub trace: Vec<TracePoint>,
    /// Reads inside the window (failed or not).
    pub attempted: usize,
    /// Errors of the reads inside the window that failed, in order.
    pub failures: Vec<String>,
}

impl Sampler {
    /// Starts sampling `source` at `hz`, taking `first` (a reading just made, if any) as the
    /// first sample.
    pub fn start(
        source: Arc<dyn GaugeSource>,
        hz: f64,
        first: Option<Sample>,
    ) -> anyhow::Result<Self> {
        let period = Duration::from_secs_f64(1.0 / hz);
        let max_read = Duration::from_secs_f64(source.max_read_s().max(0.0));
        let shared = Arc::new(Shared {
            samples: Mutex::new(first.into_iter().collect()),
            changed: Condvar::new(),
        });
        let inner = shared.clone();
        let name = format!("tokbench-power-{}", source.name());
        let thread = Periodic::spawn(name, period, move || {
            let sample = read_sample(source.as_ref());
            let mut samples = inner.lock();
            if samples.len() >= MAX_BUFFERED {
                samples.pop_front();
            }
            samples.push_back(sample);
            inner.changed.notify_all();
        })?;
        Ok(Self {
            shared,
            period,
            max_read,
            _thread: thread,
        })
    }

    /// Drops samples older than the last one at or before `t`: windows are measured one after
    /// another, so earlier ones are done with.
    pub fn forget_before(&self, t: Instant) {
        let mut samples = self.shared.lock();
        let keep_from = samples
            .iter()
            .rposition(|s| s.at <= t && s.watts.is_ok())
            .unwrap_or(0);
        samples.drain(..keep_from);
    }

    /// The samples spanning `[start, end]`. Waits (briefly: one period plus one read) for a
    /// sample at or after `end`, so the window's end is interpolated rather than extrapolated.
    pub fn window(&self, start: Instant, end: Instant) -> WindowSamples {
        let deadline = end + self.period + self.max_read + Duration::from_millis(50);
        let mut samples = self.shared.lock();
        loop {
            let done = samples.back().is_some_and(|s| s.at >= end);
            let now = Instant::now();
            if done || now >= deadline {
                break;
            }
            samples = self
                .shared
                .changed
                .wait_timeout(samples, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        select(samples.make_contiguous(), start, end)
    }
}

/// The samples of `samples` (in time order) that bear on `[start, end]`.
pub fn select(samples: &[Sample], start: Instant, end: Instant) -> WindowSamples {
    let offset = |t: Instant| {
        if t >= start {
            (t - start).as_secs_f64()
        } else {
            -(start - t).as_secs_f64()
        }
    };
    let good = |s: &&Sample| s.watts.is_ok();
    let before = samples.iter().filter(good).rfind(|s| s.at <= start);
    let after = samples.iter().filter(good).find(|s| s.at >= end);
    let inside = samples.iter().filter(|s| s.at > start && s.at < end);
    let mut out = WindowSamples::default();
    for s in before
        .into_iter()
        .chain(inside.clone().filter(good))
        .chain(after)
    {
        if let Ok(w) = s.watts {
            out.trace.push(TracePoint {
                t_s: offset(s.at),
                power_w: w,
            });
        }
    }
    out.trace.dedup_by(|a, b| a.t_s == b.t_s);
    for s in samples.iter().filter(|s| s.at >= start && s.at <= end) {
        out.attempted += 1;
        if let Err(e) = &s.watts {
            out.failures.push(e.clone());
        }
    }
    out
}

/// Reads the gauge once, time-stamped at the middle of the read.
pub(crate) fn read_sample(source: &dyn GaugeSource) -> Sample {
    let t0 = Instant::now();
    let watts = source
        .read_watts()
        .and_then(|w| {
            anyhow::ensure!(w.is_finite() && w >= 0.0, "{w} W is not a power");
            Ok(w)
        })
        .map_err(|e| format!("{e:#}"));
    let t1 = Instant::now();
    Sample {
        at: t0 + (t1 - t0) / 2,
        watts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::source::SourceInfo;
    use crate::result::Scope;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// 100 W, failing on every read from the `fail_from`th on.
    struct Steady {
        reads: AtomicU32,
        fail_from: u32,
    }

    impl SourceInfo for Steady {
        fn name(&self) -> &'static str {
            "steady"
        }
        fn scope(&self) -> Scope {
            Scope::Other
        }
        fn describe(&self) -> String {
            "100 W".into()
        }
    }

    impl GaugeSource for Steady {
        fn read_watts(&self) -> anyhow::Result<f64> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst);
            anyhow::ensure!(n < self.fail_from, "gone");
            Ok(100.0)
        }
    }

    #[test]
    fn samples_span_the_window_and_integrate() {
        let src = Arc::new(Steady {
            reads: AtomicU32::new(0),
            fail_from: u32::MAX,
        });
        let sampler = Sampler::start(src, 100.0, None).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        let end = Instant::now();
        let w = sampler.window(start, end);
        assert!(w.failures.is_empty());
        assert!(w.attempted >= 3, "{w:?}");
        let window_s = (end - start).as_secs_f64();
        let i = crate::power::integrate::integrate_window(&w.trace, 0.0, window_s).unwrap();
        assert!((i.energy_j - 100.0 * window_s).abs() < 1e-9, "{i:?}");
        assert_eq!(i.coverage, 1.0);
        sampler.forget_before(end);
        assert!(sampler.shared.lock().front().unwrap().at <= end);
    }

    #[test]
    fn failed_reads_are_counted_and_kept_out_of_the_trace() {
        let src = Arc::new(Steady {
            reads: AtomicU32::new(0),
            fail_from: 3,
        });
        let sampler = Sampler::start(src, 200.0, None).unwrap();
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(100));
        let w = sampler.window(start, Instant::now());
        assert!(
            !w.failures.is_empty() && w.failures[0].contains("gone"),
            "{w:?}"
        );
        assert!(w.trace.len() <= 3);
    }

    #[test]
    fn select_brackets_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let s = |ms, w: Result<f64, &str>| Sample {
            at: at(ms),
            watts: w.map_err(str::to_string),
        };
        let samples = [
            s(0, Ok(1.0)),
            s(100, Ok(2.0)),
            s(200, Err("x")),
            s(300, Ok(3.0)),
            s(400, Ok(4.0)),
            s(500, Ok(5.0)),
        ];
        let w = select(&samples, at(150), at(350));
        let watts: Vec<f64> = w.trace.iter().map(|p| p.power_w).collect();
        assert_eq!(watts, [2.0, 3.0, 4.0]);
        assert!((w.trace[0].t_s + 0.05).abs() < 1e-9);
        assert_eq!(w.attempted, 2);
        assert_eq!(w.failures, ["x"]);
    }
}
