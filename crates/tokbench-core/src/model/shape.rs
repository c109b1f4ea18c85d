//! Model shapes: the dimensions of a decoder-only transformer, from a preset, flags or a file.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::InputError;

/// The dimensions of a decoder-only transformer (Llama-style: RMSNorm, grouped-query attention
/// with RoPE, SwiGLU feed-forward, untied LM head). Weights are synthetic; only the shape is
/// real.
///
/// Dense GQA is the default. Optional fields (zero or absent: off) describe mixture-of-experts
/// feed-forward blocks, DeepSeek's multi-head latent attention (MLA), sliding-window layers and
/// attention sinks; JSON written for dense shapes omits them, so older files still load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// Width of the residual stream.
    pub d_model: u32,
    /// Transformer layers.
    pub n_layers: u32,
    /// Query heads.
    pub n_heads: u32,
    /// Key/value heads (grouped-query attention; divides n_heads).
    pub n_kv_heads: u32,
    /// Width of one head (a multiple of 4, at most 256).
    pub head_dim: u32,
    /// Hidden width of the feed-forward block.
    pub d_ff: u32,
    /// Vocabulary size (columns of the LM head).
    pub vocab: u32,
    /// Routed experts of each mixture-of-experts layer (0: every layer is dense, and the
    /// other expert fields must be 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_experts: u32,
    /// Routed experts each token uses (top-k).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_experts_active: u32,
    /// Shared experts every token also uses (their widths add up to one dense block of
    /// `n_shared_experts · d_ff_expert`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_shared_experts: u32,
    /// Hidden width of one expert's feed-forward block (`d_ff` stays the width of the dense
    /// layers).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub d_ff_expert: u32,
    /// Leading layers that stay dense in a mixture-of-experts model (DeepSeek-V3: 3).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub first_dense_layers: u32,
    /// MLA: rank of the query's low-rank projection (0: queries are projected directly).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub q_lora_rank: u32,
    /// MLA: width of the cached latent (0: no MLA; ordinary K and V are cached).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kv_lora_rank: u32,
    /// MLA: rotary part of each query and key head.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub qk_rope_head_dim: u32,
    /// MLA: non-rotary part of each query and key head.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub qk_nope_head_dim: u32,
    /// MLA: width of each value head.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub v_head_dim: u32,
    /// Sliding-window layers attend to at most this many positions, their own included
    /// (0: every layer attends to the whole cache).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub window: u32,
    /// Which layers are windowed: layer `l` is when `l % window_period < window_layers`
    /// (gpt-oss: period 2, 1 windowed, so layers 0, 2, 4, …). 0 with a window: every layer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub window_period: u32,
    /// Windowed layers per period (see `window_period`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub window_layers: u32,
    /// 1: every attention head has a learned sink logit that joins the softmax (gpt-oss).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attention_sinks: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// What one layer of a model is: its feed-forward block and its attention span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerKind {
    /// A mixture-of-experts feed-forward block (otherwise dense with `d_ff`).
    pub moe: bool,
    /// Attention window in positions (0: the whole cache).
    pub window: u32,
}

/// A dense shape with every optional field off, for struct update syntax.
pub const DENSE: ModelShape = ModelShape {
    d_model: 0,
    n_layers: 0,
    n_heads: 0,
    n_kv_heads: 0,
    head_dim: 0,
    d_ff: 0,
    vocab: 0,
    n_experts: 0,
    n_experts_active: 0,
    n_shared_experts: 0,
    d_ff_expert: 0,
    first_dense_layers: 0,
    q_lora_rank: 0,
    kv_lora_rank: 0,
    qk_rope_head_dim: 0,
    qk_nope_head_dim: 0,
    v_head_dim: 0,
    window: 0,
    window_period: 0,
    window_layers: 0,
    attention_sinks: 0,
};

/// Largest dimension accepted: beyond this, no device has the memory.
const MAX_DIM: u32 = 1 << 20;
/// Most routed experts per layer the router kernel takes.
pub const MAX_EXPERTS: u32 = 512;
/// Most experts per token the router kernel takes.
pub const MAX_EXPERTS_ACTIVE: u32 = 16;

