//! A run: workloads measured in order on one device, the result document rewritten after each
//! one. The `tokbench` CLI and `cargo bench` both run through here, so their results mean the
//! same thing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;

use crate::gpu::Device;
use crate::kernels::KernelConfig;
use crate::measure::{MeasureEnv, Measured, MockTimer, measure};
use crate::model::Phase;
use crate::power::PowerMeter;
use crate::result::Correctness;
use crate::result::io::{Destination, ResultWriter};
use crate::result::{
    DeviceDefault, ModelPlan, PlanRecord, PowerSetup, Probes, Roofline, RunResult, SCHEMA_VERSION,
    SamplePolicy, ToolInfo, WorkloadResult,
};
use crate::stats;
use crate::workload::{Description, Stage, Workload};

/// What a command wants run, decided once the device is open.
#[derive(Default)]
pub struct Planned {
    /// In order.
    pub workloads: Vec<Box<dyn Workload>>,
    /// The model plan, for the result.
    pub model: Option<ModelPlan>,
    /// Kernel choices, for the result.
    pub kernel_config: Option<KernelConfig>,
    /// Where they came from, for the result.
    pub kernel_config_source: Option<String>,
    /// Lines for the user before the run starts.
    pub notes: Vec<String>,
    /// Settings chosen for the device because the user gave none, for the plan record.
    pub device_defaults: Vec<DeviceDefault>,
    /// Warnings about the adapter chosen, for the plan record.
    pub adapter_warnings: Vec<String>,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The subcommand recorded in the plan ("run", "kernel", "bench").
    pub command: String,
    /// Sampling policy for every workload.
    pub policy: SamplePolicy,
    /// Where the result goes.
    pub destination: Destination,
    /// Set (by a signal handler) to stop after the workload in flight.
    pub stop: Option<Arc<AtomicBool>>,
}

/// Hears about a run as it goes, for progress display.
pub trait Observer {
    /// The result file is reserved and the run is about to start.
    fn begin(&mut self, _doc: &RunResult, _path: &Path, _notes: &[String]) {}
    /// Workload `index` (from 0) of `total` starts.
    fn workload(&mut self, _index: usize, _total: usize, _id: &str) {}
    /// The current workload moved on.
    fn stage(&mut self, _stage: Stage) {}
    /// The current workload finished and is on disk.
    fn finished(&mut self, _result: &WorkloadResult) {}
}

/// An observer that shows nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// What a run left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The result file.
    pub path: PathBuf,
    /// Its contents.
    pub document: RunResult,
    /// True when the run was stopped before every workload ran.
    pub interrupted: bool,
}

