//! Checking and timing one candidate: first its output on a small shape that divides no tile
//! against the f64 reference (a wrong candidate is rejected, never timed), then the median GPU
//! time of its launch on the model's own shapes.

use super::{Effort, Trial};
use crate::gpu::{Dispatch, GpuContext, PassRecorder};
use crate::kernels::WeightDtype;
use crate::kernels::attention::{self, DecodeAttention, Heads, PrefillAttention};
use crate::kernels::layout::{pad_matrix, padded_cols, random_values};
use crate::kernels::matmul::{self, GemvConfig, Matmul, MatmulConfig, Product, ProductTiles};
use crate::kernels::rmsnorm::{self, NormRows, RmsNorm};
use crate::kernels::verify::{self, compare};
use crate::model::{ModelShape, flops};

/// Timed launches per candidate (after one untimed). The fastest counts: on a shared machine
/// noise only ever adds time, so the minimum is the steadiest estimate of what a kernel can do.
const RUNS: u32 = 5;

/// Buffers shaped like the model's, allocated once for every candidate.
pub struct Bench<'a> {
    ctx: &'a GpuContext,
    dtype: WeightDtype,
    shape: ModelShape,
    /// Rows of the many-row product.
    rows: usize,
    /// K and N of the products timed (the gate|up projection, N capped).
    k: usize,
    n: usize,
    a: wgpu::Buffer,
    w: wgpu::Buffer,
    c: wgpu::Buffer,
    depth: u32,
}

impl<'a> Bench<'a> {
    /// Allocates the timing buffers for `shape`.
    pub fn new(
        ctx: &'a GpuContext,
        shape: &ModelShape,
        dtype: WeightDtype,
        effort: Effort,
    ) -> anyhow::Result<Self> {
        let (rows, n_cap, depth) = match effort {
            Effort::Quick => (64, 2048, 256),
            Effort::Full => (128, 8192, 512),
        };
        let k = shape.d_model as usize;
        let n = ((2 * shape.d_ff) as usize).min(n_cap);
        let kp = padded_cols(k);
        Ok(Self {
            ctx,
            dtype,
            shape: *shape,
            rows,
            k,
            n,
            a: ctx.storage_with(
                "tune-a",
                bytemuck::cast_slice(&random_values(rows * kp, 1, 1.0)),
            )?,
            w: ctx.storage_with(
                "tune-w",
                &dtype.encode_rows(&random_values(n * kp, 2, 0.05), kp),
            )?,
            c: ctx.storage_zeroed("tune-c", (rows * n * 4) as u64)?,
            depth,
        })
    }

    /// A many-row product candidate: checked at 37 × 45 × 29, timed at rows × n × k.
    pub fn product(&self, tiles: ProductTiles, gemv: GemvConfig) -> Trial {
        let config = MatmulConfig { tiles, gemv };
        let work = flops::product_flops(self.rows, self.n, self.k);
        self.trial("product", &tiles, work, || {
            let kernel = Matmul::new(self.ctx, config, self.dtype)?;
            check_product(self.ctx, &kernel, self.dtype, (37, 45, 29))?;
            let d = kernel.dispatch(
                self.ctx,
                &Product::dense(&self.a, &self.w, &self.c, (self.rows, self.n, self.k)),
            )?;
            Ok(vec![d])
        })
    }

    /// A few-row product candidate: checked for every row count 1..=8 at 45 × 29, timed at one
    /// row (decode) × n × k.
    pub fn gemv(&self, tiles: ProductTiles, gemv: GemvConfig) -> Trial {
        let config = MatmulConfig { tiles, gemv };
        let work = flops::product_flops(1, self.n, self.k);
        self.trial("gemv", &gemv, work, || {
            let kernel = Matmul::new(self.ctx, config, self.dtype)?;
            for m in 1..=matmul::GEMV_MAX_ROWS as usize {
                check_product(self.ctx, &kernel, self.dtype, (m, 45, 29))?;
            }
            let d = kernel.dispatch(
                self.ctx,
                &Product::dense(&self.a, &self.w, &self.c, (1, self.n, self.k)),
            )?;
            Ok(vec![d])
        })
    }

