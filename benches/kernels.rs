//! Criterion benches of the kernels at the shapes of the chosen preset, timed on the GPU:
//! a prefill-like product, a decode-like GEMV, prefill and decode attention, and the two
//! probes. Throughput is in FLOPs (products, attention, FMA probe) or bytes (copy probe).

mod common;

use criterion::Throughput;
use tokbench::gpu::Dispatch;
use tokbench::kernels::attention::{DecodeAttention, Heads, PrefillAttention};
use tokbench::kernels::fma_probe::FmaProbe;
use tokbench::kernels::layout::{padded_cols, random_values};
use tokbench::kernels::matmul::{Matmul, Product};
use tokbench::kernels::{AdapterTraits, KernelConfig, WeightDtype};
use tokbench::model::flops;

use common::{ctx, gpu_time};

fn bench_kernels() {
    let mut c = common::criterion();
    let ctx = ctx();
    let shape = common::preset().shape;
    let (prompt, depth) = common::sizes();
    let config = KernelConfig::default_for(ctx.traits());
    let mut group = c.benchmark_group(format!("kernels/{}", common::preset().name));

    // Products: the FFN gate|up projection, prefill-like (prompt rows) and decode-like (1 row),
    // with the weights stored as the model stores them (one output per row).
    // One weight slab of the gate|up projection: capped at what one binding holds, as the model
    // splits it.
    let k = shape.d_model as usize;
    let n = (2 * shape.d_ff as usize)
        .min((ctx.max_binding_bytes() / (padded_cols(k) as u64 * 4)) as usize / 64 * 64);
    let kernel = Matmul::new(ctx, config.matmul, WeightDtype::F32).expect("pipeline");
    let w = ctx
        .storage_with(
            "w",
            bytemuck::cast_slice(&random_values(n * padded_cols(k), 1, 0.1)),
        )
        .expect("buffer");
    for m in [prompt as usize, 1] {
        let a = ctx
            .storage_with(
                "a",
                bytemuck::cast_slice(&random_values(m * padded_cols(k), 2, 1.0)),
            )
            .expect("buffer");
        let out = ctx.storage_zeroed("c", (m * n * 4) as u64).expect("buffer");
        let d = kernel
            .dispatch(ctx, &Product::dense(&a, &w, &out, (m, n, k)))
            .expect("dispatch");
        let name = if m == 1 { "gemv" } else { "matmul" };
        group.throughput(Throughput::Elements(flops::product_flops(m, n, k) as u64));
        group.bench_function(format!("{name}-m{m}-n{n}-k{k}"), |b| {
            b.iter_custom(|iters| gpu_time(&d, iters))
        });
    }

    // Attention of one layer, in the layouts of both tiers.
    let tier_configs = [true, false].map(|cpu| {
        KernelConfig::default_for(AdapterTraits {
            cpu,
            subgroups: None,
        })
    });
    let hd = shape.head_dim as usize;
    let qkv_width = shape.qkv_dim();
    let kv = |len: u32| (shape.n_kv_heads * len) as usize * hd;
    {
        let heads = Heads::causal(shape.n_heads, shape.n_kv_heads, shape.head_dim, prompt);
        let qkv = ctx
            .storage_with(
                "qkv",
                bytemuck::cast_slice(&random_values(prompt as usize * qkv_width, 3, 1.0)),
            )
            .expect("buffer");
        let (kc, vc) = (
            ctx.storage_with(
                "k",
                bytemuck::cast_slice(&random_values(kv(prompt), 4, 1.0)),
            )
            .expect("buffer"),
            ctx.storage_with(
                "v",
                bytemuck::cast_slice(&random_values(kv(prompt), 5, 1.0)),
            )
            .expect("buffer"),
        );
        let out = ctx
            .storage_zeroed("o", (prompt as usize * shape.q_dim() * 4) as u64)
            .expect("buffer");
        // Both layouts on every adapter, so one run compares them: a row per invocation (the
        // CPU tier's) and FlashAttention-2 tiles (the GPU tier's).
        for c in &tier_configs {
            let tiles = c.prefill_attention_tiles;
            let name = tiles.map_or("rows".to_string(), |t| format!("tiles{}x{}", t.br, t.bc));
            let d = PrefillAttention::new(ctx, heads, c.wg, tiles)
                .and_then(|k| k.dispatch(ctx, (1, prompt), &qkv, &kc, &vc, None, &out))
                .expect("prefill attention");
            group.throughput(Throughput::Elements(flops::attention_flops(
                flops::causal_pairs(prompt as usize),
                shape.n_heads as usize,
                hd,
            ) as u64));
            group.bench_function(format!("attention-prefill-p{prompt}-{name}"), |b| {
                b.iter_custom(|iters| gpu_time(&d, iters))
            });
        }
    }
    {
        let len = depth + 1;
        let heads = Heads::causal(shape.n_heads, shape.n_kv_heads, shape.head_dim, len);
        let qkv = ctx
            .storage_with(
                "qkv",
                bytemuck::cast_slice(&random_values(qkv_width, 6, 1.0)),
            )
            .expect("buffer");
        let (kc, vc) = (
            ctx.storage_with("k", bytemuck::cast_slice(&random_values(kv(len), 7, 1.0)))
                .expect("buffer"),
            ctx.storage_with("v", bytemuck::cast_slice(&random_values(kv(len), 8, 1.0)))
                .expect("buffer"),
        );
        let out = ctx
            .storage_zeroed("o", (shape.q_dim() * 4) as u64)
            .expect("buffer");
        // Both layouts, as for prefill: an invocation per split (CPU tier), a workgroup per
        // (split, KV head) (GPU tier), each with its tier's split length.
        for c in &tier_configs {
            let kernel = DecodeAttention::new(
                ctx,
                heads,
                c.decode_attention_layout,
                c.decode_attention_wg(),
                c.decode_split_len,
            )
            .expect("decode attention");
            let partials = ctx
                .storage_zeroed("partials", kernel.partials_bytes(1, len))
                .expect("buffer");
            let d: Vec<Dispatch> = kernel
                .dispatch(ctx, (1, len), &qkv, &kc, &vc, None, &partials, &out)
                .expect("dispatch")
                .to_vec();
            group.throughput(Throughput::Elements(flops::attention_flops(
                f64::from(len),
                shape.n_heads as usize,
                hd,
            ) as u64));
            let layout = serde_json::to_value(c.decode_attention_layout).expect("layout");
            let name = layout.as_str().unwrap_or("layout").to_string();
            group.bench_function(format!("attention-decode-d{depth}-{name}"), |b| {
                b.iter_custom(|iters| gpu_time(&d, iters))
            });
        }
    }

    // The probes.
    {
        let invocations = if ctx.info.device_type == wgpu::DeviceType::Cpu {
            8192
        } else {
            1 << 20
        };
        let probe = FmaProbe::new(ctx, 1024).expect("fma probe");
        let out = ctx
            .storage_zeroed("fma", u64::from(invocations) * 16)
            .expect("buffer");
        let d = probe.dispatch(ctx, invocations, &out).expect("dispatch");
        group.throughput(Throughput::Elements(probe.flops(invocations) as u64));
        group.bench_function("probe-fma", |b| b.iter_custom(|iters| gpu_time(&d, iters)));
    }
    {
        let (d, bytes) = common::copy_probe(128 << 20);
        group.throughput(Throughput::Bytes(2 * bytes));
        group.bench_function("probe-copy", |b| b.iter_custom(|iters| gpu_time(&d, iters)));
    }
    group.finish();
    c.final_summary();
}

fn main() {
    bench_kernels();
}
