//! A model's synthetic weights on the device: each matrix split into column slabs that fit one
//! binding (lavapipe binds at most 128 MiB; a 70B-shape LM head is over 2 GiB even in f16).

use super::synthetic::{Matrix, Norm, SyntheticModel, WeightMatrix};
use crate::gpu::GpuContext;
use crate::kernels::WeightDtype;
use crate::kernels::layout::padded_cols;

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
    /// [q | k | v] projection.
    pub qkv: GpuMatrix,
    /// Attention output projection.
    pub o: GpuMatrix,
    /// Gamma before the feed-forward block.
    pub ffn_norm: wgpu::Buffer,
    /// [gate | up] projection.
    pub gate_up: GpuMatrix,
    /// Down projection.
    pub down: GpuMatrix,
}

/// All weights a forward pass reads.
#[derive(Debug)]
pub struct GpuWeights {
    /// What they were generated from.
    pub model: SyntheticModel,
    /// Layers a pass runs through.
    pub layers_run: u32,
    /// Distinct layer weights: `layers_run` of them, or 1 when shared.
    layers: Vec<GpuLayer>,
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

/// Bytes of one layer's weights, as uploaded (padding included).
pub fn layer_bytes(model: &SyntheticModel) -> u64 {
    [Matrix::Qkv, Matrix::O, Matrix::GateUp, Matrix::Down]
        .iter()
        .map(|&m| matrix_bytes(&model.matrix(0, m)))
        .sum::<u64>()
        + 2 * padded_cols(model.shape.d_model as usize) as u64 * 4
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
        let distinct = if model.shared_layers { 1 } else { layers_run };
        let total = u64::from(distinct) * layer_bytes(&model) + head_bytes(&model);
        let mut done = 0u64;
        let mut matrix = |m: WeightMatrix, label: &str| -> anyhow::Result<GpuMatrix> {
            let ranges = slab_ranges(m.k, m.padded_n(), m.dtype, ctx.max_binding_bytes());
            let mut slabs = Vec::with_capacity(ranges.len());
            for (s, e) in ranges {
                let data = m.dtype.encode_rows(&m.slab(s, e), padded_cols(m.k));
                slabs.push(Slab {
                    buffer: ctx.storage_with(label, &data)?,
                    c_off: s as u32,
                    n: (e - s) as u32,
                });
                done += data.len() as u64;
                progress(done, total);
            }
            ctx.take_device_error()?;
            Ok(GpuMatrix {
                k4: (padded_cols(m.k) / 4) as u32,
                n: m.padded_n() as u32,
                slabs,
            })
        };
        let mut layers = Vec::with_capacity(distinct as usize);
        for l in 0..distinct as usize {
            layers.push(GpuLayer {
                qkv: matrix(model.matrix(l, Matrix::Qkv), "w-qkv")?,
                o: matrix(model.matrix(l, Matrix::O), "w-o")?,
                gate_up: matrix(model.matrix(l, Matrix::GateUp), "w-gate-up")?,
                down: matrix(model.matrix(l, Matrix::Down), "w-down")?,
                attn_norm: norm_buffer(ctx, &model, l, Norm::Attn)?,
                ffn_norm: norm_buffer(ctx, &model, l, Norm::Ffn)?,
            });
        }
        let lm_head = matrix(model.matrix(0, Matrix::LmHead), "w-lm-head")?;
        Ok(Self {
            model,
            layers_run,
            layers,
            final_norm: norm_buffer(ctx, &model, 0, Norm::Final)?,
            lm_head,
        })
    }

    /// The weights layer `l` runs with.
    pub fn layer(&self, l: usize) -> &GpuLayer {
        &self.layers[if self.model.shared_layers { 0 } else { l }]
    }
}

fn norm_buffer(
    ctx: &GpuContext,
    model: &SyntheticModel,
    layer: usize,
    n: Norm,
) -> anyhow::Result<wgpu::Buffer> {
    let d = model.shape.d_model as usize;
    let mut gamma = model.norm(layer, n);
    gamma.resize(padded_cols(d), 0.0);
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
