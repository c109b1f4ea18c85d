//! Presets: real models' shapes (with synthetic weights), and `tiny` for tests.

use super::{DENSE, ModelShape};
use crate::InputError;
use crate::dtype::WeightDtype;

/// A named shape.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Name used by `--preset`.
    pub name: &'static str,
    /// What the shape is taken from.
    pub description: &'static str,
    /// The dimensions.
    pub shape: ModelShape,
    /// The routed experts' format where the model ships them in one of their own (gpt-oss:
    /// MXFP4); the run's `--dtype` covers every other matrix, and `--expert-dtype` overrides.
    pub expert_dtype: Option<WeightDtype>,
}

const fn shape(
    d_model: u32,
    n_layers: u32,
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    d_ff: u32,
    vocab: u32,
) -> ModelShape {
    ModelShape {
        d_model,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim,
        d_ff,
        vocab,
        ..DENSE
    }
}

/// `dense` with `n_experts` routed experts of width `d_ff_expert`, `active` per token, `shared`
/// shared experts, and the first `first_dense` layers dense.
const fn moe(
    dense: ModelShape,
    n_experts: u32,
    active: u32,
    shared: u32,
    d_ff_expert: u32,
    first_dense: u32,
) -> ModelShape {
    ModelShape {
        n_experts,
        n_experts_active: active,
        n_shared_experts: shared,
        d_ff_expert,
        first_dense_layers: first_dense,
        ..dense
    }
}

/// `s` with a `window`-position sliding window on `windowed` of every `period` layers, and
/// attention sinks.
const fn windowed_with_sinks(s: ModelShape, window: u32, period: u32, windowed: u32) -> ModelShape {
    ModelShape {
        window,
        window_period: period,
        window_layers: windowed,
        attention_sinks: 1,
        ..s
    }
}

/// `s` with multi-head latent attention: (q_lora, kv_lora, rope, nope, v) ranks and widths.
const fn mla(s: ModelShape, q_lora: u32, kv_lora: u32, rope: u32, nope: u32, v: u32) -> ModelShape {
    ModelShape {
        q_lora_rank: q_lora,
        kv_lora_rank: kv_lora,
        qk_rope_head_dim: rope,
        qk_nope_head_dim: nope,
        v_head_dim: v,
        ..s
    }
}

