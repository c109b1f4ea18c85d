//! `tokbench compare` and `tokbench check` end to end: exit codes, messages and outputs over
//! result files written from hand-made documents. No GPU involved.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{assert_code, assert_contains, read_json, stderr, stdout, tokbench};
use tokbench::report::fixtures::{self, decode, jittered, prefill, with_power};
use tokbench::result::{Provenance, RunResult, Scope};

fn write(dir: &Path, name: &str, doc: &RunResult) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    path
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// One prefill and one decode on `host`, timed around `prefill_s` and `decode_s` with samples
/// within ±`spread`.
fn run(host: &str, prefill_s: f64, decode_s: f64, spread: f64, seed: u64) -> RunResult {
    fixtures::run(
        host,
        "GPU A",
        vec![
            prefill(128, &jittered(prefill_s, spread, 20, seed)),
            decode(128, &jittered(decode_s, spread, 20, seed + 1)),
        ],
    )
}

fn check(dir: &Path, baseline: &RunResult, current: &RunResult, extra: &[&str]) -> Output {
    let b = write(dir, "baseline.json", baseline);
    let c = write(dir, "current.json", current);
    let mut args = vec!["check", "--baseline", arg(&b), "--current", arg(&c)];
    args.extend(extra);
    tokbench(&args)
}

#[test]
fn check_calls_a_tight_20_percent_slowdown_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(
        dir.path(),
        &run("ci", 0.010, 0.001, 0.01, 1),
        &run("ci", 0.012, 0.001, 0.01, 3),
        &[],
    );
    assert_code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("FAIL: 1 regression"), "{text}");
    assert!(text.contains("prefill-tiny-f32-b1-p128"), "{text}");
}

#[test]
fn check_passes_one_percent_noise_either_way() {
    let dir = tempfile::tempdir().unwrap();
    for (p, d) in [(0.0101, 0.00099), (0.0099, 0.00101)] {
        let out = check(
            dir.path(),
            &run("ci", 0.010, 0.001, 0.01, 1),
            &run("ci", p, d, 0.01, 3),
            &[],
        );
        assert_code(&out, 0);
        assert_contains(&stdout(&out), "PASS: no regression");
    }
}

#[test]
fn check_calls_a_20_percent_slowdown_hidden_in_wild_noise_inconclusive() {
    let dir = tempfile::tempdir().unwrap();
    let base = fixtures::run(
        "ci",
        "GPU A",
        vec![prefill(128, &jittered(0.010, 0.8, 10, 1))],
    );
    let current = fixtures::run(
        "ci",
        "GPU A",
        vec![prefill(128, &jittered(0.012, 0.8, 10, 2))],
    );
    let out = check(dir.path(), &base, &current, &["--format", "json"]);
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    // Not a regression: the evidence does not say it is real; and too wide to call noise.
    assert_eq!(report["workloads"][0]["verdict"], "inconclusive");
    assert!(report["workloads"][0]["change_low"].as_f64().unwrap() < 0.05);
    assert_eq!(report["inconclusive"], 1);
    let needed = report["workloads"][0]["repetitions_to_decide"]
        .as_u64()
        .unwrap();
    assert!(needed >= 3, "{report}");
    // Shown as such, and fatal only with --strict.
    let out = check(dir.path(), &base, &current, &[]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("PASS: no regression, 1 inconclusive"),
        "{text}"
    );
    assert!(text.contains(&format!("(run --repeat {needed})")), "{text}");
    let out = check(dir.path(), &base, &current, &["--strict"]);
    assert_code(&out, 1);
    assert_contains(&stdout(&out), "FAIL: 1 inconclusive (--strict)");
}

/// `tokbench run --repeat N` on the mock device: the probes, a prefill and a decode of `tiny`.
fn repeated_run(dir: &Path, name: &str, repeat: &str) -> PathBuf {
    let path = dir.join(name);
    let out = tokbench(&argv![
        "run --mock-device instant --preset tiny --prompt-len 16 --depth 16 --repeat",
        repeat,
        "--samples 6 --min-time 0 --max-warmup 0 --power-source none --idle-s 0 --out",
        arg(&path)
    ]);
    assert_code(&out, 0);
    path
}

