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
    /// Layout of decode attention's split pass; absent: `invocation` (documents before
    /// layouts).
    #[serde(default)]
    pub decode_attention_layout: DecodeAttentionLayout,
    /// Query-row and key tiles of prefill attention's FlashAttention-2 layout (`wg`
    /// invocations per tile); null: one invocation per query row (CPU adapters, and documents
    /// before tiles).
    #[serde(default)]
    pub prefill_attention_tiles: Option<AttentionTiles>,
    /// Keys per split of decode attention at depths `decode_split_by_depth` does not list: the
    /// exact split length in the `invocation` layout, the least one in the `workgroup` layout.
    pub decode_split_len: u32,
    /// Keys per split of decode attention chosen at each KV depth the run measured (by depth);
    /// empty when untuned.
    #[serde(default)]
    pub decode_split_by_depth: BTreeMap<u32, u32>,
}

/// How decode attention's split pass maps onto the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DecodeAttentionLayout {
    /// An invocation per (split, query head, sequence), each split `decode_split_len` keys:
    /// for CPU adapters, where invocations are SIMD lanes and barriers are costly.
    #[default]
    Invocation,
    /// A workgroup per (split, KV head, sequence): its lanes span the head, every key and value
    /// row is read once for all query heads of the KV head's group, and there are as many
    /// splits (of at least `decode_split_len` keys) as it takes to fill a large GPU.
    Workgroup,
    /// The same workgroups, with each subgroup's lanes spanning the head (neighbouring lanes
    /// read neighbouring words of a key row) and subgroupAdd reducing each score: adapters
    /// with SUBGROUP.
    Subgroup,
}

/// Tiles of prefill attention's FlashAttention-2 layout: a workgroup per (`br` query rows,
/// head), K and V staged `bc` keys at a time in workgroup memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttentionTiles {
    /// Query rows per tile (divides the workgroup size).
    pub br: u32,
    /// Keys per K/V tile.
    pub bc: u32,
}

/// What tokbench knows of an adapter when it chooses kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterTraits {
    /// A CPU adapter (lavapipe): invocations are SIMD lanes, barriers are costly.
    pub cpu: bool,
    /// The subgroup sizes the driver may pick, when the adapter has SUBGROUP.
    pub subgroups: Option<SubgroupSizes>,
}

/// The range of subgroup sizes an adapter reports: the driver picks one in it per pipeline
/// (RADV 32 or 64, Intel 8 to 32), so subgroup kernels must be correct at every size in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubgroupSizes {
    /// The smallest size.
    pub min: u32,
    /// The largest size; workgroups of subgroup kernels are a multiple of it.
    pub max: u32,
}

impl SubgroupSizes {
    /// 32 within the range: the size NVIDIA has, Apple GPUs use (wgpu's Metal backend reports
    /// 4 to 64), RDNA can run and Intel's compilers reach for light kernels; the subgroup GEMV
    /// sizes its grid by it unless tuned.
    pub fn typical(self) -> u32 {
        32u32.max(self.min).min(self.max)
    }

