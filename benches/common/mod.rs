//! Shared by the benches: one lazily opened device, GPU-timed iterations for criterion, and the
//! environment knobs (`TOKBENCH_PRESET`, `TOKBENCH_ADAPTER`, `TOKBENCH_OUT`, `TOKBENCH_REPEAT`,
//! `CI` / `TOKBENCH_QUICK`).

#![allow(dead_code)] // each bench uses part of this module

use std::sync::OnceLock;
use std::time::Duration;

use tokbench::gpu::{AdapterSelector, Dispatch, GpuContext, MAX_RUNS_PER_BATCH, PassRecorder};
use tokbench::kernels::copy::Copy;
use tokbench::model::presets::{self, Preset};

/// The device every bench uses, opened on first use: `TOKBENCH_ADAPTER` picks it, as
/// `--adapter` does for the CLI.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let selector = AdapterSelector {
            adapter: std::env::var("TOKBENCH_ADAPTER")
                .ok()
                .filter(|s| !s.is_empty()),
            backend: None,
        };
        GpuContext::open(&selector).unwrap_or_else(|e| {
            eprintln!("tokbench bench: {e:#}");
            std::process::exit(2)
        })
    })
}

/// True under CI (`CI` set to anything but "false"/"0") or with `TOKBENCH_QUICK=1`: smaller
/// sizes and fewer samples, so a whole `cargo bench` ends in minutes on lavapipe.
pub fn quick() -> bool {
    let on = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    on("CI") || on("TOKBENCH_QUICK")
}

/// The preset to bench: `TOKBENCH_PRESET`, else the one `tokbench run` picks for this device.
pub fn preset() -> &'static Preset {
    match std::env::var("TOKBENCH_PRESET") {
        Ok(name) if !name.is_empty() => presets::find(&name).unwrap_or_else(|e| {
            eprintln!("tokbench bench: TOKBENCH_PRESET: {e}");
            std::process::exit(2)
        }),
        _ => tokbench::workload::plan::default_preset(
            &ctx().facts(),
            tokbench::workload::plan::memory_budget(&ctx().facts(), None),
            tokbench::kernels::WeightDtype::F32,
        ),
    }
}

/// Repetitions of each workload in the node's result (`TOKBENCH_REPEAT`, as `--repeat` for the
/// CLI; 1 when unset). 3 or more let `tokbench check` gate that result on run-to-run variance.
pub fn repeat() -> u32 {
    match std::env::var("TOKBENCH_REPEAT") {
        Ok(v) if !v.is_empty() => match v.trim().parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                eprintln!("tokbench bench: TOKBENCH_REPEAT={v:?} is not a count from 1 to 1000");
                std::process::exit(2)
            }
        },
        _ => 1,
    }
}

/// Prompt length and decode depth for the benches.
pub fn sizes() -> (u32, u32) {
    if quick() { (64, 128) } else { (512, 512) }
}

/// Criterion settings: GPU workloads take long per iteration, so few samples.
pub fn criterion() -> criterion::Criterion {
    let c = criterion::Criterion::default()
        .sample_size(10)
        .configure_from_args();
    if quick() {
        c.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
    } else {
        c.warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(10))
    }
}

/// Total GPU time of `iters` executions (timestamp queries where the adapter has them), as
/// criterion's `iter_custom` wants it.
pub fn gpu_time(work: &dyn PassRecorder, iters: u64) -> Duration {
    let mut total = 0.0;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(u64::from(MAX_RUNS_PER_BATCH)) as u32;
        total += ctx()
            .time_runs(work, batch)
            .expect("timed run")
            .iter()
            .sum::<f64>();
        left -= u64::from(batch);
    }
    Duration::from_secs_f64(total)
}

/// Median of `runs` timed executions after one warm-up, in seconds.
pub fn median_s(work: &dyn PassRecorder, runs: u32) -> f64 {
    ctx().time_runs(work, 1).expect("warm-up");
    let mut t = ctx().time_runs(work, runs).expect("timed runs");
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// The copy probe's launch over the largest binding the device allows, at most `cap` bytes
/// (whole vec4s), from one buffer to another; and the bytes it copies.
pub fn copy_probe(cap: u64) -> (Dispatch, u64) {
    let ctx = ctx();
    let bytes = ctx.max_binding_bytes().min(cap) / 16 * 16;
    let src = ctx.storage_zeroed("src", bytes).expect("buffer");
    let dst = ctx.storage_zeroed("dst", bytes).expect("buffer");
    let d = Copy::new(ctx)
        .and_then(|k| k.dispatch(ctx, (bytes / 16) as u32, &src, &dst))
        .expect("copy");
    (d, bytes)
}

/// One figure of llama.cpp's decode GEMV (`MUL_MAT m=4096 n=1 k=K`, a 4096 × K weight of type
/// `dtype` times one f32 activation row), in GFLOP/s.
pub struct PeerGemv {
    /// Weight type (`type_a`).
    pub dtype: tokbench::kernels::WeightDtype,
    /// K.
    pub k: usize,
    /// GFLOP/s as `test-backend-ops` prints them (2 · 4096 · K per run).
    pub gflops: f64,
}

/// Where [`LLAMA_CPP_GEMV`] comes from (procedure: `shared/PEERS.md`; nothing of llama.cpp is in
/// this project).
pub const LLAMA_CPP_GEMV_SOURCE: &str = "llama.cpp 0c1e57098 (ggml 0.25.3, as vendored by \
     llama-cpp-python 0.3.36), Vulkan backend on Debian 12's lavapipe (Mesa 22.3.6), \
     `test-backend-ops perf -o MUL_MAT -b Vulkan0 -p type_a=T,type_b=f32,m=4096,n=1,k=14336`, \
     measured on this project's 2-core VM on 2026-12-06";

/// llama.cpp's decode GEMV figures on lavapipe ([`LLAMA_CPP_GEMV_SOURCE`]), the best of the
/// runs that day (q4_0's at 18:05 UTC on a quiet machine; the others while another job shared
/// it): printed beside tokbench's on CPU adapters only, where they were measured.
pub const LLAMA_CPP_GEMV: [PeerGemv; 3] = [
    PeerGemv {
        dtype: tokbench::kernels::WeightDtype::F16,
        k: 14336,
        gflops: 0.356,
    },
    PeerGemv {
        dtype: tokbench::kernels::WeightDtype::Q8_0,
        k: 14336,
        gflops: 0.316,
    },
    PeerGemv {
        dtype: tokbench::kernels::WeightDtype::Q4_0,
        k: 14336,
        gflops: 0.591,
    },
];
