//! A run: workloads measured in order on one device, the result document rewritten after each
//! one. With repetitions (`--repeat N`) the order is interleaved, every workload once and then
//! every workload again (A, B, C, A, B, C, …), so a slow drift of the machine (a neighbour's
//! build, thermal state, clocks) falls on all workloads alike rather than on whichever ran
//! last. The `tokbench` CLI and `cargo bench` both run through here, so their results mean the
//! same thing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;

use crate::gpu::{Device, DeviceFacts};
use crate::kernels::KernelConfig;
use crate::measure::{MeasureEnv, Measured, MockTimer, measure};
use crate::model::Phase;
use crate::power::PowerMeter;
use crate::result::io::{Destination, ResultWriter};
use crate::result::{Correctness, WorkloadKind};
use crate::result::{
    DeviceDefault, ModelPlan, PlanRecord, PowerSetup, Probes, Repetition, Roofline, RunResult,
    SCHEMA_VERSION, SamplePolicy, ToolInfo, WorkloadResult,
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
    /// Complete measurements of each workload, interleaved (1 for a single one; 0 counts as 1).
    pub repetitions: u32,
    /// Where the result goes.
    pub destination: Destination,
    /// Set (by a signal handler) to stop after the workload in flight.
    pub stop: Option<Arc<AtomicBool>>,
}

