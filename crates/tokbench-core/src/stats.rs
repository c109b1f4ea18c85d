//! Statistics over duration samples: summaries (of one measurement, or of repetitions), a
//! distribution-free confidence interval of the median, a bootstrap interval of the ratio of two
//! sample sets' medians, and a rank-based (Hodges–Lehmann / Mann–Whitney) interval of the ratio
//! of two small sets of repetition medians (both used by `tokbench check`). Pure functions, no
//! GPU.

use crate::result::Stats;

/// Two-sided 95% normal quantile.
const Z95: f64 = 1.959_963_984_540_054;

/// Summarises `samples` (seconds). `samples` must be non-empty and finite.
pub fn summarize(samples: &[f64], warmup_iterations: u32) -> Stats {
    assert!(!samples.is_empty(), "summarize needs at least one sample");
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let variance = if sorted.len() > 1 {
        sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let stddev = variance.sqrt();
    let (ci_low, ci_high) = median_ci95(&sorted);
    Stats {
        median_s: quantile_sorted(&sorted, 0.5),
        mean_s: mean,
        stddev_s: stddev,
        min_s: sorted[0],
        max_s: sorted[sorted.len() - 1],
        p10_s: quantile_sorted(&sorted, 0.1),
        p90_s: quantile_sorted(&sorted, 0.9),
        cv: if mean > 0.0 { stddev / mean } else { 0.0 },
        ci95_low_s: ci_low,
        ci95_high_s: ci_high,
        warmup_iterations,
        samples_s: samples.to_vec(),
    }
}

/// Summarises the samples of several repetitions of one workload (each non-empty): the headline
/// median is the median of the repetitions' medians, and its interval is the distribution-free
/// interval of those medians, so it holds run-to-run variance; every other figure is over all
/// samples pooled in the order taken. With one repetition this is [`summarize`].
pub fn summarize_repetitions(repetitions: &[Vec<f64>], warmup_iterations: u32) -> Stats {
    let pooled: Vec<f64> = repetitions.iter().flatten().copied().collect();
    let mut stats = summarize(&pooled, warmup_iterations);
    if repetitions.len() > 1 {
        let mut medians: Vec<f64> = repetitions.iter().map(|r| median(r)).collect();
        medians.sort_by(f64::total_cmp);
        stats.median_s = quantile_sorted(&medians, 0.5);
        (stats.ci95_low_s, stats.ci95_high_s) = median_ci95(&medians);
    }
    stats
}

/// Quantile `q` in [0, 1] of ascending `sorted`, linearly interpolated between order statistics.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median of unsorted values.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, 0.5)
}

/// A bootstrap confidence interval of the ratio of two medians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioInterval {
    /// median(current) / median(baseline) of the samples themselves.
    pub point: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// The `level` (for example 0.95) bootstrap interval of median(`current`) / median(`baseline`):
