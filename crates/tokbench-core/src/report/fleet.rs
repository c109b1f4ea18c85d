//! The fleet view: nodes with the same adapter and driver should perform alike, so each group's
//! spread is summarised and nodes far below their group are flagged as slow.
//!
//! A node is slow when it is more than [`MADS`] median absolute deviations (MAD) on the bad side
//! of its group's median. The MAD is floored at [`MAD_FLOOR`] of the median: in a group of
//! nearly identical nodes it is close to 0, and a node 0.1% off would otherwise be flagged.

use serde::Serialize;

use crate::stats::{median, quantile_sorted};

/// Median absolute deviations beyond which a node is an outlier.
pub const MADS: f64 = 3.0;
/// Smallest MAD used, as a share of the median.
pub const MAD_FLOOR: f64 = 0.01;
/// Fewest nodes a group needs before any of them is flagged.
pub const MIN_NODES: usize = 3;

/// A group's summary over one workload's metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetStats {
    /// Nodes (results) in the group.
    pub nodes: usize,
    /// Median of the metric.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// (p90 − p10) / median.
    pub spread: f64,
    /// Median absolute deviation from the median.
    pub mad: f64,
    /// A node beyond this value (below it, or above it for a cost) is slow; null with fewer
    /// than three nodes.
    pub slow_limit: Option<f64>,
}

impl FleetStats {
    /// The summary of `values`, where `higher_is_better` says which side is slow. `values` must
    /// be non-empty.
    pub fn of(values: &[f64], higher_is_better: bool) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let med = quantile_sorted(&sorted, 0.5);
        let deviations: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
        let mad = median(&deviations);
        let (p10, p90) = (quantile_sorted(&sorted, 0.1), quantile_sorted(&sorted, 0.9));
        let reach = MADS * mad.max(MAD_FLOOR * med.abs());
        let limit = if higher_is_better {
            med - reach
        } else {
            med + reach
        };
        let slow_limit = (values.len() >= MIN_NODES).then_some(limit);
        Self {
            nodes: values.len(),
            median: med,
            p10,
            p90,
            spread: if med > 0.0 { (p90 - p10) / med } else { 0.0 },
            mad,
            slow_limit,
        }
    }

    /// True when `value` lies beyond the slow limit.
    pub fn is_slow(&self, value: f64, higher_is_better: bool) -> bool {
        match self.slow_limit {
            Some(limit) if higher_is_better => value < limit,
            Some(limit) => value > limit,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_far_below_its_group_is_slow() {
        let values = [100.0, 101.0, 99.0, 100.5, 99.5, 80.0];
        let s = FleetStats::of(&values, true);
        assert_eq!(s.median, 99.75);
        assert_eq!(s.mad, 0.75);
        // MAD floored at 1% of the median: limit 99.75 - 3 * 0.9975.
        assert!((s.slow_limit.unwrap() - 96.7575).abs() < 1e-9);
        let slow: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| s.is_slow(*v, true))
            .collect();
        assert_eq!(slow, [80.0]);
    }

    #[test]
    fn a_wide_group_flags_nobody_and_costs_are_slow_above() {
        let wide = [60.0, 80.0, 100.0, 120.0, 140.0];
        let s = FleetStats::of(&wide, true);
        assert!(wide.iter().all(|v| !s.is_slow(*v, true)));
        assert!((s.spread - (132.0 - 68.0) / 100.0).abs() < 1e-12);
        let costs = FleetStats::of(&[1.0, 1.0, 1.0, 2.0], false);
        assert!(costs.is_slow(2.0, false) && !costs.is_slow(1.0, false));
    }

    #[test]
    fn two_nodes_are_too_few_to_call_one_slow() {
        let s = FleetStats::of(&[100.0, 10.0], true);
        assert_eq!(s.slow_limit, None);
        assert!(!s.is_slow(10.0, true));
    }
}
