//! `tokbench serve` end to end on the mock device (no GPU needed: the mock's step times stand
//! in for the engine), and `compare` over its results.

mod common;

use common::{
    Written, assert_code, assert_contains, assert_usage_error, run_ok, stderr, stdout, tokbench,
};
use tokbench::result::PointSource;
use tokbench::result::io::load;

fn serve(out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "serve",
        "--mock-device",
        "instant",
        "--preset",
        "tiny",
        "--isl",
        "64",
        "--osl",
        "16",
        "--requests",
        "8",
        "--idle-s",
        "0",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    tokbench(&args)
}

#[test]
fn serve_writes_every_figure_of_every_point_and_the_curve_has_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let out = serve(
        path.to_str().unwrap(),
        &[
            "--concurrency",
            "1,4,8",
            "--slo",
            "llama3.1-8b-interactive",
            "--estimate",
            "16",
        ],
    );
    assert_code(&out, 0);
    assert!(stdout(&out).contains("goodput at llama3.1-8b-interactive"));
    let doc = load(&path).unwrap();
    let s = doc.serving.expect("a serving section");
    let executed: Vec<_> = s
        .points
        .iter()
        .filter(|p| p.source == PointSource::Executed)
        .collect();
    assert_eq!(
        executed.iter().map(|p| p.concurrency).collect::<Vec<_>>(),
        [1, 4, 8]
    );
    for p in &executed {
        assert_eq!(p.requests_completed, 8);
        for pct in [p.ttft, p.tpot, p.itl, p.e2e] {
            assert!(
                pct.is_some_and(|x| x.p50_s > 0.0 && x.p99_s >= x.p50_s),
                "{p:?}"
            );
        }
        assert!(p.output_tokens_per_s_per_gpu > 0.0 && p.tokens_per_s_per_user > 0.0);
        assert!(p.meets_slo.is_some());
        assert!(p.power.is_some());
    }
    // More slots: longer TTFT, fewer tokens/s per user, more throughput per GPU.
    for w in executed.windows(2) {
        assert!(w[1].ttft.unwrap().p50_s > w[0].ttft.unwrap().p50_s);
        assert!(w[1].tokens_per_s_per_user < w[0].tokens_per_s_per_user);
        assert!(w[1].output_tokens_per_s_per_gpu > w[0].output_tokens_per_s_per_gpu);
    }
    // An estimate beside every executed point, and one for the concurrency only estimated.
    assert_eq!(s.estimate_gaps.len(), 3);
    assert!(
        s.points
            .iter()
            .any(|p| p.concurrency == 16 && p.source == PointSource::Estimated)
    );
    assert!(!s.frontier_concurrencies.is_empty());
    assert!(doc.finished_at.is_some());
}

#[test]
fn bad_serving_input_exits_2_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let p = path.to_str().unwrap();
    assert_usage_error(&serve(p, &["--concurrency", "0"]), "--concurrency");
    assert_usage_error(
        &serve(p, &["--slo", "llama9-server"]),
        "not a known SLO set",
    );
    assert_usage_error(&serve(p, &["--scenario", "poetry"]), "--scenario");
    assert_usage_error(
        &serve(p, &["--concurrency", "4", "--step-tokens", "2"]),
        "--step-tokens",
    );
    // 4096 slots of 64 + 16 positions do not fit in 1 MiB.
    assert_usage_error(
        &serve(
            p,
            &[
                "--concurrency",
                "4096",
                "--step-tokens",
                "4096",
                "--device-memory-gib",
                "0.001",
            ],
        ),
        "--isl 64 + --osl 16 at concurrency 4096",
    );
    assert!(!path.exists(), "nothing is written for bad input");
}

