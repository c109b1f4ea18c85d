//! `shaders/matmul.wgsl`: register-tiled f32 C = A · B.

use anyhow::ensure;
use serde::{Deserialize, Serialize};

use super::MATMUL;
use super::layout::padded_cols;
use crate::InputError;
use crate::gpu::{Dispatch, GpuContext};

/// Tile configuration, passed to the shader as `override` constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatmulConfig {
    /// Invocations per workgroup along N.
    pub wg_x: u32,
    /// Invocations per workgroup along M.
    pub wg_y: u32,
    /// Rows of C per invocation (1..=8).
    pub tm: u32,
    /// vec4 columns of C per invocation (1..=4).
    pub tn: u32,
}

impl MatmulConfig {
    /// 8 × 8 invocations of 4 rows × one vec4 each: fast on lavapipe, sound everywhere.
    pub const DEFAULT: Self = Self {
        wg_x: 8,
        wg_y: 8,
        tm: 4,
        tn: 1,
    };

    fn constants(&self) -> [(&'static str, f64); 4] {
        [
            ("WG_X", f64::from(self.wg_x)),
            ("WG_Y", f64::from(self.wg_y)),
            ("TM", f64::from(self.tm)),
            ("TN", f64::from(self.tn)),
        ]
    }
}

/// Uniform block of the shader.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Dims {
    m: u32,
    k4: u32,
    n4: u32,
    _pad: u32,
}

/// The matmul kernel, specialised for one tile configuration.
pub struct Matmul {
    pipeline: wgpu::ComputePipeline,
    config: MatmulConfig,
}

impl Matmul {
    /// Builds the pipeline for `config`.
    pub fn new(ctx: &GpuContext, config: MatmulConfig) -> anyhow::Result<Self> {
        ensure!(
            (1..=8).contains(&config.tm) && (1..=4).contains(&config.tn),
            "matmul tile {config:?} out of range (tm 1..=8, tn 1..=4)"
        );
        let pipeline = ctx.pipeline(&MATMUL, "matmul", &config.constants())?;
        Ok(Self { pipeline, config })
    }

    /// The tile configuration in use.
    pub fn config(&self) -> MatmulConfig {
        self.config
    }

    /// A launch computing C (m × n) = A (m × k) · B (k × n); all three in the padded layout of
    /// [`super::layout`], B with its rows padded to a multiple of 4.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        c: &wgpu::Buffer,
        (m, n, k): (usize, usize, usize),
    ) -> anyhow::Result<Dispatch> {
        let (k4, n4) = (padded_cols(k) / 4, padded_cols(n) / 4);
        ensure!(
            a.size() >= (m * k4 * 16) as u64
                && b.size() >= (4 * k4 * n4 * 16) as u64
                && c.size() >= (m * n4 * 16) as u64,
            "matmul {m}×{n}×{k}: a buffer is smaller than the padded layout needs"
        );
        let cfg = self.config;
        let workgroups = [
            (n4 as u32).div_ceil(cfg.tn * cfg.wg_x),
            (m as u32).div_ceil(cfg.tm * cfg.wg_y),
            1,
        ];
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        if workgroups[0] > max || workgroups[1] > max {
            return Err(InputError::new(format!(
                "matmul {m}×{n}×{k} needs {workgroups:?} workgroups; this adapter allows {max} \
                 per dimension"
            ))
            .into());
        }
        let dims = Dims {
            m: m as u32,
            k4: k4 as u32,
            n4: n4 as u32,
            _pad: 0,
        };
        let uniform = ctx.uniform_with("matmul-dims", bytemuck::bytes_of(&dims));
        Ok(Dispatch {
            bind_group: ctx.bind_buffers(&self.pipeline, &[&uniform, a, b, c]),
            pipeline: self.pipeline.clone(),
            workgroups,
        })
    }
}

/// FLOPs of one m × n × k multiply: one multiply and one add per term.
pub fn flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// Bytes one multiply must move at least: read A and B once, write C once (f32).
pub fn bytes(m: usize, n: usize, k: usize) -> f64 {
    4.0 * (m * k + k * n + m * n) as f64
}

