//! `shaders/rope_cache.wgsl`: rotary position embedding of q and k, and the KV-cache write.

use super::{KvDtype, ROPE_CACHE, WeightDtype};
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
    /// Storage format of the caches: the kernel rounds or quantizes k and v into it.
    pub kv: KvDtype,
}

impl RopeGeometry {
    /// Floats in one qkv row.
    pub fn qkv_stride(&self) -> u32 {
        (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
    }

    /// Cached rows (one head at one position) of one layer's K (or V) cache for `batch`
    /// sequences.
    pub fn cache_rows(&self, batch: u32) -> u64 {
        u64::from(batch) * u64::from(self.n_kv_heads) * u64::from(self.cache_len)
    }

    /// Bytes of one layer's K (or V) cache for `batch` sequences, in [`Self::kv`]'s layout.
    pub fn cache_bytes(&self, batch: u32) -> u64 {
        self.kv
            .buffer_bytes(self.cache_rows(batch), self.head_dim as usize)
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

/// The RoPE + cache-write kernel, in every KV format (its pipelines are built on first use of
/// each: the context caches them).
pub struct RopeCache {
    wg: u32,
}

impl RopeCache {
    /// Builds the pipeline of the f32 cache (a shader or constant the driver rejects fails
    /// here, not at the first dispatch).
    pub fn new(ctx: &GpuContext, wg: u32) -> anyhow::Result<Self> {
        let kernel = Self { wg };
        kernel.pipeline(ctx, KvDtype::F32, "rope_cache")?;
        Ok(kernel)
    }

    fn pipeline(
        &self,
        ctx: &GpuContext,
        kv: KvDtype,
        entry: &str,
    ) -> anyhow::Result<wgpu::ComputePipeline> {
        ctx.pipeline_kv(
            &ROPE_CACHE,
            (WeightDtype::F32, kv),
            entry,
            &[("WG", f64::from(self.wg))],
        )
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
                && buffers_hold(&g, g.cache_len, sequences, [qkv, rope, k_cache, v_cache]),
            "rope rows: buffers too small for {g:?}"
        );
        self.launch(
            ctx,
            g,
            "rope_cache_rows",
            (1, 0),
            &[(1, qkv), (2, rope), (3, k_cache), (4, v_cache), (5, rows)],
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
        let positions = g.pos_base + g.seq_len;
        anyhow::ensure!(
            buffers_hold(&g, positions, batch, [qkv, rope, k_cache, v_cache]),
            "rope buffers too small for {g:?}"
        );
        self.launch(
            ctx,
            g,
            "rope_cache",
            (g.seq_len, g.pos_base),
            &[(1, qkv), (2, rope), (3, k_cache), (4, v_cache)],
        )
    }

    /// Launches `entry` on `bindings` over `g`'s rotation pairs, heads and rows, with the
    /// sequence length and first position given (the row layout reads neither).
    fn launch(
        &self,
        ctx: &GpuContext,
        g: RopeGeometry,
        entry: &str,
        (seq_len, pos_base): (u32, u32),
        bindings: &[(u32, &wgpu::Buffer)],
    ) -> anyhow::Result<Dispatch> {
        let pipeline = self.pipeline(ctx, g.kv, entry)?;
        let params = Params {
            tokens: g.tokens,
            seq_len,
            pos_base,
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
        ctx.dispatch(&pipeline, &params, bindings, groups)
    }
}

/// Whether `qkv` holds `g`'s rows, `rope` a [`table`] of `positions` positions and each cache
/// `sequences` sequences (the shader runs without bounds checks).
fn buffers_hold(
    g: &RopeGeometry,
    positions: u32,
    sequences: u32,
    [qkv, rope, k_cache, v_cache]: [&wgpu::Buffer; 4],
) -> bool {
    qkv.size() >= u64::from(g.tokens) * u64::from(g.qkv_stride()) * 4
        && rope.size() >= u64::from(positions) * u64::from(g.head_dim / 2) * 8
        && k_cache.size() >= g.cache_bytes(sequences)
        && v_cache.size() >= g.cache_bytes(sequences)
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

    /// Head widths of one q8_0 block padded (12: rows of 34 bytes, so every other row starts
    /// mid-word and neighbouring rows share a word), two blocks the second padded (40) and two
    /// whole blocks (64).
    const HEAD_DIMS: [u32; 3] = [12, 40, 64];

    fn to64(x: &[f32]) -> Vec<f64> {
        x.iter().map(|&v| f64::from(v)).collect()
    }

    /// What a cache in `kv` holds for `values` (rows of `hd`), in f64: the host's own rounding
    /// or quantization of the values the reference computed.
    fn stored(kv: KvDtype, values: &[f64], hd: usize) -> Vec<f64> {
        let f: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        to64(&kv.quantize_rows(&f, hd))
    }

    /// Prefill-style (several tokens per sequence from 0) and decode-style (one token at a
    /// depth) calls in every KV format: rotated q in place, rotated k and raw v stored at the
    /// right cache rows as the format holds them, and the rows around them (synthetic history,
    /// sharing words with the written rows in q8_0) unchanged.
    #[test]
    fn rotates_q_and_fills_the_caches() {
        let ctx = test_context();
        let kernel = RopeCache::new(ctx, 64).unwrap();
        for kv in KvDtype::ALL {
            for head_dim in HEAD_DIMS {
                for (batch, seq_len, pos_base) in [(2u32, 5u32, 0u32), (3, 1, 17)] {
                    let g = RopeGeometry {
                        tokens: batch * seq_len,
                        seq_len,
                        pos_base,
                        n_heads: 4,
                        n_kv_heads: 2,
                        head_dim,
                        cache_len: 20,
                        kv,
                    };
                    let rows = (0..g.tokens)
                        .map(|t| [t / seq_len, pos_base + t % seq_len])
                        .collect::<Vec<_>>();
                    check(ctx, &kernel, g, batch, &rows, false);
                }
            }
        }
    }

    /// Rows at ragged (sequence, position), adjacent positions among them: each row's q
    /// rotated for its position, its k and v stored at its own sequence and position, every
    /// other cache row unchanged; in every KV format.
    #[test]
    fn rows_name_their_own_sequence_and_position() {
        let ctx = test_context();
        let kernel = RopeCache::new(ctx, 64).unwrap();
        let rows: [[u32; 2]; 5] = [[1, 0], [1, 1], [0, 13], [2, 19], [1, 2]];
        for kv in KvDtype::ALL {
            for head_dim in HEAD_DIMS {
                let g = RopeGeometry {
                    tokens: rows.len() as u32,
                    seq_len: 1,
                    pos_base: 0,
                    n_heads: 4,
                    n_kv_heads: 2,
                    head_dim,
                    cache_len: 20,
                    kv,
                };
                check(ctx, &kernel, g, 3, &rows, true);
            }
        }
    }

    /// Runs the kernel (`dispatch_rows` when `by_rows`, else `dispatch`) for `g` with qkv row t
    /// at `rows[t]` = (sequence, position), over caches of `sequences` sequences that hold
    /// synthetic history, and checks q and both whole caches against the reference.
    fn check(
        ctx: &GpuContext,
        kernel: &RopeCache,
        g: RopeGeometry,
        sequences: u32,
        rows: &[[u32; 2]],
        by_rows: bool,
    ) {
        let kv = g.kv;
        let (hd, stride) = (g.head_dim as usize, g.qkv_stride() as usize);
        let qkv = random_values(g.tokens as usize * stride, 57, 1.0);
        let qkv_buf = ctx.storage_with("qkv", bytemuck::cast_slice(&qkv)).unwrap();
        let rope_buf = ctx
            .storage_with(
                "rope",
                bytemuck::cast_slice(&table(g.cache_len as usize, hd)),
            )
            .unwrap();
        let n_rows = g.cache_rows(sequences) as usize;
        let history_k = random_values(n_rows * hd, 58, 0.5);
        let history_v = random_values(n_rows * hd, 59, 0.5);
        let upload = |label, x: &[f32]| {
            let bytes = kv.encode_rows(x, hd);
            assert_eq!(bytes.len() as u64, g.cache_bytes(sequences));
            ctx.storage_with(label, &bytes).unwrap()
        };
        let k_buf = upload("k", &history_k);
        let v_buf = upload("v", &history_v);
        let d = if by_rows {
            let rows_buf = ctx
                .storage_with("rows", bytemuck::cast_slice(rows))
                .unwrap();
            kernel
                .dispatch_rows(
                    ctx, g, sequences, &qkv_buf, &rows_buf, &rope_buf, &k_buf, &v_buf,
                )
                .unwrap()
        } else {
            kernel
                .dispatch(ctx, g, &qkv_buf, &rope_buf, &k_buf, &v_buf)
                .unwrap()
        };
        ctx.execute(&d).unwrap();
        let got_q = ctx.read_f32(&qkv_buf, qkv.len()).unwrap();
        let read = |b: &wgpu::Buffer| {
            let bytes = ctx.read_bytes(b, g.cache_bytes(sequences)).unwrap();
            kv.decode_rows(&bytes, n_rows, hd)
        };
        let (got_k, got_v) = (read(&k_buf), read(&v_buf));

        let (nh, nkv) = (g.n_heads as usize, g.n_kv_heads as usize);
        let mut want_q = to64(&qkv);
        let mut want_k = stored(kv, &to64(&history_k), hd);
        let mut want_v = stored(kv, &to64(&history_v), hd);
        for (t, &[seq, pos]) in rows.iter().enumerate() {
            let (seq, pos) = (seq as usize, pos as usize);
            for head in 0..nh + nkv {
                let at = t * stride + head * hd;
                let mut x = to64(&qkv[at..at + hd]);
                reference_rotate(&mut x, pos);
                if head < nh {
                    want_q[at..at + hd].copy_from_slice(&x);
                } else {
                    let kvh = head - nh;
                    let c = ((seq * nkv + kvh) * g.cache_len as usize + pos) * hd;
                    want_k[c..c + hd].copy_from_slice(&stored(kv, &x, hd));
                    let v_at = t * stride + (nh + nkv + kvh) * hd;
                    want_v[c..c + hd].copy_from_slice(&stored(
                        kv,
                        &to64(&qkv[v_at..v_at + hd]),
                        hd,
                    ));
                }
            }
        }
        for (got, want, what) in [
            (&got_q, &want_q, "q"),
            (&got_k, &want_k, "k cache"),
            (&got_v, &want_v, "v cache"),
        ] {
            let c = compare(got, want, NMSE_F32, what.into());
            assert!(
                c.failure.is_none(),
                "{kv:?} {g:?} by rows {by_rows} {what}: {c:?}"
            );
        }
    }
}
