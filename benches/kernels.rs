//! Criterion benches of the kernels, timed on the GPU (timestamp queries where the adapter has
//! them, wall clock otherwise). `TOKBENCH_ADAPTER` picks the adapter.

use std::sync::OnceLock;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokbench::gpu::{AdapterSelector, GpuContext, MAX_RUNS_PER_BATCH, PassRecorder};
use tokbench::kernels::WeightDtype;
use tokbench::kernels::layout::{pad_matrix, padded_cols, random_values};
use tokbench::kernels::matmul::{self, Matmul, MatmulConfig, Product};

fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::open(&AdapterSelector {
            adapter: std::env::var("TOKBENCH_ADAPTER").ok(),
            backend: None,
        })
        .expect("open a GPU adapter")
    })
}

/// Total GPU time of `iters` executions, as criterion's `iter_custom` wants it.
fn gpu_time(work: &dyn PassRecorder, iters: u64) -> Duration {
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

fn bench_matmul(c: &mut Criterion) {
    let ctx = ctx();
    let mut group = c.benchmark_group("matmul-f32");
    group.sample_size(10);
    for (m, n, k) in [(256, 256, 256), (1, 4096, 4096)] {
        let a = random_values(m * k, 1, 1.0);
        let b = random_values(k * n, 2, 1.0);
        let a_buf = ctx.storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)));
        let b_pad = pad_matrix(&b, k, n, padded_cols(k));
        let b_buf = ctx.storage_with("B", bytemuck::cast_slice(&b_pad));
        let c_buf = ctx.storage_zeroed("C", (m * padded_cols(n) * 4) as u64);
        let kernel = Matmul::new(ctx, MatmulConfig::DEFAULT, WeightDtype::F32).expect("pipeline");
        let dispatch = kernel
            .dispatch(ctx, &Product::dense(&a_buf, &b_buf, &c_buf, (m, n, k)))
            .expect("dispatch");
        group.throughput(Throughput::Elements(matmul::flops(m, n, k) as u64));
        group.bench_function(format!("m{m}-n{n}-k{k}"), |bench| {
            bench.iter_custom(|iters| gpu_time(&dispatch, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_matmul);
criterion_main!(benches);
