//! `shaders/swiglu.wgsl`: out = silu(gate) · up.

use super::{SWIGLU, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    f4: u32,
}

/// The SwiGLU kernel.
pub struct SwiGlu {
    pipeline: wgpu::ComputePipeline,
    wg: u32,
}

impl SwiGlu {
    /// Builds the pipeline.
    pub fn new(ctx: &GpuContext, wg: u32) -> anyhow::Result<Self> {
        let pipeline = ctx.pipeline(
            &SWIGLU,
            WeightDtype::F32,
            "swiglu",
            &[("WG", f64::from(wg))],
        )?;
        Ok(Self { pipeline, wg })
    }

    /// `rows` rows of `gu` = [gate | up] (each f4 vec4s) into `out` (rows × f4 vec4s).
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        rows: u32,
        f4: u32,
        gu: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let elems = u64::from(rows) * u64::from(f4) * 16;
        anyhow::ensure!(
            gu.size() >= 2 * elems && out.size() >= elems,
            "swiglu buffers too small"
        );
        let groups = [f4.div_ceil(self.wg), rows, 1];
        ctx.dispatch(
            &self.pipeline,
            &Params { rows, f4 },
            &[(1, gu), (2, out)],
            groups,
        )
    }
}

/// silu(g) · u in f64.
pub fn reference(g: f64, u: f64) -> f64 {
    g / (1.0 + (-g).exp()) * u
}

/// The Rust layout of [`Params`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn params_layout() -> super::HostLayout {
    super::host_layout!(Params { rows, f4 })
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::layout::random_values;
    use crate::kernels::verify::{NMSE_F32, compare};

    #[test]
    fn matches_reference() {
        let ctx = test_context();
        for (rows, f4) in [(1, 1), (3, 17), (9, 100)] {
            let gu = random_values(rows * 2 * f4 * 4, 41, 6.0);
            let gu_buf = ctx.storage_with("gu", bytemuck::cast_slice(&gu)).unwrap();
            let out_buf = ctx.storage_zeroed("out", (rows * f4 * 16) as u64).unwrap();
            let k = SwiGlu::new(ctx, 64).unwrap();
            ctx.execute(
                &k.dispatch(ctx, rows as u32, f4 as u32, &gu_buf, &out_buf)
                    .unwrap(),
            )
            .unwrap();
            let out = ctx.read_f32(&out_buf, rows * f4 * 4).unwrap();
            let f = f4 * 4;
            let expected: Vec<f64> = (0..rows * f)
                .map(|i| {
                    let (r, c) = (i / f, i % f);
                    reference(
                        f64::from(gu[r * 2 * f + c]),
                        f64::from(gu[r * 2 * f + f + c]),
                    )
                })
                .collect();
            let c = compare(&out, &expected, NMSE_F32, "swiglu".into());
            assert!(c.failure.is_none(), "{rows}×{f4}: {c:?}");
        }
    }
}
