//! The adapter chosen, checked against the GPUs the host has: a CPU adapter beside a GPU wgpu
//! cannot see is said loudly (and refused under `--require-gpu`), a GL fallback names the
//! Vulkan driver to install. Fake `/dev` and `/sys` roots stand in for a GPU node.

mod common;

use common::{assert_code, assert_contains, assert_usage_error, command, stderr, stdout};

/// `tokbench args` with `--dev-root`/`--sysfs-root` pointed at the fake machine `root`.
fn on_machine(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    command()
        .env("TOKBENCH_DEV_ROOT", root.join("dev"))
        .env("TOKBENCH_SYSFS_ROOT", root.join("sys"))
        .args(args)
        .output()
        .unwrap()
}

/// `kernel matmul` at a trivial size with `--dev-root`/`--sysfs-root` pointed at `root`.
fn matmul(root: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let mut args = argv![
        "kernel matmul --m 4 --n 4 --k 4 --power-source none --out",
        out.to_str().unwrap()
    ];
    args.extend(common::QUICK);
    args.extend(extra);
    on_machine(root, &args)
}

/// A one-request `serve` of `tiny` into `result` with `--dev-root`/`--sysfs-root` at `root`.
fn serve(root: &std::path::Path, result: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = argv![
        "serve --preset tiny --isl 8 --osl 2 --concurrency 1 --power-source none --out",
        result.to_str().unwrap()
    ];
    args.extend(extra);
    on_machine(root, &args)
}

/// A fake machine: empty `/sys`, and `/dev` with the given nodes.
fn machine(dev_nodes: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("sys")).unwrap();
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    for node in dev_nodes {
        std::fs::write(root.path().join("dev").join(node), "").unwrap();
    }
    root
}

#[test]
fn a_cpu_adapter_beside_an_nvidia_gpu_wgpu_cannot_see_is_said_loudly() {
    // This machine's adapter is lavapipe, a CPU one: the fake /dev/nvidia0 is a GPU it hides.
    let root = machine(&["nvidia0", "nvidiactl"]);
    let out = matmul(root.path(), &[]);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("WARNING")
            && err.contains("/dev/nvidia0")
            && err.contains("nvidia_icd.json")
            && err.contains("not of the GPU"),
        "{err}"
    );
    let out = matmul(root.path(), &["--require-gpu"]);
    assert_usage_error(&out, "--require-gpu");
    assert_contains(&stderr(&out), "nvidia_icd.json");
    // `serve` says it too, and its result keeps the warning.
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("serve.json");
    let out = serve(root.path(), &result, &["--idle-s", "0"]);
    assert_code(&out, 0);
    assert_contains(&stderr(&out), "/dev/nvidia0");
    let doc = tokbench::result::io::load(&result).unwrap();
    assert!(
        doc.plan
            .adapter_warnings
            .iter()
            .any(|w| w.contains("/dev/nvidia0")),
        "{:?}",
        doc.plan.adapter_warnings
    );
}

#[test]
fn require_gpu_refuses_a_cpu_adapter_even_without_a_hidden_gpu() {
    let root = machine(&[]);
    let out = matmul(root.path(), &[]);
    assert_code(&out, 0);
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    let out = matmul(root.path(), &["--require-gpu"]);
    assert_usage_error(&out, "no GPU was found");
    // `serve` refuses it the same way, before any work.
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("serve.json");
    let out = serve(root.path(), &result, &["--require-gpu"]);
    assert_usage_error(&out, "no GPU was found");
    assert!(!result.exists(), "nothing written");
}

