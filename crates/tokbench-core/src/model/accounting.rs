//! Analytic FLOP and byte counts of a forward pass, op by op.
//!
//! FLOPs: every product 2·m·n·k; attention 2·head_dim per (query, key) pair for q·k and again
//! for p·v, per query head, counting only causal (unmasked) pairs; small ops a few per element.
//! Bytes: the least traffic each op needs — weights once, activations read and written once,
//! KV cache read (and the new entries written). Dimensions are the model's, not the padded
//! ones the kernels use.

use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

use super::ModelShape;
use super::flops;
use super::mla::{MlaDims, MlaForm};
use crate::dtype::{Formats, WeightDtype};

/// Work of one execution.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes moved to or from device memory.
    pub bytes: f64,
}

impl AddAssign for Work {
    fn add_assign(&mut self, rhs: Self) {
        self.flops += rhs.flops;
        self.bytes += rhs.bytes;
    }
}

/// The two phases of generation.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// The prompt: `batch` prompts of `len` tokens in one forward pass.
    Prefill,
    /// Generation: one new token for each of `batch` sequences whose caches hold `len`
    /// positions.
    Decode,
}

impl Phase {
    /// "prefill" or "decode".
    pub fn name(self) -> &'static str {
        match self {
            Self::Prefill => "prefill",
            Self::Decode => "decode",
        }
    }
}

/// One forward pass of a phase: what is timed as one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pass {
    /// Prefill or decode.
    pub phase: Phase,
    /// Sequences.
    pub batch: u32,
    /// Prompt length (prefill) or KV depth before the step (decode).
    pub len: u32,
}

impl Pass {
    /// A pass of `phase` over `batch` sequences of `len` (prompt length or KV depth).
    pub const fn new(phase: Phase, batch: u32, len: u32) -> Self {
        Self { phase, batch, len }
    }

    /// A prefill of `batch` prompts of `len` tokens each.
    pub const fn prefill(batch: u32, len: u32) -> Self {
        Self::new(Phase::Prefill, batch, len)
    }

    /// A decode step of `batch` sequences at KV depth `depth`.
    pub const fn decode(batch: u32, depth: u32) -> Self {
        Self::new(Phase::Decode, batch, depth)
    }

    /// Tokens one execution produces: batch · prompt length for prefill, batch for decode.
    pub fn tokens(&self) -> u64 {
        match self.phase {
            Phase::Prefill => u64::from(self.batch) * u64::from(self.len),
            Phase::Decode => u64::from(self.batch),
        }
    }

    /// Rows of activations through the layers.
    pub fn rows(&self) -> usize {
        self.tokens() as usize
    }

    /// Positions each cache must hold.
    pub fn cache_len(&self) -> u32 {
        match self.phase {
            Phase::Prefill => self.len,
            Phase::Decode => self.len + 1,
        }
    }

    /// The passes a run of these sizes measures, in this order: each phase, then each batch,
    /// then (decode) each depth.
    pub fn sweep(phases: &[Phase], batches: &[u32], prompt_len: u32, depths: &[u32]) -> Vec<Pass> {
        let mut passes = Vec::new();
        for &phase in phases {
            for &batch in batches {
                match phase {
                    Phase::Prefill => passes.push(Pass::prefill(batch, prompt_len)),
                    Phase::Decode => {
                        passes.extend(depths.iter().map(|&len| Pass::decode(batch, len)))
                    }
                }
            }
        }
        passes
    }
}

/// One op's share of a forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct OpWork {
    /// Op name, for example "qkv" or "attention".
    pub op: &'static str,
    /// Times it runs per pass (the number of layers, or 1).
    pub count: u32,
    /// Work of one run.
    pub work: Work,
}

