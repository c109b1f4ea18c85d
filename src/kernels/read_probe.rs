//! `shaders/read_probe.wgsl`: the read-bandwidth probe, a streaming sum with one vec4 written
//! per workgroup. Decode reads weights and caches and writes little, so its bandwidth share is
//! taken against this probe rather than the copy (which reads and writes).

use super::{READ_PROBE, WeightDtype};
use crate::gpu::{Dispatch, GpuContext};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n4: u32,
}

/// Invocations per workgroup (a power of two, at most 256: the shader's workgroup array).
const WG: u32 = 64;

/// The streaming-sum kernel.
pub struct ReadProbe {
    pipeline: wgpu::ComputePipeline,
}

impl ReadProbe {
    /// Builds the pipeline.
    pub fn new(ctx: &GpuContext) -> anyhow::Result<Self> {
        let pipeline = ctx.pipeline(
            &READ_PROBE,
            WeightDtype::F32,
            "read_probe",
            &[("WG", f64::from(WG))],
        )?;
        Ok(Self { pipeline })
    }

    /// Bytes of the per-workgroup sums of a launch of `workgroups` workgroups.
    pub fn sums_bytes(workgroups: u32) -> u64 {
        u64::from(workgroups) * 16
    }

    /// Sums the first `n4` vec4s of `src` into one vec4 per workgroup of `sums`.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        n4: u32,
        workgroups: u32,
        src: &wgpu::Buffer,
        sums: &wgpu::Buffer,
    ) -> anyhow::Result<Dispatch> {
        anyhow::ensure!(workgroups >= 1, "read probe: no workgroups");
        anyhow::ensure!(
            src.size() >= u64::from(n4) * 16 && sums.size() >= Self::sums_bytes(workgroups),
            "read probe buffers too small"
        );
        ctx.dispatch(
            &self.pipeline,
            &Params { n4 },
            &[(1, src), (2, sums)],
            [workgroups, 1, 1],
        )
    }
}

/// The sums a launch of `workgroups` workgroups writes for `src` (vec4s, flattened), in f64:
/// workgroup `g` sums the `g`-th of `workgroups` contiguous chunks of ⌈n4 / workgroups⌉ vec4s.
pub fn reference(src: &[f32], workgroups: u32) -> Vec<f64> {
    let n4 = src.len() / 4;
    let chunk = n4.div_ceil(workgroups as usize).max(1);
    let mut sums = vec![0.0; workgroups as usize * 4];
    for (i, v) in src.chunks_exact(4).enumerate() {
        let group = i / chunk;
        for (lane, &x) in v.iter().enumerate() {
            sums[group * 4 + lane] += f64::from(x);
        }
    }
    sums
}

/// The Rust layout of [`Params`], for the test that holds it to its WGSL twin.
#[cfg(test)]
pub(crate) fn params_layout() -> super::HostLayout {
    super::host_layout!(Params { n4 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_assigns_contiguous_chunks_to_workgroups() {
        // 2·WG + 3 vec4s over 3 workgroups: chunks of ⌈(2·WG + 3) / 3⌉ vec4s, the last short.
        let n4 = 2 * WG as usize + 3;
        let src: Vec<f32> = (0..n4 * 4).map(|i| (i / 4) as f32).collect();
        let sums = reference(&src, 3);
        let chunk = n4.div_ceil(3);
        let range_sum = |a: usize, b: usize| (a..b).map(|i| i as f64).sum::<f64>();
        assert_eq!(sums.len(), 12);
        for lane in 0..4 {
            assert_eq!(sums[lane], range_sum(0, chunk));
            assert_eq!(sums[4 + lane], range_sum(chunk, 2 * chunk));
            assert_eq!(sums[8 + lane], range_sum(2 * chunk, n4));
        }
        // More workgroups than vec4s: the ones past the end sum nothing.
        let tiny = reference(&src[..8], 4);
        assert_eq!(&tiny[8..], &[0.0; 8]);
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::gpu::test_context;
    use crate::kernels::verify::compare;

    #[test]
    fn sums_exactly_the_requested_prefix() {
        let ctx = test_context();
        let kernel = ReadProbe::new(ctx).unwrap();
        for (n4, groups) in [
            (1u32, 1u32),
            (63, 1),
            (2, 4),
            (1000, 3),
            (4 * WG + 5, 2),
            (70_001, 16),
        ] {
            // Small integers: every partial sum is exact in f32, so the check is exact.
            let mut src: Vec<f32> = (0..n4 * 4).map(|i| (i % 13) as f32).collect();
            // Past the prefix: must not be read.
            src.extend([1e30; 8]);
            let src_buf = ctx.storage_with("src", bytemuck::cast_slice(&src)).unwrap();
            let sums_buf = ctx
                .storage_zeroed("sums", ReadProbe::sums_bytes(groups))
                .unwrap();
            ctx.execute(
                &kernel
                    .dispatch(ctx, n4, groups, &src_buf, &sums_buf)
                    .unwrap(),
            )
            .unwrap();
            let got = ctx.read_f32(&sums_buf, groups as usize * 4).unwrap();
            let want = reference(&src[..(n4 * 4) as usize], groups);
            let c = compare(&got, &want, 0.0, "exact".into());
            assert!(c.failure.is_none(), "n4 {n4}, {groups} groups: {c:?}");
        }
    }
}