/// Fields that mean nothing without `needed` (it is 0): the first that is set is an error.
fn all_zero_without(fields: &[(&str, u32)], needed: &str) -> Result<(), InputError> {
    match fields.iter().find(|(_, v)| *v != 0) {
        Some((name, _)) => Err(InputError::new(format!(
            "model shape: {name} needs {needed}"
        ))),
        None => Ok(()),
    }
}

impl ModelShape {
    /// Checks that the kernels can run this shape; the error names the offending field.
    pub fn validate(&self) -> Result<(), InputError> {
        let fields = [
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("head_dim", self.head_dim),
            ("d_ff", self.d_ff),
            ("vocab", self.vocab),
        ];
        for (name, v) in fields {
            if v == 0 || v > MAX_DIM {
                return Err(InputError::new(format!(
                    "model shape: {name} = {v} must be between 1 and {MAX_DIM}"
                )));
            }
        }
        if !self.head_dim.is_multiple_of(4) || self.head_dim > 256 {
            return Err(InputError::new(format!(
                "model shape: head_dim = {} must be a multiple of 4 and at most 256",
                self.head_dim
            )));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(InputError::new(format!(
                "model shape: n_kv_heads = {} must divide n_heads = {}",
                self.n_kv_heads, self.n_heads
            )));
        }
        self.validate_experts()?;
        self.validate_mla()?;
        if self.window == 0 && (self.window_period != 0 || self.window_layers != 0) {
            return Err(InputError::new(
                "model shape: window_period and window_layers need a window (positions)",
            ));
        }
        if self.window_layers > self.window_period {
            return Err(InputError::new(format!(
                "model shape: window_layers = {} cannot exceed window_period = {}",
                self.window_layers, self.window_period
            )));
        }
        if self.attention_sinks > 1 {
            return Err(InputError::new(format!(
                "model shape: attention_sinks = {} must be 0 or 1",
                self.attention_sinks
            )));
        }
        Ok(())
    }

    fn validate_experts(&self) -> Result<(), InputError> {
        let fields = [
            ("n_experts_active", self.n_experts_active),
            ("d_ff_expert", self.d_ff_expert),
            ("n_shared_experts", self.n_shared_experts),
            ("first_dense_layers", self.first_dense_layers),
        ];
        if self.n_experts == 0 {
            return all_zero_without(&fields, "n_experts (routed experts per layer)");
        }
        if self.n_experts > MAX_EXPERTS {
            return Err(InputError::new(format!(
                "model shape: n_experts = {} must be at most {MAX_EXPERTS}",
                self.n_experts
            )));
        }
        if self.n_experts_active == 0
            || self.n_experts_active > self.n_experts.min(MAX_EXPERTS_ACTIVE)
        {
            return Err(InputError::new(format!(
                "model shape: n_experts_active = {} must be between 1 and {}",
                self.n_experts_active,
                self.n_experts.min(MAX_EXPERTS_ACTIVE)
            )));
        }
        if self.d_ff_expert == 0 || self.d_ff_expert > MAX_DIM {
            return Err(InputError::new(format!(
                "model shape: d_ff_expert = {} must be between 1 and {MAX_DIM}",
                self.d_ff_expert
            )));
        }
        if self.first_dense_layers >= self.n_layers {
            return Err(InputError::new(format!(
                "model shape: first_dense_layers = {} leaves no mixture-of-experts layer of {}",
                self.first_dense_layers, self.n_layers
            )));
        }
        Ok(())
    }