/// Work of every op of a pass through `layers` layers of `shape` with weights and KV cache in
/// `formats` (the cache write and attention's reads count [`crate::dtype::KvDtype::row_bytes`] per cached
/// head row, q8_0's scales and block padding included; multi-head latent attention's latent
/// cache is f32 whatever `formats.kv`). A mixture-of-experts layer's expert products stream the weights
/// of the experts the batch is expected to touch ([`ModelShape::expected_experts_touched`]);
/// [`ops_touching`] takes a measured count instead.
pub fn ops(shape: &ModelShape, layers: u32, formats: Formats, pass: Pass) -> Vec<OpWork> {
    ops_touching(
        shape,
        layers,
        formats,
        pass,
        shape.expected_experts_touched(pass.tokens()),
    )
}

/// [`ops`] with `touched` routed experts per mixture-of-experts layer (a pass's mean).
pub fn ops_touching(
    shape: &ModelShape,
    layers: u32,
    formats: Formats,
    pass: Pass,
    touched: f64,
) -> Vec<OpWork> {
    let (dtype, kv_dtype) = (formats.dense, formats.kv);
    let t = pass.rows();
    let (d, f, v) = (
        shape.d_model as usize,
        shape.d_ff as usize,
        shape.vocab as usize,
    );
    let (q, kv, hd) = (shape.q_dim(), shape.kv_dim(), shape.head_dim as usize);
    let heads = shape.n_heads as usize;
    let f32b = 4.0;
    let act = |rows: usize, cols: usize| rows as f64 * cols as f64 * f32b;
    let product = |m: usize, n: usize, k: usize| Work {
        flops: flops::product_flops(m, n, k),
        bytes: flops::product_bytes(m, n, k, dtype),
    };
    let norm = |rows: usize| Work {
        flops: flops::rmsnorm_flops(rows, d),
        bytes: 2.0 * act(rows, d) + act(1, d),
    };
    // Residual add fused into a product: read the old value, add.
    let with_residual = |mut w: Work, rows: usize| {
        w.flops += (rows * d) as f64;
        w.bytes += act(rows, d);
        w
    };
    let b = pass.batch as usize;
    // (query, key) pairs per sequence and head, and keys read per sequence, of a layer whose
    // window is `w` positions (0: all).
    let span = |w: u32| -> (f64, f64) {
        let w = if w == 0 { u32::MAX } else { w } as usize;
        match pass.phase {
            Phase::Prefill => {
                let p = pass.len as usize;
                let pairs = if w >= p {
                    flops::causal_pairs(p)
                } else {
                    flops::causal_pairs(w) + ((p - w) * w) as f64
                };
                (pairs, p as f64)
            }
            Phase::Decode => {
                let keys = (pass.len as usize + 1).min(w) as f64;
                (keys, keys)
            }
        }
    };
    // One cached head row (K or V of one position) as the cache stores it.
    let kv_row = kv_dtype.row_bytes(hd) as f64;
    let kv_heads = shape.n_kv_heads as f64;
    let attention = |w: u32| {
        let (pairs, keys) = span(w);
        Work {
            flops: flops::attention_flops(b as f64 * pairs, heads, hd),
            bytes: act(t, q) + b as f64 * keys * 2.0 * kv_heads * kv_row + act(t, q),
        }
    };
    let kinds: Vec<_> = (0..layers).map(|l| shape.layer_kind(l, layers)).collect();
    let count = |pred: &dyn Fn(&crate::model::LayerKind) -> bool| {
        kinds.iter().filter(|k| pred(k)).count() as u32
    };
    let (moe_layers, windowed) = (count(&|k| k.moe), count(&|k| k.window > 0));
    let lm_rows = b; // prefill: the last position of each prompt; decode: every sequence
    let per = |op, count, work| OpWork { op, count, work };
    let mut out = vec![
        per(
            "embed",
            1,
            Work {
                flops: 0.0,
                bytes: 2.0 * act(t, d),
            },
        ),
        per("attn_norm", layers, norm(t)),
    ];
    if shape.is_mla() {
        let mla = mla_ops(shape, dtype, pass, &span);
        out.extend(mla.into_iter().map(|(op, work)| {
            let count = match op {
                "mla_attention" => layers - windowed,
                "mla_attention_windowed" => windowed,
                _ => layers,
            };
            per(op, count, work)
        }));
        let o = (shape.n_heads * shape.v_head_dim) as usize;
        out.push(per("o_proj", layers, with_residual(product(t, d, o), t)));
    } else {
        out.extend([
            per("qkv", layers, product(t, q + 2 * kv, d)),
            per(
                "rope_kv_write",
                layers,
                Work {
                    flops: t as f64
                        * (heads + shape.n_kv_heads as usize) as f64
                        * flops::rope_flops_per_head(hd),
                    // Read q|k|v, write q back and k, v into the cache.
                    bytes: act(t, q + 2 * kv) + act(t, q) + t as f64 * 2.0 * kv_heads * kv_row,
                },
            ),
            per("attention", layers - windowed, attention(0)),
            per("attention_windowed", windowed, attention(shape.window)),
            per("o_proj", layers, with_residual(product(t, d, q), t)),
        ]);
    }
    out.push(per("ffn_norm", layers, norm(t)));
    let swiglu = |rows: usize, width: usize| Work {
        flops: flops::SWIGLU_FLOPS_PER_ELEMENT * (rows * width) as f64,
        bytes: act(rows, 2 * width) + act(rows, width),
    };
    let dense = layers - moe_layers;
    out.extend([
        per("gate_up", dense, product(t, 2 * f, d)),
        per("swiglu", dense, swiglu(t, f)),
        per("down", dense, with_residual(product(t, d, f), t)),
    ]);
    if moe_layers > 0 {
        let (e, k, fe) = (
            shape.n_experts as usize,
            shape.n_experts_active as usize,
            shape.d_ff_expert as usize,
        );
        let tk = t * k;
        // Only the touched experts' weights are read; each is read once per pass.
        let experts = |n: usize, kk: usize| Work {
            flops: flops::product_flops(tk, n, kk),
            bytes: touched * formats.experts.matrix_bytes(n, kk) + act(tk, kk) + act(tk, n),
        };
        let fs = shape.n_shared_experts as usize * fe;
        out.extend([
            per("router", moe_layers, product(t, e, d)),
            per(
                "route",
                moe_layers,
                Work {
                    flops: (t * e) as f64,
                    bytes: act(t, e) + act(tk, 3),
                },
            ),
            per("experts_gate_up", moe_layers, experts(2 * fe, d)),
            per("experts_swiglu", moe_layers, swiglu(tk, fe)),
            per("experts_down", moe_layers, experts(d, fe)),
            per(
                "experts_combine",
                moe_layers,
                Work {
                    flops: 2.0 * (tk * d) as f64,
                    bytes: act(tk, d) + 2.0 * act(t, d),
                },
            ),
        ]);
        if fs > 0 {
            out.extend([
                per("shared_gate_up", moe_layers, product(t, 2 * fs, d)),
                per("shared_swiglu", moe_layers, swiglu(t, fs)),
                per(
                    "shared_down",
                    moe_layers,
                    with_residual(product(t, d, fs), t),
                ),
            ]);
        }
    }
    out.extend([
        per("final_norm", 1, norm(lm_rows)),
        per("lm_head", 1, product(lm_rows, v, d)),
    ]);
    out.retain(|o| o.count > 0);
    out
}

