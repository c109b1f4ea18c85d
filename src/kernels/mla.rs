//! `shaders/mla.wgsl` and `shaders/head_matmul.wgsl`: multi-head latent attention (MLA,
//! DeepSeek-V2/V3) around the ordinary attention kernels.
//!
//! The widths and the two forms (absorbed, decompressed) are [`crate::model::mla`]'s.

use super::matmul::Params as ProductParams;
use super::{HEAD_MATMUL, MLA, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};
pub use crate::model::mla::{MlaDims, MlaForm};

/// Where the new tokens of one call sit.
#[derive(Debug, Clone, Copy)]
pub struct MlaTokens {
    /// Tokens (rows) in this call.
    pub tokens: u32,
    /// Tokens per sequence in this call: the prompt length for prefill, 1 for decode.
    pub seq_len: u32,
    /// Position of each sequence's first token in this call.
    pub pos_base: u32,
    /// Positions the latent cache holds per sequence.
    pub cache_len: u32,
}

/// A buffer of rows: (buffer, floats per row, float offset of the part read in each row).
pub type Rows<'a> = (&'a wgpu::Buffer, u32, u32);

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tokens: u32,
    seq_len: u32,
    pos_base: u32,
    n_heads: u32,
    cache_len: u32,
    latent: u32,
    rope_dim: u32,
    nope: u32,
    v_dim: u32,
    q_stride: u32,
    q_off: u32,
    kva_stride: u32,
    kva_rope_off: u32,
    att_stride: u32,
    att_dim: u32,
    rope_off: u32,
    copy_nope: u32,
    kvb_stride: u32,
    rows: u32,
    _pad: u32,
}

impl Params {
    fn new(d: MlaDims, form: MlaForm) -> Self {
        Self {
            n_heads: d.n_heads,
            latent: d.latent,
            rope_dim: d.rope_dim,
            nope: d.nope,
            v_dim: d.v_dim,
            att_stride: form.att_stride(d),
            att_dim: form.att_dim(d),
            rope_off: form.rope_off(d),
            copy_nope: u32::from(form == MlaForm::Decompressed),
            kvb_stride: d.n_heads * d.kvb_head(),
            ..Self::default()
        }
    }
}

const WG: u32 = 64;

/// The three kernels of `shaders/mla.wgsl`.
pub struct MlaKernels {
    rope: wgpu::ComputePipeline,
    expand: wgpu::ComputePipeline,
    compact: wgpu::ComputePipeline,
}

impl MlaKernels {
    /// Builds the pipelines.
    pub fn new(ctx: &GpuContext) -> anyhow::Result<Self> {
        let build = |entry| ctx.pipeline(&MLA, WeightDtype::F32, entry, &[("WG", f64::from(WG))]);
        Ok(Self {
            rope: build("mla_rope")?,
            expand: build("mla_expand")?,
            compact: build("mla_compact")?,
        })
    }

