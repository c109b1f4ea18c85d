//! Criterion benches of prefill and decode of the chosen preset, in tokens per second
//! (`Throughput::Elements(tokens)`), timed on the GPU. When they finish, the node's result
//! document is written the way `tokbench run` writes it (probes, prefill, decode; same schema,
//! same meaning, `TOKBENCH_REPEAT` repetitions of each) to `results/` or `TOKBENCH_OUT`, and its
//! path is printed.

mod common;

use std::path::PathBuf;

use criterion::Throughput;
use tokbench::gpu::Device;
use tokbench::kernels::{KvDtype, WeightDtype};
use tokbench::model::Phase;
use tokbench::power::{AdapterIdentity, PowerMeter, PowerOptions};
use tokbench::result::SamplePolicy;
use tokbench::result::io::Destination;
use tokbench::runner::{self, Planned, RunSpec};
use tokbench::tune::{TuneCache, Tuning};
use tokbench::workload::Workload;
use tokbench::workload::plan::{self, ModelRequest};

use common::{ctx, gpu_time};

fn main() {
    // Checked before anything is measured, so a bad value costs nothing.
    let repetitions = common::repeat();
    let ctx = ctx();
    let preset = common::preset();
    let (prompt_len, depth) = common::sizes();
    let request = ModelRequest {
        model: Some((preset.name.to_string(), preset.shape)),
        phases: vec![Phase::Prefill, Phase::Decode],
        batches: vec![1],
        prompt_len,
        depths: vec![depth],
        dtype: Some(WeightDtype::F32),
        expert_dtype: None,
        // f32 as the weights: the bench's ids and figures stay those of earlier runs.
        kv_dtype: Some(KvDtype::F32),
        layers: None,
        memory_bytes: None,
        tuning: TuneCache::default_path().map_or(Tuning::Uncached, Tuning::Cached),
        math: Default::default(),
        cpu_cache_bytes: tokbench::node::largest_cpu_cache_bytes(std::path::Path::new("/sys")),
    };
    let planned = plan::plan(Device::Gpu(ctx), &request, &mut |m| {
        eprintln!("tokbench bench: {m}")
    })
    .unwrap_or_else(|e| {
        eprintln!("tokbench bench: {e:#}");
        std::process::exit(2)
    });
    for note in &planned.notes {
        eprintln!("tokbench bench: {note}");
    }

    let mut c = common::criterion();
    let mut group = c.benchmark_group(format!("tokens/{}", preset.name));
    for w in &planned.workloads {
        let forward = w.forward_pass(ctx).expect("forward pass");
        group.throughput(Throughput::Elements(w.pass.tokens()));
        group.bench_function(w.id(), |b| b.iter_custom(|iters| gpu_time(&forward, iters)));
    }
    group.finish();
    c.final_summary();

    // The node's result, through the same runner as `tokbench run`.
    let policy = if common::quick() {
        SamplePolicy {
            min_samples: 3,
            min_time_s: 0.5,
            max_warmup_s: 2.0,
            sustain_s: None,
        }
    } else {
        SamplePolicy {
            min_samples: 10,
            min_time_s: 1.0,
            max_warmup_s: 5.0,
            sustain_s: None,
        }
    };
    let destination = match std::env::var("TOKBENCH_OUT") {
        Ok(path) if !path.is_empty() => Destination::Exact(PathBuf::from(path)),
        _ => Destination::Generated {
            results_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results"),
        },
    };
    let workloads = planned.with_probes(&ctx.facts());
    let spec = RunSpec {
        command: "bench".into(),
        policy,
        repetitions,
        destination,
        stop: None,
    };
    let run = Planned {
        workloads,
        model: Some(planned.plan),
        kernel_config: Some(planned.config),
        kernel_config_source: Some(planned.config_source),
        ..Default::default()
    };
    // Power as `tokbench run` measures it by default: the best source for this adapter.
    let mut meter = PowerMeter::open(
        &PowerOptions::default(),
        &AdapterIdentity::from_wgpu(&ctx.info),
    )
    .ok();
    match runner::run(
        Device::Gpu(ctx),
        run,
        &spec,
        meter.as_mut(),
        &mut runner::Quiet,
    ) {
        Ok(outcome) => {
            let invalid = outcome
                .document
                .workloads
                .iter()
                .filter(|w| !w.valid)
                .count();
            println!(
                "tokbench: node result written to {}",
                outcome.path.display()
            );
            if invalid > 0 {
                eprintln!("tokbench: {invalid} workload(s) failed the correctness check");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("tokbench bench: {e:#}");
            std::process::exit(1);
        }
    }
}
