//! `tokbench tune`: try every candidate kernel configuration on this device for a model shape,
//! print what each achieved, and store the winner in the tuning cache for later runs.

use std::process::ExitCode;

use comfy_table::Cell;
use indicatif::{ProgressBar, ProgressStyle};

use super::table;
use crate::exit;
use crate::gpu::{AdapterSelector, GpuContext};
use crate::kernels::WeightDtype;
use crate::model::ModelShape;
use crate::tune::{Effort, MathChoice, TuneCache, TuneKey, cache::CacheEntry};
use crate::workload::plan;
use tokbench_core::kernel_config::MathRequest;

/// Tunes and prints; saves the winner when a cache path is known.
pub(super) fn run(
    selector: &AdapterSelector,
    model: Option<(String, ModelShape)>,
    (dtype, math): (Option<WeightDtype>, MathRequest),
    effort: Effort,
    cache_path: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    let ctx = GpuContext::open(selector)?;
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
    eprintln!(
        "tokbench tune: {} on {} ({:?} effort, --math {})",
        name,
        ctx.info.name,
        effort,
        math.name()
    );
    if let (MathRequest::Auto, Some(why)) = (math, &choice.coop_unavailable) {
        eprintln!("tokbench tune: --math auto: SIMT candidates only, because {why}");
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} candidates {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let tuned = crate::tune::tune(&ctx, &shape, dtype, effort, &choice, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();

    let mut t = table::new(&["kernel", "candidate", "best time", "rate", "outcome"]);
    for trial in &tuned.trials {
        let unit = if trial.kernel == "norm" {
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
                &TuneKey::new(&ctx, &shape, dtype, math),
                CacheEntry {
                    config: tuned.config,
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
