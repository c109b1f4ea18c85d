//! The serving engine on the device: `slots` sequences, each with its own KV cache (one row of
//! every layer's shared cache buffer), and one batched pass per engine step.
//!
//! A step's rows are laid out [prefill chunk | decode rows]; a small buffer names each row's
//! (slot, position), so RoPE, the cache write and attention work at ragged depths in one pass
//! (the `*_rows` entries of the RoPE and attention shaders). The products run over all the
//! step's rows at once; the LM head reads the decode rows and the chunk's last row. Passes are
//! recorded once per (chunk length, decode rows) and replayed; only the row buffer changes
//! between steps.

use std::collections::HashMap;
use std::rc::Rc;

use crate::gpu::{Dispatch, GpuContext};
use crate::kernels::KvDtype;
use crate::kernels::attention::{DecodeAttention, Heads, PrefillAttentionRows};
use crate::kernels::layout::{pad_matrix, padded_cols};
use crate::kernels::rmsnorm::NormRows;
use crate::kernels::rope::{self, RopeGeometry};
use crate::model::ModelShape;
use crate::serving::schedule::StepPlan;
use crate::workload::forward::{Kernels, heads_of, norm_rows, project};
use crate::workload::synthetic::input_states;
use crate::workload::weights::GpuWeights;

/// Sizes an engine is built for.
#[derive(Debug, Clone, Copy)]
pub struct EngineSize {
    /// Request slots (sequences of the KV cache).
    pub slots: u32,
    /// Positions each slot's cache holds: prompt plus output.
    pub cache_len: u32,
    /// Most rows one step runs (the step token budget).
    pub max_rows: u32,
}

/// KV-cache (in `kv`) and activation bytes of an engine of `size` for `shape` over `layers`
/// layers, for planning: (bytes in all, largest single buffer).
pub fn engine_bytes(
    shape: &ModelShape,
    layers: u32,
    size: EngineSize,
    (split_len, kv): (u32, KvDtype),
) -> (u64, u64) {
    let t = u64::from(size.max_rows);
    let dp = padded_cols(shape.d_model as usize) as u64;
    let fp = padded_cols(shape.d_ff as usize) as u64;
    let vp = padded_cols(shape.vocab as usize) as u64;
    let slots = u64::from(size.slots);
    let cache = kv.buffer_bytes(
        slots * u64::from(shape.n_kv_heads) * u64::from(size.cache_len),
        shape.head_dim as usize,
    );
    let partials = slots
        * u64::from(shape.n_heads)
        * u64::from(size.cache_len.div_ceil(split_len))
        * u64::from(shape.head_dim / 4 + 1)
        * 16;
    let buffers = [
        (t * dp * 4, 4),
        (t * shape.qkv_dim() as u64 * 4, 1),
        (t * shape.q_dim() as u64 * 4, 1),
        (t * 2 * fp * 4, 1),
        (t * fp * 4, 1),
        ((slots + 1) * vp * 4, 1),
        (
            u64::from(size.cache_len) * u64::from(shape.head_dim / 2) * 8,
            1,
        ),
        (cache, 2 * u64::from(layers)),
        (partials, 1),
    ];
    (
        buffers.iter().map(|(b, n)| b * n).sum(),
        buffers.iter().map(|(b, _)| *b).max().unwrap_or(0),
    )
}

/// The engine's buffers and its recorded passes.
pub struct Engine<'a> {
    ctx: &'a GpuContext,
    loaded: Rc<(GpuWeights, Kernels)>,
    size: EngineSize,
    prefill_attention: PrefillAttentionRows,
    decode_attention: DecodeAttention,
    rows: wgpu::Buffer,
    x0: wgpu::Buffer,
    hidden: wgpu::Buffer,
    normed: wgpu::Buffer,
    qkv: wgpu::Buffer,
    attn: wgpu::Buffer,
    gate_up: wgpu::Buffer,
    act: wgpu::Buffer,
    final_rows: wgpu::Buffer,
    logits: wgpu::Buffer,
    rope_table: wgpu::Buffer,
    caches: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    partials: wgpu::Buffer,
    passes: HashMap<(u32, u32), Vec<Dispatch>>,
}

