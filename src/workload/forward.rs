//! One forward pass of a model on the device, recorded once as a list of launches:
//!
//! ```text
//! h = x0                                   (copy: stands in for the embedding lookup)
//! for each layer:
//!     a = rmsnorm(h) · γ_attn
//!     qkv = a · W_qkv                       (column slabs)
//!     rotate q, k; write k, v to the cache  (rope_cache)
//!     o = attention(q, K, V)                (prefill: causal; decode: split-KV + reduce)
//!     h += o · W_o                          (residual fused into the product)
//!     a = rmsnorm(h) · γ_ffn
//!     dense layer:                          mixture-of-experts layer:
//!       gu = a · W_gate|up                    logits = a · W_router; route (top-k, group)
//!       m = silu(gate) · up                   y = swiglu(a[rows of e] · W_gu,e) · W_down,e
//!       h += m · W_down                       h += Σ gate · y   (+ the shared experts'
//!                                             dense block, as on the left)
//! f = rmsnorm(last row of each sequence of h) · γ_final
//! logits = f · W_lm
//! ```
//!
//! Every execution starts from the same x0 and writes the same cache positions, so replaying it
//! for every timed sample measures the same work and leaves the same outputs.

use super::synthetic::{SyntheticModel, initial_cache, step_input_states};
use super::weights::{GpuAttention, GpuFfn, GpuMatrix, GpuMla, GpuMoe, GpuWeights};
use crate::InputError;
use crate::gpu::{DeviceFacts, Dispatch, GpuContext, PassRecorder};
use crate::kernels::attention::{DecodeAttention, Heads, PrefillAttention};
use crate::kernels::attention_coop::{self, PrefillAttentionCoop};
use crate::kernels::copy::Copy;
use crate::kernels::layout::{pad_matrix, padded_cols, unpad_rows};
use crate::kernels::matmul::{Matmul, Product};
use crate::kernels::mla::{HeadMatmul, HeadProduct, MlaDims, MlaForm, MlaKernels, MlaTokens};
use crate::kernels::moe::{ExpertProduct, MoeKernels, RouteLayout};
use crate::kernels::rmsnorm::{NormRows, RmsNorm};
use crate::kernels::rope::{self, RopeCache, RopeGeometry};
use crate::kernels::swiglu::SwiGlu;
use crate::kernels::{KernelConfig, KvDtype, WeightDtype};
use crate::model::{ModelShape, Pass, Phase};
use tokbench_core::dtype::Formats;

/// The kernels a forward pass uses, built once per device, weight type and configuration.
pub struct Kernels {
    /// The choices they were built with.
    pub config: KernelConfig,
    pub(crate) matmul: Matmul,
    pub(crate) norm: RmsNorm,
    pub(crate) rope: RopeCache,
    pub(crate) swiglu: SwiGlu,
    pub(crate) copy: Copy,
    /// The mixture-of-experts kernels, built by the first pass of a model that has experts.
    moe: std::cell::OnceCell<MoeKernels>,
    /// The routed experts' format, which the expert products are built for.
    expert_dtype: WeightDtype,
}

impl Kernels {
    /// Builds every pipeline except attention's, which depends on the head shape;
    /// `every_row_on_tiles` sends few-row products to the many-row kernel too (`--math coopmat`).
    pub fn new(
        ctx: &GpuContext,
        config: KernelConfig,
        formats: Formats,
        every_row_on_tiles: bool,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            matmul: Matmul::new(ctx, config.matmul, formats.dense)?
                .every_row_on_tiles(every_row_on_tiles),
            norm: RmsNorm::new(ctx, config.norm_wg)?,
            rope: RopeCache::new(ctx, config.rope_wg())?,
            swiglu: SwiGlu::new(ctx, config.swiglu_wg())?,
            copy: Copy::new(ctx)?,
            moe: std::cell::OnceCell::new(),
            expert_dtype: formats.experts,
            config,
        })
    }

    fn moe(&self, ctx: &GpuContext) -> anyhow::Result<&MoeKernels> {
        if self.moe.get().is_none() {
            let _ = self.moe.set(MoeKernels::new(ctx, self.expert_dtype)?);
        }
        Ok(self.moe.get().expect("set above"))
    }
}

/// A device buffer a pass allocates besides the weights, for planning.
#[derive(Debug, Clone, Copy)]
pub struct BufferNeed {
    /// What it holds.
    pub name: &'static str,
    /// Bytes of one such buffer (each is one binding).
    pub bytes: u64,
    /// How many there are.
    pub count: u64,
}

