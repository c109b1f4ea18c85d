//! `shaders/attention_prefill.wgsl` and `shaders/attention_decode.wgsl`: causal grouped-query
//! attention over the KV cache.

use super::{ATTENTION_DECODE, ATTENTION_PREFILL, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

/// Heads and caches of one layer.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (divides `n_heads`).
    pub n_kv_heads: u32,
    /// Width of a head: a multiple of 4, at most 256.
    pub head_dim: u32,
    /// Positions each cache holds per sequence and head.
    pub cache_len: u32,
}

impl Heads {
    pub(crate) fn hd4(&self) -> u32 {
        self.head_dim / 4
    }

    pub(crate) fn qkv_stride4(&self) -> u32 {
        (self.n_heads + 2 * self.n_kv_heads) * self.hd4()
    }

    pub(crate) fn scale(&self) -> f32 {
        (1.0 / f64::from(self.head_dim).sqrt()) as f32
    }

    pub(crate) fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.head_dim.is_multiple_of(4)
                && self.head_dim <= 256
                && self.n_kv_heads > 0
                && self.n_heads.is_multiple_of(self.n_kv_heads),
            "attention heads {self:?} unsupported"
        );
        Ok(())
    }
}

/// Uniforms of both prefill attention shaders.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct PrefillParams {
    tokens: u32,
    seq_len: u32,
    n_heads: u32,
    n_kv_heads: u32,
    qkv_stride4: u32,
    cache_len: u32,
    scale: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DecodeParams {
    n_heads: u32,
    n_kv_heads: u32,
    q_stride4: u32,
    cache_len: u32,
    kv_len: u32,
    split_len: u32,
    n_splits: u32,
    batch: u32,
    scale: f32,
    row_base: u32,
    _pad: [u32; 2],
}

/// The uniforms of a prefill attention launch for `batch` prompts of `seq_len` tokens, after
/// checking every buffer is large enough (the shaders may run without bounds checks).
pub(crate) fn prefill_params(
    h: &Heads,
    (batch, seq_len): (u32, u32),
    qkv: &wgpu::Buffer,
    k_cache: &wgpu::Buffer,
    v_cache: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> anyhow::Result<PrefillParams> {
    let tokens = batch * seq_len;
    let cache_bytes = u64::from(batch)
        * u64::from(h.n_kv_heads)
        * u64::from(h.cache_len)
        * u64::from(h.head_dim)
        * 4;
    anyhow::ensure!(
        seq_len <= h.cache_len
            && qkv.size() >= u64::from(tokens) * u64::from(h.qkv_stride4()) * 16
            && k_cache.size() >= cache_bytes
            && v_cache.size() >= cache_bytes
            && out.size() >= u64::from(tokens) * u64::from(h.n_heads * h.head_dim) * 4,
        "prefill attention buffers too small"
    );
    Ok(PrefillParams {
        tokens,
        seq_len,
        n_heads: h.n_heads,
        n_kv_heads: h.n_kv_heads,
        qkv_stride4: h.qkv_stride4(),
        cache_len: h.cache_len,
        scale: h.scale(),
        _pad: 0,
    })
}

/// The prefill-attention pipeline at `entry` (the whole-prompt or the per-row entry point of
/// `attention_prefill.wgsl`, which share their body) for these heads.
fn prefill_pipeline(
    ctx: &GpuContext,
    heads: Heads,
    wg: u32,
    entry: &str,
) -> anyhow::Result<wgpu::ComputePipeline> {
    heads.check()?;
    let constants = [("WG", f64::from(wg)), ("HD4", f64::from(heads.hd4()))];
    ctx.pipeline(&ATTENTION_PREFILL, WeightDtype::F32, entry, &constants)
}

/// Causal attention of a whole prompt (prefill).
pub struct PrefillAttention {
    pipeline: wgpu::ComputePipeline,
    heads: Heads,
    wg: u32,
}

impl PrefillAttention {
    /// Builds the pipeline for these heads.
    pub fn new(ctx: &GpuContext, heads: Heads, wg: u32) -> anyhow::Result<Self> {
        let pipeline = prefill_pipeline(ctx, heads, wg, "attention_prefill")?;
        Ok(Self {
            pipeline,
            heads,
            wg,
        })
    }

    /// Attention for `batch` prompts of `seq_len` tokens: q from `qkv`, K and V from the
    /// caches (positions 0..seq_len), output rows in `out`.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        (batch, seq_len): (u32, u32),
        qkv: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let h = self.heads;
        let params = prefill_params(&h, (batch, seq_len), qkv, k_cache, v_cache, out)?;
        let tokens = params.tokens;
        ctx.dispatch(
            &self.pipeline,
            &params,
            &[(1, qkv), (2, k_cache), (3, v_cache), (4, out)],
            [tokens.div_ceil(self.wg), h.n_heads, 1],
        )
    }
}