impl<'a> Engine<'a> {
    /// Allocates the caches and activations for `size` (caches zeroed: every position a
    /// request reads, it has written first).
    pub fn new(
        ctx: &'a GpuContext,
        loaded: Rc<(GpuWeights, Kernels)>,
        size: EngineSize,
    ) -> anyhow::Result<Self> {
        let s = loaded.0.model.shape;
        let layers = loaded.0.layers_run as usize;
        let t = size.max_rows as usize;
        let (d, dp) = (s.d_model as usize, padded_cols(s.d_model as usize));
        let fp = padded_cols(s.d_ff as usize);
        let vp = padded_cols(s.vocab as usize);
        let f32s = |n: usize| (n * 4) as u64;
        let heads = Heads {
            sinks: false,
            ..heads_of(&s, size.cache_len, 0, loaded.0.model.kv)
        };
        let cfg = &loaded.1.config;
        let cache_bytes = heads.cache_bytes(size.slots);
        let mut caches = Vec::with_capacity(layers);
        for _ in 0..layers {
            caches.push((
                ctx.storage_zeroed("k-cache", cache_bytes)?,
                ctx.storage_zeroed("v-cache", cache_bytes)?,
            ));
        }
        let decode_attention = DecodeAttention::new_rows(
            ctx,
            heads,
            cfg.decode_attention_layout,
            cfg.decode_attention_wg(),
            cfg.decode_split_len,
        )?;
        let partials = ctx.storage_zeroed(
            "partials",
            decode_attention.partials_bytes(size.slots, size.cache_len),
        )?;
        let engine = Self {
            ctx,
            prefill_attention: PrefillAttentionRows::new(
                ctx,
                heads,
                cfg.wg,
                cfg.prefill_attention_tiles,
            )?,
            decode_attention,
            rows: ctx.storage_zeroed("rows", (t * 8) as u64)?,
            x0: ctx.storage_with(
                "x0",
                bytemuck::cast_slice(&pad_matrix(&input_states(t, d), t, d, t)),
            )?,
            hidden: ctx.storage_zeroed("h", f32s(t * dp))?,
            normed: ctx.storage_zeroed("a", f32s(t * dp))?,
            qkv: ctx.storage_zeroed("qkv", f32s(t * s.qkv_dim()))?,
            attn: ctx.storage_zeroed("attn", f32s(t * s.q_dim()))?,
            gate_up: ctx.storage_zeroed("gate-up", f32s(t * 2 * fp))?,
            act: ctx.storage_zeroed("swiglu", f32s(t * fp))?,
            final_rows: ctx.storage_zeroed("final", f32s((size.slots as usize + 1) * dp))?,
            logits: ctx.storage_zeroed("logits", f32s((size.slots as usize + 1) * vp))?,
            rope_table: ctx.storage_with(
                "rope",
                bytemuck::cast_slice(&rope::table(size.cache_len as usize, s.head_dim as usize)),
            )?,
            caches,
            partials,
            passes: HashMap::new(),
            loaded,
            size,
        };
        ctx.take_device_error()?;
        Ok(engine)
    }

    /// The rows of `plan`: (slot, position) of each, chunk first.
    pub fn rows_of(plan: &StepPlan) -> Vec<[u32; 2]> {
        let mut rows = Vec::with_capacity(plan.rows() as usize);
        if let Some(c) = plan.chunk {
            rows.extend((c.start..c.start + c.len).map(|p| [c.slot, p]));
        }
        rows.extend(plan.decode.iter().map(|r| [r.slot, r.pos]));
        rows
    }

    /// Runs one step and gives its GPU-timed duration in seconds.
    pub fn step(&mut self, plan: &StepPlan) -> anyhow::Result<f64> {
        let rows = Self::rows_of(plan);
        let chunk = plan.chunk.map_or(0, |c| c.len);
        self.time(&rows, chunk, 1).map(|t| t[0])
    }

