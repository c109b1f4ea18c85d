//! The CLI side of a run: open the device, plan, show progress, print the table.

use std::path::Path;

use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::CommonArgs;
use super::table;
use crate::gpu::{Device, GpuContext, MockDevice, ShaderChecks};
use crate::power::{AdapterIdentity, PowerMeter};
use crate::result::{RunResult, WorkloadResult};
use crate::runner::{self, Observer, Planned, RunSpec};
use crate::workload::Stage;
use crate::{InputError, exit};

/// Bytes written to the results directory before a run starts, to find a full disk early:
/// about what a result with a few workloads takes.
const PREFLIGHT_BYTES: usize = 64 << 10;

/// Opens the device, plans with `plan`, runs, and prints the table. Exit 1 when a workload
/// failed its correctness check. With `--adapter all` (or a list), the same on every GPU of the
/// node at once, one process each, and a node summary beside their results.
pub(super) fn run_workloads(
    command: &str,
    common: &CommonArgs,
    mut plan: impl FnMut(Device<'_>) -> anyhow::Result<Planned>,
) -> anyhow::Result<ExitCode> {
    // Everything that needs no device is checked first, so bad input costs no device, no tune
    // and no measurement.
    common.power.options().validate()?;
    common
        .destination()
        .preflight(&crate::node::hostname(), PREFLIGHT_BYTES)?;
    if let Some(wanted) = common.replicas() {
        return super::replicas::run_replicas(common, wanted);
    }
    let code = run_on(command, common, &mut plan)?;
    Ok(ExitCode::from(code))
}

/// One run on the adapter the flags name: its exit code.
fn run_on(
    command: &str,
    common: &CommonArgs,
    plan: &mut dyn FnMut(Device<'_>) -> anyhow::Result<Planned>,
) -> anyhow::Result<u8> {
    let (device, adapter_warnings) = open_device(common)?;
    let mut planned = plan(device)?;
    let (policy, chosen) = common.policy(&device.facts());
    planned.device_defaults.extend(chosen);
    planned.adapter_warnings.extend(adapter_warnings);
    let spec = RunSpec {
        command: command.into(),
        policy,
        repetitions: common.repeat,
        destination: common.destination(),
        stop: Some(super::signals::stop_flag()),
    };
    let options = common.power.options();
    let mut meter = PowerMeter::open(&options, &AdapterIdentity::from_wgpu(&device.facts().info))?;
    let outcome = runner::run(
        device,
        planned,
        &spec,
        Some(&mut meter),
        &mut ProgressBars::default(),
    )?;
    let doc = &outcome.document;
    let mut report = vec![table::workloads(doc).to_string()];
    report.extend(table::roofline_warnings(doc));
    report.extend(table::math_ratios(doc));
    report.extend(table::experts_touched(doc));
    report.push(format!("result: {}", outcome.path.display()));
    if common.jsonl {
        // stdout carries only the document; people read the table on stderr.
        eprintln!("{}", report.join("\n"));
        println!("{}", serde_json::to_string(doc)?);
    } else {
        println!("{}", report.join("\n"));
    }
    let invalid: Vec<&str> = doc
        .workloads
        .iter()
        .filter(|w| !w.valid)
        .map(|w| w.id.as_str())
        .collect();
    let code = if outcome.interrupted {
        eprintln!(
            "tokbench: interrupted; the {} finished workloads are saved in {}",
            doc.workloads.len(),
            outcome.path.display()
        );
        exit::INTERRUPTED
    } else if invalid.is_empty() {
        exit::OK
    } else {
        eprintln!(
            "invalid results (failed the correctness check): {}",
            invalid.join(", ")
        );
        exit::FAILURE
    };
    Ok(code)
}

/// Opens the device the flags choose (the mock device, or a wgpu adapter checked by
/// [`check_adapter`]) for `run` and `serve` alike, with the adapter's warnings for the
/// result. Never dropped: dropping a device waits for its work, which on a hung GPU never
/// ends; the process exits right after the run anyway.
pub(super) fn open_device(common: &CommonArgs) -> anyhow::Result<(Device<'static>, Vec<String>)> {
    if let Some(wanted) = common.replicas() {
        return Err(InputError::new(format!(
            "--adapter {wanted} is for `run` and `kernel`; this command measures one adapter: \
             give its index or name (see `tokbench devices`)"
        ))
        .into());
    }
    let timeout = Duration::from_secs_f64(common.timeout_s);
    if let Some(mode) = common.mock_device {
        let mock: &'static MockDevice = Box::leak(Box::new(MockDevice::new(mode, timeout)));
        return Ok((Device::Mock(mock), Vec::new()));
    }
    let mut ctx = GpuContext::open(&common.selector())?;
    let warnings = check_adapter(&ctx, &common.host, &common.power.sysfs_root, common.backend)?;
    ctx.wait_timeout = Some(timeout);
    if common.checked_shaders {
        ctx.shader_checks = ShaderChecks::Checked;
    }
    Ok((Device::Gpu(Box::leak(Box::new(ctx))), warnings))
}

/// Says loudly when the adapter chosen is not what the host could run on (a CPU adapter while
/// a GPU wgpu cannot see is in the machine, or a GL fallback), and refuses a CPU adapter under
/// `--require-gpu` (exit 2, before anything is measured).
pub(super) fn check_adapter(
    ctx: &GpuContext,
    host: &super::HostArgs,
    sysfs_root: &Path,
    backend: Option<crate::gpu::BackendChoice>,
) -> anyhow::Result<Vec<String>> {
    let gpus = crate::gpu::host_gpus(sysfs_root, &host.dev_root);
    let advice = crate::gpu::advise(
        &ctx.info,
        &gpus,
        backend == Some(crate::gpu::BackendChoice::Gl),
    );
    for warning in &advice.warnings {
        eprintln!("tokbench: WARNING: {warning}");
    }
    if host.require_gpu && advice.cpu_adapter {
        let why = match gpus.first() {
            Some(gpu) => format!(
                "the GPU at {} ({}) has no Vulkan driver wgpu can load; install {}",
                gpu.found_at, gpu.driver, gpu.vulkan_driver
            ),
            None => "no GPU was found on this machine".into(),
        };
        return Err(crate::InputError::new(format!(
            "--require-gpu: the adapter chosen, {:?}, is a CPU adapter: {why}",
            ctx.info.name
        ))
        .into());
    }
    Ok(advice.warnings)
}

/// The progress line of one workload: what it is doing, how far, how long it has taken and how
/// long the current stage has left (indicatif's estimate from the rate so far).
const PROGRESS_TEMPLATE: &str = "{prefix} [{bar:30}] {pos}/{len} {msg} {elapsed} (eta {eta})";

/// A workload's progress bar drawing to `target`.
fn workload_bar(target: indicatif::ProgressDrawTarget) -> ProgressBar {
    ProgressBar::with_draw_target(Some(0), target).with_style(
        ProgressStyle::with_template(PROGRESS_TEMPLATE)
            .expect("static template")
            .progress_chars("=> "),
    )
}

/// Says on stderr which adapter a run (or serve) measures, how it times, where it writes the
/// result, and the notes of its set-up.
pub(super) fn announce(doc: &RunResult, path: &Path, notes: &[String]) {
    eprintln!(
        "tokbench: {} ({}, {}), timing: {:?}; writing {}",
        doc.adapter.name,
        doc.adapter.backend,
        doc.adapter.device_type,
        doc.timing_method,
        path.display()
    );
    for note in notes {
        eprintln!("tokbench: {note}");
    }
}

/// One progress bar per workload on stderr (hidden when stderr is not a terminal).
#[derive(Default)]
struct ProgressBars {
    bar: Option<ProgressBar>,
    /// The kind of the last stage shown: a new kind restarts the ETA (uploads count MiB,
    /// sampling counts samples).
    last_stage: Option<std::mem::Discriminant<Stage>>,
}

impl Observer for ProgressBars {
    fn begin(&mut self, doc: &RunResult, path: &Path, notes: &[String]) {
        announce(doc, path, notes);
    }

    fn workload(
        &mut self,
        index: usize,
        total: usize,
        id: &str,
        repetition: u32,
        repetitions: u32,
    ) {
        let bar = workload_bar(indicatif::ProgressDrawTarget::stderr());
        let round = if repetitions > 1 {
            format!(" (repetition {}/{repetitions})", repetition + 1)
        } else {
            String::new()
        };
        bar.set_prefix(format!("[{}/{total}] {id}{round}", index + 1));
        if std::env::var_os(super::replicas::REPLICA_ENV).is_some() {
            // A replica's stderr is a pipe (no bar): the line its parent's bar follows.
            eprintln!(
                "{}{}/{total}: {id}{round}",
                super::replicas::WORKLOAD_LINE,
                index + 1
            );
        }
        self.bar = Some(bar);
        self.last_stage = None;
    }

    fn stage(&mut self, stage: Stage) {
        let Some(bar) = &self.bar else {
            if stage == Stage::Idle {
                eprintln!("tokbench: measuring idle power");
            }
            return;
        };
        let kind = std::mem::discriminant(&stage);
        if self.last_stage != Some(kind) {
            bar.reset_eta();
            self.last_stage = Some(kind);
        }
        match stage {
            Stage::Uploading(done, total) => {
                bar.set_message("MiB of weights uploaded");
                bar.set_length(total >> 20);
                bar.set_position(done >> 20);
            }
            Stage::Samples(done, planned) => {
                bar.set_message("samples");
                bar.set_length(planned as u64);
                bar.set_position(done as u64);
            }
            Stage::Verifying => bar.set_message("checking against the CPU reference"),
            Stage::Idle => bar.set_message("measuring idle power"),
        }
    }

    fn finished(&mut self, _result: &WorkloadResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal that keeps what is drawn.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_progress_line_shows_an_eta() {
        let screen = Screen::default();
        let bar = workload_bar(indicatif::ProgressDrawTarget::term_like(Box::new(
            screen.clone(),
        )));
        bar.set_prefix("[3/5] prefill");
        bar.set_message("samples");
        bar.set_length(10);
        for i in 1..=5 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            bar.set_position(i);
        }
        bar.tick();
        let drawn = screen.0.lock().unwrap().clone();
        let last = drawn.lines().rfind(|l| l.contains("samples")).unwrap_or("");
        assert!(
            last.contains("5/10 samples") && last.contains("(eta "),
            "{drawn:?}"
        );
    }
}
