//! Checking and timing one candidate: first its output on a small shape that divides no tile
//! against the f64 reference (a wrong candidate is rejected, never timed), then the fastest GPU
//! time of its launches at the run's own shapes: products at the run's rows, GEMV over weights
//! several times the last-level cache (rotating copies, as decode streams distinct layers),
//! attention at the run's prompt and at each decode depth.

use super::{Effort, Target, Trial};
use crate::gpu::{Dispatch, GpuContext, PassRecorder};
use crate::kernels::attention::{
    self, AttentionTiles, DecodeAttention, DecodeAttentionLayout, Heads, PrefillAttention,
    RandomInputs,
};
use crate::kernels::layout::{pad_matrix, padded_cols, random_values};
use crate::kernels::matmul::{self, GemvConfig, Matmul, MatmulConfig, Product, ProductTiles};
use crate::kernels::rmsnorm::{self, NormRows, RmsNorm};
use crate::kernels::rope::{self, RopeCache, RopeGeometry};
use crate::kernels::swiglu::{self, SwiGlu};
use crate::kernels::verify::{self, compare};
use crate::kernels::{KvDtype, WeightDtype};
use crate::model::{ModelShape, Pass, Phase, flops};
use crate::workload::forward::heads_of;

/// Most timed launches per candidate (after one untimed), and the time they should take, by
/// effort: a candidate whose untimed launch is long gets fewer (at least one), so a quick tune
/// of GEMV over weights past the cache stays short. The fastest counts: on a shared machine noise
/// only ever adds time, so the minimum is the steadiest estimate of what a kernel can do.
fn runs(effort: Effort) -> (u32, f64) {
    match effort {
        Effort::Quick => (3, 0.5),
        Effort::Full => (5, 5.0),
    }
}

/// The many-row product's buffers: A (rows × k), W (n × k), C.
struct ProductBuffers {
    rows: usize,
    n: usize,
    a: wgpu::Buffer,
    w: wgpu::Buffer,
    c: wgpu::Buffer,
}

/// The GEMV's buffers: A (up to 8 rows), copies of one weight matrix that together exceed the
/// last-level cache, C.
struct GemvBuffers {
    rows: usize,
    n: usize,
    a: wgpu::Buffer,
    weights: Vec<wgpu::Buffer>,
    c: wgpu::Buffer,
}

/// Buffers shaped like the run's, allocated once for every candidate.
pub struct Bench<'a> {
    ctx: &'a GpuContext,
    target: &'a Target,
    /// Most timed launches per candidate, and the seconds they should take.
    runs: (u32, f64),
    /// K of the products timed (d_model).
    k: usize,
    product: Option<ProductBuffers>,
    gemv: Option<GemvBuffers>,
}

impl<'a> Bench<'a> {
    /// Allocates the timing buffers for `target`.
    pub fn new(ctx: &'a GpuContext, target: &'a Target, effort: Effort) -> anyhow::Result<Self> {
        let shape = &target.shape;
        let dtype = target.dtype;
        let k = shape.d_model as usize;
        let kp = padded_cols(k);
        // The gate|up projection, the widest; the many-row product's columns capped (its tiles
        // behave alike across columns; rows are what the run sets).
        let n_cap = match effort {
            Effort::Quick => 2048,
            Effort::Full => 8192,
        };
        let row_bytes = dtype.row_bytes(kp) as u64;
        let widest = (2 * shape.d_ff) as usize;
        let product = match target.product_rows() {
            Some(rows) => {
                let n = widest.min(n_cap);
                Some(ProductBuffers {
                    rows,
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
                })
            }
            None => None,
        };
        let gemv = match target.gemv_rows() {
            Some(rows) => {
                let n = widest.min((ctx.max_binding_bytes() / row_bytes) as usize);
                // The encoded matrix, padding and spare word included: what each copy holds.
                let encoded = dtype.encode_rows(&random_values(n * kp, 2, 0.05), kp);
                let matrix_bytes = encoded.len() as u64;
                let copies = target.gemv_weight_bytes().div_ceil(matrix_bytes).max(1);
                let first = ctx.storage_with("tune-gemv-w", &encoded)?;
                // Copies made on the device: every page is written, so none is a shared zero
                // page the CPU could keep in cache.
                let mut weights = vec![first];
                let mut encoder = ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
                for _ in 1..copies {
                    let copy = ctx.storage_zeroed("tune-gemv-w", matrix_bytes)?;
                    encoder.copy_buffer_to_buffer(&weights[0], 0, &copy, 0, matrix_bytes);
                    weights.push(copy);
                }
                ctx.queue.submit([encoder.finish()]);
                ctx.wait_idle()?;
                Some(GemvBuffers {
                    rows,
                    n,
                    a: ctx.storage_with(
                        "tune-gemv-a",
                        bytemuck::cast_slice(&random_values(rows * kp, 1, 1.0)),
                    )?,
                    weights,
                    c: ctx.storage_zeroed("tune-gemv-c", (rows * n * 4) as u64)?,
                })
            }
            None => None,
        };
        ctx.take_device_error()?;
        Ok(Self {
            ctx,
            target,
            runs: runs(effort),
            k,
            product,
            gemv,
        })
    }

