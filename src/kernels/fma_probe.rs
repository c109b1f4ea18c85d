//! `shaders/fma_probe.wgsl`: the peak-arithmetic probe.

use super::{FMA_PROBE, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

/// Independent FMA chains per invocation (must match the shader's CHAINS).
pub const CHAINS: u32 = 8;
const A: [f32; 4] = [0.9990, 0.9991, 0.9992, 0.9993];
const B: [f32; 4] = [0.0010, 0.0011, 0.0012, 0.0013];

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    invocations: u32,
}

/// The probe kernel with a given chain length.
pub struct FmaProbe {
    pipeline: wgpu::ComputePipeline,
    iterations: u32,
}

const WG: u32 = 64;

impl FmaProbe {
    /// Builds the pipeline with `iterations` steps per chain.
    pub fn new(ctx: &GpuContext, iterations: u32) -> anyhow::Result<Self> {
        let constants = [("WG", f64::from(WG)), ("ITERATIONS", f64::from(iterations))];
        let pipeline = ctx.pipeline(&FMA_PROBE, WeightDtype::F32, "fma_probe", &constants)?;
        Ok(Self {
            pipeline,
            iterations,
        })
    }

    /// A launch of `invocations` invocations writing one vec4 each to `out`.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        invocations: u32,
        out: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        anyhow::ensure!(
            out.size() >= u64::from(invocations) * 16,
            "fma probe output too small"
        );
        ctx.dispatch(
            &self.pipeline,
            &Params { invocations },
            &[(1, out)],
            [invocations.div_ceil(WG), 1, 1],
        )
    }

    /// FLOPs of one launch of `invocations` invocations (an FMA counts two).
    pub fn flops(&self, invocations: u32) -> f64 {
        Self::flops_of(self.iterations, invocations)
    }

    /// FLOPs of `invocations` chains of `iterations` steps: each step is one vec4 FMA (8
    /// FLOPs) on each of the chains.
    pub fn flops_of(iterations: u32, invocations: u32) -> f64 {
        f64::from(invocations) * f64::from(iterations) * f64::from(CHAINS) * 4.0 * 2.0
    }

    /// The output of invocation `i`, in f64.
    pub fn reference(&self, i: u32) -> [f64; 4] {
        let seed = f64::from(i % 16) * 0.0625;
        let mut out = [0.0; 4];
        for chain in 0..CHAINS {
            for (lane, o) in out.iter_mut().enumerate() {
                let (a, b) = (f64::from(A[lane]), f64::from(B[lane]));
                let mut x = f64::from((seed + 0.01 * f64::from(chain)) as f32);
                for _ in 0..self.iterations {
                    x = x * a + b;
                }
                *o += x;
            }
        }
        out
    }
}

/// The Rust layout of [`Params`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn params_layout() -> super::HostLayout {
    super::host_layout!(Params { invocations })
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::verify::{NMSE_F32, compare};

    #[test]
    fn probe_computes_its_recurrence() {
        let ctx = test_context();
        let probe = FmaProbe::new(ctx, 100).unwrap();
        let n = 70;
        let out = ctx.storage_zeroed("out", u64::from(n) * 16).unwrap();
        ctx.execute(&probe.dispatch(ctx, n, &out).unwrap()).unwrap();
        let got = ctx.read_f32(&out, n as usize * 4).unwrap();
        let want: Vec<f64> = (0..n).flat_map(|i| probe.reference(i)).collect();
        let c = compare(&got, &want, NMSE_F32, "fma".into());
        assert!(c.failure.is_none(), "{c:?}");
        assert_eq!(probe.flops(2), 2.0 * 100.0 * 8.0 * 8.0);
    }
}
