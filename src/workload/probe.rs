//! The two probes every `tokbench run` starts with: the device's peak arithmetic (an FMA chain)
//! and peak bandwidth (a copy). Every other workload's roofline shares are against these.

use std::collections::BTreeMap;

use super::{Progress, Stage, Workload, kernel_result};
use crate::gpu::GpuContext;
use crate::kernels::copy::Copy;
use crate::kernels::fma_probe::FmaProbe;
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
