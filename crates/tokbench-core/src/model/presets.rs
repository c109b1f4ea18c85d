//! Presets: real models' shapes (with synthetic weights), and `tiny` for tests.

use super::ModelShape;
use crate::InputError;

/// A named shape.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Name used by `--preset`.
    pub name: &'static str,
    /// What the shape is taken from.
    pub description: &'static str,
    /// The dimensions.
    pub shape: ModelShape,
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
    }
}

/// Every preset, smallest first.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "tiny",
        description: "for tests: 2 layers, grouped-query heads, widths that divide no tile",
        shape: shape(96, 2, 4, 2, 24, 250, 509),
    },
    Preset {
        name: "smollm2-135m-shape",
        description: "SmolLM2-135M's shape",
        shape: shape(576, 30, 9, 3, 64, 1536, 49152),
    },
    Preset {
        name: "qwen2.5-0.5b-shape",
        description: "Qwen2.5-0.5B's shape",
        shape: shape(896, 24, 14, 2, 64, 4864, 151936),
    },
    Preset {
        name: "llama3.2-1b-shape",
        description: "Llama 3.2 1B's shape",
        shape: shape(2048, 16, 32, 8, 64, 8192, 128256),
    },
    Preset {
        name: "llama3-8b-shape",
        description: "Llama 3 8B's shape",
        shape: shape(4096, 32, 32, 8, 128, 14336, 128256),
    },
    Preset {
        name: "qwen2.5-7b-shape",
        description: "Qwen2.5-7B's shape",
        shape: shape(3584, 28, 28, 4, 128, 18944, 152064),
    },
    Preset {
        name: "llama3-70b-shape",
        description: "Llama 3 70B's shape",
        shape: shape(8192, 80, 64, 8, 128, 28672, 128256),
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
        let err = find("gpt5").unwrap_err().to_string();
        assert!(err.contains("gpt5") && err.contains("tiny"), "{err}");
    }

    #[test]
    fn llama3_8b_has_about_eight_billion_weights() {
        let s = find("llama3-8b-shape").unwrap().shape;
        let total = u64::from(s.n_layers) * s.layer_params() + s.head_params();
        // 7.5 billion without the embedding table (0.5 billion).
        assert!((7.4e9..7.6e9).contains(&(total as f64)), "{total}");
    }
}
