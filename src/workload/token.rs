//! Prefill and decode of a model shape: tokens per second, verified against the CPU reference.
//!
//! Correctness gate: a shape small enough (tiny) is checked in full: the run's final hidden
//! states and logits against [`reference::forward`]. A larger shape is checked twice: the same
//! kernels run a reduced copy of the shape (same head layout, fewer and narrower layers) that is
//! checked in full, and the real run's LM head is spot-checked on sampled rows and columns,
//! with its hidden states checked for NaN and Inf.

use std::cell::RefCell;
use std::rc::Rc;

use super::forward::{ForwardPass, Kernels};
use super::reference::{self, lm_head_columns};
use super::synthetic::SyntheticModel;
use super::weights::GpuWeights;
use super::{Description, Prepared, Progress, Stage, TokenDescription, Workload};
use crate::gpu::{DeviceFacts, GpuContext, PassRecorder};
use crate::kernels::verify::{self, combine, compare};
use crate::kernels::{KernelConfig, KvDtype};
use crate::model::{ModelShape, Pass, Phase, accounting};
use crate::result::Correctness;
use crate::tune::MathChoice;

/// Shapes whose reference pass needs at most this many multiply-adds, and this many weights,
/// are checked in full on the real run.
const FULL_CHECK_MACS: f64 = 2e9;
const FULL_CHECK_WEIGHTS: f64 = 2e8;
/// Layers of the reduced copy of a large shape.
const REDUCED_LAYERS: u32 = 2;
/// Longest prompt of the reduced copy.
const REDUCED_PROMPT: u32 = 128;
/// Vocabulary of the reduced copy (odd on purpose: divides no tile).
const REDUCED_VOCAB: u32 = 1003;
/// Most routed experts of the reduced copy (at least twice its top-k).
const REDUCED_EXPERTS: u32 = 16;
/// Rows and columns of the real LM head spot check.
const SPOT_ROWS: usize = 4;
const SPOT_COLUMNS: usize = 4096;

/// A model's weights and kernels on the device, shared by its prefill and decode workloads and
/// uploaded once, on first use.
pub struct ModelSession {
    /// Preset name, or "custom".
    pub preset: String,
    /// Shape, weight type, and whether layers share weights.
    pub model: SyntheticModel,
    /// Layers each pass runs through.
    pub layers_run: u32,
    /// Kernel choices.
    pub config: KernelConfig,
    /// The math tiers open to the run, and where `config` came from (for each result's math
    /// record).
    pub math: (MathChoice, String),
    loaded: RefCell<Option<Rc<(GpuWeights, Kernels)>>>,
}

impl ModelSession {
    /// A session whose weights are not uploaded yet.
    pub fn new(
        preset: String,
        model: SyntheticModel,
        layers_run: u32,
        config: KernelConfig,
        math: (MathChoice, String),
    ) -> Rc<Self> {
        Rc::new(Self {
            preset,
            model,
            layers_run,
            config,
            math,
            loaded: RefCell::new(None),
        })
    }

    /// The weights and kernels on the device, uploaded on first use.
    pub(crate) fn loaded(
        &self,
        ctx: &GpuContext,
        progress: Progress<'_>,
    ) -> anyhow::Result<Rc<(GpuWeights, Kernels)>> {
        if let Some(l) = self.loaded.borrow().as_ref() {
            return Ok(l.clone());
        }
        let mut upload = |model| {
            GpuWeights::upload(ctx, model, self.layers_run, &mut |d, t| {
                progress(Stage::Uploading(d, t))
            })
        };
        let weights = match upload(self.model) {
            // Memory the planner could not see (a GPU whose size wgpu does not report): fall back
            // to one set of layer weights, as the planner would have.
            Err(e) if !self.model.shared_layers && is_out_of_memory(&e) => {
                upload(SyntheticModel {
                    shared_layers: true,
                    ..self.model
                })?
            }
            other => other?,
        };
        let kernels = Kernels::new(
            ctx,
            self.config.clone(),
            self.model.formats(),
            self.math.0.every_row_on_tiles(),
        )?;
        let l = Rc::new((weights, kernels));
        *self.loaded.borrow_mut() = Some(l.clone());
        Ok(l)
    }
}