    fn shape(&self) -> &ModelShape {
        &self.target.shape
    }

    fn dtype(&self) -> WeightDtype {
        self.target.dtype
    }

    /// Bytes of GEMV weights each GEMV candidate streams per timed execution.
    pub fn gemv_bytes(&self) -> u64 {
        self.gemv
            .as_ref()
            .map_or(0, |g| g.weights.iter().map(wgpu::Buffer::size).sum::<u64>())
    }

    /// A many-row product candidate: checked at 37 × 45 × 29, timed at the run's rows × n × k.
    pub fn product(&self, tiles: ProductTiles, gemv: GemvConfig) -> Trial {
        let config = MatmulConfig { tiles, gemv };
        let Some(b) = &self.product else {
            return rejected("product", &tiles, "the run has no many-row product");
        };
        let work = flops::product_flops(b.rows, b.n, self.k);
        self.trial("product", &tiles, work, || {
            let kernel = Matmul::new(self.ctx, config, self.dtype())?;
            check_product(self.ctx, &kernel, self.dtype(), (37, 45, 29))?;
            let d = kernel.dispatch(
                self.ctx,
                &Product::dense(&b.a, &b.w, &b.c, (b.rows, b.n, self.k)),
            )?;
            Ok(vec![d])
        })
    }

    /// A few-row product candidate: checked for every row count 1..=8 at 45 × 29, timed at the
    /// run's rows over every copy of the weights (more bytes than the last-level cache holds).
    pub fn gemv(&self, tiles: ProductTiles, gemv: GemvConfig) -> Trial {
        let config = MatmulConfig { tiles, gemv };
        let Some(b) = &self.gemv else {
            return rejected("gemv", &gemv, "the run has no few-row product");
        };
        let work = flops::product_flops(b.rows, b.n, self.k) * b.weights.len() as f64;
        self.trial("gemv", &gemv, work, || {
            let kernel = Matmul::new(self.ctx, config, self.dtype())?;
            for m in 1..=matmul::GEMV_MAX_ROWS as usize {
                check_product(self.ctx, &kernel, self.dtype(), (m, 45, 29))?;
            }
            b.weights
                .iter()
                .map(|w| {
                    kernel.dispatch(
                        self.ctx,
                        &Product::dense(&b.a, w, &b.c, (b.rows, b.n, self.k)),
                    )
                })
                .collect()
        })
    }

    /// The target's attention heads over `cache_len` positions, without a window or sinks.
    fn heads(&self, cache_len: u32) -> Heads {
        Heads {
            sinks: false,
            ..heads_of(self.shape(), cache_len, 0, self.target.kv)
        }
    }