    /// The subgroup GEMV's default workgroup: 128 invocations (four 32-wide subgroups, enough
    /// outputs per workgroup to keep loads in flight without starving small N of workgroups),
    /// rounded up to a multiple of the largest size.
    pub fn gemv_wg(self) -> u32 {
        128u32.max(self.max).next_multiple_of(self.max.max(1))
    }
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
    /// GPUs large workgroup-memory tiles with split-K, and subgroup (or workgroup) reductions. Attention likewise: a
    /// row (prefill) or split (decode) per invocation on CPU adapters, where both ran faster
    /// on lavapipe than the GPU layouts (`cargo bench --bench kernels -- attention`); the
    /// FlashAttention-2 and workgroup-per-KV-head layouts on GPUs.
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
                    gemv: GemvConfig::Rows { wg: 16, tn: 16 },
                },
                norm_wg: 8,
                wg: 64,
                decode_attention_wg: Some(64),
                rope_wg: Some(64),
                swiglu_wg: Some(64),
                decode_attention_layout: DecodeAttentionLayout::Invocation,
                prefill_attention_tiles: None,
                decode_split_len: 64,
                decode_split_by_depth: BTreeMap::new(),
            }
        } else {
            Self {
                matmul: MatmulConfig {
                    // 128 × 128 tiles, 8 × 8 outputs per invocation: 256 invocations, 33 KB of
                    // workgroup memory at BK 16 (an adapter allowing less gets BK 8 when the
                    // kernel is built); split-K up to 16 slices for skinny products (on paper:
                    // no big GPU has measured it yet).
                    tiles: ProductTiles::LARGE_DEFAULT,
                    // Two outputs per subgroup: each activation load serves both rows (on paper:
                    // no big GPU has measured it yet).
                    gemv: match adapter.subgroups {
                        Some(sizes) => GemvConfig::Subgroup {
                            wg: sizes.gemv_wg(),
                            rows: 2,
                            sg: sizes.typical(),
                        },
                        None => GemvConfig::Split { wg: 128 },
                    },
                },
                norm_wg: 128,
                wg: 64,
                decode_attention_wg: Some(64),
                rope_wg: Some(64),
                swiglu_wg: Some(64),
                // Subgroup reductions where the adapter has them (on paper: no big GPU has
                // measured either layout yet).
                decode_attention_layout: match adapter.subgroups {
                    Some(_) => DecodeAttentionLayout::Subgroup,
                    None => DecodeAttentionLayout::Workgroup,
                },
                prefill_attention_tiles: Some(AttentionTiles { br: 16, bc: 16 }),
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
    /// `shaders/matmul_large.wgsl`: large workgroup tiles for big GPUs (H100/MI300 class): vec4
    /// tiles padded so the transposed stores hit distinct banks, double-buffered K steps of `bk`,
    /// up to 8 × 8 outputs per invocation, and split-K for products whose grid of tiles would
    /// leave the device idle. Workgroup memory grows with the tiles
    /// ([`ProductTiles::workgroup_bytes`]); a tile too large for the adapter falls back to a
    /// smaller one when the kernel is built.
    Large {
        /// Tile rows (a multiple of 4 · bm / tm, at most 256).
        bm: u32,
        /// Tile outputs (a multiple of 4 · bn / tn, at most 256).
        bn: u32,
        /// K per step: 4, 8, 16 or 32.
        bk: u32,
        /// Rows per invocation: 4 or 8.
        tm: u32,
        /// Outputs per invocation: 4 or 8.
        tn: u32,
        /// The most slices K may be split into when the grid of tiles is too small to fill the
        /// device (1: never split).
        split_k: u32,
    },
    /// `shaders/matmul_coop.wgsl`: cooperative matrices (tensor cores), f16 A and W, f32
    /// accumulate; a tile of C is (sg_m · 2 · size) × (sg_n · 2 · size).
    Coop {
        /// Side of the square matrices: 8 or 16, one the adapter lists for f16 × f16 → f32.
        size: u32,
        /// Subgroups along M (1..=2), each 2 matrices tall.
        sg_m: u32,
        /// Subgroups along N (1..=2), each 2 matrices wide.
        sg_n: u32,
        /// The adapter's largest subgroup size; a workgroup is sg_m · sg_n · sg invocations.
        sg: u32,
    },
}

impl ProductTiles {
    /// The large tier's default tiles: 128 × 128, BK 16, 8 × 8 outputs per invocation,
    /// split-K up to 16 slices.
    pub const LARGE_DEFAULT: Self = Self::large(128, 128, 16, 8, 8, 16);

    /// Large tiles of `bm` × `bn`, K steps of `bk`, `tm` × `tn` outputs per invocation and
    /// split-K up to `split_k` slices (see [`ProductTiles::Large`]).
    pub const fn large(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32, split_k: u32) -> Self {
        Self::Large {
            bm,
            bn,
            bk,
            tm,
            tn,
            split_k,
        }
    }

    /// A short name of the tier and its sizes, for workload ids: `register-64x1-8x4`,
    /// `workgroup-64x64-4x4`, `large-128x128-bk16-8x8-sk16`, `coop-16-2x2-sg32`.
    pub fn label(&self) -> String {
        match *self {
            Self::Register { wg_x, wg_y, tm, tn } => format!("register-{wg_x}x{wg_y}-{tm}x{tn}"),
            Self::Workgroup { bm, bn, tm, tn } => format!("workgroup-{bm}x{bn}-{tm}x{tn}"),
            Self::Large {
                bm,
                bn,
                bk,
                tm,
                tn,
                split_k,
            } => format!("large-{bm}x{bn}-bk{bk}-{tm}x{tn}-sk{split_k}"),
            Self::Coop {
                size,
                sg_m,
                sg_n,
                sg,
            } => format!("coop-{size}-{sg_m}x{sg_n}-sg{sg}"),
        }
    }

    /// Workgroup memory the many-row kernel declares with these tiles, in bytes: for the large
    /// tier two buffers (double buffering) of an A and a W tile, each BK rows of BM (BN) floats
    /// plus 8 vec4s of bank padding, as `shaders/matmul_large.wgsl` sizes them from its override
    /// constants; `None` for the other tiers (fixed, or none).
    pub fn workgroup_bytes(&self) -> Option<u32> {
        match *self {
            Self::Large { bm, bn, bk, .. } => {
                let vec4s = |cols: u32| bk * cols / 4 + 8;
                Some(2 * (vec4s(bm) + vec4s(bn)) * 16)
            }
            _ => None,
        }
    }

    /// The math the many-row product does with weights of `dtype`.
    pub fn math(&self, dtype: crate::dtype::WeightDtype) -> Math {
        match self {
            Self::Coop { .. } => Math::CoopmatF16,
            _ => Math::simt(dtype),
        }
    }
}

/// The arithmetic a product runs on. Recorded per workload, and sets which probe's peak its
/// roofline share is taken against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Math {
    /// Scalar/vector f32 FMA (SIMT) on f32 weights, or on weights of a packed format (bf16,
    /// fp8-e4m3, q8_0, q4_0, mxfp4) unpacked to f32 in registers; compared with the FMA probe.
    SimtF32,
    /// Scalar/vector FMA on f16 weights widened to f32 (SIMT); compared with the FMA probe.
    SimtF16,
    /// Cooperative matrices (tensor cores): f16 inputs, f32 accumulate; compared with the
    /// matrix probe.
    CoopmatF16,
}

