//! Runs a list of workloads on one device, writing the result after each one.

use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::CommonArgs;
use super::table;
use crate::exit;
use crate::gpu::GpuContext;
use crate::kernels::KernelConfig;
use crate::result::io::ResultWriter;
use crate::result::{
    ModelPlan, PlanRecord, Probes, Roofline, RunResult, SCHEMA_VERSION, ToolInfo, WorkloadResult,
};
use crate::workload::{Stage, Workload};

/// What a command wants run, decided once the device is open.
#[derive(Default)]
pub(super) struct Planned {
    /// In order.
    pub workloads: Vec<Box<dyn Workload>>,
    /// The model plan, for the result.
    pub model: Option<ModelPlan>,
    /// Kernel choices, for the result.
    pub kernel_config: Option<KernelConfig>,
    /// Lines for the user before the run starts.
    pub notes: Vec<String>,
}

/// Opens the device, plans with `plan`, checks every workload fits, then measures them in
/// order. Input problems are found before anything is written; each finished workload is on
/// disk before the next starts.
pub(super) fn run_workloads(
    command: &str,
    common: &CommonArgs,
    plan: impl FnOnce(&GpuContext) -> anyhow::Result<Planned>,
) -> anyhow::Result<ExitCode> {
    let ctx = GpuContext::open(&common.selector())?;
    let planned = plan(&ctx)?;
    for w in &planned.workloads {
        w.check_fits(&ctx)?;
    }
    let policy = common.policy();
    let doc = RunResult {
        schema_version: SCHEMA_VERSION,
        tool: tool_info(),
        started_at: now_utc(),
        finished_at: None,
        interrupted: false,
        node: crate::node::fingerprint(),
        adapter: ctx.adapter_record(),
        timing_method: ctx.timing_method,
        plan: PlanRecord {
            command: command.into(),
            sampling: policy,
            model: planned.model,
        },
        kernel_config: planned.kernel_config,
        probes: None,
        power: crate::result::PowerSetup::none("none", "power measurement is not built yet"),
        workloads: Vec::new(),
    };
    let mut writer = ResultWriter::create(&common.destination(), doc)?;
    eprintln!(
        "tokbench: {} ({}, {}), timing: {:?}; writing {}",
        ctx.info.name,
        writer.document().adapter.backend,
        writer.document().adapter.device_type,
        ctx.timing_method,
        writer.path().display()
    );
    for note in &planned.notes {
        eprintln!("tokbench: {note}");
    }

    let workloads = planned.workloads;
    let mut peaks = PeakTracker::default();
    for (i, workload) in workloads.iter().enumerate() {
        let bar = ProgressBar::new(policy.min_samples.into()).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {elapsed}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("[{}/{}] {}", i + 1, workloads.len(), workload.id()));
        let outcome = workload.run(&ctx, &policy, &mut |stage| match stage {
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
        });
        bar.finish_and_clear();
        let mut result = outcome.with_context(|| {
            format!(
                "workload {} failed; the {} finished before it are saved in {}",
                workload.id(),
                writer.document().workloads.len(),
                writer.path().display()
            )
        })?;
        peaks.observe(&mut result);
        let probes = peaks.probes();
        writer.push(result)?;
        writer.update(|doc| {
            doc.probes = probes;
            // A fallback at upload time (memory the planner could not see) shares weights.
            let shared = doc
                .workloads
                .iter()
                .any(|w| w.weights_shared_across_layers == Some(true));
            if let Some(model) = doc.plan.model.as_mut() {
                model.weights_shared_across_layers |= shared;
            }
        })?;
    }
    writer.update(|doc| doc.finished_at = Some(now_utc()))?;

    let doc = writer.document();
    if common.jsonl {
        // stdout carries only the document; people read the table on stderr.
        eprintln!("{}", table::workloads(doc));
        eprintln!("result: {}", writer.path().display());
        println!("{}", serde_json::to_string(doc)?);
    } else {
        println!("{}", table::workloads(doc));
        println!("result: {}", writer.path().display());
    }
    let invalid: Vec<&str> = doc
        .workloads
        .iter()
        .filter(|w| !w.valid)
        .map(|w| w.id.as_str())
        .collect();
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

/// Collects the probes' peaks as they finish and sets later workloads against them.
#[derive(Default)]
struct PeakTracker {
    fma_gflops: Option<f64>,
    copy_gbps: Option<f64>,
}

impl PeakTracker {
    fn observe(&mut self, result: &mut WorkloadResult) {
        match result.kind.as_str() {
            "probe-fma" if result.valid => self.fma_gflops = Some(result.achieved_gflops),
            "probe-copy" if result.valid => self.copy_gbps = Some(result.achieved_gbps),
            _ => {
                if let Some(p) = self.probes() {
                    result.roofline = Some(Roofline::new(
                        result.achieved_gflops,
                        result.achieved_gbps,
                        p,
                    ));
                }
            }
        }
    }

    fn probes(&self) -> Option<Probes> {
        Some(Probes {
            fma_gflops: self.fma_gflops?,
            copy_gbps: self.copy_gbps?,
        })
    }
}

/// This program, for the result document.
pub(crate) fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "tokbench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_sha: option_env!("TOKBENCH_GIT_SHA")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    }
}

/// The current time, RFC 3339 in UTC with milliseconds.
pub(crate) fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
