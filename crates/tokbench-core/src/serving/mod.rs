//! Serving figures without a device: the continuous-batching schedule ([`schedule`]), the
//! per-point latency and throughput figures, SLOs and goodput, the Pareto frontier and
//! throughput at an interactivity. `tokbench serve` executes the schedule on the GPU and calls
//! these; `compare` reads their results.

pub mod schedule;
pub mod slo;

use crate::result::{EstimateGap, Goodput, Percentiles, PointSource, ServingPoint, Slo};
use crate::stats::quantile_sorted;
use schedule::Schedule;

/// Input and output lengths of a named scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Name used by `--scenario`.
    pub name: &'static str,
    /// Prompt tokens.
    pub isl: u32,
    /// Output tokens.
    pub osl: u32,
    /// What it stands for.
    pub description: &'static str,
}

/// The named scenarios, with the lengths SemiAnalysis InferenceX and MLPerf use.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "chat",
        isl: 1024,
        osl: 1024,
        description: "chat: 1k prompt, 1k answer (InferenceX 1k/1k)",
    },
    Scenario {
        name: "reasoning",
        isl: 1024,
        osl: 8192,
        description: "reasoning: 1k prompt, 8k of thinking and answer (InferenceX 1k/8k)",
    },
    Scenario {
        name: "summarize",
        isl: 8192,
        osl: 1024,
        description: "summarisation: 8k document, 1k summary (InferenceX 8k/1k)",
    },
];

/// The scenario named `name`; the error lists the names.
pub fn scenario(name: &str) -> Result<Scenario, crate::InputError> {
    SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            crate::InputError::new(format!(
                "--scenario {name:?} is unknown: use {}, or --isl and --osl",
                names.join(", ")
            ))
        })
}

/// Percentiles of `values`; `None` when empty.
pub fn percentiles(values: &[f64]) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Percentiles {
        p50_s: quantile_sorted(&sorted, 0.5),
        p90_s: quantile_sorted(&sorted, 0.9),
        p99_s: quantile_sorted(&sorted, 0.99),
        mean_s: sorted.iter().sum::<f64>() / sorted.len() as f64,
        count: sorted.len() as u64,
    })
}

/// The figures of a finished schedule (power left null; the engine fills it in). Per GPU: one
/// GPU.
pub fn point(concurrency: u32, source: PointSource, s: &Schedule) -> ServingPoint {
    let ttft: Vec<f64> = s
        .requests
        .iter()
        .filter_map(|r| r.token_times_s.first().map(|t| t - r.admitted_s))
        .collect();
    let done: Vec<_> = s.requests.iter().filter(|r| r.finished).collect();
    let tpot: Vec<f64> = done
        .iter()
        .filter(|r| r.token_times_s.len() > 1)
        .map(|r| {
            let t = &r.token_times_s;
            (t[t.len() - 1] - t[0]) / (t.len() - 1) as f64
        })
        .collect();
    let itl: Vec<f64> = s
        .requests
        .iter()
        .flat_map(|r| r.token_times_s.windows(2).map(|w| w[1] - w[0]))
        .collect();
    let e2e: Vec<f64> = done
        .iter()
        .map(|r| r.token_times_s.last().expect("finished") - r.admitted_s)
        .collect();
    let (start, end, whole) = s.steady_window();
    let window = end - start;
    let output_in_window = s.tokens_between(start, end);
    // Prompt tokens in the window: every request pays isl, spread over its prefill; counting
    // them by the share of the point's time is exact enough for a rate and needs no per-step
    // log.
    let prompt_in_window = if s.clock_s > 0.0 {
        s.prompt_tokens as f64 * window / s.clock_s
    } else {
        0.0
    };
    let rate = |n: f64| if window > 0.0 { n / window } else { 0.0 };
    let tpot_p = percentiles(&tpot);
    // Without a completed request, the inter-token gaps stand in for TPOT.
    let per_token = tpot_p.or(percentiles(&itl)).map(|p| p.p50_s);
    ServingPoint {
        concurrency,
        source,
        requests_completed: s.completed(),
        steps: s.steps,
        duration_s: s.clock_s,
        output_tokens: s.output_tokens(),
        prompt_tokens: s.prompt_tokens,
        steady_window_s: window,
        steady_window_is_whole_point: whole,
        output_tokens_per_s_per_gpu: rate(output_in_window as f64),
        total_tokens_per_s_per_gpu: rate(output_in_window as f64 + prompt_in_window),
        run_output_tokens_per_s: if s.clock_s > 0.0 {
            s.output_tokens() as f64 / s.clock_s
        } else {
            0.0
        },
        tokens_per_s_per_user: per_token.map_or(0.0, |t| if t > 0.0 { 1.0 / t } else { 0.0 }),
        ttft: percentiles(&ttft),
        tpot: tpot_p,
        itl: percentiles(&itl),
        e2e: percentiles(&e2e),
        power: None,
        avg_power_w: None,
        energy_per_output_token_j: None,
        energy_per_total_token_j: None,
        output_tokens_per_j: None,
        meets_slo: None,
    }
}

