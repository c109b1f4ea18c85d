//! A model's synthetic weights on the device: each matrix split into column slabs that fit one
//! binding (lavapipe binds at most 128 MiB; a 70B-shape LM head is over 2 GiB even in f16).

use super::synthetic::{Matrix, Norm, SyntheticModel, WeightMatrix};
use crate::gpu::GpuContext;
use crate::kernels::WeightDtype;
use crate::kernels::layout::padded_cols;
use crate::kernels::moe::ExpertSlab;

/// Upload bytes after which the staged copies are flushed: the most host memory an upload holds
/// beyond the weights themselves.
const FLUSH_BYTES: u64 = 256 << 20;

/// A slab of a weight matrix: a range of its outputs, one row of K each.
#[derive(Debug)]
pub struct Slab {
    /// `n` rows of K = 4 · `k4` weights in the model's format.
    pub buffer: wgpu::Buffer,
    /// First output of the slab.
    pub c_off: u32,
    /// Outputs in the slab.
    pub n: u32,
}

/// A weight matrix on the device.
#[derive(Debug)]
pub struct GpuMatrix {
    /// K / 4, padded.
    pub k4: u32,
    /// Outputs, padded to a multiple of 4 (the row width of the activations it writes).
    pub n: u32,
    /// Slabs covering outputs 0..n in order.
    pub slabs: Vec<Slab>,
}

/// One layer's weights on the device.
#[derive(Debug)]
pub struct GpuLayer {
    /// Gamma before attention.
    pub attn_norm: wgpu::Buffer,
    /// The projections before attention.
    pub attention: GpuAttention,
    /// Attention output projection.
    pub o: GpuMatrix,
    /// Gamma before the feed-forward block.
    pub ffn_norm: wgpu::Buffer,
    /// The feed-forward block.
    pub ffn: GpuFfn,
    /// One attention-sink logit per query head, where the model has sinks.
    pub sinks: Option<wgpu::Buffer>,
}

impl GpuLayer {
    /// The fused [q | k | v] projection of a grouped-query attention layer.
    pub fn qkv(&self) -> anyhow::Result<&GpuMatrix> {
        match &self.attention {
            GpuAttention::Gqa { qkv } => Ok(qkv),
            GpuAttention::Mla(_) => {
                anyhow::bail!("a multi-head latent attention layer has no fused q|k|v projection")
            }
        }
    }
}

/// A layer's projections before attention.
#[derive(Debug)]
pub enum GpuAttention {
    /// Grouped-query attention: one fused [q | k | v] projection.
    Gqa {
        /// [q | k | v] projection.
        qkv: GpuMatrix,
    },
    /// Multi-head latent attention.
    Mla(GpuMla),
}

/// A multi-head latent attention layer's weights before the output projection.
#[derive(Debug)]
pub struct GpuMla {
    /// [q_a | c | k_rope] (or [q | c | k_rope]) from the layer input.
    pub a: GpuMatrix,
    /// Gamma and decompression of the query's low-rank projection, where the model has one.
    pub q_b: Option<(wgpu::Buffer, GpuMatrix)>,
    /// Gamma of the latent.
    pub kv_norm: wgpu::Buffer,
    /// [k_nope | v] per head from the latent (one slab: the absorbed form reads W_UV in it).
    pub kv_b: GpuMatrix,
    /// W_UK of every head, transposed: n_heads · kv_lora_rank rows of qk_nope_head_dim, in
    /// `uk_dtype` ([`SyntheticModel::mla_uk_rows`]).
    pub uk: wgpu::Buffer,
    /// The format of `uk`.
    pub uk_dtype: crate::kernels::WeightDtype,
}

/// A layer's feed-forward weights.
#[derive(Debug)]
pub enum GpuFfn {
    /// One SwiGLU block of width d_ff.
    Dense {
        /// [gate | up] projection.
        gate_up: GpuMatrix,
        /// Down projection.
        down: GpuMatrix,
    },
    /// Routed experts and the shared ones.
    Moe(GpuMoe),
}