#[test]
fn run_repeat_keeps_every_repetition_and_check_gates_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let base = repeated_run(dir.path(), "base.json", "3");
    let cur = repeated_run(dir.path(), "cur.json", "3");
    let doc = read_json(&base);
    assert_eq!(doc["plan"]["repetitions"], 3);
    for w in doc["workloads"].as_array().unwrap() {
        let reps = w["repetitions"].as_array().unwrap();
        assert_eq!(reps.len(), 3, "{}", w["id"]);
        let mut medians: Vec<f64> = reps
            .iter()
            .map(|r| {
                assert!(r["stats"]["samples_s"].as_array().unwrap().len() >= 6);
                r["stats"]["median_s"].as_f64().unwrap()
            })
            .collect();
        medians.sort_by(f64::total_cmp);
        assert_eq!(
            w["stats"]["median_s"].as_f64(),
            Some(medians[1]),
            "{}",
            w["id"]
        );
    }
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--baseline", arg(&base), "--current", arg(&cur)];
        args.extend(extra);
        tokbench(&args)
    };
    let out = check(&["--format", "json"]);
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["run_to_run_noise"], true);
    for w in report["workloads"].as_array().unwrap() {
        assert_eq!(w["basis"], "repetitions", "{w}");
        assert_eq!(
            (
                w["repetitions_baseline"].as_u64(),
                w["repetitions_current"].as_u64()
            ),
            (Some(3), Some(3))
        );
        assert!(
            (w["confidence"].as_f64().unwrap() - 0.9).abs() < 1e-9,
            "{w}"
        );
    }
    // The same result made 25% slower is caught, and the output says it was scaled.
    let out = check(&["--scale-current", "1.25", "--threshold", "10"]);
    assert_code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("FAIL: 2 regressions"), "{text}");
    assert!(text.contains("3 v 3 repetitions, 90%"), "{text}");
    assert!(
        text.contains("--scale-current 1.25: every current time was multiplied"),
        "{text}"
    );
    let out = check(&["--scale-current", "0"]);
    assert_code(&out, 2);
    assert_contains(&stderr(&out), "is not a factor");
}

#[test]
fn check_of_single_runs_says_the_verdict_ignores_run_to_run_noise() {
    let dir = tempfile::tempdir().unwrap();
    let base = repeated_run(dir.path(), "base.json", "1");
    let cur = repeated_run(dir.path(), "cur.json", "3");
    let doc = read_json(&base);
    assert_eq!(
        doc["workloads"][2]["repetitions"].as_array().map(Vec::len),
        Some(0)
    );
    let out = tokbench(&argv![
        "check --baseline",
        arg(&base),
        "--current",
        arg(&cur),
        "--format json"
    ]);
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["run_to_run_noise"], false);
    assert_eq!(report["workloads"][2]["basis"], "samples");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("the verdict ignores run-to-run noise")
            && notes.contains("(1 in the baseline, 3 now)")
            && notes.contains("widened by the probes' movement"),
        "{notes}"
    );
}

#[test]
fn check_fails_an_invalid_current_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut current = run("ci", 0.010, 0.001, 0.01, 3);
    current.workloads[1].valid = false;
    let out = check(
        dir.path(),
        &run("ci", 0.010, 0.001, 0.01, 1),
        &current,
        &["--format", "md"],
    );
    assert_code(&out, 1);
    assert_contains(
        &stdout(&out),
        "## tokbench check: FAIL: 1 invalid current result(s)",
    );
    assert!(
        stderr(&out).contains("tokbench check: FAIL"),
        "verdict in the log too"
    );
}

#[test]
fn check_refuses_other_hardware_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut current = run("ci", 0.012, 0.001, 0.01, 3);
    current.node.cpu_brand = "Other CPU".into();
    let base = run("ci", 0.010, 0.001, 0.01, 1);
    let out = check(dir.path(), &base, &current, &[]);
    assert_code(&out, 2);
    assert_contains(
        &stderr(&out),
        "node.cpu_brand: \"Example CPU\" (baseline) vs \"Other CPU\"",
    );
    assert!(stdout(&out).is_empty());
    let out = check(dir.path(), &base, &current, &["--allow-different-hardware"]);
    assert_code(&out, 1);
    assert_contains(&stdout(&out), "hardware differs (allowed)");
}