/// both sample sets are resampled with replacement `resamples` times, and the interval is the
/// percentiles of the resampled ratios. Seeded, so the same inputs always give the same interval.
/// Both slices must be non-empty.
pub fn bootstrap_median_ratio(
    baseline: &[f64],
    current: &[f64],
    resamples: usize,
    level: f64,
    seed: u64,
) -> RatioInterval {
    assert!(!baseline.is_empty() && !current.is_empty() && resamples > 0);
    let mut rng = SplitMix64::new(seed);
    let mut resampled_median = |from: &[f64], buf: &mut Vec<f64>| {
        buf.clear();
        buf.extend((0..from.len()).map(|_| from[rng.below(from.len())]));
        buf.sort_by(f64::total_cmp);
        quantile_sorted(buf, 0.5)
    };
    let (mut a, mut b) = (
        Vec::with_capacity(baseline.len()),
        Vec::with_capacity(current.len()),
    );
    let mut ratios: Vec<f64> = (0..resamples)
        .map(|_| {
            let base = resampled_median(baseline, &mut a);
            resampled_median(current, &mut b) / base
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    RatioInterval {
        point: median(current) / median(baseline),
        low: quantile_sorted(&ratios, tail),
        high: quantile_sorted(&ratios, 1.0 - tail),
    }
}

/// A rank-based interval of a ratio, with the confidence it actually has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankInterval {
    /// The ratio and its interval.
    pub ratio: RatioInterval,
    /// The interval's exact confidence: at most the level asked for when enough values allow
    /// it, less when they do not (3 against 3 reach 90% at most).
    pub confidence: f64,
}

/// The Hodges–Lehmann estimate of current / baseline with its exact Mann–Whitney (Moses)
/// confidence interval, for small sets of positive values such as repetition medians.
///
/// On log values, every difference ln(current_j) − ln(baseline_i) is formed; the point is
/// their median, and the interval runs from the k-th smallest to the k-th largest, with k the
/// largest rank whose tail probability under the Mann–Whitney null distribution (exact for up
/// to 2500 pairs, normal beyond) stays within (1 − `level`) / 2. It assumes only that the two
/// sets differ by a factor (a shift of the logs), not any distribution, and it is exact for a
/// handful of values, where a bootstrap can only reshuffle the few values it has and comes out
/// too narrow. When even the full range is short of `level`, the full range is returned with
/// its lower confidence. Both slices must be non-empty and positive.
pub fn rank_ratio_interval(baseline: &[f64], current: &[f64], level: f64) -> RankInterval {
    assert!(!baseline.is_empty() && !current.is_empty());
    let mut d: Vec<f64> = current
        .iter()
        .flat_map(|c| baseline.iter().map(move |b| c.ln() - b.ln()))
        .collect();
    d.sort_by(f64::total_cmp);
    let tails = mann_whitney_lower_tail(baseline.len(), current.len());
    let alpha_half = (1.0 - level) / 2.0;
    // tails[u] = P(U ≤ u); the interval [d_(k), d_(mn+1−k)] has confidence 1 − 2·P(U ≤ k − 1).
    let k = tails
        .iter()
        .take_while(|&&p| p <= alpha_half)
        .count()
        .max(1);
    let confidence = 1.0 - 2.0 * tails[k - 1];
    RankInterval {
        ratio: RatioInterval {
            point: quantile_sorted(&d, 0.5).exp(),
            low: d[k - 1].exp(),
            high: d[d.len() - k].exp(),
        },
        confidence,
    }
}

/// P(U ≤ u) for u in 0..=m·n/2 under the Mann–Whitney null distribution of sizes `m` and `n`:
/// exact (counting the rank sums of m-subsets) up to 2500 pairs, normal with continuity
/// correction beyond.
fn mann_whitney_lower_tail(m: usize, n: usize) -> Vec<f64> {
    let pairs = m * n;
    let half = pairs / 2;
    if pairs > 2500 {
        let mean = pairs as f64 / 2.0;
        let sd = (pairs as f64 * (m + n + 1) as f64 / 12.0).sqrt();
        return (0..=half)
            .map(|u| normal_cdf((u as f64 + 0.5 - mean) / sd))
            .collect();
    }
    // ways[k][u]: subsets of k of the elements seen so far whose U statistic is u (each element
    // of the other sample placed after them adds 1 per member).
    let mut ways = vec![vec![0f64; pairs + 1]; m + 1];
    ways[0][0] = 1.0;
    for placed in 0..m + n {
        for k in (1..=m.min(placed + 1)).rev() {
            // Adding element `placed` as the k-th member of the subset: the others before it
            // number placed − (k − 1), and each is below it.
            let shift = placed + 1 - k;
            if shift > n {
                continue;
            }
            for u in (shift..=pairs).rev() {
                ways[k][u] += ways[k - 1][u - shift];
            }
        }
    }
    let total: f64 = ways[m].iter().sum();
    let mut cumulative = 0.0;
    ways[m][..=half]
        .iter()
        .map(|w| {
            cumulative += w;
            cumulative / total
        })
        .collect()
}

/// The standard normal distribution function (Abramowitz–Stegun 7.1.26, error below 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(z * z) / 2.0).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// 95% confidence interval of the median from order statistics (binomial, normal
/// approximation): ranks n/2 ± 1.96·√n/2. Needs no assumption about the distribution, which
/// matters for GPU timings (skewed, sometimes bimodal). With few samples it is the full range.
fn median_ci95(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len() as f64;
    let half_width = Z95 * n.sqrt() / 2.0;
    let lo = ((n / 2.0 - half_width).floor().max(0.0)) as usize;
    let hi = ((n / 2.0 + half_width).ceil() as usize).min(sorted.len() - 1);
    (sorted[lo], sorted[hi])
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic pseudo-random generator (SplitMix64). Used for synthetic data and bootstrap
/// resampling: the same seed gives the same numbers on every platform and every version of
/// tokbench, which keeps weights and `check` verdicts reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// The `index`-th value of the stream seeded with `seed`, without generating the ones
    /// before it: lets any element of a synthetic matrix be computed on its own.
    pub fn at(seed: u64, index: u64) -> u64 {
        mix(seed.wrapping_add(GOLDEN.wrapping_mul(index.wrapping_add(1))))
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform index in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let samples: Vec<f64> = (1..=11).map(f64::from).collect();
        let s = summarize(&samples, 3);
        assert_eq!(s.median_s, 6.0);
        assert_eq!(s.mean_s, 6.0);
        assert_eq!(s.min_s, 1.0);
        assert_eq!(s.max_s, 11.0);
        assert!((s.p10_s - 2.0).abs() < 1e-12);
        assert!((s.p90_s - 10.0).abs() < 1e-12);
        assert!((s.stddev_s - 11f64.sqrt()).abs() < 1e-12);
        assert!(s.ci95_low_s < 6.0 && s.ci95_high_s > 6.0);
        assert_eq!(s.warmup_iterations, 3);
        assert_eq!(s.samples_s, samples);
    }

    #[test]
    fn median_interval_narrows_with_more_samples() {
        let mut rng = SplitMix64::new(7);
        let few: Vec<f64> = (0..20).map(|_| 1.0 + rng.next_f64()).collect();
        let many: Vec<f64> = (0..2000).map(|_| 1.0 + rng.next_f64()).collect();
        let (a, b) = (summarize(&few, 0), summarize(&many, 0));
        assert!(b.ci95_high_s - b.ci95_low_s < (a.ci95_high_s - a.ci95_low_s) / 3.0);
    }

    #[test]
    fn median_interval_covers_the_true_median_about_95_percent_of_the_time() {
        // Uniform on [1, 2): true median 1.5.
        let trials = 400;
        let covered = (0..trials)
            .filter(|&seed| {
                let mut rng = SplitMix64::new(seed);
                let samples: Vec<f64> = (0..101).map(|_| 1.0 + rng.next_f64()).collect();
                let s = summarize(&samples, 0);
                s.ci95_low_s <= 1.5 && 1.5 <= s.ci95_high_s
            })
            .count();
        let rate = covered as f64 / trials as f64;
        assert!((0.92..=0.99).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn single_sample_is_its_own_interval() {
        let s = summarize(&[0.25], 0);
        assert_eq!(
            (s.ci95_low_s, s.median_s, s.ci95_high_s),
            (0.25, 0.25, 0.25)
        );
        assert_eq!(s.stddev_s, 0.0);
    }

    #[test]
    fn bootstrap_interval_brackets_a_known_ratio_and_is_reproducible() {
        let mut rng = SplitMix64::new(3);
        let base: Vec<f64> = (0..50).map(|_| 1.0 + 0.01 * rng.next_f64()).collect();
        let slower: Vec<f64> = base.iter().map(|x| x * 1.2).collect();
        let r = bootstrap_median_ratio(&base, &slower, 2000, 0.95, 9);
        assert!((r.point - 1.2).abs() < 1e-12);
        assert!(
            r.low <= 1.2 && 1.2 <= r.high && r.high - r.low < 0.02,
            "{r:?}"
        );
        assert_eq!(r, bootstrap_median_ratio(&base, &slower, 2000, 0.95, 9));
        let noisy: Vec<f64> = (0..10).map(|_| 0.2 + 1.6 * rng.next_f64()).collect();
        let r = bootstrap_median_ratio(&base, &noisy, 2000, 0.95, 9);
        assert!(r.high - r.low > 0.3, "{r:?}");
    }

    #[test]
    fn mann_whitney_tails_match_the_published_table() {
        // 3 against 3: 20 arrangements, one with U = 0.
        let t = mann_whitney_lower_tail(3, 3);
        assert!((t[0] - 1.0 / 20.0).abs() < 1e-12 && (t[1] - 2.0 / 20.0).abs() < 1e-12);
        // 5 against 5: 252 arrangements; counts 1, 1, 2, 3 for U = 0..3.
        let t = mann_whitney_lower_tail(5, 5);
        let expect = [1.0, 2.0, 4.0, 7.0].map(|c| c / 252.0);
        for (got, want) in t.iter().zip(expect) {
            assert!((got - want).abs() < 1e-12, "{t:?}");
        }
        // Unequal sizes: 2 against 4, 15 arrangements.
        assert!((mann_whitney_lower_tail(2, 4)[0] - 1.0 / 15.0).abs() < 1e-12);
        // At the largest exact size, the normal approximation used beyond it agrees.
        let exact = mann_whitney_lower_tail(50, 50)[1000];
        let normal = normal_cdf((1000.5 - 1250.0) / (2500.0f64 * 101.0 / 12.0).sqrt());
        assert!((exact - normal).abs() < 0.005, "{exact} {normal}");
    }

    #[test]
    fn rank_interval_has_the_confidence_its_sizes_allow() {
        let base = [1.00, 1.02, 0.98, 1.01, 0.99];
        let slower: Vec<f64> = base.iter().map(|x| x * 1.25).collect();
        let r = rank_ratio_interval(&base, &slower, 0.95);
        assert!((r.ratio.point - 1.25).abs() < 1e-9, "{r:?}");
        assert!(
            r.ratio.low < 1.25 && r.ratio.high > 1.25 && r.ratio.low > 1.2,
            "{r:?}"
        );
        // 5 against 5: the third-smallest to third-largest difference, 1 − 8/252.
        assert!((r.confidence - (1.0 - 8.0 / 252.0)).abs() < 1e-12, "{r:?}");
        // 3 against 3 cannot reach 95%: the full range, at 90%.
        let r = rank_ratio_interval(&base[..3], &slower[..3], 0.95);
        assert!((r.confidence - 0.9).abs() < 1e-12, "{r:?}");
        assert!((r.ratio.low - 1.25 * 0.98 / 1.02).abs() < 1e-12, "{r:?}");
        assert!((r.ratio.high - 1.25 * 1.02 / 0.98).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn repetitions_summary_takes_the_median_of_medians() {
        let reps = vec![
            vec![1.0, 1.1, 1.2],
            vec![2.0, 2.1, 2.2],
            vec![3.0, 3.1, 9.0],
        ];
        let s = summarize_repetitions(&reps, 6);
        assert!((s.median_s - 2.1).abs() < 1e-12);
        // Three medians: their whole range.
        assert_eq!((s.ci95_low_s, s.ci95_high_s), (1.1, 3.1));
        assert_eq!((s.min_s, s.max_s, s.samples_s.len()), (1.0, 9.0, 9));
        assert_eq!(summarize_repetitions(&reps[..1], 2), summarize(&reps[0], 2));
    }

    #[test]
    fn splitmix_is_reproducible_and_uniform() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = SplitMix64::new(42);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_eq!(
            SplitMix64::at(42, 2),
            a[2],
            "random access agrees with the stream"
        );
        let mean = (0..10_000).map(|_| r.next_f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
