//! `shaders/matmul_coop.wgsl`: the cooperative-matrix (tensor-core) tier of the products, f16 A
//! and W, f32 accumulate, run by [`super::matmul::Matmul`] when its tiles are
//! [`ProductTiles::Coop`]. This file says which adapters can run it (and, when one cannot, what
//! is missing), which variant (8 × 8 or 16 × 16 matrices) they get, and the dispatch geometry.

use anyhow::ensure;

use super::{MATMUL_COOP8, MATMUL_COOP16, Shader, WeightDtype};
use crate::gpu::GpuContext;
use tokbench_core::kernel_config::ProductTiles;

/// What the adapter offers the cooperative-matrix tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoopSupport {
    /// Square sizes listed for f16 × f16 → f32 that a shader variant exists for, largest first.
    pub sizes: Vec<u32>,
    /// The adapter's largest subgroup size.
    pub sg: u32,
}

/// What this adapter offers, or why it cannot run the tier (a sentence naming what is missing).
pub fn support(ctx: &GpuContext) -> Result<CoopSupport, String> {
    let name = &ctx.info.name;
    if !ctx.has(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        return Err(format!(
            "adapter {name:?} has no EXPERIMENTAL_COOPERATIVE_MATRIX (Vulkan needs \
             VK_KHR_cooperative_matrix with vulkanMemoryModelDeviceScope: NVIDIA, AMD RDNA3, \
             Intel Arc, Mesa lavapipe 26 or later; Metal needs Apple7 or later; DX12 and GL have \
             none)"
        ));
    }
    for (feature, label) in [
        (wgpu::Features::SHADER_F16, "SHADER_F16"),
        (wgpu::Features::SUBGROUP, "SUBGROUP"),
    ] {
        if !ctx.has(feature) {
            return Err(format!(
                "adapter {name:?} has cooperative matrices but no {label}, which the \
                 cooperative-matrix kernels need"
            ));
        }
    }
    let listed = ctx.cooperative_matrix_properties();
    let mut sizes: Vec<u32> = listed
        .iter()
        .filter(|p| {
            p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
                && p.m_size == p.n_size
                && p.n_size == p.k_size
                && matches!(p.m_size, 8 | 16)
        })
        .map(|p| p.m_size)
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    if sizes.is_empty() {
        let names: Vec<String> = listed.iter().map(crate::gpu::coop_name).collect();
        return Err(format!(
            "adapter {name:?} lists no 8x8x8 or 16x16x16 f16->f32 cooperative matrix (it lists: \
             {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    let sg = ctx.info.subgroup_max_size;
    ensure_fits(ctx, sizes[0], sg).map_err(|e| format!("adapter {name:?}: {e}"))?;
    Ok(CoopSupport { sizes, sg })
}

/// Why `dtype` weights cannot run on cooperative matrices, if they cannot.
/// f32 cannot: its weights would be rounded to f16. Every other format unpacks into f16 tiles
/// (f16 as stored; bf16 and mxfp4 exactly in range; fp8, q8_0 and q4_0 rounded to f16 after
/// scaling).
pub fn dtype_reason(dtype: WeightDtype) -> Option<String> {
    (dtype == WeightDtype::F32).then(|| {
        format!(
            "--dtype {}: cooperative matrices here take f16 inputs; use --dtype f16 or a packed \
             format (bf16, fp8-e4m3, q8_0, q4_0, mxfp4), which unpack into f16 tiles",
            dtype.name()
        )
    })
}

/// The shader variant for matrices of `size`.
pub fn shader(size: u32) -> anyhow::Result<&'static Shader> {
    match size {
        8 => Ok(&MATMUL_COOP8),
        16 => Ok(&MATMUL_COOP16),
        _ => anyhow::bail!("cooperative matrix size {size}: only 8 and 16 exist"),
    }
}

/// The tier's default tiles: the largest listed size, 2 × 2 subgroups.
pub fn default_tiles(support: &CoopSupport) -> ProductTiles {
    ProductTiles::Coop {
        size: support.sizes[0],
        sg_m: 2,
        sg_n: 2,
        sg: support.sg,
    }
}

/// Tuning candidates: every listed size, with 1 or 2 subgroups along each side (the default
/// first).
pub fn candidates(support: &CoopSupport, quick: bool) -> Vec<ProductTiles> {
    let mut out = vec![default_tiles(support)];
    let layouts: &[(u32, u32)] = if quick {
        &[(2, 2), (1, 2)]
    } else {
        &[(2, 2), (1, 2), (2, 1), (1, 1)]
    };
    for &size in &support.sizes {
        for &(sg_m, sg_n) in layouts {
            out.push(ProductTiles::Coop {
                size,
                sg_m,
                sg_n,
                sg: support.sg,
            });
        }
    }
    out
}

/// Workgroup storage of a variant: two f16 tiles of 8·D² and an f32 tile of 16·D².
fn storage_bytes(size: u32) -> u32 {
    2 * 8 * size * size * 2 + 16 * size * size * 4
}

fn ensure_fits(ctx: &GpuContext, size: u32, sg: u32) -> anyhow::Result<()> {
    let storage = storage_bytes(size);
    ensure!(
        storage <= ctx.limits.max_compute_workgroup_storage_size,
        "the {size}x{size} cooperative product needs {storage} bytes of workgroup memory, more \
         than the {} this adapter has",
        ctx.limits.max_compute_workgroup_storage_size
    );
    ensure!(
        4 * sg <= ctx.limits.max_compute_invocations_per_workgroup,
        "subgroup size {sg}: four subgroups exceed {} invocations per workgroup",
        ctx.limits.max_compute_invocations_per_workgroup
    );
    Ok(())
}

/// Checks `tiles` can run with `dtype` weights on an adapter with `support`; returns the shader
/// and its constants.
pub(super) fn pipeline_constants(
    ctx: &GpuContext,
    tiles: ProductTiles,
    dtype: WeightDtype,
    support: &CoopSupport,
) -> anyhow::Result<(&'static Shader, [(&'static str, f64); 3])> {
    let ProductTiles::Coop {
        size,
        sg_m,
        sg_n,
        sg,
    } = tiles
    else {
        anyhow::bail!("{tiles:?} is not a cooperative-matrix tile");
    };
    if let Some(why) = dtype_reason(dtype) {
        anyhow::bail!(why);
    }
    ensure!(
        support.sizes.contains(&size),
        "cooperative matrix size {size}: this adapter lists {:?}",
        support.sizes
    );
    ensure!(
        (1..=2).contains(&sg_m) && (1..=2).contains(&sg_n),
        "cooperative tiles sg_m {sg_m} sg_n {sg_n}: each 1 or 2"
    );
    // A smaller subgroup size than the adapter's largest would leave tiles without an owner.
    ensure!(
        sg >= support.sg,
        "cooperative tiles for subgroup size {sg}: this adapter's largest is {}",
        support.sg
    );
    ensure_fits(ctx, size, sg)?;
    Ok((
        shader(size)?,
        [
            ("SG_M", f64::from(sg_m)),
            ("SG_N", f64::from(sg_n)),
            ("SG", f64::from(sg)),
        ],
    ))
}

