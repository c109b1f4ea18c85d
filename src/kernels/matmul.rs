//! `shaders/matmul.wgsl` and `shaders/gemv.wgsl`: activations (f32) times weights (f32 or f16).
//!
//! Both kernels read the same weight layout, so one set of weight buffers serves prefill (many
//! rows: the register-tiled matmul) and decode (up to 8 rows: the GEMV, which reads each weight
//! byte once). [`Matmul::dispatch`] picks between them by the number of rows.

use anyhow::ensure;

pub use super::config::{MatmulConfig, TileConfig};
use super::{GEMV, MATMUL, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

/// Rows up to which the GEMV kernel is used.
pub const GEMV_MAX_ROWS: u32 = 8;

/// Uniform block shared by both shaders.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    k4: u32,
    n4: u32,
    lda4: u32,
    a_off4: u32,
    ldc4: u32,
    c_off4: u32,
    accumulate: u32,
}

/// One product C[:, c_off4..c_off4 + n4] (+)= A · W, in vec4 units. A row r starts at
/// `a_off4 + r * lda4`; C row r at `r * ldc4`. W is a dense slab of 4·k4 rows × n4 vec4s.
#[derive(Debug, Clone, Copy)]
pub struct Product<'a> {
    /// Rows of A (and of C written).
    pub m: u32,
    /// K / 4, padded.
    pub k4: u32,
    /// Width of the weight slab in vec4s.
    pub n4: u32,
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
    /// Column (in vec4s) of C where the slab's output starts.
    pub c_off4: u32,
    /// vec4s between C's rows.
    pub ldc4: u32,
    /// Add to C instead of overwriting it (the fused residual connection).
    pub accumulate: bool,
}

impl<'a> Product<'a> {
    /// A plain C (m × n) = A (m × k) · W (k × n) over whole padded buffers.
    pub fn dense(
        a: &'a wgpu::Buffer,
        w: &'a wgpu::Buffer,
        c: &'a wgpu::Buffer,
        (m, n, k): (usize, usize, usize),
    ) -> Self {
        let (k4, n4) = (k.div_ceil(4) as u32, n.div_ceil(4) as u32);
        Self {
            m: m as u32,
            k4,
            n4,
            a,
            a_off4: 0,
            lda4: k4,
            w,
            c,
            c_off4: 0,
            ldc4: n4,
            accumulate: false,
        }
    }
}

/// The product kernels for one weight type and configuration.
pub struct Matmul {
    tiled: wgpu::ComputePipeline,
    config: MatmulConfig,
    dtype: WeightDtype,
}