#[test]
fn check_input_errors_exit_2_with_the_path_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = write(d, "good.json", &run("ci", 0.010, 0.001, 0.01, 1));
    std::fs::write(d.join("truncated.json"), "{\"schema_version\": 1, \"tool\"").unwrap();
    let mut negative = run("ci", 0.010, 0.001, 0.01, 1);
    negative.workloads[0].stats.median_s = -1.0;
    write(d, "negative.json", &negative);
    let mut other = run("ci", 0.010, 0.001, 0.01, 1);
    other.workloads = vec![decode(4096, &jittered(0.004, 0.01, 20, 5))];
    let other = write(d, "other.json", &other);
    for (baseline, needle) in [
        (d.join("missing.json"), "missing.json: cannot read"),
        (d.join("truncated.json"), "truncated.json: not valid JSON"),
        (
            d.join("negative.json"),
            "negative.json: workloads[0].stats.median_s = -1.0 is negative",
        ),
        (other, "no workload in common"),
    ] {
        let out = tokbench(&argv![
            "check --baseline",
            arg(&baseline),
            "--current",
            arg(&good)
        ]);
        assert_code(&out, 2);
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    let out = tokbench(&argv![
        "check --baseline",
        arg(&good),
        "--current",
        arg(&good),
        "--threshold lots"
    ]);
    assert_code(&out, 2);
}

