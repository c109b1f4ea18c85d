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
use crate::kernels::{KernelConfig, KvDtype, WeightDtype};
use crate::model::{ModelShape, Pass, Phase, presets};
use crate::result::ModelPlan;
use crate::tune::{MathChoice, Tuning};
use tokbench_core::dtype::Formats;
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
    /// The routed experts' format (`--expert-dtype`); `None` takes the preset's own, else
    /// `dtype` ([`Formats::for_model`]).
    pub expert_dtype: Option<WeightDtype>,
    /// KV cache format; `None` takes the device's default ([`resolve_kv_dtype`]).
    pub kv_dtype: Option<KvDtype>,
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
            expert_dtype: p.expert_dtype.unwrap_or(dtype),
            kv: KvDtype::F32,
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
/// SHADER_F16 and f32 elsewhere (with a note saying so for `notes`). Every format is stored in
/// u32 words and unpacked in registers (f16 with WGSL's core `unpack2x16float`), so any adapter
/// runs any of them.
pub fn resolve_dtype(
    requested: Option<WeightDtype>,
    facts: &DeviceFacts,
) -> anyhow::Result<(WeightDtype, Option<String>)> {
    let f16 = facts.has(wgpu::Features::SHADER_F16);
    match requested {
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

/// The first flag, in the order a user would reach for them, whose smaller weight format lets
/// `model`'s weights, shared across layers, fit `room` bytes: `--expert-dtype` (where the model
/// has experts, which hold most of its weights), then `--dtype`; with the bytes they would take.
fn smaller_format_that_fits(
    model: &SyntheticModel,
    layers_run: u32,
    room: u64,
) -> Option<(String, u64)> {
    let bytes = |m: &SyntheticModel| layers_bytes(m, layers_run, true) + head_bytes(m);
    let smaller = |than: WeightDtype| {
        [WeightDtype::Q8_0, WeightDtype::Q4_0]
            .into_iter()
            .filter(move |d| d.bits_per_weight() < than.bits_per_weight())
    };
    let experts = smaller(model.expert_dtype)
        .filter(|_| model.shape.is_moe())
        .map(|e| {
            let m = SyntheticModel {
                expert_dtype: e,
                ..*model
            };
            (format!("--expert-dtype {}", e.name()), bytes(&m))
        });
    // `--dtype` moves the experts too, unless they are already smaller (gpt-oss's MXFP4).
    let every = smaller(model.dtype).map(|d| {
        let e = model.expert_dtype;
        let m = SyntheticModel {
            dtype: d,
            expert_dtype: if e.bits_per_weight() < d.bits_per_weight() {
                e
            } else {
                d
            },
            ..*model
        };
        (format!("--dtype {}", d.name()), bytes(&m))
    });
    experts.chain(every).find(|&(_, b)| b <= room)
}

/// The KV cache format the adapter takes when none is asked for: f16 where it has SHADER_F16
/// (as for weights), else f32. The kernels pack f16 into u32 words with WGSL's core
/// `pack2x16float`, so an f16 cache asked for runs on any adapter; only the default follows the
/// feature, as the issue asks.
pub fn default_kv_dtype(facts: &DeviceFacts) -> KvDtype {
    if facts.has(wgpu::Features::SHADER_F16) {
        KvDtype::F16
    } else {
        KvDtype::F32
    }
}

/// The KV cache format a run of `shape` uses: `requested`, or, when none is,
/// [`default_kv_dtype`] (with a note saying which and why for `notes`). Multi-head latent
/// attention keeps its latent cache (and the keys and values decompressed from it) in f32: a
/// shape with MLA takes f32, and any other format asked for is an input error.
pub fn resolve_kv_dtype(
    requested: Option<KvDtype>,
    facts: &DeviceFacts,
    shape: &ModelShape,
) -> Result<(KvDtype, Option<String>), InputError> {
    if shape.is_mla() {
        return match requested {
            None | Some(KvDtype::F32) => Ok((
                KvDtype::F32,
                requested.is_none().then(|| {
                    "no --kv-dtype given: f32 KV cache, as multi-head latent attention keeps its \
                     latent cache in f32"
                        .into()
                }),
            )),
            Some(kv) => Err(InputError::new(format!(
                "--kv-dtype {}: multi-head latent attention keeps its latent cache in f32 (f16 \
                 and q8_0 caches are for grouped-query attention); use --kv-dtype f32 or leave \
                 the flag out",
                kv.name()
            ))),
        };
    }
    Ok(match requested {
        Some(kv) => (kv, None),
        None => {
            let kv = default_kv_dtype(facts);
            let why = match kv {
                KvDtype::F16 => "as the adapter has SHADER_F16",
                _ => "as the adapter has no SHADER_F16",
            };
            (
                kv,
                Some(format!(
                    "no --kv-dtype given: {} KV cache, {why}",
                    kv.name()
                )),
            )
        }
    })
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
    let (kv, kv_note) = resolve_kv_dtype(req.kv_dtype, &facts, &shape)?;
    notes.extend(kv_note);
    let formats = Formats::for_model(
        &shape,
        (dtype, kv),
        req.expert_dtype,
        presets::find(&preset).ok().and_then(|p| p.expert_dtype),
    )?;
    if let (Some(e), None) = (formats.distinct_experts(), req.expert_dtype) {
        notes.push(format!(
            "{preset}: routed experts in {}, the format the model ships them in (--expert-dtype changes it)",
            e.name()
        ));
    }
    let layers_run = req.layers.map_or(shape.n_layers, |l| l.min(shape.n_layers));
    // Validated with the tier defaults first, so bad input costs no tuning.
    let defaults = KernelConfig::default_for(facts.traits());
    let passes = Pass::sweep(&req.phases, &req.batches, req.prompt_len, &req.depths);
    // Every pass's buffers fit one binding and the grid limits under `config`.
    let check_bindings = |config: &KernelConfig| -> anyhow::Result<()> {
        for &pass in &passes {
            super::forward::check_bindings(
                &facts,
                &shape,
                pass,
                (config.decode_split_for(pass.len), kv),
            )?;
        }
        Ok(())
    };
    check_bindings(&defaults)?;

    let mut model = SyntheticModel {
        shape,
        dtype,
        expert_dtype: formats.experts,
        kv,
        shared_layers: false,
    };
    let activations = passes
        .iter()
        .map(|&p| {
            activation_buffers(
                &shape,
                layers_run,
                p,
                (defaults.decode_split_for(p.len), kv),
            )
            .iter()
            .map(|b| b.bytes * b.count)
            .sum::<u64>()
                + super::forward::split_k_scratch_bytes(&shape, p, defaults.matmul.tiles)
        })
        .max()
        .unwrap_or(0);
    let distinct = layers_bytes(&model, layers_run, false) + head_bytes(&model);
    let shared = layers_bytes(&model, layers_run, true) + head_bytes(&model);
    if let Some(budget) = budget {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        if distinct + activations > budget {
            if shared + activations > budget {
                let fix = match smaller_format_that_fits(
                    &model,
                    layers_run,
                    budget - activations.min(budget),
                ) {
                    Some((flag, bytes)) => format!(
                        "{flag} would fit ({:.1} GiB with weights shared)",
                        gib(bytes + activations)
                    ),
                    None => {
                        "reduce --depth, --batch or --prompt-len, or choose a smaller preset".into()
                    }
                };
                return Err(InputError::new(format!(
                    "{preset}: needs {:.1} GiB even with weights shared across layers ({:.1} GiB of KV cache and activations) but {:.1} GiB is available; {fix}",
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
            let mut target = crate::tune::Target::new(
                &facts,
                shape,
                (dtype, kv),
                passes.clone(),
                req.cpu_cache_bytes,
            );
            // What the user said the device has, where they did.
            target.memory_bytes = budget;
            crate::tune::choose(ctx, &target, &req.tuning, &math, say)?
        }
        None => (
            defaults,
            "tier defaults (mock device: nothing to tune)".into(),
        ),
    };
    check_bindings(&config)?;
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
        expert_dtype: formats.distinct_experts(),
        kv_dtype: Some(kv),
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
    use crate::workload::Workload as _;

    /// Llama 3 8B's prefill of 512 tokens on the GPU tier (128 × 128 tiles, split-K up to 16,
    /// 264 workgroups to fill): q|k|v (n 6144, a 4 × 48 grid) takes 2 slices, the output
    /// projection (n 4096, 4 × 32) and the down projection (n 4096, k 14336) 3 each, of 512 rows
    /// of n / 4 vec4s; gate|up (4 × 224) and the head (one row) fill the device unsplit. The
    /// CPU tier's register tiles never split.
    #[test]
    fn split_k_partial_sums_are_planned_on_the_gpu_tier() {
        use crate::kernels::AdapterTraits;
        let shape = presets::find("llama3-8b-shape").unwrap().shape;
        let prefill = Pass {
            phase: Phase::Prefill,
            batch: 1,
            len: 512,
        };
        let tiles = |cpu| {
            KernelConfig::default_for(AdapterTraits {
                cpu,
                subgroups: None,
            })
            .matmul
            .tiles
        };
        let row = 512 * (4096 / 4) * 16;
        assert_eq!(
            super::super::forward::split_k_scratch_bytes(&shape, prefill, tiles(false)),
            2 * 512 * (6144 / 4) * 16 + 3 * row + 3 * row
        );
        assert_eq!(
            super::super::forward::split_k_scratch_bytes(&shape, prefill, tiles(true)),
            0
        );
    }

    fn request(memory_gib: f64) -> ModelRequest {
        let p = presets::find("qwen2.5-0.5b-shape").unwrap();
        ModelRequest {
            model: Some((p.name.into(), p.shape)),
            phases: vec![Phase::Prefill, Phase::Decode],
            batches: vec![1],
            prompt_len: 64,
            depths: vec![64],
            dtype: Some(WeightDtype::F32),
            expert_dtype: None,
            kv_dtype: None,
            layers: None,
            memory_bytes: Some((memory_gib * f64::from(1u32 << 30)) as u64),
            tuning: Tuning::Defaults,
            math: MathRequest::Auto,
            cpu_cache_bytes: None,
        }
    }

    /// The KV format: the adapter's default unless asked (the notes say which), the one asked
    /// for recorded in the plan and named in the workloads' ids; MLA refuses any but f32
    /// before any device work.
    #[test]
    fn kv_dtype_resolves_is_recorded_and_mla_refuses_packed_caches() {
        let mock = MockDevice::new(MockMode::Instant, std::time::Duration::ZERO);
        let ctx = Device::Mock(&mock);
        let plain = plan(ctx, &request(8.0), &mut |_| {}).unwrap();
        let default = default_kv_dtype(&ctx.facts());
        assert_eq!(plain.plan.kv_dtype, Some(default));
        let said = format!("no --kv-dtype given: {} KV cache", default.name());
        assert!(
            plain.notes.iter().any(|n| n.contains(&said)),
            "{:?}",
            plain.notes
        );
        use crate::workload::Workload;
        let ids =
            |p: &ModelWorkloads| -> Vec<String> { p.workloads.iter().map(|w| w.id()).collect() };
        assert!(ids(&plain).iter().all(|id| !id.contains("-kv")));
        let q8 = plan(
            ctx,
            &ModelRequest {
                kv_dtype: Some(KvDtype::Q8_0),
                ..request(8.0)
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(q8.plan.kv_dtype, Some(KvDtype::Q8_0));
        assert!(
            ids(&q8).iter().all(|id| id.ends_with("-kvq8_0")),
            "{:?}",
            ids(&q8)
        );
        let p = presets::find("tiny-mla").unwrap();
        let mla = ModelRequest {
            model: Some((p.name.into(), p.shape)),
            kv_dtype: Some(KvDtype::Q8_0),
            ..request(8.0)
        };
        let err = plan(ctx, &mla, &mut |_| {}).err().unwrap();
        assert!(err.is::<InputError>(), "{err:#}");
        assert!(err.to_string().contains("--kv-dtype q8_0"), "{err:#}");
        let f32_mla = plan(
            ctx,
            &ModelRequest {
                kv_dtype: None,
                ..mla
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(f32_mla.plan.kv_dtype, Some(KvDtype::F32));
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

    /// DeepSeek-V3's 256 experts of a layer (22.5 GB in f16) fit no 16 GiB device even shared:
    /// the refusal names the first flag that would fit (q8_0 experts, 12 GB), and with it the
    /// plan goes through.
    #[test]
    fn a_model_too_large_even_shared_is_refused_naming_a_format_that_fits() {
        let mock = MockDevice::new(MockMode::Instant, std::time::Duration::ZERO);
        let ctx = Device::Mock(&mock);
        let deepseek = presets::find("deepseek-v3-shape").unwrap();
        let req = ModelRequest {
            model: Some((deepseek.name.into(), deepseek.shape)),
            phases: vec![Phase::Decode],
            batches: vec![1, 8],
            depths: vec![512],
            layers: Some(2),
            dtype: Some(WeightDtype::F16),
            memory_bytes: Some(16 << 30),
            ..request(16.0)
        };
        let err = plan(ctx, &req, &mut |_| {}).err().unwrap();
        assert!(err.chain().any(|e| e.is::<InputError>()), "exit 2: {err}");
        let text = err.to_string();
        assert!(text.contains("--expert-dtype q8_0 would fit"), "{text}");
        let fixed = ModelRequest {
            expert_dtype: Some(WeightDtype::Q8_0),
            ..req
        };
        let ok = plan(ctx, &fixed, &mut |_| {}).unwrap();
        assert_eq!(ok.plan.expert_dtype, Some(WeightDtype::Q8_0));
        assert!(
            ok.plan.weights_shared_across_layers,
            "12 GB of q8_0 experts per layer"
        );
        assert!(
            ok.workloads[0]
                .describe()
                .id
                .contains("-f16-experts-q8_0-b1-d512-l2")
        );
    }
}