/// Every preset, smallest first.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "tiny",
        description: "for tests: 2 layers, grouped-query heads, widths that divide no tile",
        expert_dtype: None,
        shape: shape(96, 2, 4, 2, 24, 250, 509),
    },
    Preset {
        name: "tiny-moe",
        description: "for tests: tiny with 3 layers, the first dense, then 8 experts (top-2) of width 62 and one shared",
        expert_dtype: None,
        shape: moe(shape(96, 3, 4, 2, 24, 250, 509), 8, 2, 1, 62, 1),
    },
    Preset {
        name: "tiny-swa",
        description: "for tests: tiny with a 5-position sliding window on every other layer and attention sinks (gpt-oss's pattern)",
        expert_dtype: None,
        shape: windowed_with_sinks(shape(96, 2, 4, 2, 24, 250, 509), 5, 2, 1),
    },
    Preset {
        name: "tiny-mla",
        description: "for tests: tiny with multi-head latent attention (q_lora 48, kv_lora 36, rope 8, nope 12, v 20)",
        expert_dtype: None,
        shape: mla(shape(96, 2, 4, 4, 20, 250, 509), 48, 36, 8, 12, 20),
    },
    Preset {
        name: "smollm2-135m-shape",
        description: "SmolLM2-135M's shape",
        expert_dtype: None,
        shape: shape(576, 30, 9, 3, 64, 1536, 49152),
    },
    Preset {
        name: "qwen2.5-0.5b-shape",
        description: "Qwen2.5-0.5B's shape",
        expert_dtype: None,
        shape: shape(896, 24, 14, 2, 64, 4864, 151936),
    },
    Preset {
        name: "llama3.2-1b-shape",
        description: "Llama 3.2 1B's shape",
        expert_dtype: None,
        shape: shape(2048, 16, 32, 8, 64, 8192, 128256),
    },
    Preset {
        name: "llama3-8b-shape",
        description: "Llama 3 8B's shape",
        expert_dtype: None,
        shape: shape(4096, 32, 32, 8, 128, 14336, 128256),
    },
    Preset {
        name: "qwen2.5-7b-shape",
        description: "Qwen2.5-7B's shape",
        expert_dtype: None,
        shape: shape(3584, 28, 28, 4, 128, 18944, 152064),
    },
    Preset {
        name: "llama3-70b-shape",
        description: "Llama 3 70B's shape",
        expert_dtype: None,
        shape: shape(8192, 80, 64, 8, 128, 28672, 128256),
    },
    // Qwen3-30B-A3B's config.json: hidden_size 2048, 48 layers, 32 heads / 4 KV heads of 128,
    // 128 experts, 8 per token, moe_intermediate_size 768, intermediate_size 6144 (unused: no
    // dense layer), vocab 151936, no shared expert.
    Preset {
        name: "qwen3-30b-a3b-shape",
        description: "Qwen3-30B-A3B's shape: 128 experts, 8 active, 3.3B of 30.5B weights per token",
        expert_dtype: None,
        shape: moe(shape(2048, 48, 32, 4, 128, 6144, 151936), 128, 8, 0, 768, 0),
    },
    // Qwen3-235B-A22B's config.json: hidden_size 4096, 94 layers, 64 heads / 4 KV heads of 128,
    // 128 experts, 8 per token, moe_intermediate_size 1536, intermediate_size 12288, vocab
    // 151936.
    Preset {
        name: "qwen3-235b-a22b-shape",
        description: "Qwen3-235B-A22B's shape: 128 experts, 8 active",
        expert_dtype: None,
        shape: moe(
            shape(4096, 94, 64, 4, 128, 12288, 151936),
            128,
            8,
            0,
            1536,
            0,
        ),
    },
    // Mixtral-8x7B-v0.1's config.json (MLPerf Inference's MoE model): hidden_size 4096, 32
    // layers, 32 heads / 8 KV heads of 128, 8 experts, 2 per token, intermediate_size 14336,
    // vocab 32000, sliding_window null.
    Preset {
        name: "mixtral-8x7b-shape",
        description: "Mixtral 8x7B's shape (MLPerf Inference's MoE): 8 experts, 2 active",
        expert_dtype: None,
        shape: moe(shape(4096, 32, 32, 8, 128, 14336, 32000), 8, 2, 0, 14336, 0),
    },
    // Llama-4-Scout-17B-16E's config.json (text_config): hidden_size 5120, 48 layers, 40 heads
    // / 8 KV heads of 128, 16 experts, 1 per token, one shared expert, intermediate_size 8192,
    // intermediate_size_mlp 16384, vocab 202048, every layer MoE. Not modelled: its chunked
    // attention (8192-token chunks on 3 of every 4 layers, which are also the RoPE layers) is
    // run as full attention, so its long-context attention cost is overstated.
    Preset {
        name: "llama4-scout-shape",
        description: "Llama 4 Scout's shape: 16 experts, 1 active, 1 shared (chunked attention run as full)",
        expert_dtype: None,
        shape: moe(
            shape(5120, 48, 40, 8, 128, 16384, 202048),
            16,
            1,
            1,
            8192,
            0,
        ),
    },
    // gpt-oss-20b's config.json: hidden_size 2880, 24 layers, 64 heads / 8 KV heads of 64,
    // 32 experts, 4 per token, intermediate_size 2880, vocab 201088, layer_types alternating
    // sliding_attention (window 128) and full_attention from layer 0, attention sinks. Its
    // experts ship in MXFP4 (quantization_config: mxfp4, modules_to_not_convert: attention,
    // router, embeddings and head), so they default to MXFP4 beside the run's --dtype.
    Preset {
        name: "gpt-oss-20b-shape",
        description: "gpt-oss-20b's shape: 32 experts, 4 active, 128-token window on every other layer, sinks",
        expert_dtype: Some(WeightDtype::Mxfp4),
        shape: windowed_with_sinks(
            moe(shape(2880, 24, 64, 8, 64, 2880, 201088), 32, 4, 0, 2880, 0),
            128,
            2,
            1,
        ),
    },
    // gpt-oss-120b's config.json: as gpt-oss-20b with 36 layers and 128 experts.
    Preset {
        name: "gpt-oss-120b-shape",
        description: "gpt-oss-120b's shape: 128 experts, 4 active, 128-token window on every other layer, sinks",
        expert_dtype: Some(WeightDtype::Mxfp4),
        shape: windowed_with_sinks(
            moe(shape(2880, 36, 64, 8, 64, 2880, 201088), 128, 4, 0, 2880, 0),
            128,
            2,
            1,
        ),
    },
    // DeepSeek-V3's config.json: hidden_size 7168, 61 layers, 128 heads, q_lora_rank 1536,
    // kv_lora_rank 512, qk_rope_head_dim 64, qk_nope_head_dim 128, v_head_dim 128,
    // n_routed_experts 256, num_experts_per_tok 8, n_shared_experts 1, moe_intermediate_size
    // 2048, first_k_dense_replace 3 (intermediate_size 18432), vocab 129280. head_dim is the
    // query/key width, nope + rope = 192. Not modelled: its sigmoid, group-limited router
    // (tokbench's router takes a softmax over the top-k for every model) and the MTP module.
    Preset {
        name: "deepseek-v3-shape",
        description: "DeepSeek-V3/R1's shape: MLA, 256 experts, 8 active, 1 shared, 3 dense layers",
        expert_dtype: None,
        shape: mla(
            moe(
                shape(7168, 61, 128, 128, 192, 18432, 129280),
                256,
                8,
                1,
                2048,
                3,
            ),
            1536,
            512,
            64,
            128,
            128,
        ),
    },
];

