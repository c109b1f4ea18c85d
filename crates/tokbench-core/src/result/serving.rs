//! The `serving` section of a result: what `tokbench serve` measured at each concurrency, the
//! analytic estimate beside it, the Pareto frontier and the goodput at an SLO. The figures are
//! computed by [`crate::serving`]; these are only the types the document holds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PowerRecord;

/// A `tokbench serve` run: a continuous-batching schedule of the model's kernels at one or more
/// concurrencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServingSection {
    /// The named scenario ("chat", "reasoning", "summarize") or "custom" for free lengths.
    pub scenario: String,
    /// Prompt tokens of every request (input sequence length).
    pub isl_tokens: u32,
    /// Output tokens of every request (output sequence length), the first one included.
    pub osl_tokens: u32,
    /// Tokens one engine step may process (decode rows plus the prefill chunk).
    pub step_token_budget: u32,
    /// The scheduling policy, in words.
    pub policy: String,
    /// Requests each concurrency point completes, as given with `--requests`; null with the
    /// default (a multiple of the concurrency: see each point's `requests_completed`) or when
    /// the points ran for a duration.
    pub requests_per_point: Option<u32>,
    /// Engine seconds each point ran for when the run was bounded by `--duration`; null when
    /// bounded by a request count.
    pub duration_limit_s: Option<f64>,
    /// GPUs the engine ran on (always 1: tokbench runs one device); "per GPU" figures divide by
    /// it.
    pub gpus: u32,
    /// The latency objectives the goodput is judged at; null when none was given.
    pub slo: Option<Slo>,
    /// One entry per point: executed points in the order they ran, then estimated ones.
    pub points: Vec<ServingPoint>,
    /// Concurrencies of the executed points on the Pareto frontier of output tokens/s per GPU
    /// against tokens/s per user (no other executed point is better in both), by concurrency.
    pub frontier_concurrencies: Vec<u32>,
    /// The best executed point that meets the SLO at p99; null without an SLO or when no
    /// point meets it.
    pub goodput: Option<Goodput>,
    /// How far the analytic estimate was from the executed schedule where both exist.
    pub estimate_gaps: Vec<EstimateGap>,
}

/// Whether a point's figures were measured by running the schedule or estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PointSource {
    /// The schedule ran on the device; every step was timed.
    Executed,
    /// The same schedule with step times predicted from isolated prefill and decode
    /// measurements (an estimate, not a measurement).
    Estimated,
}

/// The 50th, 90th and 99th percentiles of a latency, in seconds (linear interpolation
/// between order statistics); null when nothing was observed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Percentiles {
    /// Median, seconds.
    pub p50_s: f64,
    /// 90th percentile, seconds.
    pub p90_s: f64,
    /// 99th percentile, seconds.
    pub p99_s: f64,
    /// Mean, seconds.
    pub mean_s: f64,
    /// Observations the percentiles are taken over.
    pub count: u64,
}

/// The figures of one concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServingPoint {
    /// Request slots, each with its own KV cache.
    pub concurrency: u32,
    /// Executed or estimated.
    pub source: PointSource,
    /// Requests that produced all their output tokens.
    pub requests_completed: u32,
    /// Engine steps run (each one batched pass).
    pub steps: u64,
    /// Engine time of the whole point: the sum of its GPU-timed steps, seconds.
    pub duration_s: f64,
    /// Output tokens produced in the whole point.
    pub output_tokens: u64,
    /// Prompt tokens prefilled in the whole point.
    pub prompt_tokens: u64,
    /// Engine seconds of the steady state: from when every slot first holds a request to when
    /// the first slot drains with no request left to take (ML.ENERGY's window); the whole
    /// point when it never fills.
    pub steady_window_s: f64,
    /// True when the steady window is the whole point because the slots never all filled or
    /// never drained before the end.
    pub steady_window_is_whole_point: bool,
    /// Output tokens per second per GPU over the steady window.
    pub output_tokens_per_s_per_gpu: f64,
    /// Prompt plus output tokens per second per GPU over the steady window.
    pub total_tokens_per_s_per_gpu: f64,
    /// Output tokens per second over the whole point (what `vllm bench serve` reports as
    /// output token throughput).
    pub run_output_tokens_per_s: f64,
    /// Interactivity: 1 / median TPOT, output tokens per second one user sees.
    pub tokens_per_s_per_user: f64,
    /// Time to first token: admission into a slot to the end of the step that prefilled the
    /// last prompt token.
    pub ttft: Option<Percentiles>,
    /// Time per output token of each completed request: (end-to-end − TTFT) / (output − 1).
    pub tpot: Option<Percentiles>,
    /// Inter-token latency: every gap between consecutive output tokens of a request.
    pub itl: Option<Percentiles>,
    /// End-to-end latency of each completed request.
    pub e2e: Option<Percentiles>,
    /// Power over the steady window; null for estimated points.
    pub power: Option<PowerRecord>,
    /// Average power over the steady window, watts; null without a measured source.
    pub avg_power_w: Option<f64>,
    /// Joules per output token over the steady window; null without power.
    pub energy_per_output_token_j: Option<f64>,
    /// Joules per prompt-or-output token over the steady window; null without power.
    pub energy_per_total_token_j: Option<f64>,
    /// Output tokens per joule over the steady window; null without power.
    pub output_tokens_per_j: Option<f64>,
    /// Whether the p99 TTFT and p99 TPOT meet the run's SLO; null without an SLO.
    pub meets_slo: Option<bool>,
}

/// Latency objectives, judged at the 99th percentile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// The named set ("llama3.1-8b-server", ...) or "custom".
    pub name: String,
    /// Where the figures come from.
    pub source: String,
    /// Largest allowed p99 time to first token, seconds.
    pub ttft_s: Option<f64>,
    /// Largest allowed p99 time per output token, seconds.
    pub tpot_s: Option<f64>,
}

/// The best throughput that still meets the SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Goodput {
    /// The highest executed concurrency whose p99 TTFT and TPOT meet the SLO.
    pub concurrency: u32,
    /// Its output tokens per second per GPU.
    pub output_tokens_per_s_per_gpu: f64,
    /// Its tokens per second per user.
    pub tokens_per_s_per_user: f64,
}

/// Executed against estimated throughput at one concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateGap {
    /// The concurrency both exist at.
    pub concurrency: u32,
    /// Executed output tokens/s per GPU.
    pub executed_tokens_per_s: f64,
    /// Estimated output tokens/s per GPU.
    pub estimated_tokens_per_s: f64,
    /// (estimated − executed) / executed.
    pub relative_gap: f64,
}
