//! Autotuning: every candidate kernel configuration is first checked against the CPU reference,
//! then timed with GPU timestamps on the model's own shapes; the fastest correct one wins and is
//! cached per adapter, driver, weight type and shape class, so later runs start from it.
//!
//! One concept per file: [`candidates`] (what is tried), [`bench`](mod@bench) (checking and timing one
//! candidate), [`cache`] (the key and the file).

pub mod bench;
pub mod cache;
pub mod candidates;
pub mod math;

use serde::{Deserialize, Serialize};

use crate::gpu::GpuContext;
use crate::kernels::{KernelConfig, WeightDtype};
use crate::model::ModelShape;

pub use cache::{TuneCache, TuneKey};
pub use math::MathChoice;

/// How hard to tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// A handful of candidates on small shapes: what `run` does when the cache has nothing.
    Quick,
    /// Every candidate, on larger shapes: `tokbench tune`.
    Full,
}

/// One candidate's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    /// Which kernel: "product", "gemv", "decode-attention" or "norm".
    pub kernel: String,
    /// The candidate, as JSON.
    pub candidate: String,
    /// Fastest of the timed launches, in seconds; null when the candidate was rejected.
    pub best_s: Option<f64>,
    /// Throughput: GFLOP/s for products and attention, GB/s for norms.
    pub rate: Option<f64>,
    /// Why it was rejected (wrong output, or the device refused it); null when it ran.
    pub rejected: Option<String>,
}

/// The outcome of tuning: the winning configuration and every trial.
#[derive(Debug, Clone)]
pub struct Tuned {
    /// Fastest correct choice for each kernel.
    pub config: KernelConfig,
    /// Every candidate tried, in order.
    pub trials: Vec<Trial>,
}

/// Tunes every kernel choice for `shape` with `dtype` weights on this device, starting from the
/// tier defaults; each kernel is tuned with the others at their defaults (they do not interact).
/// Product candidates come from every tier `math` opens (auto: SIMT and cooperative matrices,
/// each checked then timed). `progress(done, total)` is called after every candidate.
pub fn tune(
    ctx: &GpuContext,
    shape: &ModelShape,
    dtype: WeightDtype,
    effort: Effort,
    math: &MathChoice,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Tuned> {
    let defaults = math.defaults(ctx);
    let lists = candidates::all(ctx, defaults, effort, math);
    let total = lists.products.len()
        + lists.gemvs.len()
        + lists.attention_wgs.len()
        + lists.splits.len()
        + lists.norms.len();
    let bench = bench::Bench::new(ctx, shape, dtype, effort)?;
    let mut run = Runner {
        trials: Vec::new(),
        total,
        progress,
    };
    let mut config = defaults;
    config.matmul.tiles = run.fastest(lists.products, |t| bench.product(t, defaults.matmul.gemv));
    config.matmul.gemv = run.fastest(lists.gemvs, |g| bench.gemv(defaults.matmul.tiles, g));
    config.wg = run.fastest(lists.attention_wgs, |wg| bench.prefill_attention(wg));
    config.decode_split_len = run.fastest(lists.splits, |split| {
        bench.decode_attention(defaults.wg, split)
    });
    config.norm_wg = run.fastest(lists.norms, |wg| bench.norm(wg));
    Ok(Tuned {
        config,
        trials: run.trials,
    })
}

/// Runs trials, keeps them all, reports progress.
struct Runner<'p> {
    trials: Vec<Trial>,
    total: usize,
    progress: &'p mut dyn FnMut(usize, usize),
}

impl Runner<'_> {
    /// The candidate whose trial is fastest; the first (the default) when none ran.
    fn fastest<T: Copy>(&mut self, candidates: Vec<T>, trial: impl Fn(T) -> Trial) -> T {
        let mut best = (f64::INFINITY, candidates[0]);
        for c in candidates {
            let t = trial(c);
            if let Some(s) = t.best_s.filter(|&s| s < best.0) {
                best = (s, c);
            }
            self.trials.push(t);
            (self.progress)(self.trials.len(), self.total);
        }
        best.1
    }
}

/// Where a run's kernel configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tuning {
    /// The tier defaults, untuned (`--no-tune`).
    Defaults,
    /// The cache at this path, or a quick tune stored there when it has no entry.
    Cached(std::path::PathBuf),
    /// No cache location is known (no HOME): tune quickly, keep nothing.
    Uncached,
}

/// The kernel configuration for `shape` and `dtype` on this device, and a line saying where it
/// came from (recorded in results). Tuning messages go to `say`.
pub fn choose(
    ctx: &GpuContext,
    shape: &ModelShape,
    dtype: WeightDtype,
    tuning: &Tuning,
    math: &MathChoice,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<(KernelConfig, String)> {
    let quick = |say: &mut dyn FnMut(String)| -> anyhow::Result<KernelConfig> {
        say("tuning kernels for this device (quick; `tokbench tune` tries more)".into());
        let mut last = 0;
        let tuned = tune(
            ctx,
            shape,
            dtype,
            Effort::Quick,
            math,
            &mut |done, total| {
                if done * 4 / total > last {
                    last = done * 4 / total;
                    say(format!("tuning: {done}/{total} candidates"));
                }
            },
        )?;
        Ok(tuned.config)
    };
    match tuning {
        Tuning::Defaults => Ok((math.defaults(ctx), "tier defaults (--no-tune)".into())),
        Tuning::Uncached => Ok((quick(say)?, "quick tune (no cache location)".into())),
        Tuning::Cached(path) => {
            let key = TuneKey::new(ctx, shape, dtype, math.requested);
            let (mut cache, warning) = TuneCache::open(path);
            if let Some(w) = warning {
                say(w);
            }
            if let Some(hit) = cache.get(&key) {
                let source = format!(
                    "tuning cache {} ({:?} tune, {})",
                    path.display(),
                    hit.effort,
                    hit.tuned_at
                );
                return Ok((hit.config, source));
            }
            let config = quick(say)?;
            cache.insert(
                &key,
                cache::CacheEntry {
                    config,
                    effort: Effort::Quick,
                    tuned_at: crate::result::timestamp(&crate::runner::now_utc()),
                },
            );
            let source = match cache.save() {
                Ok(()) => format!("quick tune now, saved to {}", path.display()),
                Err(e) => {
                    say(format!("cannot save the tuning cache: {e:#}"));
                    "quick tune now (not saved)".into()
                }
            };
            Ok((config, source))
        }
    }
}
