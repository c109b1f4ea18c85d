//! From a request (preset or shape, phases, sizes, dtype) to validated model workloads: the
//! shape is checked, f16 support, binding limits and memory are checked against the device, and
//! weights are shared across layers when they do not all fit.

use std::rc::Rc;

use super::forward::activation_buffers;
use super::synthetic::SyntheticModel;
use super::token::{ModelSession, TokenWorkload};
use super::weights::{head_bytes, layers_bytes};
use crate::InputError;
use crate::gpu::{Device, DeviceFacts};
use crate::kernels::{KernelConfig, WeightDtype};
use crate::model::{ModelShape, Pass, Phase, presets};
use crate::result::ModelPlan;
use crate::tune::{MathChoice, Tuning};
use tokbench_core::kernel_config::MathRequest;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// A preset name and its shape, or "custom" and a given shape; `None` lets the device choose.
    pub model: Option<(String, ModelShape)>,
    /// Phases in order.
    pub phases: Vec<Phase>,
    /// Sequences per pass: each batch runs every phase (and every depth).
    pub batches: Vec<u32>,
    /// Prefill prompt length.
    pub prompt_len: u32,
    /// Decode depths.
    pub depths: Vec<u32>,
    /// Weight format; `None` takes the device's default ([`resolve_dtype`]).
    pub dtype: Option<WeightDtype>,
    /// Cap on layers run.
    pub layers: Option<u32>,
    /// Device memory to plan for, overriding what tokbench can find out.
    pub memory_bytes: Option<u64>,
    /// Where the kernel configuration comes from.
    pub tuning: Tuning,
    /// Which math tiers the products may use (`--math`).
    pub math: MathRequest,
    /// The host CPU's largest cache, bytes (tuning sizes GEMV weights past it on CPU adapters).
    pub cpu_cache_bytes: Option<u64>,
}

impl ModelWorkloads {
    /// The probes, sized for `device`, then the model's workloads: what `tokbench run`
    /// measures.
    pub fn with_probes(&self, device: &DeviceFacts) -> Vec<Box<dyn super::Workload>> {
        let mut all: Vec<Box<dyn super::Workload>> = vec![
            Box::new(super::probe::FmaProbeWorkload::for_device(device)),
            Box::new(super::probe::CopyProbeWorkload::for_device(device)),
            Box::new(super::probe::ReadProbeWorkload::for_device(device)),
        ];
        if let Some(size) = self.matrix_probe {
            all.push(Box::new(super::probe::MatrixProbeWorkload::for_device(
                device, size,
            )));
        }
        all.extend(
            self.workloads
                .iter()
                .map(|w| Box::new(Rc::clone(w)) as Box<dyn super::Workload>),
        );
        all
    }
}

/// The validated outcome: the plan to record, and the workloads.
pub struct ModelWorkloads {
    /// For the result document.
    pub plan: ModelPlan,
    /// Kernel choices.
    pub config: KernelConfig,
    /// Where they came from (tier defaults, the tuning cache, a quick tune).
    pub config_source: String,
    /// One per phase and size.
    pub workloads: Vec<Rc<TokenWorkload>>,
    /// Lines to tell the user (the preset chosen, weights shared, ...).
    pub notes: Vec<String>,
    /// The matrix size of the cooperative-matrix probe, where the products may use that tier.
    pub matrix_probe: Option<u32>,
}

/// Memory to plan for: what the user said, else for CPU adapters (lavapipe allocates host
/// memory) three quarters of the host's available memory, else unknown.
pub fn memory_budget(device: &DeviceFacts, user: Option<u64>) -> Option<u64> {
    user.or_else(|| {
        device.is_cpu().then(|| {
            let mut sys = sysinfo::System::new();
            sys.refresh_memory();
            sys.available_memory() / 4 * 3
        })
    })
}

