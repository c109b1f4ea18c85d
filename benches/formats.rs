//! The decode GEMV in every weight format, side by side in one run: C (1 × 4096) = a · Wᵀ for a
//! 4096 × 4096 and a 4096 × 14336 weight (llama3-8b's o/q projections and its down projection's
//! transpose shape, ggml's `MUL_MAT m=4096 n=1 k=…`), timed on the GPU. Throughput is weight
//! bytes streamed (the exact bits per weight, scales included), so formats compare by how close
//! each comes to the memory system; the summary gives each format's share of f16's weight
//! bytes/s (goal: q8_0 and q4_0 at least 80%, so unpacking is not what limits them) and, on
//! lavapipe, GFLOP/s beside llama.cpp's Vulkan backend (`common::LLAMA_CPP_GEMV`).
//!
//! `cargo bench --bench formats` (a few minutes on lavapipe; `TOKBENCH_QUICK=1` shortens the
//! sampling, not the shapes).

mod common;

use criterion::Throughput;
use tokbench::kernels::layout::random_values;
use tokbench::kernels::matmul::{Matmul, Product};
use tokbench::kernels::{KernelConfig, WeightDtype};
use tokbench::model::flops;

use common::{ctx, gpu_time, median_s};

fn main() {
    let ctx = ctx();
    let config = KernelConfig::default_for(ctx.traits());
    let mut c = common::criterion();
    let mut group = c.benchmark_group("formats/gemv");
    let n = 4096usize;
    let mut rows = Vec::new();
    for k in [4096usize, 14336] {
        let a = ctx
            .storage_with("a", bytemuck::cast_slice(&random_values(k, 1, 1.0)))
            .expect("buffer");
        let out = ctx.storage_zeroed("c", (n * 4) as u64).expect("buffer");
        for dtype in WeightDtype::ALL {
            if dtype == WeightDtype::F16 && !ctx.has(wgpu::Features::SHADER_F16) {
                eprintln!("f16: skipped, the adapter has no SHADER_F16");
                continue;
            }
            let bytes = dtype.encode_rows(&random_values(n * k, 2, 0.05), k);
            if bytes.len() as u64 > ctx.max_binding_bytes() {
                eprintln!(
                    "{} k={k}: skipped, {} MiB exceeds one binding",
                    dtype.name(),
                    bytes.len() >> 20
                );
                continue;
            }
            let w = ctx.storage_with("w", &bytes).expect("buffer");
            let kernel = Matmul::new(ctx, config.matmul, dtype).expect("pipeline");
            let d = kernel
                .dispatch(ctx, &Product::dense(&a, &w, &out, (1, n, k)))
                .expect("dispatch");
            let weight_bytes = dtype.matrix_bytes(n, k);
            group.throughput(Throughput::Bytes(weight_bytes as u64));
            group.bench_function(format!("{}-m1-n{n}-k{k}", dtype.name()), |b| {
                b.iter_custom(|iters| gpu_time(&d, iters))
            });
            let t = median_s(&d, 7);
            rows.push((
                k,
                dtype,
                weight_bytes / t / 1e9,
                flops::product_flops(1, n, k) / t / 1e9,
            ));
        }
    }
    group.finish();
    c.final_summary();

    println!(
        "\nDecode GEMV by weight format on {} ({:?} GEMV), one run",
        ctx.info.name, config.matmul.gemv
    );
    println!(
        "{:<24} {:>6} {:>10} {:>9} {:>9} | {:>10} {:>7}",
        "case", "bits", "weight GB/s", "vs f16", "GFLOP/s", "llama.cpp", "ratio"
    );
    for &(k, dtype, gbps, gflops) in &rows {
        let f16 = rows
            .iter()
            .find(|r| r.0 == k && r.1 == WeightDtype::F16)
            .map(|r| r.2);
        let share = f16.map_or("-".into(), |f| format!("{:.0}%", 100.0 * gbps / f));
        let peer = common::LLAMA_CPP_GEMV
            .iter()
            .find(|p| p.k == k && p.dtype == dtype && ctx.traits().cpu)
            .map(|p| p.gflops);
        let (peer_s, ratio_s) = peer.map_or(("-".into(), "-".into()), |p| {
            (format!("{p:.2}"), format!("{:.1}×", gflops / p))
        });
        println!(
            "{:<24} {:>6} {gbps:>10.2} {share:>9} {gflops:>9.2} | {peer_s:>10} {ratio_s:>7}",
            format!("{} 4096×{k}", dtype.name()),
            dtype.bits_per_weight(),
        );
    }
    println!(
        "goals: q8_0 and q4_0 at least 80% of f16's weight GB/s, and at least 3× llama.cpp's \
         GFLOP/s; llama.cpp: {} (printed only on CPU adapters, where they were measured)",
        common::LLAMA_CPP_GEMV_SOURCE
    );
}