    /// An attention workgroup size: prefill attention checked on a small prompt, timed on one
    /// prompt of the model's heads at the tuning depth.
    pub fn prefill_attention(&self, wg: u32) -> Trial {
        let s = &self.shape;
        let p = self.depth;
        let work = flops::attention_flops(
            flops::causal_pairs(p as usize),
            s.n_heads as usize,
            s.head_dim as usize,
        );
        self.trial("prefill-attention", &wg, work, || {
            check_prefill_attention(self.ctx, wg)?;
            let heads = Heads {
                n_heads: s.n_heads,
                n_kv_heads: s.n_kv_heads,
                head_dim: s.head_dim,
                cache_len: p,
            };
            let kernel = PrefillAttention::new(self.ctx, heads, wg)?;
            let ctx = self.ctx;
            let cache = (s.n_kv_heads * p * s.head_dim) as usize;
            let qkv = ctx.storage_with(
                "qkv",
                bytemuck::cast_slice(&random_values(p as usize * s.qkv_dim(), 13, 1.0)),
            )?;
            let k = ctx.storage_with("k", bytemuck::cast_slice(&random_values(cache, 14, 1.0)))?;
            let v = ctx.storage_with("v", bytemuck::cast_slice(&random_values(cache, 15, 1.0)))?;
            let out = ctx.storage_zeroed("o", (p as usize * s.q_dim() * 4) as u64)?;
            Ok(vec![kernel.dispatch(ctx, (1, p), &qkv, &k, &v, &out)?])
        })
    }

    /// A decode-attention split length: checked on a small cache, timed on one sequence of
    /// the model's heads at the tuning depth.
    pub fn decode_attention(&self, wg: u32, split_len: u32) -> Trial {
        let s = &self.shape;
        let kv_len = self.depth + 1;
        let work =
            flops::attention_flops(f64::from(kv_len), s.n_heads as usize, s.head_dim as usize);
        self.trial("decode-attention", &split_len, work, || {
            let heads = Heads {
                n_heads: s.n_heads,
                n_kv_heads: s.n_kv_heads,
                head_dim: s.head_dim,
                cache_len: kv_len,
            };
            let kernel = DecodeAttention::new(self.ctx, heads, wg, split_len)?;
            check_decode_attention(self.ctx, wg, split_len)?;
            let ctx = self.ctx;
            let cache = (s.n_kv_heads * kv_len * s.head_dim) as usize;
            let qkv = ctx.storage_with(
                "q",
                bytemuck::cast_slice(&random_values(s.qkv_dim(), 3, 1.0)),
            )?;
            let k = ctx.storage_with("k", bytemuck::cast_slice(&random_values(cache, 4, 1.0)))?;
            let v = ctx.storage_with("v", bytemuck::cast_slice(&random_values(cache, 5, 1.0)))?;
            let partials = ctx.storage_zeroed("partials", kernel.partials_bytes(1, kv_len))?;
            let out = ctx.storage_zeroed("o", (s.q_dim() * 4) as u64)?;
            Ok(kernel
                .dispatch(ctx, (1, kv_len), &qkv, &k, &v, &partials, &out)?
                .to_vec())
        })
    }

    /// An RMSNorm workgroup size: checked against the reference, timed on `rows` rows of the
    /// model's width.
    pub fn norm(&self, wg: u32) -> Trial {
        let d = self.shape.d_model as usize;
        let bytes = (2 * self.rows * d * 4) as f64;
        self.trial("norm", &wg, bytes, || {
            let ctx = self.ctx;
            let kernel = RmsNorm::new(ctx, wg)?;
            let dp = padded_cols(d);
            let x = random_values(self.rows * d, 6, 1.0);
            let gamma = random_values(d, 7, 1.0);
            let x_buf = ctx.storage_with(
                "x",
                bytemuck::cast_slice(&pad_matrix(&x, self.rows, d, self.rows)),
            )?;
            let g_buf =
                ctx.storage_with("g", bytemuck::cast_slice(&pad_matrix(&gamma, 1, d, 1)))?;
            let y_buf = ctx.storage_zeroed("y", (self.rows * dp * 4) as u64)?;
            let rows = NormRows {
                rows: self.rows as u32,
                d: d as u32,
                in_off4: 0,
                in_stride4: (dp / 4) as u32,
            };
            let launch = kernel.dispatch(ctx, rows, &x_buf, &g_buf, &y_buf)?;
            ctx.execute(&launch)?;
            let y = ctx.read_f32(&y_buf, dp)?;
            let want = rmsnorm::reference(
                &x[..d].iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                &gamma,
            );
            ensure_correct(compare(&y[..d], &want, verify::NMSE_F32, "norm".into()))?;
            Ok(vec![launch])
        })
    }

    /// Builds a candidate's launches with `build` (which also checks it), then times them.
    /// `work` is FLOPs (or bytes for norms) of one launch, for the rate.
    fn trial<T: serde::Serialize>(
        &self,
        kernel: &str,
        candidate: &T,
        work: f64,
        build: impl FnOnce() -> anyhow::Result<Vec<Dispatch>>,
    ) -> Trial {
        let candidate = serde_json::to_string(candidate).unwrap_or_default();
        let timed = build().and_then(|launches| {
            let work_ref: &dyn PassRecorder = &launches;
            self.ctx.time_runs(work_ref, 1)?;
            let t = self.ctx.time_runs(work_ref, RUNS)?;
            Ok(t.into_iter().fold(f64::INFINITY, f64::min))
        });
        match timed {
            Ok(best_s) => Trial {
                kernel: kernel.into(),
                candidate,
                best_s: Some(best_s),
                rate: Some(work / best_s / 1e9),
                rejected: None,
            },
            Err(e) => Trial {
                kernel: kernel.into(),
                candidate,
                best_s: None,
                rate: None,
                rejected: Some(format!("{e:#}")),
            },
        }
    }
}

