//! Products of activations (f32) and weights (any [`WeightDtype`], unpacked to f32 in
//! registers): `shaders/matmul.wgsl` (register
//! tier), `shaders/matmul_tiled.wgsl` (workgroup tier), `shaders/gemv.wgsl` and
//! `shaders/gemv_subgroup.wgsl` (up to 8 rows), and the cooperative-matrix tier
//! `shaders/matmul_coop.wgsl` (see [`super::matmul_coop`]).
//!
//! Weights are stored one output per row, K contiguous (W is N × K, "Wᵀ"): each GEMV lane or
//! subgroup streams whole rows, and tile loads along K coalesce. Every kernel reads that one
//! layout, so one set of weight buffers serves prefill (many rows) and decode (a few rows, every
//! weight byte read once). [`Matmul::dispatch`] picks the kernel by the number of rows.

use anyhow::ensure;

use super::{GEMV, GEMV_SUBGROUP, MATMUL, MATMUL_TILED, SubgroupSizes, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};
pub use tokbench_core::kernel_config::{GemvConfig, MatmulConfig, ProductTiles};

/// Rows up to which the GEMV kernels are used.
pub const GEMV_MAX_ROWS: u32 = 8;

/// Uniform block shared by every product shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub(crate) m: u32,
    pub(crate) k4: u32,
    pub(crate) n: u32,
    pub(crate) lda4: u32,
    pub(crate) a_off4: u32,
    pub(crate) ldc: u32,
    pub(crate) c_off: u32,
    pub(crate) accumulate: u32,
}

/// One product C[:, c_off..c_off + n] (+)= A · Wᵀ. A row r starts at vec4 `a_off4 + r * lda4`;
/// output j of row r is float `r * ldc + c_off + j` of C. W holds `n` rows of `k4` vec4s.
#[derive(Debug, Clone, Copy)]
pub struct Product<'a> {
    /// Rows of A (and of C written).
    pub m: u32,
    /// K / 4, padded.
    pub k4: u32,
    /// Outputs: rows of the weight slab.
    pub n: u32,
    /// Activations.
    pub a: &'a wgpu::Buffer,
    /// First vec4 of A's row 0.
    pub a_off4: u32,
    /// vec4s between A's rows.
    pub lda4: u32,
    /// The weight slab.
    pub w: &'a wgpu::Buffer,
    /// Output.
    pub c: &'a wgpu::Buffer,
    /// Column of C where the slab's outputs start.
    pub c_off: u32,
    /// Floats between C's rows.
    pub ldc: u32,
    /// Add to C instead of overwriting it (the fused residual connection).
    pub accumulate: bool,
}

impl<'a> Product<'a> {
    /// A plain C (m × n, rows n apart) = A (m × k, rows padded to vec4s) · Wᵀ (W: n rows of k,
    /// padded to vec4s).
    pub fn dense(
        a: &'a wgpu::Buffer,
        w: &'a wgpu::Buffer,
        c: &'a wgpu::Buffer,
        (m, n, k): (usize, usize, usize),
    ) -> Self {
        let k4 = k.div_ceil(4) as u32;
        Self {
            m: m as u32,
            k4,
            n: n as u32,
            a,
            a_off4: 0,
            lda4: k4,
            w,
            c,
            c_off: 0,
            ldc: n as u32,
            accumulate: false,
        }
    }
}

/// Workgroup memory `matmul_tiled.wgsl` declares whatever its tile: two 16 × (128 + 4) f32 tiles
/// (sized for the largest BM, BN), above WebGPU's 16 KiB default limit.
pub const TILED_WORKGROUP_BYTES: u32 = 2 * 16 * (128 + 4) * 4;

