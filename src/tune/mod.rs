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
use crate::kernels::matmul::GEMV_MAX_ROWS;
use crate::kernels::{KernelConfig, KvDtype, WeightDtype};
use crate::model::{ModelShape, Pass, Phase};

pub use cache::{TuneCache, TuneKey};
pub use math::MathChoice;

/// How hard to tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// A handful of candidates, few timed launches each: what `run` does when the cache has
    /// nothing.
    Quick,
    /// Every candidate: `tokbench tune`.
    Full,
}

/// One candidate's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    /// Which kernel: "product", "gemv", "prefill-attention", "prefill-attention-tiles",
    /// "decode-attention-layout", "decode-attention", `decode-split-d{depth}`, "rope",
    /// "swiglu" or "norm".
    pub kernel: String,
    /// The candidate, as JSON.
    pub candidate: String,
    /// Fastest of the timed launches, in seconds; null when the candidate was rejected.
    pub best_s: Option<f64>,
    /// Throughput: GFLOP/s for products and attention, GB/s for the others.
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

/// GPUs do not report their last-level cache; the largest ones (AMD's 256 MiB Infinity Cache)
/// stand in for it, so GEMV weights leave any GPU's cache.
pub const ASSUMED_GPU_CACHE_BYTES: u64 = 256 << 20;
/// GEMV weights are at least this many times the largest cache, so no candidate is timed from
/// cache.
pub const CACHE_MULTIPLE: u64 = 4;

/// What tuning is for: the model, the passes the run measures, and the cache a weight stream
/// must leave.
#[derive(Debug, Clone)]
pub struct Target {
    /// The model's shape.
    pub shape: ModelShape,
    /// Weight type.
    pub dtype: WeightDtype,
    /// KV cache format the attention candidates are timed with.
    pub kv: KvDtype,
    /// The passes the run measures (prefill at its batch and prompt, decode at each depth).
    pub passes: Vec<Pass>,
    /// The largest cache the adapter or host CPU reports, in bytes.
    pub cache_bytes: u64,
    /// Device memory tuning may use, when known: GEMV weights stay within a quarter of it.
    pub memory_bytes: Option<u64>,
}

impl Target {
    /// A target on the device `facts` describe: the CPU's largest cache (from `cpu_cache`) on
    /// CPU adapters, [`ASSUMED_GPU_CACHE_BYTES`] on GPUs.
    pub fn new(
        facts: &crate::gpu::DeviceFacts,
        shape: ModelShape,
        (dtype, kv): (WeightDtype, KvDtype),
        passes: Vec<Pass>,
        cpu_cache: Option<u64>,
    ) -> Self {
        let cache_bytes = if facts.is_cpu() {
            // Without sysfs: a server CPU's L3.
            cpu_cache.unwrap_or(64 << 20)
        } else {
            ASSUMED_GPU_CACHE_BYTES
        };
        Self {
            shape,
            dtype,
            kv,
            passes,
            cache_bytes,
            memory_bytes: crate::workload::plan::memory_budget(facts, None),
        }
    }

    /// Rows of the many-row product (prefill: batch × prompt; decode: batch, past
    /// [`GEMV_MAX_ROWS`]): the largest the run uses; `None` when every product is a GEMV.
    pub fn product_rows(&self) -> Option<usize> {
        self.passes
            .iter()
            .map(|p| p.rows())
            .filter(|&r| r > GEMV_MAX_ROWS as usize)
            .max()
    }

    /// Rows of the few-row product (decode at a small batch, the prefill LM head): the largest
    /// the run uses; `None` when it uses none.
    pub fn gemv_rows(&self) -> Option<usize> {
        self.passes
            .iter()
            .flat_map(|p| [p.rows(), p.batch as usize])
            .filter(|&r| r <= GEMV_MAX_ROWS as usize)
            .max()
    }

    /// The prefill pass, when the run has one.
    pub fn prefill(&self) -> Option<Pass> {
        self.passes
            .iter()
            .copied()
            .find(|p| p.phase == Phase::Prefill)
    }

    /// The decode passes, one per depth.
    pub fn decodes(&self) -> Vec<Pass> {
        self.passes
            .iter()
            .copied()
            .filter(|p| p.phase == Phase::Decode)
            .collect()
    }