/// A mixture-of-experts layer's feed-forward weights.
#[derive(Debug)]
pub struct GpuMoe {
    /// d_model → n_experts logits.
    pub router: GpuMatrix,
    /// Every routed expert's [gate | up], in slabs of whole experts.
    pub gate_up: Vec<ExpertSlab>,
    /// Every routed expert's down projection, in slabs of whole experts.
    pub down: Vec<ExpertSlab>,
    /// The shared experts' [gate | up] and down, as one dense block.
    pub shared: Option<(GpuMatrix, GpuMatrix)>,
}

/// All weights a forward pass reads.
#[derive(Debug)]
pub struct GpuWeights {
    /// What they were generated from.
    pub model: SyntheticModel,
    /// Layers a pass runs through.
    pub layers_run: u32,
    /// Distinct layer weights: `layers_run` of them, or one of each kind (dense,
    /// mixture-of-experts) when shared.
    layers: Vec<GpuLayer>,
    /// The distinct weights each layer of a pass runs with.
    layer_index: Vec<usize>,
    /// Gamma before the LM head.
    pub final_norm: wgpu::Buffer,
    /// The LM head.
    pub lm_head: GpuMatrix,
}

/// Output ranges of the slabs of a matrix with `n` outputs of `k` inputs in `dtype`, each slab's
/// buffer at most `max_bytes` (rows, word padding and spare word included). Slabs are as equal
/// as possible, and multiples of 64 outputs where the matrix is split at all, so each keeps
/// whole tiles.
pub fn slab_ranges(k: usize, n: usize, dtype: WeightDtype, max_bytes: u64) -> Vec<(usize, usize)> {
    let row_bytes = dtype.row_bytes(padded_cols(k)) as u64;
    let max_rows = (max_bytes.saturating_sub(8) / row_bytes).max(1) as usize;
    if n <= max_rows {
        return vec![(0, n)];
    }
    let align = if max_rows >= 64 { 64 } else { 1 };
    let count = n.div_ceil(max_rows / align * align);
    let per = n.div_ceil(count).div_ceil(align) * align;
    (0..n).step_by(per).map(|s| (s, (s + per).min(n))).collect()
}

/// Bytes of one layer's weights, as uploaded (padding included): a dense layer, or with `moe`
/// a mixture-of-experts one (all its experts).
pub fn layer_bytes(model: &SyntheticModel, moe: bool) -> u64 {
    let s = &model.shape;
    let mut matrices = vec![Matrix::O];
    let mut mla_extra = 0;
    if s.is_mla() {
        matrices.extend([Matrix::MlaA, Matrix::MlaKvb]);
        if s.q_lora_rank > 0 {
            matrices.push(Matrix::MlaQb);
        }
        let uk_dtype = model.mla_uk_dtype();
        mla_extra = u64::from(s.n_heads * s.kv_lora_rank)
            * uk_dtype.row_bytes(s.qk_nope_head_dim as usize) as u64
            + u64::from(s.q_lora_rank + s.kv_lora_rank) * 4;
    } else {
        matrices.push(Matrix::Qkv);
    }
    if moe {
        matrices.push(Matrix::Router);
        if model.shape.n_shared_experts > 0 {
            matrices.extend([Matrix::SharedGateUp, Matrix::SharedDown]);
        }
    } else {
        matrices.extend([Matrix::GateUp, Matrix::Down]);
    }
    let experts = if moe {
        u64::from(model.shape.n_experts)
            * (matrix_bytes(&model.matrix(0, Matrix::ExpertGateUp(0)))
                + matrix_bytes(&model.matrix(0, Matrix::ExpertDown(0))))
    } else {
        0
    };
    matrices
        .iter()
        .map(|&m| matrix_bytes(&model.matrix(0, m)))
        .sum::<u64>()
        + experts
        + mla_extra
        + 2 * padded_cols(model.shape.d_model as usize) as u64 * 4
}