#[test]
fn a_gl_fallback_says_a_vulkan_driver_is_the_supported_path() {
    let root = machine(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = command()
        .env("TOKBENCH_DEV_ROOT", root.path().join("dev"))
        .env("TOKBENCH_SYSFS_ROOT", root.path().join("sys"))
        // What a machine without a Vulkan driver sees: GL adapters only.
        .env("WGPU_BACKEND", "gl")
        .args(["tune", "--quick", "--preset", "tiny", "--tune-cache"])
        .arg(dir.path().join("tune.json"))
        .args(["--require-gpu"])
        .output()
        .unwrap();
    let err = stderr(&out);
    if err.contains("no GPU adapter found") {
        eprintln!("skipped: this machine has no GL adapter");
        return;
    }
    assert!(
        err.contains("fell back to OpenGL") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
    // GL's llvmpipe is a CPU adapter too: refused before any tuning.
    assert_usage_error(&out, "--require-gpu");
}

#[test]
fn adapters_run_at_once_each_into_its_result_and_the_node_sums_them() {
    // lavapipe through Vulkan (0) and through GL (1): two adapters this machine has (`all`
    // would run only the Vulkan one, GL being the same device again). Formats named, since the
    // two default to different ones (GL has no SHADER_F16).
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut args = argv![
        "run --preset tiny --phase decode --depth 16 --no-tune --power-source none --idle-s 0",
        "--dtype f32 --kv-dtype f32 --adapter 0,1 --results-dir",
        results.to_str().unwrap()
    ];
    args.extend(common::QUICK);
    let out = command().args(&args).output().unwrap();
    assert_code(&out, 0);
    let err = stderr(&out);
    // Not a terminal: each replica's lines, prefixed, with the workload it starts.
    assert!(
        err.contains("all at once") && err.contains("[gpu 1] tokbench: workload 1/"),
        "{err}"
    );
    let host_dir = std::fs::read_dir(&results)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let files: Vec<_> = std::fs::read_dir(&host_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let summary = files
        .iter()
        .find(|p| p.to_str().unwrap().ends_with("-node-summary.json"))
        .expect("a node summary");
    assert_eq!(files.len(), 3, "two results and the summary: {files:?}");
    let s: tokbench::report::node_summary::NodeSummary =
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    assert_eq!(s.gpus.len(), 2);
    assert_eq!(
        s.gpus
            .iter()
            .map(|g| g.backend.as_str())
            .collect::<Vec<_>>(),
        ["Vulkan", "Gl"]
    );
    let docs: Vec<_> = s
        .gpus
        .iter()
        .map(|g| {
            assert_eq!(g.exit_code, 0, "{g:?}");
            let result = g.result.as_deref().unwrap();
            assert!(files.iter().any(|f| f.to_str() == Some(result)), "{s:?}");
            tokbench::result::io::load(std::path::Path::new(result)).unwrap()
        })
        .collect();
    // At once, not one after another: each replica started before the other finished.
    let last_start = docs.iter().map(|d| d.started_at).max().unwrap();
    let first_end = docs.iter().map(|d| d.finished_at.unwrap()).min().unwrap();
    assert!(
        last_start < first_end,
        "the runs did not overlap: {last_start} .. {first_end}"
    );
    // The node's decode figure is the sum of its GPUs'.
    let decode: Vec<_> = docs
        .iter()
        .map(|d| {
            d.workloads
                .iter()
                .find(|w| w.id.starts_with("decode"))
                .unwrap()
        })
        .collect();
    assert_eq!(decode[0].id, decode[1].id);
    let node = s
        .workloads
        .iter()
        .find(|w| w.id == decode[0].id)
        .expect("decode in the summary");
    assert_eq!(node.gpus, 2);
    let sum: f64 = decode.iter().map(|w| w.tokens_per_s.unwrap()).sum();
    assert!((node.tokens_per_s - sum).abs() < 1e-9 * sum, "{s:?}");
    assert_contains(&stdout(&out), "node summary:");
    // `compare` ranks the node by its summary beside the GPUs' own results.
    let out = command()
        .args(argv!["compare --format md", results.to_str().unwrap()])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let md = stdout(&out);
    assert_contains(&md, "### Nodes");
    assert!(
        !md.contains("node-summary.json:"),
        "the summary was skipped: {md}"
    );
    // --out names one file: refused before any work.
    let one = dir.path().join("one.json");
    let out = command()
        .args(argv![
            "kernel matmul --m 4 --n 4 --k 4 --adapter all --out",
            one.to_str().unwrap()
        ])
        .output()
        .unwrap();
    assert_usage_error(&out, "--adapter all");
    assert!(!one.exists());
}