/// The preset `tokbench run` uses when none is given: a small one on CPU adapters (a default
/// run ends in a couple of minutes on lavapipe), Llama 3 8B's shape on a GPU that holds it.
pub fn default_preset(
    device: &DeviceFacts,
    budget: Option<u64>,
    dtype: WeightDtype,
) -> &'static presets::Preset {
    if device.is_cpu() {
        return presets::find("smollm2-135m-shape").expect("preset exists");
    }
    let fits = |name: &str| {
        let p = presets::find(name).expect("preset exists");
        let model = SyntheticModel {
            shape: p.shape,
            dtype,
            shared_layers: false,
        };
        let bytes = layers_bytes(&model, p.shape.n_layers, false) + head_bytes(&model);
        budget.is_none_or(|b| bytes < b / 10 * 9)
    };
    ["llama3-8b-shape", "llama3.2-1b-shape", "qwen2.5-0.5b-shape"]
        .into_iter()
        .find(|n| fits(n))
        .map_or_else(
            || presets::find("smollm2-135m-shape").expect("preset exists"),
            |n| presets::find(n).expect("preset exists"),
        )
}

/// The weight format a run uses: `requested`, or, when none is, f16 where the adapter has
/// SHADER_F16 and f32 elsewhere (with a note saying so for `notes`). f16 requested where the
/// adapter has no SHADER_F16 is an input error; every other format is packed in u32 words and
/// unpacked in registers, so any adapter runs it.
pub fn resolve_dtype(
    requested: Option<WeightDtype>,
    facts: &DeviceFacts,
) -> anyhow::Result<(WeightDtype, Option<String>)> {
    let f16 = facts.has(wgpu::Features::SHADER_F16);
    match requested {
        Some(WeightDtype::F16) if !f16 => Err(InputError::new(format!(
            "--dtype f16: adapter {:?} has no SHADER_F16; use --dtype f32, bf16 or a packed \
             format (fp8-e4m3, q8_0, q4_0, mxfp4)",
            facts.info.name
        ))
        .into()),
        Some(d) => Ok((d, None)),
        None if f16 => Ok((
            WeightDtype::F16,
            Some("no --dtype given: f16 weights, as the adapter has SHADER_F16".into()),
        )),
        None => Ok((
            WeightDtype::F32,
            Some("no --dtype given: f32 weights, as the adapter has no SHADER_F16".into()),
        )),
    }
}