/// Prefill attention where each query row names its cache sequence and position (serving:
/// a chunk of a prompt continuing an earlier chunk, in one sequence of a shared cache).
pub struct PrefillAttentionRows {
    pipeline: wgpu::ComputePipeline,
    heads: Heads,
    wg: u32,
}

impl PrefillAttentionRows {
    /// Builds the pipeline for these heads; `heads.cache_len` is the positions each sequence of
    /// the cache holds.
    pub fn new(ctx: &GpuContext, heads: Heads, wg: u32) -> anyhow::Result<Self> {
        let pipeline = prefill_pipeline(ctx, heads, wg, "attention_prefill_rows")?;
        Ok(Self {
            pipeline,
            heads,
            wg,
        })
    }

    /// Attention of the first `tokens` rows of `qkv`: row t attends to keys 0..=position of
    /// the sequence `rows[t]` = (sequence, position) names, in caches of `sequences`
    /// sequences. The caller keeps every position below `heads.cache_len` and every sequence
    /// below `sequences` (the shader runs without bounds checks).
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        (tokens, sequences): (u32, u32),
        qkv: &wgpu::Buffer,
        rows: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let h = self.heads;
        // One "prompt" per sequence of the cache for the size checks; seq_len is unused.
        let mut params = prefill_params(&h, (sequences, 1), qkv, k_cache, v_cache, out)?;
        anyhow::ensure!(
            rows.size() >= u64::from(tokens) * 8
                && qkv.size() >= u64::from(tokens) * u64::from(h.qkv_stride4()) * 16
                && out.size() >= u64::from(tokens) * u64::from(h.n_heads * h.head_dim) * 4,
            "prefill attention rows: buffers too small for {tokens} rows"
        );
        params.tokens = tokens;
        ctx.dispatch(
            &self.pipeline,
            &params,
            &[(1, qkv), (2, k_cache), (3, v_cache), (4, out), (5, rows)],
            [tokens.div_ceil(self.wg), h.n_heads, 1],
        )
    }
}

/// Attention of one new token per sequence over `kv_len` cached positions (decode), split
/// over the KV length, then reduced.
pub struct DecodeAttention {
    split: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    heads: Heads,
    wg: u32,
    split_len: u32,
}

impl DecodeAttention {
    /// Builds both pipelines; each split covers `split_len` keys.
    pub fn new(ctx: &GpuContext, heads: Heads, wg: u32, split_len: u32) -> anyhow::Result<Self> {
        heads.check()?;
        anyhow::ensure!(split_len >= 1, "split_len must be at least 1");
        let constants = [("WG", f64::from(wg)), ("HD4", f64::from(heads.hd4()))];
        Ok(Self {
            split: ctx.pipeline(
                &ATTENTION_DECODE,
                WeightDtype::F32,
                "attention_split",
                &constants,
            )?,
            reduce: ctx.pipeline(
                &ATTENTION_DECODE,
                WeightDtype::F32,
                "attention_reduce",
                &constants,
            )?,
            heads,
            wg,
            split_len,
        })
    }

    /// The same launches for serving: the split reads `rows` (see
    /// [`DecodeAttention::dispatch_rows`]).
    pub fn new_rows(
        ctx: &GpuContext,
        heads: Heads,
        wg: u32,
        split_len: u32,
    ) -> anyhow::Result<Self> {
        let mut kernel = Self::new(ctx, heads, wg, split_len)?;
        let constants = [("WG", f64::from(wg)), ("HD4", f64::from(heads.hd4()))];
        kernel.split = ctx.pipeline(
            &ATTENTION_DECODE,
            WeightDtype::F32,
            "attention_split_rows",
            &constants,
        )?;
        Ok(kernel)
    }

