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
//!     gu = a · W_gate|up
//!     m = silu(gate) · up
//!     h += m · W_down
//! f = rmsnorm(last row of each sequence of h) · γ_final
//! logits = f · W_lm
//! ```
//!
//! Every execution starts from the same x0 and writes the same cache positions, so replaying it
//! for every timed sample measures the same work and leaves the same outputs.

use super::synthetic::{SyntheticModel, initial_cache, input_states};
use super::weights::{GpuMatrix, GpuWeights};
use crate::InputError;
use crate::gpu::{DeviceFacts, Dispatch, GpuContext, PassRecorder};
use crate::kernels::attention::{DecodeAttention, Heads, PrefillAttention};
use crate::kernels::attention_coop::{self, PrefillAttentionCoop};
use crate::kernels::copy::Copy;
use crate::kernels::layout::{pad_matrix, padded_cols, unpad_rows};
use crate::kernels::matmul::{Matmul, Product};
use crate::kernels::rmsnorm::{NormRows, RmsNorm};
use crate::kernels::rope::{self, RopeCache, RopeGeometry};
use crate::kernels::swiglu::SwiGlu;
use crate::kernels::{KernelConfig, WeightDtype};
use crate::model::{ModelShape, Pass, Phase};

/// The kernels a forward pass uses, built once per device, weight type and configuration.
pub struct Kernels {
    /// The choices they were built with.
    pub config: KernelConfig,
    pub(crate) matmul: Matmul,
    pub(crate) norm: RmsNorm,
    pub(crate) rope: RopeCache,
    pub(crate) swiglu: SwiGlu,
    pub(crate) copy: Copy,
}

impl Kernels {
    /// Builds every pipeline except attention's, which depends on the head shape;
    /// `every_row_on_tiles` sends few-row products to the many-row kernel too (`--math coopmat`).
    pub fn new(
        ctx: &GpuContext,
        config: KernelConfig,
        dtype: WeightDtype,
        every_row_on_tiles: bool,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            matmul: Matmul::new(ctx, config.matmul, dtype)?.every_row_on_tiles(every_row_on_tiles),
            norm: RmsNorm::new(ctx, config.norm_wg)?,
            rope: RopeCache::new(ctx, config.rope_wg())?,
            swiglu: SwiGlu::new(ctx, config.swiglu_wg())?,
            copy: Copy::new(ctx)?,
            config,
        })
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

/// Every buffer a pass through `layers` layers allocates besides the weights.
pub fn activation_buffers(
    shape: &ModelShape,
    layers: u32,
    pass: Pass,
    split_len: u32,
) -> Vec<BufferNeed> {
    let t = pass.rows() as u64;
    let b = u64::from(pass.batch);
    let dp = padded_cols(shape.d_model as usize) as u64;
    let fp = padded_cols(shape.d_ff as usize) as u64;
    let vp = padded_cols(shape.vocab as usize) as u64;
    let cache_len = u64::from(pass.cache_len());
    let need = |name, bytes, count| BufferNeed { name, bytes, count };
    let mut out = vec![
        need("hidden states", t * dp * 4, 3),
        need("q|k|v", t * shape.qkv_dim() as u64 * 4, 1),
        need("attention output", t * shape.q_dim() as u64 * 4, 1),
        need("gate|up", t * 2 * fp * 4, 1),
        need("swiglu output", t * fp * 4, 1),
        need("logits", b * vp * 4, 1),
        need(
            "rope table",
            cache_len * u64::from(shape.head_dim / 2) * 8,
            1,
        ),
        need(
            "KV cache",
            b * u64::from(shape.n_kv_heads) * cache_len * u64::from(shape.head_dim) * 4,
            2 * u64::from(layers),
        ),
    ];
    if pass.phase == Phase::Decode {
        let splits = cache_len.div_ceil(u64::from(split_len));
        out.push(need(
            "attention partials",
            b * u64::from(shape.n_heads) * splits * (u64::from(shape.head_dim / 4) + 1) * 16,
            1,
        ));
    }
    out
}

