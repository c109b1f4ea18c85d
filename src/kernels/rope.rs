//! `shaders/rope_cache.wgsl`: rotary position embedding of q and k, and the KV-cache write.

use super::{ROPE_CACHE, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

/// RoPE base frequency (the original RoFormer / Llama 2 value).
pub const THETA: f64 = 10_000.0;

/// Where the tokens of one call sit and how heads and caches are shaped.
#[derive(Debug, Clone, Copy)]
pub struct RopeGeometry {
    /// Tokens (rows of qkv) in this call.
    pub tokens: u32,
    /// Tokens per sequence in this call: the prompt length for prefill, 1 for decode.
    pub seq_len: u32,
    /// Position of each sequence's first token in this call (0 for prefill, the depth for
    /// decode).
    pub pos_base: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads.
    pub n_kv_heads: u32,
    /// Width of a head (a multiple of 4).
    pub head_dim: u32,
    /// Positions each cache holds per sequence and head.
    pub cache_len: u32,
}

impl RopeGeometry {
    /// Floats in one qkv row.
    pub fn qkv_stride(&self) -> u32 {
        (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
    }

    /// Floats in one layer's K (or V) cache for `batch` sequences.
    pub fn cache_floats(&self, batch: u32) -> u64 {
        u64::from(batch)
            * u64::from(self.n_kv_heads)
            * u64::from(self.cache_len)
            * u64::from(self.head_dim)
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tokens: u32,
    seq_len: u32,
    pos_base: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    qkv_stride: u32,
    cache_len: u32,
}

/// cos and sin of every position and rotation pair, computed in f64: row `pos`, column `i`.
pub fn table(positions: usize, head_dim: usize) -> Vec<[f32; 2]> {
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(positions * half);
    for pos in 0..positions {
        for i in 0..half {
            let angle = pos as f64 * inv_freq(i, head_dim);
            out.push([angle.cos() as f32, angle.sin() as f32]);
        }
    }
    out
}

fn inv_freq(i: usize, head_dim: usize) -> f64 {
    THETA.powf(-2.0 * i as f64 / head_dim as f64)
}

/// The RoPE + cache-write kernel.
pub struct RopeCache {
    pipeline: wgpu::ComputePipeline,
    wg: u32,
}

impl RopeCache {
    /// Builds the pipeline.
    pub fn new(ctx: &GpuContext, wg: u32) -> anyhow::Result<Self> {
        let pipeline = ctx.pipeline(
            &ROPE_CACHE,
            WeightDtype::F32,
            "rope_cache",
            &[("WG", f64::from(wg))],
        )?;
        Ok(Self { pipeline, wg })
    }

    /// Rotates the first `g.tokens` rows of `qkv` in place and writes their k and v into the
    /// caches (of `sequences` sequences) at the sequence and position `rows[t]` = (sequence,
    /// position) names for row t: sequences at ragged depths in one call (serving). `g`'s
    /// seq_len and pos_base are unused; the caller keeps every position below `g.cache_len`
    /// and every sequence below `sequences` (the shader runs without bounds checks).
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_rows(
        &self,
        ctx: &GpuContext,
        g: RopeGeometry,
        sequences: u32,
        qkv: &wgpu::Buffer,
        rows: &wgpu::Buffer,
        rope: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        anyhow::ensure!(
            g.head_dim.is_multiple_of(4)
                && rows.size() >= u64::from(g.tokens) * 8
                && qkv.size() >= u64::from(g.tokens) * u64::from(g.qkv_stride()) * 4
                && rope.size() >= u64::from(g.cache_len) * u64::from(g.head_dim / 2) * 8
                && k_cache.size() >= g.cache_floats(sequences) * 4
                && v_cache.size() >= g.cache_floats(sequences) * 4,
            "rope rows: buffers too small for {g:?}"
        );
        // The context caches pipelines: only the first call builds it.
        let pipeline = ctx.pipeline(
            &ROPE_CACHE,
            WeightDtype::F32,
            "rope_cache_rows",
            &[("WG", f64::from(self.wg))],
        )?;
        let params = Params {
            tokens: g.tokens,
            seq_len: 1,
            pos_base: 0,
            n_heads: g.n_heads,
            n_kv_heads: g.n_kv_heads,
            head_dim: g.head_dim,
            qkv_stride: g.qkv_stride(),
            cache_len: g.cache_len,
        };
        let groups = [
            (g.head_dim / 2).div_ceil(self.wg),
            g.n_heads + g.n_kv_heads,
            g.tokens,
        ];
        ctx.dispatch(
            &pipeline,
            &params,
            &[(1, qkv), (2, rope), (3, k_cache), (4, v_cache), (5, rows)],
            groups,
        )
    }

    /// Rotates `qkv` in place and writes k and v into the caches. `rope` is [`table`] for at
    /// least `pos_base + seq_len` positions.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        g: RopeGeometry,
        qkv: &wgpu::Buffer,
        rope: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let batch = g.tokens / g.seq_len;
        anyhow::ensure!(
            g.head_dim.is_multiple_of(4)
                && g.tokens.is_multiple_of(g.seq_len)
                && g.pos_base + g.seq_len <= g.cache_len,
            "rope geometry {g:?} is inconsistent"
        );
        let positions = u64::from(g.pos_base + g.seq_len);
        anyhow::ensure!(
            qkv.size() >= u64::from(g.tokens) * u64::from(g.qkv_stride()) * 4
                && rope.size() >= positions * u64::from(g.head_dim / 2) * 8
                && k_cache.size() >= g.cache_floats(batch) * 4
                && v_cache.size() >= g.cache_floats(batch) * 4,
            "rope buffers too small for {g:?}"
        );
        let params = Params {
            tokens: g.tokens,
            seq_len: g.seq_len,
            pos_base: g.pos_base,
            n_heads: g.n_heads,
            n_kv_heads: g.n_kv_heads,
            head_dim: g.head_dim,
            qkv_stride: g.qkv_stride(),
            cache_len: g.cache_len,
        };
        let groups = [
            (g.head_dim / 2).div_ceil(self.wg),
            g.n_heads + g.n_kv_heads,
            g.tokens,
        ];
        ctx.dispatch(
            &self.pipeline,
            &params,
            &[(1, qkv), (2, rope), (3, k_cache), (4, v_cache)],
            groups,
        )
    }
}

/// Rotates one head (`x.len()` = head_dim) for position `pos`, in f64.
pub fn reference_rotate(x: &mut [f64], pos: usize) {
    let half = x.len() / 2;
    for i in 0..half {
        let angle = pos as f64 * inv_freq(i, x.len());
        let (s, c) = angle.sin_cos();
        let (x0, x1) = (x[i], x[i + half]);
        x[i] = x0 * c - x1 * s;
        x[i + half] = x1 * c + x0 * s;
    }
}

/// The Rust layout of [`Params`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn params_layout() -> super::HostLayout {
    super::host_layout!(Params {
        tokens,
        seq_len,
        pos_base,
        n_heads,
        n_kv_heads,
        head_dim,
        qkv_stride,
        cache_len
    })
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::random_values;
    use crate::kernels::verify::{NMSE_F32, compare};

    /// Prefill-style (several tokens per sequence from 0) and decode-style (one token at a
    /// depth) calls: rotated q in place, rotated k and raw v at the right cache slots.
    #[test]
    fn rotates_q_and_fills_the_caches() {
        let ctx = test_context();
        let kernel = RopeCache::new(ctx, 64).unwrap();
        for (batch, seq_len, pos_base) in [(2u32, 5u32, 0u32), (3, 1, 17)] {
            let g = RopeGeometry {
                tokens: batch * seq_len,
                seq_len,
                pos_base,
                n_heads: 4,
                n_kv_heads: 2,
                head_dim: 12,
                cache_len: 20,
            };
            let (hd, stride) = (g.head_dim as usize, g.qkv_stride() as usize);
            let qkv = random_values(g.tokens as usize * stride, 51, 1.0);
            let qkv_buf = ctx.storage_with("qkv", bytemuck::cast_slice(&qkv)).unwrap();
            let rope_buf = ctx
                .storage_with(
                    "rope",
                    bytemuck::cast_slice(&table(g.cache_len as usize, hd)),
                )
                .unwrap();
            let cache_bytes = g.cache_floats(batch) * 4;
            let k_buf = ctx.storage_zeroed("k", cache_bytes).unwrap();
            let v_buf = ctx.storage_zeroed("v", cache_bytes).unwrap();
            let d = kernel
                .dispatch(ctx, g, &qkv_buf, &rope_buf, &k_buf, &v_buf)
                .unwrap();
            ctx.execute(&d).unwrap();
            let got_q = ctx.read_f32(&qkv_buf, qkv.len()).unwrap();
            let got_k = ctx.read_f32(&k_buf, (cache_bytes / 4) as usize).unwrap();
            let got_v = ctx.read_f32(&v_buf, (cache_bytes / 4) as usize).unwrap();

            let (mut want_q, mut want_k, mut want_v) = (Vec::new(), Vec::new(), Vec::new());
            let (mut have_q, mut have_k, mut have_v) = (Vec::new(), Vec::new(), Vec::new());
            for t in 0..g.tokens as usize {
                let (b, pos) = (
                    t / seq_len as usize,
                    pos_base as usize + t % seq_len as usize,
                );
                let row = &qkv[t * stride..(t + 1) * stride];
                for h in 0..g.n_heads as usize {
                    let mut x: Vec<f64> = row[h * hd..(h + 1) * hd]
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect();
                    reference_rotate(&mut x, pos);
                    want_q.extend(x);
                    have_q
                        .extend_from_slice(&got_q[t * stride + h * hd..t * stride + (h + 1) * hd]);
                }
                for kv in 0..g.n_kv_heads as usize {
                    let k_at = (g.n_heads as usize + kv) * hd;
                    let v_at = (g.n_heads + g.n_kv_heads) as usize * hd + kv * hd;
                    let mut x: Vec<f64> =
                        row[k_at..k_at + hd].iter().map(|&v| f64::from(v)).collect();
                    reference_rotate(&mut x, pos);
                    want_k.extend(x);
                    want_v.extend(row[v_at..v_at + hd].iter().map(|&v| f64::from(v)));
                    let slot = ((b * g.n_kv_heads as usize + kv) * g.cache_len as usize + pos) * hd;
                    have_k.extend_from_slice(&got_k[slot..slot + hd]);
                    have_v.extend_from_slice(&got_v[slot..slot + hd]);
                }
            }
            for (name, have, want) in [
                ("q", have_q, want_q),
                ("k", have_k, want_k),
                ("v", have_v, want_v),
            ] {
                let c = compare(&have, &want, NMSE_F32, name.into());
                assert!(
                    c.failure.is_none(),
                    "{name} batch {batch} seq {seq_len}: {c:?}"
                );
            }
        }
    }

    /// Rows at ragged (sequence, position): each row's q rotated for its position, its k and v
    /// written at its own sequence and position, nothing else touched.
    #[test]
    fn rows_name_their_own_sequence_and_position() {
        let ctx = test_context();
        let kernel = RopeCache::new(ctx, 64).unwrap();
        let rows: [[u32; 2]; 4] = [[1, 0], [1, 1], [0, 13], [2, 19]];
        let g = RopeGeometry {
            tokens: rows.len() as u32,
            seq_len: 1,
            pos_base: 0,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 12,
            cache_len: 20,
        };
        let sequences = 3;
        let (hd, stride) = (g.head_dim as usize, g.qkv_stride() as usize);
        let qkv = random_values(rows.len() * stride, 57, 1.0);
        let qkv_buf = ctx.storage_with("qkv", bytemuck::cast_slice(&qkv)).unwrap();
        let rows_buf = ctx
            .storage_with("rows", bytemuck::cast_slice(&rows))
            .unwrap();
        let rope_buf = ctx
            .storage_with(
                "rope",
                bytemuck::cast_slice(&table(g.cache_len as usize, hd)),
            )
            .unwrap();
        let floats = g.cache_floats(sequences) as usize;
        let k_buf = ctx.storage_zeroed("k", (floats * 4) as u64).unwrap();
        let v_buf = ctx.storage_zeroed("v", (floats * 4) as u64).unwrap();
        let d = kernel
            .dispatch_rows(
                ctx, g, sequences, &qkv_buf, &rows_buf, &rope_buf, &k_buf, &v_buf,
            )
            .unwrap();
        ctx.execute(&d).unwrap();
        let got_q = ctx.read_f32(&qkv_buf, qkv.len()).unwrap();
        let got_k = ctx.read_f32(&k_buf, floats).unwrap();
        let got_v = ctx.read_f32(&v_buf, floats).unwrap();
        let (nh, nkv) = (g.n_heads as usize, g.n_kv_heads as usize);
        let mut want_q: Vec<f64> = qkv.iter().map(|&x| f64::from(x)).collect();
        let mut want_k = vec![0.0f64; floats];
        let mut want_v = vec![0.0f64; floats];
        for (t, &[seq, pos]) in rows.iter().enumerate() {
            let (seq, pos) = (seq as usize, pos as usize);
            for head in 0..nh + nkv {
                let at = t * stride + head * hd;
                let mut x: Vec<f64> = qkv[at..at + hd].iter().map(|&v| f64::from(v)).collect();
                reference_rotate(&mut x, pos);
                if head < nh {
                    want_q[at..at + hd].copy_from_slice(&x);
                } else {
                    let kvh = head - nh;
                    let c = ((seq * nkv + kvh) * g.cache_len as usize + pos) * hd;
                    want_k[c..c + hd].copy_from_slice(&x);
                    let v_at = t * stride + (nh + nkv + kvh) * hd;
                    for i in 0..hd {
                        want_v[c + i] = f64::from(qkv[v_at + i]);
                    }
                }
            }
        }
        for (got, want, what) in [
            (&got_q, &want_q, "q"),
            (&got_k, &want_k, "k cache"),
            (&got_v, &want_v, "v cache"),
        ] {
            let c = compare(got, want, NMSE_F32, what.into());
            assert!(c.failure.is_none(), "{what}: {c:?}");
        }
    }
}