    fn validate_mla(&self) -> Result<(), InputError> {
        let parts = [
            ("qk_rope_head_dim", self.qk_rope_head_dim),
            ("qk_nope_head_dim", self.qk_nope_head_dim),
            ("v_head_dim", self.v_head_dim),
        ];
        if self.kv_lora_rank == 0 {
            let all = [parts.as_slice(), &[("q_lora_rank", self.q_lora_rank)]].concat();
            return all_zero_without(&all, "kv_lora_rank (MLA's cached latent)");
        }
        for (name, v) in parts.iter().chain(&[("kv_lora_rank", self.kv_lora_rank)]) {
            if *v == 0 || !v.is_multiple_of(4) || *v > 1024 {
                return Err(InputError::new(format!(
                    "model shape: {name} = {v} must be a multiple of 4 between 4 and 1024 with MLA"
                )));
            }
        }
        Ok(())
    }

    /// A mixture-of-experts model (some layers route tokens to experts).
    pub fn is_moe(&self) -> bool {
        self.n_experts > 0
    }

    /// A multi-head latent attention model.
    pub fn is_mla(&self) -> bool {
        self.kv_lora_rank > 0
    }

    /// True when some layers have a sliding window or sinks, or MLA: attention the kernels of
    /// a dense GQA model do not compute.
    pub fn has_special_attention(&self) -> bool {
        self.window > 0 || self.attention_sinks > 0 || self.is_mla()
    }

    /// What layer `l` of a pass through `layers_run` layers is. A run of fewer layers than the
    /// model keeps the model's share of dense layers (rounded, so DeepSeek-V3's 3 of 61 leave
    /// none in a 2-layer run) and its window pattern from layer 0.
    pub fn layer_kind(&self, l: u32, layers_run: u32) -> LayerKind {
        let dense_run = if layers_run >= self.n_layers {
            self.first_dense_layers
        } else {
            ((u64::from(self.first_dense_layers) * u64::from(layers_run)
                + u64::from(self.n_layers) / 2)
                / u64::from(self.n_layers)) as u32
        };
        let windowed = self.window > 0
            && (self.window_period == 0 || l % self.window_period < self.window_layers);
        LayerKind {
            moe: self.is_moe() && l >= dense_run,
            window: if windowed { self.window } else { 0 },
        }
    }

    /// Mixture-of-experts layers among the `layers_run` a pass runs through.
    pub fn moe_layers(&self, layers_run: u32) -> u32 {
        (0..layers_run)
            .filter(|&l| self.layer_kind(l, layers_run).moe)
            .count() as u32
    }

    /// Experts a batch of `tokens` tokens is expected to touch in one layer if every token picks
    /// `n_experts_active` of `n_experts` uniformly: E·(1 − (1 − k/E)^tokens).
    pub fn expected_experts_touched(&self, tokens: u64) -> f64 {
        if !self.is_moe() {
            return 0.0;
        }
        let (e, k) = (f64::from(self.n_experts), f64::from(self.n_experts_active));
        e * (1.0 - (1.0 - k / e).powf(tokens as f64))
    }

    /// Weights of one routed expert (elements): gate, up and down.
    pub fn expert_params(&self) -> u64 {
        3 * u64::from(self.d_model) * u64::from(self.d_ff_expert)
    }

    /// Width of the concatenated query heads.
    pub fn q_dim(&self) -> usize {
        (self.n_heads * self.head_dim) as usize
    }

    /// Width of the concatenated key (or value) heads.
    pub fn kv_dim(&self) -> usize {
        (self.n_kv_heads * self.head_dim) as usize
    }

    /// Width of one fused q|k|v row.
    pub fn qkv_dim(&self) -> usize {
        self.q_dim() + 2 * self.kv_dim()
    }

    /// Weights of one dense layer (elements): q|k|v, o, gate|up and down projections, two
    /// norms.
    pub fn layer_params(&self) -> u64 {
        let (d, f) = (u64::from(self.d_model), u64::from(self.d_ff));
        self.attention_params() + 3 * d * f + 2 * d
    }