fn is_out_of_memory(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<crate::gpu::DeviceError>())
        .any(|d| d.kind == crate::gpu::DeviceErrorKind::OutOfMemory)
}

/// One phase of a model at one size: a prefill pass, or a decode step at one depth.
pub struct TokenWorkload {
    /// The model on the device.
    pub session: Rc<ModelSession>,
    /// What one execution computes.
    pub pass: Pass,
}

impl Workload for TokenWorkload {
    fn describe(&self) -> Description {
        let s = &self.session;
        let size = match self.pass.phase {
            Phase::Prefill => format!("p{}", self.pass.len),
            Phase::Decode => format!("d{}", self.pass.len),
        };
        let layers = if s.layers_run < s.model.shape.n_layers {
            format!("-l{}", s.layers_run)
        } else {
            String::new()
        };
        // Experts in a format of their own are a different workload: the id says so.
        let experts = match s.model.formats().distinct_experts() {
            Some(e) => format!("-experts-{}", e.name()),
            None => String::new(),
        };
        // A cache other than f16 is named ("-kvq8_0", "-kvf32"), so an id means one KV format
        // on every adapter, whichever format each takes by default; f16, what adapters with
        // SHADER_F16 take, keeps the ids it had.
        let kv = if s.model.kv == KvDtype::F16 || s.model.shape.is_mla() {
            String::new()
        } else {
            format!("-kv{}", s.model.kv.name())
        };
        let id = format!(
            "{}-{}-{}{experts}-b{}-{size}{layers}{kv}",
            self.pass.phase.name(),
            s.preset,
            s.model.dtype.name(),
            self.pass.batch
        );
        let shape = std::collections::BTreeMap::from([
            ("batch".to_string(), u64::from(self.pass.batch)),
            (
                match self.pass.phase {
                    Phase::Prefill => "prompt_len",
                    Phase::Decode => "depth",
                }
                .to_string(),
                u64::from(self.pass.len),
            ),
        ]);
        Description {
            id,
            kind: self.pass.phase.into(),
            shape,
            dtype: s.model.dtype,
            work: accounting::total(&s.model.shape, s.layers_run, s.model.formats(), self.pass),
            math: Some(self.math_record()),
            tokens: Some(TokenDescription {
                pass: self.pass,
                preset: s.preset.clone(),
                model: s.model.shape,
                layers_run: s.layers_run,
                weights_shared_across_layers: s.model.shared_layers,
                kv_dtype: s.model.kv,
                experts: None,
            }),
        }
    }

    fn check_fits(&self, device: &DeviceFacts) -> anyhow::Result<()> {
        super::forward::check_bindings(
            device,
            &self.session.model.shape,
            self.pass,
            (
                self.session.config.decode_split_for(self.pass.len),
                self.session.model.kv,
            ),
        )?;
        Ok(())
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        let loaded = self.session.loaded(ctx, progress)?;
        let forward = ForwardPass::build(ctx, &loaded.1, &loaded.0, self.pass)?;
        Ok(Box::new(PreparedPass {
            ctx,
            workload: self,
            loaded,
            forward,
            attention_math: self.attention_math(ctx),
        }))
    }
}

/// A forward pass on the device, with the weights and kernels it runs with.
struct PreparedPass<'a> {
    ctx: &'a GpuContext,
    workload: &'a TokenWorkload,
    loaded: Rc<(GpuWeights, Kernels)>,
    forward: ForwardPass,
    /// Which attention kernel the tier chose, for the math record (`None`: not a question).
    attention_math: Option<String>,
}

