//! Power through the whole program: declared watts, a meter command, a fake RAPL tree, no
//! source at all, and bad power options.

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokbench::result::io::load;
use tokbench::result::{Provenance, RunResult, Scope};

/// One measured run at a time: the fake counters' writer threads must keep pace with wall
/// time, which they cannot while several lavapipe runs share the cores.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `run --preset tiny` (decode only, quick) with `extra` flags and `sysfs` as the sysfs root.
fn run_tiny(extra: &[&str], sysfs: &Path) -> (Output, Option<RunResult>) {
    let _serial = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("r.json");
    let mut args = argv![
        "run --preset tiny --phase decode --depth 16 --samples 3 --min-time 0.3 --max-warmup 0 --idle-s 0 --out",
        out_path.to_str().unwrap()
    ];
    args.extend(extra);
    let out = common::command()
        .args(&args)
        .env("TOKBENCH_SYSFS_ROOT", sysfs)
        .output()
        .unwrap();
    let doc = out_path.exists().then(|| load(&out_path).unwrap());
    (out, doc)
}

/// `run_tiny` that must succeed: its result document.
fn run_tiny_ok(extra: &[&str], sysfs: &Path) -> RunResult {
    let (out, doc) = run_tiny(extra, sysfs);
    common::assert_code(&out, 0);
    doc.expect("a result document")
}

fn decode(doc: &RunResult) -> &tokbench::result::WorkloadResult {
    doc.workloads
        .iter()
        .find(|w| w.kind == tokbench::result::WorkloadKind::Decode)
        .unwrap()
}

/// tokens/J is the tokens executed in the energy window over that window's joules, whatever
/// the source: `tokens_per_j × energy_j` is tokens × executions (within 1%), and the window's
/// duty cycle is recorded beside it.
fn assert_tokens_per_j_counts_the_windows_tokens(w: &tokbench::result::WorkloadResult) {
    let window_tokens = (w.tokens.unwrap() * w.power.executions) as f64;
    assert!(window_tokens > 0.0, "{w:?}");
    let per_j = w.tokens_per_j.expect("tokens_per_j");
    let energy_j = w.power.energy_j.expect("energy_j");
    let off = (per_j * energy_j - window_tokens).abs() / window_tokens;
    assert!(
        off <= 0.01,
        "tokens_per_j {per_j} × energy_j {energy_j} = {} vs {window_tokens} tokens",
        per_j * energy_j
    );
    let j_per_token = w.j_per_token.expect("j_per_token");
    assert!((j_per_token * per_j - 1.0).abs() < 1e-9, "{w:?}");
    let duty = w.power.duty_cycle.expect("duty_cycle");
    assert!(duty > 0.0 && duty <= 1.0 + 1e-9, "duty cycle {duty}");
    let summed_s: f64 = w.stats.samples_s.iter().sum();
    assert!(
        (duty - summed_s / w.power.window_s).abs() < 1e-9,
        "duty {duty} vs {summed_s} s timed in {} s",
        w.power.window_s
    );
    assert_eq!(
        w.power.warnings.iter().any(|m| m.contains("duty cycle")),
        duty < 0.9,
        "{:?}",
        w.power.warnings
    );
}

#[test]
fn declared_watts_give_tokens_per_joule_of_window_tokens_over_watts_times_window() {
    let sysfs = tempfile::tempdir().unwrap();
    let doc = run_tiny_ok(&["--watts", "65"], sysfs.path());
    let w = decode(&doc);
    assert_eq!(w.power.provenance, Provenance::Declared);
    assert_eq!(w.power.scope, Some(Scope::NodeWall));
    assert_eq!(w.power.energy_j.unwrap(), 65.0 * w.power.window_s);
    let window_tokens = (w.tokens.unwrap() * w.power.executions) as f64;
    assert_eq!(
        w.tokens_per_j.unwrap(),
        window_tokens / (65.0 * w.power.window_s)
    );
    assert_tokens_per_j_counts_the_windows_tokens(w);
    assert_eq!(doc.power.source.as_deref(), Some("declared"));
}

#[test]
fn without_any_source_power_is_unavailable_with_a_reason_never_zero() {
    let sysfs = tempfile::tempdir().unwrap(); // empty: no hwmon, no RAPL
    let doc = run_tiny_ok(
        &["--nvml-lib", "/nonexistent/libnvidia-ml.so.1"],
        sysfs.path(),
    );
    let w = decode(&doc);
    assert_eq!(w.power.provenance, Provenance::Unavailable);
    assert!(!w.power.reason.as_deref().unwrap_or("").is_empty());
    assert_eq!(
        (w.power.energy_j, w.power.avg_power_w, w.tokens_per_j),
        (None, None, None)
    );
    assert!(doc.power.tried.len() >= 2, "{:?}", doc.power.tried);
    let json = serde_json::to_value(w).unwrap();
    assert!(json["power"]["energy_j"].is_null() && json["tokens_per_j"].is_null());
    // lavapipe is a CPU device: no GPU telemetry, and it says so with null, not 0.
    assert!(json["power"]["telemetry"].is_null(), "{}", json["power"]);
    assert_eq!(doc.power.telemetry_source, None);
}

#[test]
fn a_meter_command_is_sampled_and_integrated() {
    let sysfs = tempfile::tempdir().unwrap();
    let doc = run_tiny_ok(
        &["--power-cmd", "echo 42.5", "--power-hz", "20"],
        sysfs.path(),
    );
    let w = decode(&doc);
    assert_eq!(w.power.provenance, Provenance::MeasuredSampled);
    assert_eq!(w.power.scope, Some(Scope::NodeWall));
    assert!(
        (w.power.avg_power_w.unwrap() - 42.5).abs() < 1e-6,
        "{:?}",
        w.power
    );
    assert!(w.power.samples.unwrap() >= 2);
    assert_tokens_per_j_counts_the_windows_tokens(w);
    // Without --sustain-s there is no drift record.
    assert_eq!(w.power.sustain, None);
    assert_eq!(doc.plan.sampling.sustain_s, None);
}