/// Every buffer a pass through `layers` layers allocates besides the weights, with its KV
/// caches in `kv` (multi-head latent attention's latent cache is f32 whatever `kv`).
pub fn activation_buffers(
    shape: &ModelShape,
    layers: u32,
    pass: Pass,
    (split_len, kv): (u32, KvDtype),
) -> Vec<BufferNeed> {
    let t = pass.rows() as u64;
    let b = u64::from(pass.batch);
    let dp = padded_cols(shape.d_model as usize) as u64;
    let fp = padded_cols(shape.d_ff as usize) as u64;
    let vp = padded_cols(shape.vocab as usize) as u64;
    let cache_len = u64::from(pass.cache_len());
    let need = |name, bytes, count| BufferNeed { name, bytes, count };
    let mut out = vec![need("hidden states", t * dp * 4, 3)];
    if shape.is_mla() {
        out.extend(mla_buffers(shape, layers, pass));
    } else {
        out.extend([
            need("q|k|v", t * shape.qkv_dim() as u64 * 4, 1),
            need("attention output", t * shape.q_dim() as u64 * 4, 1),
            need(
                "rope table",
                cache_len * u64::from(shape.head_dim / 2) * 8,
                1,
            ),
            need(
                "KV cache",
                kv.buffer_bytes(
                    b * u64::from(shape.n_kv_heads) * cache_len,
                    shape.head_dim as usize,
                ),
                2 * u64::from(layers),
            ),
        ]);
    }
    out.extend([
        need("gate|up", t * 2 * fp * 4, 1),
        need("swiglu output", t * fp * 4, 1),
        need("logits", b * vp * 4, 1),
    ]);
    if shape.is_moe() {
        let route = route_layout(shape, pass);
        let tk = u64::from(route.assignments());
        let fep = padded_cols(shape.d_ff_expert as usize) as u64;
        let ep = padded_cols(shape.n_experts as usize) as u64;
        out.extend([
            need("router logits", t * ep * 4, 1),
            need("routing", route.route_bytes(), 1),
            need("expert gates", route.gate_bytes(), 1),
            need("experts' gate|up", tk * 2 * fep * 4, 1),
            need("experts' swiglu output", tk * fep * 4, 1),
            need("experts' output", tk * dp * 4, 1),
            need("experts touched", u64::from(layers.max(1)) * 4, 1),
        ]);
        if shape.n_shared_experts > 0 {
            let fsp = padded_cols((shape.n_shared_experts * shape.d_ff_expert) as usize) as u64;
            out.extend([
                need("shared experts' gate|up", t * 2 * fsp * 4, 1),
                need("shared experts' swiglu output", t * fsp * 4, 1),
            ]);
        }
    }
    if pass.phase == Phase::Decode {
        let splits = cache_len.div_ceil(u64::from(split_len));
        let head_dim = match shape.is_mla() {
            true => MlaForm::for_phase(pass.phase).att_dim(MlaDims::of(shape)),
            false => shape.head_dim,
        };
        out.push(need(
            "attention partials",
            b * u64::from(shape.n_heads) * splits * (u64::from(head_dim / 4) + 1) * 16,
            1,
        ));
    }
    out
}

/// At most the bytes of split-K's partial sums in a pass with `tiles` (see
/// [`crate::kernels::matmul::split_k_slices`]): large tiles split the K of products whose grid
/// would not fill the device, each product's slices taking up to
/// [`crate::kernels::matmul::SPLIT_K_MAX_SCRATCH_BYTES`]. A kernel set keeps one scratch buffer
/// and grows it to the largest product, the smaller ones living until the pass has run, so the
/// bound is the sum over the pass's product shapes: the attention projections (not MLA's), the
/// dense FFN (not a mixture of experts': its experts run their own kernel) and the head.
pub fn split_k_scratch_bytes(
    shape: &ModelShape,
    pass: Pass,
    tiles: tokbench_core::kernel_config::ProductTiles,
) -> u64 {
    let t = pass.rows() as u32;
    let (d, f) = (shape.d_model, shape.d_ff);
    let mut products = vec![(pass.batch, shape.vocab, d)];
    if !shape.is_mla() {
        products.extend([(t, shape.qkv_dim() as u32, d), (t, d, shape.q_dim() as u32)]);
    }
    if !shape.is_moe() {
        products.extend([(t, 2 * f, d), (t, d, f)]);
    }
    products.sort_unstable();
    products.dedup();
    products
        .into_iter()
        .map(|(m, n, k)| {
            let slices = crate::kernels::matmul::split_k_slices(tiles, m, n, k.div_ceil(4));
            match slices {
                1 => 0,
                s => u64::from(s) * u64::from(m) * u64::from(n.div_ceil(4)) * 16,
            }
        })
        .sum()
}

/// The buffers of a multi-head latent attention pass besides the hidden states (in the order
/// [`MlaPass::new`] allocates them): its projections, the queries and outputs in the form the
/// pass runs, the per-layer latent caches, and the decompressed form's keys and values.
fn mla_buffers(shape: &ModelShape, layers: u32, pass: Pass) -> Vec<BufferNeed> {
    let d = MlaDims::of(shape);
    let form = MlaForm::for_phase(pass.phase);
    let t = pass.rows() as u64;
    let rows = u64::from(pass.batch) * u64::from(pass.cache_len());
    let a_width = u64::from(crate::model::mla::q_width(shape) + d.row());
    let f = |n: u64| n * 4;
    let need = |name, bytes, count| BufferNeed { name, bytes, count };
    let mut out = vec![
        need("MLA [q_a | c | k_rope]", f(t * a_width), 1),
        need("MLA latent, normalised", f(t * u64::from(d.latent)), 1),
        need(
            "MLA attention queries",
            f(t * u64::from(form.att_stride(d))),
            1,
        ),
        need(
            "attention output",
            f(t * u64::from(d.n_heads * form.att_dim(d))),
            1,
        ),
        need("MLA value heads", f(t * u64::from(d.n_heads * d.v_dim)), 1),
        need(
            "rope table",
            u64::from(pass.cache_len()) * u64::from(d.rope_dim / 2) * 8,
            1,
        ),
        need(
            "MLA latent cache",
            f(rows * u64::from(d.row())),
            u64::from(layers),
        ),
    ];
    if shape.q_lora_rank > 0 {
        out.extend([
            need(
                "MLA query rank, normalised",
                f(t * u64::from(shape.q_lora_rank)),
                1,
            ),
            need("MLA queries", f(t * u64::from(d.n_heads * d.q_head())), 1),
        ]);
    }
    if form == MlaForm::Decompressed {
        out.extend([
            need(
                "MLA [k_nope | v] of the cache",
                f(rows * u64::from(d.n_heads * d.kvb_head())),
                1,
            ),
            need(
                "MLA decompressed K and V",
                f(rows * u64::from(d.n_heads * form.att_dim(d))),
                2,
            ),
        ]);
    }
    out
}

/// Where the router of a pass writes: every token of the pass, routed to its experts.
pub fn route_layout(shape: &ModelShape, pass: Pass) -> RouteLayout {
    RouteLayout {
        tokens: pass.rows() as u32,
        k: shape.n_experts_active,
        n_experts: shape.n_experts,
    }
}