/// Fills in the energy figures of `p` from the average power over its steady window.
pub fn with_power(p: &mut ServingPoint, avg_power_w: Option<f64>) {
    p.avg_power_w = avg_power_w;
    let per = |rate: f64| avg_power_w.filter(|_| rate > 0.0).map(|w| w / rate);
    p.energy_per_output_token_j = per(p.output_tokens_per_s_per_gpu);
    p.energy_per_total_token_j = per(p.total_tokens_per_s_per_gpu);
    p.output_tokens_per_j = p.energy_per_output_token_j.map(|j| 1.0 / j);
}

/// Whether `p` meets `slo` at p99 (a point without the needed percentile does not).
pub fn meets(p: &ServingPoint, slo: &Slo) -> bool {
    let ok = |limit: Option<f64>, got: Option<Percentiles>| {
        limit.is_none_or(|l| got.is_some_and(|g| g.p99_s <= l))
    };
    ok(slo.ttft_s, p.ttft) && ok(slo.tpot_s, p.tpot)
}

/// The highest executed concurrency whose p99s meet `slo`, with its throughput.
pub fn goodput(points: &[ServingPoint], slo: &Slo) -> Option<Goodput> {
    points
        .iter()
        .filter(|p| p.source == PointSource::Executed && meets(p, slo))
        .max_by_key(|p| p.concurrency)
        .map(|p| Goodput {
            concurrency: p.concurrency,
            output_tokens_per_s_per_gpu: p.output_tokens_per_s_per_gpu,
            tokens_per_s_per_user: p.tokens_per_s_per_user,
        })
}

/// Indices of the points on the Pareto frontier of (tokens/s per user, output tokens/s per
/// GPU): those no other point beats in one and matches in the other. Sorted by interactivity.
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut on: Vec<usize> = (0..points.len())
        .filter(|&i| {
            let (x, y) = points[i];
            !points
                .iter()
                .any(|&(a, b)| a >= x && b >= y && (a > x || b > y))
        })
        .collect();
    on.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0));
    on.dedup_by(|a, b| points[*a] == points[*b]);
    on
}

/// Throughput per GPU at interactivity `at` (tokens/s per user) on the frontier of `points`
/// ((interactivity, throughput) pairs): the best throughput of any point at least that
/// interactive, interpolated linearly between the frontier points around `at`; `None` when no
/// point reaches `at`.
pub fn throughput_at(points: &[(f64, f64)], at: f64) -> Option<f64> {
    let f: Vec<(f64, f64)> = frontier(points).iter().map(|&i| points[i]).collect();
    let last = f.last()?;
    if at > last.0 {
        return None;
    }
    // The first frontier point at least as interactive as asked.
    let i = f.iter().position(|&(x, _)| x >= at)?;
    if i == 0 || f[i].0 == at {
        return Some(f[i].1);
    }
    let ((x0, y0), (x1, y1)) = (f[i - 1], f[i]);
    Some(y0 + (y1 - y0) * (at - x0) / (x1 - x0))
}

