//! The `tokbench` binary end to end: exit codes, messages, and the files it writes (or not).
//! Measuring commands run on whatever adapter the machine has (lavapipe in CI).

mod common;

use std::path::{Path, PathBuf};

use common::{
    QUICK, Written, assert_code, assert_contains, assert_usage_error, quick_ok, read_json, run_ok,
    stderr, stdout_ok, tokbench,
};
use tokbench::result::WorkloadKind;
use tokbench::result::io::load;

#[test]
fn kernel_matmul_writes_a_valid_result() {
    let Written { out, path, doc, .. } =
        quick_ok(&argv!["kernel matmul --m 33 --n 17 --k 9 --dtype f32"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("matmul-f32-m33-n17-k9") && stdout.contains(path.to_str().unwrap()),
        "{stdout}"
    );
    assert_eq!(doc.workloads.len(), 1);
    let w = &doc.workloads[0];
    assert!(w.valid, "{:?}", w.correctness);
    assert!(w.stats.samples_s.len() >= 3);
    assert_eq!(w.flops, 2.0 * 33.0 * 17.0 * 9.0);
    assert!(doc.finished_at.is_some());
}

#[test]
fn generated_paths_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().to_str().unwrap();
    let mut args = argv!["kernel matmul --m 4 --n 4 --k 4 --results-dir", results];
    args.extend(QUICK);
    for _ in 0..2 {
        assert_eq!(tokbench(&args).status.code(), Some(0));
    }
    let host_dirs: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(host_dirs.len(), 1, "one directory per host");
    let files: Vec<_> = std::fs::read_dir(host_dirs[0].as_ref().unwrap().path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in files {
        assert!(f.extension().unwrap() == "json");
        load(&f).unwrap();
    }
}

#[test]
fn bad_sizes_are_usage_errors() {
    for (flag, value, needle) in [
        ("--m", "0", "--m"),
        ("--n", "-5", "--n"),
        ("--k", "lots", "--k"),
    ] {
        let out = tokbench(&[
            "kernel", "matmul", "--m", "8", "--n", "8", "--k", "8", flag, value,
        ]);
        assert_usage_error(&out, needle);
    }
}

#[test]
fn a_shape_beyond_the_device_limits_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("never.json");
    let out = tokbench(&argv![
        "kernel matmul --m 100000 --n 100000 --k 100000 --out",
        out_path.to_str().unwrap()
    ]);
    assert_usage_error(&out, "binds at most");
    assert!(!out_path.exists(), "nothing written for bad input");
}

#[test]
fn unknown_adapter_or_backend_is_a_usage_error() {
    let out = tokbench(&argv![
        "kernel matmul --m 4 --n 4 --k 4 --adapter no-such-gpu"
    ]);
    assert_usage_error(&out, "no-such-gpu");
    let out = tokbench(&argv!["kernel matmul --m 4 --n 4 --k 4 --adapter 99"]);
    assert_usage_error(&out, "--adapter 99");
    let out = tokbench(&["devices", "--backend", "cuda"]);
    assert_usage_error(&out, "cuda");
}

/// Runs `args` with `--out` naming a file in `dir` that already exists: a usage error that
/// leaves the file as it was. Returns the file's path.
fn existing_out_is_refused(dir: &Path, args: &str) -> PathBuf {
    let existing = dir.join("taken.json");
    std::fs::write(&existing, "keep me").unwrap();
    let mut argv: Vec<&str> = args.split_whitespace().collect();
    argv.extend(["--out", existing.to_str().unwrap()]);
    assert_usage_error(&tokbench(&argv), "already exists");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    existing
}

#[test]
fn unwritable_or_existing_output_is_refused_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let existing = existing_out_is_refused(dir.path(), "kernel matmul --m 4 --n 4 --k 4");

    // A path below a regular file cannot be created, even by root.
    let below_file = existing.join("r.json");
    let out = tokbench(&argv![
        "kernel matmul --m 4 --n 4 --k 4 --out",
        below_file.to_str().unwrap()
    ]);
    assert_usage_error(&out, "cannot");
    assert!(!Path::new(&below_file).exists());
}