impl Prepared for PreparedPass<'_> {
    fn execution(&self) -> &dyn PassRecorder {
        &self.forward
    }

    fn verify(&self, ctx: &GpuContext) -> anyhow::Result<Correctness> {
        // The reference computes the first step; the last timed execution may have run another.
        if self.forward.steps() > 1 {
            self.forward.rewind();
            ctx.execute(&self.forward)?;
        }
        self.workload.verify(ctx, &self.loaded.1, &self.forward)
    }

    fn describe(&self, mut planned: Description) -> anyhow::Result<Description> {
        // An out-of-memory fallback at upload time shares the weights.
        if let Some(t) = planned.tokens.as_mut() {
            t.weights_shared_across_layers = self.loaded.0.model.shared_layers;
            // The experts the routers chose: the bytes are those experts' weights.
            if let Some(touched) = self.forward.experts_touched_by_step(self.ctx)? {
                let model = &self.loaded.0.model;
                let record = experts_record(&t.model, model.expert_dtype, t.pass, touched);
                planned.work = accounting::total_touching(
                    &t.model,
                    t.layers_run,
                    model.formats(),
                    t.pass,
                    record.touched_per_layer,
                );
                t.experts = Some(record);
            }
        }
        if let (Some(record), Some(attention)) = (planned.math.as_mut(), &self.attention_math) {
            record.reason.push_str(attention);
        }
        Ok(planned)
    }
}

impl TokenWorkload {
    /// The math record of this pass's products, known without a device.
    fn math_record(&self) -> crate::result::MathRecord {
        let s = &self.session;
        let (math, source) = &s.math;
        math.record(
            s.config.matmul.tiles,
            s.model.dtype,
            self.pass.rows(),
            self.pass.batch as usize,
            source,
        )
    }

    /// For a prefill on cooperative matrices: which attention kernel runs (the same decision
    /// `ForwardPass::build` makes), as a clause of the math record's reason.
    fn attention_math(&self, ctx: &GpuContext) -> Option<String> {
        let s = &self.session;
        if self.pass.phase != Phase::Prefill || !self.math_record().tier.is_coop() {
            return None;
        }
        let shape = &s.model.shape;
        let heads = super::forward::heads_of(shape, self.pass.cache_len(), 0, s.model.kv);
        Some(
            match crate::kernels::attention_coop::for_tiles(ctx, s.config.matmul.tiles, &heads) {
                Ok((_, size)) => {
                    format!("; prefill attention (q·kᵀ, p·V) on {size}x{size} cooperative matrices")
                }
                Err(why) => format!("; prefill attention on SIMT: {why}"),
            },
        )
    }

    /// Uploads the model (once per session) and records this workload's forward pass: what
    /// one execution is, for timing it elsewhere (criterion).
    pub fn forward_pass(&self, ctx: &GpuContext) -> anyhow::Result<ForwardPass> {
        let loaded = self.session.loaded(ctx, &mut |_| {})?;
        ForwardPass::build(ctx, &loaded.1, &loaded.0, self.pass)
    }

    fn threshold(&self) -> f64 {
        // A forward pass compounds f32 rounding over layers; the other formats' threshold
        // already allows for compounding (see verify::nmse_threshold). Experts in a format of
        // their own take the looser of the two.
        let of = |dtype| match dtype {
            crate::kernels::WeightDtype::F32 => verify::NMSE_F32_MODEL,
            dtype => verify::nmse_threshold(dtype),
        };
        let model = &self.session.model;
        of(model.dtype).max(of(model.expert_dtype))
    }

    fn verify(
        &self,
        ctx: &GpuContext,
        kernels: &Kernels,
        real: &ForwardPass,
    ) -> anyhow::Result<Correctness> {
        let s = &self.session;
        let weights = (u64::from(s.layers_run) * s.model.shape.layer_params()
            + s.model.shape.head_params()) as f64;
        let affordable = reference::cost(&s.model, s.layers_run, self.pass) <= FULL_CHECK_MACS
            && weights <= FULL_CHECK_WEIGHTS;
        if affordable {
            self.check_in_full(ctx, real, &s.model, s.layers_run, "this run")
        } else {
            self.check_reduced_and_spot(ctx, kernels, real)
        }
    }

