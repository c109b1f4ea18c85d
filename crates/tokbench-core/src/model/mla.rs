//! Multi-head latent attention (MLA, DeepSeek-V2/V3): its widths, and the two forms a pass can
//! run its attention in, which the kernels and the accounting share.
//!
//! A layer caches one row per position, `[c (latent) | k_rope (rope_dim)]`, for all heads:
//!
//! ```text
//! absorbed (decode):      q_lat,h = q_nope,h · W_UK,h          (per-head products)
//!                         o_lat,h = attention([q_lat | q_rope], latent rows, latent rows)
//!                         o_h     = o_lat,h[..latent] · W_UV,h  (per-head products)
//! decompressed (prefill): [k_nope | v]_h = c · W_kv_b,h         (one product over the cache)
//!                         o_h     = attention([q_nope | q_rope], [k_nope | k_rope], v)
//! ```
//!
//! The absorbed form reads the small latent cache once per step and runs no per-position
//! product, which is why engines decode in it (FlashMLA, vLLM, SGLang); the decompressed form
//! runs attention at the narrow head width, cheaper over a long prompt. Scores are scaled by
//! 1/√(nope + rope_dim) in both: the model's head width, not the kernel's.

use super::{ModelShape, Phase};
use crate::dtype::WeightDtype;

/// The MLA widths of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlaDims {
    /// Query heads (every head reads the same latent rows).
    pub n_heads: u32,
    /// Width of the cached latent c (`kv_lora_rank`).
    pub latent: u32,
    /// Rotary part of each query and key head.
    pub rope_dim: u32,
    /// Non-rotary part of each query and key head.
    pub nope: u32,
    /// Width of each value head.
    pub v_dim: u32,
}

impl MlaDims {
    /// The widths of `s`, an MLA shape.
    pub fn of(s: &ModelShape) -> Self {
        Self {
            n_heads: s.n_heads,
            latent: s.kv_lora_rank,
            rope_dim: s.qk_rope_head_dim,
            nope: s.qk_nope_head_dim,
            v_dim: s.v_head_dim,
        }
    }

    /// Floats of one cached row: latent and rotary key.
    pub fn row(&self) -> u32 {
        self.latent + self.rope_dim
    }

    /// Floats of one query head as projected: [nope | rope].
    pub fn q_head(&self) -> u32 {
        self.nope + self.rope_dim
    }

    /// Floats of one head of W_kv_b's output: [k_nope | v].
    pub fn kvb_head(&self) -> u32 {
        self.nope + self.v_dim
    }

    /// The five widths as `usize`, for indexing: (n_heads, latent, rope_dim, nope, v_dim).
    pub fn widths(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.n_heads as usize,
            self.latent as usize,
            self.rope_dim as usize,
            self.nope as usize,
            self.v_dim as usize,
        )
    }
}

/// Floats before the latent in a row of MLA's first projection, [q_a | c | k_rope]: the
/// query rank, or without one the queries themselves (n_heads · (nope + rope)).
pub fn q_width(s: &ModelShape) -> u32 {
    match s.q_lora_rank {
        0 => s.n_heads * (s.qk_nope_head_dim + s.qk_rope_head_dim),
        rank => rank,
    }
}

/// How a pass runs MLA's attention (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlaForm {
    /// W_UK and W_UV folded into the query and the output: attention over the latent rows.
    Absorbed,
    /// The cache decompressed into per-head keys and values: ordinary multi-head attention.
    Decompressed,
}

impl MlaForm {
    /// The form engines run each phase in: prefill decompressed (attention at the narrow head
    /// width over a prompt), decode absorbed (one read of the latent cache per step).
    pub fn for_phase(phase: Phase) -> Self {
        match phase {
            Phase::Prefill => Self::Decompressed,
            Phase::Decode => Self::Absorbed,
        }
    }

    /// The width of a head as the attention kernel sees it: the latent row (absorbed), or the
    /// larger of the key head and the value head (decompressed; the other is padded with zeros).
    pub fn att_dim(self, d: MlaDims) -> u32 {
        match self {
            Self::Absorbed => d.row(),
            Self::Decompressed => d.q_head().max(d.v_dim),
        }
    }

    /// Key/value heads the attention kernel sees.
    pub fn kv_heads(self, d: MlaDims) -> u32 {
        match self {
            Self::Absorbed => 1,
            Self::Decompressed => d.n_heads,
        }
    }

    /// Floats of one query row as the attention kernels read it: the q heads, then room for
    /// the k and v heads they expect in a fused row (never written, never read).
    pub fn att_stride(self, d: MlaDims) -> u32 {
        (d.n_heads + 2 * self.kv_heads(d)) * self.att_dim(d)
    }

    /// Where the rotary part of a query head goes in its attention row.
    pub fn rope_off(self, d: MlaDims) -> u32 {
        match self {
            Self::Absorbed => d.latent,
            Self::Decompressed => d.nope,
        }
    }
}

/// The format of the absorbed form's W_UK (W_kv_b's key columns, transposed): the model's
/// where it stores each weight on its own (f32, f16, bf16), so the transpose keeps every
/// value; f32 for formats with scales along K (a block or a row), which cannot hold the
/// transpose's values. (Engines keep it in bf16 beside fp8 or 4-bit weights, so for those the
/// bytes counted here are twice theirs, on a matrix of n_heads · latent · nope weights.)
pub fn uk_dtype(dtype: WeightDtype) -> WeightDtype {
    match dtype {
        WeightDtype::F32 | WeightDtype::F16 | WeightDtype::Bf16 => dtype,
        _ => WeightDtype::F32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets::find;

    #[test]
    fn deepseek_v3_heads_in_each_form() {
        let d = MlaDims::of(&find("deepseek-v3-shape").unwrap().shape);
        assert_eq!((d.row(), d.q_head(), d.kvb_head()), (576, 192, 256));
        assert_eq!(MlaForm::Absorbed.att_dim(d), 576);
        assert_eq!(MlaForm::Decompressed.att_dim(d), 192);
        assert_eq!(MlaForm::Absorbed.att_stride(d), 130 * 576);
        assert_eq!(MlaForm::Decompressed.att_stride(d), 3 * 128 * 192);
        assert_eq!(uk_dtype(WeightDtype::Q4_0), WeightDtype::F32);
        assert_eq!(uk_dtype(WeightDtype::Bf16), WeightDtype::Bf16);
    }
}
