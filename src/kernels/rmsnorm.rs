//! `shaders/rmsnorm.wgsl`: y = x / sqrt(mean(x²) + eps) · gamma, row by row.

use super::{RMSNORM, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

/// Which rows to normalise and where they go, in vec4 units.
#[derive(Debug, Clone, Copy)]
pub struct NormRows {
    /// Rows to normalise.
    pub rows: u32,
    /// True width (the mean divides by it).
    pub d: u32,
    /// First vec4 of input row 0.
    pub in_off4: u32,
    /// vec4s between input rows.
    pub in_stride4: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    d: u32,
    d4: u32,
    in_off4: u32,
    in_stride4: u32,
    out_stride4: u32,
    eps: f32,
    _pad: u32,
}

/// The epsilon inside the square root (Llama's value).
pub const EPS: f32 = 1e-5;

/// The RMSNorm kernel with a given workgroup size (a power of two up to 256).
pub struct RmsNorm {
    pipeline: wgpu::ComputePipeline,
}

impl RmsNorm {
    /// Builds the pipeline.
    pub fn new(ctx: &GpuContext, wg: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(wg.is_power_of_two() && wg <= 256, "rmsnorm workgroup {wg}");
        let pipeline = ctx.pipeline(
            &RMSNORM,
            WeightDtype::F32,
            "rmsnorm",
            &[("WG", f64::from(wg))],
        )?;
        Ok(Self { pipeline })
    }

    /// Normalises `rows` of `x` into consecutive rows of `y` (stride d4).
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        rows: NormRows,
        x: &wgpu::Buffer,
        gamma: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let d4 = rows.d.div_ceil(4);
        let params = Params {
            rows: rows.rows,
            d: rows.d,
            d4,
            in_off4: rows.in_off4,
            in_stride4: rows.in_stride4,
            out_stride4: d4,
            eps: EPS,
            _pad: 0,
        };
        let last_in = u64::from(rows.in_off4)
            + u64::from(rows.rows - 1) * u64::from(rows.in_stride4)
            + u64::from(d4);
        anyhow::ensure!(
            x.size() >= last_in * 16
                && gamma.size() >= u64::from(d4) * 16
                && y.size() >= u64::from(rows.rows * d4) * 16,
            "rmsnorm buffers too small for {rows:?}"
        );
        // One workgroup per row.
        let groups = ctx.grid_1d(rows.rows);
        ctx.dispatch(
            &self.pipeline,
            &params,
            &[(1, x), (2, gamma), (3, y)],
            groups,
        )
    }
}

/// RMSNorm of one row in f64.
pub fn reference(x: &[f64], gamma: &[f32]) -> Vec<f64> {
    let mean_sq = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let scale = 1.0 / (mean_sq + f64::from(EPS)).sqrt();
    x.iter()
        .zip(gamma)
        .map(|(v, &g)| v * scale * f64::from(g))
        .collect()
}

/// The Rust layout of [`Params`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn params_layout() -> super::HostLayout {
    super::host_layout!(Params {
        rows,
        d,
        d4,
        in_off4,
        in_stride4,
        out_stride4,
        eps,
        _pad
    })
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::{pad_matrix, padded_cols, random_values, unpad_rows};
    use crate::kernels::verify::{NMSE_F32, compare};

    #[test]
    fn matches_reference_with_odd_widths_strides_and_workgroups() {
        let ctx = test_context();
        for wg in [1, 8, 64, 256] {
            for (rows, d, stride_rows) in [(1, 4, 1), (5, 37, 1), (3, 1000, 2), (70, 64, 1)] {
                let dp = padded_cols(d);
                // Input has `stride_rows` rows per normalised row; the last of each is used.
                let x = random_values(rows * stride_rows * d, 31, 2.0);
                let gamma = random_values(d, 32, 1.0);
                let x_buf = ctx
                    .storage_with(
                        "x",
                        bytemuck::cast_slice(&pad_matrix(
                            &x,
                            rows * stride_rows,
                            d,
                            rows * stride_rows,
                        )),
                    )
                    .unwrap();
                let g_buf = ctx
                    .storage_with("g", bytemuck::cast_slice(&pad_matrix(&gamma, 1, d, 1)))
                    .unwrap();
                let y_buf = ctx.storage_zeroed("y", (rows * dp * 4) as u64).unwrap();
                let norm = RmsNorm::new(ctx, wg).unwrap();
                let spec = NormRows {
                    rows: rows as u32,
                    d: d as u32,
                    in_off4: ((stride_rows - 1) * dp / 4) as u32,
                    in_stride4: (stride_rows * dp / 4) as u32,
                };
                ctx.execute(&norm.dispatch(ctx, spec, &x_buf, &g_buf, &y_buf).unwrap())
                    .unwrap();
                let y = unpad_rows(&ctx.read_f32(&y_buf, rows * dp).unwrap(), rows, d);
                let expected: Vec<f64> = (0..rows)
                    .flat_map(|r| {
                        let src = (r * stride_rows + stride_rows - 1) * d;
                        let row: Vec<f64> = x[src..src + d].iter().map(|&v| f64::from(v)).collect();
                        reference(&row, &gamma)
                    })
                    .collect();
                let c = compare(&y, &expected, NMSE_F32, "rmsnorm".into());
                assert!(c.failure.is_none(), "wg {wg} rows {rows} d {d}: {c:?}");
            }
        }
    }
}