/// The ops of one multi-head latent attention layer before its output projection, in the form
/// the pass runs ([`MlaForm::for_phase`]): what the kernels compute and stream, the latent cache
/// read once per sequence (absorbed) or every cached row decompressed (decompressed). `span(w)`
/// gives (query-key pairs, keys read) per sequence and head for a window of `w`; the windowed
/// op uses the model's window.
fn mla_ops(
    shape: &ModelShape,
    dtype: WeightDtype,
    pass: Pass,
    span: &dyn Fn(u32) -> (f64, f64),
) -> Vec<(&'static str, Work)> {
    let m = MlaDims::of(shape);
    let form = MlaForm::for_phase(pass.phase);
    let (t, b) = (pass.rows(), pass.batch as usize);
    let d = shape.d_model as usize;
    let (h, lat, r, nope, vd) = m.widths();
    let ql = shape.q_lora_rank as usize;
    let q_width = super::mla::q_width(shape) as usize;
    let act = |rows: usize, cols: usize| rows as f64 * cols as f64 * 4.0;
    let product = |m: usize, n: usize, k: usize, dt: WeightDtype| Work {
        flops: flops::product_flops(m, n, k),
        bytes: flops::product_bytes(m, n, k, dt),
    };
    let norm = |width: usize| Work {
        flops: flops::rmsnorm_flops(t, width),
        bytes: 2.0 * act(t, width) + act(1, width),
    };
    let att = form.att_dim(m) as usize;
    let mut out = vec![("mla_a", product(t, q_width + lat + r, d, dtype))];
    if ql > 0 {
        out.extend([
            ("mla_q_norm", norm(ql)),
            ("mla_q_b", product(t, h * (nope + r), ql, dtype)),
        ]);
    }
    let q_written = match form {
        MlaForm::Absorbed => h * r,
        MlaForm::Decompressed => h * (nope + r),
    };
    out.extend([
        ("mla_kv_norm", norm(lat)),
        (
            "mla_rope_latent_write",
            Work {
                flops: (t * (h + 1)) as f64 * flops::rope_flops_per_head(r),
                bytes: act(t, h * (nope + r))
                    + act(t, lat + r)
                    + act(t, q_written)
                    + act(t, lat + r),
            },
        ),
    ]);
    // Attention over the span of a window: (q·k width, p·v width, bytes of K and V per key
    // and sequence) of the form.
    let (qk, pv, kv_row) = match form {
        MlaForm::Absorbed => (lat + r, lat + r, act(1, lat + r)),
        MlaForm::Decompressed => (att, att, 2.0 * act(h, att)),
    };
    let attention = |w: u32| {
        let (pairs, keys) = span(w);
        let pairs = b as f64 * pairs;
        Work {
            flops: 2.0 * pairs * h as f64 * (qk + pv) as f64,
            bytes: act(t, h * att) + b as f64 * keys * kv_row + act(t, h * att),
        }
    };
    match form {
        MlaForm::Absorbed => {
            let uk = crate::model::mla::uk_dtype(dtype);
            out.push(("mla_absorb_q", product(t, h * lat, nope, uk)));
            out.push(("mla_attention", attention(0)));
            out.push(("mla_attention_windowed", attention(shape.window)));
            out.push(("mla_absorb_out", product(t, h * vd, lat, dtype)));
        }
        MlaForm::Decompressed => {
            // Every cached row of the pass's sequences through W_kv_b, then laid out per head.
            let rows = b * pass.cache_len() as usize;
            out.push(("mla_kv_b", product(rows, h * (nope + vd), lat, dtype)));
            out.push((
                "mla_expand",
                Work {
                    flops: 0.0,
                    bytes: act(rows, h * (nope + vd)) + act(rows, r) + 2.0 * act(rows, h * att),
                },
            ));
            out.push(("mla_attention", attention(0)));
            out.push(("mla_attention_windowed", attention(shape.window)));
            out.push((
                "mla_compact",
                Work {
                    flops: 0.0,
                    bytes: 2.0 * act(t, h * vd),
                },
            ));
        }
    }
    out
}

