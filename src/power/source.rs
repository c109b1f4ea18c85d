//! The one trait every power source implements, and what a reading looks like.

use crate::result::{Provenance, Scope};

/// A power or energy source: NVML, hwmon, RAPL, a command, declared watts.
///
/// Sources are shared with the sampler thread, hence `Send + Sync` and `&self` reads.
pub trait PowerSource: Send + Sync {
    /// Short name written to results: "nvml", "hwmon", "rapl", "command", "declared".
    fn name(&self) -> &'static str;

    /// What the source's figures cover.
    fn scope(&self) -> Scope;

    /// How the source measures: `MeasuredCounter` sources are read at the window's edges,
    /// `MeasuredSampled` ones on the sampler thread, `Declared` ones never change.
    fn provenance(&self) -> Provenance;

    /// What exactly is read, for the record of sources tried (device, file, command).
    fn describe(&self) -> String;

    /// Reads the source once: an energy counter or a power figure, with scope and provenance.
    fn read(&self) -> anyhow::Result<Reading>;

    /// Shortest window that gives a trustworthy figure, in seconds (a power reading that is
    /// itself a 1-second average needs at least that).
    fn min_window_s(&self) -> f64 {
        0.0
    }

    /// Longest one [`read`](Self::read) may block, in seconds (a command's time limit).
    fn max_read_s(&self) -> f64 {
        1.0
    }
}

/// One reading of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// What the figure covers.
    pub scope: Scope,
    /// Where it came from.
    pub provenance: Provenance,
    /// The figure.
    pub value: ReadingValue,
}

/// The figure of a reading.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadingValue {
    /// Energy counters, read now.
    Energy(CounterSnapshot),
    /// Power now, in watts.
    Power {
        /// Watts.
        watts: f64,
    },
}

impl Reading {
    /// The watts of a power reading; an error for a counter.
    pub fn watts(&self) -> anyhow::Result<f64> {
        match &self.value {
            ReadingValue::Power { watts } => Ok(*watts),
            ReadingValue::Energy(_) => anyhow::bail!("expected a power reading, got a counter"),
        }
    }

    /// The counters of an energy reading; an error for a power figure.
    pub fn counter(self) -> anyhow::Result<CounterSnapshot> {
        match self.value {
            ReadingValue::Energy(c) => Ok(c),
            ReadingValue::Power { .. } => {
                anyhow::bail!("expected an energy counter, got a power reading")
            }
        }
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
