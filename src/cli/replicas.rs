//! `--adapter all` (or a list such as `0,1`): one replica of the run per GPU, all at once, then
//! the node summary.
//!
//! Each replica is this same program run again with `--adapter <index> --out <file>`: its own
//! process, device, power meter and result, exactly the single-GPU run. Processes rather than
//! threads, so that a GPU whose driver hangs or crashes takes down only its own replica, and
//! the others' results still land. The replicas start together and run side by side, so what
//! the GPUs share (power delivery, cooling, PCIe, the host's CPU) is loaded as in service.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::CommonArgs;
use super::signals;
use super::table;
use crate::report::node_summary::{GpuRun, NodeSummary};
use crate::{InputError, exit};

/// Set in a replica's environment: it then says on stderr which workload it starts
/// ([`WORKLOAD_LINE`]), since its own progress bars are hidden on a pipe.
pub(super) const REPLICA_ENV: &str = "TOKBENCH_REPLICA";

/// How a replica's line announcing a workload begins: "tokbench: workload 2/5: <id>".
pub(super) const WORKLOAD_LINE: &str = "tokbench: workload ";

/// One replica in flight: its GPU, its process and the threads that drain its output.
struct Replica {
    index: usize,
    adapter: String,
    backend: String,
    out: PathBuf,
    child: std::process::Child,
    /// Collects stdout (the replica's table, or its JSON line under --jsonl), printed whole
    /// once it ends so that the tables of several GPUs never interleave.
    stdout: JoinHandle<Vec<u8>>,
    /// Echoes stderr line by line, prefixed with the GPU, and keeps the last line (the error
    /// of a replica that failed).
    stderr: JoinHandle<Option<String>>,
    /// Its workloads done of all, with their ETA (hidden when stderr is not a terminal).
    bar: ProgressBar,
}

/// "2/5: <id>" from a replica's workload line: (2, 5, "<id>").
fn workload_line(line: &str) -> Option<(u64, u64, &str)> {
    let (count, id) = line.strip_prefix(WORKLOAD_LINE)?.split_once(": ")?;
    let (index, total) = count.split_once('/')?;
    Some((index.parse().ok()?, total.parse().ok()?, id))
}