/// The preset called `name`; the error lists the choices.
pub fn find(name: &str) -> Result<&'static Preset, InputError> {
    PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        InputError::new(format!(
            "--preset {name:?}: unknown preset; choose one of {}",
            names.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_named_uniquely() {
        for p in PRESETS {
            p.shape
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(PRESETS.iter().filter(|q| q.name == p.name).count(), 1);
        }
        assert_eq!(find("llama3-8b-shape").unwrap().shape.d_ff, 14336);
        // Only gpt-oss ships its experts in a format of their own, and only MoE presets may.
        for p in PRESETS {
            let mxfp4 = p.name.starts_with("gpt-oss");
            assert_eq!(p.expert_dtype.is_some(), mxfp4, "{}", p.name);
            assert!(p.expert_dtype.is_none() || p.shape.is_moe(), "{}", p.name);
        }
        assert_eq!(
            find("gpt-oss-20b-shape").unwrap().expert_dtype,
            Some(WeightDtype::Mxfp4)
        );
        let err = find("gpt5").unwrap_err().to_string();
        assert!(err.contains("gpt5") && err.contains("tiny"), "{err}");
    }

    /// Total and active weights against the model cards (embedding table excluded, so a little
    /// under the published totals).
    #[test]
    fn moe_presets_have_their_published_sizes() {
        for (name, total, active) in [
            ("qwen3-30b-a3b-shape", 30.5e9, 3.3e9),
            ("qwen3-235b-a22b-shape", 235e9, 22e9),
            ("mixtral-8x7b-shape", 46.7e9, 12.9e9),
            ("gpt-oss-20b-shape", 20.9e9, 3.6e9),
            ("gpt-oss-120b-shape", 116.8e9, 5.1e9),
            ("llama4-scout-shape", 109e9, 17e9),
            ("deepseek-v3-shape", 671e9, 37e9),
        ] {
            let s = find(name).unwrap().shape;
            let (t, a) = s.params(s.n_layers);
            let near = |got: u64, want: f64| (got as f64 / want - 1.0).abs() < 0.1;
            assert!(near(t, total), "{name}: total {t} vs {total}");
            assert!(near(a, active), "{name}: active {a} vs {active}");
        }
    }

    #[test]
    fn llama3_8b_has_about_eight_billion_weights() {
        let s = find("llama3-8b-shape").unwrap().shape;
        let total = u64::from(s.n_layers) * s.layer_params() + s.head_params();
        // 7.5 billion without the embedding table (0.5 billion).
        assert!((7.4e9..7.6e9).contains(&(total as f64)), "{total}");
    }
}