/// Bytes of the distinct layer weights of a pass through `layers_run` layers: every layer's, or
/// with `shared` one of each kind.
pub fn layers_bytes(model: &SyntheticModel, layers_run: u32, shared: bool) -> u64 {
    let moe = model.shape.moe_layers(layers_run);
    let dense = layers_run - moe;
    let count = |n: u32| u64::from(if shared { n.min(1) } else { n });
    count(dense) * layer_bytes(model, false) + count(moe) * layer_bytes(model, true)
}

/// Bytes of the final norm and the LM head.
pub fn head_bytes(model: &SyntheticModel) -> u64 {
    matrix_bytes(&model.matrix(0, Matrix::LmHead))
        + padded_cols(model.shape.d_model as usize) as u64 * 4
}

fn matrix_bytes(m: &WeightMatrix) -> u64 {
    (m.padded_n() * m.dtype.row_bytes(padded_cols(m.k))) as u64
}

impl GpuWeights {
    /// Generates and uploads the weights of `layers_run` layers (one set if the model shares
    /// them) and the head. `progress(done, total)` counts bytes.
    pub fn upload(
        ctx: &GpuContext,
        model: SyntheticModel,
        layers_run: u32,
        progress: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<Self> {
        // Shared weights: the first layer of each kind stands for every layer of that kind.
        let kinds: Vec<bool> = (0..layers_run)
            .map(|l| model.shape.layer_kind(l, layers_run).moe)
            .collect();
        let distinct: Vec<usize> = (0..kinds.len())
            .filter(|&l| {
                !model.shared_layers || kinds.iter().position(|&k| k == kinds[l]) == Some(l)
            })
            .collect();
        let layer_index = (0..kinds.len())
            .map(|l| {
                distinct
                    .iter()
                    .position(|&d| d == l || (model.shared_layers && kinds[d] == kinds[l]))
                    .expect("every kind has a distinct layer")
            })
            .collect();
        let total = layers_bytes(&model, layers_run, model.shared_layers) + head_bytes(&model);
        let (mut done, mut unflushed) = (0u64, 0u64);
        let max_binding = ctx.max_binding_bytes();
        let mut upload = |label: &str, data: Vec<u8>| -> anyhow::Result<wgpu::Buffer> {
            let buffer = ctx.storage_with(label, &data)?;
            done += data.len() as u64;
            unflushed += data.len() as u64;
            // Bounds the host copies wgpu stages the uploads in (see `flush_uploads`).
            if unflushed >= FLUSH_BYTES {
                ctx.flush_uploads()?;
                unflushed = 0;
            }
            progress(done, total);
            Ok(buffer)
        };
        let mut layers = Vec::with_capacity(distinct.len());
        for &l in &distinct {
            let ffn = if kinds[l] {
                let s = &model.shape;
                let shared = if s.n_shared_experts > 0 {
                    Some((
                        upload_matrix(
                            ctx,
                            model.matrix(l, Matrix::SharedGateUp),
                            "w-shared-gate-up",
                            &mut upload,
                        )?,
                        upload_matrix(
                            ctx,
                            model.matrix(l, Matrix::SharedDown),
                            "w-shared-down",
                            &mut upload,
                        )?,
                    ))
                } else {
                    None
                };
                let router = upload_matrix(
                    ctx,
                    model.matrix(l, Matrix::Router),
                    "w-router",
                    &mut upload,
                )?;
                let experts = |which: fn(u32) -> Matrix| -> Vec<WeightMatrix> {
                    (0..s.n_experts)
                        .map(|e| model.matrix(l, which(e)))
                        .collect()
                };
                GpuFfn::Moe(GpuMoe {
                    router,
                    gate_up: expert_slabs(
                        &experts(Matrix::ExpertGateUp),
                        max_binding,
                        &mut upload,
                    )?,
                    down: expert_slabs(&experts(Matrix::ExpertDown), max_binding, &mut upload)?,
                    shared,
                })
            } else {
                GpuFfn::Dense {
                    gate_up: upload_matrix(
                        ctx,
                        model.matrix(l, Matrix::GateUp),
                        "w-gate-up",
                        &mut upload,
                    )?,
                    down: upload_matrix(ctx, model.matrix(l, Matrix::Down), "w-down", &mut upload)?,
                }
            };
            let attention = if model.shape.is_mla() {
                GpuAttention::Mla(upload_mla(ctx, &model, l, &mut upload)?)
            } else {
                GpuAttention::Gqa {
                    qkv: upload_matrix(ctx, model.matrix(l, Matrix::Qkv), "w-qkv", &mut upload)?,
                }
            };
            layers.push(GpuLayer {
                attention,
                o: upload_matrix(ctx, model.matrix(l, Matrix::O), "w-o", &mut upload)?,
                ffn,
                attn_norm: norm_buffer(ctx, &model, l, Norm::Attn)?,
                ffn_norm: norm_buffer(ctx, &model, l, Norm::Ffn)?,
                sinks: match model.shape.attention_sinks {
                    0 => None,
                    _ => Some(ctx.storage_with("sinks", bytemuck::cast_slice(&model.sinks(l)))?),
                },
            });
        }
        let lm_head = upload_matrix(
            ctx,
            model.matrix(0, Matrix::LmHead),
            "w-lm-head",
            &mut upload,
        )?;
        ctx.flush_uploads()?;
        Ok(Self {
            model,
            layers_run,
            layers,
            layer_index,
            final_norm: norm_buffer(ctx, &model, 0, Norm::Final)?,
            lm_head,
        })
    }

    /// The weights layer `l` runs with.
    pub fn layer(&self, l: usize) -> &GpuLayer {
        &self.layers[self.layer_index[l]]
    }
}

/// Uploads the weights of an MLA layer's attention before its output projection.
fn upload_mla(
    ctx: &GpuContext,
    model: &SyntheticModel,
    l: usize,
    upload: &mut dyn FnMut(&str, Vec<u8>) -> anyhow::Result<wgpu::Buffer>,
) -> anyhow::Result<GpuMla> {
    let kv_b = upload_matrix(ctx, model.matrix(l, Matrix::MlaKvb), "w-kv-b", upload)?;
    anyhow::ensure!(
        kv_b.slabs.len() == 1,
        "MLA's W_kv_b ({} outputs of {}) needs one binding but this adapter binds at most {} MiB",
        kv_b.n,
        kv_b.k4 * 4,
        ctx.max_binding_bytes() >> 20
    );
    let q_b = match model.shape.q_lora_rank {
        0 => None,
        _ => Some((
            gamma_buffer(ctx, model.norm(l, Norm::MlaQ))?,
            upload_matrix(ctx, model.matrix(l, Matrix::MlaQb), "w-q-b", upload)?,
        )),
    };
    let (rows, uk_dtype) = model.mla_uk_rows(l);
    let nope = model.shape.qk_nope_head_dim as usize;
    Ok(GpuMla {
        a: upload_matrix(ctx, model.matrix(l, Matrix::MlaA), "w-mla-a", upload)?,
        q_b,
        kv_norm: gamma_buffer(ctx, model.norm(l, Norm::MlaKv))?,
        kv_b,
        uk: upload("w-uk", uk_dtype.encode_rows(&rows, nope))?,
        uk_dtype,
    })
}

/// Uploads a matrix in column slabs that each fit one binding.
fn upload_matrix(
    ctx: &GpuContext,
    m: WeightMatrix,
    label: &str,
    upload: &mut dyn FnMut(&str, Vec<u8>) -> anyhow::Result<wgpu::Buffer>,
) -> anyhow::Result<GpuMatrix> {
    let ranges = slab_ranges(m.k, m.padded_n(), m.dtype, ctx.max_binding_bytes());
    let mut slabs = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        let data = m.dtype.encode_rows(&m.slab(s, e), padded_cols(m.k));
        slabs.push(Slab {
            buffer: upload(label, data)?,
            c_off: s as u32,
            n: (e - s) as u32,
        });
    }
    ctx.take_device_error()?;
    Ok(GpuMatrix {
        k4: (padded_cols(m.k) / 4) as u32,
        n: m.padded_n() as u32,
        slabs,
    })
}