/// Checks that every buffer of a pass (KV caches in `kv`) fits one binding and the grid limits;
/// the error names the flag to change.
pub fn check_bindings(
    device: &DeviceFacts,
    shape: &ModelShape,
    pass: Pass,
    (split_len, kv): (u32, KvDtype),
) -> Result<(), InputError> {
    let what = match pass.phase {
        Phase::Prefill => "--batch or --prompt-len",
        Phase::Decode => "--batch or --depth",
    };
    // The experts' rows (tokens × top-k) are a grid dimension too.
    let tokens = pass.rows() * (shape.n_experts_active.max(1) as usize);
    let max_rows = device.limits.max_compute_workgroups_per_dimension as usize;
    if tokens > max_rows {
        return Err(InputError::new(format!(
            "{} batch {} length {}: {tokens} rows exceed this adapter's {max_rows} workgroups per dimension; reduce {what}",
            pass.phase.name(),
            pass.batch,
            pass.len
        )));
    }
    let limit = device.max_binding_bytes();
    for need in activation_buffers(shape, 1, pass, (split_len, kv)) {
        if need.bytes > limit {
            return Err(InputError::new(format!(
                "{} batch {} length {}: the {} buffer needs {} MiB but this adapter binds at most {} MiB; reduce {what}",
                pass.phase.name(),
                pass.batch,
                pass.len,
                need.name,
                need.bytes >> 20,
                limit >> 20
            )));
        }
    }
    Ok(())
}

/// Decode steps of a mixture-of-experts model a pass rotates through: which experts a batch
/// touches varies from step to step, as in a real decode, and the bytes counted are the mean.
pub const MOE_DECODE_STEPS: usize = 8;

/// A recorded forward pass and the buffers it reads back.
pub struct ForwardPass {
    /// What one execution computes.
    pub pass: Pass,
    /// One launch per step input, copying it into the residual stream: executions take them
    /// in turn (a decode step of a mixture-of-experts model has [`MOE_DECODE_STEPS`]; every
    /// other pass one).
    step_inputs: Vec<Dispatch>,
    /// The step the next execution runs.
    next_step: std::cell::Cell<usize>,
    dispatches: Vec<Dispatch>,
    shape: ModelShape,
    layers_run: u32,
    hidden: wgpu::Buffer,
    final_rows: wgpu::Buffer,
    logits: wgpu::Buffer,
    /// One word per layer: the experts its router touched.
    experts_touched: Option<wgpu::Buffer>,
}

impl PassRecorder for ForwardPass {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        let step = self.next_step.get();
        self.next_step.set((step + 1) % self.step_inputs.len());
        self.step_inputs[step].record(pass);
        self.dispatches.record(pass);
    }
}

impl ForwardPass {
    /// Allocates activations and caches (decode caches filled with synthetic history) and
    /// records the launches of one pass through `weights`.
    pub fn build(
        ctx: &GpuContext,
        kernels: &Kernels,
        weights: &GpuWeights,
        pass: Pass,
    ) -> anyhow::Result<Self> {
        Self::build_in(ctx, kernels, weights, pass, MlaForm::for_phase(pass.phase))
    }

