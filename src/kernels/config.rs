//! Kernel choices (tiles, workgroup sizes) as plain data: recorded in results, so this file
//! stays free of wgpu.

use serde::{Deserialize, Serialize};

/// Every kernel choice for one adapter: tiles, workgroup sizes, attention split. Recorded in
/// results; chosen per device type (later: tuned per adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelConfig {
    /// Products (tiled matmul and GEMV).
    pub matmul: MatmulConfig,
    /// RMSNorm workgroup size (a power of two).
    pub norm_wg: u32,
    /// Workgroup size of RoPE, SwiGLU and attention.
    pub wg: u32,
    /// Keys per split of decode attention.
    pub decode_split_len: u32,
}

impl KernelConfig {
    /// Defaults for an adapter: `cpu` for CPU adapters (lavapipe), which run invocations as
    /// SIMD lanes, where barriers are costly: one lane per norm row. GPUs get wide workgroups.
    pub fn default_for(cpu: bool) -> Self {
        if cpu {
            Self {
                matmul: MatmulConfig::DEFAULT,
                norm_wg: 1,
                wg: 64,
                decode_split_len: 64,
            }
        } else {
            Self {
                matmul: MatmulConfig::DEFAULT,
                norm_wg: 128,
                wg: 64,
                decode_split_len: 32,
            }
        }
    }
}

/// Tile configuration of the register-tiled kernel, passed as `override` constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TileConfig {
    /// Invocations per workgroup along N.
    pub wg_x: u32,
    /// Invocations per workgroup along M.
    pub wg_y: u32,
    /// Rows of C per invocation (1..=8).
    pub tm: u32,
    /// vec4 columns of C per invocation (1..=4).
    pub tn: u32,
}

/// Kernel choices for products, per adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatmulConfig {
    /// Tiles of the many-row kernel.
    pub tile: TileConfig,
    /// Workgroup size of the GEMV kernel.
    pub gemv_wg: u32,
}

impl MatmulConfig {
    /// 8 × 8 invocations of 4 rows × one vec4 each; GEMV in workgroups of 64: fast on lavapipe,
    /// sound everywhere.
    pub const DEFAULT: Self = Self {
        tile: TileConfig {
            wg_x: 8,
            wg_y: 8,
            tm: 4,
            tn: 1,
        },
        gemv_wg: 64,
    };
}
