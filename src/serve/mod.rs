//! `tokbench serve`: a weight-free continuous-batching engine. For each concurrency it runs
//! the schedule of [`crate::serving::schedule`] on the device ([`engine`]), every step
//! GPU-timed, with power over the steady-state window; beside each executed point it puts an
//! analytic estimate: the same schedule with step times predicted from isolated prefill and
//! decode measurements. The result document gains its `serving` section after every point.

pub mod engine;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::InputError;
use crate::gpu::Device;
use crate::power::PowerMeter;
use crate::result::io::{Destination, ResultWriter};
use crate::result::{
    DeviceDefault, PlanRecord, PointSource, RunResult, SamplePolicy, ServingPoint, ServingSection,
    Slo,
};
use crate::serving::schedule::{Chunk, DecodeRow, Limit, Schedule, StepPlan};
use crate::serving::{self, with_power};
use crate::workload::plan::{self, ModelRequest};
use engine::{Engine, EngineSize, engine_bytes};

/// The preset `serve` uses on CPU adapters when none is given (`run` uses a larger one).
pub const CPU_PRESET: &str = "tiny";

/// The scheduling policy, as the result records it.
pub const POLICY: &str = "closed loop, every request waiting from the start; a free slot takes the next request at the start of a step; each step gives one row to every decoding request, then fills the rest of the step token budget with the next chunk of the oldest request still prefilling (vLLM chunked prefill, one partial prefill per step); engine time is the sum of GPU-timed steps";

/// What `tokbench serve` was asked for, validated without a device.
#[derive(Debug, Clone)]
pub struct ServeRequest {
    /// The scenario name, or "custom".
    pub scenario: String,
    /// Prompt tokens per request.
    pub isl: u32,
    /// Output tokens per request.
    pub osl: u32,
    /// Concurrencies to execute, in order.
    pub concurrency: Vec<u32>,
    /// Concurrencies to estimate only (not executed).
    pub estimate_only: Vec<u32>,
    /// Requests per point (`None`: the default for the device) or a duration.
    pub requests: Option<u32>,
    /// Engine seconds per point instead of a request count.
    pub duration_s: Option<f64>,
    /// Tokens per step.
    pub step_tokens: u32,
    /// The SLO to judge goodput at.
    pub slo: Option<Slo>,
}

impl ServeRequest {
    /// Checks what needs no device: lengths, concurrencies and the budget.
    pub fn validate(&self) -> Result<(), InputError> {
        if self.concurrency.is_empty() || self.concurrency.contains(&0) {
            return Err(InputError::new(
                "--concurrency: every value must be at least 1 (request slots)",
            ));
        }
        if self.estimate_only.contains(&0) {
            return Err(InputError::new(
                "--estimate: every value must be at least 1",
            ));
        }
        if self.isl == 0 || self.osl == 0 {
            return Err(InputError::new(
                "--isl and --osl must be at least 1 token each",
            ));
        }
        let most = self.max_concurrency();
        if self.step_tokens < most {
            return Err(InputError::new(format!(
                "--step-tokens {}: the step token budget must be at least the largest concurrency ({most}) so a prefill always gets room beside the decode rows",
                self.step_tokens
            )));
        }
        Ok(())
    }

    fn max_concurrency(&self) -> u32 {
        self.concurrency
            .iter()
            .chain(&self.estimate_only)
            .copied()
            .max()
            .unwrap_or(1)
    }

    /// Requests per point at concurrency `c`: as asked, else ten per slot (InferenceX's
    /// num_prompts = 10 × concurrency) on GPUs and one per slot on CPU adapters, where a single
    /// 1k/1k request already takes minutes.
    pub fn requests_for(&self, c: u32, cpu: bool) -> u32 {
        self.requests.unwrap_or(if cpu { c } else { 10 * c })
    }

    fn limit(&self, c: u32, cpu: bool) -> Limit {
        match self.duration_s {
            Some(d) => Limit::Duration(d),
            None => Limit::Requests(self.requests_for(c, cpu)),
        }
    }
}