#[test]
fn devices_lists_adapters_as_json() {
    let out = tokbench(&["devices", "--json"]);
    assert_code(&out, 0);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &list.as_array().expect("array")[0];
    assert_eq!(first["index"], 0);
    assert!(first["name"].is_string() && first["limits"]["max_buffer_size"].is_u64());
}

#[test]
fn help_documents_exit_codes() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["kernel", "matmul", "--help"],
    ] {
        let out = tokbench(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Exit codes") && text.contains("130  interrupted"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn run_tiny_measures_tokens_against_the_probes() {
    let doc = quick_ok(&argv![
        "run --preset tiny --prompt-len 33 --depth 7,40 --batch 2"
    ])
    .doc;
    let kinds: Vec<&str> = doc.workloads.iter().map(|w| w.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "probe-fma",
            "probe-copy",
            "probe-read",
            "prefill",
            "decode",
            "decode"
        ]
    );
    let probes = doc.probes.expect("probes recorded");
    assert!(probes.fma_gflops > 0.0 && probes.copy_gbps > 0.0);
    let read_gbps = probes.read_gbps.expect("read probe recorded");
    assert!(read_gbps > 0.0);
    assert!(doc.workloads[2].valid, "{:?}", doc.workloads[2].correctness);
    let plan = doc.plan.model.as_ref().expect("model plan");
    assert_eq!(
        (
            plan.preset.as_str(),
            plan.batch,
            plan.prompt_len,
            plan.depths.clone()
        ),
        ("tiny", 2, 33, vec![7, 40])
    );
    for w in &doc.workloads[3..] {
        assert!(w.valid, "{}: {:?}", w.id, w.correctness);
        let tokens = w.tokens.unwrap();
        assert_eq!(
            tokens,
            if w.kind == WorkloadKind::Prefill {
                66
            } else {
                2
            }
        );
        let tps = w.tokens_per_s.unwrap();
        assert!((tps - tokens as f64 / w.stats.median_s).abs() < 1e-9 * tps);
        let roof = w.roofline.as_ref().unwrap();
        // Decode mostly reads: its share is against the read probe; prefill's against the copy.
        let (probe, peak) = if w.kind == tokbench::result::WorkloadKind::Decode {
            ("probe-read", read_gbps)
        } else {
            ("probe-copy", probes.copy_gbps)
        };
        assert_eq!(roof.bandwidth_probe, probe, "{}", w.id);
        assert!((roof.bandwidth_share - w.achieved_gbps / peak).abs() < 1e-12);
        assert_eq!(roof.exceeds_peak, roof.warning.is_some());
        assert_eq!(
            roof.exceeds_peak,
            roof.bandwidth_share > 1.05 || roof.compute_share > 1.05
        );
        assert_eq!(w.model.unwrap().d_model, 96);
    }
    assert_eq!(doc.workloads[4].depth, Some(7));
    assert_eq!(doc.workloads[5].depth, Some(40));
    assert!(doc.kernel_config.is_some());
}

#[test]
fn bad_model_requests_are_usage_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("never.json");
    let out_arg = out_path.to_str().unwrap();
    for (args, needle) in [
        (vec!["--preset", "gpt-9"], "gpt-9"),
        (vec!["--preset", "tiny", "--batch", "0"], "--batch"),
        (
            vec!["--preset", "tiny", "--prompt-len", "0"],
            "--prompt-len",
        ),
        (vec!["--preset", "tiny", "--phase", "train"], "train"),
        (vec!["--preset", "tiny", "--layers", "0"], "--layers"),
        (vec!["--model", "d_model=8,n_layers=1"], "missing field"),
        (
            argv!["--preset llama3-70b-shape --phase decode --depth 1000000 --batch 64"],
            "reduce --batch or --depth",
        ),
        (vec!["--preset", "tiny", "--dtype", "f8"], "f8"),
        (
            vec!["--preset", "tiny", "--kv-dtype", "q4_0"],
            "--kv-dtype \"q4_0\" is not a KV cache format: use one of f32, f16, q8_0",
        ),
        (
            vec!["--preset", "tiny", "--kv-dtype", "int8"],
            "f32, f16, q8_0",
        ),
        (
            vec!["--preset", "tiny-mla", "--kv-dtype", "q8_0"],
            "--kv-dtype q8_0: multi-head latent attention keeps its latent cache in f32",
        ),
    ] {
        let mut full = vec!["run", "--out", out_arg];
        full.extend(args.iter().copied());
        let out = tokbench(&full);
        assert_usage_error(&out, needle);
        assert!(!out_path.exists(), "{args:?} wrote a file");
    }
}