/// Bytes of every weight matrix `pass` through `layers` layers streams once
/// (projections of each layer, the touched experts' of each mixture-of-experts layer, then the
/// LM head), from the format's exact bits per weight, scales included.
pub fn weight_bytes(shape: &ModelShape, layers: u32, formats: Formats, pass: Pass) -> f64 {
    let (dtype, tokens) = (formats.dense, pass.tokens());
    let (d, f, v) = (
        shape.d_model as usize,
        shape.d_ff as usize,
        shape.vocab as usize,
    );
    let (q, kv) = (shape.q_dim(), shape.kv_dim());
    let attention = if shape.is_mla() {
        mla_weight_bytes(shape, dtype, MlaForm::for_phase(pass.phase))
    } else {
        dtype.matrix_bytes(q + 2 * kv, d) + dtype.matrix_bytes(d, q)
    };
    let ffn_in = |dtype: WeightDtype, width: usize| {
        dtype.matrix_bytes(2 * width, d) + dtype.matrix_bytes(d, width)
    };
    let ffn = |width: usize| ffn_in(dtype, width);
    let moe = shape.moe_layers(layers);
    let fe = shape.d_ff_expert as usize;
    let moe_ffn = dtype.matrix_bytes(shape.n_experts as usize, d)
        + shape.expected_experts_touched(tokens) * ffn_in(formats.experts, fe)
        + ffn(shape.n_shared_experts as usize * fe);
    f64::from(layers) * attention
        + f64::from(layers - moe) * ffn(f)
        + f64::from(moe) * moe_ffn
        + dtype.matrix_bytes(v, d)
}

