//! Hand-made result documents for the report's tests, unit and integration alike: built from the
//! result types, never captured from one machine. Public (and hidden from the docs) so that
//! `tests/` can write them to files and run the binary on them.

use crate::model::Phase;
use crate::model::presets;
use crate::report::load::Source;
use crate::result::*;
use crate::stats::{SplitMix64, summarize, summarize_repetitions};

pub use crate::result::fixtures::node;
use crate::result::fixtures::workload;

/// `doc` as read from a file named after its host: `<hostname>.json`.
pub fn source(doc: RunResult) -> Source {
    Source {
        label: format!("{}.json", doc.node.hostname),
        doc,
    }
}

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
    let mut w = counted(
        format!("{}-tiny-f32-b1-{size}", phase.name()),
        phase.into(),
        samples_s,
        tokens,
        "cpu-f64 forward of the whole model: logits",
    );
    w.phase = Some(phase);
    w.preset = Some("tiny".into());
    w.model = Some(tiny);
    w.batch = Some(1);
    w.prompt_len = prompt_len;
    w.depth = depth;
    w.layers_run = Some(tiny.n_layers);
    w.weights_shared_across_layers = Some(false);
    w.tokens = Some(tokens);
    w.tokens_per_s = Some(tokens as f64 / w.stats.median_s);
    w
}

/// A valid workload that counts round figures for `tokens` tokens (reports never recompute
/// them), checked against `reference`.
fn counted(
    id: String,
    kind: WorkloadKind,
    samples_s: &[f64],
    tokens: u64,
    reference: &str,
) -> WorkloadResult {
    workload(
        id,
        kind,
        samples_s,
        (1e6 * tokens as f64, 4e5 * tokens as f64),
        Correctness {
            nmse: Some(1e-12),
            max_abs_err: Some(1e-6),
            reference: reference.into(),
            nmse_threshold: 1e-5,
            failure: None,
        },
    )
}

/// A valid probe workload (`ProbeFma` or `ProbeCopy`) timed at `samples_s`: no tokens.
pub fn probe(kind: WorkloadKind, samples_s: &[f64]) -> WorkloadResult {
    counted(kind.name().into(), kind, samples_s, 1, "exact")
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
        provenance,
        avg_power_w: Some(avg_power_w),
        ..PowerRecord::counter("rapl", scope, energy_j, None, window_s, executions)
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