#[test]
fn presets_are_listed_with_their_shapes() {
    let out = tokbench(&["presets", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let llama = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "llama3-8b-shape")
        .unwrap();
    assert_eq!(
        (
            llama["d_model"].as_u64(),
            llama["d_ff"].as_u64(),
            llama["vocab"].as_u64()
        ),
        (Some(4096), Some(14336), Some(128256))
    );
}

#[test]
fn jsonl_prints_exactly_one_result_line_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = argv![
        "kernel matmul --m 5 --n 6 --k 7 --dtype f32 --jsonl --results-dir",
        dir.path().to_str().unwrap()
    ];
    args.extend(QUICK);
    let out = common::command()
        .args(&args)
        .env("SLURM_JOB_ID", "77")
        .env("SLURMD_NODENAME", "n3")
        .env("SLURM_PROCID", "2")
        .output()
        .unwrap();
    assert_code(&out, 0);
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let doc = tokbench::result::io::parse(stdout.trim()).unwrap();
    let placement = doc.node.placement.unwrap();
    assert_eq!(
        (
            placement.job_id.as_deref(),
            placement.node_name.as_deref(),
            placement.task_id.as_deref()
        ),
        (Some("77"), Some("n3"), Some("2"))
    );
    assert!(
        stderr(&out).contains("matmul-f32-m5-n6-k7"),
        "table on stderr"
    );
}

#[test]
fn f16_weights_run_on_an_adapter_without_shader_f16() {
    // lavapipe through GL has no SHADER_F16; f16 weights are read as u32 pairs and unpacked
    // with WGSL's core unpack2x16float, so the product still runs and matches its reference.
    let doc = run_ok(&argv![
        "kernel matmul --m 3 --n 33 --k 45 --dtype f16 --backend gl --samples 2"
    ])
    .doc;
    assert!(!doc.adapter.features.iter().any(|f| f == "SHADER_F16"));
    assert!(doc.workloads.iter().all(|w| w.valid), "{:?}", doc.workloads);
}

#[test]
fn tune_caches_a_winner_that_run_then_uses() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tune.json");
    let cache_arg = cache.to_str().unwrap();
    // Tuning is at the run's shapes: tune for the run below (decode at depth 4).
    let out = tokbench(&argv![
        "tune --quick --preset tiny --phase decode --depth 4 --tune-cache",
        cache_arg
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_code(&out, 0);
    assert!(
        stdout.contains("product") && stdout.contains("winner") && stdout.contains("saved to"),
        "{stdout}"
    );
    let cached = read_json(&cache);
    let (key, entry) = cached.as_object().unwrap().iter().next().unwrap();
    assert!(key.contains("tokbench"), "{key}");
    // The attention candidates were timed with the run's default cache (f16 on lavapipe).
    assert!(key.contains("| kv f16 |"), "{key}");

    // Another KV format is another entry.
    let out = tokbench(&argv![
        "tune --quick --preset tiny --phase decode --depth 4 --kv-dtype q8_0 --tune-cache",
        cache_arg
    ]);
    assert_code(&out, 0);
    let both = read_json(&cache);
    let keys: Vec<&String> = both.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("| kv q8_0 |")), "{keys:?}");

    let doc = quick_ok(&argv![
        "run --preset tiny --phase decode --depth 4 --idle-s 0 --tune-cache",
        cache_arg
    ])
    .doc;
    assert!(
        doc.kernel_config_source
            .as_deref()
            .unwrap()
            .contains("tuning cache"),
        "{:?}",
        doc.kernel_config_source
    );
    assert_eq!(
        serde_json::to_value(doc.kernel_config.unwrap()).unwrap(),
        entry["config"]
    );

    let doc = quick_ok(&argv![
        "run --preset tiny --phase decode --depth 4 --idle-s 0 --no-tune"
    ])
    .doc;
    assert!(doc.kernel_config_source.unwrap().contains("defaults"));
}

