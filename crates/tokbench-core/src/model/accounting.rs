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
use crate::dtype::WeightDtype;

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

/// Work of every op of a pass through `layers` layers of `shape` with `dtype` weights.
pub fn ops(shape: &ModelShape, layers: u32, dtype: WeightDtype, pass: Pass) -> Vec<OpWork> {
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
    let attention = match pass.phase {
        Phase::Prefill => {
            let p = pass.len as usize;
            Work {
                flops: flops::attention_flops(b as f64 * flops::causal_pairs(p), heads, hd),
                bytes: act(t, q) + act(b * p, 2 * kv) + act(t, q),
            }
        }
        Phase::Decode => {
            let keys = pass.len as usize + 1;
            Work {
                flops: flops::attention_flops((b * keys) as f64, heads, hd),
                bytes: act(b, q) + act(b * keys, 2 * kv) + act(b, q),
            }
        }
    };
    let lm_rows = b; // prefill: the last position of each prompt; decode: every sequence
    let layer = |op, work| OpWork {
        op,
        count: layers,
        work,
    };
    let once = |op, work| OpWork { op, count: 1, work };
    vec![
        once(
            "embed",
            Work {
                flops: 0.0,
                bytes: 2.0 * act(t, d),
            },
        ),
        layer("attn_norm", norm(t)),
        layer("qkv", product(t, q + 2 * kv, d)),
        layer(
            "rope_kv_write",
            Work {
                flops: t as f64
                    * (heads + shape.n_kv_heads as usize) as f64
                    * flops::rope_flops_per_head(hd),
                bytes: act(t, q + 2 * kv) + act(t, q + 2 * kv),
            },
        ),
        layer("attention", attention),
        layer("o_proj", with_residual(product(t, d, q), t)),
        layer("ffn_norm", norm(t)),
        layer("gate_up", product(t, 2 * f, d)),
        layer(
            "swiglu",
            Work {
                flops: flops::SWIGLU_FLOPS_PER_ELEMENT * (t * f) as f64,
                bytes: act(t, 2 * f) + act(t, f),
            },
        ),
        layer("down", with_residual(product(t, d, f), t)),
        once("final_norm", norm(lm_rows)),
        once("lm_head", product(lm_rows, v, d)),
    ]
}

/// Bytes of every weight matrix a pass through `layers` layers streams once (projections of
/// each layer, then the LM head), from the format's exact bits per weight, scales included.
pub fn weight_bytes(shape: &ModelShape, layers: u32, dtype: WeightDtype) -> f64 {
    let (d, f, v) = (
        shape.d_model as usize,
        shape.d_ff as usize,
        shape.vocab as usize,
    );
    let (q, kv) = (shape.q_dim(), shape.kv_dim());
    let layer = dtype.matrix_bytes(q + 2 * kv, d)
        + dtype.matrix_bytes(d, q)
        + dtype.matrix_bytes(2 * f, d)
        + dtype.matrix_bytes(d, f);
    f64::from(layers) * layer + dtype.matrix_bytes(v, d)
}

/// Total work of a pass.
pub fn total(shape: &ModelShape, layers: u32, dtype: WeightDtype, pass: Pass) -> Work {
    let mut sum = Work::default();
    for op in ops(shape, layers, dtype, pass) {
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
    use crate::model::presets::find;

    #[test]
    fn decode_of_llama3_8b_streams_every_weight_once() {
        let s = find("llama3-8b-shape").unwrap().shape;
        let pass = Pass {
            phase: Phase::Decode,
            batch: 1,
            len: 0,
        };
        let w = total(&s, s.n_layers, WeightDtype::F32, pass);
        let weights = (u64::from(s.n_layers) * s.layer_params() + s.head_params()) as f64;
        // Two FLOPs per weight, and every weight's bytes, plus a little for the rest.
        assert!(
            (w.flops / (2.0 * weights) - 1.0).abs() < 0.01,
            "{} vs {}",
            w.flops,
            2.0 * weights
        );
        assert!((w.bytes / (4.0 * weights) - 1.0).abs() < 0.01);
        let half = total(&s, s.n_layers, WeightDtype::F16, pass);
        assert!((half.bytes / (2.0 * weights) - 1.0).abs() < 0.01);
    }

    /// The figure: llama3-8b-shape's per-token decode bytes of weights at q4_0 are
    /// 4.5/16 of f16's; and a decode pass's bytes are the weights plus a little.
    #[test]
    fn q4_0_weights_are_4_5_sixteenths_of_f16() {
        let s = find("llama3-8b-shape").unwrap().shape;
        let pass = Pass {
            phase: Phase::Decode,
            batch: 1,
            len: 0,
        };
        let q4 = weight_bytes(&s, s.n_layers, WeightDtype::Q4_0) / pass.tokens() as f64;
        let f16 = weight_bytes(&s, s.n_layers, WeightDtype::F16) / pass.tokens() as f64;
        let ratio = q4 / f16;
        assert!((ratio / (4.5 / 16.0) - 1.0).abs() < 0.005, "{ratio}");
        let weights = (u64::from(s.n_layers) * s.layer_params() + s.head_params()) as f64;
        assert!(
            (f16 / (2.0 * weights) - 1.0).abs() < 0.01,
            "{f16} vs {weights} weights"
        );
        let total_q4 = total(&s, s.n_layers, WeightDtype::Q4_0, pass).bytes;
        assert!(total_q4 > q4 && total_q4 < 1.01 * q4, "{total_q4} vs {q4}");
    }

    #[test]
    fn prefill_counts_causal_attention_pairs_only() {
        let s = find("tiny").unwrap().shape;
        let short = Pass {
            phase: Phase::Prefill,
            batch: 1,
            len: 1,
        };
        let long = Pass {
            phase: Phase::Prefill,
            batch: 1,
            len: 100,
        };
        let attn = |p| {
            ops(&s, 1, WeightDtype::F32, p)
                .into_iter()
                .find(|o| o.op == "attention")
                .unwrap()
                .work
                .flops
        };
        let per_pair = 4.0 * f64::from(s.n_heads * s.head_dim);
        assert_eq!(attn(short), per_pair);
        assert_eq!(attn(long), per_pair * 5050.0);
        assert_eq!(long.tokens(), 100);
    }

    #[test]
    fn decode_attention_grows_with_depth() {
        let s = find("tiny").unwrap().shape;
        let at = |len| {
            let pass = Pass {
                phase: Phase::Decode,
                batch: 2,
                len,
            };
            ops(&s, 1, WeightDtype::F32, pass)
                .into_iter()
                .find(|o| o.op == "attention")
                .unwrap()
                .work
        };
        assert_eq!(
            at(99).flops,
            2.0 * 100.0 * 4.0 * f64::from(s.n_heads * s.head_dim)
        );
        assert!(at(999).bytes > 9.0 * at(99).bytes);
    }
}
