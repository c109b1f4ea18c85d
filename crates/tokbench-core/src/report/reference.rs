//! Real engines' result files read as reference rows beside tokbench's: `llama-bench -o json`
//! (an array of tests) or `-o jsonl` (one test per line), and `vllm bench serve --save-result`
//! (one JSON object per run). They are labelled with their tool and never ranked: their figures
//! come from another engine with real weights, measured its own way.

use serde::Serialize;
use serde_json::Value;

/// One reference figure set from another tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceRow {
    /// "llama-bench" or "vllm bench serve".
    pub tool: String,
    /// The file it came from.
    pub source: String,
    /// The model as the tool names it.
    pub model: String,
    /// The test: llama-bench's "pp512", "tg128 @ d512"; vLLM's "concurrency 8".
    pub test: String,
    /// Concurrent requests (vLLM's max_concurrency); null for llama-bench.
    pub concurrency: Option<u32>,
    /// Device or backend as the tool reports it.
    pub device: String,
    /// Tokens/s the tool reports: llama-bench's avg_ts (prompt or generated tokens per second),
    /// vLLM's output_throughput.
    pub tokens_per_s: Option<f64>,
    /// Prompt plus output tokens/s (vLLM's total_token_throughput).
    pub total_tokens_per_s: Option<f64>,
    /// 1 / median TPOT (vLLM), tokens/s per user.
    pub tokens_per_s_per_user: Option<f64>,
    /// Median TTFT, seconds (vLLM).
    pub ttft_p50_s: Option<f64>,
    /// p99 TTFT, seconds (vLLM).
    pub ttft_p99_s: Option<f64>,
    /// Median TPOT, seconds (vLLM).
    pub tpot_p50_s: Option<f64>,
    /// p99 TPOT, seconds (vLLM).
    pub tpot_p99_s: Option<f64>,
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

fn s(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn is_llama_bench(v: &Value) -> bool {
    v.is_object() && v.get("avg_ts").is_some() && v.get("n_prompt").is_some()
}

fn is_vllm(v: &Value) -> bool {
    v.is_object()
        && v.get("schema_version").is_none()
        && v.get("output_throughput").is_some()
        && v.get("median_tpot_ms").is_some()
}

fn llama_bench_row(v: &Value, source: &str) -> ReferenceRow {
    let (pp, tg) = (
        f(v, "n_prompt").unwrap_or(0.0),
        f(v, "n_gen").unwrap_or(0.0),
    );
    let depth = f(v, "n_depth").unwrap_or(0.0);
    let mut test = match (pp > 0.0, tg > 0.0) {
        (true, false) => format!("pp{pp}"),
        (false, true) => format!("tg{tg}"),
        _ => format!("pp{pp}+tg{tg}"),
    };
    if depth > 0.0 {
        test.push_str(&format!(" @ d{depth}"));
    }
    let device = [s(v, "backends"), s(v, "gpu_info")]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let model = match s(v, "model_type") {
        t if t.is_empty() => s(v, "model_filename"),
        t => t,
    };
    ReferenceRow {
        tool: "llama-bench".into(),
        source: source.into(),
        model,
        test,
        concurrency: None,
        device,
        tokens_per_s: f(v, "avg_ts"),
        total_tokens_per_s: None,
        tokens_per_s_per_user: None,
        ttft_p50_s: None,
        ttft_p99_s: None,
        tpot_p50_s: None,
        tpot_p99_s: None,
    }
}

fn vllm_row(v: &Value, source: &str) -> ReferenceRow {
    let ms = |key| f(v, key).map(|x| x / 1e3);
    let concurrency = v
        .get("max_concurrency")
        .and_then(Value::as_u64)
        .map(|c| c as u32);
    ReferenceRow {
        tool: "vllm bench serve".into(),
        source: source.into(),
        model: s(v, "model_id"),
        test: concurrency.map_or("unbounded concurrency".into(), |c| {
            format!("concurrency {c}")
        }),
        concurrency,
        device: s(v, "backend"),
        tokens_per_s: f(v, "output_throughput"),
        total_tokens_per_s: f(v, "total_token_throughput"),
        tokens_per_s_per_user: ms("median_tpot_ms").filter(|t| *t > 0.0).map(|t| 1.0 / t),
        ttft_p50_s: ms("median_ttft_ms"),
        ttft_p99_s: ms("p99_ttft_ms"),
        tpot_p50_s: ms("median_tpot_ms"),
        tpot_p99_s: ms("p99_tpot_ms"),
    }
}

/// The reference rows in `text` from `source`, when it is one of the files this module knows;
/// `None` otherwise (then it is read as a tokbench result, or skipped).
pub fn parse(text: &str, source: &str) -> Option<Vec<ReferenceRow>> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return match &v {
            Value::Array(tests) if !tests.is_empty() && tests.iter().all(is_llama_bench) => {
                Some(tests.iter().map(|t| llama_bench_row(t, source)).collect())
            }
            v if is_llama_bench(v) => Some(vec![llama_bench_row(v, source)]),
            v if is_vllm(v) => Some(vec![vllm_row(v, source)]),
            _ => None,
        };
    }
    // llama-bench -o jsonl: one test per line.
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str::<Value>)
        .collect::<Result<_, _>>()
        .ok()?;
    (!lines.is_empty() && lines.iter().all(is_llama_bench))
        .then(|| lines.iter().map(|t| llama_bench_row(t, source)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA_BENCH_JSON: &str = include_str!("../../../../tests/data/llama-bench.json");
    const LLAMA_BENCH_JSONL: &str = include_str!("../../../../tests/data/llama-bench.jsonl");
    const VLLM: &str = include_str!("../../../../tests/data/vllm-bench-serve.json");

    #[test]
    fn llama_bench_and_vllm_files_become_labelled_rows() {
        let rows = parse(LLAMA_BENCH_JSON, "lb.json").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].tool, "llama-bench");
        assert_eq!(rows[0].test, "pp512");
        assert_eq!(rows[1].test, "tg32 @ d512");
        assert_eq!(rows[1].tokens_per_s, Some(1.21));
        let lines = parse(LLAMA_BENCH_JSONL, "lb.jsonl").unwrap();
        assert_eq!(lines.len(), 2);
        let v = parse(VLLM, "v.json").unwrap();
        assert_eq!(v[0].tool, "vllm bench serve");
        assert_eq!(v[0].concurrency, Some(8));
        assert_eq!(v[0].tpot_p50_s, Some(0.025));
        assert_eq!(v[0].tokens_per_s_per_user, Some(40.0));
        // A tokbench result, or anything else, is not a reference file.
        assert!(parse(r#"{"schema_version": 1}"#, "x").is_none());
        assert!(parse("not json", "x").is_none());
    }
}