    /// [`Self::build`] with multi-head latent attention in `form` whatever the phase (both
    /// forms compute the same outputs; tests hold them to it).
    pub fn build_in(
        ctx: &GpuContext,
        kernels: &Kernels,
        weights: &GpuWeights,
        pass: Pass,
        form: MlaForm,
    ) -> anyhow::Result<Self> {
        let model: SyntheticModel = weights.model;
        let s = model.shape;
        let layers = weights.layers_run as usize;
        let t = pass.rows();
        let b = pass.batch as usize;
        let (d, dp) = (s.d_model as usize, padded_cols(s.d_model as usize));
        let fp = padded_cols(s.d_ff as usize);
        let vp = padded_cols(s.vocab as usize);
        let cache_len = pass.cache_len();
        let f32s = |n: usize| (n * 4) as u64;

        let steps = match (pass.phase, s.is_moe()) {
            (Phase::Decode, true) => MOE_DECODE_STEPS,
            _ => 1,
        };
        let hidden = ctx.storage_zeroed("h", f32s(t * dp))?;
        let mut step_inputs = Vec::with_capacity(steps);
        for step in 0..steps {
            let x0 = ctx.storage_with(
                "x0",
                bytemuck::cast_slice(&pad_matrix(&step_input_states(t, d, step), t, d, t)),
            )?;
            step_inputs.push(
                kernels
                    .copy
                    .dispatch(ctx, (t * dp / 4) as u32, &x0, &hidden)?,
            );
        }
        let normed = ctx.storage_zeroed("a", f32s(t * dp))?;
        let mla = match s.is_mla() {
            true => Some(MlaPass::new(ctx, &model, pass, form)?),
            false => None,
        };
        // A latent-attention pass keeps its queries and outputs in `mla`.
        let (qkv_floats, attn_floats) = match mla {
            Some(_) => (4, 4),
            None => (t * s.qkv_dim(), t * s.q_dim()),
        };
        let qkv = ctx.storage_zeroed("qkv", f32s(qkv_floats))?;
        let attn = ctx.storage_zeroed("attn", f32s(attn_floats))?;
        // A model whose every layer routes to experts has no dense block to hold.
        let dense = (0..layers as u32).any(|l| !s.layer_kind(l, layers as u32).moe);
        let rows_dense = if dense { t } else { 1 };
        let gate_up = ctx.storage_zeroed("gate-up", f32s(rows_dense * 2 * fp))?;
        let act = ctx.storage_zeroed("swiglu", f32s(rows_dense * fp))?;
        let final_rows = ctx.storage_zeroed("final", f32s(b * dp))?;
        let logits = ctx.storage_zeroed("logits", f32s(b * vp))?;
        // MLA rotates only each head's rotary part.
        let rotated = match s.is_mla() {
            true => s.qk_rope_head_dim,
            false => s.head_dim,
        };
        let rope_table = ctx.storage_with(
            "rope",
            bytemuck::cast_slice(&rope::table(cache_len as usize, rotated as usize)),
        )?;
        // Decode reads `len` positions of history: fill them; prefill writes its own.
        let filled = match pass.phase {
            Phase::Prefill => 0,
            Phase::Decode => pass.len as usize,
        };
        let mut caches = Vec::with_capacity(layers);
        for l in 0..layers {
            caches.push(LayerCache::new(
                ctx,
                &model,
                l,
                (b, cache_len as usize),
                filled,
            )?);
        }
        ctx.take_device_error()?;

        let cfg = &kernels.config;
        let mut list = Vec::new();
        let rows = |n: usize| norm_rows(n, d, dp);
        let geometry = RopeGeometry {
            tokens: t as u32,
            seq_len: match pass.phase {
                Phase::Prefill => pass.len,
                Phase::Decode => 1,
            },
            pos_base: filled as u32,
            n_heads: s.n_heads,
            n_kv_heads: s.n_kv_heads,
            head_dim: s.head_dim,
            cache_len,
            kv: model.kv,
        };
        // One attention kernel per attention span the layers have: full, and the window.
        let layers_run = weights.layers_run;
        let mut attentions: Vec<(u32, Attention)> = Vec::new();
        for l in 0..layers_run {
            let window = s.layer_kind(l, layers_run).window;
            if attentions.iter().all(|(w, _)| *w != window) {
                let heads = match &mla {
                    Some(m) => m.heads(cache_len, window),
                    None => heads_of(&s, cache_len, window, model.kv),
                };
                attentions.push((window, Attention::new(ctx, cfg, heads, pass)?));
            }
        }
        let moe_buffers = if s.is_moe() {
            Some(MoeBuffers::new(ctx, &s, pass, layers)?)
        } else {
            None
        };
        for (l, cache) in caches.iter().enumerate() {
            let w = weights.layer(l);
            list.push(
                kernels
                    .norm
                    .dispatch(ctx, rows(t), &hidden, &w.attn_norm, &normed)?,
            );
            let window = s.layer_kind(l as u32, layers_run).window;
            let (_, attention) = attentions
                .iter()
                .find(|(w, _)| *w == window)
                .expect("a kernel for every span");
            // The output projection's input: the attention output, or MLA's value heads.
            let o_input = match (&w.attention, cache, &mla) {
                (GpuAttention::Gqa { qkv: w_qkv }, LayerCache::Kv(k_cache, v_cache), None) => {
                    project(
                        ctx,
                        &kernels.matmul,
                        &mut list,
                        (t, &normed, dp / 4),
                        w_qkv,
                        (&qkv, false),
                    )?;
                    list.push(kernels.rope.dispatch(
                        ctx,
                        geometry,
                        &qkv,
                        &rope_table,
                        k_cache,
                        v_cache,
                    )?);
                    attention.dispatch(
                        ctx,
                        &mut list,
                        pass,
                        (&qkv, k_cache, v_cache),
                        w.sinks.as_ref(),
                        &attn,
                    )?;
                    (&attn, s.q_dim() / 4)
                }
                (GpuAttention::Mla(w_mla), LayerCache::Latent(latent), Some(m)) => {
                    m.record(
                        ctx,
                        kernels,
                        &mut list,
                        (w_mla, w.sinks.as_ref()),
                        (&normed, &rope_table, latent),
                        attention,
                    )?;
                    (&m.values, (s.n_heads * s.v_head_dim / 4) as usize)
                }
                _ => anyhow::bail!("layer {l}: weights, cache and attention kinds disagree"),
            };
            project(
                ctx,
                &kernels.matmul,
                &mut list,
                (t, o_input.0, o_input.1),
                &w.o,
                (&hidden, true),
            )?;
            list.push(
                kernels
                    .norm
                    .dispatch(ctx, rows(t), &hidden, &w.ffn_norm, &normed)?,
            );
            match &w.ffn {
                GpuFfn::Dense { gate_up: gu, down } => swiglu_block(
                    ctx,
                    kernels,
                    &mut list,
                    (t, &normed, dp / 4),
                    (gu, down),
                    (&gate_up, &act),
                    &hidden,
                )?,
                GpuFfn::Moe(moe) => {
                    let b = moe_buffers
                        .as_ref()
                        .expect("allocated for a model with experts");
                    moe_block(
                        ctx,
                        kernels,
                        &mut list,
                        (l, s, pass),
                        moe,
                        b,
                        &normed,
                        &hidden,
                    )?;
                }
            }
        }
        // The LM head reads one row per sequence: the last prompt token, or the decoded token.
        let per_seq = t / b;
        let last = NormRows {
            rows: b as u32,
            d: d as u32,
            in_off4: ((per_seq - 1) * dp / 4) as u32,
            in_stride4: (per_seq * dp / 4) as u32,
        };
        list.push(
            kernels
                .norm
                .dispatch(ctx, last, &hidden, &weights.final_norm, &final_rows)?,
        );
        project(
            ctx,
            &kernels.matmul,
            &mut list,
            (b, &final_rows, dp / 4),
            &weights.lm_head,
            (&logits, false),
        )?;
        ctx.take_device_error()?;
        Ok(Self {
            pass,
            step_inputs,
            next_step: std::cell::Cell::new(0),
            dispatches: list,
            shape: s,
            layers_run: weights.layers_run,
            hidden,
            final_rows,
            logits,
            experts_touched: moe_buffers.map(|b| b.stats),
        })
    }

    /// Makes the next execution run the first step, whose inputs the CPU reference uses.
    pub fn rewind(&self) {
        self.next_step.set(0);
    }

    /// Steps the executions take in turn (1 but for a mixture-of-experts decode).
    pub fn steps(&self) -> usize {
        self.step_inputs.len()
    }