    /// Decode attention of qkv rows `row_base..row_base + batch` at ragged depths (a kernel
    /// from [`DecodeAttention::new_rows`]): row r's token sits at the position `rows[r]` =
    /// (sequence, position) names and attends to keys 0..=position of that sequence of the
    /// caches (`sequences` of them); `max_len` (at most the cache length) sizes the split grid
    /// and must cover every row's position + 1. Output rows go to the same row numbers of
    /// `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_rows(
        &self,
        ctx: &GpuContext,
        (row_base, batch, sequences, max_len): (u32, u32, u32, u32),
        qkv: &wgpu::Buffer,
        rows: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        partials: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<[Dispatch; 2]> {
        let h = self.heads;
        let n_splits = max_len.div_ceil(self.split_len);
        let end = u64::from(row_base + batch);
        let cache_bytes = u64::from(sequences)
            * u64::from(h.n_kv_heads)
            * u64::from(h.cache_len)
            * u64::from(h.head_dim)
            * 4;
        anyhow::ensure!(
            max_len >= 1
                && max_len <= h.cache_len
                && rows.size() >= end * 8
                && qkv.size() >= end * u64::from(h.qkv_stride4()) * 16
                && k_cache.size() >= cache_bytes
                && v_cache.size() >= cache_bytes
                && partials.size() >= self.partials_bytes(batch, max_len)
                && out.size() >= end * u64::from(h.n_heads * h.head_dim) * 4,
            "decode attention rows: buffers too small"
        );
        let params = DecodeParams {
            n_heads: h.n_heads,
            n_kv_heads: h.n_kv_heads,
            q_stride4: h.qkv_stride4(),
            cache_len: h.cache_len,
            kv_len: max_len,
            split_len: self.split_len,
            n_splits,
            batch,
            scale: h.scale(),
            row_base,
            _pad: [0; 2],
        };
        let split = ctx.dispatch(
            &self.split,
            &params,
            &[
                (1, qkv),
                (2, k_cache),
                (3, v_cache),
                (4, partials),
                (6, rows),
            ],
            [n_splits.div_ceil(self.wg), h.n_heads, batch],
        )?;
        let reduce = ctx.dispatch(
            &self.reduce,
            &params,
            &[(4, partials), (5, out)],
            [h.hd4().div_ceil(self.wg), h.n_heads, batch],
        )?;
        Ok([split, reduce])
    }

    /// Bytes of the partials buffer for `batch` sequences at `kv_len` keys.
    pub fn partials_bytes(&self, batch: u32, kv_len: u32) -> u64 {
        u64::from(batch)
            * u64::from(self.heads.n_heads)
            * u64::from(kv_len.div_ceil(self.split_len))
            * u64::from(self.heads.hd4() + 1)
            * 16
    }

    /// The two launches: q is row b of `qkv` for sequence b; keys are positions 0..kv_len.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        (batch, kv_len): (u32, u32),
        qkv: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        partials: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<[Dispatch; 2]> {
        let h = self.heads;
        let n_splits = kv_len.div_ceil(self.split_len);
        let cache_bytes = u64::from(batch)
            * u64::from(h.n_kv_heads)
            * u64::from(h.cache_len)
            * u64::from(h.head_dim)
            * 4;
        anyhow::ensure!(
            kv_len >= 1
                && kv_len <= h.cache_len
                && qkv.size() >= u64::from(batch) * u64::from(h.qkv_stride4()) * 16
                && k_cache.size() >= cache_bytes
                && v_cache.size() >= cache_bytes
                && partials.size() >= self.partials_bytes(batch, kv_len)
                && out.size() >= u64::from(batch) * u64::from(h.n_heads * h.head_dim) * 4,
            "decode attention buffers too small"
        );
        let params = DecodeParams {
            n_heads: h.n_heads,
            n_kv_heads: h.n_kv_heads,
            q_stride4: h.qkv_stride4(),
            cache_len: h.cache_len,
            kv_len,
            split_len: self.split_len,
            n_splits,
            batch,
            scale: h.scale(),
            row_base: 0,
            _pad: [0; 2],
        };
        let split = ctx.dispatch(
            &self.split,
            &params,
            &[(1, qkv), (2, k_cache), (3, v_cache), (4, partials)],
            [n_splits.div_ceil(self.wg), h.n_heads, batch],
        )?;
        let reduce = ctx.dispatch(
            &self.reduce,
            &params,
            &[(4, partials), (5, out)],
            [h.hd4().div_ceil(self.wg), h.n_heads, batch],
        )?;
        Ok([split, reduce])
    }
}

