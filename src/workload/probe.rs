//! The probes every `tokbench run` starts with: the device's peak arithmetic (an FMA chain),
//! peak bandwidth (a copy) and, where the adapter has cooperative matrices, their peak (a chain
//! of matrix multiply-accumulates). Every other workload's roofline shares are against these:
//! its compute share against the peak of the math it used.

use std::collections::BTreeMap;

use super::{Progress, Stage, Workload, kernel_result};
use crate::gpu::GpuContext;
use crate::kernels::WeightDtype;
use crate::kernels::copy::Copy;
use crate::kernels::fma_probe::FmaProbe;
use crate::kernels::matrix_probe::MatrixProbe;
use crate::kernels::verify::{self, compare};
use crate::measure::MeasureEnv;
use crate::model::Work;
use crate::result::WorkloadResult;

/// Peak arithmetic: independent FMA chains, no memory traffic to speak of.
pub struct FmaProbeWorkload;

impl FmaProbeWorkload {
    /// Invocations and chain length: enough to fill a big GPU, short enough for lavapipe.
    fn size(ctx: &GpuContext) -> (u32, u32) {
        if ctx.info.device_type == wgpu::DeviceType::Cpu {
            (8192, 1024)
        } else {
            (1 << 20, 1024)
        }
    }
}

impl Workload for FmaProbeWorkload {
    fn id(&self) -> String {
        "probe-fma".into()
    }

    fn check_fits(&self, _ctx: &GpuContext) -> anyhow::Result<()> {
        Ok(())
    }

    fn run(
        &self,
        ctx: &GpuContext,
        env: &MeasureEnv<'_>,
        progress: Progress<'_>,
    ) -> anyhow::Result<WorkloadResult> {
        let (invocations, iterations) = Self::size(ctx);
        let probe = FmaProbe::new(ctx, iterations)?;
        let out = ctx.storage_zeroed("fma-out", u64::from(invocations) * 16)?;
        let launch = probe.dispatch(ctx, invocations, &out)?;
        let measured = crate::measure::measure(ctx, &launch, env, &mut |d, p| {
            progress(Stage::Samples(d, p))
        })?;
        progress(Stage::Verifying);
        // Invocations repeat with period 16; check one period and the last one.
        let got = ctx.read_f32(&out, invocations as usize * 4)?;
        let checked: Vec<u32> = (0..16).chain([invocations - 1]).collect();
        let gpu: Vec<f32> = checked
            .iter()
            .flat_map(|&i| got[4 * i as usize..4 * i as usize + 4].to_vec())
            .collect();
        let want: Vec<f64> = checked.iter().flat_map(|&i| probe.reference(i)).collect();
        let correctness = compare(
            &gpu,
            &want,
            verify::NMSE_F32,
            format!("cpu-f64, {} invocations", checked.len()),
        );
        let shape = BTreeMap::from([
            ("invocations".to_string(), u64::from(invocations)),
            ("iterations".to_string(), u64::from(iterations)),
        ]);
        let work = Work {
            flops: probe.flops(invocations),
            bytes: f64::from(invocations) * 16.0,
        };
        Ok(kernel_result(
            self.id(),
            "probe-fma",
            shape,
            "f32",
            correctness,
            &measured,
            work,
        ))
    }
}

/// Peak bandwidth: a buffer copy as large as one binding allows (up to 1 GiB).
pub struct CopyProbeWorkload;

impl CopyProbeWorkload {
    fn bytes(ctx: &GpuContext) -> u64 {
        let cap = if ctx.info.device_type == wgpu::DeviceType::Cpu {
            256 << 20
        } else {
            1 << 30
        };
        ctx.max_binding_bytes().min(cap) / 16 * 16
    }
}

impl Workload for CopyProbeWorkload {
    fn id(&self) -> String {
        "probe-copy".into()
    }

    fn check_fits(&self, _ctx: &GpuContext) -> anyhow::Result<()> {
        Ok(())
    }