/// Bytes of the attention weights of one MLA layer that a pass in `form` streams: the input
/// projection, the query's decompression, W_kv_b (all of it decompressed; its value rows,
/// W_UV, absorbed, with W_UK beside them) and the output projection.
fn mla_weight_bytes(shape: &ModelShape, dtype: WeightDtype, form: MlaForm) -> f64 {
    let d = shape.d_model as usize;
    let (h, lat, r, nope, vd) = MlaDims::of(shape).widths();
    let ql = shape.q_lora_rank as usize;
    let q = if ql > 0 {
        dtype.matrix_bytes(ql + lat + r, d) + dtype.matrix_bytes(h * (nope + r), ql)
    } else {
        dtype.matrix_bytes(h * (nope + r) + lat + r, d)
    };
    let kv_b = match form {
        MlaForm::Decompressed => dtype.matrix_bytes(h * (nope + vd), lat),
        MlaForm::Absorbed => {
            dtype.matrix_bytes(h * vd, lat)
                + crate::model::mla::uk_dtype(dtype).matrix_bytes(h * lat, nope)
        }
    };
    q + kv_b + dtype.matrix_bytes(d, h * vd)
}

/// Total work of a pass.
pub fn total(shape: &ModelShape, layers: u32, formats: Formats, pass: Pass) -> Work {
    total_touching(
        shape,
        layers,
        formats,
        pass,
        shape.expected_experts_touched(pass.tokens()),
    )
}