    /// Runs each step once and reads the experts its routers touched: `[step][MoE layer]`;
    /// `None` for a dense model. Leaves the next execution at the first step.
    pub fn experts_touched_by_step(
        &self,
        ctx: &GpuContext,
    ) -> anyhow::Result<Option<Vec<Vec<u32>>>> {
        if self.experts_touched.is_none() {
            return Ok(None);
        }
        self.rewind();
        let mut by_step = Vec::with_capacity(self.steps());
        for _ in 0..self.steps() {
            ctx.execute(self)?;
            by_step.extend(self.read_experts_touched(ctx)?);
        }
        Ok(Some(by_step))
    }

    /// Experts the router touched in each mixture-of-experts layer of the last execution, in
    /// layer order; `None` for a dense model.
    pub fn read_experts_touched(&self, ctx: &GpuContext) -> anyhow::Result<Option<Vec<u32>>> {
        let Some(stats) = &self.experts_touched else {
            return Ok(None);
        };
        let words = ctx.read_bytes(stats, u64::from(self.layers_run) * 4)?;
        let per_layer: &[u32] = bytemuck::cast_slice(&words);
        Ok(Some(
            (0..self.layers_run)
                .filter(|&l| self.shape.layer_kind(l, self.layers_run).moe)
                .map(|l| per_layer[l as usize])
                .collect(),
        ))
    }

    /// Launches per execution.
    pub fn launches(&self) -> usize {
        1 + self.dispatches.len()
    }

    /// The residual stream after the last layer: rows × d_model.
    pub fn read_hidden(&self, ctx: &GpuContext) -> anyhow::Result<Vec<f32>> {
        let (t, d) = (self.pass.rows(), self.shape.d_model as usize);
        Ok(unpad_rows(
            &ctx.read_f32(&self.hidden, t * padded_cols(d))?,
            t,
            d,
        ))
    }

    /// The normalised rows the LM head reads: batch × d_model.
    pub fn read_final_rows(&self, ctx: &GpuContext) -> anyhow::Result<Vec<f32>> {
        let (b, d) = (self.pass.batch as usize, self.shape.d_model as usize);
        Ok(unpad_rows(
            &ctx.read_f32(&self.final_rows, b * padded_cols(d))?,
            b,
            d,
        ))
    }

    /// Logits: batch × vocab.
    pub fn read_logits(&self, ctx: &GpuContext) -> anyhow::Result<Vec<f32>> {
        let (b, v) = (self.pass.batch as usize, self.shape.vocab as usize);
        Ok(unpad_rows(
            &ctx.read_f32(&self.logits, b * padded_cols(v))?,
            b,
            v,
        ))
    }
}

/// One layer's attention cache.
enum LayerCache {
    /// Keys and values, [sequence, kv_head, position, head_dim] each.
    Kv(wgpu::Buffer, wgpu::Buffer),
    /// Multi-head latent attention's rows, [sequence, position, latent + rope_dim].
    Latent(wgpu::Buffer),
}

impl LayerCache {
    /// Layer `l`'s cache for `batch` sequences of `cache_len` positions, the first `filled`
    /// holding synthetic history; K and V in the model's KV format.
    fn new(
        ctx: &GpuContext,
        model: &SyntheticModel,
        l: usize,
        (batch, cache_len): (usize, usize),
        filled: usize,
    ) -> anyhow::Result<Self> {
        let s = &model.shape;
        let upload = |label, data: Vec<f32>| ctx.storage_with(label, bytemuck::cast_slice(&data));
        if s.is_mla() {
            let dims = [batch, 1, cache_len, MlaDims::of(s).row() as usize];
            return Ok(Self::Latent(upload(
                "latent-cache",
                initial_cache(l, false, dims, filled),
            )?));
        }
        let dims = [batch, s.n_kv_heads as usize, cache_len, s.head_dim as usize];
        let encoded = |label, value| {
            let values = initial_cache(l, value, dims, filled);
            ctx.storage_with(label, &model.kv.encode_rows(&values, dims[3]))
        };
        Ok(Self::Kv(
            encoded("k-cache", false)?,
            encoded("v-cache", true)?,
        ))
    }
}

/// A multi-head latent attention pass: its form, kernels and activations (shared by every
/// layer of the pass). See [`crate::kernels::mla`] for the two forms.
struct MlaPass {
    dims: MlaDims,
    form: MlaForm,
    pass: Pass,
    sinks: bool,
    q_width: u32,
    kernels: MlaKernels,
    /// The products with W_UV (the model's format, in W_kv_b) and W_UK (its own format).
    uv: HeadMatmul,
    uk: HeadMatmul,
    /// [q_a | c | k_rope] (or [q | c | k_rope]) of each token.
    a_out: wgpu::Buffer,
    /// The normalised query rank and the queries decompressed from it, with a query rank.
    q: Option<(wgpu::Buffer, wgpu::Buffer)>,
    c_norm: wgpu::Buffer,
    /// Query rows as the attention kernel reads them.
    qatt: wgpu::Buffer,
    /// Attention output, att_dim per head.
    wide: wgpu::Buffer,
    /// v_dim per head: the output projection's input.
    values: wgpu::Buffer,
    /// Decompressed form: [k_nope | v] of every cached row, and the per-head K and V.
    decompressed: Option<(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)>,
}