    /// Rows RoPE, SwiGLU and RMSNorm see: the prefill's where the run has one (its time
    /// dominates), else decode's batch.
    pub fn elementwise_rows(&self) -> usize {
        self.prefill()
            .or_else(|| self.decodes().first().copied())
            .map_or(1, |p| p.rows())
    }

    /// Bytes of GEMV weights each candidate streams: [`CACHE_MULTIPLE`] times the cache, within
    /// a quarter of the memory tuning may use.
    pub fn gemv_weight_bytes(&self) -> u64 {
        let want = CACHE_MULTIPLE * self.cache_bytes;
        self.memory_bytes.map_or(want, |m| want.min(m / 4))
    }

    /// The shapes, for cache keys and messages: "prefill b1×p128, decode b1 at d512".
    pub fn describe_passes(&self) -> String {
        let mut parts: Vec<String> = self
            .passes
            .iter()
            .filter(|p| p.phase == Phase::Prefill)
            .map(|p| format!("prefill b{}×p{}", p.batch, p.len))
            .collect();
        // Decodes grouped by batch, batches in first-seen order.
        let decodes = self.decodes();
        let mut batches: Vec<u32> = Vec::new();
        for p in &decodes {
            if !batches.contains(&p.batch) {
                batches.push(p.batch);
            }
        }
        for b in batches {
            let depths: Vec<String> = decodes
                .iter()
                .filter(|p| p.batch == b)
                .map(|p| format!("d{}", p.len))
                .collect();
            parts.push(format!("decode b{b} at {}", depths.join(",")));
        }
        parts.join(", ")
    }
}

