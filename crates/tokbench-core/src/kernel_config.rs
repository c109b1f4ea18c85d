//! Kernel choices (tiers, tiles, workgroup sizes) as plain data: recorded in results and in the
//! tuning cache, so this file stays free of wgpu.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every kernel choice for one adapter. Recorded in results.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Products (prefill projections, the LM head, decode GEMV).
    pub matmul: MatmulConfig,
    /// RMSNorm workgroup size (a power of two).
    pub norm_wg: u32,
    /// Workgroup size of prefill attention; in documents written before per-kernel sizes, also
    /// of RoPE, SwiGLU and decode attention.
    pub wg: u32,
    /// Workgroup size of decode attention; null: `wg` (documents before per-kernel sizes).
    #[serde(default)]
    pub decode_attention_wg: Option<u32>,
    /// Workgroup size of RoPE and the KV-cache write; null: `wg`.
    #[serde(default)]
    pub rope_wg: Option<u32>,
    /// Workgroup size of SwiGLU; null: `wg`.
    #[serde(default)]
    pub swiglu_wg: Option<u32>,
    /// Keys per split of decode attention at depths `decode_split_by_depth` does not list.
    pub decode_split_len: u32,
    /// Keys per split of decode attention chosen at each KV depth the run measured (by depth);
    /// empty when untuned.
    #[serde(default)]
    pub decode_split_by_depth: BTreeMap<u32, u32>,
}

/// What tokbench knows of an adapter when it chooses kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterTraits {
    /// A CPU adapter (lavapipe): invocations are SIMD lanes, barriers are costly.
    pub cpu: bool,
    /// The subgroup size, when the adapter has SUBGROUP and one fixed size.
    pub subgroup_size: Option<u32>,
}

impl KernelConfig {
    /// Workgroup size of decode attention.
    pub fn decode_attention_wg(&self) -> u32 {
        self.decode_attention_wg.unwrap_or(self.wg)
    }

    /// Workgroup size of RoPE and the KV-cache write.
    pub fn rope_wg(&self) -> u32 {
        self.rope_wg.unwrap_or(self.wg)
    }

    /// Workgroup size of SwiGLU.
    pub fn swiglu_wg(&self) -> u32 {
        self.swiglu_wg.unwrap_or(self.wg)
    }

    /// Keys per split of decode attention at KV depth `depth`.
    pub fn decode_split_for(&self, depth: u32) -> u32 {
        self.decode_split_by_depth
            .get(&depth)
            .copied()
            .unwrap_or(self.decode_split_len)
    }

    /// Defaults by tier (the CPU ones measured on lavapipe with `tokbench tune`): on CPU
    /// adapters the register tier (no workgroup memory; a norm row per SIMD-wide workgroup); on
    /// GPUs workgroup-memory tiles and subgroup (or workgroup) reductions.
    pub fn default_for(adapter: AdapterTraits) -> Self {
        if adapter.cpu {
            Self {
                matmul: MatmulConfig {
                    tiles: ProductTiles::Register {
                        wg_x: 64,
                        wg_y: 1,
                        tm: 8,
                        tn: 4,
                    },
                    gemv: GemvConfig::Rows { wg: 16, tn: 2 },
                },
                norm_wg: 8,
                wg: 64,
                decode_attention_wg: Some(64),
                rope_wg: Some(64),
                swiglu_wg: Some(64),
                decode_split_len: 64,
                decode_split_by_depth: BTreeMap::new(),
            }
        } else {
            Self {
                matmul: MatmulConfig {
                    tiles: ProductTiles::Workgroup {
                        bm: 64,
                        bn: 64,
                        tm: 4,
                        tn: 4,
                    },
                    gemv: match adapter.subgroup_size {
                        Some(sg) => GemvConfig::Subgroup {
                            wg: (4 * sg).max(64),
                            sg,
                        },
                        None => GemvConfig::Split { wg: 128 },
                    },
                },
                norm_wg: 128,
                wg: 64,
                decode_attention_wg: Some(64),
                rope_wg: Some(64),
                swiglu_wg: Some(64),
                decode_split_len: 32,
                decode_split_by_depth: BTreeMap::new(),
            }
        }
    }
}

/// Kernel choices for products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatmulConfig {
    /// The many-row kernel (more than 8 rows: prefill).
    pub tiles: ProductTiles,
    /// The few-row kernel (up to 8 rows: decode, the prefill LM head).
    pub gemv: GemvConfig,
}

/// Tiles of the many-row product kernel, by tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "tier", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ProductTiles {
    /// `shaders/matmul.wgsl`: registers only, for CPU adapters.
    Register {
        /// Invocations per workgroup along N.
        wg_x: u32,
        /// Invocations per workgroup along M (1 keeps A's rows uniform).
        wg_y: u32,
        /// Rows per invocation (1..=8).
        tm: u32,
        /// Outputs per invocation (1..=8).
        tn: u32,
    },
    /// `shaders/matmul_tiled.wgsl`: workgroup-memory tiles, for GPUs.
    Workgroup {
        /// Tile rows (a multiple of tm, at most 128).
        bm: u32,
        /// Tile outputs (a multiple of tn, at most 128).
        bn: u32,
        /// Rows per invocation (1..=4).
        tm: u32,
        /// Outputs per invocation (1..=4).
        tn: u32,
    },
}

/// The few-row product kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum GemvConfig {
    /// One invocation per `tn` outputs (CPU adapters).
    Rows {
        /// Invocations per workgroup.
        wg: u32,
        /// Outputs per invocation (1..=4).
        tn: u32,
    },
    /// One workgroup per output, reduced in workgroup memory.
    Split {
        /// Invocations per workgroup (a power of two, at most 256).
        wg: u32,
    },
    /// One subgroup per output, reduced with subgroupAdd.
    Subgroup {
        /// Invocations per workgroup (a multiple of sg).
        wg: u32,
        /// The adapter's subgroup size.
        sg: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_written_before_per_kernel_sizes_means_wg_everywhere() {
        let old = r#"{"matmul": {"tiles": {"tier": "register", "wg_x": 64, "wg_y": 1, "tm": 8, "tn": 4},
            "gemv": {"kind": "rows", "wg": 64, "tn": 2}}, "norm_wg": 8, "wg": 32, "decode_split_len": 64}"#;
        let c: KernelConfig = serde_json::from_str(old).unwrap();
        assert_eq!(
            (c.rope_wg(), c.swiglu_wg(), c.decode_attention_wg()),
            (32, 32, 32)
        );
        assert_eq!(c.decode_split_for(512), 64);
    }

    #[test]
    fn the_split_tuned_at_a_depth_is_used_there_and_the_default_elsewhere() {
        let mut c = KernelConfig::default_for(AdapterTraits {
            cpu: true,
            subgroup_size: None,
        });
        c.decode_split_by_depth.insert(4096, 256);
        assert_eq!(c.decode_split_for(4096), 256);
        assert_eq!(c.decode_split_for(512), c.decode_split_len);
    }
}
