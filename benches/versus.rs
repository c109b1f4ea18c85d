//! tokbench's kernels at the shapes of the kernel-speed reference figures, beside two sets of
//! figures for llama.cpp's Vulkan backend on lavapipe (`test-backend-ops perf`, the procedure
//! in `shared/PEERS.md`):
//!
//! - "issue": the figures the kernel-speed issue gives (its goals are ratios to these);
//! - "ggml": ggml-org/ggml d99724f (0.21.0, the same Vulkan backend), measured on this
//!   project's machine on 2026-11-22 with both cores free.
//!
//! ggml's MUL_MAT(m, n, k) is tokbench's rows = n, outputs = m, K = k. FLASH_ATTN_EXT's figure is
//! converted to causal pairs only (tokbench counts no masked pair). Also prints the GEMV's share
//! of tokbench's own copy-probe bandwidth (goal 80%).
//!
//! - "llama.cpp": llama.cpp's decode GEMV in f16, q8_0 and q4_0 (`common::LLAMA_CPP_GEMV`, with
//!   its version and date), beside tokbench's GEMV in the same format (goal for the block
//!   formats: 3×).
//!
//! `cargo bench --bench versus` (about three minutes on lavapipe). The reference figures are
//! lavapipe's; on another device the ratios compare unlike with unlike and are not printed.

mod common;

use criterion::Throughput;
use tokbench::gpu::Dispatch;
use tokbench::kernels::attention::{Heads, PrefillAttention};
use tokbench::kernels::layout::random_values;
use tokbench::kernels::matmul::{Matmul, Product};
use tokbench::kernels::{KernelConfig, WeightDtype};
use tokbench::model::flops;

use common::{ctx, gpu_time, median_s};

/// What is timed.
enum Shape {
    /// rows × outputs × K product with weights of this type.
    Product(usize, usize, usize, WeightDtype),
    /// Causal prefill attention of one prompt: (prompt, query heads, KV heads, head_dim).
    Attention(u32, u32, u32, u32),
}

/// One reference case.
struct Case {
    label: &'static str,
    shape: Shape,
    /// "GFLOP/s" or "GB/s" (weight bytes streamed).
    unit: &'static str,
    /// The issue's llama.cpp figure, when it gives one.
    issue: Option<f64>,
    /// The ratio to `issue` the issue asks for.
    goal: Option<f64>,
    /// ggml d99724f's figure measured here.
    ggml: f64,
}

const CASES: [Case; 4] = [
    Case {
        label: "MUL_MAT f32 m=4096 n=512 k=4096",
        shape: Shape::Product(512, 4096, 4096, WeightDtype::F32),
        unit: "GFLOP/s",
        issue: Some(1.43),
        goal: Some(3.0),
        ggml: 9.41,
    },
    Case {
        label: "MUL_MAT f16×f32 m=4096 n=512 k=4096",
        shape: Shape::Product(512, 4096, 4096, WeightDtype::F16),
        unit: "GFLOP/s",
        issue: Some(1.21),
        goal: Some(3.0),
        ggml: 6.34,
    },
    Case {
        label: "MUL_MAT f32 m=4096 n=1 k=4096 (GEMV)",
        shape: Shape::Product(1, 4096, 4096, WeightDtype::F32),
        unit: "GB/s",
        issue: Some(0.46),
        goal: Some(10.0),
        ggml: 2.67,
    },
    Case {
        label: "FLASH_ATTN f32 hd128 32/8 heads p512",
        shape: Shape::Attention(512, 32, 8, 128),
        unit: "GFLOP/s",
        issue: None,
        goal: None,
        // 0.862 GFLOP/s as ggml counts (masked pairs too) with a causal mask, × 513/1024.
        ggml: 0.432,
    },
];

/// The launch of a case, its FLOPs and its bytes.
fn setup(shape: &Shape, config: &KernelConfig) -> (Dispatch, f64, f64) {
    let ctx = ctx();
    match *shape {
        Shape::Product(m, n, k, dtype) => {
            let kernel = Matmul::new(ctx, config.matmul, dtype).expect("pipeline");
            let a = ctx
                .storage_with("a", bytemuck::cast_slice(&random_values(m * k, 1, 1.0)))
                .expect("buffer");
            let w = ctx
                .storage_with("w", &dtype.encode_rows(&random_values(n * k, 2, 0.05), k))
                .expect("buffer");
            let out = ctx.storage_zeroed("c", (m * n * 4) as u64).expect("buffer");
            let d = kernel
                .dispatch(ctx, &Product::dense(&a, &w, &out, (m, n, k)))
                .expect("dispatch");
            (
                d,
                flops::product_flops(m, n, k),
                flops::product_bytes(m, n, k, dtype),
            )
        }
        Shape::Attention(p, n_heads, n_kv_heads, head_dim) => {
            let heads = Heads::causal(n_heads, n_kv_heads, head_dim, p);
            let kernel =
                PrefillAttention::new(ctx, heads, config.wg, config.prefill_attention_tiles)
                    .expect("pipeline");
            let qkv_len = (p * (n_heads + 2 * n_kv_heads) * head_dim) as usize;
            let cache = (n_kv_heads * p * head_dim) as usize;
            let qkv = ctx
                .storage_with("qkv", bytemuck::cast_slice(&random_values(qkv_len, 3, 1.0)))
                .expect("buffer");
            let kc = ctx
                .storage_with("k", bytemuck::cast_slice(&random_values(cache, 4, 1.0)))
                .expect("buffer");
            let vc = ctx
                .storage_with("v", bytemuck::cast_slice(&random_values(cache, 5, 1.0)))
                .expect("buffer");
            let out = ctx
                .storage_zeroed("o", u64::from(p * n_heads * head_dim) * 4)
                .expect("buffer");
            let d = kernel
                .dispatch(ctx, (1, p), &qkv, &kc, &vc, None, &out)
                .expect("dispatch");
            let flops = flops::attention_flops(
                flops::causal_pairs(p as usize),
                n_heads as usize,
                head_dim as usize,
            );
            (d, flops, 0.0)
        }
    }
}