    /// Writes each new token's latent row (the normalised latent `c_norm`, tokens × latent, and
    /// the rotated rotary key from `kva`) to `latent_cache` at its sequence and position, and
    /// its rotated query parts (from `q`) to `qatt` in `form`'s layout. `rope` is
    /// [`super::rope::table`] of rope_dim for at least `pos_base + seq_len` positions.
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        ctx: &GpuContext,
        d: MlaDims,
        form: MlaForm,
        at: MlaTokens,
        q: Rows<'_>,
        kva: Rows<'_>,
        c_norm: &wgpu::Buffer,
        rope: &wgpu::Buffer,
        latent_cache: &wgpu::Buffer,
        qatt: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let batch = at.tokens / at.seq_len.max(1);
        let f = |n: u64| n * 4;
        let (tokens, half) = (u64::from(at.tokens), u64::from(d.rope_dim / 2));
        anyhow::ensure!(
            at.seq_len > 0
                && at.tokens.is_multiple_of(at.seq_len)
                && at.pos_base + at.seq_len <= at.cache_len
                && d.rope_dim.is_multiple_of(2),
            "mla rope: tokens {at:?} inconsistent"
        );
        anyhow::ensure!(
            q.0.size() >= f(tokens * u64::from(q.1))
                && kva.0.size() >= f(tokens * u64::from(kva.1))
                && c_norm.size() >= f(tokens * u64::from(d.latent))
                && rope.size() >= u64::from(at.pos_base + at.seq_len) * half * 8
                && latent_cache.size()
                    >= f(u64::from(batch) * u64::from(at.cache_len) * u64::from(d.row()))
                && qatt.size() >= f(tokens * u64::from(form.att_stride(d))),
            "mla rope: buffers too small for {at:?} {d:?}"
        );
        let params = Params {
            tokens: at.tokens,
            seq_len: at.seq_len,
            pos_base: at.pos_base,
            cache_len: at.cache_len,
            q_stride: q.1,
            q_off: q.2,
            kva_stride: kva.1,
            kva_rope_off: kva.2,
            ..Params::new(d, form)
        };
        let widest = d.latent.max(d.nope).max(d.rope_dim / 2);
        ctx.dispatch(
            &self.rope,
            &params,
            &[
                (1, q.0),
                (2, kva.0),
                (3, c_norm),
                (4, rope),
                (5, latent_cache),
                (6, qatt),
            ],
            [widest.div_ceil(WG), d.n_heads + 1, at.tokens],
        )
    }

    /// Decompressed form: per-head K and V caches ([sequence, head, position, att_dim]) of the
    /// first `rows` latent-cache rows (sequence · cache_len + position), from `kvb` (those rows
    /// through W_kv_b, [k_nope | v] per head) and the rotary keys of `latent_cache`.
    #[allow(clippy::too_many_arguments)]
    pub fn expand(
        &self,
        ctx: &GpuContext,
        d: MlaDims,
        (rows, cache_len): (u32, u32),
        kvb: &wgpu::Buffer,
        latent_cache: &wgpu::Buffer,
        k: &wgpu::Buffer,
        v: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let form = MlaForm::Decompressed;
        let p = Params {
            rows,
            cache_len,
            ..Params::new(d, form)
        };
        let r = u64::from(rows);
        let kv_floats = r * u64::from(d.n_heads) * u64::from(form.att_dim(d));
        anyhow::ensure!(
            cache_len > 0
                && kvb.size() >= r * u64::from(p.kvb_stride) * 4
                && latent_cache.size() >= r * u64::from(d.row()) * 4
                && k.size() >= kv_floats * 4
                && v.size() >= kv_floats * 4,
            "mla expand: buffers too small for {rows} rows of {d:?}"
        );
        ctx.dispatch(
            &self.expand,
            &p,
            &[(1, kvb), (2, latent_cache), (3, k), (4, v)],
            [form.att_dim(d).div_ceil(WG), d.n_heads, rows],
        )
    }

    /// Copies the first v_dim floats of each head of `wide` (attention output rows in `form`'s
    /// layout, n_heads · att_dim) to `narrow` (n_heads · v_dim per row).
    pub fn compact(
        &self,
        ctx: &GpuContext,
        d: MlaDims,
        (form, tokens): (MlaForm, u32),
        wide: &wgpu::Buffer,
        narrow: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let p = Params {
            tokens,
            att_stride: d.n_heads * form.att_dim(d),
            ..Params::new(d, form)
        };
        let t = u64::from(tokens);
        anyhow::ensure!(
            wide.size() >= t * u64::from(p.att_stride) * 4
                && narrow.size() >= t * u64::from(d.n_heads * d.v_dim) * 4,
            "mla compact: buffers too small for {tokens} rows of {d:?}"
        );
        ctx.dispatch(
            &self.compact,
            &p,
            &[(1, wide), (2, narrow)],
            [d.v_dim.div_ceil(WG), d.n_heads, tokens],
        )
    }
}