    /// Times `runs` executions of the pass for `rows` ((slot, position) each, the first `chunk`
    /// of them a prefill chunk), for the isolated measurements.
    pub fn time(&mut self, rows: &[[u32; 2]], chunk: u32, runs: u32) -> anyhow::Result<Vec<f64>> {
        let n = rows.len() as u32;
        anyhow::ensure!(
            n >= 1
                && n <= self.size.max_rows
                && n - chunk <= self.size.slots
                && rows
                    .iter()
                    .all(|&[s, p]| s < self.size.slots && p < self.size.cache_len),
            "serving step rows out of range: {rows:?}"
        );
        self.ctx
            .queue
            .write_buffer(&self.rows, 0, bytemuck::cast_slice(rows));
        let key = (chunk, n - chunk);
        if !self.passes.contains_key(&key) {
            let pass = self.record(key.0, key.1)?;
            self.passes.insert(key, pass);
        }
        self.ctx.time_runs(&self.passes[&key], runs)
    }

    /// Records the pass of `chunk` prefill rows followed by `decode` decode rows.
    fn record(&self, chunk: u32, decode: u32) -> anyhow::Result<Vec<Dispatch>> {
        let ctx = self.ctx;
        let (weights, kernels) = (&self.loaded.0, &self.loaded.1);
        let s = weights.model.shape;
        let t = (chunk + decode) as usize;
        let (d, dp) = (s.d_model as usize, padded_cols(s.d_model as usize));
        let rows = |n: usize| norm_rows(n, d, dp);
        let geometry = RopeGeometry {
            tokens: t as u32,
            seq_len: 1,
            pos_base: 0,
            n_heads: s.n_heads,
            n_kv_heads: s.n_kv_heads,
            head_dim: s.head_dim,
            cache_len: self.size.cache_len,
            kv: weights.model.kv,
        };
        let mut list =
            vec![
                kernels
                    .copy
                    .dispatch(ctx, (t * dp / 4) as u32, &self.x0, &self.hidden)?,
            ];
        for (l, (k_cache, v_cache)) in self.caches.iter().enumerate() {
            let w = weights.layer(l);
            list.push(kernels.norm.dispatch(
                ctx,
                rows(t),
                &self.hidden,
                &w.attn_norm,
                &self.normed,
            )?);
            project(
                ctx,
                &kernels.matmul,
                &mut list,
                (t, &self.normed, dp / 4),
                w.qkv()?,
                (&self.qkv, false),
            )?;
            list.push(kernels.rope.dispatch_rows(
                ctx,
                geometry,
                self.size.slots,
                &self.qkv,
                &self.rows,
                &self.rope_table,
                k_cache,
                v_cache,
            )?);
            if chunk > 0 {
                list.push(self.prefill_attention.dispatch(
                    ctx,
                    (chunk, self.size.slots),
                    &self.qkv,
                    &self.rows,
                    k_cache,
                    v_cache,
                    None,
                    &self.attn,
                )?);
            }
            if decode > 0 {
                list.extend(self.decode_attention.dispatch_rows(
                    ctx,
                    (chunk, decode, self.size.slots, self.size.cache_len),
                    &self.qkv,
                    &self.rows,
                    k_cache,
                    v_cache,
                    None,
                    &self.partials,
                    &self.attn,
                )?);
            }
            project(
                ctx,
                &kernels.matmul,
                &mut list,
                (t, &self.attn, s.q_dim() / 4),
                &w.o,
                (&self.hidden, true),
            )?;
            list.push(kernels.norm.dispatch(
                ctx,
                rows(t),
                &self.hidden,
                &w.ffn_norm,
                &self.normed,
            )?);
            let crate::workload::weights::GpuFfn::Dense { gate_up, down } = &w.ffn else {
                anyhow::bail!("the serving engine runs dense feed-forward blocks only");
            };
            crate::workload::forward::swiglu_block(
                ctx,
                kernels,
                &mut list,
                (t, &self.normed, dp / 4),
                (gate_up, down),
                (&self.gate_up, &self.act),
                &self.hidden,
            )?;
        }
        // The LM head reads the chunk's last row (a first token when the chunk ends the
        // prompt) and every decode row: contiguous rows from chunk - 1.
        let first = chunk.saturating_sub(1) as usize;
        let heads = t - first;
        let last = NormRows {
            rows: heads as u32,
            d: d as u32,
            in_off4: (first * dp / 4) as u32,
            in_stride4: (dp / 4) as u32,
        };
        list.push(kernels.norm.dispatch(
            ctx,
            last,
            &self.hidden,
            &weights.final_norm,
            &self.final_rows,
        )?);
        project(
            ctx,
            &kernels.matmul,
            &mut list,
            (heads, &self.final_rows, dp / 4),
            &weights.lm_head,
            (&self.logits, false),
        )?;
        ctx.take_device_error()?;
        Ok(list)
    }

