//! Hand-made result documents for the report's tests, unit and integration alike: built from the
//! result types, never captured from one machine. Public (and hidden from the docs) so that
//! `tests/` can write them to files and run the binary on them.

use std::collections::BTreeMap;

use crate::dtype::WeightDtype;
use crate::model::Phase;
use crate::model::presets;
use crate::result::*;
use crate::stats::{SplitMix64, summarize, summarize_repetitions};

pub use crate::result::fixtures::node;

/// `node` with `workloads`.
pub fn run(hostname: &str, adapter: &str, workloads: Vec<WorkloadResult>) -> RunResult {
    let mut doc = node(hostname, adapter);
    doc.workloads = workloads;
    doc
}

/// A valid prefill of one `prompt_len`-token prompt of `tiny`, timed at `samples_s`; no power.
pub fn prefill(prompt_len: u32, samples_s: &[f64]) -> WorkloadResult {
    token_workload(Phase::Prefill, prompt_len, samples_s)
}

/// A valid decode step of one sequence of `tiny` at KV depth `depth`, timed at `samples_s`; no
/// power.
pub fn decode(depth: u32, samples_s: &[f64]) -> WorkloadResult {
    token_workload(Phase::Decode, depth, samples_s)
}

fn token_workload(phase: Phase, len: u32, samples_s: &[f64]) -> WorkloadResult {
    let tiny = presets::find("tiny").expect("tiny preset").shape;
    let stats = summarize(samples_s, 3);
    let tokens: u64 = if phase == Phase::Prefill {
        len.into()
    } else {
        1
    };
    let (size, prompt_len, depth) = if phase == Phase::Prefill {
        (format!("p{len}"), Some(len), None)
    } else {
        (format!("d{len}"), None, Some(len))
    };
    // Round figures: reports never recompute them.
    let flops = 1e6 * tokens as f64;
    let bytes = 4e5 * tokens as f64;
    let window_s: f64 = samples_s.iter().sum();
    WorkloadResult {
        id: format!("{}-tiny-f32-b1-{size}", phase.name()),
        kind: phase.into(),
        shape: BTreeMap::new(),
        dtype: WeightDtype::F32,
        valid: true,
        correctness: Correctness {
            nmse: Some(1e-12),
            max_abs_err: Some(1e-6),
            reference: "cpu-f64 forward of the whole model: logits".into(),
            nmse_threshold: 1e-5,
            failure: None,
        },
        achieved_gflops: flops / stats.median_s / 1e9,
        achieved_gbps: bytes / stats.median_s / 1e9,
        roofline: None,
        phase: Some(phase),
        preset: Some("tiny".into()),
        model: Some(tiny),
        batch: Some(1),
        prompt_len,
        depth,
        layers_run: Some(tiny.n_layers),
        kv_dtype: None,
        weights_shared_across_layers: Some(false),
        tokens: Some(tokens),
        tokens_per_s: Some(tokens as f64 / stats.median_s),
        power: PowerRecord::unavailable("--power-source none", window_s, samples_s.len() as u64),
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

/// A valid probe workload (`ProbeFma` or `ProbeCopy`) timed at `samples_s`: no tokens.
pub fn probe(kind: WorkloadKind, samples_s: &[f64]) -> WorkloadResult {
    let mut w = token_workload(Phase::Prefill, 1, samples_s);
    w.id = kind.name().into();
    w.kind = kind;
    w.correctness.reference = "exact".into();
    w.phase = None;
    w.preset = None;
    w.model = None;
    w.batch = None;
    w.prompt_len = None;
    w.layers_run = None;
    w.weights_shared_across_layers = None;
    w.tokens = None;
    w.tokens_per_s = None;
    w
}

/// `w` with a measured power figure of `avg_power_w` over its window, and tokens/J from it.
pub fn with_power(
    mut w: WorkloadResult,
    scope: Scope,
    provenance: Provenance,
    avg_power_w: f64,
) -> WorkloadResult {
    let window_s = w.power.window_s;
    let executions = w.power.executions;
    let energy_j = avg_power_w * window_s;
    w.power = PowerRecord {
        source: Some("rapl".into()),
        scope: Some(scope),
        provenance,
        method: Some("counter-delta".into()),
        reason: None,
        energy_j: Some(energy_j),
        avg_power_w: Some(avg_power_w),
        idle_power_w: None,
        dynamic_energy_j: None,
        window_s,
        executions,
        duty_cycle: None,
        samples: None,
        coverage: None,
        max_gap_s: None,
        cross_check_power_w: None,
        telemetry: None,
        sustain: None,
        warnings: Vec::new(),
    };
    let tokens = w.tokens.unwrap_or(0) as f64 * executions as f64;
    let tokens_per_j = tokens / energy_j;
    w.tokens_per_j = Some(tokens_per_j);
    w.j_per_token = Some(1.0 / tokens_per_j);
    w
}

/// `w` measured in repetitions: one per median in `medians_s`, each of `n` samples within
/// ±`rel_spread` of it (seeded from `seed`), with the headline figures from their medians as
/// the runner computes them.
pub fn repeated(
    mut w: WorkloadResult,
    medians_s: &[f64],
    rel_spread: f64,
    n: usize,
    seed: u64,
) -> WorkloadResult {
    let samples: Vec<Vec<f64>> = medians_s
        .iter()
        .zip(seed..)
        .map(|(&m, seed)| jittered(m, rel_spread, n, seed))
        .collect();
    w.stats = summarize_repetitions(&samples, 3 * samples.len() as u32);
    let rate = |median_s: f64| w.tokens.map(|t| t as f64 / median_s);
    w.tokens_per_s = rate(w.stats.median_s);
    w.achieved_gflops = w.flops / w.stats.median_s / 1e9;
    w.achieved_gbps = w.bytes / w.stats.median_s / 1e9;
    w.repetitions = samples
        .iter()
        .map(|s| {
            let stats = summarize(s, 3);
            Repetition {
                tokens_per_s: rate(stats.median_s),
                power: PowerRecord::unavailable("--power-source none", s.iter().sum(), n as u64),
                tokens_per_j: None,
                stats,
            }
        })
        .collect();
    w
}

/// `n` samples spread evenly at random within ±`rel_spread` of `median_s` (seeded, so the same
/// on every machine).
pub fn jittered(median_s: f64, rel_spread: f64, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| median_s * (1.0 + rel_spread * (2.0 * rng.next_f64() - 1.0)))
        .collect()
}