    /// A prefill-attention workgroup size and layout (FlashAttention-2 tiles, or none: a row
    /// per invocation): checked on a small prompt, timed on the run's prefill (its batch of
    /// prompts of its length). `kernel` names the trial.
    pub fn prefill_attention(
        &self,
        kernel: &str,
        pass: Pass,
        wg: u32,
        tiles: Option<AttentionTiles>,
    ) -> Trial {
        let s = *self.shape();
        let (b, p) = (pass.batch, pass.len);
        let work = f64::from(b)
            * flops::attention_flops(
                flops::causal_pairs(p as usize),
                s.n_heads as usize,
                s.head_dim as usize,
            );
        let candidate = serde_json::json!({ "wg": wg, "tiles": tiles });
        self.trial(kernel, &candidate, work, || {
            check_prefill_attention(self.ctx, wg, tiles)?;
            let heads = self.heads(p);
            let kernel = PrefillAttention::new(self.ctx, heads, wg, tiles)?;
            let ctx = self.ctx;
            let inputs = RandomInputs::new(ctx, &heads, ((b * p) as usize, b as usize), 13)?;
            let [qkv, k, v] = &inputs.buffers;
            let out = ctx.storage_zeroed("o", u64::from(b * p) * s.q_dim() as u64 * 4)?;
            Ok(vec![kernel.dispatch(ctx, (b, p), qkv, k, v, None, &out)?])
        })
    }

    /// Decode attention in `layout` with workgroup `wg` and `split_len` keys per split (the
    /// least, in the workgroup layout): checked on a small cache, timed on the run's batch at
    /// `pass`'s depth. `kernel` names the trial.
    pub fn decode_attention(
        &self,
        kernel: &str,
        pass: Pass,
        layout: DecodeAttentionLayout,
        wg: u32,
        split_len: u32,
    ) -> Trial {
        let s = *self.shape();
        let (b, kv_len) = (pass.batch, pass.len + 1);
        let work = f64::from(b)
            * flops::attention_flops(f64::from(kv_len), s.n_heads as usize, s.head_dim as usize);
        let candidate = serde_json::json!({ "layout": layout, "wg": wg, "split_len": split_len });
        self.trial(kernel, &candidate, work, || {
            let heads = self.heads(kv_len);
            let kernel = DecodeAttention::new(self.ctx, heads, layout, wg, split_len)?;
            check_decode_attention(self.ctx, layout, wg, split_len)?;
            let ctx = self.ctx;
            let inputs = RandomInputs::new(ctx, &heads, (b as usize, b as usize), 3)?;
            let [qkv, k, v] = &inputs.buffers;
            let partials = ctx.storage_zeroed("partials", kernel.partials_bytes(b, kv_len))?;
            let out = ctx.storage_zeroed("o", (b as usize * s.q_dim() * 4) as u64)?;
            Ok(kernel
                .dispatch(ctx, (b, kv_len), qkv, k, v, None, &partials, &out)?
                .to_vec())
        })
    }

    /// The geometry RoPE runs at in the run: its prefill, else its first decode step.
    fn rope_geometry(&self) -> RopeGeometry {
        let s = self.shape();
        let pass = self
            .target
            .prefill()
            .or_else(|| self.target.decodes().first().copied())
            .unwrap_or(Pass::prefill(1, 1));
        let (seq_len, pos_base) = match pass.phase {
            Phase::Prefill => (pass.len, 0),
            Phase::Decode => (1, pass.len),
        };
        RopeGeometry {
            tokens: pass.rows() as u32,
            seq_len,
            pos_base,
            n_heads: s.n_heads,
            n_kv_heads: s.n_kv_heads,
            head_dim: s.head_dim,
            cache_len: pass.cache_len(),
            // Tuned on an f32 cache: the configuration serves every KV format.
            kv: KvDtype::F32,
        }
    }

    /// A RoPE workgroup size: checked on a small geometry, timed at the run's.
    pub fn rope(&self, wg: u32) -> Trial {
        let g = self.rope_geometry();
        // Bytes moved: q and k read and written, v copied, per token.
        let per_token = (2 * (g.n_heads + g.n_kv_heads) + 2 * g.n_kv_heads) * g.head_dim * 4;
        let bytes = f64::from(g.tokens) * f64::from(per_token);
        self.trial("rope", &wg, bytes, || {
            let ctx = self.ctx;
            let kernel = RopeCache::new(ctx, wg)?;
            check_rope(ctx, &kernel)?;
            let batch = g.tokens / g.seq_len;
            let qkv = ctx.storage_with(
                "qkv",
                bytemuck::cast_slice(&random_values(
                    (g.tokens * g.qkv_stride()) as usize,
                    21,
                    1.0,
                )),
            )?;
            let table = ctx.storage_with(
                "rope",
                bytemuck::cast_slice(&rope::table(g.cache_len as usize, g.head_dim as usize)),
            )?;
            let k = ctx.storage_zeroed("k", g.cache_bytes(batch))?;
            let v = ctx.storage_zeroed("v", g.cache_bytes(batch))?;
            Ok(vec![kernel.dispatch(ctx, g, &qkv, &table, &k, &v)?])
        })
    }