fn ensure_correct(c: crate::result::Correctness) -> anyhow::Result<()> {
    match c.failure {
        None => Ok(()),
        Some(why) => anyhow::bail!("wrong output: {why}"),
    }
}

/// One product on a small shape against the f64 reference.
fn check_product(
    ctx: &GpuContext,
    kernel: &Matmul,
    dtype: WeightDtype,
    (m, n, k): (usize, usize, usize),
) -> anyhow::Result<()> {
    let a = random_values(m * k, 8, 1.0);
    let (w_bytes, w) = matmul::encode_weights(dtype, &random_values(k * n, 9, 1.0), k, n);
    let a_buf = ctx.storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)))?;
    let w_buf = ctx.storage_with("W", &w_bytes)?;
    let c_buf = ctx.storage_zeroed("C", (m * n * 4) as u64)?;
    ctx.execute(&kernel.dispatch(ctx, &Product::dense(&a_buf, &w_buf, &c_buf, (m, n, k)))?)?;
    let c = ctx.read_f32(&c_buf, m * n)?;
    let want = matmul::reference_rows(&a, &w, (n, k), &(0..m).collect::<Vec<_>>());
    ensure_correct(compare(
        &c,
        &want,
        verify::nmse_threshold(dtype),
        "product".into(),
    ))
}

/// Decode attention on a small cache (2 query heads per KV head, 77 keys) against f64.
fn check_decode_attention(ctx: &GpuContext, wg: u32, split_len: u32) -> anyhow::Result<()> {
    let heads = Heads {
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 16,
        cache_len: 80,
    };
    let kv_len = 77u32;
    let hd = 16usize;
    let stride = 8 * hd;
    let cache = 2 * 80 * hd;
    let qkv = random_values(stride, 10, 1.0);
    let k = random_values(cache, 11, 1.0);
    let v = random_values(cache, 12, 1.0);
    let kernel = DecodeAttention::new(ctx, heads, wg, split_len)?;
    let partials = ctx.storage_zeroed("partials", kernel.partials_bytes(1, kv_len))?;
    let out = ctx.storage_zeroed("o", (4 * hd * 4) as u64)?;
    let (q_b, k_b, v_b) = (
        ctx.storage_with("q", bytemuck::cast_slice(&qkv))?,
        ctx.storage_with("k", bytemuck::cast_slice(&k))?,
        ctx.storage_with("v", bytemuck::cast_slice(&v))?,
    );
    ctx.execute(
        &kernel
            .dispatch(ctx, (1, kv_len), &q_b, &k_b, &v_b, &partials, &out)?
            .to_vec(),
    )?;
    let got = ctx.read_f32(&out, 4 * hd)?;
    let want: Vec<f64> = (0..4)
        .flat_map(|head| {
            attention::reference_from_cache(&heads, &qkv, 0, 0, head, kv_len as usize, &k, &v)
        })
        .collect();
    ensure_correct(compare(
        &got,
        &want,
        verify::NMSE_F32,
        "decode attention".into(),
    ))
}

/// Prefill attention on a 19-token prompt (2 query heads per KV head) against f64.
fn check_prefill_attention(ctx: &GpuContext, wg: u32) -> anyhow::Result<()> {
    let (p, hd) = (19usize, 16usize);
    let heads = Heads {
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: hd as u32,
        cache_len: p as u32,
    };
    let stride = 8 * hd;
    let cache = 2 * p * hd;
    let qkv = random_values(p * stride, 16, 1.0);
    let k = random_values(cache, 17, 1.0);
    let v = random_values(cache, 18, 1.0);
    let kernel = PrefillAttention::new(ctx, heads, wg)?;
    let out = ctx.storage_zeroed("o", (p * 4 * hd * 4) as u64)?;
    let (q_b, k_b, v_b) = (
        ctx.storage_with("q", bytemuck::cast_slice(&qkv))?,
        ctx.storage_with("k", bytemuck::cast_slice(&k))?,
        ctx.storage_with("v", bytemuck::cast_slice(&v))?,
    );
    ctx.execute(&kernel.dispatch(ctx, (1, p as u32), &q_b, &k_b, &v_b, &out)?)?;
    let got = ctx.read_f32(&out, p * 4 * hd)?;
    let want: Vec<f64> = (0..p)
        .flat_map(|t| (0..4).map(move |head| (t, head)))
        .flat_map(|(t, head)| {
            attention::reference_from_cache(&heads, &qkv, t, 0, head, t + 1, &k, &v)
        })
        .collect();
    ensure_correct(compare(
        &got,
        &want,
        verify::NMSE_F32,
        "prefill attention".into(),
    ))
}