#[test]
fn no_adapter_at_all_says_how_to_get_a_software_one() {
    // No Metal on Linux: the same path as a machine with no adapter.
    let out = tokbench(&argv!["kernel matmul --m 4 --n 4 --k 4 --backend metal"]);
    assert_usage_error(&out, "mesa-vulkan-drivers");
}

#[test]
fn bad_power_options_are_refused_before_any_device_is_opened() {
    // No adapter can be opened here (no Metal on Linux): had tokbench opened the device (or
    // tuned) first, it would report that instead of the flag.
    let cache = tempfile::tempdir().unwrap();
    let cache_path = cache.path().join("tune.json");
    let out = common::command()
        .args([
            "run",
            "--preset",
            "tiny",
            "--power-hz",
            "0",
            "--backend",
            "metal",
        ])
        .env("TOKBENCH_TUNE_CACHE", &cache_path)
        .output()
        .unwrap();
    assert_usage_error(&out, "--power-hz 0");
    assert!(!cache_path.exists(), "no tune cache may be written");
    existing_out_is_refused(cache.path(), "run --preset tiny --backend metal");
}

/// `--math`: coopmat where the tier cannot run is a usage error naming what is missing (f32
/// weights anywhere; the feature on adapters without it, such as Debian 12's lavapipe), and auto
/// falls back to SIMT saying why.
#[test]
fn math_coopmat_is_refused_where_it_cannot_run_and_auto_says_why_it_used_simt() {
    let dir = tempfile::tempdir().unwrap();
    let small = ["kernel", "matmul", "--m", "9", "--n", "8", "--k", "8"];
    let with = |extra: &[&str]| -> Vec<String> {
        small
            .iter()
            .chain(extra)
            .chain(QUICK.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| tokbench(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_usage_error(
        &run(with(&["--dtype", "f32", "--math", "coopmat"])),
        "use --dtype f16",
    );
    assert_usage_error(&run(with(&["--math", "tensor"])), "auto, simt or coopmat");

    let out_path = dir.path().join("auto.json");
    let out = run(with(&argv![
        "--dtype f16 --math coopmat --out",
        out_path.to_str().unwrap()
    ]));
    if out.status.code() == Some(2) {
        let err = stderr(&out);
        assert!(
            err.contains("--math coopmat: adapter") && err.contains("use --math auto"),
            "{err}"
        );
        assert!(!out_path.exists(), "nothing is written on a usage error");
        // A model run is refused the same way, before anything is measured.
        let tiny = tokbench(&argv![
            "run --preset tiny --dtype f16 --math coopmat --out",
            out_path.to_str().unwrap()
        ]);
        assert_usage_error(&tiny, "--math coopmat: adapter");
        assert!(!out_path.exists());

        let auto = run(with(&[
            "--dtype",
            "f16",
            "--out",
            out_path.to_str().unwrap(),
        ]));
        assert_code(&auto, 0);
        assert_contains(&stderr(&auto), "--math auto: SIMT because");
        let doc = load(&out_path).unwrap();
        let math = doc.workloads[0].math.as_ref().expect("math recorded");
        assert_eq!(math.tier.name(), "simt-f16");
        assert!(
            math.reason.starts_with("auto: SIMT because"),
            "{}",
            math.reason
        );
    } else {
        // An adapter with the tier: both kernels measured, the ratio printed.
        assert_code(&out, 0);
        let doc = load(&out_path).unwrap();
        let tiers: Vec<&str> = doc
            .workloads
            .iter()
            .map(|w| w.math.as_ref().unwrap().tier.name())
            .collect();
        assert_eq!(tiers, ["coopmat-f16", "simt-f16"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("GFLOP/s vs simt-f16"), "{stdout}");
    }
}

/// `--dtype` takes every format: a packed one runs (its id says which) and passes the gate;
/// an unknown name is a usage error listing the formats; accounting shows the weight bytes of
/// the exact bits.
#[test]
fn every_weight_format_is_accepted_and_unknown_names_are_refused() {
    let q4 = quick_ok(&argv!["kernel matmul --m 3 --n 17 --k 45 --dtype q4_0"]);
    let w = &q4.doc.workloads[0];
    assert_eq!(w.id, "matmul-q4_0-m3-n17-k45");
    assert!(w.valid, "{:?}", w.correctness);
    let json = std::fs::read_to_string(&q4.path).unwrap();
    assert!(
        json.contains("\"dtype\": \"q4_0\""),
        "serialized as the CLI spells it"
    );

    let bad = tokbench(&[
        "kernel", "matmul", "--m", "1", "--n", "8", "--k", "8", "--dtype", "q5_k",
    ]);
    assert_usage_error(&bad, "f32, f16, bf16, fp8-e4m3, q8_0, q4_0, mxfp4");

    let text = stdout_ok(&argv!["accounting --preset llama3-8b-shape --dtype q4_0"]);
    assert!(
        text.contains("q4_0 weights") && text.contains("4.5 bits per weight"),
        "{text}"
    );
}

/// gpt-oss's experts default to MXFP4 beside the run's --dtype, `--expert-dtype` changes them,
/// and asking for an experts' format on a model without experts is a usage error (no device is
/// opened for it).
#[test]
fn experts_take_their_own_format() {
    let text = stdout_ok(&argv!["accounting --preset gpt-oss-20b-shape --batch 8"]);
    assert!(
        text.contains("f16 (experts mxfp4) weights") && text.contains("experts 4.25"),
        "{text}"
    );
    let q8 = tokbench(&argv![
        "accounting --preset gpt-oss-20b-shape --batch 8 --expert-dtype q8_0"
    ]);
    let q8_text = String::from_utf8_lossy(&q8.stdout);
    assert!(q8_text.contains("f16 (experts q8_0) weights"), "{q8_text}");
    let dense = tokbench(&argv!["run --preset tiny --expert-dtype q4_0 --idle-s 0"]);
    assert_usage_error(
        &dense,
        "--expert-dtype q4_0: this model has no routed experts",
    );
}

/// `--kv-dtype q8_0` runs a model end to end: the cache format is recorded in the plan and the
/// workload, named in the id, and the run passes the correctness gate; accounting counts the
/// cache at 8.5 bits per element.
#[test]
fn a_q8_0_kv_cache_runs_is_recorded_and_counted() {
    let doc = quick_ok(&argv![
        "run --preset tiny --phase decode --depth 40 --dtype f32 --kv-dtype q8_0 --no-tune"
    ])
    .doc;
    let plan = doc.plan.model.as_ref().unwrap();
    assert_eq!(plan.kv_dtype.map(|k| k.name()), Some("q8_0"));
    let w = doc.workloads.iter().find(|w| w.phase.is_some()).unwrap();
    assert!(w.id.ends_with("-kvq8_0"), "{}", w.id);
    assert_eq!(w.kv_dtype.map(|k| k.name()), Some("q8_0"));
    assert!(w.valid, "{:?}", w.correctness);

    let text = stdout_ok(&argv![
        "accounting --preset smollm2-135m-shape --phase decode --len 2047 --kv-dtype q8_0"
    ]);
    assert!(
        text.contains("q8_0 KV cache") && text.contains("8.5 bits per element"),
        "{text}"
    );
}
