//! Snapshot tests of every format, over hand-made results, through `insta`. The snapshots live
//! in `tests/snapshots/*.snap` at the repository root; after an intended change, regenerate them
//! with `INSTA_UPDATE=always cargo test --release -p tokbench-core snapshots` (or review them
//! with `cargo insta review`) and read the diff before committing.

use std::collections::BTreeMap;

use super::{CheckFormat, CompareFormat};
use crate::report::check::{CheckMetric, CheckOptions, check};
use crate::report::compare::{CompareOptions, compare};
use crate::report::cost::{Carbon, HardwarePrice, PriceBook};
use crate::report::fixtures::{self, decode, jittered, prefill, with_power};
use crate::report::load::{Loaded, Skipped, Source};
use crate::result::{Provenance, RunResult, Scope};

/// `actual` against `tests/snapshots/{name}.snap`.
fn assert_snapshot(name: &str, actual: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/snapshots"
    ));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, actual));
}

fn source(doc: RunResult) -> Source {
    Source {
        label: format!("fleet/{}.json", doc.node.hostname),
        doc,
    }
}

/// Seven nodes: five alike on GPU A (one of them slow), one on GPU B, one whose decode figure
/// is from a wall meter, one invalid; costs in EUR at a PUE of 1.2, with carbon.
fn fleet() -> (Loaded, CompareOptions) {
    let node = |host: &str, adapter: &str, prefill_s: f64, decode_s: f64, watts: f64, seed: u64| {
        let p = prefill(512, &jittered(prefill_s, 0.01, 10, seed));
        let d = decode(512, &jittered(decode_s, 0.01, 10, seed + 100));
        fixtures::run(
            host,
            adapter,
            vec![
                with_power(p, Scope::GpuBoard, Provenance::MeasuredCounter, watts),
                with_power(d, Scope::GpuBoard, Provenance::MeasuredCounter, watts * 0.6),
            ],
        )
    };
    let mut docs = vec![
        node("gpu-a1", "GPU A", 0.0100, 0.00100, 300.0, 1),
        node("gpu-a2", "GPU A", 0.0101, 0.00101, 305.0, 2),
        node("gpu-a3", "GPU A", 0.0099, 0.00099, 298.0, 3),
        node("gpu-a4", "GPU A", 0.0102, 0.00100, 302.0, 4),
        node("gpu-a_slow|5", "GPU A", 0.0130, 0.00131, 300.0, 5),
        node("gpu-b1", "GPU B", 0.0200, 0.00150, 150.0, 6),
    ];
    // A node-wall meter on gpu-b1's decode: its tokens/J is not comparable with the others.
    docs[5].workloads[1].power.scope = Some(Scope::NodeWall);
    let mut broken = node("gpu-a6", "GPU A", 0.0100, 0.00100, 300.0, 7);
    broken.workloads[0].valid = false;
    broken.workloads[0].correctness.failure = Some("NMSE 2.1e-2 above 1e-5".into());
    docs.push(broken);
    let loaded = Loaded {
        results: docs.into_iter().map(source).collect(),
        skipped: vec![Skipped {
            source: "fleet/old.json".into(),
            reason: "schema_version 0 is not supported (this tokbench reads 1)".into(),
        }],
        ..Default::default()
    };
    let prices = PriceBook {
        currency: Some("EUR".into()),
        price_kwh: Some(0.3),
        adapters: BTreeMap::from([
            ("GPU A".into(), HardwarePrice::rented(2.0)),
            ("GPU B".into(), HardwarePrice::bought(20_000.0, 4.0)),
        ]),
        pue: Some(1.2),
        carbon: Some(Carbon {
            grid_g_per_kwh: 400.0,
            green_g_per_kwh: 20.0,
            green_share: 0.35,
        }),
        ..Default::default()
    };
    let options = CompareOptions {
        metric: None,
        prices: Some(prices),
        ..Default::default()
    };
    (loaded, options)
}

#[test]
fn compare_in_every_format() {
    let (loaded, options) = fleet();
    let report = compare(&loaded, &options).unwrap();
    for (format, name) in [
        (CompareFormat::Table, "compare.txt"),
        (CompareFormat::Md, "compare.md"),
        (CompareFormat::Csv, "compare.csv"),
        (CompareFormat::Json, "compare.json"),
        (CompareFormat::Html, "compare.html"),
    ] {
        assert_snapshot(name, &format.render(&report).unwrap());
    }
}

#[test]
fn card_in_both_formats() {
    let (loaded, options) = fleet();
    let report = compare(&loaded, &options).unwrap();
    let cards = crate::report::card::cards(&report, "2026-12-01T12:00:00Z");
    assert_snapshot("card.json", &super::card::json(&cards).unwrap());
    assert_snapshot("card.html", &super::card::html(&cards).unwrap());
}

