//! Model shapes: the dimensions of a decoder-only transformer, from a preset, flags or a file.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::InputError;

/// The dimensions of a decoder-only transformer (Llama-style: RMSNorm, grouped-query attention
/// with RoPE, SwiGLU feed-forward, untied LM head). Weights are synthetic; only the shape is
/// real.
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
}

/// Largest dimension accepted: beyond this, no device has the memory.
const MAX_DIM: u32 = 1 << 20;

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
        Ok(())
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

    /// Weights of one layer (elements): q|k|v, o, gate|up and down projections, two norms.
    pub fn layer_params(&self) -> u64 {
        let (d, f) = (u64::from(self.d_model), u64::from(self.d_ff));
        d * self.qkv_dim() as u64 + self.q_dim() as u64 * d + 2 * d * f + f * d + 2 * d
    }

    /// Weights outside the layers: final norm and LM head (the embedding table is not read
    /// beyond the prompt's rows, so it is not counted).
    pub fn head_params(&self) -> u64 {
        u64::from(self.d_model) * (1 + u64::from(self.vocab))
    }

    /// Parses "d_model=2048,n_layers=16,n_heads=32,n_kv_heads=8,head_dim=64,d_ff=8192,vocab=128256"
    /// (every field required).
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

    /// Reads a shape from a JSON file with the seven fields.
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