#[test]
fn compare_ranks_serving_results_at_an_interactivity_and_draws_their_curves() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    // A smaller step budget chunks the prompts finer: a different curve.
    assert_code(&serve(a.to_str().unwrap(), &["--concurrency", "1,4,8"]), 0);
    assert_code(
        &serve(
            b.to_str().unwrap(),
            &["--concurrency", "1,4,8", "--step-tokens", "16"],
        ),
        0,
    );
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = tokbench(&[
        "compare",
        a,
        b,
        "--at-interactivity",
        "50",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let nodes = report["serving"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["rank"], 1);
    assert_eq!(nodes[1]["rank"], 2);
    assert!(
        nodes[0]["throughput_at"].as_f64().unwrap() >= nodes[1]["throughput_at"].as_f64().unwrap()
    );
    let csv = stdout(&tokbench(&["compare", a, b, "--format", "csv"]));
    // A header, then one row per point: 3 executed and 3 estimated per node.
    assert_eq!(csv.lines().count(), 1 + 12, "{csv}");
    let md = stdout(&tokbench(&["compare", a, b, "--format", "md"]));
    assert!(md.contains("### Serving"), "{md}");
    let html = stdout(&tokbench(&["compare", a, b, "--format", "html"]));
    assert!(
        html.contains("<svg") && html.contains("tokens/s per user"),
        "{html}"
    );
    let bad = tokbench(&["compare", a, "--at-interactivity", "-3"]);
    assert_code(&bad, 2);
}

#[test]
fn other_tools_files_are_reference_rows_beside_serving_results_and_never_ranked() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    assert_code(&serve(a.to_str().unwrap(), &["--concurrency", "1,4"]), 0);
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let (lb, lbl, vllm) = (
        format!("{data}llama-bench.json"),
        format!("{data}llama-bench.jsonl"),
        format!("{data}vllm-bench-serve.json"),
    );
    let args = ["compare", a.to_str().unwrap(), &lb, &lbl, &vllm];
    let out = tokbench(&[&args[..], &["--format", "json"]].concat());
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let refs = report["references"].as_array().unwrap();
    assert_eq!(refs.len(), 5);
    assert!(refs.iter().any(|r| r["tool"] == "vllm bench serve"));
    assert!(refs.iter().all(|r| r.get("rank").is_none()));
    assert_eq!(report["serving"]["nodes"].as_array().unwrap().len(), 1);
    assert!(report["skipped"].as_array().unwrap().is_empty());
    let table = stdout(&tokbench(&args));
    assert!(table.contains("reference rows from other tools") && table.contains("llama-bench"));
    // CSV: the serving points, then the reference rows in full precision, a blank line apart.
    let csv = stdout(&tokbench(&[&args[..], &["--format", "csv"]].concat()));
    let tables: Vec<&str> = csv.split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{csv}");
    assert!(tables[0].starts_with("requests_served,"), "{csv}");
    let refs: Vec<&str> = tables[1].lines().collect();
    assert!(
        refs[0].starts_with("tool,model,test,device,tok_s,"),
        "{csv}"
    );
    assert_eq!(refs.len(), 1 + 5, "{csv}");
    assert!(
        refs.iter().any(|r| r.starts_with("vllm bench serve,")),
        "{csv}"
    );
}

#[test]
fn on_a_cpu_adapter_serve_defaults_to_a_small_preset_and_records_why() {
    // This machine's adapter is lavapipe: without --preset, serve takes `tiny` (and one
    // request per slot), says so and records both choices in the result.
    let Written { out, doc, .. } = run_ok(&argv![
        "serve --isl 12 --osl 3 --concurrency 1,2 --power-source none --idle-s 0"
    ]);
    assert_contains(&stderr(&out), "--preset tiny: CPU adapter");
    assert_eq!(doc.plan.model.as_ref().unwrap().preset, "tiny");
    let flags: Vec<&str> = doc
        .plan
        .device_defaults
        .iter()
        .map(|d| d.flag.as_str())
        .collect();
    assert_eq!(flags, ["--preset", "--requests"]);
    let s = doc.serving.unwrap();
    assert!(
        s.points
            .iter()
            .filter(|p| p.source == PointSource::Executed)
            .all(|p| p.requests_completed == p.concurrency),
        "{:?}",
        s.points
    );
}