/// Hears about a serve run as it goes.
pub trait ServeObserver {
    /// The result file is reserved.
    fn begin(&mut self, _doc: &RunResult, _path: &std::path::Path, _notes: &[String]) {}
    /// A phase of set-up or measurement, in words.
    fn stage(&mut self, _what: &str) {}
    /// Point `index` of `total` (concurrency `c`) starts.
    fn point(&mut self, _index: usize, _total: usize, _c: u32) {}
    /// The point in flight moved on: fraction done, requests completed.
    fn progress(&mut self, _fraction: f64, _completed: u32) {}
    /// The point finished and is on disk.
    fn finished(&mut self, _point: &ServingPoint) {}
}

/// What a serve run left behind.
pub struct ServeOutcome {
    /// The result file.
    pub path: PathBuf,
    /// Its contents.
    pub document: RunResult,
    /// True when stopped before every point ran.
    pub interrupted: bool,
}

/// Step times from isolated measurements: the analytic model.
#[derive(Debug, Clone, Default)]
pub struct Isolated {
    /// Seconds per prompt token of one request's prefill alone (its chunks in a row).
    pub prefill_s_per_token: f64,
    /// (batch, depth, seconds) of decode steps alone, every row at that depth.
    pub decode: Vec<(u32, u32, f64)>,
}

impl Isolated {
    /// Predicted seconds of a step: its chunk at the isolated prefill rate plus a decode step
    /// of its batch at its rows' mean depth (the weights a mixed step streams once are counted
    /// twice: an estimate errs on the slow side there).
    pub fn predict(&self, plan: &StepPlan) -> f64 {
        let prefill = plan
            .chunk
            .map_or(0.0, |c| f64::from(c.len) * self.prefill_s_per_token);
        if plan.decode.is_empty() {
            return prefill;
        }
        let b = plan.decode.len() as u32;
        let depth = plan.decode.iter().map(|r| f64::from(r.pos)).sum::<f64>() / f64::from(b);
        prefill + self.decode_s(b, depth)
    }

    /// Decode seconds at batch `b` and depth `depth`: linear in depth between the measured
    /// depths, linear in batch between the measured batches around `b`.
    fn decode_s(&self, b: u32, depth: f64) -> f64 {
        let mut batches: Vec<u32> = self.decode.iter().map(|m| m.0).collect();
        batches.sort_unstable();
        batches.dedup();
        let at_batch = |batch: u32| {
            let mut pts: Vec<(f64, f64)> = self
                .decode
                .iter()
                .filter(|m| m.0 == batch)
                .map(|m| (f64::from(m.1), m.2))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            lerp_points(&pts, depth)
        };
        let lo = batches.iter().rev().find(|&&x| x <= b).or(batches.first());
        let hi = batches.iter().find(|&&x| x >= b).or(batches.last());
        match (lo, hi) {
            (Some(&lo), Some(&hi)) if lo != hi => {
                let (y0, y1) = (at_batch(lo), at_batch(hi));
                y0 + (y1 - y0) * f64::from(b - lo) / f64::from(hi - lo)
            }
            (Some(&lo), _) => at_batch(lo),
            _ => 0.0,
        }
    }
}

/// Linear interpolation through `pts` (sorted by x), held flat beyond the ends.
fn lerp_points(pts: &[(f64, f64)], x: f64) -> f64 {
    match pts {
        [] => 0.0,
        [only] => only.1,
        _ => {
            let i = pts
                .windows(2)
                .position(|w| x <= w[1].0)
                .unwrap_or(pts.len() - 2);
            let ((x0, y0), (x1, y1)) = (pts[i], pts[i + 1]);
            // Two measurements at one depth (an OSL of 1 or 2) are averaged, not divided by 0.
            let f = if x1 > x0 {
                ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
            } else {
                0.5
            };
            y0 + (y1 - y0) * f
        }
    }
}

