//! The node summary `tokbench run --adapter all` writes beside the per-GPU results: which GPU
//! gave which result, and per workload what the node makes with every GPU (the sum of their
//! tokens/s) and how far its GPUs are apart (a slow GPU in a node is what a buyer must know).
//!
//! The GPUs run at once, one replica each, so what they share (the power and cooling of the
//! chassis, PCIe, the host's CPU) is loaded together, as in service; the summary says so in
//! `method`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::result::{RunResult, Scope};

/// The `kind` of a node summary document.
pub const KIND: &str = "tokbench-node-summary";
/// The layout version of a node summary document.
pub const VERSION: u32 = 1;
/// How the GPUs were measured, as the summary records it.
pub const METHOD: &str = "every GPU at once, one process each with the same request, started together; node tokens/s is the sum over the GPUs of what each measured while the others ran (each GPU's own timed windows, which overlap as far as their speeds let)";

/// The summary of one node whose GPUs each ran the same request.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSummary {
    /// Always "tokbench-node-summary".
    pub kind: String,
    /// Layout version of this document.
    pub version: u32,
    /// Host name of the node.
    pub hostname: String,
    /// How the GPUs were measured, in words.
    pub method: String,
    /// One entry per GPU, in adapter order.
    pub gpus: Vec<GpuRun>,
    /// One entry per workload that at least one GPU ran validly, in the first GPU's order.
    pub workloads: Vec<NodeWorkload>,
}

/// What one GPU's run left.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[derive(Debug, Clone, PartialEq)]
pub struct GpuRun {
    /// The adapter's index in `tokbench devices` (for `--adapter`).
    pub adapter_index: usize,
    /// The adapter's name.
    pub adapter: String,
    /// Its backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// The result file of its run; null when the run failed before writing one.
    pub result: Option<String>,
    /// The run's exit code (0 fine, 1 an invalid result or a failure, 2 bad input).
    pub exit_code: u8,
    /// Why the run failed, when it did.
    pub error: Option<String>,
}

/// One workload across the node's GPUs.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[derive(Debug, Clone, PartialEq)]
pub struct NodeWorkload {
    /// The workload id, as in each result.
    pub id: String,
    /// GPUs whose result holds this workload, valid, with a tokens/s figure.
    pub gpus: u32,
    /// The node's tokens/s: the sum over those GPUs.
    pub tokens_per_s: f64,
    /// The slowest GPU's tokens/s.
    pub slowest_tokens_per_s: f64,
    /// The fastest GPU's tokens/s.
    pub fastest_tokens_per_s: f64,
    /// fastest / slowest − 1: how far apart the GPUs are (0 for one GPU).
    pub spread: f64,
    /// The node's tokens per joule: its tokens/s over the sum of the GPUs' average power
    /// (each tokens/s ÷ tokens/J); null unless every GPU has a tokens/J figure of its own
    /// board or package: a meter the GPUs share (node wall, CPU package) was read by every
    /// replica at once, so its watts cannot be summed or split per GPU.
    pub tokens_per_j: Option<f64>,
}

impl NodeSummary {
    /// The summary of `runs` (each GPU's entry with its loaded result, when it has one).
    pub fn new(hostname: &str, runs: Vec<(GpuRun, Option<RunResult>)>) -> Self {
        let mut workloads: Vec<NodeWorkload> = Vec::new();
        let mut watts: Vec<Option<f64>> = Vec::new();
        for doc in runs.iter().filter_map(|(_, doc)| doc.as_ref()) {
            for w in doc.workloads.iter().filter(|w| w.valid) {
                let Some(rate) = w.tokens_per_s else { continue };
                let per_gpu = matches!(w.power.scope, Some(Scope::GpuBoard | Scope::GpuPackage));
                let power = w
                    .tokens_per_j
                    .filter(|j| *j > 0.0 && per_gpu)
                    .map(|j| rate / j);
                match workloads.iter().position(|n| n.id == w.id) {
                    Some(i) => {
                        let n = &mut workloads[i];
                        n.gpus += 1;
                        n.tokens_per_s += rate;
                        n.slowest_tokens_per_s = n.slowest_tokens_per_s.min(rate);
                        n.fastest_tokens_per_s = n.fastest_tokens_per_s.max(rate);
                        watts[i] = watts[i].zip(power).map(|(a, b)| a + b);
                    }
                    None => {
                        workloads.push(NodeWorkload {
                            id: w.id.clone(),
                            gpus: 1,
                            tokens_per_s: rate,
                            slowest_tokens_per_s: rate,
                            fastest_tokens_per_s: rate,
                            spread: 0.0,
                            tokens_per_j: None,
                        });
                        watts.push(power);
                    }
                }
            }
        }
        for (n, w) in workloads.iter_mut().zip(watts) {
            n.spread = n.fastest_tokens_per_s / n.slowest_tokens_per_s - 1.0;
            n.tokens_per_j = w.map(|w| n.tokens_per_s / w);
        }
        Self {
            kind: KIND.into(),
            version: VERSION,
            hostname: hostname.into(),
            method: METHOD.into(),
            gpus: runs.into_iter().map(|(gpu, _)| gpu).collect(),
            workloads,
        }
    }
}

