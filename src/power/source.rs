//! The three kinds of power source, as types: an energy counter ([`CounterSource`]), a power
//! gauge sampled on its own thread ([`GaugeSource`]), and declared watts
//! ([`DeclaredSource`](super::declared::DeclaredSource)). [`Source`] holds one of them, so the
//! meter's handling follows from the kind: a gauge always gets a sampler, a counter never needs
//! one, and declared power is never read as a measurement.

use std::sync::Arc;

use super::declared::DeclaredSource;
use crate::result::{Provenance, Scope};

/// What every source says about itself.
///
/// Sources are shared with sampler threads, hence `Send + Sync` and `&self` reads.
pub trait SourceInfo: Send + Sync {
    /// Short name written to results: "nvml", "hwmon", "rapl", "command", "declared".
    fn name(&self) -> &'static str;

    /// What the source's figures cover.
    fn scope(&self) -> Scope;

    /// What exactly is read, for the record of sources tried (device, file, command).
    fn describe(&self) -> String;

    /// Shortest window that gives a trustworthy figure, in seconds (a power reading that is
    /// itself a 1-second average needs at least that).
    fn min_window_s(&self) -> f64 {
        0.0
    }
}

/// An energy counter (`measured-counter`): a window's energy is the counter's advance over it,
/// summed over reads often enough that no wrap is missed (see [`super::counter`]).
pub trait CounterSource: SourceInfo {
    /// Reads the counters now.
    fn read_counter(&self) -> anyhow::Result<CounterSnapshot>;

    /// The shortest time, in seconds, in which the counter could wrap at the domain's largest
    /// plausible power (or a driver that widens a narrower hardware counter on each read could
    /// miss one); `None` for a counter that never wraps. It is read at least four times as
    /// often.
    fn wrap_period_s(&self) -> Option<f64>;
}

/// A power gauge (`measured-sampled`): power now, sampled on its own thread and integrated.
pub trait GaugeSource: SourceInfo {
    /// Reads the power now, in watts.
    fn read_watts(&self) -> anyhow::Result<f64>;

    /// Longest one [`read_watts`](Self::read_watts) may block, in seconds (a command's time
    /// limit).
    fn max_read_s(&self) -> f64 {
        1.0
    }
}

/// A power source of one of the three kinds.
#[derive(Clone)]
pub enum Source {
    /// An energy counter, read at the window's edges (and in between, see
    /// [`CounterSource`]).
    Counter(Arc<dyn CounterSource>),
    /// A power gauge, sampled on its own thread.
    Gauge(Arc<dyn GaugeSource>),
    /// Watts the user declared.
    Declared(DeclaredSource),
}

impl Source {
    /// Where this source's figures come from.
    pub fn provenance(&self) -> Provenance {
        match self {
            Self::Counter(_) => Provenance::MeasuredCounter,
            Self::Gauge(_) => Provenance::MeasuredSampled,
            Self::Declared(_) => Provenance::Declared,
        }
    }

    /// Name, scope and description, whatever the kind.
    pub fn info(&self) -> &dyn SourceInfo {
        match self {
            Self::Counter(c) => c.as_ref(),
            Self::Gauge(g) => g.as_ref(),
            Self::Declared(d) => d,
        }
    }

    /// Reads the source once, so one that cannot work is found before any workload.
    pub fn probe(&self) -> anyhow::Result<()> {
        match self {
            Self::Counter(c) => c.read_counter().map(drop),
            Self::Gauge(g) => g.read_watts().map(drop),
            Self::Declared(_) => Ok(()),
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} source {}",
            self.provenance(),
            self.info().describe()
        )
    }
}

/// Energy counters read at one moment: one per zone (RAPL has one per CPU package).
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSnapshot {
    /// Joules per counter unit: 1e-6 for µJ (sysfs), 1e-3 for mJ (NVML).
    pub unit_j: f64,
    /// The zones, in a stable order.
    pub zones: Vec<ZoneCount>,
}

/// One energy counter's raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneCount {
    /// The counter, in the snapshot's units.
    pub raw: u64,
    /// The counter wraps to 0 after this value (RAPL's `max_energy_range_uj`); `None` for a
    /// counter that never wraps, so going backwards means it was reset (driver reload).
    pub wrap_at: Option<u64>,
}