/// Tunes every kernel the run's passes use, at the run's shapes, starting from the tier
/// defaults; each kernel is tuned with the others at their defaults (they do not interact),
/// except attention: prefill tiles are timed with the prefill workgroup size just chosen, the
/// decode workgroup size in the decode layout just chosen, and decode splits with both. Product
/// candidates come from every tier `math` opens (auto: SIMT and cooperative matrices, each
/// checked then timed). Kernels the passes do not use keep their defaults. `progress(done, total)` is called after every
/// candidate.
pub fn tune(
    ctx: &GpuContext,
    target: &Target,
    effort: Effort,
    math: &MathChoice,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Tuned> {
    let defaults = math.defaults(ctx);
    let lists = candidates::all(&ctx.facts(), &defaults, effort, math);
    let decodes = target.decodes();
    // A kernel the passes do not use counts one (skipped) trial.
    let uses = |used: bool, n: usize| if used { n } else { 1 };
    let total = uses(target.product_rows().is_some(), lists.products.len())
        + uses(target.gemv_rows().is_some(), lists.gemvs.len())
        + uses(target.prefill().is_some(), lists.attention_wgs.len())
        + uses(target.prefill().is_some(), lists.prefill_tiles.len())
        + uses(!decodes.is_empty(), lists.decode_layouts.len())
        + uses(!decodes.is_empty(), lists.attention_wgs.len())
        + decodes.len() * lists.splits.len()
        + 2 * lists.elementwise_wgs.len()
        + lists.norms.len();
    let bench = bench::Bench::new(ctx, target, effort)?;
    let mut run = Runner {
        trials: Vec::new(),
        total,
        progress,
    };
    let mut config = defaults.clone();
    if target.product_rows().is_some() {
        config.matmul.tiles =
            run.fastest(lists.products, |t| bench.product(t, defaults.matmul.gemv));
    } else {
        run.skipped("product", &defaults.matmul.tiles);
    }
    if target.gemv_rows().is_some() {
        config.matmul.gemv = run.fastest(lists.gemvs, |g| bench.gemv(defaults.matmul.tiles, g));
    } else {
        run.skipped("gemv", &defaults.matmul.gemv);
    }
    // Prefill: the workgroup size in the default layout, then the layout (tiles) with it.
    if let Some(prefill) = target.prefill() {
        let tiles = defaults.prefill_attention_tiles;
        config.wg = run.fastest(lists.attention_wgs.clone(), |wg| {
            bench.prefill_attention("prefill-attention", prefill, wg, tiles)
        });
        let wg = config.wg;
        config.prefill_attention_tiles = if lists.prefill_tiles.len() > 1 {
            run.fastest(lists.prefill_tiles, |tiles| {
                bench.prefill_attention("prefill-attention-tiles", prefill, wg, tiles)
            })
        } else {
            run.skipped("prefill-attention-tiles", &tiles);
            tiles
        };
    } else {
        run.skipped("prefill-attention", &defaults.wg);
        run.skipped("prefill-attention-tiles", &defaults.prefill_attention_tiles);
    }
    // Decode at the deepest depth (where attention weighs most): the layout, then the
    // workgroup in it; then the split at every depth with both.
    if let Some(&deepest) = decodes.iter().max_by_key(|p| p.len) {
        let (wg, split) = (defaults.decode_attention_wg(), defaults.decode_split_len);
        let layout = if lists.decode_layouts.len() > 1 {
            run.fastest(lists.decode_layouts, |layout| {
                bench.decode_attention("decode-attention-layout", deepest, layout, wg, split)
            })
        } else {
            run.skipped("decode-attention-layout", &defaults.decode_attention_layout);
            defaults.decode_attention_layout
        };
        config.decode_attention_layout = layout;
        let wg = run.fastest(lists.attention_wgs, |wg| {
            bench.decode_attention("decode-attention", deepest, layout, wg, split)
        });
        config.decode_attention_wg = Some(wg);
        for pass in &decodes {
            let kernel = format!("decode-split-d{}", pass.len);
            let split = run.fastest(lists.splits.clone(), |split| {
                bench.decode_attention(&kernel, *pass, layout, wg, split)
            });
            config.decode_split_by_depth.insert(pass.len, split);
        }
    } else {
        run.skipped("decode-attention-layout", &defaults.decode_attention_layout);
        run.skipped("decode-attention", &defaults.decode_attention_wg());
    }
    config.rope_wg = Some(run.fastest(lists.elementwise_wgs.clone(), |wg| bench.rope(wg)));
    config.swiglu_wg = Some(run.fastest(lists.elementwise_wgs, |wg| bench.swiglu(wg)));
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
    /// Records that `kernel` is not used at the run's shapes, so its `default` stays untimed.
    fn skipped<T: Serialize>(&mut self, kernel: &str, default: &T) {
        self.trials.push(Trial {
            kernel: kernel.into(),
            candidate: serde_json::to_string(default).unwrap_or_default(),
            best_s: None,
            rate: None,
            rejected: Some("not used at the run's shapes: the default is kept".into()),
        });
    }

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

/// The kernel configuration for `target` on this device, and a line saying where it came from
/// (recorded in results). Tuning messages go to `say`.
pub fn choose(
    ctx: &GpuContext,
    target: &Target,
    tuning: &Tuning,
    math: &MathChoice,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<(KernelConfig, String)> {
    let quick = |say: &mut dyn FnMut(String)| -> anyhow::Result<KernelConfig> {
        say(format!(
            "tuning kernels for this device at the run's shapes ({}; quick: `tokbench tune` tries more)",
            target.describe_passes()
        ));
        let mut last = 0;
        let tuned = tune(ctx, target, Effort::Quick, math, &mut |done, total| {
            if done * 4 / total > last {
                last = done * 4 / total;
                say(format!("tuning: {done}/{total} candidates"));
            }
        })?;
        Ok(tuned.config)
    };
    let at = format!(
        "at {}, GEMV over {} MiB of weights",
        target.describe_passes(),
        target.gemv_weight_bytes() >> 20
    );
    match tuning {
        Tuning::Defaults => Ok((math.defaults(ctx), "tier defaults (--no-tune)".into())),
        Tuning::Uncached => Ok((quick(say)?, format!("quick tune {at} (no cache location)"))),
        Tuning::Cached(path) => {
            let key = TuneKey::new(ctx, target, math.requested);
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
                return Ok((hit.config.clone(), source));
            }
            let config = quick(say)?;
            cache.insert(
                &key,
                cache::CacheEntry {
                    config: config.clone(),
                    effort: Effort::Quick,
                    tuned_at: crate::result::timestamp(&crate::runner::now_utc()),
                },
            );
            let source = match cache.save() {
                Ok(()) => format!("quick tune now {at}, saved to {}", path.display()),
                Err(e) => {
                    say(format!("cannot save the tuning cache: {e:#}"));
                    format!("quick tune now {at} (not saved)")
                }
            };
            Ok((config, source))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{MockDevice, MockMode};
    use crate::model::presets::find;
    use tokbench_core::kernel_config::MathRequest;

    fn target(passes: Vec<Pass>) -> Target {
        let facts = MockDevice::new(MockMode::Instant, std::time::Duration::ZERO)
            .facts()
            .clone();
        let shape = find("smollm2-135m-shape").unwrap().shape;
        Target::new(
            &facts,
            shape,
            (WeightDtype::F32, KvDtype::F32),
            passes,
            Some(480 << 20),
        )
    }

    #[test]
    fn the_target_takes_the_run_s_rows_and_gemv_weights_several_times_the_cache() {
        let t = target(vec![
            Pass::prefill(2, 128),
            Pass::decode(2, 512),
            Pass::decode(2, 4096),
        ]);
        assert_eq!(t.product_rows(), Some(256), "batch × prompt");
        assert_eq!(t.gemv_rows(), Some(2), "decode's batch");
        assert_eq!(t.elementwise_rows(), 256);
        assert_eq!(
            t.decodes().iter().map(|p| p.len).collect::<Vec<_>>(),
            [512, 4096]
        );
        // The mock is a CPU adapter: its cache is the CPU's.
        let mut t = t;
        t.memory_bytes = None;
        assert_eq!(t.gemv_weight_bytes(), CACHE_MULTIPLE * (480 << 20));
        t.memory_bytes = Some(1 << 30);
        assert_eq!(
            t.gemv_weight_bytes(),
            256 << 20,
            "a quarter of the memory at most"
        );
        assert_eq!(
            t.describe_passes(),
            "prefill b2×p128, decode b2 at d512,d4096"
        );
        // A swept batch keeps each batch's passes apart in the cache key.
        let swept = target(Pass::sweep(
            &[Phase::Prefill, Phase::Decode],
            &[1, 8],
            64,
            &[20, 200],
        ));
        assert_eq!(
            swept.describe_passes(),
            "prefill b1×p64, prefill b8×p64, decode b1 at d20,d200, decode b8 at d20,d200"
        );

        let decode_only = target(vec![Pass::decode(1, 64)]);
        assert_eq!(decode_only.product_rows(), None, "every product is a GEMV");
        assert_eq!(decode_only.gemv_rows(), Some(1));
        let big_batch = target(vec![Pass::decode(32, 64)]);
        assert_eq!(big_batch.product_rows(), Some(32));
        assert_eq!(big_batch.gemv_rows(), None);
    }

    #[test]
    fn tuning_picks_each_kernel_s_workgroup_and_a_split_per_depth_at_the_run_s_shapes() {
        let ctx = crate::gpu::test_context();
        let shape = find("tiny").unwrap().shape;
        let passes = vec![
            Pass::prefill(1, 16),
            Pass::decode(1, 4),
            Pass::decode(1, 40),
        ];
        let target = Target {
            shape,
            dtype: WeightDtype::F32,
            kv: KvDtype::F16,
            passes,
            // A small cache keeps the test short; the weights still exceed it several times.
            cache_bytes: 1 << 20,
            memory_bytes: None,
        };
        let bench = bench::Bench::new(ctx, &target, Effort::Quick).unwrap();
        assert!(
            bench.gemv_bytes() >= CACHE_MULTIPLE << 20,
            "{}",
            bench.gemv_bytes()
        );
        drop(bench);
        let simt = MathChoice::new(ctx, WeightDtype::F32, MathRequest::Simt).unwrap();
        let tuned = tune(ctx, &target, Effort::Quick, &simt, &mut |_, _| {}).unwrap();
        let c = &tuned.config;
        assert_eq!(
            c.decode_split_by_depth.keys().copied().collect::<Vec<_>>(),
            [4, 40]
        );
        assert!(c.rope_wg.is_some() && c.swiglu_wg.is_some() && c.decode_attention_wg.is_some());
        for kernel in [
            "product",
            "gemv",
            "prefill-attention",
            "decode-attention",
            "decode-split-d4",
            "decode-split-d40",
            "rope",
            "swiglu",
            "norm",
        ] {
            let ran = tuned
                .trials
                .iter()
                .filter(|t| t.kernel == kernel && t.best_s.is_some())
                .count();
            assert!(
                ran >= 2,
                "{kernel}: {ran} candidates timed: {:?}",
                tuned.trials
            );
        }
        // Each winner is one of its own kernel's timed candidates.
        let won = |kernel: &str, candidate: String| {
            tuned
                .trials
                .iter()
                .any(|t| t.kernel == kernel && t.candidate == candidate && t.best_s.is_some())
        };
        assert!(won("rope", c.rope_wg().to_string()));
        assert!(won("swiglu", c.swiglu_wg().to_string()));
    }
}