/// A node summary in `text`: `None` when the text is not one (its `kind` is not [`KIND`]), else
/// the document or why it cannot be read (another layout version, a damaged file).
pub fn parse(text: &str) -> Option<Result<NodeSummary, String>> {
    #[derive(Deserialize)]
    struct Kind {
        kind: Option<String>,
        version: Option<u32>,
    }
    // A cheap look first: every result file a fleet comparison reads passes through here.
    if !text.contains(KIND) {
        return None;
    }
    let head: Kind = serde_json::from_str(text).ok()?;
    if head.kind.as_deref() != Some(KIND) {
        return None;
    }
    Some(match head.version {
        Some(VERSION) => {
            serde_json::from_str(text).map_err(|e| format!("not a valid node summary: {e}"))
        }
        other => Err(format!(
            "node summary layout version {other:?}; this tokbench reads version {VERSION}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::{decode, run, with_power};
    use crate::result::Provenance;

    fn gpu(i: usize, result: Option<&str>, exit_code: u8) -> GpuRun {
        GpuRun {
            adapter_index: i,
            adapter: format!("GPU {i}"),
            backend: "Vulkan".into(),
            result: result.map(Into::into),
            exit_code,
            error: (exit_code != 0).then(|| "it failed".into()),
        }
    }

    /// A result of GPU `i` decoding at `step_s` a token, with `watts` of board power.
    fn result(i: usize, step_s: f64, watts: Option<f64>) -> RunResult {
        let w = decode(512, &[step_s; 5]);
        let w = match watts {
            Some(p) => with_power(w, Scope::GpuBoard, Provenance::MeasuredCounter, p),
            None => w,
        };
        run("node", &format!("GPU {i}"), vec![w])
    }

    #[test]
    fn the_node_sums_its_gpus_and_says_how_far_apart_they_are() {
        let s = NodeSummary::new(
            "node",
            vec![
                (gpu(0, Some("a.json"), 0), Some(result(0, 0.01, Some(50.0)))),
                (
                    gpu(1, Some("b.json"), 0),
                    Some(result(1, 0.0125, Some(80.0))),
                ),
                (gpu(2, None, 1), None),
            ],
        );
        assert_eq!(s.gpus.len(), 3, "a failed GPU is listed, not dropped");
        assert_eq!(s.gpus[2].error.as_deref(), Some("it failed"));
        assert_eq!(s.workloads.len(), 1);
        let w = &s.workloads[0];
        assert_eq!(w.gpus, 2);
        assert!((w.tokens_per_s - 180.0).abs() < 1e-6, "{w:?}");
        assert!((w.spread - 0.25).abs() < 1e-9, "{w:?}");
        // 100 tok/s at 50 W and 80 tok/s at 80 W: 180 tok/s from 130 W.
        assert!(
            (w.tokens_per_j.unwrap() - 180.0 / 130.0).abs() < 1e-6,
            "{w:?}"
        );
    }

    #[test]
    fn a_meter_the_gpus_share_gives_no_node_tokens_per_joule() {
        let shared = |i| {
            let w = with_power(
                decode(512, &[0.01; 5]),
                Scope::NodeWall,
                Provenance::MeasuredSampled,
                400.0,
            );
            run("node", &format!("GPU {i}"), vec![w])
        };
        let s = NodeSummary::new(
            "node",
            vec![
                (gpu(0, Some("a.json"), 0), Some(shared(0))),
                (gpu(1, Some("b.json"), 0), Some(shared(1))),
            ],
        );
        assert_eq!(s.workloads[0].gpus, 2);
        assert!((s.workloads[0].tokens_per_s - 200.0).abs() < 1e-6);
        // Both replicas read the same 400 W wall: 800 W summed would halve tokens/J.
        assert_eq!(s.workloads[0].tokens_per_j, None);
    }

    #[test]
    fn a_summary_file_reads_back_and_other_documents_are_not_one() {
        let s = NodeSummary::new(
            "node",
            vec![(gpu(0, Some("a.json"), 0), Some(result(0, 0.01, None)))],
        );
        let text = serde_json::to_string_pretty(&s).unwrap();
        assert_eq!(parse(&text), Some(Ok(s.clone())));
        let newer = text.replace("\"version\": 1", "\"version\": 9");
        assert!(
            parse(&newer)
                .unwrap()
                .unwrap_err()
                .contains("version Some(9)")
        );
        let result = serde_json::to_string(&result(0, 0.01, None)).unwrap();
        assert_eq!(parse(&result), None);
        assert_eq!(parse("{\"a\": 1}\n{\"a\": 2}"), None);
    }

    #[test]
    fn tokens_per_j_needs_every_gpu_to_have_power() {
        let s = NodeSummary::new(
            "node",
            vec![
                (gpu(0, Some("a.json"), 0), Some(result(0, 0.01, Some(50.0)))),
                (gpu(1, Some("b.json"), 0), Some(result(1, 0.01, None))),
            ],
        );
        assert_eq!(s.workloads[0].gpus, 2);
        assert_eq!(s.workloads[0].tokens_per_j, None);
    }
}