/// Runs `wanted` (`all` or a list) as one replica per adapter at once and writes the node
/// summary. The exit code is the worst of the replicas'.
pub(super) fn run_replicas(common: &CommonArgs, wanted: &str) -> anyhow::Result<ExitCode> {
    if common.out.is_some() {
        return Err(InputError::new(format!(
            "--adapter {wanted} writes one result per GPU under --results-dir and a node \
             summary beside them; --out names a single file, so leave it out"
        ))
        .into());
    }
    if common.mock_device.is_some() {
        return Err(InputError::new(format!(
            "--adapter {wanted} runs on the node's real adapters; --mock-device is one device"
        ))
        .into());
    }
    let adapters = crate::gpu::replica_adapters(wanted, common.backend)?;
    let host = crate::node::hostname();
    let dir = common.results_dir.join(crate::result::io::slug(&host));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the results directory {}", dir.display()))?;
    let started = crate::runner::now_utc();
    let stamp = started.format("%Y%m%dT%H%M%SZ").to_string();
    eprintln!(
        "tokbench: --adapter {wanted}: {} adapter(s), all at once, one process each: {}",
        adapters.len(),
        adapters
            .iter()
            .map(|(i, a)| format!("{i}: {}", a.name))
            .collect::<Vec<_>>()
            .join("; ")
    );
    // Installs the handler that forwards Ctrl-C and SIGTERM to the replicas: they run in
    // their own process groups, so a terminal's Ctrl-C reaches only this process, and each
    // replica gets each interrupt exactly once (the first stops it after the workload in
    // flight, the second at once), as a single run would.
    signals::stop_flag();
    let exe = std::env::current_exe().context("finding this program to start the replicas")?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let clock = Instant::now();
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:20}] {pos}/{len} workloads, {elapsed_precise}, eta {eta} {wide_msg}",
    )
    .expect("static template")
    .progress_chars("=> ");
    let mut replicas = Vec::new();
    for (index, info) in adapters {
        let out = dir.join(format!(
            "{stamp}-gpu{index}-{}.json",
            crate::result::io::slug(&info.name)
        ));
        let mut child = Command::new(&exe)
            .args(replica_args(&args, index, &out))
            .env_remove("TOKBENCH_ADAPTER")
            .env(REPLICA_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the replica for adapter {index}"))?;
        signals::forward_to(child.id());
        let mut stdout_pipe = child.stdout.take().expect("piped");
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            // A replica that dies mid-write leaves what it wrote; nothing more to recover.
            let _ = stdout_pipe.read_to_end(&mut bytes);
            bytes
        });
        let bar = bars.add(ProgressBar::new(0).with_style(style.clone()));
        bar.set_prefix(format!("[gpu {index}]"));
        let stderr_pipe = child.stderr.take().expect("piped");
        let (shown, board) = (bar.clone(), bars.clone());
        let stderr = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                match workload_line(&line) {
                    // On a terminal the bar says it; in a log, the line does.
                    Some((i, n, id)) if !shown.is_hidden() => {
                        shown.set_length(n);
                        shown.set_position(i - 1);
                        shown.set_message(id.to_string());
                    }
                    _ if !shown.is_hidden() => {
                        let _ = board.println(format!("[gpu {index}] {line}"));
                    }
                    _ => eprintln!("[gpu {index}] {line}"),
                }
                if !line.trim().is_empty() {
                    last = Some(line);
                }
            }
            last
        });
        replicas.push(Replica {
            index,
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            out,
            child,
            stdout,
            stderr,
            bar,
        });
    }
    let mut runs = Vec::new();
    let mut worst = exit::OK;
    for mut r in replicas {
        let status = r
            .child
            .wait()
            .with_context(|| format!("waiting for the replica on adapter {}", r.index))?;
        signals::forget(r.child.id());
        let stdout = r.stdout.join().unwrap_or_default();
        let last_err = r.stderr.join().unwrap_or_default();
        // A replica killed by a signal has no code: a failure, its saved workloads kept.
        let code = status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(exit::FAILURE);
        r.bar
            .finish_with_message(format!("ended, exit code {code}"));
        let ended = format!(
            "tokbench: adapter {} ({}) ended after {:.0} s with exit code {code}",
            r.index,
            r.adapter,
            clock.elapsed().as_secs_f64()
        );
        // Above the bars on a terminal, so that they stay whole.
        if bars.is_hidden() || bars.println(&ended).is_err() {
            eprintln!("{ended}");
        }
        // Under --jsonl stdout carries only documents.
        if !common.jsonl {
            println!("── GPU {}: {} ──", r.index, r.adapter);
        }
        print!("{}", String::from_utf8_lossy(&stdout));
        let doc = crate::result::io::load(&r.out).ok();
        let result = r.out.exists().then(|| r.out.display().to_string());
        runs.push((
            GpuRun {
                adapter_index: r.index,
                adapter: r.adapter,
                backend: r.backend,
                result,
                exit_code: code,
                error: (code != exit::OK).then(|| last_err.unwrap_or_else(|| status.to_string())),
            },
            doc,
        ));
        worst = worst.max(code);
    }
    let summary = NodeSummary::new(&host, runs);
    let path = dir.join(format!("{stamp}-node-summary.json"));
    crate::result::io::replace_atomically(
        &path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .with_context(|| format!("writing the node summary {}", path.display()))?;
    let report = format!(
        "{}\nnode summary: {}",
        table::node_summary(&summary),
        path.display()
    );
    if common.jsonl {
        eprintln!("{report}");
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{report}");
    }
    Ok(ExitCode::from(worst))
}

/// The command line of the replica on adapter `index`: this run's own arguments with its
/// `--adapter` taken out, then `--adapter <index> --out <out>`.
fn replica_args(args: &[OsString], index: usize, out: &Path) -> Vec<OsString> {
    let mut kept = Vec::with_capacity(args.len() + 4);
    let mut value_next = false;
    for a in args {
        if std::mem::take(&mut value_next) {
            continue;
        }
        if a == "--adapter" {
            value_next = true;
        } else if !a.to_str().is_some_and(|s| s.starts_with("--adapter=")) {
            kept.push(a.clone());
        }
    }
    kept.extend([
        "--adapter".into(),
        index.to_string().into(),
        "--out".into(),
        out.as_os_str().to_owned(),
    ]);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn a_replicas_workload_lines_drive_its_bar() {
        let line = format!("{WORKLOAD_LINE}2/5: decode-tiny-f32-b1-d16 (repetition 1/2)");
        assert_eq!(
            workload_line(&line),
            Some((2, 5, "decode-tiny-f32-b1-d16 (repetition 1/2)"))
        );
        assert_eq!(workload_line("tokbench: measuring idle power"), None);
        assert_eq!(workload_line(&format!("{WORKLOAD_LINE}x/5: id")), None);
    }

    #[test]
    fn a_replica_runs_the_same_command_on_its_own_adapter_into_its_own_file() {
        let out = Path::new("/r/h/t-gpu1-x.json");
        assert_eq!(
            replica_args(&args("run --preset tiny --adapter all --samples 3"), 1, out),
            args("run --preset tiny --samples 3 --adapter 1 --out /r/h/t-gpu1-x.json")
        );
        assert_eq!(
            replica_args(&args("kernel matmul --adapter=0,1 --m 4"), 0, out),
            args("kernel matmul --m 4 --adapter 0 --out /r/h/t-gpu1-x.json")
        );
    }
}