/// The schedule of `c` slots run to its end with predicted step times.
pub fn estimate(req: &ServeRequest, c: u32, cpu: bool, model: &Isolated) -> ServingPoint {
    let mut s = Schedule::new(c, req.isl, req.osl, req.step_tokens, req.limit(c, cpu));
    while let Some(plan) = s.plan() {
        s.complete(model.predict(&plan));
    }
    serving::point(c, PointSource::Estimated, &s)
}

/// The device side of the engine: real steps on a GPU, or the mock's formula.
enum Runner<'a> {
    Gpu(Box<Engine<'a>>),
    /// The mock device: 10 ms per step plus 1 ms per decode row and 0.2 ms per prompt token,
    /// so CLI tests see the shape of a real curve in no time.
    Mock,
}

impl Runner<'_> {
    fn step(&mut self, plan: &StepPlan) -> anyhow::Result<f64> {
        match self {
            Runner::Gpu(e) => e.step(plan),
            Runner::Mock => Ok(0.010
                + 0.001 * plan.decode.len() as f64
                + 0.0002 * f64::from(plan.chunk.map_or(0, |c| c.len))),
        }
    }

    /// Median of `runs` executions of one isolated step, after one untimed execution (the
    /// first run of a pipeline pays for its compilation on some drivers, lavapipe among them).
    fn isolated(&mut self, plan: &StepPlan, runs: u32) -> anyhow::Result<f64> {
        match self {
            Runner::Gpu(e) => {
                let rows = Engine::rows_of(plan);
                let times = e.time(&rows, plan.chunk.map_or(0, |c| c.len), runs + 1)?;
                Ok(crate::stats::median(&times[1..]))
            }
            Runner::Mock => self.step(plan),
        }
    }
}