impl MlaPass {
    fn new(
        ctx: &GpuContext,
        model: &SyntheticModel,
        pass: Pass,
        form: MlaForm,
    ) -> anyhow::Result<Self> {
        let s = &model.shape;
        let d = MlaDims::of(s);
        let t = pass.rows() as u64;
        let rows = u64::from(pass.batch) * u64::from(pass.cache_len());
        let q_width = crate::model::mla::q_width(s);
        let f = |n: u64| n * 4;
        let zeroed = |label, floats: u64| ctx.storage_zeroed(label, f(floats));
        let q = match s.q_lora_rank {
            0 => None,
            rank => Some((
                zeroed("mla-q-rank", t * u64::from(rank))?,
                zeroed("mla-q", t * u64::from(d.n_heads * d.q_head()))?,
            )),
        };
        let decompressed = match form {
            MlaForm::Absorbed => None,
            MlaForm::Decompressed => {
                let kv = rows * u64::from(d.n_heads * form.att_dim(d));
                Some((
                    zeroed("mla-kv-b", rows * u64::from(d.n_heads * d.kvb_head()))?,
                    zeroed("mla-k", kv)?,
                    zeroed("mla-v", kv)?,
                ))
            }
        };
        Ok(Self {
            dims: d,
            form,
            pass,
            sinks: s.attention_sinks > 0,
            q_width,
            kernels: MlaKernels::new(ctx)?,
            uv: HeadMatmul::new(ctx, model.dtype)?,
            uk: HeadMatmul::new(ctx, model.mla_uk_dtype())?,
            a_out: zeroed("mla-a", t * u64::from(q_width + d.row()))?,
            q,
            c_norm: zeroed("mla-c", t * u64::from(d.latent))?,
            qatt: zeroed("mla-qatt", t * u64::from(form.att_stride(d)))?,
            wide: zeroed("mla-attn", t * u64::from(d.n_heads * form.att_dim(d)))?,
            values: zeroed("mla-values", t * u64::from(d.n_heads * d.v_dim))?,
            decompressed,
        })
    }

    /// The heads the attention kernel sees, for caches of `cache_len` positions.
    fn heads(&self, cache_len: u32, window: u32) -> Heads {
        let d = self.dims;
        Heads {
            n_heads: d.n_heads,
            n_kv_heads: self.form.kv_heads(d),
            head_dim: self.form.att_dim(d),
            cache_len,
            window,
            sinks: self.sinks,
            score_dim: d.q_head(),
            // The latent cache and the decompressed K and V are f32 (see `--kv-dtype`).
            kv: KvDtype::F32,
        }
    }

    /// Appends one layer's attention up to its value heads (`self.values`, the input of the
    /// output projection): the projections of `normed`, the latent row written to `latent`,
    /// and the attention in the pass's form.
    fn record(
        &self,
        ctx: &GpuContext,
        kernels: &Kernels,
        list: &mut Vec<Dispatch>,
        (w, sinks): (&GpuMla, Option<&wgpu::Buffer>),
        (normed, rope_table, latent): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
        attention: &Attention,
    ) -> anyhow::Result<()> {
        let (d, pass, form) = (self.dims, self.pass, self.form);
        let t = pass.rows();
        let a_width = w.a.n;
        project(
            ctx,
            &kernels.matmul,
            list,
            (t, normed, w.a.k4 as usize),
            &w.a,
            (&self.a_out, false),
        )?;
        // The queries: decompressed from the normalised rank, or straight from the projection.
        let q_rows = match (&w.q_b, &self.q) {
            (Some((gamma, q_b)), Some((rank, q))) => {
                let r = q_b.k4 * 4;
                list.push(kernels.norm.dispatch(
                    ctx,
                    NormRows {
                        rows: t as u32,
                        d: r,
                        in_off4: 0,
                        in_stride4: a_width / 4,
                    },
                    &self.a_out,
                    gamma,
                    rank,
                )?);
                project(
                    ctx,
                    &kernels.matmul,
                    list,
                    (t, rank, (r / 4) as usize),
                    q_b,
                    (q, false),
                )?;
                (q, d.n_heads * d.q_head())
            }
            (None, None) => (&self.a_out, a_width),
            _ => anyhow::bail!("MLA query rank: weights and activations disagree"),
        };
        list.push(kernels.norm.dispatch(
            ctx,
            NormRows {
                rows: t as u32,
                d: d.latent,
                in_off4: self.q_width / 4,
                in_stride4: a_width / 4,
            },
            &self.a_out,
            &w.kv_norm,
            &self.c_norm,
        )?);
        let tokens = MlaTokens {
            tokens: t as u32,
            seq_len: match pass.phase {
                Phase::Prefill => pass.len,
                Phase::Decode => 1,
            },
            pos_base: match pass.phase {
                Phase::Prefill => 0,
                Phase::Decode => pass.len,
            },
            cache_len: pass.cache_len(),
        };
        list.push(self.kernels.rope(
            ctx,
            d,
            form,
            tokens,
            (q_rows.0, q_rows.1, 0),
            (&self.a_out, a_width, self.q_width + d.latent),
            &self.c_norm,
            rope_table,
            latent,
            &self.qatt,
        )?);
        let att_dim = form.att_dim(d);
        match &self.decompressed {
            None => {
                // q_lat,h = q_nope,h · W_UK,h into each head's first `latent` floats.
                list.push(self.uk.dispatch(
                    ctx,
                    &HeadProduct {
                        rows: t as u32,
                        heads: d.n_heads,
                        k4: d.nope / 4,
                        n: d.latent,
                        a: q_rows.0,
                        a_off4: 0,
                        lda4: q_rows.1 / 4,
                        a_head4: d.q_head() / 4,
                        w: &w.uk,
                        w_row_off: 0,
                        w_head_rows: d.latent,
                        c: &self.qatt,
                        ldc: form.att_stride(d),
                        c_off: 0,
                        c_head: att_dim,
                        accumulate: false,
                    },
                )?);
                attention.dispatch(
                    ctx,
                    list,
                    pass,
                    (&self.qatt, latent, latent),
                    sinks,
                    &self.wide,
                )?;
                // o_h = o_lat,h · W_UV,h: W_UV,h is head h's value rows of W_kv_b.
                list.push(self.uv.dispatch(
                    ctx,
                    &HeadProduct {
                        rows: t as u32,
                        heads: d.n_heads,
                        k4: d.latent / 4,
                        n: d.v_dim,
                        a: &self.wide,
                        a_off4: 0,
                        lda4: d.n_heads * att_dim / 4,
                        a_head4: att_dim / 4,
                        w: &w.kv_b.slabs[0].buffer,
                        w_row_off: d.nope,
                        w_head_rows: d.kvb_head(),
                        c: &self.values,
                        ldc: d.n_heads * d.v_dim,
                        c_off: 0,
                        c_head: d.v_dim,
                        accumulate: false,
                    },
                )?);
            }
            Some((kvb, k, v)) => {
                // Every cached row through W_kv_b: this pass's and the history's.
                let rows = pass.batch * pass.cache_len();
                project(
                    ctx,
                    &kernels.matmul,
                    list,
                    (rows as usize, latent, (d.row() / 4) as usize),
                    &w.kv_b,
                    (kvb, false),
                )?;
                list.push(self.kernels.expand(
                    ctx,
                    d,
                    (rows, pass.cache_len()),
                    kvb,
                    latent,
                    k,
                    v,
                )?);
                attention.dispatch(ctx, list, pass, (&self.qatt, k, v), sinks, &self.wide)?;
                list.push(self.kernels.compact(
                    ctx,
                    d,
                    (form, t as u32),
                    &self.wide,
                    &self.values,
                )?);
            }
        }
        Ok(())
    }
}