/// Whether the workgroup tier's memory fits the adapter's limit; the error names both figures.
pub fn workgroup_tiles_fit(limits: &wgpu::Limits) -> anyhow::Result<()> {
    let allowed = limits.max_compute_workgroup_storage_size;
    ensure!(
        TILED_WORKGROUP_BYTES <= allowed,
        "workgroup tiles need {TILED_WORKGROUP_BYTES} bytes of workgroup memory and the adapter \
         allows {allowed}: use register tiles (the CPU tier's) on this adapter"
    );
    Ok(())
}

/// Whether the subgroup GEMV `gemv` runs on an adapter with these subgroup sizes (`None`: no
/// SUBGROUP) and invocations per workgroup: its workgroup a multiple of the largest size, so
/// subgroups are whole whichever size the driver picks, and of `sg`; 1 to 4 outputs per pass.
/// Other GEMV kinds always fit.
pub fn subgroup_gemv_fits(
    gemv: GemvConfig,
    sizes: Option<SubgroupSizes>,
    max_invocations: u32,
) -> anyhow::Result<()> {
    let GemvConfig::Subgroup { wg, rows, sg } = gemv else {
        return Ok(());
    };
    let Some(sizes) = sizes else {
        anyhow::bail!("the subgroup GEMV needs an adapter with SUBGROUP");
    };
    ensure!(
        sg >= 1
            && wg >= sizes.max
            && wg.is_multiple_of(sg)
            && wg.is_multiple_of(sizes.max)
            && wg <= max_invocations
            && (1..=4).contains(&rows),
        "subgroup GEMV wg {wg} rows {rows} sg {sg}: wg must be a multiple of sg and of the \
         largest subgroup size {}, at most {max_invocations}, with 1..=4 rows",
        sizes.max
    );
    Ok(())
}

/// The product kernels for one weight type and configuration.
pub struct Matmul {
    tiles_pipeline: wgpu::ComputePipeline,
    config: MatmulConfig,
    dtype: WeightDtype,
    /// Send few-row products to the many-row kernel too (see [`Self::every_row_on_tiles`]).
    every_row_on_tiles: bool,
}

impl Matmul {
    /// Builds the many-row pipeline (GEMV pipelines are built per row count on first use).
    pub fn new(ctx: &GpuContext, config: MatmulConfig, dtype: WeightDtype) -> anyhow::Result<Self> {
        Self::with_coop_support(ctx, config, dtype, None)
    }

    /// [`Self::new`], with the cooperative-matrix support to build against given instead of the
    /// adapter's own (tests use it to try a size the driver runs but does not list).
    pub(crate) fn with_coop_support(
        ctx: &GpuContext,
        config: MatmulConfig,
        dtype: WeightDtype,
        coop: Option<&super::matmul_coop::CoopSupport>,
    ) -> anyhow::Result<Self> {
        let tiles_pipeline = match config.tiles {
            ProductTiles::Register { wg_x, wg_y, tm, tn } => {
                ensure!(
                    (1..=8).contains(&tm) && (1..=8).contains(&tn),
                    "register tile tm {tm} (1..=8), tn {tn} (1..=8)"
                );
                let constants = [
                    ("WG_X", f64::from(wg_x)),
                    ("WG_Y", f64::from(wg_y)),
                    ("TM", f64::from(tm)),
                    ("TN", f64::from(tn)),
                ];
                ctx.pipeline(&MATMUL, dtype, "matmul", &constants)?
            }
            ProductTiles::Workgroup { bm, bn, tm, tn } => {
                workgroup_tiles_fit(&ctx.limits)?;
                let threads = (bm / tm.max(1)) * (bn / tn.max(1));
                ensure!(
                    (1..=4).contains(&tm)
                        && (1..=4).contains(&tn)
                        && bm.is_multiple_of(tm)
                        && bn.is_multiple_of(tn)
                        && bm <= 128
                        && bn <= 128
                        && threads <= ctx.limits.max_compute_invocations_per_workgroup
                        && (bm.max(bn) * 4).div_ceil(threads) <= 8,
                    "workgroup tile bm {bm} bn {bn} tm {tm} tn {tn} unsupported"
                );
                let constants = [
                    ("BM", f64::from(bm)),
                    ("BN", f64::from(bn)),
                    ("TM", f64::from(tm)),
                    ("TN", f64::from(tn)),
                ];
                ctx.pipeline(&MATMUL_TILED, dtype, "matmul_tiled", &constants)?
            }
            ProductTiles::Coop { .. } => {
                let own;
                let support = match coop {
                    Some(s) => s,
                    None => {
                        own = super::matmul_coop::support(ctx).map_err(anyhow::Error::msg)?;
                        &own
                    }
                };
                let (shader, constants) =
                    super::matmul_coop::pipeline_constants(ctx, config.tiles, dtype, support)?;
                ctx.pipeline(shader, dtype, "matmul_coop", &constants)?
            }
        };
        if let GemvConfig::Subgroup { .. } = config.gemv {
            subgroup_gemv_fits(
                config.gemv,
                ctx.subgroup_sizes(),
                ctx.limits.max_compute_invocations_per_workgroup,
            )?;
        }
        Ok(Self {
            tiles_pipeline,
            config,
            dtype,
            every_row_on_tiles: false,
        })
    }