/// Measures the analytic model's inputs: one request's prefill alone, and decode steps alone
/// at batch 1 and at each of `batches`, at the first and last decode depth.
fn measure_isolated(
    runner: &mut Runner<'_>,
    req: &ServeRequest,
    batches: &[u32],
    observer: &mut dyn ServeObserver,
) -> anyhow::Result<Isolated> {
    observer.stage(&format!(
        "isolated prefill of {} tokens (analytic estimate)",
        req.isl
    ));
    let mut total = 0.0;
    let mut start = 0;
    while start < req.isl {
        let len = (req.isl - start).min(req.step_tokens);
        total += runner.isolated(
            &StepPlan {
                chunk: Some(Chunk {
                    slot: 0,
                    start,
                    len,
                    last: start + len == req.isl,
                }),
                decode: Vec::new(),
            },
            1,
        )?;
        start += len;
    }
    let mut model = Isolated {
        prefill_s_per_token: total / f64::from(req.isl),
        decode: Vec::new(),
    };
    // The first decode feeds position isl, the last isl + osl - 2.
    let depths = [req.isl, req.isl + req.osl.saturating_sub(2)];
    let mut all: Vec<u32> = std::iter::once(1).chain(batches.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    for &b in &all {
        observer.stage(&format!(
            "isolated decode steps at batch {b} (analytic estimate)"
        ));
        for depth in depths {
            let plan = StepPlan {
                chunk: None,
                decode: (0..b).map(|slot| DecodeRow { slot, pos: depth }).collect(),
            };
            model.decode.push((b, depth, runner.isolated(&plan, 2)?));
        }
    }
    Ok(model)
}

/// Plans on `device` (model, kernels, memory: bad input fails here, exit 2, before any work),
/// then measures the isolated steps and runs every concurrency point, rewriting the result
/// after each one. A stop request ends the run after the step in flight; the finished points
/// stay.
#[allow(clippy::too_many_arguments)]
pub fn run(
    device: Device<'_>,
    model_req: &ModelRequest,
    req: &ServeRequest,
    destination: &Destination,
    power: &mut PowerMeter,
    adapter_warnings: &[String],
    stop: Option<Arc<AtomicBool>>,
    observer: &mut dyn ServeObserver,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<ServeOutcome> {
    req.validate()?;
    let facts = device.facts();
    let cpu = facts.is_cpu();
    let mut model_req = model_req.clone();
    let mut device_defaults = Vec::new();
    if cpu && model_req.model.is_none() {
        // `run`'s CPU default (smollm2) prefills 1k tokens in about a minute on lavapipe, so
        // a default sweep to 16 slots of 1k/1k requests would take a quarter of an hour.
        let p = crate::model::presets::find(CPU_PRESET).expect("preset exists");
        model_req.model = Some((p.name.to_string(), p.shape));
        device_defaults.push(DeviceDefault {
            flag: "--preset".into(),
            value: p.name.into(),
            reason: format!(
                "CPU adapter: a 2-layer toy shape keeps a sweep to {} slots to minutes (run's smollm2-135m-shape prefills 1k tokens in about a minute on lavapipe); name a preset for a real model's shape",
                req.max_concurrency()
            ),
        });
    }
    if cpu && req.requests.is_none() && req.duration_s.is_none() {
        device_defaults.push(DeviceDefault {
            flag: "--requests".into(),
            value: "1 × concurrency".into(),
            reason: "CPU adapter: one request per slot (10 per slot on GPUs, InferenceX's count), so p90/p99 rest on few requests".into(),
        });
    }
    // The largest pass the planner checks: a chunk of the step budget, and decode of every slot
    // at the deepest position.
    let most = req.max_concurrency();
    model_req.phases = vec![crate::model::Phase::Prefill, crate::model::Phase::Decode];
    model_req.batches = vec![most];
    model_req.prompt_len = req.step_tokens.min(req.isl + most);
    model_req.depths = vec![req.isl + req.osl];
    let planned = plan::plan(device, &model_req, say).map_err(|e| {
        if e.chain().any(|c| c.is::<InputError>()) {
            anyhow::Error::new(InputError::new(format!(
                "--isl {} + --osl {} at concurrency {most}: {e}",
                req.isl, req.osl
            )))
        } else {
            e
        }
    })?;
    let session = std::rc::Rc::clone(&planned.workloads[0].session);
    let size = EngineSize {
        slots: most,
        cache_len: req.isl + req.osl,
        max_rows: req.step_tokens,
    };
    // The engine's own buffers against the device: one binding each, and memory in all.
    let shape = session.model.shape;
    if shape.is_moe() || shape.has_special_attention() {
        return Err(InputError::new(format!(
            "serve: {}'s mixture-of-experts, MLA, window or sink layers are not in the serving engine yet (it runs dense GQA shapes); measure it with `tokbench run --preset {} --batch 1,8`",
            session.preset, session.preset
        ))
        .into());
    }
    let (bytes, largest) = engine_bytes(
        &shape,
        session.layers_run,
        size,
        (planned.config.decode_split_len, session.model.kv),
    );
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    if largest > facts.max_binding_bytes() {
        return Err(InputError::new(format!(
            "--isl {} + --osl {} at concurrency {most}: one buffer of the engine needs {:.0} MiB but this adapter binds at most {:.0} MiB; lower the concurrency, the lengths or --step-tokens",
            req.isl,
            req.osl,
            largest as f64 / 1048576.0,
            facts.max_binding_bytes() as f64 / 1048576.0
        ))
        .into());
    }
    if let Some(budget) = plan::memory_budget(&facts, model_req.memory_bytes) {
        let weights = crate::workload::weights::layers_bytes(
            &session.model,
            session.layers_run,
            session.model.shared_layers,
        ) + crate::workload::weights::head_bytes(&session.model);
        if bytes + weights > budget {
            return Err(InputError::new(format!(
                "--isl {} + --osl {} at concurrency {most}: the KV caches and activations need {:.2} GiB beside {:.2} GiB of weights, but {:.2} GiB is available; lower the concurrency or the lengths",
                req.isl,
                req.osl,
                gib(bytes),
                gib(weights),
                gib(budget)
            ))
            .into());
        }
    }

    let plan = PlanRecord {
        command: "serve".into(),
        sampling: SamplePolicy {
            min_samples: 1,
            min_time_s: 0.0,
            max_warmup_s: 0.0,
            sustain_s: None,
        },
        model: Some(planned.plan.clone()),
        repetitions: 1,
        device_defaults,
        adapter_warnings: adapter_warnings.to_vec(),
    };
    let doc = RunResult {
        kernel_config: Some(planned.config.clone()),
        kernel_config_source: Some(planned.config_source.clone()),
        serving: Some(ServingSection {
            scenario: req.scenario.clone(),
            isl_tokens: req.isl,
            osl_tokens: req.osl,
            step_token_budget: req.step_tokens,
            policy: POLICY.into(),
            requests_per_point: match req.duration_s {
                Some(_) => None,
                None => req.requests,
            },
            duration_limit_s: req.duration_s,
            gpus: 1,
            slo: req.slo.clone(),
            points: Vec::new(),
            frontier_concurrencies: Vec::new(),
            goodput: None,
            estimate_gaps: Vec::new(),
        }),
        ..crate::runner::new_result(&facts, plan)
    };
    let mut writer = ResultWriter::create(destination, doc)?;
    let mut notes = planned.notes.clone();
    // The device's defaults are said as well as recorded.
    notes.extend(
        writer
            .document()
            .plan
            .device_defaults
            .iter()
            .map(|d| format!("{} {}: {}", d.flag, d.value, d.reason)),
    );
    if !cpu && req.requests.is_none() && req.duration_s.is_none() {
        notes.push("requests per point: 10 × concurrency (--requests to change)".into());
    }
    observer.begin(writer.document(), writer.path(), &notes);
    observer.stage("measuring idle power");
    power.measure_idle()?;
    let setup = power.setup();
    writer.update(|doc| doc.power = setup)?;

    let mut runner = match device.gpu() {
        Some(ctx) => {
            observer.stage("uploading weights");
            let loaded = session.loaded(ctx, &mut |_| {})?;
            Runner::Gpu(Box::new(Engine::new(ctx, loaded, size)?))
        }
        None => Runner::Mock,
    };
    let stopped = || stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
    let mut interrupted = false;
    let total = req.concurrency.len();
    'points: for (i, &c) in req.concurrency.iter().enumerate() {
        // Measured right before the point, so a drift of the machine (a neighbour's load)
        // falls on the estimate and the execution alike.
        let model = measure_isolated(&mut runner, req, &[c], observer)?;
        observer.point(i, total, c);
        let mut s = Schedule::new(c, req.isl, req.osl, req.step_tokens, req.limit(c, cpu));
        let window = power.begin();
        // Engine clock and host instant at the end of every step, to find the steady window's
        // host instants for the power figure.
        let mut marks: Vec<(f64, Instant)> = vec![(0.0, window.at())];
        while let Some(plan) = s.plan() {
            if stopped() {
                interrupted = true;
                break 'points;
            }
            let t = runner.step(&plan)?;
            s.complete(t);
            marks.push((s.clock_s, Instant::now()));
            observer.progress(s.progress(), s.completed());
        }
        let mut p = serving::point(c, PointSource::Executed, &s);
        let (a, b, _) = s.steady_window();
        let at = |clock: f64| {
            marks
                .iter()
                .find(|(t, _)| (*t - clock).abs() <= 1e-12 * clock.max(1.0))
                .map(|m| m.1)
        };
        let steady_w = match (at(a), at(b)) {
            (Some(from), Some(to)) => power.average_power_w(from, to),
            _ => None,
        };
        let record = power.end(window, s.steps);
        with_power(&mut p, steady_w.or(record.avg_power_w));
        p.power = Some(record);
        let est = estimate(req, c, cpu, &model);
        writer.update(|doc| {
            let section = doc.serving.as_mut().expect("serve documents have one");
            section.points.push(p.clone());
            section.points.push(est);
            finish_section(section);
        })?;
        observer.finished(&p);
    }
    if !interrupted && !req.estimate_only.is_empty() {
        let model = measure_isolated(&mut runner, req, &req.estimate_only, observer)?;
        for &c in &req.estimate_only {
            let est = estimate(req, c, cpu, &model);
            writer.update(|doc| {
                let section = doc.serving.as_mut().expect("serve documents have one");
                section.points.push(est);
                finish_section(section);
            })?;
        }
    }
    let finished = crate::runner::now_utc();
    writer.update(|doc| {
        doc.interrupted = interrupted;
        doc.finished_at = (!interrupted).then_some(finished);
    })?;
    Ok(ServeOutcome {
        path: writer.path().to_path_buf(),
        document: writer.document().clone(),
        interrupted,
    })
}

/// Recomputes the section's derived figures from its points: SLO verdicts, frontier, goodput
/// and the estimate gaps.
pub fn finish_section(section: &mut ServingSection) {
    if let Some(slo) = &section.slo {
        for p in &mut section.points {
            p.meets_slo = Some(serving::meets(p, slo));
        }
        section.goodput = serving::goodput(&section.points, slo);
    }
    let executed: Vec<&ServingPoint> = section
        .points
        .iter()
        .filter(|p| p.source == PointSource::Executed)
        .collect();
    let xy: Vec<(f64, f64)> = executed
        .iter()
        .map(|p| (p.tokens_per_s_per_user, p.output_tokens_per_s_per_gpu))
        .collect();
    let mut on: Vec<u32> = serving::frontier(&xy)
        .into_iter()
        .map(|i| executed[i].concurrency)
        .collect();
    on.sort_unstable();
    section.frontier_concurrencies = on;
    section.estimate_gaps = serving::estimate_gaps(&section.points);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analytic_model_interpolates_in_depth_and_batch() {
        let m = Isolated {
            prefill_s_per_token: 0.01,
            decode: vec![(1, 100, 1.0), (1, 200, 2.0), (4, 100, 4.0), (4, 200, 8.0)],
        };
        assert_eq!(m.decode_s(1, 150.0), 1.5);
        assert_eq!(m.decode_s(4, 100.0), 4.0);
        // Batch 2: a third of the way from batch 1 to 4.
        assert!((m.decode_s(2, 100.0) - 2.0).abs() < 1e-12);
        // Beyond the measured depths the figure is held.
        assert_eq!(m.decode_s(1, 500.0), 2.0);
        // Both depths the same (--osl 2: the first decode feeds the last position).
        let one_depth = Isolated {
            prefill_s_per_token: 0.01,
            decode: vec![(1, 8, 1.0), (1, 8, 3.0)],
        };
        assert_eq!(one_depth.decode_s(1, 8.0), 2.0);
        let plan = StepPlan {
            chunk: Some(Chunk {
                slot: 0,
                start: 0,
                len: 10,
                last: true,
            }),
            decode: vec![DecodeRow { slot: 1, pos: 200 }],
        };
        assert!((m.predict(&plan) - 2.1).abs() < 1e-12);
    }

    #[test]
    fn bad_requests_are_refused_before_any_work() {
        let ok = ServeRequest {
            scenario: "custom".into(),
            isl: 8,
            osl: 8,
            concurrency: vec![1, 4],
            estimate_only: vec![],
            requests: Some(4),
            duration_s: None,
            step_tokens: 64,
            slo: None,
        };
        assert!(ok.validate().is_ok());
        let zero = ServeRequest {
            concurrency: vec![0],
            ..ok.clone()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("--concurrency")
        );
        let tight = ServeRequest {
            step_tokens: 2,
            ..ok.clone()
        };
        assert!(
            tight
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--step-tokens")
        );
        assert_eq!(ok.requests_for(4, false), 4);
        let default = ServeRequest {
            requests: None,
            ..ok
        };
        assert_eq!(
            (
                default.requests_for(4, false),
                default.requests_for(4, true)
            ),
            (40, 4)
        );
    }
}