#[test]
fn check_writes_bencher_metric_format() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("bmf.json");
    let out = check(
        dir.path(),
        &run("ci", 0.010, 0.001, 0.01, 1),
        &run("ci", 0.010, 0.001, 0.01, 3),
        &["--format", "bmf", "--out", out_path.to_str().unwrap()],
    );
    assert_code(&out, 0);
    let bmf = read_json(&out_path);
    let tps = bmf["prefill-tiny-f32-b1-p128"]["tokens-per-s"]["value"]
        .as_f64()
        .unwrap();
    assert!((tps - 12_800.0).abs() < 300.0, "{tps}");
    assert!(
        bmf["decode-tiny-f32-b1-d128"]["latency"]["value"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

/// A fleet directory: four alike nodes, one slow, one invalid, plus junk.
fn fleet(dir: &Path) {
    for (i, s) in [0.0100, 0.0101, 0.0099, 0.0100].iter().enumerate() {
        write(
            dir,
            &format!("fleet/n{i}/r.json"),
            &run(&format!("node-{i}"), *s, 0.001, 0.01, i as u64),
        );
    }
    write(
        dir,
        "fleet/slow/r.json",
        &run("node-slow", 0.014, 0.0014, 0.01, 9),
    );
    std::fs::write(dir.join("fleet/broken.json"), "{ not json").unwrap();
    std::fs::write(dir.join("fleet/notes.txt"), "ignored: not a .json file").unwrap();
}

#[test]
fn compare_ranks_a_fleet_and_lists_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    let out = tokbench(&["compare", arg(&dir.path().join("fleet"))]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("5 result(s), 2 workload(s), 1 skipped"),
        "{text}"
    );
    assert!(text.contains("SLOW NODE"), "{text}");
    assert!(text.contains("broken.json: not valid JSON"), "{text}");
    assert!(!text.contains("notes.txt"), "{text}");

    let out = tokbench(&[
        "compare",
        arg(&dir.path().join("fleet")),
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entries = report["workloads"][0]["entries"].as_array().unwrap();
    assert_eq!(entries.last().unwrap()["node"], "node-slow");
    assert_eq!(entries.last().unwrap()["slow"], true);
    assert_eq!(report["workloads"][0]["metric"], "tokens_per_s");
    assert!(
        stderr(&out).contains("skipped ") && stderr(&out).contains("broken.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn compare_reads_json_lines_and_costs_from_a_toml_prices_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let powered = |host: &str, s: f64, watts: f64| {
        let w = with_power(
            prefill(128, &jittered(s, 0.01, 20, 4)),
            Scope::GpuBoard,
            Provenance::MeasuredCounter,
            watts,
        );
        serde_json::to_string(&fixtures::run(host, "GPU A", vec![w])).unwrap()
    };
    let lines = format!(
        "{}\nsome log line\n{}\n",
        powered("a", 0.010, 300.0),
        powered("b", 0.012, 200.0)
    );
    std::fs::write(d.join("fleet.jsonl"), lines).unwrap();
    std::fs::write(
        d.join("prices.toml"),
        "currency = \"USD\"\n[adapters.\"GPU A\"]\nrental_per_hour = 3.0\n",
    )
    .unwrap();
    let out = tokbench(&argv![
        "compare",
        arg(&d.join("fleet.jsonl")),
        "--price-kwh 0.25 --prices",
        arg(&d.join("prices.toml")),
        "--metric cost_per_mtok --format csv"
    ]);
    assert_code(&out, 0);
    let csv = stdout(&out);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{csv}");
    // "a" is faster, so its rental share per token is lower, and that dominates.
    assert_eq!((rows[0][col("node")], rows[0][col("rank")]), ("a", "1"));
    let cost: f64 = rows[0][col("cost_per_mtok")].parse().unwrap();
    let energy: f64 = rows[0][col("energy_cost_per_mtok")].parse().unwrap();
    let hardware: f64 = rows[0][col("hardware_cost_per_mtok")].parse().unwrap();
    assert!((cost - energy - hardware).abs() < 1e-12 && energy > 0.0 && hardware > 0.0);
    assert_contains(
        &stderr(&out),
        "fleet.jsonl: 1 line(s) that are not JSON documents ignored",
    );
}

#[test]
fn compare_writes_a_self_contained_html_file() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    let mut evil = run("<script>alert(1)</script>", 0.01, 0.001, 0.01, 5);
    evil.adapter.name = "GPU A".into();
    write(dir.path(), "fleet/evil.json", &evil);
    let html = dir.path().join("report.html");
    let out = tokbench(&argv![
        "compare",
        arg(&dir.path().join("fleet")),
        "--format html --out",
        arg(&html)
    ]);
    assert_code(&out, 0);
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>") && text.contains("<svg"));
    assert!(!text.contains("<script"), "unescaped host name");
    assert!(text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    for fetch in [" src=", "<link", "url("] {
        assert!(
            !text.contains(fetch),
            "self-contained: nothing fetched ({fetch})"
        );
    }
}

#[test]
fn compare_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Nothing readable: 2, each input named.
    std::fs::create_dir(d.join("empty")).unwrap();
    let out = tokbench(&[
        "compare",
        arg(&d.join("empty")),
        arg(&d.join("missing.json")),
    ]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("empty: directory holds no .json")
            && err.contains("missing.json: cannot read"),
        "{err}"
    );
    // Kernel results only: nothing with tokens to rank.
    let kernel_only = write(d, "kernel.json", &fixtures::node("k", "GPU A"));
    assert_code(&tokbench(&["compare", arg(&kernel_only)]), 2);
    // An invalid result among valid ones: compared, left out, exit 1.
    let mut bad = run("bad", 0.01, 0.001, 0.01, 1);
    bad.workloads[0].valid = false;
    write(d, "mixed/bad.json", &bad);
    write(d, "mixed/good.json", &run("good", 0.01, 0.001, 0.01, 2));
    let out = tokbench(&["compare", arg(&d.join("mixed"))]);
    assert_code(&out, 1);
    assert!(stdout(&out).contains("bad (") && stdout(&out).contains("invalid"));
    // Usage errors.
    let good = d.join("mixed/good.json");
    assert_code(
        &tokbench(&["compare", arg(&good), "--metric", "cost_per_mtok"]),
        2,
    );
    assert_code(&tokbench(&["compare", arg(&good), "--metric", "speed"]), 2);
    assert_code(&tokbench(&["compare", arg(&good), "--price-kwh", "-1"]), 2);
    std::fs::write(
        d.join("prices.json"),
        r#"{"nodes": {"x": {"hardware_price": 5}}}"#,
    )
    .unwrap();
    let out = tokbench(&[
        "compare",
        arg(&good),
        "--prices",
        arg(&d.join("prices.json")),
    ]);
    assert_code(&out, 2);
    assert_contains(&stderr(&out), "prices.json");
    assert_code(&tokbench(&["compare"]), 2);
}

#[test]
fn help_documents_the_exit_codes() {
    for sub in ["compare", "check"] {
        let out = tokbench(&[sub, "--help"]);
        assert_code(&out, 0);
        let text = stdout(&out);
        assert!(
            text.contains("Exit codes") && text.contains("2  usage"),
            "{sub}: {text}"
        );
    }
}

/// A real run on lavapipe (`tokbench run --preset tiny --idle-s 0 --watts 65`): declared power.
fn lavapipe_result() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lavapipe-tiny-declared-65w.json")
}

/// `tokbench compare --format json` over the lavapipe result with `extra` flags, parsed.
fn compare_json(extra: &[&str]) -> serde_json::Value {
    let result = lavapipe_result();
    let mut args = vec!["compare", arg(&result), "--format", "json"];
    args.extend_from_slice(extra);
    let out = tokbench(&args);
    assert_code(&out, 0);
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Each workload's cost of the first (only) entry.
fn costs(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["entries"][0]["cost"].clone())
        .collect()
}

const PRICES_TOML: &str = "\
currency = \"USD\"
price_kwh = 0.25

[carbon]
grid_g_per_kwh = 400
green_g_per_kwh = 20
green_share = 0.35

[tiers.owned]
hardware_price = 1500
lifetime_years = 4

[adapters.\"llvmpipe (LLVM 15.0.6, 256 bits)\"]
tier = \"owned\"
";

#[test]
fn pue_grows_the_energy_cost_and_carbon_of_a_lavapipe_run_by_its_factor() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, PRICES_TOML).unwrap();
    let at = |pue: &str| compare_json(&["--prices", arg(&prices), "--pue", pue]);
    let (base, grown) = (at("1.0"), at("1.3"));
    assert_eq!(
        grown["cost_terms"]["energy_basis"],
        serde_json::json!({"kind": "measured_times_pue", "pue": 1.3})
    );
    let (base, grown) = (costs(&base), costs(&grown));
    assert!(base.len() >= 2, "prefill and decode: {base:?}");
    for (b, g) in base.iter().zip(&grown) {
        let ratio = |field: &str| g[field].as_f64().unwrap() / b[field].as_f64().unwrap();
        assert!((ratio("energy_per_mtok") - 1.3).abs() < 1e-9, "{b} {g}");
        assert!((ratio("carbon_g_per_mtok") - 1.3).abs() < 1e-9, "{b} {g}");
        assert_eq!(g["hardware_per_mtok"], b["hardware_per_mtok"]);
        assert_eq!(g["hardware_basis"], "tier owned");
    }
    // The table says which power the costs used.
    let result = lavapipe_result();
    let out = tokbench(&argv![
        "compare",
        arg(&result),
        "--prices",
        arg(&prices),
        "--pue 1.3"
    ]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("measured power × PUE 1.3"), "{text}");
    assert!(text.contains("gCO2e/Mtok"), "{text}");
    // Provisioned power instead: energy from run time, whatever the measured power.
    let provisioned = compare_json(&["--prices", arg(&prices), "--provisioned-kw-per-gpu", "1.73"]);
    let tps = provisioned["workloads"][0]["entries"][0]["tokens_per_s"]
        .as_f64()
        .unwrap();
    let kwh = costs(&provisioned)[0]["energy_kwh_per_mtok"]
        .as_f64()
        .unwrap();
    assert!((kwh - 1.73 * 1e6 / tps / 3600.0).abs() < 1e-9 * kwh);
}

#[test]
fn a_time_of_use_schedule_gives_the_price_paid_over_the_run_hours() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(
        &prices,
        "[time_of_use]\n0-7 = 0.10\n7-23 = 0.30\n23-24 = 0.10\n",
    )
    .unwrap();
    let report = compare_json(&["--prices", arg(&prices), "--run-hours", "0-8,22-24"]);
    // By hand: hours 0-6 at 0.10 (7 h), 7 and 22 at 0.30, 23 at 0.10 → 1.4 over 10 h = 0.14.
    let paid = report["cost_terms"]["energy_price_paid_kwh"]
        .as_f64()
        .unwrap();
    assert!((paid - 0.14).abs() < 1e-12, "{paid}");
    assert_eq!(report["cost_terms"]["run_hours_per_day"], 10.0);
    for c in costs(&report) {
        let (kwh, energy) = (
            c["energy_kwh_per_mtok"].as_f64().unwrap(),
            c["energy_per_mtok"].as_f64().unwrap(),
        );
        assert!((energy - kwh * 0.14).abs() < 1e-12 * energy, "{c}");
    }
}

