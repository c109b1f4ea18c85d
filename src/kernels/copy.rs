//! `shaders/copy.wgsl`: dst = src.

use super::{COPY, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n4: u32,
}

/// Workgroup size and vec4s per invocation.
const WG: u32 = 64;
const PER_INVOCATION: u32 = 4;

/// The copy kernel.
pub struct Copy {
    pipeline: wgpu::ComputePipeline,
}

impl Copy {
    /// Builds the pipeline.
    pub fn new(ctx: &GpuContext) -> anyhow::Result<Self> {
        let constants = [
            ("WG", f64::from(WG)),
            ("PER_INVOCATION", f64::from(PER_INVOCATION)),
        ];
        let pipeline = ctx.pipeline(&COPY, WeightDtype::F32, "copy", &constants)?;
        Ok(Self { pipeline })
    }

    /// Copies the first `n4` vec4s of `src` to `dst`.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        n4: u32,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        let bytes = u64::from(n4) * 16;
        anyhow::ensure!(
            src.size() >= bytes && dst.size() >= bytes,
            "copy buffers too small"
        );
        // Invocations stride by the grid width; rows of the grid (y) cover the rest.
        let invocations = n4.div_ceil(PER_INVOCATION);
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        let groups_x = invocations.div_ceil(WG).clamp(1, max);
        let per_row = groups_x * WG * PER_INVOCATION;
        let groups = [groups_x, n4.div_ceil(per_row), 1];
        ctx.dispatch(
            &self.pipeline,
            &Params { n4 },
            &[(1, src), (2, dst)],
            groups,
        )
    }
}

/// The Rust layout of [`Params`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn params_layout() -> super::HostLayout {
    super::host_layout!(Params { n4 })
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;

    #[test]
    fn copies_exactly_the_requested_prefix() {
        let ctx = test_context();
        let kernel = Copy::new(ctx).unwrap();
        for n4 in [1u32, 255, 256, 1000, 70_001] {
            let src: Vec<f32> = (0..n4 * 4 + 8).map(|i| i as f32).collect();
            let src_buf = ctx.storage_with("src", bytemuck::cast_slice(&src)).unwrap();
            let dst_buf = ctx.storage_zeroed("dst", src.len() as u64 * 4).unwrap();
            ctx.execute(&kernel.dispatch(ctx, n4, &src_buf, &dst_buf).unwrap())
                .unwrap();
            let dst = ctx.read_f32(&dst_buf, src.len()).unwrap();
            let n = (n4 * 4) as usize;
            assert_eq!(&dst[..n], &src[..n], "n4 {n4}");
            assert!(
                dst[n..].iter().all(|&x| x == 0.0),
                "n4 {n4}: wrote past the end"
            );
        }
    }
}
