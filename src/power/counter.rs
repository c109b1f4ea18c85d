//! An energy counter read on its own thread often enough that no wrap is missed: at least
//! four reads per wrap period at the domain's largest plausible power
//! ([`CounterSource::wrap_period_s`]). Every read adds its delta from the read before to a
//! running total, so a window's energy is the sum of the deltas of every read in it, however
//! many times the counter wrapped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::integrate::counter_delta_j;
use super::sampler::{Periodic, lock};
use super::source::{CounterSnapshot, CounterSource};

/// Reads per wrap period at the domain's largest plausible power.
pub const READS_PER_WRAP: f64 = 4.0;
/// The largest power assumed for a domain whose limits cannot be read, in watts: more than
/// any single CPU package or GPU draws today.
pub const DEFAULT_MAX_POWER_W: f64 = 2000.0;
/// Counters are read at least this often even when they would take much longer to wrap (a
/// sysfs read costs microseconds, and drivers that widen a hardware counter do it on reads).
const MAX_POLL: Duration = Duration::from_secs(1);
/// And at most this often.
const MIN_POLL: Duration = Duration::from_millis(1);
/// The history of reads never holds more than this; the oldest go first.
const MAX_HISTORY: usize = 1_000_000;

/// A counter source and the running total of its reads.
pub(crate) struct CounterWatch {
    odometer: Arc<Mutex<Odometer>>,
    period: Option<Duration>,
    /// Declared last: dropping it stops the thread.
    _poller: Option<Periodic>,
}

struct Odometer {
    source: Arc<dyn CounterSource>,
    /// The last good read; `None` before the first and after a failed one.
    last: Option<CounterSnapshot>,
    /// Energy summed over every delta, in joules.
    total_j: f64,
    /// Reads or deltas that failed so far: energy between two reads was lost each time.
    faults: u64,
    /// What the latest fault was.
    last_fault: Option<String>,
    /// Every read since the current window began: when, the total then, the faults then.
    history: VecDeque<(Instant, f64, u64)>,
}

/// The running total at one read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OdometerReading {
    /// Middle of the read.
    pub(crate) at: Instant,
    /// Energy summed so far, in joules.
    pub(crate) total_j: f64,
    /// Faults so far.
    pub(crate) faults: u64,
    /// Why this read failed; `None` when it succeeded.
    pub(crate) error: Option<String>,
    /// The latest fault, for a window whose fault count changed.
    pub(crate) last_fault: Option<String>,
}

impl CounterWatch {
    /// Watches `source`, polling it on its own thread when it can wrap.
    pub(crate) fn start(source: Arc<dyn CounterSource>) -> anyhow::Result<Self> {
        let period = source.wrap_period_s().map(poll_period);
        let name = format!("tokbench-counter-{}", source.name());
        let odometer = Arc::new(Mutex::new(Odometer {
            source,
            last: None,
            total_j: 0.0,
            faults: 0,
            last_fault: None,
            history: VecDeque::new(),
        }));
        let poller = match period {
            Some(p) => {
                let o = odometer.clone();
                Some(Periodic::spawn(name, p, move || {
                    lock(&o).read();
                })?)
            }
            None => None,
        };
        Ok(Self {
            odometer,
            period,
            _poller: poller,
        })
    }

    /// Reads the counter now and gives the running total.
    pub(crate) fn read(&self) -> OdometerReading {
        lock(&self.odometer).read()
    }

    /// Drops the reads older than the last one at or before `t`: windows are measured one
    /// after another, so earlier ones are done with.
    pub(crate) fn forget_before(&self, t: Instant) {
        let mut o = lock(&self.odometer);
        let keep_from = o.history.iter().rposition(|h| h.0 <= t).unwrap_or(0);
        o.history.drain(..keep_from);
    }

    /// Energy between `from` and `to`, in joules, interpolated between the reads around
    /// each; `None` when the reads do not span them or a read between failed.
    pub(crate) fn energy_between(&self, from: Instant, to: Instant) -> Option<f64> {
        let o = lock(&self.odometer);
        // The total at `t`, between the last read at or before it and the first at or after.
        let at = |t: Instant| -> Option<(f64, u64)> {
            let before = o.history.iter().rev().find(|h| h.0 <= t)?;
            let after = o.history.iter().find(|h| h.0 >= t)?;
            if before.2 != after.2 {
                return None;
            }
            let span = (after.0 - before.0).as_secs_f64();
            let share = if span > 0.0 {
                (t - before.0).as_secs_f64() / span
            } else {
                0.0
            };
            Some((before.1 + (after.1 - before.1) * share, before.2))
        };
        let ((start_j, start_faults), (end_j, end_faults)) = (at(from)?, at(to)?);
        (start_faults == end_faults && to > from).then_some(end_j - start_j)
    }