/// Checks that every buffer of a pass fits one binding and the grid limits; the error names the
/// flag to change.
pub fn check_bindings(
    device: &DeviceFacts,
    shape: &ModelShape,
    pass: Pass,
    split_len: u32,
) -> Result<(), InputError> {
    let what = match pass.phase {
        Phase::Prefill => "--batch or --prompt-len",
        Phase::Decode => "--batch or --depth",
    };
    let tokens = pass.rows();
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
    for need in activation_buffers(shape, 1, pass, split_len) {
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

/// A recorded forward pass and the buffers it reads back.
pub struct ForwardPass {
    /// What one execution computes.
    pub pass: Pass,
    dispatches: Vec<Dispatch>,
    shape: ModelShape,
    hidden: wgpu::Buffer,
    final_rows: wgpu::Buffer,
    logits: wgpu::Buffer,
}

impl PassRecorder for ForwardPass {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
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

        let x0 = ctx.storage_with(
            "x0",
            bytemuck::cast_slice(&pad_matrix(&input_states(t, d), t, d, t)),
        )?;
        let hidden = ctx.storage_zeroed("h", f32s(t * dp))?;
        let normed = ctx.storage_zeroed("a", f32s(t * dp))?;
        let qkv = ctx.storage_zeroed("qkv", f32s(t * s.qkv_dim()))?;
        let attn = ctx.storage_zeroed("attn", f32s(t * s.q_dim()))?;
        let gate_up = ctx.storage_zeroed("gate-up", f32s(t * 2 * fp))?;
        let act = ctx.storage_zeroed("swiglu", f32s(t * fp))?;
        let final_rows = ctx.storage_zeroed("final", f32s(b * dp))?;
        let logits = ctx.storage_zeroed("logits", f32s(b * vp))?;
        let rope_table = ctx.storage_with(
            "rope",
            bytemuck::cast_slice(&rope::table(cache_len as usize, s.head_dim as usize)),
        )?;
        let cache_dims = [
            b,
            s.n_kv_heads as usize,
            cache_len as usize,
            s.head_dim as usize,
        ];
        // Decode reads `len` positions of history: fill them; prefill writes its own.
        let filled = match pass.phase {
            Phase::Prefill => 0,
            Phase::Decode => pass.len as usize,
        };
        let mut caches = Vec::with_capacity(layers);
        for l in 0..layers {
            let k = initial_cache(l, false, cache_dims, filled);
            let v = initial_cache(l, true, cache_dims, filled);
            caches.push((
                ctx.storage_with("k-cache", bytemuck::cast_slice(&k))?,
                ctx.storage_with("v-cache", bytemuck::cast_slice(&v))?,
            ));
        }
        ctx.take_device_error()?;

        let heads = Heads {
            n_heads: s.n_heads,
            n_kv_heads: s.n_kv_heads,
            head_dim: s.head_dim,
            cache_len,
            window: 0,
            sinks: false,
        };
        let cfg = &kernels.config;
        let mut list = vec![
            kernels
                .copy
                .dispatch(ctx, (t * dp / 4) as u32, &x0, &hidden)?,
        ];
        let rows = |n: usize| NormRows {
            rows: n as u32,
            d: d as u32,
            in_off4: 0,
            in_stride4: (dp / 4) as u32,
        };
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
        };
        let attention = match pass.phase {
            // The cooperative-matrix tier takes attention too, where the heads fit it.
            Phase::Prefill => match attention_coop::for_tiles(ctx, cfg.matmul.tiles, &heads) {
                Ok((support, size)) => {
                    Attention::PrefillCoop(PrefillAttentionCoop::new(ctx, heads, &support, size)?)
                }
                Err(_) => Attention::Prefill(PrefillAttention::new(
                    ctx,
                    heads,
                    cfg.wg,
                    cfg.prefill_attention_tiles,
                )?),
            },
            Phase::Decode => {
                let kernel = DecodeAttention::new(
                    ctx,
                    heads,
                    cfg.decode_attention_layout,
                    cfg.decode_attention_wg(),
                    cfg.decode_split_for(pass.len),
                )?;
                let partials =
                    ctx.storage_zeroed("partials", kernel.partials_bytes(pass.batch, cache_len))?;
                Attention::Decode(kernel, partials)
            }
        };
        for (l, (k_cache, v_cache)) in caches.iter().enumerate() {
            let w = weights.layer(l);
            list.push(
                kernels
                    .norm
                    .dispatch(ctx, rows(t), &hidden, &w.attn_norm, &normed)?,
            );
            project(
                ctx,
                &kernels.matmul,
                &mut list,
                (t, &normed, dp / 4),
                &w.qkv,
                (&qkv, false),
            )?;
            list.push(
                kernels
                    .rope
                    .dispatch(ctx, geometry, &qkv, &rope_table, k_cache, v_cache)?,
            );
            match &attention {
                Attention::Prefill(kernel) => list.push(kernel.dispatch(
                    ctx,
                    (pass.batch, pass.len),
                    &qkv,
                    k_cache,
                    v_cache,
                    &attn,
                )?),
                Attention::PrefillCoop(kernel) => list.push(kernel.dispatch(
                    ctx,
                    (pass.batch, pass.len),
                    &qkv,
                    k_cache,
                    v_cache,
                    &attn,
                )?),
                Attention::Decode(kernel, partials) => list.extend(kernel.dispatch(
                    ctx,
                    (pass.batch, cache_len),
                    &qkv,
                    k_cache,
                    v_cache,
                    partials,
                    &attn,
                )?),
            }
            project(
                ctx,
                &kernels.matmul,
                &mut list,
                (t, &attn, s.q_dim() / 4),
                &w.o,
                (&hidden, true),
            )?;
            list.push(
                kernels
                    .norm
                    .dispatch(ctx, rows(t), &hidden, &w.ffn_norm, &normed)?,
            );
            project(
                ctx,
                &kernels.matmul,
                &mut list,
                (t, &normed, dp / 4),
                &w.gate_up,
                (&gate_up, false),
            )?;
            list.push(
                kernels
                    .swiglu
                    .dispatch(ctx, t as u32, (fp / 4) as u32, &gate_up, &act)?,
            );
            project(
                ctx,
                &kernels.matmul,
                &mut list,
                (t, &act, fp / 4),
                &w.down,
                (&hidden, true),
            )?;
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
            dispatches: list,
            shape: s,
            hidden,
            final_rows,
            logits,
        })
    }

    /// Launches per execution.
    pub fn launches(&self) -> usize {
        self.dispatches.len()
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

enum Attention {
    Prefill(PrefillAttention),
    PrefillCoop(PrefillAttentionCoop),
    Decode(DecodeAttention, wgpu::Buffer),
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