fn main() {
    let ctx = ctx();
    let config = KernelConfig::default_for(ctx.traits());
    let mut c = common::criterion();
    let mut group = c.benchmark_group("versus-llama.cpp");
    let mut rows = Vec::new();
    for case in &CASES {
        if let Shape::Product(.., WeightDtype::F16) = case.shape
            && !ctx.has(wgpu::Features::SHADER_F16)
        {
            eprintln!("{}: skipped, adapter has no SHADER_F16", case.label);
            continue;
        }
        let (d, flops, bytes) = setup(&case.shape, &config);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(case.label, |b| b.iter_custom(|iters| gpu_time(&d, iters)));
        let t = median_s(&d, 5);
        let figure = if case.unit == "GB/s" {
            bytes / t / 1e9
        } else {
            flops / t / 1e9
        };
        rows.push((case, figure));
    }
    // The decode GEMV in each weight format llama.cpp's figure exists for.
    let mut formats = Vec::new();
    for peer in &common::LLAMA_CPP_GEMV {
        let label = format!(
            "MUL_MAT {} m=4096 n=1 k={} (GEMV)",
            peer.dtype.name(),
            peer.k
        );
        let shape = Shape::Product(1, 4096, peer.k, peer.dtype);
        if (peer.dtype.matrix_bytes(4096, peer.k) as u64) > ctx.max_binding_bytes() {
            eprintln!("{label}: skipped, the weight exceeds one binding");
            continue;
        }
        let (d, flops, _) = setup(&shape, &config);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(&label, |b| b.iter_custom(|iters| gpu_time(&d, iters)));
        formats.push((label, peer, flops / median_s(&d, 5) / 1e9));
    }
    group.finish();
    c.final_summary();

    let (copy, bytes) = common::copy_probe(256 << 20);
    let copy_gbps = 2.0 * bytes as f64 / median_s(&copy, 9) / 1e9;

    let cpu = ctx.traits().cpu;
    println!(
        "\ntokbench vs llama.cpp's Vulkan backend on {}",
        ctx.info.name
    );
    println!(
        "{:<38} {:>15} | {:>8} {:>7} {:>5} | {:>9} {:>7}",
        "case", "tokbench", "issue", "ratio", "goal", "ggml", "ratio"
    );
    let ratio = |x: f64, r: f64| {
        if cpu {
            format!("{:.1}×", x / r)
        } else {
            "-".into()
        }
    };
    for (case, figure) in rows {
        let (issue, issue_ratio) = case.issue.map_or(("-".into(), "-".into()), |r| {
            (format!("{r:.2}"), ratio(figure, r))
        });
        let goal = case.goal.map_or("-".into(), |g| format!("{g:.0}×"));
        println!(
            "{:<38} {figure:>7.2} {:<7} | {issue:>8} {issue_ratio:>7} {goal:>5} | {:>9.2} {:>7}",
            case.label,
            case.unit,
            case.ggml,
            ratio(figure, case.ggml)
        );
        if case.unit == "GB/s" {
            println!(
                "{:<38} {:>6.1}% of the copy probe ({copy_gbps:.2} GB/s); goal 80%",
                "  GEMV bandwidth",
                100.0 * figure / copy_gbps
            );
        }
    }
    println!(
        "issue: the kernel-speed issue's figures; ggml: ggml d99724f measured on this machine, 2026-11-22"
    );
    println!(
        "\n{:<38} {:>15} | {:>9} {:>7} {:>5}",
        "decode GEMV by weight format", "tokbench", "llama.cpp", "ratio", "goal"
    );
    for (label, peer, gflops) in formats {
        let goal = if peer.dtype.is_block() { "3×" } else { "-" };
        println!(
            "{label:<38} {gflops:>7.2} GFLOP/s | {:>9.3} {:>7} {goal:>5}",
            peer.gflops,
            ratio(gflops, peer.gflops)
        );
    }
    println!("llama.cpp: {}", common::LLAMA_CPP_GEMV_SOURCE);
}
