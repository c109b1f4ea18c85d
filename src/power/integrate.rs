//! The arithmetic of energy, kept pure so it is tested on its own: trapezoid integration of a
//! power trace over a window, and the delta of energy counters (with wraparound).

use super::source::CounterSnapshot;

/// One power sample: time in seconds (any origin, the window uses the same) and watts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    /// Time of the sample, in seconds.
    pub t_s: f64,
    /// Power at that time, in watts.
    pub power_w: f64,
}

/// Energy of a trace over a window, with how well the samples cover it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Integral {
    /// Energy over the window, in joules.
    pub energy_j: f64,
    /// Samples taken inside the window (edges included).
    pub samples: u64,
    /// Share of the window between the first and the last sample, 0 to 1.
    pub coverage: f64,
    /// Longest stretch of the window without a sample, in seconds: between consecutive samples,
    /// or between a window edge and the nearest sample where none lies beyond that edge.
    pub max_gap_s: f64,
}

/// Integrates `trace` (sorted by time) over `[start_s, end_s]` with the trapezoid rule.
///
/// Power between samples is linear; at the window edges it is interpolated between the samples
/// either side, so a window that starts or ends between samples gets exactly its share. Beyond
/// the first or last sample the nearest value is held (and `coverage` drops below 1).
/// `None` for an empty trace or a window of no length.
pub fn integrate_window(trace: &[TracePoint], start_s: f64, end_s: f64) -> Option<Integral> {
    // A window of no length has no power to report, and a NaN edge must not slip through.
    if trace.is_empty() || end_s.partial_cmp(&start_s) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    debug_assert!(
        trace.windows(2).all(|w| w[0].t_s <= w[1].t_s),
        "trace sorted"
    );
    let inside = |p: &&TracePoint| p.t_s > start_s && p.t_s < end_s;

    // Breakpoints: the edges plus every sample strictly inside; linear in between.
    let mut energy_j = 0.0;
    let mut prev_t = start_s;
    let mut prev_w = power_at(trace, start_s);
    for p in trace.iter().filter(inside) {
        energy_j += 0.5 * (prev_w + p.power_w) * (p.t_s - prev_t);
        prev_t = p.t_s;
        prev_w = p.power_w;
    }
    energy_j += 0.5 * (prev_w + power_at(trace, end_s)) * (end_s - prev_t);

    let first = trace[0].t_s;
    let last = trace[trace.len() - 1].t_s;
    let window = end_s - start_s;
    let covered = (last.min(end_s) - first.max(start_s)).max(0.0);

    // Gaps between the samples that shape the window: the last at or before the start, those
    // inside, the first at or after the end; a missing bracket is replaced by the window edge.
    let mut times: Vec<f64> = Vec::new();
    times.push(
        trace
            .iter()
            .rev()
            .find(|p| p.t_s <= start_s)
            .map_or(start_s, |p| p.t_s),
    );
    times.extend(trace.iter().filter(inside).map(|p| p.t_s));
    times.push(
        trace
            .iter()
            .find(|p| p.t_s >= end_s)
            .map_or(end_s, |p| p.t_s),
    );
    let max_gap_s = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);

    Some(Integral {
        energy_j,
        samples: trace
            .iter()
            .filter(|p| p.t_s >= start_s && p.t_s <= end_s)
            .count() as u64,
        coverage: (covered / window).clamp(0.0, 1.0),
        max_gap_s,
    })
}

/// Power at `t`: linear between the samples around it, the nearest sample's beyond the ends.
fn power_at(trace: &[TracePoint], t: f64) -> f64 {
    let i = trace.partition_point(|p| p.t_s <= t);
    if i == 0 {
        return trace[0].power_w;
    }
    if i == trace.len() {
        return trace[i - 1].power_w;
    }
    let (a, b) = (trace[i - 1], trace[i]);
    let span = b.t_s - a.t_s;
    if span <= 0.0 {
        return 0.5 * (a.power_w + b.power_w);
    }
    a.power_w + (b.power_w - a.power_w) * (t - a.t_s) / span
}

/// Why two counter snapshots give no energy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CounterFault {
    /// A counter that does not wrap went backwards: it was reset (driver reload), so the
    /// window's energy is unknown.
    #[error(
        "energy counter went backwards ({from} -> {to}): it was reset (driver reload?), so \
         this window's energy is unknown"
    )]
    Backwards {
        /// Zone index.
        zone: usize,
        /// Value at the window's start.
        from: u64,
        /// Value at the window's end.
        to: u64,
    },
    /// The set of zones changed between the reads (a package went away).
    #[error("the energy counters changed between reads ({before} zones, then {after})")]
    ZonesChanged {
        /// Zones at the start.
        before: usize,
        /// Zones at the end.
        after: usize,
    },
}