    /// How often the thread reads the counter; `None` when it never wraps (no thread).
    pub(crate) fn poll_period(&self) -> Option<Duration> {
        self.period
    }
}

/// The poll period for a counter that can wrap in `wrap_s` seconds.
fn poll_period(wrap_s: f64) -> Duration {
    let s = wrap_s / READS_PER_WRAP;
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s).clamp(MIN_POLL, MAX_POLL)
    } else {
        MIN_POLL
    }
}

impl Odometer {
    fn read(&mut self) -> OdometerReading {
        let t0 = Instant::now();
        let read = self.source.read_counter();
        let at = t0 + t0.elapsed() / 2;
        let error = match read {
            Ok(now) => {
                let delta = self.last.as_ref().map(|last| counter_delta_j(last, &now));
                match delta {
                    Some(Ok(j)) => self.total_j += j,
                    Some(Err(fault)) => self.fault(fault.to_string()),
                    None => {}
                }
                self.last = Some(now);
                None
            }
            Err(e) => {
                let e = format!("{e:#}");
                self.last = None;
                self.fault(e.clone());
                Some(e)
            }
        };
        if self.history.len() >= MAX_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((at, self.total_j, self.faults));
        OdometerReading {
            at,
            total_j: self.total_j,
            faults: self.faults,
            error,
            last_fault: self.last_fault.clone(),
        }
    }

    fn fault(&mut self, why: String) {
        self.faults += 1;
        self.last_fault = Some(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::ZoneCount;
    use crate::power::source::SourceInfo;
    use crate::result::Scope;

    /// A counter that wraps at `range` units and advances `watts` of wall time exactly.
    pub(crate) struct WallCounter {
        pub(crate) t0: Instant,
        pub(crate) watts: f64,
        pub(crate) range_uj: u64,
        pub(crate) max_power_w: f64,
    }

    impl SourceInfo for WallCounter {
        fn name(&self) -> &'static str {
            "wall"
        }
        fn scope(&self) -> Scope {
            Scope::Other
        }
        fn describe(&self) -> String {
            format!("{} W of wall time", self.watts)
        }
    }

    impl CounterSource for WallCounter {
        fn read_counter(&self) -> anyhow::Result<CounterSnapshot> {
            let uj = (self.watts * self.t0.elapsed().as_secs_f64() * 1e6) as u64;
            Ok(CounterSnapshot {
                unit_j: 1e-6,
                zones: vec![ZoneCount {
                    raw: uj % self.range_uj,
                    wrap_at: Some(self.range_uj),
                }],
            })
        }
        fn wrap_period_s(&self) -> Option<f64> {
            Some(self.range_uj as f64 * 1e-6 / self.max_power_w)
        }
    }

    #[test]
    fn poll_periods_give_four_reads_per_wrap_within_bounds() {
        assert_eq!(poll_period(0.4), Duration::from_millis(100));
        assert_eq!(poll_period(3600.0), MAX_POLL);
        assert_eq!(poll_period(1e-6), MIN_POLL);
        assert_eq!(poll_period(f64::NAN), MIN_POLL);
    }

    #[test]
    fn a_counter_wrapping_many_times_in_a_window_is_summed_over_its_reads() {
        // 65 W against a 5 J range: a wrap every 77 ms; the bound says 130 W (a read every
        // 9.6 ms).
        let watch = CounterWatch::start(Arc::new(WallCounter {
            t0: Instant::now(),
            watts: 65.0,
            range_uj: 5_000_000,
            max_power_w: 130.0,
        }))
        .unwrap();
        assert!(watch.poll_period().unwrap() < Duration::from_millis(10));
        let a = watch.read();
        std::thread::sleep(Duration::from_millis(500));
        let b = watch.read();
        let watts = (b.total_j - a.total_j) / (b.at - a.at).as_secs_f64();
        assert!((watts - 65.0).abs() < 6.5, "{watts} W");
        assert_eq!((a.faults, b.faults), (0, 0));
        // Any stretch in between, interpolated between the reads around its ends.
        let (from, to) = (
            a.at + Duration::from_millis(100),
            a.at + Duration::from_millis(300),
        );
        let j = watch.energy_between(from, to).unwrap();
        assert!((j / 0.2 - 65.0).abs() < 6.5, "{} W", j / 0.2);
        assert_eq!(watch.energy_between(to, from), None);
        assert_eq!(
            watch.energy_between(a.at, b.at + Duration::from_secs(5)),
            None
        );
        watch.forget_before(b.at);
        assert_eq!(watch.energy_between(from, to), None);
    }
}
