//! Faults and interruptions: a hung GPU, Ctrl-C once and twice, an unusable results directory.
//! Each leaves a whole, parseable result with every workload finished before the fault. They
//! run on the hidden mock device, so they need no GPU and behave the same on every machine.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokbench::result::RunResult;
use tokbench::result::io::load;

fn spawn(args: &[&str]) -> Child {
    common::command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tokbench")
}

/// Waits until the result at `path` holds at least `n` workloads.
fn wait_for_workloads(path: &Path, n: usize, child: &mut Child) -> RunResult {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(doc) = load(path)
            && doc.workloads.len() >= n
        {
            return doc;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "tokbench ended before {n} workloads"
        );
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn interrupt(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
}

/// probes + prefill + three decode depths, each sampled for at least a second, on the mock
/// device (which sleeps for the time it reports): the same run on any machine.
fn slow_run(out: &Path) -> Child {
    spawn(&[
        "run",
        "--mock-device",
        "sleep",
        // No Metal on Linux: proves the mock opens no adapter.
        "--backend",
        "metal",
        "--preset",
        "tiny",
        "--depth",
        "8,16,32",
        "--prompt-len",
        "16",
        "--samples",
        "3",
        "--min-time",
        "1",
        "--max-warmup",
        "0",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// [`slow_run`], sent Ctrl-C once its first workload is in the file.
fn interrupted_slow_run(out: &Path) -> Child {
    let mut child = slow_run(out);
    wait_for_workloads(out, 1, &mut child);
    interrupt(&child);
    child
}

#[test]
fn ctrl_c_stops_after_the_workload_in_flight_and_keeps_the_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let child = interrupted_slow_run(&out);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let doc = load(&out).unwrap();
    assert!(doc.interrupted);
    assert!(doc.finished_at.is_some());
    // The first workload was done when the signal came; the second (a second long) was in
    // flight and finished, unless the signal came before it started; none after it started.
    assert!((1..=2).contains(&doc.workloads.len()), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_the_file_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let child = interrupted_slow_run(&out);
    std::thread::sleep(Duration::from_millis(100));
    interrupt(&child);
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not exit at once"
    );
    let doc = load(&out).expect("the file parses after a hard stop");
    assert!(!doc.workloads.is_empty());
}

#[test]
fn a_hung_gpu_is_an_error_naming_the_workload_and_the_process_does_not_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    // A device that never finishes (the mock's hang), against a 0.2 s watchdog.
    let started = Instant::now();
    let output = spawn(&argv![
        "kernel matmul --mock-device hang --backend metal --m 2048 --n 2048 --k 2048",
        "--dtype f32 --timeout-s 0.2 --out",
        out.to_str().unwrap()
    ])
    .wait_with_output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("matmul-f32-m2048-n2048-k2048") && stderr.contains("watchdog"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let doc = load(&out).expect("the reserved result parses");
    assert!(doc.workloads.is_empty() && doc.finished_at.is_none());
}

/// Runs `tokbench <args>` inside a private mount namespace where `dir` is a small tmpfs,
/// prepared by `setup` (shell commands using $D). Needs root (CI runs as root).
fn in_private_tmpfs(dir: &Path, setup: &str, args: &str) -> std::process::Output {
    let script = format!(
        "set -e; D={dir}; mount -t tmpfs -o size=64k tmpfs $D; {setup}; exec {bin} {args}",
        dir = dir.display(),
        bin = env!("CARGO_BIN_EXE_tokbench"),
    );
    Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) runs as root")
}

#[test]
#[ignore = "needs root (unshare, mount); .ci/run runs it with --include-ignored"]
fn a_full_or_read_only_results_directory_is_refused_before_any_work() {
    for (setup, what) in [
        (
            "dd if=/dev/zero of=$D/fill bs=1k count=64 2>/dev/null || true",
            "full",
        ),
        ("mount -o remount,ro $D", "read-only"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = in_private_tmpfs(
            dir.path(),
            setup,
            "kernel matmul --mock-device instant --backend metal --m 8 --n 8 --k 8 --samples 2 \
             --min-time 0 --results-dir $D/results",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(stderr.contains("cannot"), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !stderr.contains("samples"),
            "{what}: measured before failing: {stderr}"
        );
    }
}