/// Checks every workload fits the device (before anything is written), reserves the result
/// file, then measures the workloads in order; each finished workload is on disk before the
/// next starts. A workload that fails ends the run with an error naming it; the ones before it
/// stay in the file.
pub fn run(
    device: Device<'_>,
    planned: Planned,
    spec: &RunSpec,
    mut power: Option<&mut PowerMeter>,
    observer: &mut dyn Observer,
) -> anyhow::Result<Outcome> {
    let facts = device.facts();
    for w in &planned.workloads {
        w.check_fits(&facts)?;
    }
    let doc = RunResult {
        schema_version: SCHEMA_VERSION,
        tool: tool_info(),
        started_at: now_utc(),
        finished_at: None,
        interrupted: false,
        node: crate::node::fingerprint(),
        adapter: facts.adapter_record(),
        timing_method: facts.timing_method,
        plan: PlanRecord {
            command: spec.command.clone(),
            sampling: spec.policy,
            model: planned.model,
            device_defaults: planned.device_defaults,
            adapter_warnings: planned.adapter_warnings,
        },
        kernel_config: planned.kernel_config,
        kernel_config_source: planned.kernel_config_source,
        probes: None,
        power: PowerSetup::none("none", "no power meter in this run"),
        workloads: Vec::new(),
    };
    let mut writer = ResultWriter::create(&spec.destination, doc)?;
    observer.begin(writer.document(), writer.path(), &planned.notes);
    if let Some(meter) = power.as_deref_mut() {
        // Idle power, with the same source, before any workload heats the device.
        observer.stage(Stage::Idle);
        meter.measure_idle()?;
        let setup = meter.setup();
        writer.update(|doc| doc.power = setup)?;
    }
    let env = MeasureEnv {
        policy: spec.policy,
        power: power.as_deref(),
    };

    let total = planned.workloads.len();
    let mut peaks = PeakTracker::default();
    let stopped = || spec.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    let mut interrupted = false;
    for (i, workload) in planned.workloads.iter().enumerate() {
        if stopped() {
            interrupted = true;
            break;
        }
        let description = workload.describe();
        observer.workload(i, total, &description.id);
        let outcome = measure_one(
            device,
            workload.as_ref(),
            description.clone(),
            &env,
            observer,
        );
        let mut result = outcome.with_context(|| {
            format!(
                "workload {} failed; the {} finished before it are saved in {}",
                description.id,
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
        observer.finished(writer.document().workloads.last().expect("just pushed"));
    }
    writer.update(|doc| {
        doc.finished_at = Some(now_utc());
        doc.interrupted = interrupted;
    })?;
    Ok(Outcome {
        path: writer.path().to_path_buf(),
        document: writer.document().clone(),
        interrupted,
    })
}

/// Prepares `workload` on the device, times it through the device's [`Timer`], checks it and
/// assembles its result. On the mock device nothing is prepared, run or checked.
fn measure_one(
    device: Device<'_>,
    workload: &dyn Workload,
    planned: Description,
    env: &MeasureEnv<'_>,
    observer: &mut dyn Observer,
) -> anyhow::Result<WorkloadResult> {
    let (description, measured, correctness) = match device {
        Device::Gpu(ctx) => {
            let prepared = workload.prepare(ctx, &mut |stage| observer.stage(stage))?;
            let timer = ctx.timer(prepared.execution());
            let measured = measure(&*timer, env, &mut |d, p| {
                observer.stage(Stage::Samples(d, p))
            })?;
            observer.stage(Stage::Verifying);
            let correctness = prepared.verify(ctx)?;
            (prepared.describe(planned), measured, correctness)
        }
        Device::Mock(mock) => {
            let timer = MockTimer::for_work(planned.work, mock);
            let measured = measure(&timer, env, &mut |d, p| {
                observer.stage(Stage::Samples(d, p))
            })?;
            (
                planned,
                measured,
                Correctness::not_checked("mock device: nothing ran"),
            )
        }
    };
    Ok(assemble(description, correctness, &measured))
}

/// A workload's result from what it is, what the check found, and what was measured.
pub fn assemble(d: Description, correctness: Correctness, measured: &Measured) -> WorkloadResult {
    let stats = stats::summarize(&measured.samples_s, measured.warmup_iterations);
    let median = stats.median_s;
    let tokens = d.tokens.as_ref().map(|t| t.pass.tokens());
    let tokens_per_s = tokens.map(|t| t as f64 / median);
    // tokens/J = tokens executed in the energy window ÷ that window's joules.
    let energy = crate::power::token_energy(tokens, &measured.power);
    let token = d.tokens.as_ref();
    let len_of = |phase| token.filter(|t| t.pass.phase == phase).map(|t| t.pass.len);
    WorkloadResult {
        id: d.id,
        kind: d.kind,
        shape: d.shape,
        dtype: d.dtype,
        valid: correctness.failure.is_none(),
        correctness,
        achieved_gflops: d.work.flops / median / 1e9,
        achieved_gbps: d.work.bytes / median / 1e9,
        flops: d.work.flops,
        bytes: d.work.bytes,
        stats,
        roofline: None,
        phase: token.map(|t| t.pass.phase.name().into()),
        preset: token.map(|t| t.preset.clone()),
        model: token.map(|t| t.model),
        batch: token.map(|t| t.pass.batch),
        prompt_len: len_of(Phase::Prefill),
        depth: len_of(Phase::Decode),
        layers_run: token.map(|t| t.layers_run),
        weights_shared_across_layers: token.map(|t| t.weights_shared_across_layers),
        tokens,
        tokens_per_s,
        power: measured.power.clone(),
        tokens_per_j: energy.tokens_per_j,
        tokens_per_j_dynamic: energy.tokens_per_j_dynamic,
        j_per_token: energy.j_per_token,
    }
}

/// Collects the probes' peaks as they finish and sets later workloads against them.
#[derive(Default)]
struct PeakTracker {
    fma_gflops: Option<f64>,
    copy_gbps: Option<f64>,
    read_gbps: Option<f64>,
}

impl PeakTracker {
    fn observe(&mut self, result: &mut WorkloadResult) {
        match result.kind.as_str() {
            "probe-fma" if result.valid => self.fma_gflops = Some(result.achieved_gflops),
            "probe-copy" if result.valid => self.copy_gbps = Some(result.achieved_gbps),
            "probe-read" if result.valid => self.read_gbps = Some(result.achieved_gbps),
            _ => {
                let Some(p) = self.probes() else { return };
                // Decode mostly reads (weights, KV cache): a copy, which also writes, does not
                // bound it, so its share is against the read probe where that ran.
                let bandwidth = match (result.kind.as_str(), p.read_gbps) {
                    ("decode", Some(read)) => ("probe-read", read),
                    _ => ("probe-copy", p.copy_gbps),
                };
                result.roofline = Some(Roofline::new(
                    (result.achieved_gflops, result.achieved_gbps),
                    p.fma_gflops,
                    bandwidth,
                ));
            }
        }
    }

    fn probes(&self) -> Option<Probes> {
        Some(Probes {
            fma_gflops: self.fma_gflops?,
            copy_gbps: self.copy_gbps?,
            read_gbps: self.read_gbps,
        })
    }
}

/// This program, for the result document.
pub fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "tokbench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_sha: option_env!("TOKBENCH_GIT_SHA")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    }
}

/// The current time, RFC 3339 in UTC with milliseconds.
pub fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