#[test]
fn bad_prices_files_name_the_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let result = lavapipe_result();
    for (text, needle) in [
        (
            "[time_of_use]\n0-8 = 0.1\n8-20 = 0.3\n",
            "prices.toml:1: time_of_use: the schedule must cover the 24 hours of the day; \
             not priced: 20-24",
        ),
        (
            "price_kwh = 0.1\n\n[adapters.x]\ntier = \"gold\"\n",
            "prices.toml:4: adapters.x.tier: unknown tier \"gold\"",
        ),
        (
            "price_kwh = -0.2\n",
            "prices.toml:1: price_kwh: -0.2 must be a number, 0 or more",
        ),
    ] {
        let prices = dir.path().join("prices.toml");
        std::fs::write(&prices, text).unwrap();
        let out = tokbench(&["compare", arg(&result), "--prices", arg(&prices)]);
        assert_code(&out, 2);
        assert!(stderr(&out).contains(needle), "{text}: {}", stderr(&out));
    }
    for flags in [
        ["--run-hours", "22-6"],
        ["--pue", "0.5"],
        ["--tier", "gold"],
    ] {
        let mut args = vec!["compare", arg(&result), "--price-kwh", "0.1"];
        args.extend(flags);
        let out = tokbench(&args);
        assert_code(&out, 2);
        assert!(stderr(&out).contains(flags[0]), "{}", stderr(&out));
    }
}