/// Every expert's matrix (all of one shape) in slabs of whole experts, each within one binding
/// of `max_bytes`: the rows of consecutive experts back to back, so expert e's row n is row
/// (e − first) · n_rows + n of its slab.
fn expert_slabs(
    experts: &[WeightMatrix],
    max_bytes: u64,
    upload: &mut dyn FnMut(&str, Vec<u8>) -> anyhow::Result<wgpu::Buffer>,
) -> anyhow::Result<Vec<ExpertSlab>> {
    let Some(first) = experts.first() else {
        return Ok(Vec::new());
    };
    let (kp, rows) = (padded_cols(first.k), first.padded_n());
    let expert_bytes = (rows * first.dtype.row_bytes(kp)) as u64;
    let per_slab = (max_bytes.saturating_sub(8) / expert_bytes).max(1) as usize;
    anyhow::ensure!(
        expert_bytes + 8 <= max_bytes,
        "one expert's matrix is {} MiB but this adapter binds at most {} MiB",
        expert_bytes >> 20,
        max_bytes >> 20
    );
    let mut slabs = Vec::new();
    for (i, chunk) in experts.chunks(per_slab).enumerate() {
        let values: Vec<f32> = chunk.iter().flat_map(|m| m.slab(0, rows)).collect();
        slabs.push(ExpertSlab {
            buffer: upload("w-experts", first.dtype.encode_rows(&values, kp))?,
            first: (i * per_slab) as u32,
            count: chunk.len() as u32,
        });
    }
    Ok(slabs)
}

