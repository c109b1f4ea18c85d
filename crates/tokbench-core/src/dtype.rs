//! Element types of weights, as plain data: the accounting, the results and the kernels share
//! them.

use serde::{Deserialize, Serialize};

/// Element type of the weights. Activations, norms and the KV cache stay f32; products
/// accumulate in f32 either way.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WeightDtype {
    /// 32-bit float.
    F32,
    /// 16-bit float (needs the adapter's SHADER_F16).
    F16,
}

impl WeightDtype {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }

    /// "f32" or "f16".
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }

    /// Converts f32 values to this type's bytes.
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Self::F32 => bytemuck::cast_slice(values).to_vec(),
            Self::F16 => {
                let halves: Vec<half::f16> =
                    values.iter().map(|&v| half::f16::from_f32(v)).collect();
                bytemuck::cast_slice(&halves).to_vec()
            }
        }
    }

    /// The value the GPU sees for `v` (f16 rounding), for CPU references.
    pub fn round(self, v: f32) -> f32 {
        match self {
            Self::F32 => v,
            Self::F16 => half::f16::from_f32(v).to_f32(),
        }
    }
}

impl std::str::FromStr for WeightDtype {
    type Err = crate::InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            _ => Err(crate::InputError::new(format!(
                "--dtype {s:?}: use f32 or f16"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_encoding_rounds_like_the_gpu() {
        let bytes = WeightDtype::F16.encode(&[1.0, 0.1]);
        assert_eq!(bytes.len(), 4);
        assert_eq!(
            WeightDtype::F16.round(0.1),
            half::f16::from_f32(0.1).to_f32()
        );
        assert_ne!(WeightDtype::F16.round(0.1), 0.1);
        assert_eq!(WeightDtype::F32.round(0.1), 0.1);
    }
}