#[test]
fn compare_without_prices_has_no_cost_columns() {
    let (loaded, _) = fleet();
    let report = compare(&loaded, &CompareOptions::default()).unwrap();
    let csv = CompareFormat::Csv.render(&report).unwrap();
    assert!(!csv.contains("cost"), "{}", csv.lines().next().unwrap());
    let table = CompareFormat::Table.render(&report).unwrap();
    assert!(!table.contains("cost/Mtok") && !table.contains("Mtok"));
    let json: serde_json::Value =
        serde_json::from_str(&CompareFormat::Json.render(&report).unwrap()).unwrap();
    assert!(json["prices"].is_null());
    assert!(json["workloads"][0]["entries"][0]["cost"].is_null());
}

fn check_pair() -> (Source, Source) {
    let baseline = fixtures::run(
        "ci-runner",
        "llvmpipe (LLVM 15.0.6, 256 bits)",
        vec![
            fixtures::probe(
                crate::result::WorkloadKind::ProbeCopy,
                &jittered(0.050, 0.01, 30, 7),
            ),
            prefill(128, &jittered(0.010, 0.01, 30, 1)),
            decode(128, &jittered(0.0010, 0.01, 30, 2)),
            decode(1024, &jittered(0.0020, 0.01, 30, 3)),
            // Measured in repetitions on both sides: gated on their medians.
            fixtures::repeated(
                decode(512, &[1.0]),
                &[0.00150, 0.00156, 0.00147, 0.00153, 0.00149],
                0.01,
                20,
                9,
            ),
        ],
    );
    let mut current = baseline.clone();
    current.started_at = "2026-11-22T10:00:00.000Z".parse().unwrap();
    current.tool.git_sha = Some("fedcba9876543210".into());
    current.workloads = vec![
        // The machine got busier: reported, not gated.
        fixtures::probe(
            crate::result::WorkloadKind::ProbeCopy,
            &jittered(0.055, 0.01, 30, 8),
        ),
        // 20% slower prefill: a regression.
        prefill(128, &jittered(0.012, 0.01, 30, 4)),
        // Decode within noise.
        decode(128, &jittered(0.00101, 0.01, 30, 5)),
        decode(4096, &jittered(0.0050, 0.01, 30, 6)),
        // 25% slower in every repetition: a regression over repetitions.
        fixtures::repeated(
            decode(512, &[1.0]),
            &[0.00190, 0.00184, 0.00195, 0.00188, 0.00192],
            0.01,
            20,
            19,
        ),
    ];
    (
        Source {
            label: "results/baseline/ci.json".into(),
            doc: baseline,
        },
        Source {
            label: "current.json".into(),
            doc: current,
        },
    )
}

#[test]
fn check_in_every_format() {
    let (b, c) = check_pair();
    let options = CheckOptions {
        metric: CheckMetric::TokensPerS,
        threshold: 0.05,
        allow_different_hardware: false,
        strict: false,
    };
    let report = check(&b, &c, &options).unwrap();
    assert!(!report.passed);
    for (format, name) in [
        (CheckFormat::Table, "check.txt"),
        (CheckFormat::Md, "check.md"),
        (CheckFormat::Json, "check.json"),
        (CheckFormat::Bmf, "check.bmf.json"),
    ] {
        assert_snapshot(name, &format.render(&report).unwrap());
    }
}

#[test]
fn html_escapes_every_string_from_result_files() {
    let evil = "<script>alert(1)</script>";
    let mut doc = fixtures::run(
        evil,
        "GPU \"A\" & <b>co</b>",
        vec![prefill(64, &jittered(0.01, 0.01, 10, 1))],
    );
    doc.node.placement = Some(crate::result::Placement {
        scheduler: "kubernetes".into(),
        job_id: None,
        node_name: Some("<img src=x onerror=alert(2)>".into()),
        task_id: None,
        pod_name: None,
        namespace: None,
    });
    doc.adapter.driver = "<iframe>".into();
    let mut other = fixtures::run(
        "n2",
        "GPU B",
        vec![prefill(64, &jittered(0.02, 0.01, 10, 2))],
    );
    other.workloads[0].valid = false;
    other.workloads[0].correctness.failure = Some("<svg onload=alert(3)>".into());
    let loaded = Loaded {
        results: vec![
            Source {
                label: "<b>path</b>.json".into(),
                doc,
            },
            source(other),
        ],
        skipped: vec![Skipped {
            source: "x<script>.json".into(),
            reason: "not valid JSON: <script>".into(),
        }],
        ..Default::default()
    };
    let report = compare(&loaded, &CompareOptions::default()).unwrap();
    let html = CompareFormat::Html.render(&report).unwrap();
    let lower = html.to_lowercase();
    for needle in [
        "<script",
        "<img",
        "<iframe",
        "<svg onload",
        "<b>path",
        "<b>co",
    ] {
        assert!(!lower.contains(needle), "{needle} not escaped in:\n{html}");
    }
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(html.contains("GPU &quot;A&quot; &amp; &lt;b&gt;co&lt;/b&gt;"));
    assert!(html.contains("Content-Security-Policy"));
    // Markdown escapes them too.
    let md = CompareFormat::Md.render(&report).unwrap();
    assert!(
        !md.to_lowercase().contains("<script") && !md.contains("<img"),
        "{md}"
    );
}