/// Activations of the mixture-of-experts layers (shared by every layer of a pass).
struct MoeBuffers {
    route: RouteLayout,
    logits: wgpu::Buffer,
    routing: wgpu::Buffer,
    gates: wgpu::Buffer,
    gate_up: wgpu::Buffer,
    act: wgpu::Buffer,
    out: wgpu::Buffer,
    /// The shared experts' [gate | up] and SwiGLU output.
    shared: Option<(wgpu::Buffer, wgpu::Buffer)>,
    stats: wgpu::Buffer,
}

impl MoeBuffers {
    fn new(ctx: &GpuContext, s: &ModelShape, pass: Pass, layers: usize) -> anyhow::Result<Self> {
        let t = pass.rows() as u64;
        let route = route_layout(s, pass);
        let tk = u64::from(route.assignments());
        let fep = padded_cols(s.d_ff_expert as usize) as u64;
        let dp = padded_cols(s.d_model as usize) as u64;
        let ep = padded_cols(s.n_experts as usize) as u64;
        let shared = if s.n_shared_experts > 0 {
            let fsp = padded_cols((s.n_shared_experts * s.d_ff_expert) as usize) as u64;
            Some((
                ctx.storage_zeroed("shared-gate-up", t * 2 * fsp * 4)?,
                ctx.storage_zeroed("shared-swiglu", t * fsp * 4)?,
            ))
        } else {
            None
        };
        Ok(Self {
            route,
            logits: ctx.storage_zeroed("router-logits", t * ep * 4)?,
            routing: ctx.storage_zeroed("routing", route.route_bytes())?,
            gates: ctx.storage_zeroed("expert-gates", route.gate_bytes())?,
            gate_up: ctx.storage_zeroed("experts-gate-up", tk * 2 * fep * 4)?,
            act: ctx.storage_zeroed("experts-swiglu", tk * fep * 4)?,
            out: ctx.storage_zeroed("experts-out", tk * dp * 4)?,
            shared,
            stats: ctx.storage_zeroed("experts-touched", layers.max(1) as u64 * 4)?,
        })
    }
}

/// Appends h += swiglu(a · W_gate|up) · W_down: a dense feed-forward block (or the shared
/// experts'), `scratch` holding [gate | up] and the SwiGLU output.
pub(crate) fn swiglu_block(
    ctx: &GpuContext,
    kernels: &Kernels,
    list: &mut Vec<Dispatch>,
    (t, input, lda4): (usize, &wgpu::Buffer, usize),
    (gate_up, down): (&GpuMatrix, &GpuMatrix),
    (gu, act): (&wgpu::Buffer, &wgpu::Buffer),
    hidden: &wgpu::Buffer,
) -> anyhow::Result<()> {
    project(
        ctx,
        &kernels.matmul,
        list,
        (t, input, lda4),
        gate_up,
        (gu, false),
    )?;
    let f4 = gate_up.n / 8; // [gate | up], each half padded to 4
    list.push(kernels.swiglu.dispatch(ctx, t as u32, f4, gu, act)?);
    project(
        ctx,
        &kernels.matmul,
        list,
        (t, act, f4 as usize),
        down,
        (hidden, true),
    )
}

/// Appends a mixture-of-experts feed-forward block: router, expert products over the router's
/// blocks, the weighted combine into `hidden`, and the shared experts.
#[allow(clippy::too_many_arguments)]
fn moe_block(
    ctx: &GpuContext,
    kernels: &Kernels,
    list: &mut Vec<Dispatch>,
    (layer, s, pass): (usize, ModelShape, Pass),
    w: &GpuMoe,
    b: &MoeBuffers,
    normed: &wgpu::Buffer,
    hidden: &wgpu::Buffer,
) -> anyhow::Result<()> {
    let t = pass.rows();
    let moe = kernels.moe(ctx)?;
    let dp = padded_cols(s.d_model as usize) as u32;
    let fep = padded_cols(s.d_ff_expert as usize) as u32;
    project(
        ctx,
        &kernels.matmul,
        list,
        (t, normed, (dp / 4) as usize),
        &w.router,
        (&b.logits, false),
    )?;
    list.push(moe.route(
        ctx,
        b.route,
        layer as u32,
        (&b.logits, w.router.n),
        &b.routing,
        &b.gates,
        &b.stats,
    )?);
    for slab in &w.gate_up {
        let pr = ExpertProduct {
            n: 2 * fep,
            k4: dp / 4,
            a: normed,
            lda4: dp / 4,
            gather: true,
            out: &b.gate_up,
            ldc: 2 * fep,
        };
        list.push(moe.experts(ctx, b.route, &b.routing, slab, &pr)?);
    }
    list.push(
        kernels
            .swiglu
            .dispatch(ctx, b.route.assignments(), fep / 4, &b.gate_up, &b.act)?,
    );
    for slab in &w.down {
        let pr = ExpertProduct {
            n: dp,
            k4: fep / 4,
            a: &b.act,
            lda4: fep / 4,
            gather: false,
            out: &b.out,
            ldc: dp,
        };
        list.push(moe.experts(ctx, b.route, &b.routing, slab, &pr)?);
    }
    list.push(moe.combine(ctx, b.route, (&b.routing, &b.gates), &b.out, dp / 4, hidden)?);
    if let (Some((gate_up, down)), Some((gu, act))) = (&w.shared, &b.shared) {
        swiglu_block(
            ctx,
            kernels,
            list,
            (t, normed, (dp / 4) as usize),
            (gate_up, down),
            (gu, act),
            hidden,
        )?;
    }
    Ok(())
}