/// Workgroups for an m × n product.
pub(super) fn groups(tiles: ProductTiles, m: u32, n: u32) -> [u32; 3] {
    match tiles {
        ProductTiles::Coop {
            size, sg_m, sg_n, ..
        } => [n.div_ceil(sg_n * 2 * size), m.div_ceil(sg_m * 2 * size), 1],
        _ => unreachable!("only cooperative tiles reach here"),
    }
}

/// The test device's cooperative-matrix support, or `None` after printing why the test is
/// skipped. With `TOKBENCH_REQUIRE_COOP` set (scripts/lavapipe-coop.sh, on Mesa 26) a missing
/// tier fails the test instead, so a skip can never pass for a pass there.
#[cfg(test)]
pub(crate) fn support_or_skip(test: &str) -> Option<CoopSupport> {
    match support(crate::gpu::test_context()) {
        Ok(s) => Some(s),
        Err(why) if std::env::var_os("TOKBENCH_REQUIRE_COOP").is_some() => {
            panic!("{test}: TOKBENCH_REQUIRE_COOP is set but {why}")
        }
        Err(why) => {
            // Written to stderr directly: libtest captures eprintln! of passing tests, and a skip
            // must be seen.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {why}; scripts/lavapipe-coop.sh runs it on Mesa 26's lavapipe"
            );
            None
        }
    }
}

