//! `--watts W`: a constant power the user declares. Not a measurement: its provenance is
//! `declared`, and a window's energy is W × window exactly.

use super::source::SourceInfo;
use crate::result::Scope;

/// Constant declared power.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredSource {
    watts: f64,
    scope: Scope,
}

impl DeclaredSource {
    /// `watts` must be positive and finite ([`super::PowerOptions::validate`] checks it);
    /// `scope` is what the user says the figure covers (`--power-scope`).
    pub fn new(watts: f64, scope: Scope) -> Self {
        debug_assert!(watts.is_finite() && watts > 0.0);
        Self { watts, scope }
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

impl SourceInfo for DeclaredSource {
    fn name(&self) -> &'static str {
        "declared"
    }

    /// What a declared figure covers is the user's to say (`--power-scope`); tokbench
    /// cannot tell.
    fn scope(&self) -> Scope {
        self.scope
    }

    fn describe(&self) -> String {
        format!("declared constant {} W (--watts)", self.watts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_watts_times_window() {
        let d = DeclaredSource::new(65.0, Scope::NodeWall);
        assert_eq!(d.scope(), Scope::NodeWall);
        assert_eq!(d.energy_j(2.5), 162.5);
        assert_eq!(d.watts(), 65.0);
        assert_eq!(d.name(), "declared");
    }
}
