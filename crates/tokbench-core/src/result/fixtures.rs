//! Hand-made result documents for tests of the result code and of reports, unit and
//! integration alike: built from the types, never captured from one machine. Public (and hidden
//! from the docs) so that `tests/` can write them to files and run the binary on them.

use std::collections::BTreeMap;

use super::*;
use crate::model::presets;
use crate::stats::summarize;

/// A finished run on `hostname` with adapter `adapter`, the `tiny` model plan, probes, and no
/// workloads yet; push workloads onto `workloads`.
pub fn node(hostname: &str, adapter: &str) -> RunResult {
    let tiny = presets::find("tiny").expect("tiny preset").shape;
    RunResult {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "tokbench".into(),
            version: "0.1.0".into(),
            git_sha: Some("0123456789abcdef".into()),
        },
        started_at: "2026-11-21T10:00:00.000Z".parse().expect("a time"),
        finished_at: Some("2026-11-21T10:01:00.000Z".parse().expect("a time")),
        interrupted: false,
        node: NodeInfo {
            hostname: hostname.into(),
            os: "Linux (Debian GNU/Linux 12)".into(),
            kernel: "6.1.0".into(),
            cpu_brand: "Example CPU".into(),
            cpu_cores: 16,
            memory_bytes: 64 << 30,
            placement: None,
        },
        adapter: AdapterInfo {
            name: adapter.into(),
            vendor_id: 0x10de,
            device_id: 0x2330,
            driver: "example".into(),
            driver_info: "1.0".into(),
            backend: "vulkan".into(),
            device_type: "discrete-gpu".into(),
            features: vec!["TIMESTAMP_QUERY".into()],
            limits: BTreeMap::from([("max_buffer_size".into(), 1 << 30)]),
            cooperative_matrices: Vec::new(),
        },
        timing_method: TimingMethod::GpuTimestamps,
        plan: PlanRecord {
            command: "run".into(),
            sampling: SamplePolicy {
                min_samples: 10,
                min_time_s: 1.0,
                max_warmup_s: 5.0,
                sustain_s: None,
            },
            model: Some(ModelPlan {
                preset: "tiny".into(),
                model: tiny,
                dtype: crate::dtype::WeightDtype::F32,
                expert_dtype: None,
                kv_dtype: None,
                layers_run: tiny.n_layers,
                weights_shared_across_layers: false,
                phases: vec![crate::model::Phase::Prefill, crate::model::Phase::Decode],
                batch: 1,
                batches: vec![1],
                prompt_len: 512,
                depths: vec![512],
            }),
            repetitions: 1,
            device_defaults: Vec::new(),
            adapter_warnings: Vec::new(),
        },
        kernel_config: None,
        kernel_config_source: None,
        probes: Some(Probes {
            fma_gflops: 1000.0,
            copy_gbps: 100.0,
            matrix_gflops: None,
            read_gbps: None,
        }),
        power: PowerSetup::none("none", "--power-source none"),
        workloads: Vec::new(),
        serving: None,
    }
}

/// A valid workload `id` of `kind`, timed at `samples_s`, that counts `flops` and `bytes` per
/// execution and passed `correctness`: F32, no named sizes, no model or tokens, and no power
/// over a window of the samples' sum. Token fixtures fill in their model fields.
pub fn workload(
    id: impl Into<String>,
    kind: WorkloadKind,
    samples_s: &[f64],
    (flops, bytes): (f64, f64),
    correctness: Correctness,
) -> WorkloadResult {
    let stats = summarize(samples_s, 3);
    WorkloadResult {
        id: id.into(),
        kind,
        shape: BTreeMap::new(),
        dtype: crate::dtype::WeightDtype::F32,
        valid: true,
        correctness,
        achieved_gflops: flops / stats.median_s / 1e9,
        achieved_gbps: bytes / stats.median_s / 1e9,
        roofline: None,
        phase: None,
        preset: None,
        model: None,
        batch: None,
        prompt_len: None,
        depth: None,
        layers_run: None,
        kv_dtype: None,
        weights_shared_across_layers: None,
        tokens: None,
        tokens_per_s: None,
        power: PowerRecord::unavailable(
            "--power-source none",
            samples_s.iter().sum(),
            samples_s.len() as u64,
        ),
        tokens_per_j: None,
        tokens_per_j_dynamic: None,
        j_per_token: None,
        math: None,
        flops,
        bytes,
        stats,
        repetitions: Vec::new(),
        experts: None,
    }
}

/// A run with one valid matmul workload whose samples are `samples_s`.
pub fn run_with_samples(hostname: &str, samples_s: &[f64]) -> RunResult {
    let flops = 2.0 * 64.0 * 64.0 * 64.0;
    let bytes = 4.0 * 3.0 * 64.0 * 64.0;
    let mut w = workload(
        "matmul-f32-m64-n64-k64",
        WorkloadKind::Matmul,
        samples_s,
        (flops, bytes),
        Correctness {
            nmse: Some(1e-14),
            max_abs_err: Some(1e-6),
            reference: "cpu-f64, all 4096 outputs".into(),
            nmse_threshold: 1e-6,
            failure: None,
        },
    );
    w.shape = BTreeMap::from([("m".into(), 64), ("n".into(), 64), ("k".into(), 64)]);
    w.stats.warmup_iterations = 4;
    w.power.window_s = 1.0;
    let mut doc = node(hostname, "Example GPU");
    doc.workloads = vec![w];
    doc
}