    /// This kernel set with every product, even a one-row one, on the many-row kernel: what
    /// `--math coopmat` asks of a decode (its GEMVs would otherwise run SIMT).
    pub fn every_row_on_tiles(self, on: bool) -> Self {
        Self {
            every_row_on_tiles: on,
            ..self
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> MatmulConfig {
        self.config
    }

    /// A launch of `product`: a GEMV kernel for up to [`GEMV_MAX_ROWS`] rows (unless
    /// [`Self::every_row_on_tiles`]), else the tiled one. Fails if a buffer is too small for the product: the shaders may run without bounds
    /// checks, so every access must be in bounds by construction.
    pub fn dispatch(&self, ctx: &GpuContext, pr: &Product<'_>) -> anyhow::Result<Dispatch> {
        let params = self.checked_params(pr)?;
        if pr.m > GEMV_MAX_ROWS || self.every_row_on_tiles {
            return self.tiles_launch(ctx, pr, &params);
        }
        let buffers = [(1, pr.a), (2, pr.w), (3, pr.c)];
        let rows = f64::from(pr.m);
        let (pipeline, groups) = match self.config.gemv {
            GemvConfig::Rows { wg, tn } => {
                ensure!((1..=4).contains(&tn), "gemv rows tn {tn} (1..=4)");
                let constants = [("WG", f64::from(wg)), ("M", rows), ("TN", f64::from(tn))];
                (
                    ctx.pipeline(&GEMV, self.dtype, "gemv_rows", &constants)?,
                    pr.n.div_ceil(wg * tn),
                )
            }
            GemvConfig::Split { wg } => (
                ctx.pipeline(
                    &GEMV,
                    self.dtype,
                    "gemv_split",
                    &[("WG", f64::from(wg)), ("M", rows)],
                )?,
                pr.n,
            ),
            GemvConfig::Subgroup { wg, rows: r, sg } => (
                ctx.pipeline(
                    &GEMV_SUBGROUP,
                    self.dtype,
                    "gemv_subgroup",
                    &[
                        ("WG", f64::from(wg)),
                        ("SG", f64::from(sg)),
                        ("R", f64::from(r)),
                        ("M", rows),
                    ],
                )?,
                pr.n.div_ceil(wg / sg * r),
            ),
        };
        ctx.dispatch(&pipeline, &params, &buffers, ctx.grid_1d(groups))
    }

    /// A launch of the many-row kernel whatever the number of rows (tests check M = 1 through
    /// it; [`Self::dispatch`] sends so few rows to a GEMV).
    pub fn dispatch_tiles(&self, ctx: &GpuContext, pr: &Product<'_>) -> anyhow::Result<Dispatch> {
        let params = self.checked_params(pr)?;
        self.tiles_launch(ctx, pr, &params)
    }

    fn tiles_launch(
        &self,
        ctx: &GpuContext,
        pr: &Product<'_>,
        params: &Params,
    ) -> anyhow::Result<Dispatch> {
        let groups = match self.config.tiles {
            ProductTiles::Register { wg_x, wg_y, tm, tn } => {
                [pr.n.div_ceil(tn * wg_x), pr.m.div_ceil(tm * wg_y), 1]
            }
            ProductTiles::Workgroup { bm, bn, .. } => [pr.n.div_ceil(bn), pr.m.div_ceil(bm), 1],
            ProductTiles::Coop { .. } => super::matmul_coop::groups(self.config.tiles, pr.m, pr.n),
        };
        let buffers = [(1, pr.a), (2, pr.w), (3, pr.c)];
        ctx.dispatch(&self.tiles_pipeline, params, &buffers, groups)
    }

    /// The uniforms of `pr`, after checking every buffer is large enough for it.
    fn checked_params(&self, pr: &Product<'_>) -> anyhow::Result<Params> {
        ensure!(pr.m >= 1 && pr.k4 >= 1 && pr.n >= 1, "empty product {pr:?}");
        let need_a =
            (u64::from(pr.a_off4) + u64::from(pr.m - 1) * u64::from(pr.lda4) + u64::from(pr.k4))
                * 16;
        let need_w = u64::from(pr.n) * self.dtype.row_bytes(4 * pr.k4 as usize) as u64;
        let need_c =
            (u64::from(pr.m - 1) * u64::from(pr.ldc) + u64::from(pr.c_off) + u64::from(pr.n)) * 4;
        ensure!(
            pr.a.size() >= need_a && pr.w.size() >= need_w && pr.c.size() >= need_c,
            "product buffers too small: A {} < {need_a}, W {} < {need_w} or C {} < {need_c}",
            pr.a.size(),
            pr.w.size(),
            pr.c.size()
        );
        Ok(Params {
            m: pr.m,
            k4: pr.k4,
            n: pr.n,
            lda4: pr.lda4,
            a_off4: pr.a_off4,
            ldc: pr.ldc,
            c_off: pr.c_off,
            accumulate: u32::from(pr.accumulate),
        })
    }
}

/// Rows `rows` of C = A · W in f64, from unpadded row-major A (· × k) and W (k × n, the
/// logical layout: input rows, output columns).
pub fn reference_rows(a: &[f32], w: &[f32], (n, k): (usize, usize), rows: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0f64; rows.len() * n];
    for (dst, &row) in out.chunks_exact_mut(n).zip(rows) {
        for (kk, &av) in a[row * k..(row + 1) * k].iter().enumerate() {
            let av = f64::from(av);
            for (d, &wv) in dst.iter_mut().zip(&w[kk * n..(kk + 1) * n]) {
                *d += av * f64::from(wv);
            }
        }
    }
    out
}

/// A logical weight matrix `w` (k × n, row-major: input rows, output columns) as the kernels
/// store it, n rows of K padded to vec4s encoded in `dtype`; and the values they compute with
/// (k × n, the dequantized `w`), for references.
pub fn encode_weights(dtype: WeightDtype, w: &[f32], k: usize, n: usize) -> (Vec<u8>, Vec<f32>) {
    let kp = super::layout::padded_cols(k);
    let bytes = dtype.encode_rows(&super::layout::pad_matrix(&transpose(w, k, n), n, k, n), kp);
    let values = dtype.decode_rows(&bytes, n, kp);
    (
        bytes,
        transpose(&super::layout::unpad_rows(&values, n, k), n, k),
    )
}

/// W (k × n, row-major) as the kernels store it: n rows of k.
pub fn transpose(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; k * n];
    for (kk, row) in w.chunks_exact(n).enumerate() {
        for (nn, &v) in row.iter().enumerate() {
            out[nn * k + kk] = v;
        }
    }
    out
}