impl Math {
    /// The SIMT tier for weights of `dtype`.
    pub fn simt(dtype: crate::dtype::WeightDtype) -> Self {
        match dtype {
            crate::dtype::WeightDtype::F16 => Self::SimtF16,
            _ => Self::SimtF32,
        }
    }

    /// "simt-f32", "simt-f16" or "coopmat-f16".
    pub fn name(self) -> &'static str {
        match self {
            Self::SimtF32 => "simt-f32",
            Self::SimtF16 => "simt-f16",
            Self::CoopmatF16 => "coopmat-f16",
        }
    }

    /// True for the cooperative-matrix tier.
    pub fn is_coop(self) -> bool {
        self == Self::CoopmatF16
    }
}

/// Which math tiers the user allows (`--math`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MathRequest {
    /// The fastest correct candidate of every tier the adapter and weight type allow.
    #[default]
    Auto,
    /// Scalar/vector FMA kernels only.
    Simt,
    /// Cooperative-matrix products only; refused where the adapter has none.
    Coopmat,
}

impl MathRequest {
    /// "auto", "simt" or "coopmat".
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Simt => "simt",
            Self::Coopmat => "coopmat",
        }
    }

    /// Whether a product kernel of these tiles is allowed.
    pub fn allows(self, tiles: &ProductTiles) -> bool {
        match self {
            Self::Auto => true,
            Self::Simt => !matches!(tiles, ProductTiles::Coop { .. }),
            Self::Coopmat => matches!(tiles, ProductTiles::Coop { .. }),
        }
    }
}

impl std::str::FromStr for MathRequest {
    type Err = crate::InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "simt" => Ok(Self::Simt),
            "coopmat" | "coop" => Ok(Self::Coopmat),
            _ => Err(crate::InputError::new(format!(
                "--math {s:?}: use auto, simt or coopmat"
            ))),
        }
    }
}