/// softmax(q·kᵀ/√d) · V for one query over `keys` and `values` (each a list of head_dim rows),
/// in f64.
pub fn reference(q: &[f64], keys: &[&[f64]], values: &[&[f64]]) -> Vec<f64> {
    let scale = 1.0 / (q.len() as f64).sqrt();
    let scores: Vec<f64> = keys
        .iter()
        .map(|k| q.iter().zip(*k).map(|(a, b)| a * b).sum::<f64>() * scale)
        .collect();
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut out = vec![0.0; q.len()];
    for (w, v) in weights.iter().zip(values) {
        for (o, x) in out.iter_mut().zip(*v) {
            *o += w / total * x;
        }
    }
    out
}

/// [`reference()`] for query head `head` of row `q_row` of `qkv` (rows of q|k|v heads), over
/// keys 0..n_keys of sequence `b` in the caches as the kernels lay them out
/// ([batch, kv_head, cache_len, head_dim]), in f64.
#[allow(clippy::too_many_arguments)]
pub fn reference_from_cache(
    h: &Heads,
    qkv: &[f32],
    q_row: usize,
    b: usize,
    head: usize,
    n_keys: usize,
    k: &[f32],
    v: &[f32],
) -> Vec<f64> {
    let hd = h.head_dim as usize;
    let stride = (h.n_heads + 2 * h.n_kv_heads) as usize * hd;
    let to64 = |s: &[f32]| s.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let q = to64(&qkv[q_row * stride + head * hd..][..hd]);
    let kv = head / (h.n_heads / h.n_kv_heads) as usize;
    let base = (b * h.n_kv_heads as usize + kv) * h.cache_len as usize * hd;
    let keys: Vec<Vec<f64>> = (0..n_keys)
        .map(|j| to64(&k[base + j * hd..][..hd]))
        .collect();
    let values: Vec<Vec<f64>> = (0..n_keys)
        .map(|j| to64(&v[base + j * hd..][..hd]))
        .collect();
    reference(
        &q,
        &keys.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        &values.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    )
}

/// The Rust layout of [`PrefillParams`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn prefill_params_layout() -> super::HostLayout {
    super::host_layout!(PrefillParams {
        tokens,
        seq_len,
        n_heads,
        n_kv_heads,
        qkv_stride4,
        cache_len,
        scale,
        _pad
    })
}