/// One per-head product: for every row r and head h < `heads`, C[r, h] (+)= A[r, h] · W_hᵀ.
#[derive(Debug, Clone, Copy)]
pub struct HeadProduct<'a> {
    /// Rows of A and C.
    pub rows: u32,
    /// Heads.
    pub heads: u32,
    /// K / 4: inputs per head (each head reads the first K floats of its slice of A).
    pub k4: u32,
    /// Outputs per head.
    pub n: u32,
    /// A; row r of head h starts at vec4 `a_off4 + r · lda4 + h · a_head4`.
    pub a: &'a wgpu::Buffer,
    /// See `a`.
    pub a_off4: u32,
    /// See `a`.
    pub lda4: u32,
    /// See `a`.
    pub a_head4: u32,
    /// Weights: from row `w_row_off` on, `w_head_rows` rows per head, the first `n` of each
    /// head its outputs, each K weights in the format's layout.
    pub w: &'a wgpu::Buffer,
    /// See `w`.
    pub w_row_off: u32,
    /// See `w`.
    pub w_head_rows: u32,
    /// C; output j of head h, row r, is float `r · ldc + c_off + h · c_head + j`.
    pub c: &'a wgpu::Buffer,
    /// See `c`.
    pub ldc: u32,
    /// See `c`.
    pub c_off: u32,
    /// See `c`.
    pub c_head: u32,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct HeadGroup {
    heads: u32,
    a_head4: u32,
    c_head: u32,
    w_head_rows: u32,
    w_row_off: u32,
    _pad: [u32; 3],
}

/// Rows each invocation of `head_rows` takes (`BM` in the shader).
const HEAD_BLOCK_ROWS: u32 = 8;

/// `shaders/head_matmul.wgsl` for one weight format.
pub struct HeadMatmul {
    pipeline: wgpu::ComputePipeline,
    dtype: WeightDtype,
}

impl HeadMatmul {
    /// Builds the pipeline for weights in `dtype`.
    pub fn new(ctx: &GpuContext, dtype: WeightDtype) -> anyhow::Result<Self> {
        Ok(Self {
            pipeline: ctx.pipeline(&HEAD_MATMUL, dtype, "head_rows", &[("WG", f64::from(WG))])?,
            dtype,
        })
    }

    /// Records one per-head product.
    pub fn dispatch(&self, ctx: &GpuContext, pr: &HeadProduct<'_>) -> anyhow::Result<Dispatch> {
        let last = |rows: u32, ld: u32, head: u32, width: u32| {
            u64::from(rows.saturating_sub(1)) * u64::from(ld)
                + u64::from(pr.heads.saturating_sub(1)) * u64::from(head)
                + u64::from(width)
        };
        let w_rows = pr.w_row_off + pr.heads.saturating_sub(1) * pr.w_head_rows + pr.n;
        anyhow::ensure!(
            pr.rows > 0 && pr.heads > 0 && pr.k4 > 0 && pr.n > 0 && pr.n <= pr.w_head_rows,
            "head product: empty or inconsistent {pr:?}"
        );
        anyhow::ensure!(
            pr.a.size() >= (u64::from(pr.a_off4) + last(pr.rows, pr.lda4, pr.a_head4, pr.k4)) * 16
                && pr.c.size()
                    >= (u64::from(pr.c_off) + last(pr.rows, pr.ldc, pr.c_head, pr.n)) * 4
                && pr.w.size()
                    >= u64::from(w_rows) * self.dtype.row_bytes(4 * pr.k4 as usize) as u64,
            "head product: buffers too small for {pr:?}"
        );
        let params = ProductParams {
            m: pr.rows,
            k4: pr.k4,
            n: pr.n,
            lda4: pr.lda4,
            a_off4: pr.a_off4,
            ldc: pr.ldc,
            c_off: pr.c_off,
            accumulate: u32::from(pr.accumulate),
        };
        let group = HeadGroup {
            heads: pr.heads,
            a_head4: pr.a_head4,
            c_head: pr.c_head,
            w_head_rows: pr.w_head_rows,
            w_row_off: pr.w_row_off,
            _pad: [0; 3],
        };
        let group = ctx.uniform_with("head-group", bytemuck::bytes_of(&group));
        ctx.dispatch(
            &self.pipeline,
            &params,
            &[(1, pr.a), (2, pr.w), (3, pr.c), (4, &group)],
            [
                pr.n.div_ceil(WG),
                pr.heads,
                pr.rows.div_ceil(HEAD_BLOCK_ROWS),
            ],
        )
    }
}