    /// Weights of one layer's attention (elements): q|k|v and o; with MLA, the query's
    /// low-rank pair (or its direct projection), the latent's projection, its decompression to
    /// keys and values, and o.
    pub fn attention_params(&self) -> u64 {
        let d = u64::from(self.d_model);
        if !self.is_mla() {
            return d * self.qkv_dim() as u64 + self.q_dim() as u64 * d;
        }
        let h = u64::from(self.n_heads);
        let (rope, nope, v) = (
            u64::from(self.qk_rope_head_dim),
            u64::from(self.qk_nope_head_dim),
            u64::from(self.v_head_dim),
        );
        let (ql, kvl) = (u64::from(self.q_lora_rank), u64::from(self.kv_lora_rank));
        let q = if ql > 0 {
            d * ql + ql * h * (nope + rope)
        } else {
            d * h * (nope + rope)
        };
        q + d * (kvl + rope) + kvl * h * (nope + v) + h * v * d
    }

    /// Weights of one mixture-of-experts layer (elements): attention and norms as a dense
    /// layer, the router, every routed expert and the shared experts.
    pub fn moe_layer_params(&self) -> u64 {
        let d = u64::from(self.d_model);
        self.attention_params()
            + 2 * d
            + d * u64::from(self.n_experts)
            + u64::from(self.n_experts + self.n_shared_experts) * self.expert_params()
    }

    /// Weights of the first `layers` layers and the head (elements), and the part of them one
    /// token computes with (its `n_experts_active` routed experts and the shared ones).
    pub fn params(&self, layers: u32) -> (u64, u64) {
        let moe = u64::from(self.moe_layers(layers));
        let dense = u64::from(layers) - moe;
        let total =
            dense * self.layer_params() + moe * self.moe_layer_params() + self.head_params();
        let idle = u64::from(self.n_experts - self.n_experts_active.min(self.n_experts))
            * self.expert_params();
        (total, total - moe * idle)
    }

    /// Weights outside the layers: final norm and LM head (the embedding table is not read
    /// beyond the prompt's rows, so it is not counted).
    pub fn head_params(&self) -> u64 {
        u64::from(self.d_model) * (1 + u64::from(self.vocab))
    }

    /// Parses "d_model=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,d_ff=8192,vocab=128256"
    /// (those seven required; the optional fields, such as `n_experts=8`, may follow).
    pub fn parse_inline(text: &str) -> Result<Self, InputError> {
        let mut map = serde_json::Map::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                InputError::new(format!("--model {text:?}: {part:?} is not key=value"))
            })?;
            let v: u32 = v.trim().parse().map_err(|_| {
                InputError::new(format!("--model: {k} = {v:?} is not a whole number"))
            })?;
            map.insert(k.trim().to_string(), v.into());
        }
        let shape: Self = serde_json::from_value(map.into())
            .map_err(|e| InputError::new(format!("--model {text:?}: {e}")))?;
        shape.validate()?;
        Ok(shape)
    }

    /// Reads a shape from a JSON file with the seven required fields and any optional ones.
    pub fn from_file(path: &Path) -> Result<Self, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(format!("--model-file {}: {e}", path.display())))?;
        let shape: Self = serde_json::from_str(&text)
            .map_err(|e| InputError::new(format!("--model-file {}: {e}", path.display())))?;
        shape.validate()?;
        Ok(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_shapes_parse_and_validate() {
        let s = ModelShape::parse_inline(
            "d_model=2048, n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,d_ff=8192,vocab=128256",
        )
        .unwrap();
        assert_eq!((s.d_model, s.n_kv_heads, s.vocab), (2048, 8, 128256));
        for (bad, needle) in [
            (
                "d_model=0,n_layers=1,n_heads=1,n_kv_heads=1,head_dim=4,d_ff=1,vocab=1",
                "d_model = 0",
            ),
            (
                "d_model=8,n_layers=1,n_heads=3,n_kv_heads=2,head_dim=4,d_ff=1,vocab=1",
                "must divide",
            ),
            (
                "d_model=8,n_layers=1,n_heads=1,n_kv_heads=1,head_dim=6,d_ff=1,vocab=1",
                "multiple of 4",
            ),
            ("d_model=8,n_layers=1", "missing field"),
            ("d_model=8,wings=2", "unknown field"),
            ("d_model=-3", "not a whole number"),
            ("d_model", "not key=value"),
        ] {
            let err = ModelShape::parse_inline(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