impl Matmul {
    /// Builds the many-row pipeline (GEMV pipelines are built per row count on first use).
    pub fn new(ctx: &GpuContext, config: MatmulConfig, dtype: WeightDtype) -> anyhow::Result<Self> {
        let t = config.tile;
        ensure!(
            (1..=8).contains(&t.tm) && (1..=4).contains(&t.tn),
            "matmul tile {t:?} out of range (tm 1..=8, tn 1..=4)"
        );
        let constants = [
            ("WG_X", f64::from(t.wg_x)),
            ("WG_Y", f64::from(t.wg_y)),
            ("TM", f64::from(t.tm)),
            ("TN", f64::from(t.tn)),
        ];
        let tiled = ctx.pipeline(&MATMUL, dtype, "matmul", &constants)?;
        Ok(Self {
            tiled,
            config,
            dtype,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> MatmulConfig {
        self.config
    }

    /// A launch of `product`, by the GEMV kernel for up to [`GEMV_MAX_ROWS`] rows, else the
    /// tiled one. Fails if a buffer is too small for the product: the shaders may run without
    /// bounds checks, so every access must be in bounds by construction.
    pub fn dispatch(&self, ctx: &GpuContext, pr: &Product<'_>) -> anyhow::Result<Dispatch> {
        ensure!(
            pr.m >= 1 && pr.k4 >= 1 && pr.n4 >= 1,
            "empty product {pr:?}"
        );
        let vec4 = 16u64;
        let need_a =
            (u64::from(pr.a_off4) + u64::from(pr.m - 1) * u64::from(pr.lda4) + u64::from(pr.k4))
                * vec4;
        let need_w = 4 * u64::from(pr.k4) * u64::from(pr.n4) * 4 * self.dtype.bytes() as u64;
        let need_c =
            (u64::from(pr.m - 1) * u64::from(pr.ldc4) + u64::from(pr.c_off4) + u64::from(pr.n4))
                * vec4;
        ensure!(
            pr.a.size() >= need_a && pr.w.size() >= need_w && pr.c.size() >= need_c,
            "product buffers too small: A {} < {need_a}, W {} < {need_w} or C {} < {need_c}",
            pr.a.size(),
            pr.w.size(),
            pr.c.size()
        );
        let params = Params {
            m: pr.m,
            k4: pr.k4,
            n4: pr.n4,
            lda4: pr.lda4,
            a_off4: pr.a_off4,
            ldc4: pr.ldc4,
            c_off4: pr.c_off4,
            accumulate: u32::from(pr.accumulate),
        };
        let buffers = [(1, pr.a), (2, pr.w), (3, pr.c)];
        if pr.m <= GEMV_MAX_ROWS {
            let wg = self.config.gemv_wg;
            let constants = [("WG", f64::from(wg)), ("M", f64::from(pr.m))];
            let pipeline = ctx.pipeline(&GEMV, self.dtype, "gemv", &constants)?;
            ctx.dispatch(&pipeline, &params, &buffers, [pr.n4.div_ceil(wg), 1, 1])
        } else {
            let t = self.config.tile;
            let groups = [
                pr.n4.div_ceil(t.tn * t.wg_x),
                pr.m.div_ceil(t.tm * t.wg_y),
                1,
            ];
            ctx.dispatch(&self.tiled, &params, &buffers, groups)
        }
    }
}

/// FLOPs of one m × n × k product: one multiply and one add per term.
pub fn flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// Bytes one product must move at least: read A (f32) and W (`w_bytes` per element) once,
/// write C once.
pub fn bytes(m: usize, n: usize, k: usize, w_bytes: usize) -> f64 {
    (4 * (m * k + m * n) + w_bytes * k * n) as f64
}

/// Rows `rows` of C = A · W in f64, from unpadded row-major A (· × k) and W (k × n).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_matches_hand_computed_product() {
        // [1 2; 3 4] · [5 6 7; 8 9 10]
        let a = [1.0, 2.0, 3.0, 4.0];
        let w = [5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let c = reference_rows(&a, &w, (3, 2), &[0, 1]);
        assert_eq!(c, vec![21.0, 24.0, 27.0, 47.0, 54.0, 61.0]);
        assert_eq!(reference_rows(&a, &w, (3, 2), &[1]), vec![47.0, 54.0, 61.0]);
    }

    #[test]
    fn flop_and_byte_counts() {
        assert_eq!(flops(2, 3, 4), 48.0);
        assert_eq!(bytes(2, 3, 4, 4), 4.0 * (8 + 12 + 6) as f64);
        assert_eq!(bytes(2, 3, 4, 2), (4 * (8 + 6) + 2 * 12) as f64);
    }
}

/// Kernels against the f64 reference on the test device (lavapipe in CI).
#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::{pad_matrix, padded_cols, random_values, unpad_rows};
    use crate::kernels::verify::{NMSE_F16, NMSE_F32, compare};

    /// Runs C = A · W on the GPU and checks it; returns C.
    fn check(config: MatmulConfig, dtype: WeightDtype, (m, n, k): (usize, usize, usize)) {
        let ctx = test_context();
        let a = random_values(m * k, 11, 1.0);
        let w: Vec<f32> = random_values(k * n, 12, 1.0)
            .into_iter()
            .map(|v| dtype.round(v))
            .collect();
        let a_buf = ctx.storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)));
        let w_buf = ctx.storage_with("W", &dtype.encode(&pad_matrix(&w, k, n, padded_cols(k))));
        let c_buf = ctx.storage_zeroed("C", (m * padded_cols(n) * 4) as u64);
        let kernel = Matmul::new(ctx, config, dtype).unwrap();
        let d = kernel
            .dispatch(ctx, &Product::dense(&a_buf, &w_buf, &c_buf, (m, n, k)))
            .unwrap();
        ctx.execute(&d).unwrap();
        let c = unpad_rows(&ctx.read_f32(&c_buf, m * padded_cols(n)).unwrap(), m, n);
        let reference = reference_rows(&a, &w, (n, k), &(0..m).collect::<Vec<_>>());
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
    fn matches_reference_including_shapes_that_divide_no_tile() {
        // M = 1 and M = 100 cover both kernels (GEMV up to 8 rows, tiled above).
        for shape in [
            (1, 64, 64),
            (64, 64, 64),
            (513, 257, 129),
            (1, 4096, 1),
            (100, 1, 100),
            (7, 33, 45),
        ] {
            check(MatmulConfig::DEFAULT, WeightDtype::F32, shape);
        }
    }

    #[test]
    fn f16_weights_match_reference() {
        if !test_context().has(wgpu::Features::SHADER_F16) {
            eprintln!("adapter has no SHADER_F16: f16 tier unreachable here");
            return;
        }
        for shape in [(3, 65, 130), (77, 31, 66)] {
            check(MatmulConfig::DEFAULT, WeightDtype::F16, shape);
        }
    }

    #[test]
    fn every_tile_configuration_is_correct() {
        for tm in [1, 3, 8] {
            for tn in [1, 2, 4] {
                for (wg_x, wg_y) in [(8, 8), (16, 4), (64, 1)] {
                    let tile = TileConfig { wg_x, wg_y, tm, tn };
                    let config = MatmulConfig { tile, gemv_wg: 64 };
                    check(config, WeightDtype::F32, (37, 45, 29));
                }
            }
        }
        for gemv_wg in [1, 32, 256] {
            for m in 1..=GEMV_MAX_ROWS as usize {
                check(
                    MatmulConfig {
                        gemv_wg,
                        ..MatmulConfig::DEFAULT
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
        let residual = random_values(m * n, 23, 1.0);
        let a_buf = ctx.storage_with("A", bytemuck::cast_slice(&a_full));
        let c_buf = ctx.storage_with("C", bytemuck::cast_slice(&residual));
        let kernel = Matmul::new(ctx, MatmulConfig::DEFAULT, WeightDtype::F32).unwrap();
        for rows in [m, 2] {
            // Two slabs of 8 columns each, written side by side.
            let mut dispatches = Vec::new();
            let mut slabs = Vec::new();
            for s in 0..2 {
                let slab: Vec<f32> = (0..k)
                    .flat_map(|r| w[r * n + 8 * s..r * n + 8 * s + 8].to_vec())
                    .collect();
                slabs.push(ctx.storage_with("W", bytemuck::cast_slice(&slab)));
            }
            ctx.queue
                .write_buffer(&c_buf, 0, bytemuck::cast_slice(&residual));
            for (s, slab) in slabs.iter().enumerate() {
                let pr = Product {
                    m: rows as u32,
                    k4: 2,
                    n4: 2,
                    a: &a_buf,
                    a_off4: 2,
                    lda4: (a_stride / 4) as u32,
                    w: slab,
                    c: &c_buf,
                    c_off4: 2 * s as u32,
                    ldc4: 4,
                    accumulate: true,
                };
                dispatches.push(kernel.dispatch(ctx, &pr).unwrap());
            }
            ctx.execute(&dispatches).unwrap();
            let c = ctx.read_f32(&c_buf, m * n).unwrap();
            let product = reference_rows(&a, &w, (n, k), &(0..rows).collect::<Vec<_>>());
            let mut expected: Vec<f64> = residual.iter().map(|&x| f64::from(x)).collect();
            for (e, p) in expected.iter_mut().zip(&product) {
                *e += p;
            }
            let result = compare(&c, &expected, NMSE_F32, "slabs".into());
            assert!(result.failure.is_none(), "rows {rows}: {result:?}");
        }
    }
}