/// Validates `req` against the device, chooses the kernels (tuning them on the GPU when the
/// cache has nothing; messages go to `say`; the mock device keeps the tier defaults) and
/// builds its workloads.
pub fn plan(
    device: Device<'_>,
    req: &ModelRequest,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<ModelWorkloads> {
    let facts = device.facts();
    let mut notes = Vec::new();
    let (dtype, dtype_note) = resolve_dtype(req.dtype, &facts)?;
    notes.extend(dtype_note);
    // Before any tuning: `--math coopmat` where the tier cannot run is an input error.
    let math = match device.gpu() {
        Some(ctx) => MathChoice::new(ctx, dtype, req.math)?,
        None => MathChoice::without_coop(req.math, "the mock device has no cooperative matrices")?,
    };
    if let (MathRequest::Auto, Some(why)) = (req.math, &math.coop_unavailable) {
        notes.push(format!("--math auto: SIMT products, because {why}"));
    }
    let budget = memory_budget(&facts, req.memory_bytes);
    let (preset, shape) = match &req.model {
        Some((name, shape)) => (name.clone(), *shape),
        None => {
            let p = default_preset(&facts, budget, dtype);
            notes.push(format!(
                "no --preset given: using {} ({}) for this device",
                p.name, p.description
            ));
            (p.name.to_string(), p.shape)
        }
    };
    shape.validate()?;
    let layers_run = req.layers.map_or(shape.n_layers, |l| l.min(shape.n_layers));
    // Validated with the tier defaults first, so bad input costs no tuning.
    let defaults = KernelConfig::default_for(facts.traits());
    let passes = Pass::sweep(&req.phases, &req.batches, req.prompt_len, &req.depths);
    for &pass in &passes {
        super::forward::check_bindings(&facts, &shape, pass, defaults.decode_split_for(pass.len))?;
    }

    let mut model = SyntheticModel {
        shape,
        dtype,
        shared_layers: false,
    };
    let activations = passes
        .iter()
        .map(|&p| {
            activation_buffers(&shape, layers_run, p, defaults.decode_split_for(p.len))
                .iter()
                .map(|b| b.bytes * b.count)
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let distinct = layers_bytes(&model, layers_run, false) + head_bytes(&model);
    let shared = layers_bytes(&model, layers_run, true) + head_bytes(&model);
    if let Some(budget) = budget {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        if distinct + activations > budget {
            if shared + activations > budget {
                return Err(InputError::new(format!(
                    "{preset}: needs {:.1} GiB even with weights shared across layers ({:.1} GiB of KV cache and activations) but {:.1} GiB is available; reduce --depth, --batch or --prompt-len, use --layers, --dtype f16 or a smaller preset",
                    gib(shared + activations),
                    gib(activations),
                    gib(budget)
                ))
                .into());
            }
            model.shared_layers = true;
            notes.push(format!(
                "{preset}: the weights of {layers_run} layers ({:.1} GiB) do not fit in {:.1} GiB: every layer reads the same weights; the bytes streamed per token stay those of {layers_run} layers",
                gib(distinct),
                gib(budget)
            ));
        }
    }

    let (config, config_source) = match device.gpu() {
        Some(ctx) => {
            let mut target =
                crate::tune::Target::new(&facts, shape, dtype, passes.clone(), req.cpu_cache_bytes);
            // What the user said the device has, where they did.
            target.memory_bytes = budget;
            crate::tune::choose(ctx, &target, &req.tuning, &math, say)?
        }
        None => (
            defaults,
            "tier defaults (mock device: nothing to tune)".into(),
        ),
    };
    for &pass in &passes {
        super::forward::check_bindings(&facts, &shape, pass, config.decode_split_for(pass.len))?;
    }
    // Large tiles over the adapter's workgroup memory are built with a smaller BK: say so.
    if let Ok((_, Some(note))) =
        crate::kernels::matmul::fit_large_tiles(config.matmul.tiles, &facts.limits)
    {
        notes.push(note);
    }
    let matrix_probe = math.coop.as_ref().map(|s| s.sizes[0]);
    let session = ModelSession::new(
        preset.clone(),
        model,
        layers_run,
        config.clone(),
        (math, config_source.clone()),
    );
    let workloads = passes
        .iter()
        .map(|&pass| {
            Rc::new(TokenWorkload {
                session: Rc::clone(&session),
                pass,
            })
        })
        .collect();
    let plan = ModelPlan {
        preset,
        model: shape,
        dtype,
        layers_run,
        weights_shared_across_layers: model.shared_layers,
        phases: req.phases.clone(),
        batch: req.batches[0],
        batches: req.batches.clone(),
        prompt_len: req.prompt_len,
        depths: req.depths.clone(),
    };
    Ok(ModelWorkloads {
        plan,
        config,
        config_source,
        workloads,
        notes,
        matrix_probe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{MockDevice, MockMode};

    fn request(memory_gib: f64) -> ModelRequest {
        let p = presets::find("qwen2.5-0.5b-shape").unwrap();
        ModelRequest {
            model: Some((p.name.into(), p.shape)),
            phases: vec![Phase::Prefill, Phase::Decode],
            batches: vec![1],
            prompt_len: 64,
            depths: vec![64],
            dtype: Some(WeightDtype::F32),
            layers: None,
            memory_bytes: Some((memory_gib * f64::from(1u32 << 30)) as u64),
            tuning: Tuning::Defaults,
            math: MathRequest::Auto,
            cpu_cache_bytes: None,
        }
    }

    /// qwen2.5-0.5b in f32: about 1.9 GiB of weights for 24 layers, 0.6 GiB for one layer and
    /// the head.
    #[test]
    fn weights_are_shared_only_when_they_do_not_fit_and_too_little_memory_is_refused() {
        // Planning needs no GPU: the mock device's facts will do.
        let mock = MockDevice::new(MockMode::Instant, std::time::Duration::ZERO);
        let ctx = Device::Mock(&mock);
        let roomy = plan(ctx, &request(8.0), &mut |_| {}).unwrap();
        assert!(!roomy.plan.weights_shared_across_layers);
        let tight = plan(ctx, &request(1.0), &mut |_| {}).unwrap();
        assert!(tight.plan.weights_shared_across_layers);
        assert!(
            tight
                .notes
                .iter()
                .any(|n| n.contains("every layer reads the same weights"))
        );
        let err = plan(ctx, &request(0.2), &mut |_| {})
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("even with weights shared"), "{err}");
    }
}
