//! Kernel choices (tiers, tiles, workgroup sizes) as plain data: recorded in results and in the
//! tuning cache, so this file stays free of wgpu.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every kernel choice for one adapter. Recorded in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Products (prefill projections, the LM head, decode GEMV).
    pub matmul: MatmulConfig,
    /// RMSNorm workgroup size (a power of two).
    pub norm_wg: u32,
    /// Workgroup size of RoPE, SwiGLU and attention.
    pub wg: u32,
    /// Keys per split of decode attention.
    pub decode_split_len: u32,
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
                decode_split_len: 64,
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
                decode_split_len: 32,
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