    fn run(
        &self,
        ctx: &GpuContext,
        env: &MeasureEnv<'_>,
        progress: Progress<'_>,
    ) -> anyhow::Result<WorkloadResult> {
        let bytes = Self::bytes(ctx);
        let n = (bytes / 4) as usize;
        let src: Vec<f32> = (0..n).map(|i| (i % 65_521) as f32).collect();
        let src_buf = ctx.storage_with("copy-src", bytemuck::cast_slice(&src))?;
        let dst_buf = ctx.storage_zeroed("copy-dst", bytes)?;
        let launch = Copy::new(ctx)?.dispatch(ctx, (bytes / 16) as u32, &src_buf, &dst_buf)?;
        let measured = crate::measure::measure(ctx, &launch, env, &mut |d, p| {
            progress(Stage::Samples(d, p))
        })?;
        progress(Stage::Verifying);
        let got = ctx.read_f32(&dst_buf, n)?;
        let want: Vec<f64> = src.iter().map(|&x| f64::from(x)).collect();
        let correctness = compare(&got, &want, 0.0, format!("exact, all {n} values"));
        let shape = BTreeMap::from([("bytes".to_string(), bytes)]);
        let work = Work {
            flops: 0.0,
            bytes: 2.0 * bytes as f64,
        };
        Ok(kernel_result(
            self.id(),
            "probe-copy",
            shape,
            "f32",
            correctness,
            &measured,
            work,
        ))
    }
}

/// Peak cooperative-matrix arithmetic: chains of D × D multiply-accumulates (f16 inputs, f32
/// accumulate) per subgroup, the yardstick of `coopmat-f16` workloads.
pub struct MatrixProbeWorkload {
    /// Side of the matrices: the largest size the adapter lists for f16 → f32.
    pub size: u32,
}

impl MatrixProbeWorkload {
    /// Workgroups (one subgroup each) and chain length: enough to fill a big GPU, short enough
    /// for lavapipe, which emulates the matrices.
    fn size(ctx: &GpuContext) -> (u32, u32) {
        if ctx.info.device_type == wgpu::DeviceType::Cpu {
            (64, 256)
        } else {
            (1 << 15, 1024)
        }
    }
}

impl Workload for MatrixProbeWorkload {
    fn id(&self) -> String {
        "probe-matrix".into()
    }

    fn check_fits(&self, _ctx: &GpuContext) -> anyhow::Result<()> {
        Ok(())
    }

    fn run(
        &self,
        ctx: &GpuContext,
        env: &MeasureEnv<'_>,
        progress: Progress<'_>,
    ) -> anyhow::Result<WorkloadResult> {
        let (groups, iterations) = Self::size(ctx);
        let probe = MatrixProbe::new(ctx, self.size, iterations)?;
        let (a, b) = probe.inputs();
        let ab: Vec<f32> = a.into_iter().chain(b).collect();
        let ab_buf = ctx.storage_with("matrix-ab", &WeightDtype::F16.encode(&ab))?;
        let out = ctx.storage_zeroed("matrix-out", probe.out_bytes(groups))?;
        let counts = ctx.storage_zeroed("matrix-counts", u64::from(groups) * 4)?;
        let launch = probe.dispatch(ctx, groups, &ab_buf, &out, &counts)?;
        let measured = crate::measure::measure(ctx, &launch, env, &mut |d, p| {
            progress(Stage::Samples(d, p))
        })?;
        progress(Stage::Verifying);
        // The work done depends on how many subgroups the driver made: each workgroup says.
        let per_group: Vec<u32> =
            bytemuck::pod_collect_to_vec(&ctx.read_bytes(&counts, u64::from(groups) * 4)?);
        let subgroups: u64 = per_group.iter().map(|&n| u64::from(n)).sum();
        let d2 = (self.size * self.size) as usize;
        let slots = probe.max_subgroups() as usize;
        let got = ctx.read_f32(&out, groups as usize * slots * d2)?;
        let want = probe.reference();
        // Every subgroup of the first and last workgroups.
        let mut gpu = Vec::new();
        let mut reference = Vec::new();
        for g in [0, groups as usize - 1] {
            for s in 0..(per_group[g] as usize).min(slots) {
                let slot = g * slots + s;
                gpu.extend_from_slice(&got[slot * d2..(slot + 1) * d2]);
                reference.extend_from_slice(&want);
            }
        }
        let mut correctness = compare(
            &gpu,
            &reference,
            verify::NMSE_F32,
            format!("cpu-f64, {} subgroups' matrices", gpu.len() / d2),
        );
        if per_group.iter().any(|&n| n == 0 || n as usize > slots) {
            correctness.failure = Some(format!(
                "a workgroup reported a subgroup count outside 1..={slots}: {per_group:?}"
            ));
        }
        let shape = BTreeMap::from([
            ("size".to_string(), u64::from(self.size)),
            ("workgroups".to_string(), u64::from(groups)),
            ("subgroups".to_string(), subgroups),
            ("iterations".to_string(), u64::from(iterations)),
        ]);
        let work = Work {
            flops: probe.flops(subgroups),
            bytes: (subgroups * d2 as u64 * 4) as f64,
        };
        Ok(kernel_result(
            self.id(),
            "probe-matrix",
            shape,
            "f16",
            correctness,
            &measured,
            work,
        ))
    }
}