/// Energy between two snapshots of the same counters, in joules, summed over zones.
///
/// A counter with a wrap value that went backwards wrapped once: `wrap_at - from + to`. (Two
/// wraps between the reads cannot be told apart from one, so counters are read several times per
/// wrap period and the deltas summed: see `power::counter`.) A counter without one was reset:
/// that is a [`CounterFault::Backwards`], not a wrap.
pub fn counter_delta_j(
    start: &CounterSnapshot,
    end: &CounterSnapshot,
) -> Result<f64, CounterFault> {
    if start.zones.len() != end.zones.len() {
        return Err(CounterFault::ZonesChanged {
            before: start.zones.len(),
            after: end.zones.len(),
        });
    }
    let mut units: u128 = 0;
    for (zone, (a, b)) in start.zones.iter().zip(&end.zones).enumerate() {
        let delta = if b.raw >= a.raw {
            b.raw - a.raw
        } else {
            match b.wrap_at.or(a.wrap_at) {
                Some(range) if a.raw <= range => range - a.raw + b.raw,
                _ => {
                    return Err(CounterFault::Backwards {
                        zone,
                        from: a.raw,
                        to: b.raw,
                    });
                }
            }
        };
        units += u128::from(delta);
    }
    Ok(units as f64 * end.unit_j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::ZoneCount;
    use proptest::prelude::*;

    /// Samples `f` at `hz` from `t0` to `t1` (both included when they fall on the grid).
    fn sample(f: impl Fn(f64) -> f64, t0: f64, t1: f64, hz: f64) -> Vec<TracePoint> {
        let n = ((t1 - t0) * hz).round() as usize;
        (0..=n)
            .map(|i| {
                let t = t0 + i as f64 / hz;
                TracePoint {
                    t_s: t,
                    power_w: f(t),
                }
            })
            .collect()
    }

    fn within(actual: f64, expected: f64, rel: f64) -> bool {
        (actual - expected).abs() <= rel * expected.abs()
    }

    /// Asserts the window's energy is `expected` J within `rel`.
    fn assert_energy(i: &Integral, expected: f64, rel: f64) {
        assert!(
            within(i.energy_j, expected, rel),
            "{} vs {expected}",
            i.energy_j
        );
    }

    #[test]
    fn constant_power_integrates_to_power_times_window() {
        let trace = sample(|_| 100.0, -0.1, 10.1, 10.0);
        let i = integrate_window(&trace, 0.0, 10.0).unwrap();
        assert!(within(i.energy_j, 1000.0, 1e-12), "{i:?}");
        assert_eq!(i.coverage, 1.0);
        assert!(within(i.max_gap_s, 0.1, 1e-9), "{i:?}");
        assert_eq!(i.samples, 101);
    }

    #[test]
    fn a_ramp_integrates_exactly_even_with_edges_between_samples() {
        // 0 W at t = 0 to 200 W at t = 10: the window [0.03, 9.97] holds
        // ∫ 20 t dt = 10 (9.97² − 0.03²).
        let trace = sample(|t| 20.0 * t, -0.5, 10.5, 10.0);
        let i = integrate_window(&trace, 0.03, 9.97).unwrap();
        let expected = 10.0 * (9.97f64.powi(2) - 0.03f64.powi(2));
        assert_energy(&i, expected, 1e-9);
    }

    #[test]
    fn a_square_wave_integrates_within_one_percent() {
        // 50 W and 150 W alternating every second; samples at 10 Hz, off the edges.
        let square = |t: f64| {
            if (t.floor() as i64) % 2 == 0 {
                50.0
            } else {
                150.0
            }
        };
        let trace = sample(square, 0.037, 20.037, 10.0);
        let i = integrate_window(&trace, 0.5, 19.5).unwrap();
        // 0.5..1 at 50 W, 1..19 nine periods of 150 W + 50 W, 19..19.5 at 150 W.
        let expected = 0.5 * 50.0 + 9.0 * (150.0 + 50.0) + 0.5 * 150.0;
        assert_energy(&i, expected, 0.01);
    }

    #[test]
    fn jittered_sample_times_still_integrate_a_smooth_trace() {
        // 100 + 50 sin(t) W over [0, 10]: ∫ = 1000 + 50 (1 − cos 10).
        let f = |t: f64| 100.0 + 50.0 * t.sin();
        let trace: Vec<TracePoint> = (0..=104)
            .map(|i| {
                let t = -0.2 + i as f64 * 0.1 + 0.03 * ((i * 7919) % 13) as f64 / 13.0;
                TracePoint {
                    t_s: t,
                    power_w: f(t),
                }
            })
            .collect();
        let i = integrate_window(&trace, 0.0, 10.0).unwrap();
        let expected = 1000.0 + 50.0 * (1.0 - 10f64.cos());
        assert_energy(&i, expected, 0.01);
    }

    #[test]
    fn window_between_two_samples_is_interpolated() {
        let trace = [
            TracePoint {
                t_s: 0.0,
                power_w: 100.0,
            },
            TracePoint {
                t_s: 1.0,
                power_w: 200.0,
            },
        ];
        let i = integrate_window(&trace, 0.25, 0.75).unwrap();
        assert!(within(i.energy_j, 0.5 * 150.0, 1e-12));
        assert_eq!(i.samples, 0);
        assert_eq!(i.coverage, 1.0);
        assert_eq!(i.max_gap_s, 1.0);
    }

    #[test]
    fn samples_inside_only_hold_the_edges_and_report_partial_coverage() {
        let trace = [
            TracePoint {
                t_s: 2.0,
                power_w: 10.0,
            },
            TracePoint {
                t_s: 6.0,
                power_w: 10.0,
            },
        ];
        let i = integrate_window(&trace, 0.0, 10.0).unwrap();
        assert!(within(i.energy_j, 100.0, 1e-12));
        assert!(within(i.coverage, 0.4, 1e-12), "{i:?}");
        assert!(within(i.max_gap_s, 4.0, 1e-12), "{i:?}");
        assert_eq!(i.samples, 2);
    }

    #[test]
    fn empty_traces_and_empty_windows_give_nothing() {
        assert!(integrate_window(&[], 0.0, 1.0).is_none());
        let one = [TracePoint {
            t_s: 0.0,
            power_w: 5.0,
        }];
        assert!(integrate_window(&one, 1.0, 1.0).is_none());
        assert!(integrate_window(&one, 1.0, f64::NAN).is_none());
        let i = integrate_window(&one, 0.0, 2.0).unwrap();
        assert!(within(i.energy_j, 10.0, 1e-12));
    }

    proptest! {
        #[test]
        fn constant_power_is_exact_for_any_sample_times(
            mut times in proptest::collection::vec(-1.0f64..11.0, 1..50),
            watts in 0.1f64..1000.0,
            start in 0.0f64..5.0,
            len in 0.01f64..5.0,
        ) {
            times.sort_by(f64::total_cmp);
            let trace: Vec<TracePoint> =
                times.iter().map(|&t| TracePoint { t_s: t, power_w: watts }).collect();
            let i = integrate_window(&trace, start, start + len).unwrap();
            prop_assert!(within(i.energy_j, watts * len, 1e-9));
            prop_assert!((0.0..=1.0).contains(&i.coverage));
            prop_assert!(i.max_gap_s >= 0.0);
        }
    }

    fn snap(unit_j: f64, zones: &[(u64, Option<u64>)]) -> CounterSnapshot {
        CounterSnapshot {
            unit_j,
            zones: zones
                .iter()
                .map(|&(raw, wrap_at)| ZoneCount { raw, wrap_at })
                .collect(),
        }
    }

    #[test]
    fn counter_deltas_sum_zones_and_scale_to_joules() {
        let a = snap(
            1e-6,
            &[(1_000_000, Some(u64::MAX)), (5_000_000, Some(u64::MAX))],
        );
        let b = snap(
            1e-6,
            &[(3_000_000, Some(u64::MAX)), (6_000_000, Some(u64::MAX))],
        );
        assert!(within(counter_delta_j(&a, &b).unwrap(), 3.0, 1e-12));
        let a = snap(1e-3, &[(10_000, None)]);
        let b = snap(1e-3, &[(25_000, None)]);
        assert!(within(counter_delta_j(&a, &b).unwrap(), 15.0, 1e-12));
    }

    #[test]
    fn a_wrapping_counter_wraps_once() {
        // Range 262143328850 µJ (a real RAPL package); 1 J before the top, 2 J after 0.
        let range = 262_143_328_850;
        let a = snap(1e-6, &[(range - 1_000_000, Some(range))]);
        let b = snap(1e-6, &[(2_000_000, Some(range))]);
        assert!(within(counter_delta_j(&a, &b).unwrap(), 3.0, 1e-12));
    }

    #[test]
    fn a_counter_without_wrap_going_backwards_is_a_fault() {
        let a = snap(1e-3, &[(50_000, None)]);
        let b = snap(1e-3, &[(100, None)]);
        let err = counter_delta_j(&a, &b).unwrap_err();
        assert!(matches!(err, CounterFault::Backwards { zone: 0, .. }));
        assert!(err.to_string().contains("backwards"), "{err}");
        let c = snap(1e-3, &[(1, None), (2, None)]);
        assert!(matches!(
            counter_delta_j(&a, &c),
            Err(CounterFault::ZonesChanged {
                before: 1,
                after: 2
            })
        ));
    }
}
