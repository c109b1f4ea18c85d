//! Statistics over duration samples: summaries, a distribution-free confidence interval of the
//! median, and a bootstrap interval of the ratio of two sample sets' medians (used by
//! `tokbench check`). Pure functions, no GPU.

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
