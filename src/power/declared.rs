//! `--watts W`: a constant power the user declares. Not a measurement: its provenance is
//! `declared`, and a window's energy is W × window exactly.

use super::source::{PowerSource, Reading, ReadingValue};
use crate::result::{Provenance, Scope};

/// Constant declared power.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredSource {
    watts: f64,
}

impl DeclaredSource {
    /// `watts` must be positive and finite ([`super::PowerOptions::validate`] checks it).
    pub fn new(watts: f64) -> Self {
        debug_assert!(watts.is_finite() && watts > 0.0);
        Self { watts }
    }

    /// The declared power, in watts.
    pub fn watts(&self) -> f64 {
        self.watts
    }

    /// Energy over a window of `window_s` seconds, in joules: W × window.
    pub fn energy_j(&self, window_s: f64) -> f64 {
        self.watts * window_s
    }
}

impl PowerSource for DeclaredSource {
    fn name(&self) -> &'static str {
        "declared"
    }

    /// What a declared figure covers is the user's to say; tokbench cannot tell.
    fn scope(&self) -> Scope {
        Scope::Other
    }

    fn provenance(&self) -> Provenance {
        Provenance::Declared
    }

    fn describe(&self) -> String {
        format!("declared constant {} W (--watts)", self.watts)
    }

    fn read(&self) -> anyhow::Result<Reading> {
        Ok(Reading {
            scope: Scope::Other,
            provenance: Provenance::Declared,
            value: ReadingValue::Power { watts: self.watts },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_watts_times_window() {
        let d = DeclaredSource::new(65.0);
        assert_eq!(d.energy_j(2.5), 162.5);
        assert_eq!(d.read().unwrap().watts().unwrap(), 65.0);
        assert_eq!(d.provenance(), Provenance::Declared);
    }
}