/// The Rust layout of [`Params`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn params_layout() -> super::HostLayout {
    super::host_layout!(Params {
        m,
        k4,
        n,
        lda4,
        a_off4,
        ldc,
        c_off,
        accumulate
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workgroup_tiles_are_refused_where_their_memory_exceeds_the_limit() {
        // WebGPU's default (16 KiB) is below what the tiles declare; native adapters allow 32 KiB.
        let err = workgroup_tiles_fit(&wgpu::Limits::default()).unwrap_err();
        assert!(
            err.to_string().contains("16896 bytes") && err.to_string().contains("allows 16384"),
            "{err}"
        );
        let native = wgpu::Limits {
            max_compute_workgroup_storage_size: 32768,
            ..wgpu::Limits::default()
        };
        workgroup_tiles_fit(&native).unwrap();
    }

    #[test]
    fn subgroup_gemv_geometry_is_checked_against_the_adapter() {
        let sizes = Some(SubgroupSizes { min: 32, max: 64 });
        let gemv = |wg, rows, sg| GemvConfig::Subgroup { wg, rows, sg };
        subgroup_gemv_fits(gemv(128, 2, 32), sizes, 1024).unwrap();
        // Not a multiple of the largest size: wave64 would split a subgroup.
        assert!(subgroup_gemv_fits(gemv(96, 2, 32), sizes, 1024).is_err());
        assert!(subgroup_gemv_fits(gemv(128, 5, 32), sizes, 1024).is_err());
        assert!(subgroup_gemv_fits(gemv(128, 0, 32), sizes, 1024).is_err());
        assert!(subgroup_gemv_fits(gemv(2048, 1, 32), sizes, 1024).is_err());
        assert!(subgroup_gemv_fits(gemv(0, 1, 32), sizes, 1024).is_err());
        let err = subgroup_gemv_fits(gemv(128, 1, 32), None, 1024).unwrap_err();
        assert!(err.to_string().contains("SUBGROUP"), "{err}");
        subgroup_gemv_fits(GemvConfig::Split { wg: 64 }, None, 1024).unwrap();
    }

    #[test]
    fn reference_matches_hand_computed_product() {
        // [1 2; 3 4] · [5 6 7; 8 9 10]
        let a = [1.0, 2.0, 3.0, 4.0];
        let w = [5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let c = reference_rows(&a, &w, (3, 2), &[0, 1]);
        assert_eq!(c, vec![21.0, 24.0, 27.0, 47.0, 54.0, 61.0]);
        assert_eq!(reference_rows(&a, &w, (3, 2), &[1]), vec![47.0, 54.0, 61.0]);
        assert_eq!(transpose(&w, 2, 3), vec![5.0, 8.0, 6.0, 9.0, 7.0, 10.0]);
    }
}

/// Kernels against the f64 reference on the test device (lavapipe in CI), every tier.
#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::{pad_matrix, random_values};
    use crate::kernels::verify::{NMSE_F16, NMSE_F32, compare};

    const REGISTER: ProductTiles = ProductTiles::Register {
        wg_x: 64,
        wg_y: 1,
        tm: 8,
        tn: 1,
    };
    const WORKGROUP: ProductTiles = ProductTiles::Workgroup {
        bm: 64,
        bn: 64,
        tm: 4,
        tn: 4,
    };

    /// Every GEMV kind this adapter can run, the subgroup ones from [`subgroup_kinds`].
    fn gemv_kinds() -> Vec<GemvConfig> {
        let mut kinds = vec![
            GemvConfig::Rows { wg: 64, tn: 1 },
            GemvConfig::Rows { wg: 16, tn: 3 },
            GemvConfig::Split { wg: 64 },
        ];
        kinds.extend(subgroup_kinds());
        kinds
    }

    /// The subgroup GEMV at 1, 2 and 4 outputs per pass, and with its grid sized for subgroups
    /// half and twice as wide as the adapter's (what a driver picking another size in its range
    /// does: fewer subgroups each taking several chunks, or more subgroups, some idle); none
    /// without SUBGROUP.
    fn subgroup_kinds() -> Vec<GemvConfig> {
        let Some(sizes) = test_context().subgroup_sizes() else {
            return Vec::new();
        };
        let wg = 4 * sizes.max;
        let sg = sizes.min;
        vec![
            GemvConfig::Subgroup { wg, rows: 1, sg },
            GemvConfig::Subgroup { wg, rows: 2, sg },
            GemvConfig::Subgroup { wg, rows: 4, sg },
            GemvConfig::Subgroup {
                wg,
                rows: 3,
                sg: (sg / 2).max(1),
            },
            GemvConfig::Subgroup {
                wg,
                rows: 2,
                sg: 2 * sg,
            },
        ]
    }

    /// Runs C = A · W on the GPU and checks it against f64.
    fn check(config: MatmulConfig, dtype: WeightDtype, (m, n, k): (usize, usize, usize)) {
        let ctx = test_context();
        let a = random_values(m * k, 11, 1.0);
        let (w_bytes, w) = encode_weights(dtype, &random_values(k * n, 12, 1.0), k, n);
        let a_buf = ctx
            .storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)))
            .unwrap();
        let w_buf = ctx.storage_with("W", &w_bytes).unwrap();
        let c_buf = ctx.storage_zeroed("C", (m * n * 4) as u64).unwrap();
        let kernel = Matmul::new(ctx, config, dtype).unwrap();
        let d = kernel
            .dispatch(ctx, &Product::dense(&a_buf, &w_buf, &c_buf, (m, n, k)))
            .unwrap();
        ctx.execute(&d).unwrap();
        let c = ctx.read_f32(&c_buf, m * n).unwrap();
        let reference = reference_rows(&a, &w, (n, k), &(0..m).collect::<Vec<_>>());
        // f16 keeps its own threshold here; every other format is held to f32's on the SIMT
        // tiers (see verify::nmse_threshold).
        let threshold = if dtype == WeightDtype::F16 {
            NMSE_F16
        } else {
            NMSE_F32
        };
        let result = compare(&c, &reference, threshold, format!("{m}×{n}×{k}"));
        assert!(
            result.failure.is_none(),
            "{config:?} {dtype:?} {m}×{n}×{k}: {result:?}"
        );
    }

    #[test]
    fn every_tier_matches_reference_including_shapes_that_divide_no_tile() {
        let shapes = [
            (1, 64, 64),
            (64, 64, 64),
            (513, 257, 129),
            (1, 4096, 1),
            (100, 1, 100),
            (7, 33, 45),
            (9, 130, 67),
        ];
        for tiles in [REGISTER, WORKGROUP] {
            for gemv in gemv_kinds() {
                for shape in shapes {
                    check(MatmulConfig { tiles, gemv }, WeightDtype::F32, shape);
                }
            }
        }
    }

    #[test]
    fn f16_weights_match_reference() {
        if !test_context().has(wgpu::Features::SHADER_F16) {
            eprintln!("adapter has no SHADER_F16: the f16 tier is unreachable here");
            return;
        }
        for tiles in [REGISTER, WORKGROUP] {
            for gemv in gemv_kinds() {
                for shape in [(3, 65, 130), (77, 31, 66)] {
                    check(MatmulConfig { tiles, gemv }, WeightDtype::F16, shape);
                }
            }
        }
    }

    /// Every packed format on every SIMT tier and GEMV kind, at shapes whose K divides no block
    /// (29, 45, 67: the block formats pad K to 32) and whose M and N are odd.
    #[test]
    fn packed_formats_match_reference_on_every_simt_tier() {
        use WeightDtype::{Bf16, Fp8E4m3, Mxfp4, Q4_0, Q8_0};
        for dtype in [Bf16, Fp8E4m3, Q8_0, Q4_0, Mxfp4] {
            for tiles in [REGISTER, WORKGROUP] {
                for gemv in gemv_kinds() {
                    for shape in [(1, 33, 45), (3, 65, 130), (7, 31, 29), (77, 31, 67)] {
                        check(MatmulConfig { tiles, gemv }, dtype, shape);
                    }
                }
            }
            // Every GEMV row count and outputs per invocation.
            for gemv in [
                GemvConfig::Rows { wg: 8, tn: 4 },
                GemvConfig::Rows { wg: 16, tn: 3 },
            ] {
                for m in 1..=GEMV_MAX_ROWS as usize {
                    let config = MatmulConfig {
                        tiles: REGISTER,
                        gemv,
                    };
                    check(config, dtype, (m, 45, 99));
                }
            }
        }
    }

    /// The subgroup GEMV in every format at every row count, K spanning several rounds of the
    /// subgroup's lanes plus a partial one (333: no multiple of 4, of 32 or of a round) and N
    /// (37) no multiple of the outputs per pass.
    #[test]
    fn subgroup_gemv_matches_reference_in_every_format_and_row_count() {
        let kinds = subgroup_kinds();
        if kinds.is_empty() {
            eprintln!("adapter has no SUBGROUP: the subgroup GEMV is unreachable here");
            return;
        }
        let f16 = test_context().has(wgpu::Features::SHADER_F16);
        for dtype in WeightDtype::ALL {
            if dtype == WeightDtype::F16 && !f16 {
                continue;
            }
            // 1, 4 and the mismatched grid: 2 and twice the size run in the other tests.
            for gemv in [kinds[0], kinds[2], kinds[3]] {
                for m in 1..=GEMV_MAX_ROWS as usize {
                    let config = MatmulConfig {
                        tiles: REGISTER,
                        gemv,
                    };
                    check(config, dtype, (m, 37, 333));
                }
            }
        }
    }

    /// A wrong unpacking must fail the check: q4_0's bytes read as q8_0's.
    #[test]
    fn a_wrong_layout_fails_the_check() {
        let ctx = test_context();
        let (m, n, k) = (2usize, 33usize, 64usize);
        let a = random_values(m * k, 11, 1.0);
        let (w_bytes, w) = encode_weights(WeightDtype::Q4_0, &random_values(k * n, 12, 1.0), k, n);
        let mut padded = w_bytes.clone();
        padded.resize(n * WeightDtype::Q8_0.row_bytes(k) + 4, 0);
        let a_buf = ctx
            .storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)))
            .unwrap();
        let w_buf = ctx.storage_with("W", &padded).unwrap();
        let c_buf = ctx.storage_zeroed("C", (m * n * 4) as u64).unwrap();
        let config = MatmulConfig {
            tiles: REGISTER,
            gemv: GemvConfig::Rows { wg: 64, tn: 1 },
        };
        let kernel = Matmul::new(ctx, config, WeightDtype::Q8_0).unwrap();
        let d = kernel
            .dispatch(ctx, &Product::dense(&a_buf, &w_buf, &c_buf, (m, n, k)))
            .unwrap();
        ctx.execute(&d).unwrap();
        let c = ctx.read_f32(&c_buf, m * n).unwrap();
        let reference = reference_rows(&a, &w, (n, k), &[0, 1]);
        let result = compare(&c, &reference, NMSE_F16, "wrong layout".into());
        assert!(result.failure.is_some(), "{result:?}");
    }

    #[test]
    fn every_tile_configuration_is_correct() {
        let gemv = GemvConfig::Rows { wg: 64, tn: 2 };
        for tm in [1, 3, 8] {
            for tn in [1, 2, 4] {
                for (wg_x, wg_y) in [(8, 8), (16, 4), (64, 1)] {
                    let tiles = ProductTiles::Register { wg_x, wg_y, tm, tn };
                    check(MatmulConfig { tiles, gemv }, WeightDtype::F32, (37, 45, 29));
                }
            }
        }
        for (bm, bn, tm, tn) in [
            (64, 64, 4, 4),
            (32, 64, 2, 4),
            (128, 32, 4, 2),
            (16, 16, 1, 1),
            (32, 32, 4, 4),
        ] {
            let tiles = ProductTiles::Workgroup { bm, bn, tm, tn };
            check(MatmulConfig { tiles, gemv }, WeightDtype::F32, (37, 45, 29));
            check(
                MatmulConfig { tiles, gemv },
                WeightDtype::F32,
                (130, 70, 90),
            );
        }
        for gemv in [
            GemvConfig::Rows { wg: 1, tn: 1 },
            GemvConfig::Rows { wg: 8, tn: 4 },
            GemvConfig::Rows { wg: 256, tn: 2 },
            GemvConfig::Split { wg: 1 },
            GemvConfig::Split { wg: 256 },
        ] {
            for m in 1..=GEMV_MAX_ROWS as usize {
                check(
                    MatmulConfig {
                        tiles: REGISTER,
                        gemv,
                    },
                    WeightDtype::F32,
                    (m, 45, 29),
                );
            }
        }
    }

    /// Slabs at column offsets, strided A rows and accumulation: how model layers use products.
    #[test]
    fn slabs_strides_and_accumulation() {
        let ctx = test_context();
        let (m, k, n) = (10usize, 8usize, 16usize);
        let a_stride = 3 * k; // rows of A are 3·k apart; use the middle third
        let a_full = random_values(m * a_stride, 21, 1.0);
        let a: Vec<f32> = (0..m)
            .flat_map(|r| a_full[r * a_stride + k..r * a_stride + 2 * k].to_vec())
            .collect();
        let w = random_values(k * n, 22, 1.0);
        let wt = transpose(&w, k, n);
        let residual = random_values(m * n, 23, 1.0);
        let a_buf = ctx
            .storage_with("A", bytemuck::cast_slice(&a_full))
            .unwrap();
        let c_buf = ctx
            .storage_with("C", bytemuck::cast_slice(&residual))
            .unwrap();
        for tiles in [REGISTER, WORKGROUP] {
            for gemv in gemv_kinds() {
                let kernel =
                    Matmul::new(ctx, MatmulConfig { tiles, gemv }, WeightDtype::F32).unwrap();
                for rows in [m, 2] {
                    // Two slabs of 8 outputs each, written side by side.
                    let slabs: Vec<wgpu::Buffer> = (0..2)
                        .map(|s| {
                            ctx.storage_with(
                                "W",
                                bytemuck::cast_slice(&wt[s * 8 * k..(s + 1) * 8 * k]),
                            )
                            .unwrap()
                        })
                        .collect();
                    ctx.queue
                        .write_buffer(&c_buf, 0, bytemuck::cast_slice(&residual));
                    let dispatches: Vec<Dispatch> = slabs
                        .iter()
                        .enumerate()
                        .map(|(s, slab)| {
                            let pr = Product {
                                m: rows as u32,
                                k4: 2,
                                n: 8,
                                a: &a_buf,
                                a_off4: 2,
                                lda4: (a_stride / 4) as u32,
                                w: slab,
                                c: &c_buf,
                                c_off: 8 * s as u32,
                                ldc: n as u32,
                                accumulate: true,
                            };
                            kernel.dispatch(ctx, &pr).unwrap()
                        })
                        .collect();
                    ctx.execute(&dispatches).unwrap();
                    let c = ctx.read_f32(&c_buf, m * n).unwrap();
                    let product = reference_rows(&a, &w, (n, k), &(0..rows).collect::<Vec<_>>());
                    let mut expected: Vec<f64> = residual.iter().map(|&x| f64::from(x)).collect();
                    for (e, p) in expected.iter_mut().zip(&product) {
                        *e += p;
                    }
                    let result = compare(&c, &expected, NMSE_F32, "slabs".into());
                    assert!(
                        result.failure.is_none(),
                        "{tiles:?} {gemv:?} rows {rows}: {result:?}"
                    );
                }
            }
        }
    }
}