/// The tier against the f64 reference, on the test device (skipped, with a message, where it
/// has no cooperative matrices).
#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::{pad_matrix, random_values};
    use crate::kernels::matmul::{
        GemvConfig, Matmul, MatmulConfig, Product, encode_weights, reference_rows, transpose,
    };
    use crate::kernels::verify::{NMSE_F16, compare};

    const GEMV: GemvConfig = GemvConfig::Rows { wg: 64, tn: 1 };

    /// C = A · W through the cooperative tiles, A and W rounded to f16 as the kernel sees them,
    /// against f64; `m` ≤ 8 goes through the tiles too (called directly, not via the GEMV).
    fn check(tiles: ProductTiles, (m, n, k): (usize, usize, usize), accumulate: bool) {
        check_with(None, tiles, WeightDtype::F16, (m, n, k), accumulate);
    }

    /// [`check`] against the given cooperative support instead of the adapter's.
    fn check_with(
        coop: Option<&CoopSupport>,
        tiles: ProductTiles,
        dtype: WeightDtype,
        (m, n, k): (usize, usize, usize),
        accumulate: bool,
    ) {
        let ctx = test_context();
        let f16 = WeightDtype::F16;
        let a = f16.quantize_rows(&random_values(m * k, 31, 1.0), 1);
        let (w_bytes, w) = encode_weights(dtype, &random_values(k * n, 32, 1.0), k, n);
        // The tiles hold W in f16: the reference rounds the unpacked values the same way.
        let w = f16.quantize_rows(&w, 1);
        let residual = random_values(m * n, 33, 1.0);
        let a_buf = ctx
            .storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)))
            .unwrap();
        let w_buf = ctx.storage_with("W", &w_bytes).unwrap();
        let c_buf = ctx
            .storage_with("C", bytemuck::cast_slice(&residual))
            .unwrap();
        let kernel =
            Matmul::with_coop_support(ctx, MatmulConfig { tiles, gemv: GEMV }, dtype, coop)
                .unwrap();
        let mut pr = Product::dense(&a_buf, &w_buf, &c_buf, (m, n, k));
        pr.accumulate = accumulate;
        ctx.execute(&kernel.dispatch_tiles(ctx, &pr).unwrap())
            .unwrap();
        let c = ctx.read_f32(&c_buf, m * n).unwrap();
        let mut want = reference_rows(&a, &w, (n, k), &(0..m).collect::<Vec<_>>());
        if accumulate {
            for (x, r) in want.iter_mut().zip(&residual) {
                *x += f64::from(*r);
            }
        }
        let result = compare(&c, &want, NMSE_F16, format!("{m}×{n}×{k}"));
        assert!(
            result.failure.is_none(),
            "{tiles:?} {dtype:?} {m}×{n}×{k} accumulate {accumulate}: {result:?}"
        );
    }

    /// Every packed format dequantized into f16 tiles, at shapes whose K divides no block.
    #[test]
    fn packed_formats_match_reference_on_coop_tiles() {
        let Some(support) = support_or_skip("packed_formats_match_reference_on_coop_tiles") else {
            return;
        };
        for dtype in WeightDtype::ALL
            .into_iter()
            .filter(|&d| d != WeightDtype::F32)
        {
            for tiles in candidates(&support, true) {
                for shape in [(1, 37, 29), (7, 33, 45), (65, 67, 130)] {
                    check_with(None, tiles, dtype, shape, false);
                }
            }
        }
    }

    #[test]
    fn coop_products_match_reference_at_shapes_that_divide_no_tile_and_m_1() {
        let Some(support) = support_or_skip("coop_products_match_reference") else {
            return;
        };
        eprintln!(
            "cooperative sizes here: {:?} (a 16x16 variant is tested only where listed)",
            support.sizes
        );
        let shapes = [
            (1, 64, 64),
            (1, 37, 29),
            (32, 32, 32),
            (7, 33, 45),
            (65, 67, 130),
            (100, 1, 100),
            (130, 70, 9),
            (513, 257, 129),
        ];
        for tiles in candidates(&support, false) {
            for shape in shapes {
                check(tiles, shape, false);
            }
            check(tiles, (37, 45, 29), true);
        }
    }

    /// The 16 × 16 variant where the adapter lists it; where it does not (Mesa 26's lavapipe lists
    /// 8 × 8 only), with `TOKBENCH_TRY_UNLISTED_COOP` set, on 16 × 16 matrices anyway: Vulkan
    /// leaves an unlisted size undefined, so a pass there is evidence for the shader, not a
    /// promise of the driver (scripts/lavapipe-coop.sh sets it; runs never use unlisted sizes).
    #[test]
    fn coop_16x16_variant_matches_reference() {
        let Some(support) = support_or_skip("coop_16x16_variant") else {
            return;
        };
        let forged;
        let coop = if support.sizes.contains(&16) {
            None
        } else if std::env::var_os("TOKBENCH_TRY_UNLISTED_COOP").is_some() {
            forged = CoopSupport {
                sizes: vec![16],
                ..support.clone()
            };
            Some(&forged)
        } else {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED coop_16x16_variant: the adapter lists no 16x16 f16->f32 cooperative \
                 matrix (TOKBENCH_TRY_UNLISTED_COOP=1 tries it anyway)"
            );
            return;
        };
        for (sg_m, sg_n) in [(2, 2), (1, 2), (2, 1), (1, 1)] {
            let tiles = ProductTiles::Coop {
                size: 16,
                sg_m,
                sg_n,
                sg: support.sg,
            };
            for shape in [(1, 37, 29), (65, 67, 130), (130, 70, 9)] {
                check_with(coop, tiles, WeightDtype::F16, shape, false);
            }
            check_with(coop, tiles, WeightDtype::F16, (37, 45, 29), true);
        }
    }

    #[test]
    fn coop_products_serve_slabs_and_strided_rows_like_the_other_tiers() {
        let Some(support) = support_or_skip("coop_products_serve_slabs") else {
            return;
        };
        let ctx = test_context();
        let f16 = WeightDtype::F16;
        // A's rows 3·k apart, the middle third used; two slabs of 8 outputs side by side.
        let (m, k, n) = (20usize, 24usize, 16usize);
        let stride = 3 * k;
        let a_full = f16.quantize_rows(&random_values(m * stride, 41, 1.0), 1);
        let a: Vec<f32> = (0..m)
            .flat_map(|r| a_full[r * stride + k..r * stride + 2 * k].to_vec())
            .collect();
        let w = f16.quantize_rows(&random_values(k * n, 42, 1.0), 1);
        let wt = transpose(&w, k, n);
        let a_buf = ctx
            .storage_with("A", bytemuck::cast_slice(&a_full))
            .unwrap();
        let c_buf = ctx.storage_zeroed("C", (m * n * 4) as u64).unwrap();
        let tiles = default_tiles(&support);
        let kernel = Matmul::new(ctx, MatmulConfig { tiles, gemv: GEMV }, f16).unwrap();
        let slabs: Vec<wgpu::Buffer> = (0..2)
            .map(|s| {
                ctx.storage_with("W", &f16.encode_rows(&wt[s * 8 * k..(s + 1) * 8 * k], 1))
                    .unwrap()
            })
            .collect();
        let launches: Vec<_> = slabs
            .iter()
            .enumerate()
            .map(|(s, slab)| {
                let pr = Product {
                    m: m as u32,
                    k4: (k / 4) as u32,
                    n: 8,
                    a: &a_buf,
                    a_off4: (k / 4) as u32,
                    lda4: (stride / 4) as u32,
                    w: slab,
                    c: &c_buf,
                    c_off: 8 * s as u32,
                    ldc: n as u32,
                    accumulate: false,
                };
                kernel.dispatch(ctx, &pr).unwrap()
            })
            .collect();
        ctx.execute(&launches).unwrap();
        let c = ctx.read_f32(&c_buf, m * n).unwrap();
        let want = reference_rows(&a, &w, (n, k), &(0..m).collect::<Vec<_>>());
        let result = compare(&c, &want, NMSE_F16, "slabs".into());
        assert!(result.failure.is_none(), "{result:?}");
    }

    #[test]
    fn coop_tiles_are_refused_for_f32_weights_and_unlisted_sizes() {
        let Some(support) = support_or_skip("coop_tiles_are_refused") else {
            return;
        };
        let ctx = test_context();
        let tiles = default_tiles(&support);
        let gemv = GEMV;
        let err = Matmul::new(ctx, MatmulConfig { tiles, gemv }, WeightDtype::F32)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--dtype f16"), "{err}");
        if !support.sizes.contains(&16) {
            let big = ProductTiles::Coop {
                size: 16,
                sg_m: 2,
                sg_n: 2,
                sg: support.sg,
            };
            let err = Matmul::new(ctx, MatmulConfig { tiles: big, gemv }, WeightDtype::F16)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("size 16"), "{err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coop_geometry_covers_every_output() {
        let tiles = ProductTiles::Coop {
            size: 8,
            sg_m: 2,
            sg_n: 1,
            sg: 8,
        };
        // Tiles of 32 rows × 16 outputs.
        assert_eq!(groups(tiles, 1, 1), [1, 1, 1]);
        assert_eq!(groups(tiles, 33, 17), [2, 2, 1]);
        assert_eq!(storage_bytes(16), 24576);
        assert!(
            dtype_reason(WeightDtype::F32)
                .unwrap()
                .contains("--dtype f16")
        );
        assert!(dtype_reason(WeightDtype::F16).is_none());
        assert!(dtype_reason(WeightDtype::Q4_0).is_none());
    }
}