    /// The final hidden rows of the last step: rows × d_model (for the engine's test).
    pub fn read_hidden(&self, rows: usize) -> anyhow::Result<Vec<f32>> {
        let d = self.loaded.0.model.shape.d_model as usize;
        Ok(crate::kernels::layout::unpad_rows(
            &self.ctx.read_f32(&self.hidden, rows * padded_cols(d))?,
            rows,
            d,
        ))
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::KernelConfig;
    use crate::kernels::verify::{NMSE_F32_MODEL, compare};
    use crate::model::{Pass, presets};
    use crate::serving::schedule::{Chunk, DecodeRow};
    use crate::workload::reference;
    use crate::workload::synthetic::SyntheticModel;

    /// A whole prompt prefilled as one chunk into slot 1 of the engine, beside a decode row of
    /// slot 0, gives the reference prefill's final hidden states: the rows kernels put the
    /// chunk in its own sequence at positions 0.. and the decode row does not disturb it.
    #[test]
    fn a_chunk_in_a_shared_cache_matches_the_reference_prefill() {
        for kv in KvDtype::ALL {
            chunk_beside_a_decode_row(kv);
        }
    }

    /// [`a_chunk_in_a_shared_cache_matches_the_reference_prefill`] with the caches in `kv`
    /// (tiny's head_dim 24: one padded q8_0 block per row).
    fn chunk_beside_a_decode_row(kv: KvDtype) {
        let ctx = test_context();
        let model = SyntheticModel {
            shape: presets::find("tiny").unwrap().shape,
            dtype: crate::kernels::WeightDtype::F32,
            expert_dtype: crate::kernels::WeightDtype::F32,
            kv,
            shared_layers: false,
        };
        let layers = model.shape.n_layers;
        let weights = GpuWeights::upload(ctx, model, layers, &mut |_, _| {}).unwrap();
        let kernels = Kernels::new(
            ctx,
            KernelConfig::default_for(ctx.traits()),
            model.formats(),
            false,
        )
        .unwrap();
        let size = EngineSize {
            slots: 2,
            cache_len: 32,
            max_rows: 32,
        };
        let mut engine = Engine::new(ctx, Rc::new((weights, kernels)), size).unwrap();
        let prompt = 13;
        let plan = StepPlan {
            chunk: Some(Chunk {
                slot: 1,
                start: 0,
                len: prompt,
                last: true,
            }),
            decode: vec![DecodeRow { slot: 0, pos: 20 }],
        };
        assert!(engine.step(&plan).unwrap() > 0.0);
        let got = engine.read_hidden(prompt as usize).unwrap();
        let want = reference::forward(&model, layers, Pass::prefill(1, prompt));
        let c = compare(&got, &want.hidden, NMSE_F32_MODEL, "engine prefill".into());
        assert!(c.failure.is_none(), "KV {kv:?}: {c:?}");
    }
}