#[test]
fn rapl_energy_counter_from_a_fake_tree() {
    let sysfs = tempfile::tempdir().unwrap();
    // A package drawing 20 W: +2 J every 100 ms, written atomically.
    let rapl = FakeRapl::start(sysfs.path(), 262_143_328_850, |t| {
        1000 + 2_000_000 * (t.as_millis() / 100) as u64
    });
    let doc = run_tiny_ok(
        &["--power-source", "rapl", "--min-energy-s", "1"],
        sysfs.path(),
    );
    drop(rapl);
    let w = decode(&doc);
    assert_eq!(w.power.provenance, Provenance::MeasuredCounter);
    assert_eq!(w.power.scope, Some(Scope::CpuPackage));
    assert!(w.power.window_s >= 1.0, "stretched to --min-energy-s");
    // The counter steps every 100 ms, so a 1 s window sees 18-22 W.
    let watts = w.power.avg_power_w.unwrap();
    assert!((15.0..25.0).contains(&watts), "{watts} W");
    assert_tokens_per_j_counts_the_windows_tokens(w);
}

#[test]
fn a_rapl_counter_that_wraps_several_times_per_window_reads_its_power() {
    // energy_uj follows 65 W of wall time exactly and wraps at 50 J: every 0.77 s.
    let sysfs = tempfile::tempdir().unwrap();
    let rapl = FakeRapl::start(sysfs.path(), 50_000_000, |t| {
        (65e6 * t.as_secs_f64()) as u64 % 50_000_000
    });
    let doc = run_tiny_ok(
        &argv!["--power-source rapl --min-energy-s 2 --sustain-s 2"],
        sysfs.path(),
    );
    drop(rapl);
    let w = decode(&doc);
    assert_eq!(w.power.provenance, Provenance::MeasuredCounter);
    assert!(w.power.window_s >= 2.0, "{:?}", w.power);
    let watts = w.power.avg_power_w.unwrap();
    println!(
        "fake RAPL at 65 W wrapping at 50 J: {watts:.2} W over {:.2} s",
        w.power.window_s
    );
    assert!((watts - 65.0).abs() <= 6.5, "{watts} W");
    assert_tokens_per_j_counts_the_windows_tokens(w);
    // --sustain-s: the first and last tenth of the window each drew the same 65 W (within
    // 20%: a tenth is 0.2 s, and the fake's writer lags by a few ms on a busy machine).
    assert_eq!(doc.plan.sampling.sustain_s, Some(2.0));
    let sustain = w.power.sustain.unwrap();
    assert_eq!(sustain.sustain_s, 2.0);
    for tenth_w in [sustain.first_tenth_power_w, sustain.last_tenth_power_w] {
        let tenth_w = tenth_w.unwrap();
        assert!((tenth_w - 65.0).abs() <= 13.0, "{sustain:?}");
    }
    assert!(sustain.power_drift.unwrap().abs() < 0.4, "{sustain:?}");
    assert!(sustain.throughput_drift.is_finite(), "{sustain:?}");
    let tenth = (w.stats.samples_s.len() / 10).max(1);
    assert!(
        sustain.first_tenth_median_s >= w.stats.min_s
            && sustain.last_tenth_median_s <= w.stats.max_s,
        "{sustain:?} over {tenth} samples"
    );
}

#[test]
fn bad_power_options_are_usage_errors_before_any_work() {
    let sysfs = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--watts", "0"], "--watts"),
        (vec!["--watts", "-65"], "--watts"),
        (vec!["--watts", "NaN"], "--watts"),
        (vec!["--power-source", "rapl"], "rapl"),
        (
            vec![
                "--power-source",
                "nvml",
                "--nvml-lib",
                "/nonexistent/libnvidia-ml.so",
            ],
            "nvml",
        ),
        (vec!["--power-source", "solar"], "solar"),
        (vec!["--power-cmd", "exit 3"], "exit"),
        (vec!["--power-cmd", "echo lots"], "lots"),
        (vec!["--power-scope", "moon"], "moon"),
    ] {
        let (out, doc) = run_tiny(&args, sysfs.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(doc.is_none(), "{args:?}: wrote a result");
    }
}

/// A fake powercap package `intel-rapl:0` under a sysfs root, wrapping at its range, whose
/// `energy_uj` a thread rewrites (atomically) every 5 ms to a function of the time since it
/// started, until it is dropped.
struct FakeRapl {
    stop: Arc<AtomicBool>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl FakeRapl {
    fn start(
        sysfs: &Path,
        range_uj: u64,
        energy_uj: impl Fn(Duration) -> u64 + Send + 'static,
    ) -> Self {
        let zone = sysfs.join("class/powercap/intel-rapl:0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("name"), "package-0\n").unwrap();
        std::fs::write(zone.join("max_energy_range_uj"), format!("{range_uj}\n")).unwrap();
        let write = move |uj: u64| {
            std::fs::write(zone.join("energy_uj.tmp"), format!("{uj}\n")).unwrap();
            std::fs::rename(zone.join("energy_uj.tmp"), zone.join("energy_uj")).unwrap();
        };
        write(energy_uj(Duration::ZERO));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let writer = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while !flag.load(Ordering::SeqCst) {
                write(energy_uj(t0.elapsed()));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            writer: Some(writer),
        }
    }
}

impl Drop for FakeRapl {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.writer.take() {
            w.join().unwrap();
        }
    }
}