    fn check_reduced_and_spot(
        &self,
        ctx: &GpuContext,
        kernels: &Kernels,
        real: &ForwardPass,
    ) -> anyhow::Result<Correctness> {
        let s = &self.session;
        // The reduced copy runs through the same kernels with the same configuration.
        let model = SyntheticModel {
            shape: reduced(&s.model.shape),
            dtype: s.model.dtype,
            expert_dtype: s.model.expert_dtype,
            kv: s.model.kv,
            shared_layers: false,
        };
        let layers = REDUCED_LAYERS.min(s.layers_run);
        let pass = Pass {
            len: match self.pass.phase {
                Phase::Prefill => self.pass.len.min(REDUCED_PROMPT),
                Phase::Decode => self.pass.len,
            },
            ..self.pass
        };
        let weights = GpuWeights::upload(ctx, model, layers, &mut |_, _| {})?;
        let small = ForwardPass::build(ctx, kernels, &weights, pass)?;
        ctx.execute(&small)?;
        let what = format!(
            "a reduced shape (d_model {}, d_ff {}, vocab {}, {layers} layers, {} {})",
            model.shape.d_model,
            model.shape.d_ff,
            model.shape.vocab,
            match pass.phase {
                Phase::Prefill => "prompt",
                Phase::Decode => "depth",
            },
            pass.len
        );
        let reduced_check = self.check_in_full(ctx, &small, &model, layers, &what)?;
        Ok(combine(vec![reduced_check, self.spot_check(ctx, real)?]))
    }

    /// Final hidden states and logits of `run` against the f64 reference of the same pass.
    fn check_in_full(
        &self,
        ctx: &GpuContext,
        run: &ForwardPass,
        model: &SyntheticModel,
        layers: u32,
        what: &str,
    ) -> anyhow::Result<Correctness> {
        let want = reference::forward(model, layers, run.pass);
        let hidden = compare(
            &run.read_hidden(ctx)?,
            &want.hidden,
            self.threshold(),
            format!("cpu-f64 forward of {what}: final hidden states"),
        );
        let logits = compare(
            &run.read_logits(ctx)?,
            &want.logits,
            self.threshold(),
            format!("cpu-f64 forward of {what}: logits"),
        );
        Ok(combine(vec![hidden, logits]))
    }

    /// Sampled LM-head outputs of the full-size run against f64, and no NaN or Inf anywhere in
    /// its final hidden states.
    fn spot_check(&self, ctx: &GpuContext, real: &ForwardPass) -> anyhow::Result<Correctness> {
        let s = &self.session;
        let vocab = s.model.shape.vocab as usize;
        let final_rows = real.read_final_rows(ctx)?;
        let logits = real.read_logits(ctx)?;
        let d = s.model.shape.d_model as usize;
        let batch = self.pass.batch as usize;
        let rows: Vec<usize> = spread(batch, SPOT_ROWS);
        let cols: Vec<usize> = spread(vocab, SPOT_COLUMNS);
        let row_data: Vec<Vec<f32>> = rows
            .iter()
            .map(|&r| final_rows[r * d..(r + 1) * d].to_vec())
            .collect();
        let want = lm_head_columns(&s.model, &row_data, &cols);
        let got: Vec<f32> = rows
            .iter()
            .flat_map(|&r| cols.iter().map(move |&c| (r, c)))
            .map(|(r, c)| logits[r * vocab + c])
            .collect();
        let lm = compare(
            &got,
            &want,
            self.threshold(),
            format!(
                "cpu-f64 LM head of this run: {} rows × {} columns",
                rows.len(),
                cols.len()
            ),
        );
        let hidden = real.read_hidden(ctx)?;
        let bad = hidden.iter().filter(|x| !x.is_finite()).count();
        let finite = Correctness {
            nmse: Some(0.0),
            max_abs_err: Some(0.0),
            reference: format!(
                "all {} final hidden states of this run finite",
                hidden.len()
            ),
            nmse_threshold: self.threshold(),
            failure: (bad > 0).then(|| format!("{bad} final hidden states are NaN or infinite")),
        };
        Ok(combine(vec![lm, finite]))
    }
}