/// The heads of a layer of `s` whose caches hold `cache_len` positions in `kv` and whose
/// attention spans `window` positions (0: all).
/// RMSNorm over `n` rows of a residual stream `d` floats wide, each row padded to `dp`
/// floats (whole vec4s), from row 0.
pub(crate) fn norm_rows(n: usize, d: usize, dp: usize) -> NormRows {
    NormRows {
        rows: n as u32,
        d: d as u32,
        in_off4: 0,
        in_stride4: (dp / 4) as u32,
    }
}

pub(crate) fn heads_of(s: &ModelShape, cache_len: u32, window: u32, kv: KvDtype) -> Heads {
    Heads {
        n_heads: s.n_heads,
        n_kv_heads: s.n_kv_heads,
        head_dim: s.head_dim,
        cache_len,
        window,
        sinks: s.attention_sinks > 0,
        score_dim: 0,
        kv,
    }
}

enum Attention {
    Prefill(PrefillAttention),
    PrefillCoop(PrefillAttentionCoop),
    Decode(DecodeAttention, wgpu::Buffer),
}

impl Attention {
    /// The kernel a pass's tier runs for `heads`; decode's with its partials buffer.
    fn new(ctx: &GpuContext, cfg: &KernelConfig, heads: Heads, pass: Pass) -> anyhow::Result<Self> {
        Ok(match pass.phase {
            // The cooperative-matrix tier takes attention too, where the heads fit it.
            Phase::Prefill => match attention_coop::for_tiles(ctx, cfg.matmul.tiles, &heads) {
                Ok((support, size)) => {
                    Self::PrefillCoop(PrefillAttentionCoop::new(ctx, heads, &support, size)?)
                }
                Err(_) => Self::Prefill(PrefillAttention::new(
                    ctx,
                    heads,
                    cfg.wg,
                    cfg.prefill_attention_tiles,
                )?),
            },
            Phase::Decode => {
                // Heads wider than registers hold (MLA's absorbed latent rows) take the layout
                // that spreads a head over a workgroup's lanes, and so do heads wider than a
                // small subgroup's lanes hold.
                use crate::kernels::attention::{DecodeAttentionLayout, subgroup_layout_holds};
                let layout = match (heads.head_dim, cfg.decode_attention_layout) {
                    (257.., DecodeAttentionLayout::Invocation) => DecodeAttentionLayout::Workgroup,
                    (d, DecodeAttentionLayout::Subgroup)
                        if !ctx
                            .traits()
                            .subgroups
                            .is_some_and(|s| subgroup_layout_holds(d, s)) =>
                    {
                        DecodeAttentionLayout::Workgroup
                    }
                    (_, layout) => layout,
                };
                let kernel = DecodeAttention::new(
                    ctx,
                    heads,
                    layout,
                    cfg.decode_attention_wg(),
                    cfg.decode_split_for(pass.len),
                )?;
                let partials = ctx.storage_zeroed(
                    "partials",
                    kernel.partials_bytes(pass.batch, pass.cache_len()),
                )?;
                Self::Decode(kernel, partials)
            }
        })
    }

    /// Appends the launches of attention over one layer's caches, with its sink logits where
    /// the heads have sinks.
    fn dispatch(
        &self,
        ctx: &GpuContext,
        list: &mut Vec<Dispatch>,
        pass: Pass,
        (qkv, k, v): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
        sinks: Option<&wgpu::Buffer>,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<()> {
        let prompt = (pass.batch, pass.len);
        let cached = (pass.batch, pass.cache_len());
        match self {
            Self::Prefill(kernel) => {
                list.push(kernel.dispatch(ctx, prompt, qkv, k, v, sinks, out)?)
            }
            Self::PrefillCoop(kernel) => {
                list.push(kernel.dispatch(ctx, prompt, qkv, k, v, sinks, out)?)
            }
            Self::Decode(kernel, partials) => {
                list.extend(kernel.dispatch(ctx, cached, qkv, k, v, sinks, partials, out)?)
            }
        }
        Ok(())
    }
}

/// Appends the launches of out (+)= input · W, one per slab. `input` is (rows, buffer, vec4s
/// per row); `out` is (buffer, accumulate).
pub(crate) fn project(
    ctx: &GpuContext,
    matmul: &Matmul,
    list: &mut Vec<Dispatch>,
    (rows, input, lda4): (usize, &wgpu::Buffer, usize),
    w: &GpuMatrix,
    (out, accumulate): (&wgpu::Buffer, bool),
) -> anyhow::Result<()> {
    for slab in &w.slabs {
        list.push(matmul.dispatch(
            ctx,
            &Product {
                m: rows as u32,
                k4: w.k4,
                n: slab.n,
                a: input,
                a_off4: 0,
                lda4: lda4 as u32,
                w: &slab.buffer,
                c: out,
                c_off: slab.c_off,
                ldc: w.n,
                accumulate,
            },
        )?);
    }
    Ok(())
}