/// Hears about a run as it goes, for progress display.
pub trait Observer {
    /// The result file is reserved and the run is about to start.
    fn begin(&mut self, _doc: &RunResult, _path: &Path, _notes: &[String]) {}
    /// Workload `index` (from 0) of `total` starts its repetition `repetition` (from 0) of
    /// `repetitions`.
    fn workload(
        &mut self,
        _index: usize,
        _total: usize,
        _id: &str,
        _repetition: u32,
        _repetitions: u32,
    ) {
    }
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
/// file, then measures the workloads in order, `spec.repetitions` rounds of them; after every
/// measurement the document on disk holds each workload with the repetitions it has so far. A
/// workload that fails ends the run with an error naming it; what was measured before stays in
/// the file.
pub fn run(
    device: Device<'_>,
    planned: Planned,
    spec: &RunSpec,
    mut power: Option<&mut PowerMeter>,
    observer: &mut dyn Observer,
) -> anyhow::Result<Outcome> {
    let facts = device.facts();
    let repetitions = spec.repetitions.max(1);
    for w in &planned.workloads {
        w.check_fits(&facts)?;
    }
    let doc = RunResult {
        kernel_config: planned.kernel_config,
        kernel_config_source: planned.kernel_config_source,
        ..new_result(
            &facts,
            PlanRecord {
                command: spec.command.clone(),
                sampling: spec.policy,
                model: planned.model,
                repetitions,
                device_defaults: planned.device_defaults,
                adapter_warnings: planned.adapter_warnings,
            },
        )
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
    // Per workload: what its first repetition found out (description, check) and every
    // repetition's measurement so far.
    let mut done: Vec<(Description, Correctness, Vec<Measured>)> = Vec::with_capacity(total);
    'rounds: for round in 0..repetitions {
        for (i, workload) in planned.workloads.iter().enumerate() {
            if stopped() {
                interrupted = true;
                break 'rounds;
            }
            let description = workload.describe();
            observer.workload(i, total, &description.id, round, repetitions);
            let outcome = measure_one(
                device,
                workload.as_ref(),
                description.clone(),
                &env,
                round == 0,
                observer,
            );
            let (found, correctness, measured) = outcome.with_context(|| {
                let saved = if repetitions > 1 {
                    format!(
                        " (repetition {} of {repetitions}); what was measured before it is",
                        round + 1
                    )
                } else {
                    format!(
                        "; the {} finished before it are",
                        writer.document().workloads.len()
                    )
                };
                format!(
                    "workload {} failed{saved} saved in {}",
                    description.id,
                    writer.path().display()
                )
            })?;
            if round == 0 {
                let correctness = correctness.expect("the first repetition is verified");
                done.push((found, correctness, vec![measured]));
            } else {
                done[i].2.push(measured);
            }
            let (d, correctness, reps) = &done[i];
            let mut result = assemble(d.clone(), correctness.clone(), reps);
            peaks.observe(&mut result);
            let probes = peaks.probes();
            if round == 0 {
                writer.push(result)?;
            } else {
                writer.update(|doc| doc.workloads[i] = result)?;
            }
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
            observer.finished(&writer.document().workloads[i]);
        }
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

/// Prepares `workload` on the device, times it through the device's [`Timer`] and, when
/// `verify`, checks what it computed (once per workload: later repetitions run the same shaders
/// on the same synthetic inputs). Each repetition prepares afresh, so only one workload's
/// buffers are ever held. On the mock device nothing is prepared, run or checked.
fn measure_one(
    device: Device<'_>,
    workload: &dyn Workload,
    planned: Description,
    env: &MeasureEnv<'_>,
    verify: bool,
    observer: &mut dyn Observer,
) -> anyhow::Result<(Description, Option<Correctness>, Measured)> {
    match device {
        Device::Gpu(ctx) => {
            let prepared = workload.prepare(ctx, &mut |stage| observer.stage(stage))?;
            let timer = ctx.timer(prepared.execution());
            let measured = measure(&*timer, env, &mut |d, p| {
                observer.stage(Stage::Samples(d, p))
            })?;
            let correctness = if verify {
                observer.stage(Stage::Verifying);
                Some(prepared.verify(ctx)?)
            } else {
                None
            };
            Ok((prepared.describe(planned)?, correctness, measured))
        }
        Device::Mock(mock) => {
            let timer = MockTimer::for_work(planned.work, mock);
            let measured = measure(&timer, env, &mut |d, p| {
                observer.stage(Stage::Samples(d, p))
            })?;
            let correctness = Correctness::not_checked("mock device: nothing ran");
            Ok((planned, Some(correctness), measured))
        }
    }
}

/// A workload's result from what it is, what the check found, and its repetitions' measurements
/// (at least one). With one, its figures are the result's; with more, each is kept as a
/// [`Repetition`], the headline time is the median of their medians, and the power window (and
/// so tokens/J) is that of the repetition with the median tokens/J, or with the median time
/// when there is no energy figure.
pub fn assemble(d: Description, correctness: Correctness, measured: &[Measured]) -> WorkloadResult {
    assert!(!measured.is_empty(), "assemble needs a measurement");
    let samples: Vec<Vec<f64>> = measured.iter().map(|m| m.samples_s.clone()).collect();
    let warmup = measured.iter().map(|m| m.warmup_iterations).sum();
    let stats = stats::summarize_repetitions(&samples, warmup);
    let median = stats.median_s;
    let tokens = d.tokens.as_ref().map(|t| t.pass.tokens());
    let tokens_per_s = tokens.map(|t| t as f64 / median);
    let repetitions: Vec<Repetition> = if measured.len() > 1 {
        measured
            .iter()
            .map(|m| {
                let stats = stats::summarize(&m.samples_s, m.warmup_iterations);
                Repetition {
                    tokens_per_s: tokens.map(|t| t as f64 / stats.median_s),
                    tokens_per_j: crate::power::token_energy(tokens, &m.power).tokens_per_j,
                    power: m.power.clone(),
                    stats,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let power = match median_repetition(&repetitions) {
        Some(i) => measured[i].power.clone(),
        None => measured[0].power.clone(),
    };
    // tokens/J = tokens executed in the energy window ÷ that window's joules.
    let energy = crate::power::token_energy(tokens, &power);
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
        phase: token.map(|t| t.pass.phase),
        preset: token.map(|t| t.preset.clone()),
        model: token.map(|t| t.model),
        batch: token.map(|t| t.pass.batch),
        prompt_len: len_of(Phase::Prefill),
        depth: len_of(Phase::Decode),
        layers_run: token.map(|t| t.layers_run),
        kv_dtype: token.map(|t| t.kv_dtype),
        weights_shared_across_layers: token.map(|t| t.weights_shared_across_layers),
        tokens,
        tokens_per_s,
        power,
        tokens_per_j: energy.tokens_per_j,
        tokens_per_j_dynamic: energy.tokens_per_j_dynamic,
        j_per_token: energy.j_per_token,
        math: d.math,
        repetitions,
        experts: token.and_then(|t| t.experts.clone()),
    }
}

/// The repetition whose window stands for the workload: the median by tokens/J where every
/// repetition has one, else by median time (the lower middle for an even count); `None`
/// without repetitions.
fn median_repetition(reps: &[Repetition]) -> Option<usize> {
    let key = |r: &Repetition| match r.tokens_per_j {
        Some(t) if reps.iter().all(|r| r.tokens_per_j.is_some()) => t,
        _ => r.stats.median_s,
    };
    let mut order: Vec<usize> = (0..reps.len()).collect();
    order.sort_by(|&a, &b| key(&reps[a]).total_cmp(&key(&reps[b])));
    order.get(reps.len().saturating_sub(1) / 2).copied()
}

/// Collects the probes' peaks as they finish and sets later workloads against them.
#[derive(Default)]
struct PeakTracker {
    fma_gflops: Option<f64>,
    copy_gbps: Option<f64>,
    matrix_gflops: Option<f64>,
    read_gbps: Option<f64>,
}

impl PeakTracker {
    fn observe(&mut self, result: &mut WorkloadResult) {
        match result.kind {
            WorkloadKind::ProbeFma if result.valid => {
                self.fma_gflops = Some(result.achieved_gflops)
            }
            WorkloadKind::ProbeCopy if result.valid => self.copy_gbps = Some(result.achieved_gbps),
            WorkloadKind::ProbeRead if result.valid => self.read_gbps = Some(result.achieved_gbps),
            WorkloadKind::ProbeMatrix if result.valid => {
                self.matrix_gflops = Some(result.achieved_gflops)
            }
            _ => {
                // Compute shares are against the peak of the math the workload used.
                let coop = result.math.as_ref().is_some_and(|m| m.tier.is_coop());
                let compute = if coop {
                    self.matrix_gflops.map(|g| ("probe-matrix", g))
                } else {
                    self.fma_gflops.map(|g| ("probe-fma", g))
                };
                if let Some(math) = result.math.as_mut() {
                    math.peak_gflops = compute.map(|(_, g)| g);
                }
                // Decode mostly reads (weights, KV cache): a copy, which also writes, does not
                // bound it, so its share is against the read probe where that ran.
                let bandwidth = match (result.kind, self.read_gbps) {
                    (WorkloadKind::Decode, Some(read)) => Some(("probe-read", read)),
                    _ => self.copy_gbps.map(|g| ("probe-copy", g)),
                };
                if let (Some(compute), Some(bandwidth)) = (compute, bandwidth) {
                    result.roofline = Some(Roofline::new(
                        (result.achieved_gflops, result.achieved_gbps),
                        compute,
                        bandwidth,
                    ));
                }
            }
        }
    }

    fn probes(&self) -> Option<Probes> {
        Some(Probes {
            fma_gflops: self.fma_gflops?,
            copy_gbps: self.copy_gbps?,
            matrix_gflops: self.matrix_gflops,
            read_gbps: self.read_gbps,
        })
    }
}

/// The document of a run that starts now on the adapter `facts` describes, under `plan`: no
/// kernel configuration, probes, power meter, workloads or serving yet.
pub fn new_result(facts: &DeviceFacts, plan: PlanRecord) -> RunResult {
    RunResult {
        schema_version: SCHEMA_VERSION,
        tool: tool_info(),
        started_at: now_utc(),
        finished_at: None,
        interrupted: false,
        node: crate::node::fingerprint(),
        adapter: facts.adapter_record(),
        timing_method: facts.timing_method,
        plan,
        kernel_config: None,
        kernel_config_source: None,
        probes: None,
        power: PowerSetup::none("none", "no power meter in this run"),
        workloads: Vec::new(),
        serving: None,
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

/// The current time, to the millisecond results record.
pub fn now_utc() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound as _;
    chrono::Utc::now().trunc_subsecs(3)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::gpu::{MockDevice, MockMode};
    use crate::workload::matmul::MatmulWorkload;

    /// Records the order in which workloads and repetitions start.
    #[derive(Default)]
    struct Order(Vec<(String, u32)>);

    impl Observer for Order {
        fn workload(&mut self, _: usize, _: usize, id: &str, repetition: u32, _: u32) {
            self.0.push((id.to_string(), repetition));
        }
    }

    #[test]
    fn repetitions_are_interleaved_and_each_is_kept() {
        let mock = MockDevice::new(MockMode::Instant, Duration::from_secs(5));
        let matmul =
            |m| Box::new(MatmulWorkload::simt_f32(mock.facts(), (m, 8, 8))) as Box<dyn Workload>;
        let planned = Planned {
            workloads: vec![matmul(4), matmul(8)],
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let spec = RunSpec {
            command: "kernel".into(),
            policy: SamplePolicy {
                min_samples: 4,
                min_time_s: 0.0,
                max_warmup_s: 0.0,
                sustain_s: None,
            },
            repetitions: 3,
            destination: Destination::Exact(dir.path().join("r.json")),
            stop: None,
        };
        let mut order = Order::default();
        let outcome = run(Device::Mock(&mock), planned, &spec, None, &mut order).unwrap();
        let (a, b) = ("matmul-f32-m4-n8-k8", "matmul-f32-m8-n8-k8");
        let expected: Vec<(String, u32)> = (0..3)
            .flat_map(|r| [(a.to_string(), r), (b.to_string(), r)])
            .collect();
        assert_eq!(order.0, expected);
        let doc = crate::result::io::load(&outcome.path).unwrap();
        assert_eq!(doc.plan.repetitions, 3);
        for w in &doc.workloads {
            assert_eq!(w.repetitions.len(), 3, "{}", w.id);
            assert!(w.repetitions.iter().all(|r| r.stats.samples_s.len() >= 4));
            assert_eq!(
                w.stats.samples_s.len(),
                w.repetitions
                    .iter()
                    .map(|r| r.stats.samples_s.len())
                    .sum::<usize>()
            );
        }
    }
}