/// Total work of a pass whose mixture-of-experts layers touch `touched` experts each.
pub fn total_touching(
    shape: &ModelShape,
    layers: u32,
    formats: Formats,
    pass: Pass,
    touched: f64,
) -> Work {
    let mut sum = Work::default();
    for op in ops_touching(shape, layers, formats, pass, touched) {
        sum += Work {
            flops: op.work.flops * f64::from(op.count),
            bytes: op.work.bytes * f64::from(op.count),
        };
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::KvDtype;
    use crate::model::presets::find;

    /// f32 weights and cache.
    const F32: (WeightDtype, KvDtype) = (WeightDtype::F32, KvDtype::F32);

    /// Weights of every layer and the head of `s`.
    fn model_weights(s: &ModelShape) -> f64 {
        (u64::from(s.n_layers) * s.layer_params() + s.head_params()) as f64
    }

    /// The op `name` of `pass` through `layers` layers of `s`.
    fn op(
        s: &ModelShape,
        layers: u32,
        formats: impl Into<Formats>,
        pass: Pass,
        name: &str,
    ) -> OpWork {
        ops(s, layers, formats.into(), pass)
            .into_iter()
            .find(|o| o.op == name)
            .unwrap_or_else(|| panic!("no {name} in {pass:?}"))
    }

    /// `--batch 1,8 --depth 20,200`: prefill per batch, then decode per batch at every depth.
    #[test]
    fn a_sweep_runs_every_batch_at_every_depth() {
        let pass = Pass::new;
        let passes = Pass::sweep(&[Phase::Prefill, Phase::Decode], &[1, 8], 64, &[20, 200]);
        assert_eq!(
            passes,
            vec![
                pass(Phase::Prefill, 1, 64),
                pass(Phase::Prefill, 8, 64),
                pass(Phase::Decode, 1, 20),
                pass(Phase::Decode, 1, 200),
                pass(Phase::Decode, 8, 20),
                pass(Phase::Decode, 8, 200),
            ]
        );
    }

    /// The KV cache's bytes follow its format: decode attention at depth 2047 of
    /// smollm2-135m-shape (head_dim 64) reads 2048 keys and values per KV head, 4, 2 and 68/64
    /// bytes per element; the cache write and the weights do not depend on the attention's.
    #[test]
    fn kv_bytes_follow_the_cache_format() {
        let s = find("smollm2-135m-shape").unwrap().shape;
        let pass = Pass::decode(1, 2047);
        let op = |kv, name: &str| op(&s, 1, (WeightDtype::F16, kv), pass, name).work;
        let q = s.q_dim() as f64 * 4.0;
        let cache = |kv| op(kv, "attention").bytes - 2.0 * q;
        let elements = 2048.0 * 2.0 * f64::from(s.n_kv_heads) * f64::from(s.head_dim);
        assert_eq!(cache(KvDtype::F32), elements * 4.0);
        assert_eq!(cache(KvDtype::F16), elements * 2.0);
        assert_eq!(cache(KvDtype::Q8_0), elements * 34.0 / 32.0);
        let write = |kv| op(kv, "rope_kv_write").bytes;
        assert_eq!(
            write(KvDtype::F32) - write(KvDtype::Q8_0),
            2.0 * f64::from(s.n_kv_heads) * f64::from(s.head_dim) * (4.0 - 34.0 / 32.0)
        );
        assert_eq!(
            op(KvDtype::F32, "attention").flops,
            op(KvDtype::Q8_0, "attention").flops
        );
    }

    #[test]
    fn decode_of_llama3_8b_streams_every_weight_once() {
        let s = find("llama3-8b-shape").unwrap().shape;
        let formats = |dtype| Formats::uniform(dtype, KvDtype::F32);
        let whole = |dtype| total(&s, s.n_layers, formats(dtype), Pass::decode(1, 0));
        let w = whole(WeightDtype::F32);
        let weights = model_weights(&s);
        // Two FLOPs per weight, and every weight's bytes, plus a little for the rest.
        assert!(
            (w.flops / (2.0 * weights) - 1.0).abs() < 0.01,
            "{} vs {}",
            w.flops,
            2.0 * weights
        );
        assert!((w.bytes / (4.0 * weights) - 1.0).abs() < 0.01);
        let half = whole(WeightDtype::F16);
        assert!((half.bytes / (2.0 * weights) - 1.0).abs() < 0.01);
    }

    /// The figure: llama3-8b-shape's per-token decode bytes of weights at q4_0 are
    /// 4.5/16 of f16's; and a decode pass's bytes are the weights plus a little.
    #[test]
    fn q4_0_weights_are_4_5_sixteenths_of_f16() {
        let s = find("llama3-8b-shape").unwrap().shape;
        let pass = Pass::decode(1, 0);
        let formats = |dtype| Formats::uniform(dtype, KvDtype::F32);
        let per_token =
            |dtype| weight_bytes(&s, s.n_layers, formats(dtype), pass) / pass.tokens() as f64;
        let q4 = per_token(WeightDtype::Q4_0);
        let f16 = per_token(WeightDtype::F16);
        let ratio = q4 / f16;
        assert!((ratio / (4.5 / 16.0) - 1.0).abs() < 0.005, "{ratio}");
        let weights = model_weights(&s);
        assert!(
            (f16 / (2.0 * weights) - 1.0).abs() < 0.01,
            "{f16} vs {weights} weights"
        );
        let total_q4 = total(&s, s.n_layers, formats(WeightDtype::Q4_0), pass).bytes;
        assert!(total_q4 > q4 && total_q4 < 1.01 * q4, "{total_q4} vs {q4}");
    }

    #[test]
    fn prefill_counts_causal_attention_pairs_only() {
        let s = find("tiny").unwrap().shape;
        let short = Pass::prefill(1, 1);
        let long = Pass::prefill(1, 100);
        let attn = |p| op(&s, 1, F32, p, "attention").work.flops;
        let per_pair = 4.0 * f64::from(s.n_heads * s.head_dim);
        assert_eq!(attn(short), per_pair);
        assert_eq!(attn(long), per_pair * 5050.0);
        assert_eq!(long.tokens(), 100);
    }

    /// The test: a MoE decode step's bytes per token follow the touched-expert count,
    /// E·(1 − (1 − k/E)^B), as the batch grows, and its FLOPs per token stay the active path's.
    #[test]
    fn moe_decode_bytes_grow_with_the_experts_a_batch_touches() {
        let s = find("qwen3-30b-a3b-shape").unwrap().shape;
        let at = |batch| {
            let pass = Pass::decode(batch, 0);
            (
                total(&s, 2, (WeightDtype::F16, KvDtype::F32).into(), pass),
                pass.tokens() as f64,
            )
        };
        let (one, _) = at(1);
        let (eight, tokens) = at(8);
        let expert_bytes = |b: u64| {
            s.expected_experts_touched(b) * WeightDtype::F16.matrix_bytes(768, 2048) * 3.0 * 2.0
        };
        let touched_growth = expert_bytes(8) - expert_bytes(1);
        // 8 of 128 experts at batch 1; 128·(1 − (120/128)^8) ≈ 51.6 at batch 8.
        assert!((s.expected_experts_touched(1) - 8.0).abs() < 1e-9);
        assert!((s.expected_experts_touched(8) - 51.6).abs() < 0.05);
        let growth = eight.bytes - one.bytes;
        assert!(
            (growth / touched_growth - 1.0).abs() < 0.02,
            "bytes grew {growth}, the touched experts' weights {touched_growth}"
        );
        // Per token: bytes fall (shared attention and head weights), FLOPs stay.
        assert!(eight.bytes / tokens < one.bytes);
        assert!((eight.flops / tokens / one.flops - 1.0).abs() < 0.01);
        // Active FLOPs: two per active weight (attention and head included), not total: the
        // whole model computes with 3.3 of its 30.5 billion weights per token.
        let (all, active) = s.params(2);
        assert!((one.flops / (2.0 * active as f64) - 1.0).abs() < 0.02);
        let flops = total(
            &s,
            s.n_layers,
            (WeightDtype::F16, KvDtype::F32).into(),
            Pass::decode(1, 0),
        )
        .flops;
        let (all_weights, _) = s.params(s.n_layers);
        assert!(flops < 0.12 * 2.0 * all_weights as f64, "{flops} {all}");
    }

    /// Experts in their own format (gpt-oss: MXFP4 beside f16): only the routed experts'
    /// bytes change, by the ratio of the two formats' bits per weight.
    #[test]
    fn experts_in_their_own_format_change_only_the_experts_bytes() {
        let s = find("gpt-oss-20b-shape").unwrap().shape;
        let pass = Pass::decode(8, 512);
        let f16 = Formats::uniform(WeightDtype::F16, KvDtype::F16);
        let mixed = Formats {
            experts: WeightDtype::Mxfp4,
            ..f16
        };
        let bytes = |formats: Formats, name: &str| op(&s, 2, formats, pass, name).work.bytes;
        for op in ["qkv", "router", "lm_head"] {
            assert_eq!(bytes(f16, op), bytes(mixed, op), "{op}");
        }
        let weights = |formats| {
            s.expected_experts_touched(8) * WeightDtype::matrix_bytes(formats, 2 * 2880, 2880)
        };
        let saved = bytes(f16, "experts_gate_up") - bytes(mixed, "experts_gate_up");
        let want = weights(WeightDtype::F16) - weights(WeightDtype::Mxfp4);
        assert!((saved / want - 1.0).abs() < 1e-9, "{saved} {want}");
        // Both MoE layers' gate|up and down (each 2880 × 2880 per half) and nothing else.
        let whole = |formats| weight_bytes(&s, 2, formats, pass);
        let experts_saved = 2.0 * 3.0 * want / 2.0;
        let whole_saved = whole(f16) - whole(mixed);
        assert!(
            (whole_saved / experts_saved - 1.0).abs() < 1e-9,
            "{whole_saved} {experts_saved}"
        );
    }

    #[test]
    fn windowed_layers_read_at_most_the_window() {
        let s = find("tiny-swa").unwrap().shape;
        let decode = Pass::decode(1, 99);
        let decode_op = |name| op(&s, 2, F32, decode, name);
        let (full, windowed) = (decode_op("attention"), decode_op("attention_windowed"));
        assert_eq!((full.count, windowed.count), (1, 1));
        let per_key = 4.0 * f64::from(s.n_heads * s.head_dim);
        assert_eq!(full.work.flops, 100.0 * per_key);
        assert_eq!(windowed.work.flops, 5.0 * per_key);
        let prefill = Pass::prefill(1, 7);
        let w = op(&s, 2, F32, prefill, "attention_windowed");
        // Positions 0..4 see 1..5 keys, positions 5 and 6 see 5 each.
        assert_eq!(w.work.flops, (15.0 + 10.0) * per_key);
    }

    #[test]
    fn decode_attention_grows_with_depth() {
        let s = find("tiny").unwrap().shape;
        let at = |len| op(&s, 1, F32, Pass::decode(2, len), "attention").work;
        assert_eq!(
            at(99).flops,
            2.0 * 100.0 * 4.0 * f64::from(s.n_heads * s.head_dim)
        );
        assert!(at(999).bytes > 9.0 * at(99).bytes);
    }

    /// MLA decode reads the latent cache, one row of kv_lora_rank + rope per position for all
    /// 128 heads: 576 floats where DeepSeek-V3 as GQA (128 heads of 192 keys and 128 values)
    /// would read 40960. Prefill decompresses every cached row through W_kv_b.
    #[test]
    fn mla_decode_reads_the_latent_and_prefill_decompresses() {
        let s = find("deepseek-v3-shape").unwrap().shape;
        let op =
            |pass: Pass, name: &str| op(&s, 1, (WeightDtype::F16, KvDtype::F32), pass, name).work;
        let decode = |len| Pass::decode(2, len);
        let grow = op(decode(1099), "mla_attention").bytes - op(decode(99), "mla_attention").bytes;
        assert_eq!(grow, 2.0 * 1000.0 * 576.0 * 4.0);
        let names: Vec<_> = ops(&s, 1, (WeightDtype::F16, KvDtype::F32).into(), decode(99))
            .into_iter()
            .map(|o| o.op)
            .collect();
        assert!(names.contains(&"mla_absorb_q") && !names.contains(&"mla_kv_b"));
        let prefill = Pass::prefill(1, 64);
        let kv_b = op(prefill, "mla_kv_b");
        assert_eq!(kv_b.flops, 2.0 * 64.0 * 128.0 * 256.0 * 512.0);
        // Absorbed decode streams W_UV (half of W_kv_b) and W_UK (f16, the same size).
        let w = |form| mla_weight_bytes(&s, WeightDtype::F16, form);
        assert_eq!(w(MlaForm::Absorbed), w(MlaForm::Decompressed));
        assert!(
            mla_weight_bytes(&s, WeightDtype::Q4_0, MlaForm::Absorbed)
                > mla_weight_bytes(&s, WeightDtype::Q4_0, MlaForm::Decompressed),
            "a block format's W_UK is held in f32"
        );
    }
}