/// Executed against estimated throughput at every concurrency that has both.
pub fn estimate_gaps(points: &[ServingPoint]) -> Vec<EstimateGap> {
    points
        .iter()
        .filter(|p| p.source == PointSource::Executed && p.output_tokens_per_s_per_gpu > 0.0)
        .filter_map(|e| {
            let est = points
                .iter()
                .find(|p| p.source == PointSource::Estimated && p.concurrency == e.concurrency)?;
            Some(EstimateGap {
                concurrency: e.concurrency,
                executed_tokens_per_s: e.output_tokens_per_s_per_gpu,
                estimated_tokens_per_s: est.output_tokens_per_s_per_gpu,
                relative_gap: (est.output_tokens_per_s_per_gpu - e.output_tokens_per_s_per_gpu)
                    / e.output_tokens_per_s_per_gpu,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::schedule::{Limit, Schedule};
    use super::*;

    #[test]
    fn percentiles_interpolate_and_an_empty_list_has_none() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        let p = percentiles(&v).unwrap();
        assert_eq!(
            (p.p50_s, p.p90_s, p.p99_s, p.count),
            (51.0, 91.0, 100.0, 101)
        );
        assert_eq!(p.mean_s, 51.0);
        assert!(percentiles(&[]).is_none());
    }

    #[test]
    fn a_point_of_one_slot_has_the_latencies_of_its_steps() {
        // isl 4 in one chunk (2 s), then decode steps of 1 s: TTFT 2 s, TPOT 1 s.
        let mut s = Schedule::new(1, 4, 5, 8, Limit::Requests(3));
        while let Some(plan) = s.plan() {
            s.complete(if plan.chunk.is_some() { 2.0 } else { 1.0 });
        }
        let p = point(1, PointSource::Executed, &s);
        assert_eq!(p.requests_completed, 3);
        assert_eq!(p.ttft.unwrap().p99_s, 2.0);
        assert_eq!(p.tpot.unwrap().p50_s, 1.0);
        assert_eq!(p.e2e.unwrap().p50_s, 6.0);
        assert_eq!(p.itl.unwrap().count, 12);
        assert_eq!(p.tokens_per_s_per_user, 1.0);
        assert_eq!(p.output_tokens, 15);
        // One slot: all busy from the start; the first drain is the last request's end.
        assert!(!p.steady_window_is_whole_point);
        assert_eq!(p.steady_window_s, 18.0);
        assert!((p.output_tokens_per_s_per_gpu - 15.0 / 18.0).abs() < 1e-12);
        let mut q = p.clone();
        with_power(&mut q, Some(10.0));
        assert!((q.energy_per_output_token_j.unwrap() - 12.0).abs() < 1e-9);
        with_power(&mut q, None);
        assert!(q.output_tokens_per_j.is_none());
    }

    #[test]
    fn frontier_drops_dominated_points_and_interpolates_between_the_others() {
        // (tok/s/user, tok/s/gpu): c=1 (50, 50), c=4 (40, 160), c=8 (20, 160) dominated by
        // c=4, c=16 (10, 200).
        let pts = [(50.0, 50.0), (40.0, 160.0), (20.0, 160.0), (10.0, 200.0)];
        assert_eq!(frontier(&pts), [3, 1, 0]);
        assert_eq!(throughput_at(&pts, 40.0), Some(160.0));
        assert_eq!(throughput_at(&pts, 45.0), Some(105.0));
        assert_eq!(throughput_at(&pts, 5.0), Some(200.0));
        assert_eq!(
            throughput_at(&pts, 25.0),
            Some(160.0 + (200.0 - 160.0) * 15.0 / 30.0)
        );
        assert_eq!(throughput_at(&pts, 60.0), None);
    }

    fn executed(c: u32, ttft_p99: f64, tpot_p99: f64, tput: f64) -> ServingPoint {
        let mut s = Schedule::new(1, 1, 1, 1, Limit::Requests(1));
        s.plan();
        s.complete(1.0);
        let mut p = point(c, PointSource::Executed, &s);
        let pct = |v| Percentiles {
            p50_s: v,
            p90_s: v,
            p99_s: v,
            mean_s: v,
            count: 1,
        };
        p.ttft = Some(pct(ttft_p99));
        p.tpot = Some(pct(tpot_p99));
        p.output_tokens_per_s_per_gpu = tput;
        p
    }

    #[test]
    fn goodput_is_the_highest_concurrency_meeting_both_p99s() {
        let slo = slo::parse("ttft=2000ms,tpot=100ms").unwrap();
        let pts = [
            executed(1, 0.5, 0.05, 20.0),
            executed(4, 1.5, 0.09, 70.0),
            executed(16, 3.0, 0.2, 150.0),
        ];
        let g = goodput(&pts, &slo).unwrap();
        assert_eq!((g.concurrency, g.output_tokens_per_s_per_gpu), (4, 70.0));
        assert!(!meets(&pts[2], &slo));
        let strict = slo::parse("tpot=10ms").unwrap();
        assert!(goodput(&pts, &strict).is_none());
    }

    #[test]
    fn gaps_pair_executed_and_estimated_points_of_one_concurrency() {
        let e = executed(4, 1.0, 0.1, 100.0);
        let mut est = executed(4, 1.0, 0.1, 110.0);
        est.source = PointSource::Estimated;
        let gaps = estimate_gaps(&[e, est, executed(8, 1.0, 0.1, 50.0)]);
        assert_eq!(gaps.len(), 1);
        assert!((gaps[0].relative_gap - 0.1).abs() < 1e-12);
    }

    #[test]
    fn scenarios_have_their_lengths_and_unknown_names_are_refused() {
        assert_eq!(scenario("summarize").unwrap().isl, 8192);
        let err = scenario("poetry").unwrap_err().to_string();
        assert!(err.contains("chat, reasoning, summarize"), "{err}");
    }
}
