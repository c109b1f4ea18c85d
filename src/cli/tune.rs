//! `tokbench tune`: try every candidate kernel configuration on this device for a model shape,
//! print what each achieved, and store the winner in the tuning cache for later runs.

use std::process::ExitCode;

use comfy_table::Cell;
use indicatif::{ProgressBar, ProgressStyle};

use super::table;
use crate::exit;
use crate::gpu::{AdapterSelector, GpuContext};
use crate::kernels::{KvDtype, WeightDtype};
use crate::model::{ModelShape, Pass, Phase};
use crate::tune::{Effort, MathChoice, Target, TuneCache, TuneKey, cache::CacheEntry};
use crate::workload::plan;
use tokbench_core::kernel_config::MathRequest;

/// The passes of the run to tune for, as `tune`'s flags give them.
pub(super) struct RunShapes {
    /// Phases, in order.
    pub phases: Vec<Phase>,
    /// Sequences per pass, each at every prefill and decode shape.
    pub batches: Vec<u32>,
    /// Prompt length; `None`: `run`'s default for the device.
    pub prompt_len: Option<u32>,
    /// Decode depths.
    pub depths: Vec<u32>,
}

impl RunShapes {
    /// The passes on a device of these facts.
    fn passes(&self, facts: &crate::gpu::DeviceFacts) -> Vec<Pass> {
        let prompt_len = self.prompt_len.unwrap_or(if facts.is_cpu() {
            super::DEFAULT_CPU_PROMPT_LEN
        } else {
            512
        });
        Pass::sweep(&self.phases, &self.batches, prompt_len, &self.depths)
    }
}

/// Tunes and prints; saves the winner when a cache path is known.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    selector: &AdapterSelector,
    model: Option<(String, ModelShape)>,
    (dtype, kv, math): (Option<WeightDtype>, Option<KvDtype>, MathRequest),
    effort: Effort,
    runs: &RunShapes,
    cache_path: Option<std::path::PathBuf>,
    host: &super::HostArgs,
    sysfs_root: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let ctx = GpuContext::open(selector)?;
    super::execute::check_adapter(&ctx, host, sysfs_root, selector.backend)?;
    let (dtype, dtype_note) = plan::resolve_dtype(dtype, &ctx.facts())?;
    if let Some(note) = dtype_note {
        eprintln!("tokbench tune: {note}");
    }
    let (name, shape) = model.unwrap_or_else(|| {
        let facts = ctx.facts();
        let p = plan::default_preset(&facts, plan::memory_budget(&facts, None), dtype);
        (p.name.to_string(), p.shape)
    });
    let choice = MathChoice::new(&ctx, dtype, math)?;
    let facts = ctx.facts();
    let (kv, kv_note) = plan::resolve_kv_dtype(kv, &facts, &shape)?;
    if let Some(note) = kv_note {
        eprintln!("tokbench tune: {note}");
    }
    let target = Target::new(
        &facts,
        shape,
        (dtype, kv),
        runs.passes(&facts),
        crate::node::largest_cpu_cache_bytes(sysfs_root),
    );
    eprintln!(
        "tokbench tune: {} on {} ({:?} effort, --math {}) at {}, GEMV over {} MiB of weights",
        name,
        ctx.info.name,
        effort,
        math.name(),
        target.describe_passes(),
        target.gemv_weight_bytes() >> 20
    );
    if let (MathRequest::Auto, Some(why)) = (math, &choice.coop_unavailable) {
        eprintln!("tokbench tune: --math auto: SIMT candidates only, because {why}");
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} candidates {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let tuned = crate::tune::tune(&ctx, &target, effort, &choice, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();

    let mut t = table::new(&["kernel", "candidate", "best time", "rate", "outcome"]);
    for trial in &tuned.trials {
        let unit = if matches!(trial.kernel.as_str(), "norm" | "rope" | "swiglu") {
            "GB/s"
        } else {
            "GFLOP/s"
        };
        t.add_row(vec![
            Cell::new(&trial.kernel),
            Cell::new(&trial.candidate),
            table::num(trial.best_s.map_or("-".into(), table::format_duration)),
            table::num(trial.rate.map_or("-".into(), |r| format!("{r:.2} {unit}"))),
            Cell::new(trial.rejected.as_deref().unwrap_or("ok")),
        ]);
    }
    println!("{t}");
    println!(
        "winner: {} (products: {})",
        serde_json::to_string(&tuned.config)?,
        tuned.config.matmul.tiles.math(dtype).name()
    );
    match cache_path {
        Some(path) => {
            let (mut cache, warning) = TuneCache::open(&path);
            if let Some(w) = warning {
                eprintln!("tokbench tune: {w}");
            }
            cache.insert(
                &TuneKey::new(&ctx, &target, math),
                CacheEntry {
                    config: tuned.config.clone(),
                    effort,
                    tuned_at: crate::result::timestamp(&crate::runner::now_utc()),
                },
            );
            cache.save()?;
            println!("saved to {}", path.display());
        }
        None => eprintln!(
            "tokbench tune: no cache location (set TOKBENCH_TUNE_CACHE or HOME); not saved"
        ),
    }
    Ok(ExitCode::from(exit::OK))
}