#[test]
fn the_card_is_json_in_its_schema_or_an_html_page_by_the_out_path() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, PRICES_TOML).unwrap();
    let result = lavapipe_result();
    let base = [
        "compare",
        arg(&result),
        "--prices",
        arg(&prices),
        "--format",
        "card",
    ];
    let out = tokbench(&base);
    assert_code(&out, 0);
    // deny_unknown_fields all the way down: any drift from the schema's types fails here.
    let card: tokbench::report::card::CardDocument = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (card.card.as_str(), card.version),
        ("tokbench-node-card", 1)
    );
    let node = &card.nodes[0];
    assert_eq!(node.adapter.name, "llvmpipe (LLVM 15.0.6, 256 bits)");
    assert!(node.serving.is_none());
    let decode = node
        .workloads
        .iter()
        .find(|w| w.phase == tokbench::report::card::CardPhase::Decode)
        .unwrap();
    use tokbench::report::card::FigureProvenance as P;
    assert_eq!(decode.tokens_per_s.provenance, P::Measured);
    assert_eq!(
        decode.tokens_per_j.as_ref().unwrap().provenance,
        P::Declared
    );
    assert_eq!(
        decode.cost_per_mtok.as_ref().unwrap().provenance,
        P::Estimated
    );
    assert!(decode.carbon_g_per_mtok.is_some());
    // The same to a file: JSON for .json, the HTML page for .html.
    for (name, html) in [("card.json", false), ("card.html", true)] {
        let path = dir.path().join(name);
        let mut args = base.to_vec();
        args.extend(["--out", arg(&path)]);
        assert_code(&tokbench(&args), 0);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.starts_with("<!DOCTYPE html>"), html, "{name}");
        if html {
            assert!(text.contains("<svg") && text.contains("node card"));
            assert!(!text.contains("<script"));
        } else {
            serde_json::from_str::<tokbench::report::card::CardDocument>(&text).unwrap();
        }
    }
}
