//! Products of activations (f32) and weights (any [`WeightDtype`], unpacked to f32 in
//! registers): `shaders/matmul.wgsl` (register
//! tier), `shaders/matmul_tiled.wgsl` (workgroup tier), `shaders/matmul_large.wgsl` (large
//! tiles and split-K for big GPUs), `shaders/gemv.wgsl` and
//! `shaders/gemv_subgroup.wgsl` (up to 8 rows), and the cooperative-matrix tier
//! `shaders/matmul_coop.wgsl` (see [`super::matmul_coop`]).
//!
//! Weights are stored one output per row, K contiguous (W is N × K, "Wᵀ"): each GEMV lane or
//! subgroup streams whole rows, and tile loads along K coalesce. Every kernel reads that one
//! layout, so one set of weight buffers serves prefill (many rows) and decode (a few rows, every
//! weight byte read once). [`Matmul::dispatch`] picks the kernel by the number of rows.

use anyhow::ensure;

use super::{
    GEMV, GEMV_SHARED_A, GEMV_SUBGROUP, MATMUL, MATMUL_LARGE, MATMUL_TILED, SubgroupSizes,
    WeightDtype,
};
use crate::gpu::{Dispatch, GpuContext};
pub use tokbench_core::kernel_config::{GemvConfig, MatmulConfig, ProductTiles};

/// Rows up to which the GEMV kernels are used.
pub const GEMV_MAX_ROWS: u32 = 8;

/// Most accumulators (rows of A × outputs) one lane of the rows GEMV holds: a
/// [`GemvConfig::Rows`] with more outputs per invocation takes fewer at many rows.
pub const GEMV_ROWS_ACCUMULATORS: u32 = 32;

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

/// Workgroups a product's grid should reach before split-K stops splitting: two per streaming
/// multiprocessor of a 132-SM H100 (MI300X has 304 compute units, so it still gets one each).
pub const SPLIT_K_FILL: u32 = 264;
/// K steps (of BK) each split-K slice keeps at least, so the partial sums' extra traffic stays
/// small beside the slice's own loads.
pub const SPLIT_K_MIN_STEPS: u32 = 4;
/// Largest scratch buffer of partial sums split-K allocates per product.
pub const SPLIT_K_MAX_SCRATCH_BYTES: u64 = 64 << 20;

/// Checks the geometry of large tiles (`shaders/matmul_large.wgsl`) against what the shader
/// supports and the adapter's invocations per workgroup, and fits their workgroup memory to the
/// adapter's limit: a tile that needs more is replaced by the same tile with BK halved (the
/// register block, and so the loads per FMA, stay the same; only the barriers per K double)
/// until it fits. Returns the tiles to build and, where they changed, a note saying why. Other
/// tiers pass through unchanged.
pub fn fit_large_tiles(
    tiles: ProductTiles,
    limits: &wgpu::Limits,
) -> anyhow::Result<(ProductTiles, Option<String>)> {
    let ProductTiles::Large {
        bm,
        bn,
        bk,
        tm,
        tn,
        split_k,
    } = tiles
    else {
        return Ok((tiles, None));
    };
    let threads = (bm / tm.max(1)) * (bn / tn.max(1));
    let max_threads = limits.max_compute_invocations_per_workgroup;
    // Each invocation loads at most 8 vec4s of either tile per step (the shader's MAX_LOADS).
    let loads = |cols: u32, bk: u32| (cols * bk / 4).div_ceil(threads.max(1));
    ensure!(
        matches!(tm, 4 | 8)
            && matches!(tn, 4 | 8)
            && matches!(bk, 4 | 8 | 16 | 32)
            && bm.is_multiple_of(32)
            && bn.is_multiple_of(32)
            && (32..=256).contains(&bm)
            && (32..=256).contains(&bn)
            && threads <= max_threads
            && loads(bm, bk) <= 8
            && loads(bn, bk) <= 8
            && (1..=64).contains(&split_k),
        "large tile bm {bm} bn {bn} bk {bk} tm {tm} tn {tn} split_k {split_k} unsupported: tm \
         and tn 4 or 8, bk 4, 8, 16 or 32, bm and bn multiples of 32 up to 256, at most \
         {max_threads} invocations and 8 vec4 loads of a tile each, split_k 1..=64"
    );
    let allowed = limits.max_compute_workgroup_storage_size;
    let with_bk = |bk| ProductTiles::large(bm, bn, bk, tm, tn, split_k);
    let need = |bk| with_bk(bk).workgroup_bytes().unwrap_or(0);
    let mut fitted_bk = bk;
    while need(fitted_bk) > allowed {
        ensure!(
            fitted_bk > 4,
            "large tile bm {bm} bn {bn} needs {} bytes of workgroup memory even at bk 4 and the \
             adapter allows {allowed}",
            need(4)
        );
        fitted_bk /= 2;
    }
    let note = (fitted_bk != bk).then(|| {
        format!(
            "large tiles {bm}×{bn} with bk {bk} need {} bytes of workgroup memory and the \
             adapter allows {allowed}: using bk {fitted_bk} ({} bytes)",
            need(bk),
            need(fitted_bk)
        )
    });
    let fitted = with_bk(fitted_bk);
    Ok((fitted, note))
}

