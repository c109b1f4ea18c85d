//! The CLI side of a run: open the device, plan, show progress, print the table.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::CommonArgs;
use super::table;
use crate::exit;
use crate::gpu::{Device, GpuContext, MockDevice, ShaderChecks};
use crate::power::{AdapterIdentity, PowerMeter};
use crate::result::{RunResult, WorkloadResult};
use crate::runner::{self, Observer, Planned, RunSpec};
use crate::workload::Stage;

/// Bytes written to the results directory before a run starts, to find a full disk early:
/// about what a result with a few workloads takes.
const PREFLIGHT_BYTES: usize = 64 << 10;

/// Opens the device, plans with `plan`, runs, and prints the table. Exit 1 when a workload
/// failed its correctness check.
pub(super) fn run_workloads(
    command: &str,
    common: &CommonArgs,
    plan: impl FnOnce(Device<'_>) -> anyhow::Result<Planned>,
) -> anyhow::Result<ExitCode> {
    // Everything that needs no device is checked first, so bad input costs no device, no tune
    // and no measurement.
    let options = common.power.options();
    options.validate()?;
    common
        .destination()
        .preflight(&crate::node::hostname(), PREFLIGHT_BYTES)?;
    let timeout = Duration::from_secs_f64(common.timeout_s);
    let mock = common
        .mock_device
        .map(|mode| MockDevice::new(mode, timeout));
    let device = match &mock {
        Some(mock) => Device::Mock(mock),
        None => {
            let mut ctx = GpuContext::open(&common.selector())?;
            ctx.wait_timeout = Some(timeout);
            if common.checked_shaders {
                ctx.shader_checks = ShaderChecks::Checked;
            }
            // Never dropped: dropping a device waits for its work, which on a hung GPU never
            // ends. The process exits right after the run anyway.
            Device::Gpu(Box::leak(Box::new(ctx)))
        }
    };
    let planned = plan(device)?;
    let spec = RunSpec {
        command: command.into(),
        policy: common.policy(),
        repetitions: common.repeat,
        destination: common.destination(),
        stop: Some(super::signals::stop_flag()),
    };
    let mut meter = PowerMeter::open(&options, &AdapterIdentity::from_wgpu(&device.facts().info))?;
    let outcome = runner::run(
        device,
        planned,
        &spec,
        Some(&mut meter),
        &mut ProgressBars::default(),
    )?;
    let doc = &outcome.document;
    if common.jsonl {
        // stdout carries only the document; people read the table on stderr.
        eprintln!("{}", table::workloads(doc));
        for line in table::math_ratios(doc) {
            eprintln!("{line}");
        }
        eprintln!("result: {}", outcome.path.display());
        println!("{}", serde_json::to_string(doc)?);
    } else {
        println!("{}", table::workloads(doc));
        for line in table::math_ratios(doc) {
            println!("{line}");
        }
        println!("result: {}", outcome.path.display());
    }
    let invalid: Vec<&str> = doc
        .workloads
        .iter()
        .filter(|w| !w.valid)
        .map(|w| w.id.as_str())
        .collect();
    if outcome.interrupted {
        eprintln!(
            "tokbench: interrupted; the {} finished workloads are saved in {}",
            doc.workloads.len(),
            outcome.path.display()
        );
        return Ok(ExitCode::from(exit::INTERRUPTED));
    }
    if invalid.is_empty() {
        Ok(ExitCode::from(exit::OK))
    } else {
        eprintln!(
            "invalid results (failed the correctness check): {}",
            invalid.join(", ")
        );
        Ok(ExitCode::from(exit::FAILURE))
    }
}

/// One progress bar per workload on stderr (hidden when stderr is not a terminal).
#[derive(Default)]
struct ProgressBars {
    bar: Option<ProgressBar>,
}

impl Observer for ProgressBars {
    fn begin(&mut self, doc: &RunResult, path: &Path, notes: &[String]) {
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

    fn workload(
        &mut self,
        index: usize,
        total: usize,
        id: &str,
        repetition: u32,
        repetitions: u32,
    ) {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {elapsed}")
                .expect("static template")
                .progress_chars("=> "),
        );
        let round = if repetitions > 1 {
            format!(" (repetition {}/{repetitions})", repetition + 1)
        } else {
            String::new()
        };
        bar.set_prefix(format!("[{}/{total}] {id}{round}", index + 1));
        self.bar = Some(bar);
    }

    fn stage(&mut self, stage: Stage) {
        let Some(bar) = &self.bar else {
            if stage == Stage::Idle {
                eprintln!("tokbench: measuring idle power");
            }
            return;
        };
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