/// The record of what the routers of a pass over `shape` touched, layer by layer.
/// What the routers of a pass did: `by_step[step][MoE layer]` experts touched.
fn experts_record(
    shape: &ModelShape,
    dtype: crate::kernels::WeightDtype,
    pass: Pass,
    by_step: Vec<Vec<u32>>,
) -> crate::result::ExpertsRecord {
    let steps = by_step.len().max(1) as f64;
    let layers = by_step.first().map_or(0, Vec::len);
    let by_layer: Vec<f64> = (0..layers)
        .map(|l| by_step.iter().map(|s| f64::from(s[l])).sum::<f64>() / steps)
        .collect();
    let mean = by_layer.iter().sum::<f64>() / layers.max(1) as f64;
    crate::result::ExpertsRecord {
        dtype: Some(dtype),
        n_experts_active: shape.n_experts_active,
        n_experts: shape.n_experts,
        tokens_routed: pass.tokens(),
        touched_per_layer: mean,
        expected_per_layer: shape.expected_experts_touched(pass.tokens()),
        touched_by_layer: by_layer,
        touched_by_step: by_step,
    }
}

/// Up to `count` indices spread evenly over 0..n, first and last included.
fn spread(n: usize, count: usize) -> Vec<usize> {
    if n <= count {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..count).map(|i| i * (n - 1) / (count - 1)).collect();
    v.dedup();
    v
}

/// A small copy of `shape` for the full check: the same head width and grouping, one KV head,
/// narrower feed-forward, two layers, a small odd vocabulary. A mixture-of-experts shape keeps
/// its top-k and its dense share of layers, with at most `REDUCED_EXPERTS` narrower experts;
/// windows and sinks are kept as they are.
pub fn reduced(shape: &ModelShape) -> ModelShape {
    let group = shape.n_heads / shape.n_kv_heads;
    let d_model = group * shape.head_dim;
    let narrower = |width: u32| {
        (u64::from(width) * u64::from(d_model) / u64::from(shape.d_model)).max(2) as u32 / 2 * 2 + 2
    };
    let mut small = ModelShape {
        d_model,
        n_layers: REDUCED_LAYERS,
        n_heads: group,
        n_kv_heads: 1,
        head_dim: shape.head_dim,
        d_ff: narrower(shape.d_ff),
        vocab: REDUCED_VOCAB,
        ..*shape
    };
    if shape.is_moe() {
        small.n_experts = shape
            .n_experts
            .min(REDUCED_EXPERTS.max(2 * shape.n_experts_active));
        small.d_ff_expert = narrower(shape.d_ff_expert);
        small.first_dense_layers = (0..REDUCED_LAYERS)
            .filter(|&l| !shape.layer_kind(l, REDUCED_LAYERS).moe)
            .count() as u32;
    }
    small
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets::find;

    #[test]
    fn reduced_shapes_keep_head_layout_and_are_cheap() {
        let s = find("llama3-8b-shape").unwrap().shape;
        let r = reduced(&s);
        assert_eq!((r.head_dim, r.n_heads / r.n_kv_heads), (128, 4));
        r.validate().unwrap();
        let model = SyntheticModel {
            shape: r,
            dtype: crate::kernels::WeightDtype::F32,
            expert_dtype: crate::kernels::WeightDtype::F32,
            kv: KvDtype::F32,
            shared_layers: false,
        };
        let pass = Pass::prefill(1, REDUCED_PROMPT);
        assert!(reference::cost(&model, REDUCED_LAYERS, pass) < 3e9);
    }

    #[test]
    fn spread_includes_both_ends() {
        assert_eq!(spread(3, 4), vec![0, 1, 2]);
        let v = spread(151_936, 4096);
        assert_eq!((v[0], *v.last().unwrap(), v.len()), (0, 151_935, 4096));
    }
}