/// The Rust layouts of the uniform structs, for the test that holds them to their WGSL twins.
#[cfg(test)]
pub(crate) fn params_layouts() -> [(super::Shader, &'static str, super::HostLayout); 2] {
    use super::host_layout;
    [
        (
            MLA,
            "Params",
            host_layout!(Params {
                tokens,
                seq_len,
                pos_base,
                n_heads,
                cache_len,
                latent,
                rope_dim,
                nope,
                v_dim,
                q_stride,
                q_off,
                kva_stride,
                kva_rope_off,
                att_stride,
                att_dim,
                rope_off,
                copy_nope,
                kvb_stride,
                rows,
                _pad
            }),
        ),
        (
            HEAD_MATMUL,
            "HeadGroup",
            host_layout!(HeadGroup {
                heads,
                a_head4,
                c_head,
                w_head_rows,
                w_row_off,
                _pad
            }),
        ),
    ]
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::random_values;
    use crate::kernels::rope;
    use crate::kernels::verify::{NMSE_F32, compare};

    /// Each head's product on the GPU equals the f64 product of the weights it holds, for
    /// widths that fill no workgroup, K that fills no block of 32, heads read at an offset into
    /// their slices of A and W, and accumulation; in the elementwise and the block formats.
    /// 9 rows make a block of 8 and a block of one (decode's single-accumulator path).
    #[test]
    fn head_products_match_the_reference() {
        let ctx = test_context();
        let (rows, heads, k, n) = (9usize, 3usize, 12usize, 13usize);
        let (a_head, a_off, lda) = (20usize, 4usize, 3 * 20 + 8);
        let (w_head_rows, w_row_off) = (n + 2, 1usize);
        let (c_head, ldc, c_off) = (n + 3, 3 * (n + 3) + 1, 2usize);
        let a = random_values(a_off + rows * lda, 3, 1.0);
        let w_rows = w_row_off + heads * w_head_rows;
        let raw = random_values(w_rows * k, 5, 0.5);
        let c0 = random_values(rows * ldc + c_off, 9, 1.0);
        for dtype in [WeightDtype::F32, WeightDtype::Bf16, WeightDtype::Q4_0] {
            let bytes = dtype.encode_rows(&raw, k);
            let held = dtype.decode_rows(&bytes, w_rows, k);
            let kernel = HeadMatmul::new(ctx, dtype).unwrap();
            for accumulate in [false, true] {
                let a_buf = ctx.storage_with("a", bytemuck::cast_slice(&a)).unwrap();
                let w_buf = ctx.storage_with("w", &bytes).unwrap();
                let c_buf = ctx.storage_with("c", bytemuck::cast_slice(&c0)).unwrap();
                let pr = HeadProduct {
                    rows: rows as u32,
                    heads: heads as u32,
                    k4: (k / 4) as u32,
                    n: n as u32,
                    a: &a_buf,
                    a_off4: (a_off / 4) as u32,
                    lda4: (lda / 4) as u32,
                    a_head4: (a_head / 4) as u32,
                    w: &w_buf,
                    w_row_off: w_row_off as u32,
                    w_head_rows: w_head_rows as u32,
                    c: &c_buf,
                    ldc: ldc as u32,
                    c_off: c_off as u32,
                    c_head: c_head as u32,
                    accumulate,
                };
                let d = kernel.dispatch(ctx, &pr).unwrap();
                ctx.execute(&d).unwrap();
                let got = ctx.read_f32(&c_buf, c0.len()).unwrap();
                let mut want: Vec<f64> = c0.iter().map(|&v| f64::from(v)).collect();
                for r in 0..rows {
                    for h in 0..heads {
                        for j in 0..n {
                            let wr = &held[(w_row_off + h * w_head_rows + j) * k..][..k];
                            let ar = &a[a_off + r * lda + h * a_head..][..k];
                            let dot: f64 = ar
                                .iter()
                                .zip(wr)
                                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                                .sum();
                            let at = r * ldc + c_off + h * c_head + j;
                            want[at] = if accumulate { want[at] + dot } else { dot };
                        }
                    }
                }
                let report = compare(&got, &want, NMSE_F32, "f64".into());
                assert!(
                    report.failure.is_none(),
                    "{dtype:?} accumulate {accumulate}: {report:?}"
                );
            }
        }
    }

    /// The latent-cache write and the query layout of both forms: rotated rotary parts (pairs
    /// i, i + rope_dim / 2 at each token's position), the latent copied, the non-rotary query
    /// copied only where the form needs it, and nothing else of `qatt` touched.
    #[test]
    fn rope_writes_the_latent_row_and_the_queries_of_each_form() {
        let ctx = test_context();
        let kernels = MlaKernels::new(ctx).unwrap();
        let d = MlaDims {
            n_heads: 3,
            latent: 36,
            rope_dim: 8,
            nope: 12,
            v_dim: 24,
        };
        // Two sequences of 3 new tokens at positions 5..8 of caches of 9.
        let at = MlaTokens {
            tokens: 6,
            seq_len: 3,
            pos_base: 5,
            cache_len: 9,
        };
        let t = at.tokens as usize;
        let (q_stride, q_off) = (d.n_heads * d.q_head() + 4, 4u32);
        let (kva_stride, kva_rope_off) = (d.row() + 8, 8 + d.latent);
        let q = random_values(t * q_stride as usize, 1, 1.0);
        let kva = random_values(t * kva_stride as usize, 2, 1.0);
        let c = random_values(t * d.latent as usize, 3, 1.0);
        let table = rope::table(at.cache_len as usize, d.rope_dim as usize);
        for form in [MlaForm::Absorbed, MlaForm::Decompressed] {
            let cache_floats = 2 * (at.cache_len * d.row()) as usize;
            let qatt_floats = t * form.att_stride(d) as usize;
            let sentinel = 7.5f32;
            let bufs = (
                ctx.storage_with("q", bytemuck::cast_slice(&q)).unwrap(),
                ctx.storage_with("kva", bytemuck::cast_slice(&kva)).unwrap(),
                ctx.storage_with("c", bytemuck::cast_slice(&c)).unwrap(),
                ctx.storage_with("rope", bytemuck::cast_slice(&table))
                    .unwrap(),
                ctx.storage_with("cache", bytemuck::cast_slice(&vec![sentinel; cache_floats]))
                    .unwrap(),
                ctx.storage_with("qatt", bytemuck::cast_slice(&vec![sentinel; qatt_floats]))
                    .unwrap(),
            );
            let dispatch = kernels
                .rope(
                    ctx,
                    d,
                    form,
                    at,
                    (&bufs.0, q_stride, q_off),
                    (&bufs.1, kva_stride, kva_rope_off),
                    &bufs.2,
                    &bufs.3,
                    &bufs.4,
                    &bufs.5,
                )
                .unwrap();
            ctx.execute(&dispatch).unwrap();
            let cache = ctx.read_f32(&bufs.4, cache_floats).unwrap();
            let qatt = ctx.read_f32(&bufs.5, qatt_floats).unwrap();
            let mut want_cache = vec![f64::from(sentinel); cache_floats];
            let mut want_q = vec![f64::from(sentinel); qatt_floats];
            let (ad, st) = (form.att_dim(d) as usize, form.att_stride(d) as usize);
            let (l, r, nope) = (d.latent as usize, d.rope_dim as usize, d.nope as usize);
            for ti in 0..t {
                let (b, pos) = (ti / 3, 5 + ti % 3);
                let row = (b * at.cache_len as usize + pos) * d.row() as usize;
                let mut k: Vec<f64> = kva[ti * kva_stride as usize + kva_rope_off as usize..][..r]
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                rope::reference_rotate(&mut k, pos);
                for i in 0..l {
                    want_cache[row + i] = f64::from(c[ti * l + i]);
                }
                want_cache[row + l..row + l + r].copy_from_slice(&k);
                for h in 0..d.n_heads as usize {
                    let src = &q[ti * q_stride as usize + q_off as usize + h * (nope + r)..];
                    let mut rot: Vec<f64> =
                        src[nope..nope + r].iter().map(|&v| f64::from(v)).collect();
                    rope::reference_rotate(&mut rot, pos);
                    let out = ti * st + h * ad;
                    let rope_off = if form == MlaForm::Absorbed { l } else { nope };
                    want_q[out + rope_off..out + rope_off + r].copy_from_slice(&rot);
                    if form == MlaForm::Decompressed {
                        for i in 0..nope {
                            want_q[out + i] = f64::from(src[i]);
                        }
                    }
                }
            }
            for (what, got, want) in [("cache", &cache, &want_cache), ("qatt", &qatt, &want_q)] {
                for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
                    assert!(
                        (f64::from(g) - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{form:?} {what}[{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// Decompression builds [k_nope | k_rope | 0] and [v | 0] per head from W_kv_b's output and
    /// the cached rotary keys; compaction keeps each head's first v_dim outputs.
    #[test]
    fn expand_and_compact_lay_out_the_heads() {
        let ctx = test_context();
        let kernels = MlaKernels::new(ctx).unwrap();
        // v wider than nope + rope: the keys are the padded ones.
        let d = MlaDims {
            n_heads: 3,
            latent: 8,
            rope_dim: 4,
            nope: 8,
            v_dim: 16,
        };
        let (rows, cache_len) = (10u32, 5u32);
        let form = MlaForm::Decompressed;
        let ad = form.att_dim(d) as usize;
        assert_eq!(ad, 16);
        let kvb = random_values((rows * d.n_heads * d.kvb_head()) as usize, 4, 1.0);
        let cache = random_values((rows * d.row()) as usize, 6, 1.0);
        let floats = rows as usize * d.n_heads as usize * ad;
        let kvb_buf = ctx.storage_with("kvb", bytemuck::cast_slice(&kvb)).unwrap();
        let cache_buf = ctx
            .storage_with("cache", bytemuck::cast_slice(&cache))
            .unwrap();
        let k = ctx.storage_zeroed("k", (floats * 4) as u64).unwrap();
        let v = ctx.storage_zeroed("v", (floats * 4) as u64).unwrap();
        let e = kernels
            .expand(ctx, d, (rows, cache_len), &kvb_buf, &cache_buf, &k, &v)
            .unwrap();
        ctx.execute(&e).unwrap();
        let (gk, gv) = (
            ctx.read_f32(&k, floats).unwrap(),
            ctx.read_f32(&v, floats).unwrap(),
        );
        let (nope, r, vd, h_n) = (8usize, 4usize, 16usize, 3usize);
        for row in 0..rows as usize {
            let (b, pos) = (row / cache_len as usize, row % cache_len as usize);
            for h in 0..h_n {
                let at = ((b * h_n + h) * cache_len as usize + pos) * ad;
                let src = &kvb[(row * h_n + h) * (nope + vd)..];
                for x in 0..ad {
                    let want_k = if x < nope {
                        src[x]
                    } else if x < nope + r {
                        cache[row * 12 + 8 + x - nope]
                    } else {
                        0.0
                    };
                    assert_eq!(gk[at + x], want_k, "k row {row} head {h} [{x}]");
                    assert_eq!(gv[at + x], src[nope + x], "v row {row} head {h} [{x}]");
                }
            }
        }
        let tokens = 7u32;
        let wide = random_values(tokens as usize * h_n * ad, 8, 1.0);
        let wide_buf = ctx
            .storage_with("wide", bytemuck::cast_slice(&wide))
            .unwrap();
        let narrow = ctx
            .storage_zeroed("narrow", u64::from(tokens * d.n_heads * d.v_dim) * 4)
            .unwrap();
        let c = kernels
            .compact(ctx, d, (form, tokens), &wide_buf, &narrow)
            .unwrap();
        ctx.execute(&c).unwrap();
        let got = ctx.read_f32(&narrow, tokens as usize * h_n * vd).unwrap();
        for t in 0..tokens as usize {
            for h in 0..h_n {
                assert_eq!(
                    &got[(t * h_n + h) * vd..][..vd],
                    &wide[(t * h_n + h) * ad..][..vd]
                );
            }
        }
    }
}