    /// A SwiGLU workgroup size: checked against the reference, timed at the run's rows of the
    /// model's width.
    pub fn swiglu(&self, wg: u32) -> Trial {
        let rows = self.target.elementwise_rows();
        let f4 = padded_cols(self.shape().d_ff as usize) / 4;
        // Gate and up read, the product written.
        let bytes = (rows * f4 * 16 * 3) as f64;
        self.trial("swiglu", &wg, bytes, || {
            let ctx = self.ctx;
            let kernel = SwiGlu::new(ctx, wg)?;
            check_swiglu(ctx, &kernel)?;
            let gu = ctx.storage_with(
                "gu",
                bytemuck::cast_slice(&random_values(rows * 2 * f4 * 4, 22, 4.0)),
            )?;
            let out = ctx.storage_zeroed("m", (rows * f4 * 16) as u64)?;
            Ok(vec![kernel.dispatch(
                ctx,
                rows as u32,
                f4 as u32,
                &gu,
                &out,
            )?])
        })
    }

    /// An RMSNorm workgroup size: checked against the reference, timed on the run's rows of
    /// the model's width.
    pub fn norm(&self, wg: u32) -> Trial {
        let rows = self.target.elementwise_rows();
        let d = self.shape().d_model as usize;
        let bytes = (2 * rows * d * 4) as f64;
        self.trial("norm", &wg, bytes, || {
            let ctx = self.ctx;
            let kernel = RmsNorm::new(ctx, wg)?;
            let dp = padded_cols(d);
            let x = random_values(rows * d, 6, 1.0);
            let gamma = random_values(d, 7, 1.0);
            let x_buf =
                ctx.storage_with("x", bytemuck::cast_slice(&pad_matrix(&x, rows, d, rows)))?;
            let g_buf =
                ctx.storage_with("g", bytemuck::cast_slice(&pad_matrix(&gamma, 1, d, 1)))?;
            let y_buf = ctx.storage_zeroed("y", (rows * dp * 4) as u64)?;
            let norm_rows = NormRows {
                rows: rows as u32,
                d: d as u32,
                in_off4: 0,
                in_stride4: (dp / 4) as u32,
            };
            let launch = kernel.dispatch(ctx, norm_rows, &x_buf, &g_buf, &y_buf)?;
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
    /// `work` is FLOPs (or bytes, for the memory-bound kernels) of one execution, for the rate.
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
            let first = self.ctx.time_runs(work_ref, 1)?[0];
            let (most, budget_s) = self.runs;
            let runs = ((budget_s / first.max(1e-9)) as u32).clamp(1, most);
            let t = self.ctx.time_runs(work_ref, runs)?;
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

/// A trial refused before anything ran.
fn rejected<T: serde::Serialize>(kernel: &str, candidate: &T, why: &str) -> Trial {
    Trial {
        kernel: kernel.into(),
        candidate: serde_json::to_string(candidate).unwrap_or_default(),
        best_s: None,
        rate: None,
        rejected: Some(why.into()),
    }
}

/// RoPE on 2 sequences of 3 tokens at position 5 (2 query heads, 1 KV head of 12) against f64:
/// the rotated queries and the keys written to the cache.
fn check_rope(ctx: &GpuContext, kernel: &RopeCache) -> anyhow::Result<()> {
    let g = RopeGeometry {
        tokens: 6,
        seq_len: 3,
        pos_base: 5,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 12,
        cache_len: 9,
        kv: KvDtype::F32,
    };
    let (hd, stride) = (g.head_dim as usize, g.qkv_stride() as usize);
    let qkv = random_values(g.tokens as usize * stride, 23, 1.0);
    let qkv_buf = ctx.storage_with("qkv", bytemuck::cast_slice(&qkv))?;
    let table = ctx.storage_with("rope", bytemuck::cast_slice(&rope::table(9, hd)))?;
    let bytes = g.cache_bytes(2);
    let (k_buf, v_buf) = (
        ctx.storage_zeroed("k", bytes)?,
        ctx.storage_zeroed("v", bytes)?,
    );
    ctx.execute(&kernel.dispatch(ctx, g, &qkv_buf, &table, &k_buf, &v_buf)?)?;
    let got_q = ctx.read_f32(&qkv_buf, qkv.len())?;
    let got_k = ctx.read_f32(&k_buf, (bytes / 4) as usize)?;
    let (mut have, mut want) = (Vec::new(), Vec::new());
    for t in 0..g.tokens as usize {
        let (b, pos) = (t / 3, 5 + t % 3);
        let row = &qkv[t * stride..(t + 1) * stride];
        for (head, at) in [(0, 0), (1, hd), (2, 2 * hd)] {
            let mut x: Vec<f64> = row[at..at + hd].iter().map(|&v| f64::from(v)).collect();
            rope::reference_rotate(&mut x, pos);
            want.extend(x);
            if head < 2 {
                have.extend_from_slice(&got_q[t * stride + at..t * stride + at + hd]);
            } else {
                let slot = (b * 9 + pos) * hd;
                have.extend_from_slice(&got_k[slot..slot + hd]);
            }
        }
    }
    ensure_correct(compare(&have, &want, verify::NMSE_F32, "rope".into()))
}

/// SwiGLU on 3 rows of 17 vec4s against f64.
fn check_swiglu(ctx: &GpuContext, kernel: &SwiGlu) -> anyhow::Result<()> {
    let (rows, f4) = (3usize, 17usize);
    let gu = random_values(rows * 2 * f4 * 4, 24, 6.0);
    let gu_buf = ctx.storage_with("gu", bytemuck::cast_slice(&gu))?;
    let out_buf = ctx.storage_zeroed("m", (rows * f4 * 16) as u64)?;
    ctx.execute(&kernel.dispatch(ctx, rows as u32, f4 as u32, &gu_buf, &out_buf)?)?;
    let got = ctx.read_f32(&out_buf, rows * f4 * 4)?;
    let want: Vec<f64> = (0..rows)
        .flat_map(|r| (0..f4 * 4).map(move |i| (r, i)))
        .map(|(r, i)| {
            let row = &gu[r * 2 * f4 * 4..(r + 1) * 2 * f4 * 4];
            swiglu::reference(f64::from(row[i]), f64::from(row[f4 * 4 + i]))
        })
        .collect();
    ensure_correct(compare(&got, &want, verify::NMSE_F32, "swiglu".into()))
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

/// The attention checks' heads: 4 query heads over 2 KV heads of 16, an f32 cache of
/// `cache_len` positions, no window, no sinks.
fn check_heads(cache_len: u32) -> Heads {
    Heads::causal(4, 2, 16, cache_len)
}

/// Decode attention on a small cache (2 query heads per KV head, 77 keys) against f64.
fn check_decode_attention(
    ctx: &GpuContext,
    layout: DecodeAttentionLayout,
    wg: u32,
    split_len: u32,
) -> anyhow::Result<()> {
    let heads = check_heads(80);
    let kernel = DecodeAttention::new(ctx, heads, layout, wg, split_len)?;
    ensure_correct(attention::verify_decode(ctx, &kernel, (1, 77), 10)?)
}

/// Prefill attention on a 19-token prompt (2 query heads per KV head) against f64.
fn check_prefill_attention(
    ctx: &GpuContext,
    wg: u32,
    tiles: Option<AttentionTiles>,
) -> anyhow::Result<()> {
    let heads = check_heads(19);
    let kernel = PrefillAttention::new(ctx, heads, wg, tiles)?;
    ensure_correct(attention::verify_prefill(ctx, &kernel, (1, 19), 16)?)
}