/// Whole forward passes against the f64 reference on the test device.
#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::WeightDtype;
    use crate::model::ModelShape;
    use crate::model::presets::find;
    use tokbench_core::dtype::Formats;

    fn workload(dtype: WeightDtype, pass: Pass) -> TokenWorkload {
        workload_of("tiny", (dtype, KvDtype::F32), pass, false)
    }

    /// `preset`'s model, all its layers, with weights shared across layers or not.
    fn workload_of(
        preset: &str,
        formats: impl Into<Formats>,
        pass: Pass,
        shared: bool,
    ) -> TokenWorkload {
        workload_for(preset, find(preset).unwrap().shape, formats, pass, shared)
    }

    /// A model of `shape` with weights and KV cache in `formats`.
    fn workload_for(
        preset: &str,
        shape: ModelShape,
        formats: impl Into<Formats>,
        pass: Pass,
        shared: bool,
    ) -> TokenWorkload {
        let ctx = test_context();
        let formats = formats.into();
        let dtype = formats.dense;
        let model = SyntheticModel {
            shape,
            dtype,
            expert_dtype: formats.experts,
            kv: formats.kv,
            shared_layers: shared,
        };
        let config = KernelConfig::default_for(ctx.traits());
        let math =
            MathChoice::new(ctx, dtype, tokbench_core::kernel_config::MathRequest::Simt).unwrap();
        TokenWorkload {
            session: ModelSession::new(
                preset.into(),
                model,
                shape.n_layers,
                config,
                (math, "test".into()),
            ),
            pass,
        }
    }

    fn verdicts(w: &TokenWorkload) -> (Correctness, Correctness) {
        let ctx = test_context();
        let loaded = w.session.loaded(ctx, &mut |_| {}).unwrap();
        let forward = ForwardPass::build(ctx, &loaded.1, &loaded.0, w.pass).unwrap();
        ctx.execute(&forward).unwrap();
        let layers = w.session.model.shape.n_layers;
        let full = w
            .check_in_full(ctx, &forward, &w.session.model, layers, "test")
            .unwrap();
        let reduced = w.check_reduced_and_spot(ctx, &loaded.1, &forward).unwrap();
        (full, reduced)
    }

    /// Prefill longer than tiny-swa's 5-position window and decode past it, at batches of 2
    /// and 3: the passes the model-kind tests run.
    const RAGGED_PASSES: [Pass; 2] = [Pass::prefill(2, 9), Pass::decode(3, 17)];

    /// Mixture-of-experts and windowed shapes through the whole forward pass: prefill longer
    /// than tiny-swa's 5-position window, decode past it, ragged batches, block formats, experts
    /// in a format of their own (gpt-oss's MXFP4 beside wider attention weights), and MoE
    /// weights shared across layers; the experts the GPU router touched are the reference's.
    #[test]
    fn moe_and_windowed_presets_match_the_reference() {
        let passes = RAGGED_PASSES;
        let f32 = Formats::uniform(WeightDtype::F32, KvDtype::F32);
        let mxfp4_experts = Formats {
            experts: WeightDtype::Mxfp4,
            ..f32
        };
        let cases = [
            ("tiny-moe", f32, false),
            (
                "tiny-moe",
                Formats::uniform(WeightDtype::Q4_0, KvDtype::F32),
                false,
            ),
            ("tiny-moe", mxfp4_experts, false),
            ("tiny-moe", f32, true),
            ("tiny-swa", f32, false),
        ];
        let ctx = test_context();
        for (preset, dtype, shared) in cases {
            for pass in passes {
                let w = workload_of(preset, dtype, pass, shared);
                let (full, reduced) = verdicts(&w);
                let case = format!("{preset} {dtype:?} shared {shared} {pass:?}");
                assert!(full.failure.is_none(), "{case}: {full:?}");
                assert!(reduced.failure.is_none(), "{case}: {reduced:?}");
                assert!(full.nmse.unwrap() < 1e-9, "{case}: {full:?}");

                let model = &w.session.model;
                if model.shape.n_experts == 0 {
                    continue;
                }
                let id = w.describe().id;
                assert_eq!(
                    id.contains("-experts-mxfp4"),
                    model.expert_dtype == WeightDtype::Mxfp4,
                    "{case}: {id}"
                );
                let loaded = w.session.loaded(ctx, &mut |_| {}).unwrap();
                let forward = ForwardPass::build(ctx, &loaded.1, &loaded.0, pass).unwrap();
                // Decode takes its steps in turn, each routing other tokens; prefill has one.
                let by_step = forward.experts_touched_by_step(ctx).unwrap().unwrap();
                let steps = match pass.phase {
                    Phase::Decode => super::super::forward::MOE_DECODE_STEPS,
                    Phase::Prefill => 1,
                };
                assert_eq!(by_step.len(), steps, "{case}");
                for (step, gpu) in by_step.iter().enumerate() {
                    let cpu = reference::forward_step(model, model.shape.n_layers, pass, step);
                    assert_eq!(gpu, &cpu.experts_touched, "{case} step {step}");
                    // Two MoE layers of 8 experts, 6 or 3 rows of top-2: more than 2 touched.
                    assert!(
                        gpu.len() == 2 && gpu.iter().all(|&n| n > 2),
                        "{case}: {gpu:?}"
                    );
                }
                if steps > 1 {
                    assert!(
                        by_step.iter().any(|s| s != &by_step[0]),
                        "{case}: every step touched the same experts: {by_step:?}"
                    );
                }
                // The steps are round robin: the next execution is the first step again.
                ctx.execute(&forward).unwrap();
                let again = forward.read_experts_touched(ctx).unwrap().unwrap();
                assert_eq!(again, by_step[0], "{case}");
            }
        }
    }

    /// Every KV format through the whole forward pass: tiny (head_dim 24, so q8_0 pads each
    /// cached row to one block) and tiny-swa (a 5-position window), prefill and decode at
    /// ragged batches, f32 and q8_0 weights. The reference holds its cache as the format does,
    /// so the gate stays as tight as with an f32 cache; the ids name the formats other than f16.
    #[test]
    fn kv_formats_match_the_reference() {
        for kv in KvDtype::ALL {
            for (preset, dtype) in [
                ("tiny", WeightDtype::F32),
                ("tiny-swa", WeightDtype::F32),
                ("tiny", WeightDtype::Q8_0),
            ] {
                for pass in RAGGED_PASSES {
                    let shape = find(preset).unwrap().shape;
                    let w = workload_for(preset, shape, (dtype, kv), pass, false);
                    let (full, reduced) = verdicts(&w);
                    let case = format!("{preset} {dtype:?} KV {kv:?} {pass:?}");
                    assert!(full.failure.is_none(), "{case}: {full:?}");
                    assert!(reduced.failure.is_none(), "{case}: {reduced:?}");
                    assert!(full.nmse.unwrap() < 1e-9, "{case}: {full:?}");
                    let d = w.describe();
                    assert_eq!(d.tokens.unwrap().kv_dtype, kv);
                    assert_eq!(d.id.ends_with("-kvq8_0"), kv == KvDtype::Q8_0, "{}", d.id);
                    assert_eq!(d.id.contains("-kv"), kv != KvDtype::F16, "{}", d.id);
                }
            }
        }
    }

    /// Multi-head latent attention through the whole forward pass, in both forms and both
    /// phases (the GPU's absorbed form against the reference's decompressed one, and the
    /// decompressed form too), with and without a query rank, in f32 and a block format (whose
    /// W_UK is held in f32, as the transpose of what W_kv_b holds).
    #[test]
    fn mla_matches_the_reference_in_both_forms() {
        use crate::kernels::mla::MlaForm;
        let passes = RAGGED_PASSES;
        let ctx = test_context();
        let tiny_mla = find("tiny-mla").unwrap().shape;
        let no_rank = ModelShape {
            q_lora_rank: 0,
            ..tiny_mla
        };
        for (shape, dtype) in [
            (tiny_mla, WeightDtype::F32),
            (no_rank, WeightDtype::F32),
            (tiny_mla, WeightDtype::Q4_0),
        ] {
            for pass in passes {
                let w = workload_for("tiny-mla", shape, (dtype, KvDtype::F32), pass, false);
                let (full, reduced) = verdicts(&w);
                let case = format!("q_lora {} {dtype:?} {pass:?}", shape.q_lora_rank);
                assert!(full.failure.is_none(), "{case}: {full:?}");
                assert!(reduced.failure.is_none(), "{case}: {reduced:?}");
                assert!(full.nmse.unwrap() < 1e-9, "{case}: {full:?}");
                // The other form: the same outputs.
                let loaded = w.session.loaded(ctx, &mut |_| {}).unwrap();
                let other = match MlaForm::for_phase(pass.phase) {
                    MlaForm::Absorbed => MlaForm::Decompressed,
                    MlaForm::Decompressed => MlaForm::Absorbed,
                };
                let forward =
                    ForwardPass::build_in(ctx, &loaded.1, &loaded.0, pass, other).unwrap();
                ctx.execute(&forward).unwrap();
                let layers = shape.n_layers;
                let verdict = w
                    .check_in_full(ctx, &forward, &w.session.model, layers, "test")
                    .unwrap();
                assert!(verdict.failure.is_none(), "{case} {other:?}: {verdict:?}");
                assert!(
                    verdict.nmse.unwrap() < 1e-9,
                    "{case} {other:?}: {verdict:?}"
                );
            }
        }
    }

    #[test]
    fn tiny_prefill_and_decode_match_the_reference() {
        let mut dtypes = vec![WeightDtype::F32];
        if test_context().has(wgpu::Features::SHADER_F16) {
            dtypes.push(WeightDtype::F16);
        }
        for dtype in dtypes {
            for pass in [
                Pass::prefill(2, 9),
                Pass::prefill(1, 70),
                Pass::decode(3, 17),
                Pass::decode(1, 0),
            ] {
                let (full, reduced) = verdicts(&workload(dtype, pass));
                assert!(full.failure.is_none(), "{dtype:?} {pass:?}: {full:?}");
                assert!(reduced.failure.is_none(), "{dtype:?} {pass:?}: {reduced:?}");
                assert!(
                    full.nmse.unwrap() < 1e-9 || dtype == WeightDtype::F16,
                    "{full:?}"
                );
            }
        }
    }

    /// The gate can fail: checked against a model with other weights, the same run is rejected.
    #[test]
    fn a_wrong_reference_fails_the_check() {
        let ctx = test_context();
        let w = workload(WeightDtype::F32, Pass::decode(1, 5));
        let loaded = w.session.loaded(ctx, &mut |_| {}).unwrap();
        let forward = ForwardPass::build(ctx, &loaded.1, &loaded.0, w.pass).unwrap();
        ctx.execute(&forward).unwrap();
        let other = SyntheticModel {
            shared_layers: true,
            ..w.session.model
        };
        let verdict = w
            .check_in_full(ctx, &forward, &other, 2, "a different model")
            .unwrap();
        assert!(verdict.failure.unwrap().contains("exceeds"));
    }
}