/// The Rust layout of [`DecodeParams`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn decode_params_layout() -> super::HostLayout {
    super::host_layout!(DecodeParams {
        n_heads,
        n_kv_heads,
        q_stride4,
        cache_len,
        kv_len,
        split_len,
        n_splits,
        batch,
        scale,
        row_base,
        _pad
    })
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::random_values;
    use crate::kernels::verify::{NMSE_F32, compare};

    fn heads(n_heads: u32, n_kv_heads: u32, head_dim: u32, cache_len: u32) -> Heads {
        Heads {
            n_heads,
            n_kv_heads,
            head_dim,
            cache_len,
        }
    }

    #[test]
    fn prefill_matches_reference_for_odd_lengths_and_grouped_heads() {
        let ctx = test_context();
        for (batch, seq_len, h) in [
            (1, 1, heads(2, 1, 4, 1)),
            (2, 13, heads(4, 2, 12, 16)),
            (1, 70, heads(6, 2, 64, 70)),
        ] {
            let tokens = (batch * seq_len) as usize;
            let hd = h.head_dim as usize;
            let stride = (h.n_heads + 2 * h.n_kv_heads) as usize * hd;
            let cache = (batch * h.n_kv_heads * h.cache_len) as usize * hd;
            let qkv = random_values(tokens * stride, 61, 1.0);
            let k = random_values(cache, 62, 1.0);
            let v = random_values(cache, 63, 1.0);
            let (qkv_b, k_b, v_b) = (
                ctx.storage_with("qkv", bytemuck::cast_slice(&qkv)).unwrap(),
                ctx.storage_with("k", bytemuck::cast_slice(&k)).unwrap(),
                ctx.storage_with("v", bytemuck::cast_slice(&v)).unwrap(),
            );
            let out_b = ctx
                .storage_zeroed("out", (tokens * h.n_heads as usize * hd * 4) as u64)
                .unwrap();
            let kernel = PrefillAttention::new(ctx, h, 64).unwrap();
            ctx.execute(
                &kernel
                    .dispatch(ctx, (batch, seq_len), &qkv_b, &k_b, &v_b, &out_b)
                    .unwrap(),
            )
            .unwrap();
            let got = ctx
                .read_f32(&out_b, tokens * h.n_heads as usize * hd)
                .unwrap();
            let (qkv, k, v) = (&qkv, &k, &v);
            let want: Vec<f64> = (0..tokens)
                .flat_map(|t| {
                    let (b, i) = (t / seq_len as usize, t % seq_len as usize);
                    (0..h.n_heads as usize).flat_map(move |head| {
                        reference_from_cache(&h, qkv, t, b, head, i + 1, k, v)
                    })
                })
                .collect();
            let c = compare(&got, &want, NMSE_F32, "prefill attention".into());
            assert!(
                c.failure.is_none(),
                "{h:?} batch {batch} seq {seq_len}: {c:?}"
            );
        }
    }

    #[test]
    fn decode_matches_reference_across_split_sizes() {
        let ctx = test_context();
        for (batch, kv_len, split_len, h) in [
            (1, 1, 16, heads(2, 2, 8, 4)),
            (3, 37, 8, heads(4, 2, 16, 40)),
            (2, 300, 64, heads(8, 2, 128, 300)),
            (1, 100, 1, heads(2, 1, 4, 128)),
        ] {
            let hd = h.head_dim as usize;
            let stride = (h.n_heads + 2 * h.n_kv_heads) as usize * hd;
            let cache = (batch * h.n_kv_heads * h.cache_len) as usize * hd;
            let qkv = random_values(batch as usize * stride, 71, 1.0);
            let k = random_values(cache, 72, 1.0);
            let v = random_values(cache, 73, 1.0);
            let kernel = DecodeAttention::new(ctx, h, 64, split_len).unwrap();
            let (qkv_b, k_b, v_b) = (
                ctx.storage_with("qkv", bytemuck::cast_slice(&qkv)).unwrap(),
                ctx.storage_with("k", bytemuck::cast_slice(&k)).unwrap(),
                ctx.storage_with("v", bytemuck::cast_slice(&v)).unwrap(),
            );
            let partials = ctx
                .storage_zeroed("partials", kernel.partials_bytes(batch, kv_len))
                .unwrap();
            let out_b = ctx
                .storage_zeroed("out", u64::from(batch * h.n_heads) * hd as u64 * 4)
                .unwrap();
            let d = kernel
                .dispatch(ctx, (batch, kv_len), &qkv_b, &k_b, &v_b, &partials, &out_b)
                .unwrap();
            ctx.execute(&d.to_vec()).unwrap();
            let got = ctx
                .read_f32(&out_b, (batch * h.n_heads) as usize * hd)
                .unwrap();
            let (qkv, k, v) = (&qkv, &k, &v);
            let want: Vec<f64> = (0..batch as usize)
                .flat_map(|b| {
                    (0..h.n_heads as usize).flat_map(move |head| {
                        reference_from_cache(&h, qkv, b, b, head, kv_len as usize, k, v)
                    })
                })
                .collect();
            let c = compare(&got, &want, NMSE_F32, "decode attention".into());
            assert!(
                c.failure.is_none(),
                "{h:?} batch {batch} kv {kv_len} split {split_len}: {c:?}"
            );
        }
    }

    /// Decode rows at ragged depths of different sequences, after a row that is not theirs
    /// (row_base 1), and prefill rows continuing a prompt at position 10 of sequence 1.
    #[test]
    fn rows_attend_to_their_own_sequence_up_to_their_position() {
        let ctx = test_context();
        let h = heads(4, 2, 16, 40);
        let sequences = 3u32;
        let hd = h.head_dim as usize;
        let stride = (h.n_heads + 2 * h.n_kv_heads) as usize * hd;
        let cache = (sequences * h.n_kv_heads * h.cache_len) as usize * hd;
        let k = random_values(cache, 82, 1.0);
        let v = random_values(cache, 83, 1.0);
        let (k_b, v_b) = (
            ctx.storage_with("k", bytemuck::cast_slice(&k)).unwrap(),
            ctx.storage_with("v", bytemuck::cast_slice(&v)).unwrap(),
        );
        let out_len = |rows: usize| rows * h.n_heads as usize * hd;
        let (k, v) = (&k, &v);
        let want = |rows: &[[u32; 2]], qkv: &[f32], first: usize| -> Vec<f64> {
            rows.iter()
                .enumerate()
                .skip(first)
                .flat_map(|(r, &[seq, pos])| {
                    (0..h.n_heads as usize).flat_map(move |head| {
                        reference_from_cache(&h, qkv, r, seq as usize, head, pos as usize + 1, k, v)
                    })
                })
                .collect()
        };

        let decode_rows: [[u32; 2]; 4] = [[0, 0], [2, 5], [0, 39], [1, 0]];
        let qkv = random_values(decode_rows.len() * stride, 81, 1.0);
        let qkv_b = ctx.storage_with("qkv", bytemuck::cast_slice(&qkv)).unwrap();
        let rows_b = ctx
            .storage_with("rows", bytemuck::cast_slice(&decode_rows))
            .unwrap();
        let kernel = DecodeAttention::new_rows(ctx, h, 64, 8).unwrap();
        let partials = ctx
            .storage_zeroed("partials", kernel.partials_bytes(3, 40))
            .unwrap();
        let out_b = ctx.storage_zeroed("out", (out_len(4) * 4) as u64).unwrap();
        let d = kernel
            .dispatch_rows(
                ctx,
                (1, 3, sequences, 40),
                &qkv_b,
                &rows_b,
                &k_b,
                &v_b,
                &partials,
                &out_b,
            )
            .unwrap();
        ctx.execute(&d.to_vec()).unwrap();
        let got = ctx.read_f32(&out_b, out_len(4)).unwrap();
        let c = compare(
            &got[out_len(1)..],
            &want(&decode_rows, &qkv, 1),
            NMSE_F32,
            "decode rows".into(),
        );
        assert!(c.failure.is_none(), "decode rows: {c:?}");

        let prefill_rows: Vec<[u32; 2]> = (10..18).map(|p| [1, p]).collect();
        let qkv = random_values(prefill_rows.len() * stride, 84, 1.0);
        let qkv_b = ctx.storage_with("qkv", bytemuck::cast_slice(&qkv)).unwrap();
        let rows_b = ctx
            .storage_with("rows", bytemuck::cast_slice(&prefill_rows))
            .unwrap();
        let out_b = ctx.storage_zeroed("out", (out_len(8) * 4) as u64).unwrap();
        let kernel = PrefillAttentionRows::new(ctx, h, 64).unwrap();
        let d = kernel
            .dispatch(ctx, (8, sequences), &qkv_b, &rows_b, &k_b, &v_b, &out_b)
            .unwrap();
        ctx.execute(&d).unwrap();
        let got = ctx.read_f32(&out_b, out_len(8)).unwrap();
        let c = compare(
            &got,
            &want(&prefill_rows, &qkv, 0),
            NMSE_F32,
            "prefill rows".into(),
        );
        assert!(c.failure.is_none(), "prefill rows: {c:?}");
    }
}
