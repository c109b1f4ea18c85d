//! tokbench's products at the shapes of the kernel-speed reference figures: llama.cpp's Vulkan
//! backend (`test-backend-ops perf -o MUL_MAT -b Vulkan0`) on this machine type's lavapipe, as
//! given in the kernel-speed issue and measured by the procedure in `shared/PEERS.md`. Prints
//! each tokbench figure beside the reference, the ratio, and the GEMV's share of tokbench's own
//! copy-probe bandwidth. ggml's MUL_MAT(m, n, k) is tokbench's rows = n, outputs = m, K = k.
//!
//! `cargo bench --bench versus` (about a minute on lavapipe). The reference figures are
//! lavapipe's; on another device the ratios compare unlike with unlike, and are printed only for
//! a CPU adapter.

mod common;

use criterion::Throughput;
use tokbench::gpu::PassRecorder;
use tokbench::kernels::copy::Copy;
use tokbench::kernels::layout::random_values;
use tokbench::kernels::matmul::{self, Matmul, Product};
use tokbench::kernels::{KernelConfig, WeightDtype};

use common::{ctx, gpu_time};

/// One reference shape and llama.cpp's figure for it.
struct Case {
    label: &'static str,
    /// Rows of activations (ggml's n).
    rows: usize,
    /// Outputs (ggml's m).
    outputs: usize,
    k: usize,
    dtype: WeightDtype,
    /// llama.cpp's figure, in `unit`.
    reference: f64,
    unit: &'static str,
    /// The ratio the kernel-speed issue asks for.
    goal: f64,
}

const CASES: [Case; 3] = [
    Case {
        label: "MUL_MAT f32 m=4096 n=512 k=4096",
        rows: 512,
        outputs: 4096,
        k: 4096,
        dtype: WeightDtype::F32,
        reference: 1.43,
        unit: "GFLOP/s",
        goal: 3.0,
    },
    Case {
        label: "MUL_MAT f16×f32 m=4096 n=512 k=4096",
        rows: 512,
        outputs: 4096,
        k: 4096,
        dtype: WeightDtype::F16,
        reference: 1.21,
        unit: "GFLOP/s",
        goal: 3.0,
    },
    Case {
        label: "MUL_MAT f32 m=4096 n=1 k=4096 (GEMV)",
        rows: 1,
        outputs: 4096,
        k: 4096,
        dtype: WeightDtype::F32,
        reference: 0.46,
        unit: "GB/s",
        goal: 10.0,
    },
];

/// Median of `runs` timed executions, in seconds.
fn median_s(work: &dyn PassRecorder, runs: u32) -> f64 {
    ctx().time_runs(work, 1).expect("warm-up");
    let mut t = ctx().time_runs(work, runs).expect("timed runs");
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let ctx = ctx();
    let config = KernelConfig::default_for(ctx.traits());
    let mut c = common::criterion();
    let mut group = c.benchmark_group("versus-llama.cpp");
    let mut rows = Vec::new();
    for Case {
        label,
        rows: m,
        outputs: n,
        k,
        dtype,
        reference,
        unit,
        goal,
    } in CASES
    {
        if dtype == WeightDtype::F16 && !ctx.has(wgpu::Features::SHADER_F16) {
            eprintln!("{label}: skipped, adapter has no SHADER_F16");
            continue;
        }
        let kernel = Matmul::new(ctx, config.matmul, dtype).expect("pipeline");
        let a = ctx
            .storage_with("a", bytemuck::cast_slice(&random_values(m * k, 1, 1.0)))
            .expect("buffer");
        let w = ctx
            .storage_with("w", &dtype.encode(&random_values(n * k, 2, 0.05)))
            .expect("buffer");
        let out = ctx.storage_zeroed("c", (m * n * 4) as u64).expect("buffer");
        let d = kernel
            .dispatch(ctx, &Product::dense(&a, &w, &out, (m, n, k)))
            .expect("dispatch");
        group.throughput(Throughput::Elements(matmul::flops(m, n, k) as u64));
        group.bench_function(label, |b| b.iter_custom(|iters| gpu_time(&d, iters)));
        let t = median_s(&d, 5);
        let figure = if unit == "GB/s" {
            matmul::bytes(m, n, k, dtype.bytes()) / t / 1e9
        } else {
            matmul::flops(m, n, k) / t / 1e9
        };
        rows.push((label, figure, reference, unit, goal));
    }
    group.finish();
    c.final_summary();

    let bytes = ctx.max_binding_bytes().min(256 << 20) / 16 * 16;
    let src = ctx.storage_zeroed("src", bytes).expect("buffer");
    let dst = ctx.storage_zeroed("dst", bytes).expect("buffer");
    let copy = Copy::new(ctx)
        .and_then(|k| k.dispatch(ctx, (bytes / 16) as u32, &src, &dst))
        .expect("copy");
    let copy_gbps = 2.0 * bytes as f64 / median_s(&copy, 9) / 1e9;

    println!(
        "\ntokbench vs llama.cpp Vulkan on {} (reference figures: the kernel-speed issue, lavapipe)",
        ctx.info.name
    );
    println!(
        "{:<40} {:>12} {:>12} {:>8} {:>6}",
        "case", "tokbench", "llama.cpp", "ratio", "goal"
    );
    let cpu = ctx.traits().cpu;
    for (label, figure, reference, unit, goal) in rows {
        let ratio = if cpu {
            format!("{:.1}×", figure / reference)
        } else {
            "-".into()
        };
        println!(
            "{label:<40} {figure:>7.2} {unit:<4} {reference:>7.2} {unit:<4} {ratio:>8} {goal:>5.0}×"
        );
        if unit == "GB/s" {
            println!(
                "{:<40} {:>7.1}% of the copy probe ({copy_gbps:.2} GB/s); goal 80%",
                "  GEMV bandwidth",
                100.0 * figure / copy_gbps
            );
        }
    }
}