/// How many slices split-K cuts K into for an m × n product of `k4` vec4s on `tiles`: 1 (no
/// split) unless the tiles are large and allow it, and the grid of tiles has fewer than
/// [`SPLIT_K_FILL`] workgroups; then enough slices to reach it, at most `split_k`, each at least
/// [`SPLIT_K_MIN_STEPS`] steps of K, the partial sums within [`SPLIT_K_MAX_SCRATCH_BYTES`].
pub fn split_k_slices(tiles: ProductTiles, m: u32, n: u32, k4: u32) -> u32 {
    let ProductTiles::Large {
        bm,
        bn,
        bk,
        split_k,
        ..
    } = tiles
    else {
        return 1;
    };
    let grid = m.div_ceil(bm) * n.div_ceil(bn);
    let steps = k4.div_ceil(bk / 4);
    let row_bytes = u64::from(m) * u64::from(n.div_ceil(4)) * 16;
    let by_scratch = (SPLIT_K_MAX_SCRATCH_BYTES / row_bytes.max(1)).min(64) as u32;
    let slices = split_k
        .min(SPLIT_K_FILL.div_ceil(grid.max(1)))
        .min(steps / SPLIT_K_MIN_STEPS)
        .min(by_scratch);
    if slices < 2 { 1 } else { slices }
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
    /// The rows GEMV shares each load of A across the subgroup ([`GEMV_SHARED_A`]) at one row
    /// (decode at batch 1): where the adapter has SUBGROUP.
    share_a: bool,
    /// Why the tiles built differ from those asked for (large tiles over the adapter's
    /// workgroup memory).
    note: Option<String>,
    /// Split-K's partial sums, shared by every launch of this kernel set: launches run one
    /// after another on one queue (wgpu orders each reduction before the next partial pass), so
    /// a forward pass of many split products holds one buffer, the largest any of them needed.
    scratch: std::sync::Mutex<Option<wgpu::Buffer>>,
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
        let (tiles, note) = fit_large_tiles(config.tiles, &ctx.limits)?;
        let config = MatmulConfig { tiles, ..config };
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
            ProductTiles::Large {
                bm, bn, bk, tm, tn, ..
            } => ctx.pipeline(
                &MATMUL_LARGE,
                dtype,
                "matmul_large",
                &large_constants(bm, bn, bk, tm, tn),
            )?,
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
            share_a: ctx.has(wgpu::Features::SUBGROUP),
            note,
            scratch: std::sync::Mutex::new(None),
        })
    }

    /// Why the tiles in use differ from those asked for, where they do (see
    /// [`fit_large_tiles`]).
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// This kernel set with every product, even a one-row one, on the many-row kernel: what
    /// `--math coopmat` asks of a decode (its GEMVs would otherwise run SIMT).
    pub fn every_row_on_tiles(self, on: bool) -> Self {
        Self {
            every_row_on_tiles: on,
            ..self
        }
    }

    /// The rows GEMV with every lane loading A itself, as on adapters without SUBGROUP (tests
    /// run both variants on one adapter).
    #[cfg(test)]
    pub(crate) fn each_lane_loads_a(self) -> Self {
        Self {
            share_a: false,
            ..self
        }
    }

    /// The configuration in use (after [`fit_large_tiles`]).
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
                ensure!((1..=16).contains(&tn), "gemv rows tn {tn} (1..=16)");
                // A lane holds rows × outputs accumulators: past GEMV_ROWS_ACCUMULATORS they
                // spill (and the unrolled shader takes long to compile), while outputs beyond
                // that no longer save loads of A, already shared by the rows.
                let tn = tn.min(GEMV_ROWS_ACCUMULATORS / pr.m).max(1);
                let constants = [("WG", f64::from(wg)), ("M", rows), ("TN", f64::from(tn))];
                // One row only: at more rows the broadcasts multiply the unrolled code, and
                // lavapipe's compile time with it.
                let shader = if self.share_a && pr.m == 1 {
                    &GEMV_SHARED_A
                } else {
                    &GEMV
                };
                (
                    ctx.pipeline(shader, self.dtype, "gemv_rows", &constants)?,
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
            ProductTiles::Large { bm, bn, .. } => {
                let slices = split_k_slices(self.config.tiles, pr.m, pr.n, pr.k4);
                let groups = [pr.n.div_ceil(bn), pr.m.div_ceil(bm), slices];
                if slices > 1 {
                    return self.split_k_launch(ctx, pr, params, groups);
                }
                groups
            }
            ProductTiles::Coop { .. } => super::matmul_coop::groups(self.config.tiles, pr.m, pr.n),
        };
        let buffers = [(1, pr.a), (2, pr.w), (3, pr.c)];
        ctx.dispatch(&self.tiles_pipeline, params, &buffers, groups)
    }

    /// Split-K: the large kernel writes each slice's partial sums into a scratch buffer (slice
    /// z's rows at z · m, rows padded to vec4s), then `matmul_large_reduce` adds them into C
    /// (with C's offset, stride and accumulation). The reduction rides on the launch
    /// ([`Dispatch::then`]), so callers see one launch.
    fn split_k_launch(
        &self,
        ctx: &GpuContext,
        pr: &Product<'_>,
        params: &Params,
        groups: [u32; 3],
    ) -> anyhow::Result<Dispatch> {
        let slices = groups[2];
        let n4 = pr.n.div_ceil(4);
        let bytes = u64::from(slices) * u64::from(pr.m) * u64::from(n4) * 16;
        let scratch = {
            let mut held = self.scratch.lock().expect("split-k scratch");
            match &*held {
                Some(b) if b.size() >= bytes => b.clone(),
                _ => {
                    let b = ctx.storage_zeroed("split-k partials", bytes)?;
                    *held = Some(b.clone());
                    b
                }
            }
        };
        let partial = Params {
            ldc: n4 * 4,
            c_off: 0,
            accumulate: 0,
            ..*params
        };
        let mut launch = ctx.dispatch(
            &self.tiles_pipeline,
            &partial,
            &[(1, pr.a), (2, pr.w), (3, &scratch)],
            groups,
        )?;
        // The reduction uses no tiles: the smallest ones keep its declared workgroup memory
        // nominal wherever a driver counts unused variables.
        let reduce = ctx.pipeline(
            &MATMUL_LARGE,
            self.dtype,
            "matmul_large_reduce",
            &large_constants(32, 32, 4, 4, 4),
        )?;
        let sums = Params {
            k4: slices,
            lda4: n4,
            a_off4: 0,
            ..*params
        };
        launch.then.push(ctx.dispatch(
            &reduce,
            &sums,
            &[(1, &scratch), (3, pr.c)],
            [n4.div_ceil(64), pr.m, 1],
        )?);
        Ok(launch)
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

/// The override constants of `shaders/matmul_large.wgsl`.
fn large_constants(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> [(&'static str, f64); 5] {
    [
        ("BM", f64::from(bm)),
        ("BN", f64::from(bn)),
        ("BK", f64::from(bk)),
        ("TM", f64::from(tm)),
        ("TN", f64::from(tn)),
    ]
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

    fn limits(workgroup_bytes: u32) -> wgpu::Limits {
        wgpu::Limits {
            max_compute_workgroup_storage_size: workgroup_bytes,
            max_compute_invocations_per_workgroup: 1024,
            ..wgpu::Limits::default()
        }
    }

    #[test]
    fn large_tiles_over_the_workgroup_memory_limit_fall_back_to_a_smaller_bk() {
        let big = ProductTiles::large(128, 128, 16, 8, 8, 16);
        assert_eq!(big.workgroup_bytes(), Some(33280));
        // An H100 under Vulkan allows 48 KiB: built as asked.
        assert_eq!(fit_large_tiles(big, &limits(49152)).unwrap(), (big, None));
        // lavapipe's 32 KiB: BK 8, and a note naming both figures.
        let (fitted, note) = fit_large_tiles(big, &limits(32768)).unwrap();
        assert_eq!(fitted, ProductTiles::large(128, 128, 8, 8, 8, 16));
        let note = note.unwrap();
        assert!(
            note.contains("33280 bytes") && note.contains("allows 32768") && note.contains("bk 8"),
            "{note}"
        );
        // WebGPU's 16 KiB default: down to BK 4.
        let (fitted, _) = fit_large_tiles(big, &limits(16384)).unwrap();
        assert_eq!(fitted, ProductTiles::large(128, 128, 4, 8, 8, 16));
        assert!(fitted.workgroup_bytes().unwrap() <= 16384);
        // Nothing fits 4 KiB; tiles the shader cannot run are refused whatever the memory.
        assert!(fit_large_tiles(big, &limits(4096)).is_err());
        for bad in [
            ProductTiles::large(128, 128, 16, 2, 8, 1),
            ProductTiles::large(128, 128, 12, 8, 8, 1),
            ProductTiles::large(100, 128, 16, 4, 4, 1),
            ProductTiles::large(512, 128, 16, 8, 8, 1),
            ProductTiles::large(128, 128, 16, 8, 8, 0),
            // 1024 invocations load a 256 × 32 tile in 2 vec4s each, but are too many for 512.
            ProductTiles::large(256, 256, 32, 8, 8, 1),
            // 64 invocations would each load 16 vec4s of a 128 × 32 tile.
            ProductTiles::large(128, 32, 32, 8, 8, 1),
        ] {
            let mut l = limits(1 << 20);
            l.max_compute_invocations_per_workgroup = 512;
            assert!(fit_large_tiles(bad, &l).is_err(), "{bad:?}");
        }
        // Other tiers pass through.
        let tiled = ProductTiles::Workgroup {
            bm: 64,
            bn: 64,
            tm: 4,
            tn: 4,
        };
        assert_eq!(fit_large_tiles(tiled, &limits(0)).unwrap(), (tiled, None));
    }

    /// The bytes [`ProductTiles::workgroup_bytes`] computes (and the adapter check uses) are what
    /// naga lays out for `shaders/matmul_large.wgsl` once its override constants are set.
    #[test]
    fn large_workgroup_bytes_match_what_the_shader_declares() {
        use wgpu::naga;
        let source = MATMUL_LARGE.source_for(WeightDtype::F32);
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap();
        for tiles in [
            ProductTiles::large(128, 128, 16, 8, 8, 1),
            ProductTiles::large(128, 128, 8, 8, 8, 1),
            ProductTiles::large(64, 32, 32, 4, 4, 1),
            ProductTiles::large(32, 32, 4, 4, 4, 1),
            ProductTiles::large(256, 128, 8, 8, 8, 1),
        ] {
            let ProductTiles::Large {
                bm, bn, bk, tm, tn, ..
            } = tiles
            else {
                unreachable!()
            };
            let mut constants = naga::back::PipelineConstants::default();
            for (name, value) in large_constants(bm, bn, bk, tm, tn) {
                constants.insert(name.to_string(), value);
            }
            let (resolved, _) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, "matmul_large")),
                &constants,
            )
            .unwrap();
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(resolved.to_ctx()).unwrap();
            let declared: u32 = resolved
                .global_variables
                .iter()
                .filter(|(_, v)| v.space == naga::AddressSpace::WorkGroup)
                .map(|(_, v)| layouter[v.ty].size)
                .sum();
            assert_eq!(Some(declared), tiles.workgroup_bytes(), "{tiles:?}");
        }
    }

    #[test]
    fn split_k_cuts_skinny_products_only() {
        let t = ProductTiles::large(128, 128, 16, 8, 8, 16);
        // 4096³: a 32 × 32 grid fills the device.
        assert_eq!(split_k_slices(t, 4096, 4096, 1024), 1);
        // 64 rows × 4096 outputs, K 4096: 32 workgroups; 9 slices make 288.
        assert_eq!(split_k_slices(t, 64, 4096, 1024), 9);
        // One tile, K 14336: as many as split_k allows.
        assert_eq!(split_k_slices(t, 16, 128, 3584), 16);
        // Short K: each slice keeps at least SPLIT_K_MIN_STEPS steps.
        assert_eq!(split_k_slices(t, 16, 128, 32), 2);
        assert_eq!(split_k_slices(t, 16, 128, 28), 1);
        // split_k 1 never splits; other tiers never do.
        assert_eq!(
            split_k_slices(ProductTiles::large(128, 128, 16, 8, 8, 1), 16, 128, 3584),
            1
        );
        let tiled = ProductTiles::Workgroup {
            bm: 64,
            bn: 64,
            tm: 4,
            tn: 4,
        };
        assert_eq!(split_k_slices(tiled, 16, 128, 3584), 1);
        // The partial sums stay within their scratch budget: 200 tiles of 256 × 256 would take
        // 2 slices, whose 105 MB of partials are over it; 50 tiles would take 6, and 5 fit.
        let wide = ProductTiles::large(256, 256, 8, 8, 8, 64);
        assert_eq!(split_k_slices(wide, 256, 200 * 256, 1 << 16), 1);
        assert_eq!(split_k_slices(wide, 256, 50 * 256, 1 << 16), 5);
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

    /// The GPU default (128 × 128, 8 × 8 per invocation, BK 16, split-K up to 16): over
    /// lavapipe's 32 KiB of workgroup memory, so built there with BK 8.
    const LARGE: ProductTiles = ProductTiles::large(128, 128, 16, 8, 8, 16);

    /// Every large-tile variant `tune` offers that differs in what the shader does (BK 4 to 32,
    /// 4 or 8 rows and outputs per invocation, tiles not square, loads not dividing evenly),
    /// with split-K allowed; each fits 32 KiB of workgroup memory as given.
    const LARGE_VARIANTS: [ProductTiles; 6] = [
        ProductTiles::large(128, 128, 8, 8, 8, 16),
        ProductTiles::large(64, 64, 16, 4, 4, 16),
        ProductTiles::large(128, 64, 16, 8, 8, 16),
        ProductTiles::large(64, 128, 16, 8, 4, 16),
        ProductTiles::large(64, 32, 32, 4, 4, 16),
        ProductTiles::large(32, 32, 4, 4, 4, 16),
    ];

    /// `tiles` with split-K off.
    fn whole_k(tiles: ProductTiles) -> ProductTiles {
        match tiles {
            ProductTiles::Large {
                bm, bn, bk, tm, tn, ..
            } => ProductTiles::large(bm, bn, bk, tm, tn, 1),
            other => other,
        }
    }

    /// Every GEMV kind this adapter can run, the subgroup ones from [`subgroup_kinds`].
    fn gemv_kinds() -> Vec<GemvConfig> {
        let mut kinds = vec![
            GemvConfig::Rows { wg: 64, tn: 1 },
            GemvConfig::Rows { wg: 16, tn: 3 },
            GemvConfig::Rows { wg: 4, tn: 16 },
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
    fn check(config: MatmulConfig, dtype: WeightDtype, shape: (usize, usize, usize)) {
        check_loading_a(config, dtype, shape, false);
    }

    /// [`check`], with the rows GEMV's lanes each loading A where `each_lane_loads_a` (on an
    /// adapter with SUBGROUP the default shares A's loads across the subgroup).
    fn check_loading_a(
        config: MatmulConfig,
        dtype: WeightDtype,
        (m, n, k): (usize, usize, usize),
        each_lane_loads_a: bool,
    ) {
        let ctx = test_context();
        let a = random_values(m * k, 11, 1.0);
        let (w_bytes, w) = encode_weights(dtype, &random_values(k * n, 12, 1.0), k, n);
        let a_buf = ctx
            .storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)))
            .unwrap();
        let w_buf = ctx.storage_with("W", &w_bytes).unwrap();
        let c_buf = ctx.storage_zeroed("C", (m * n * 4) as u64).unwrap();
        let reference = reference_rows(&a, &w, (n, k), &(0..m).collect::<Vec<_>>());
        // f16 keeps its own threshold here; every other format is held to f32's on the SIMT
        // tiers (see verify::nmse_threshold).
        let threshold = if dtype == WeightDtype::F16 {
            NMSE_F16
        } else {
            NMSE_F32
        };
        let kernel = Matmul::new(ctx, config, dtype).unwrap();
        let kernel = if each_lane_loads_a {
            kernel.each_lane_loads_a()
        } else {
            kernel
        };
        let d = kernel
            .dispatch(ctx, &Product::dense(&a_buf, &w_buf, &c_buf, (m, n, k)))
            .unwrap();
        ctx.execute(&d).unwrap();
        let c = ctx.read_f32(&c_buf, m * n).unwrap();
        let result = compare(&c, &reference, threshold, format!("{m}×{n}×{k}"));
        assert!(
            result.failure.is_none(),
            "{config:?} share A {} {dtype:?} {m}×{n}×{k}: {result:?}",
            kernel.share_a
        );
    }

    /// [`check`] of the few-row kernel `gemv` at every row count it serves, n outputs of k.
    fn check_every_row_count(gemv: GemvConfig, dtype: WeightDtype, (n, k): (usize, usize)) {
        for m in 1..=GEMV_MAX_ROWS as usize {
            check(
                MatmulConfig {
                    tiles: REGISTER,
                    gemv,
                },
                dtype,
                (m, n, k),
            );
        }
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
            // Every GEMV row count and outputs per invocation. Many outputs per lane (13: all
            // of them at one or two rows, fewer from three, as the accumulator cap takes them) in
            // q4_0 only: those shaders unroll into long code that is slow to compile on
            // lavapipe, and the format's unpacking is the same code at any count.
            let many = (dtype == Q4_0).then_some(GemvConfig::Rows { wg: 4, tn: 13 });
            for gemv in [
                GemvConfig::Rows { wg: 8, tn: 4 },
                GemvConfig::Rows { wg: 16, tn: 3 },
            ]
            .into_iter()
            .chain(many)
            {
                check_every_row_count(gemv, dtype, (45, 99));
            }
        }
    }

    /// The rows GEMV's two ways of loading A at one row (shared across the subgroup on adapters
    /// with SUBGROUP, such as lavapipe, where the other tests use it, q4_0's blocks then taken
    /// in pairs; each lane its own elsewhere), in every format, with N leaving the last lanes
    /// past the end. K of 4, 3 and 1 blocks of 32: pairs from word-aligned rows, then rows
    /// starting on odd half-words (18-byte q4_0 blocks) ending in a lone block, and a lone block
    /// only.
    #[test]
    fn rows_gemv_loads_a_either_way() {
        let config = MatmulConfig {
            tiles: REGISTER,
            gemv: GemvConfig::Rows { wg: 8, tn: 3 },
        };
        for dtype in WeightDtype::ALL {
            for each_lane in [false, true] {
                for k in [99, 67, 29] {
                    check_loading_a(config, dtype, (1, 45, k), each_lane);
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
                check_every_row_count(gemv, dtype, (37, 333));
            }
        }
    }

    /// The large tiles against f64 at shapes that divide no tile, K no multiple of BK (nor of
    /// 32, the block formats' block), in every weight format, with split-K and without: at
    /// (67, 131, 99) the 128 × 128 default splits K into 3 slices (BK 8 here), at (20, 40, 1000)
    /// into 16.
    #[test]
    fn large_tiles_match_reference_in_every_format_with_and_without_split_k() {
        let ctx = test_context();
        let gemv = GemvConfig::Rows { wg: 64, tn: 2 };
        let f16 = ctx.has(wgpu::Features::SHADER_F16);
        for dtype in WeightDtype::ALL {
            if dtype == WeightDtype::F16 && !f16 {
                continue;
            }
            for tiles in [LARGE, whole_k(LARGE)] {
                for shape in [(67, 131, 99), (20, 40, 1000)] {
                    check(MatmulConfig { tiles, gemv }, dtype, shape);
                }
            }
        }
        let built = Matmul::new(ctx, MatmulConfig { tiles: LARGE, gemv }, WeightDtype::F32)
            .unwrap()
            .config()
            .tiles;
        assert_eq!(split_k_slices(built, 67, 131, 25), 3, "{built:?}");
        assert_eq!(split_k_slices(built, 20, 40, 250), 16, "{built:?}");
        assert_eq!(split_k_slices(whole_k(built), 20, 40, 250), 1);
    }

    /// Every large-tile variant, with and without split-K, at shapes that divide none of them.
    #[test]
    fn every_large_tile_variant_is_correct() {
        let gemv = GemvConfig::Rows { wg: 64, tn: 2 };
        for tiles in LARGE_VARIANTS {
            for tiles in [tiles, whole_k(tiles)] {
                for shape in [(67, 131, 99), (130, 70, 90), (9, 257, 333)] {
                    check(MatmulConfig { tiles, gemv }, WeightDtype::F32, shape);
                }
            }
            // One packed format per variant: the block format's loads go through w_vec4.
            check(
                MatmulConfig { tiles, gemv },
                WeightDtype::Q4_0,
                (37, 45, 29),
            );
        }
    }

    /// Tiles over the adapter's workgroup memory are built with a smaller BK, and say so; ones
    /// that fit are built as asked.
    #[test]
    fn large_tiles_fall_back_to_what_the_adapter_allows() {
        let ctx = test_context();
        let gemv = GemvConfig::Rows { wg: 64, tn: 2 };
        let allowed = ctx.limits.max_compute_workgroup_storage_size;
        let kernel =
            Matmul::new(ctx, MatmulConfig { tiles: LARGE, gemv }, WeightDtype::F32).unwrap();
        let built = kernel.config().tiles;
        assert!(built.workgroup_bytes().unwrap() <= allowed, "{built:?}");
        assert_eq!(kernel.note().is_some(), built != LARGE);
        if LARGE.workgroup_bytes().unwrap() > allowed {
            assert!(
                kernel
                    .note()
                    .unwrap()
                    .contains(&format!("allows {allowed}"))
            );
        }
        for tiles in LARGE_VARIANTS {
            let kernel = Matmul::new(ctx, MatmulConfig { tiles, gemv }, WeightDtype::F32).unwrap();
            assert_eq!((kernel.config().tiles, kernel.note()), (tiles, None));
        }
    }

    /// Split-K's reduction writes at C's column offset and row stride and adds to what C holds;
    /// launches of one kernel set share its scratch buffer.
    #[test]
    fn split_k_accumulates_into_a_slab_of_c() {
        let ctx = test_context();
        let (m, n, k, ldc, c_off) = (20usize, 12usize, 600usize, 30usize, 5usize);
        let a = random_values(m * k, 31, 1.0);
        let (w_bytes, w) = encode_weights(WeightDtype::F32, &random_values(k * n, 32, 1.0), k, n);
        let residual = random_values(m * ldc, 33, 1.0);
        let a_buf = ctx
            .storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)))
            .unwrap();
        let w_buf = ctx.storage_with("W", &w_bytes).unwrap();
        let c_buf = ctx
            .storage_with("C", bytemuck::cast_slice(&residual))
            .unwrap();
        let tiles = ProductTiles::large(64, 64, 16, 4, 4, 8);
        let config = MatmulConfig {
            tiles,
            gemv: GemvConfig::Rows { wg: 64, tn: 2 },
        };
        let kernel = Matmul::new(ctx, config, WeightDtype::F32).unwrap();
        let k4 = k.div_ceil(4) as u32;
        assert_eq!(split_k_slices(tiles, m as u32, n as u32, k4), 8);
        let pr = Product {
            m: m as u32,
            k4,
            n: n as u32,
            a: &a_buf,
            a_off4: 0,
            lda4: k4,
            w: &w_buf,
            c: &c_buf,
            c_off: c_off as u32,
            ldc: ldc as u32,
            accumulate: true,
        };
        let d = kernel.dispatch(ctx, &pr).unwrap();
        assert_eq!((d.workgroups[2], d.then.len()), (8, 1));
        // Twice in one pass, through the one scratch buffer both launches share.
        let again = kernel.dispatch(ctx, &pr).unwrap();
        ctx.execute(&vec![d, again]).unwrap();
        let c = ctx.read_f32(&c_buf, m * ldc).unwrap();
        let product = reference_rows(&a, &w, (n, k), &(0..m).collect::<Vec<_>>());
        let mut expected: Vec<f64> = residual.iter().map(|&x| f64::from(x)).collect();
        for r in 0..m {
            for j in 0..n {
                expected[r * ldc + c_off + j] += 2.0 * product[r * n + j];
            }
        }
        let result = compare(&c, &expected, NMSE_F32, "split-k slab".into());
        assert!(result.failure.is_none(), "{result:?}");
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
            GemvConfig::Rows { wg: 2, tn: 16 },
            GemvConfig::Rows { wg: 256, tn: 2 },
            GemvConfig::Split { wg: 1 },
            GemvConfig::Split { wg: 256 },
        ] {
            check_every_row_count(gemv, WeightDtype::F32, (45, 29));
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
        for tiles in [REGISTER, WORKGROUP, LARGE] {
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