/// Rows `rows` of C = A · B in f64, from unpadded row-major A (m × k) and B (k × n).
pub fn reference_rows(a: &[f32], b: &[f32], (n, k): (usize, usize), rows: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0f64; rows.len() * n];
    for (dst, &row) in out.chunks_exact_mut(n).zip(rows) {
        for (kk, &av) in a[row * k..(row + 1) * k].iter().enumerate() {
            let av = f64::from(av);
            for (d, &bv) in dst.iter_mut().zip(&b[kk * n..(kk + 1) * n]) {
                *d += av * f64::from(bv);
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
        let b = [5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let c = reference_rows(&a, &b, (3, 2), &[0, 1]);
        assert_eq!(c, vec![21.0, 24.0, 27.0, 47.0, 54.0, 61.0]);
        assert_eq!(reference_rows(&a, &b, (3, 2), &[1]), vec![47.0, 54.0, 61.0]);
    }

    #[test]
    fn flop_and_byte_counts() {
        assert_eq!(flops(2, 3, 4), 48.0);
        assert_eq!(bytes(2, 3, 4), 4.0 * (8 + 12 + 6) as f64);
    }
}

/// Kernel against the f64 reference on the test device (lavapipe in CI).
#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::{pad_matrix, random_values, unpad_rows};
    use crate::kernels::verify::{NMSE_F32, compare};

    fn run(ctx: &GpuContext, config: MatmulConfig, (m, n, k): (usize, usize, usize)) -> Vec<f32> {
        let a = random_values(m * k, 11, 1.0);
        let b = random_values(k * n, 12, 1.0);
        let a_buf = ctx.storage_with("A", bytemuck::cast_slice(&pad_matrix(&a, m, k, m)));
        let b_pad = pad_matrix(&b, k, n, padded_cols(k));
        let b_buf = ctx.storage_with("B", bytemuck::cast_slice(&b_pad));
        let c_buf = ctx.storage_zeroed("C", (m * padded_cols(n) * 4) as u64);
        let kernel = Matmul::new(ctx, config).unwrap();
        let d = kernel
            .dispatch(ctx, &a_buf, &b_buf, &c_buf, (m, n, k))
            .unwrap();
        ctx.execute(&d).unwrap();
        let c = unpad_rows(&ctx.read_f32(&c_buf, m * padded_cols(n)).unwrap(), m, n);
        let reference = reference_rows(&a, &b, (n, k), &(0..m).collect::<Vec<_>>());
        let check = compare(&c, &reference, NMSE_F32, format!("{m}×{n}×{k}"));
        assert!(check.failure.is_none(), "{config:?} {m}×{n}×{k}: {check:?}");
        c
    }

    #[test]
    fn matches_reference_including_shapes_that_divide_no_tile() {
        let ctx = test_context();
        for shape in [
            (1, 64, 64),
            (64, 64, 64),
            (513, 257, 129),
            (1, 4096, 1),
            (100, 1, 100),
        ] {
            run(ctx, MatmulConfig::DEFAULT, shape);
        }
    }

    #[test]
    fn every_tile_configuration_is_correct() {
        let ctx = test_context();
        for tm in [1, 3, 8] {
            for tn in [1, 2, 4] {
                for (wg_x, wg_y) in [(8, 8), (16, 4), (64, 1)] {
                    let config = MatmulConfig { wg_x, wg_y, tm, tn };
                    run(ctx, config, (37, 45, 29));
                }
            }
        }
    }

    #[test]
    fn padding_columns_of_c_stay_zero() {
        let ctx = test_context();
        let (m, n, k) = (5, 3, 7);
        // A is all ones, padding included: B's zero padding rows must cancel A's padding.
        let a_buf = ctx.storage_with("A", bytemuck::cast_slice(&vec![1.0f32; m * padded_cols(k)]));
        let b = pad_matrix(&vec![1.0f32; k * n], k, n, padded_cols(k));
        let b_buf = ctx.storage_with("B", bytemuck::cast_slice(&b));
        let c_buf = ctx.storage_zeroed("C", (m * padded_cols(n) * 4) as u64);
        let kernel = Matmul::new(ctx, MatmulConfig::DEFAULT).unwrap();
        let d = kernel
            .dispatch(ctx, &a_buf, &b_buf, &c_buf, (m, n, k))
            .unwrap();
        ctx.execute(&d).unwrap();
        let c = ctx.read_f32(&c_buf, m * padded_cols(n)).unwrap();
        for row in c.chunks(padded_cols(n)) {
            assert_eq!(row, &[7.0, 7.0, 7.0, 0.0]);
        }
    }
}