fn norm_buffer(
    ctx: &GpuContext,
    model: &SyntheticModel,
    layer: usize,
    n: Norm,
) -> anyhow::Result<wgpu::Buffer> {
    gamma_buffer(ctx, model.norm(layer, n))
}

/// A norm's gamma, padded with zeros to a multiple of 4.
fn gamma_buffer(ctx: &GpuContext, mut gamma: Vec<f32>) -> anyhow::Result<wgpu::Buffer> {
    gamma.resize(padded_cols(gamma.len()), 0.0);
    ctx.storage_with("gamma", bytemuck::cast_slice(&gamma))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slabs_fit_the_binding_and_cover_every_column() {
        // llama3-8b's gate|up in f32: 28672 outputs of 4096 = 448 MiB, lavapipe binds 128 MiB.
        let max = 128 << 20;
        let ranges = slab_ranges(4096, 28672, WeightDtype::F32, max);
        assert_eq!(ranges.first().unwrap().0, 0);
        assert_eq!(ranges.last().unwrap().1, 28672);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1, w[1].0, "contiguous");
            assert_eq!(w[0].0 % 64, 0, "whole tiles");
        }
        for &(s, e) in &ranges {
            assert!((4096 * 4 * (e - s)) as u64 <= max);
        }
        assert_eq!(ranges.len(), 4);
        assert_eq!(
            slab_ranges(96, 504, WeightDtype::F32, max),
            vec![(0, 504)],
            "small matrices stay whole"
        );
        // A single row larger than the limit still gets one row per slab.
        assert_eq!(slab_ranges(1000, 2, WeightDtype::F32, 100).len(), 2);
        // Block formats: the buffer's spare word counts against the limit too.
        for &(s, e) in &slab_ranges(4096, 28672, WeightDtype::Q4_0, 16 << 20) {
            assert!(((e - s) * WeightDtype::Q4_0.row_bytes(4096) + 8) as u64 <= 16 << 20);
        }
    }
}
