//! The adapter chosen, checked against the GPUs the host has: a CPU adapter beside a GPU wgpu
//! cannot see is said loudly (and refused under `--require-gpu`), a GL fallback names the
//! Vulkan driver to install. Fake `/dev` and `/sys` roots stand in for a GPU node.

mod common;

use common::{assert_code, assert_usage_error, command, stderr};

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
    command()
        .env("TOKBENCH_DEV_ROOT", root.join("dev"))
        .env("TOKBENCH_SYSFS_ROOT", root.join("sys"))
        .args(&args)
        .output()
        .unwrap()
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
    assert!(stderr(&out).contains("nvidia_icd.json"), "{}", stderr(&out));
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
    let out = command()
        .env("TOKBENCH_DEV_ROOT", root.path().join("dev"))
        .env("TOKBENCH_SYSFS_ROOT", root.path().join("sys"))
        .args(argv![
            "serve --preset tiny --isl 8 --osl 2 --concurrency 1 --power-source none",
            "--require-gpu --out",
            result.to_str().unwrap()
        ])
        .output()
        .unwrap();
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