/// The few-row product kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum GemvConfig {
    /// One invocation per `tn` outputs (CPU adapters).
    Rows {
        /// Invocations per workgroup.
        wg: u32,
        /// Outputs per invocation (1..=16), sharing each load of the activations.
        tn: u32,
    },
    /// One workgroup per output, reduced in workgroup memory.
    Split {
        /// Invocations per workgroup (a power of two, at most 256).
        wg: u32,
    },
    /// Each subgroup `rows` outputs at a time, its lanes splitting K, reduced with subgroupAdd
    /// (`shaders/gemv_subgroup.wgsl`); correct at whatever subgroup size the driver picks.
    Subgroup {
        /// Invocations per workgroup (a multiple of the adapter's largest subgroup size).
        wg: u32,
        /// Outputs per subgroup pass (1..=4), sharing each load of the activations; documents
        /// written before it: 1.
        #[serde(default = "one")]
        rows: u32,
        /// The subgroup size the grid is sized for, in the adapter's range (the kernel is
        /// correct at any size the driver picks): a workgroup covers wg / sg · rows outputs;
        /// where the driver picks larger subgroups each takes several chunks of rows, smaller
        /// ones leave some subgroups idle. Documents written before the range: the fixed size.
        sg: u32,
    },
}

fn one() -> u32 {
    1
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
        // What such a document ran: a row per invocation, an invocation per split.
        assert_eq!(c.decode_attention_layout, DecodeAttentionLayout::Invocation);
        assert_eq!(c.prefill_attention_tiles, None);
    }

    #[test]
    fn gpus_get_the_workgroup_attention_layouts() {
        let gpu = KernelConfig::default_for(AdapterTraits {
            cpu: false,
            subgroups: Some(SubgroupSizes { min: 32, max: 32 }),
        });
        // Subgroup reductions where the adapter has subgroups, workgroup memory where not.
        assert_eq!(gpu.decode_attention_layout, DecodeAttentionLayout::Subgroup);
        let no_subgroups = KernelConfig::default_for(AdapterTraits {
            cpu: false,
            subgroups: None,
        });
        assert_eq!(
            no_subgroups.decode_attention_layout,
            DecodeAttentionLayout::Workgroup
        );
        assert!(gpu.prefill_attention_tiles.is_some());
        let back: KernelConfig =
            serde_json::from_str(&serde_json::to_string(&gpu).unwrap()).unwrap();
        assert_eq!(back, gpu);
    }

    #[test]
    fn a_subgroup_gemv_written_before_rows_takes_one_output_per_pass() {
        let old = r#"{"kind": "subgroup", "wg": 128, "sg": 32}"#;
        let g: GemvConfig = serde_json::from_str(old).unwrap();
        assert_eq!(
            g,
            GemvConfig::Subgroup {
                wg: 128,
                rows: 1,
                sg: 32
            }
        );
    }

    #[test]
    fn the_subgroup_gemv_workgroup_is_a_multiple_of_the_largest_size() {
        for (min, max, wg) in [(4, 4, 128), (8, 32, 128), (32, 64, 128), (64, 128, 128)] {
            assert_eq!(SubgroupSizes { min, max }.gemv_wg(), wg);
        }
        assert_eq!(SubgroupSizes { min: 96, max: 96 }.gemv_wg(), 192);
        let typical = |min, max| SubgroupSizes { min, max }.typical();
        assert_eq!(
            [
                typical(4, 64),
                typical(8, 8),
                typical(64, 64),
                typical(8, 16)
            ],
            [32, 8, 64, 16]
        );
    }

    #[test]
    fn the_split_tuned_at_a_depth_is_used_there_and_the_default_elsewhere() {
        let mut c = KernelConfig::default_for(AdapterTraits {
            cpu: true,
            subgroups: None,
        });
        c.decode_split_by_depth.insert(4096, 256);
        assert_eq!(c.decode_split_for(4096), 256);
        assert_eq!(c.decode_split_for(512), c.decode_split_len);
    }
}
