//! The probes every `tokbench run` starts with: the device's peak arithmetic (an FMA chain) and
//! peak bandwidth, both as a copy (read and write) and as a streaming sum (read only). Every
//! other workload's roofline shares are against these: decode, which mostly reads, against the
//! read probe; the others against the copy.

use std::collections::BTreeMap;

use super::{Description, Launch, Prepared, Progress, Workload};
use crate::gpu::{DeviceFacts, GpuContext};
use crate::kernels::copy::Copy;
use crate::kernels::fma_probe::FmaProbe;
use crate::kernels::read_probe::{self, ReadProbe};
use crate::kernels::verify::{self, compare};
use crate::model::Work;

/// Peak arithmetic: independent FMA chains, no memory traffic to speak of.
pub struct FmaProbeWorkload {
    /// Invocations launched.
    pub invocations: u32,
    /// FMA iterations of each chain.
    pub iterations: u32,
}

impl FmaProbeWorkload {
    /// Sized for `device`: enough invocations to fill a big GPU, few enough for lavapipe.
    pub fn for_device(device: &DeviceFacts) -> Self {
        Self {
            invocations: if device.is_cpu() { 8192 } else { 1 << 20 },
            iterations: 1024,
        }
    }
}

impl Workload for FmaProbeWorkload {
    fn describe(&self) -> Description {
        Description {
            id: "probe-fma".into(),
            kind: "probe-fma".into(),
            shape: BTreeMap::from([
                ("invocations".to_string(), u64::from(self.invocations)),
                ("iterations".to_string(), u64::from(self.iterations)),
            ]),
            dtype: "f32".into(),
            work: Work {
                flops: FmaProbe::flops_of(self.iterations, self.invocations),
                bytes: f64::from(self.invocations) * 16.0,
            },
            tokens: None,
        }
    }

    fn check_fits(&self, _device: &DeviceFacts) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        _progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        let probe = FmaProbe::new(ctx, self.iterations)?;
        let out = ctx.storage_zeroed("fma-out", u64::from(self.invocations) * 16)?;
        let launch = probe.dispatch(ctx, self.invocations, &out)?;
        let invocations = self.invocations;
        Ok(Box::new(Launch {
            launch,
            check: Box::new(move |ctx| {
                // Invocations repeat with period 16; check one period and the last one.
                let got = ctx.read_f32(&out, invocations as usize * 4)?;
                let checked: Vec<u32> = (0..16).chain([invocations - 1]).collect();
                let gpu: Vec<f32> = checked
                    .iter()
                    .flat_map(|&i| got[4 * i as usize..4 * i as usize + 4].to_vec())
                    .collect();
                let want: Vec<f64> = checked.iter().flat_map(|&i| probe.reference(i)).collect();
                Ok(compare(
                    &gpu,
                    &want,
                    verify::NMSE_F32,
                    format!("cpu-f64, {} invocations", checked.len()),
                ))
            }),
        }))
    }
}

/// Peak bandwidth: a buffer copy as large as one binding allows (up to 1 GiB).
pub struct CopyProbeWorkload {
    /// Bytes copied (read once, written once).
    pub bytes: u64,
}

impl CopyProbeWorkload {
    /// Sized for `device`: as large as one binding allows, at most 256 MiB on CPU adapters and
    /// 1 GiB elsewhere.
    pub fn for_device(device: &DeviceFacts) -> Self {
        Self {
            bytes: probe_bytes(device),
        }
    }
}

/// Bytes a bandwidth probe streams on `device`: as large as one binding allows, at most 256 MiB
/// on CPU adapters and 1 GiB elsewhere.
fn probe_bytes(device: &DeviceFacts) -> u64 {
    let cap = if device.is_cpu() { 256 << 20 } else { 1 << 30 };
    device.max_binding_bytes().min(cap) / 16 * 16
}

impl Workload for CopyProbeWorkload {
    fn describe(&self) -> Description {
        Description {
            id: "probe-copy".into(),
            kind: "probe-copy".into(),
            shape: BTreeMap::from([("bytes".to_string(), self.bytes)]),
            dtype: "f32".into(),
            work: Work {
                flops: 0.0,
                bytes: 2.0 * self.bytes as f64,
            },
            tokens: None,
        }
    }

    fn check_fits(&self, _device: &DeviceFacts) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        _progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        let n = (self.bytes / 4) as usize;
        let src: Vec<f32> = (0..n).map(|i| (i % 65_521) as f32).collect();
        let src_buf = ctx.storage_with("copy-src", bytemuck::cast_slice(&src))?;
        let dst_buf = ctx.storage_zeroed("copy-dst", self.bytes)?;
        let launch = Copy::new(ctx)?.dispatch(ctx, (self.bytes / 16) as u32, &src_buf, &dst_buf)?;
        Ok(Box::new(Launch {
            launch,
            check: Box::new(move |ctx| {
                let got = ctx.read_f32(&dst_buf, n)?;
                let want: Vec<f64> = src.iter().map(|&x| f64::from(x)).collect();
                Ok(compare(&got, &want, 0.0, format!("exact, all {n} values")))
            }),
        }))
    }
}

/// Peak read bandwidth: a streaming sum over a buffer as large as the copy probe's, one vec4
/// written per workgroup.
pub struct ReadProbeWorkload {
    /// Bytes read.
    pub bytes: u64,
    /// Workgroups launched (each writes one vec4).
    pub workgroups: u32,
}

impl ReadProbeWorkload {
    /// Sized for `device`: the copy probe's bytes; a few workgroups per core on CPU adapters
    /// (lavapipe runs a workgroup per thread), enough to fill a big GPU elsewhere.
    pub fn for_device(device: &DeviceFacts) -> Self {
        Self {
            bytes: probe_bytes(device),
            workgroups: if device.is_cpu() { 256 } else { 8192 },
        }
    }
}

impl Workload for ReadProbeWorkload {
    fn describe(&self) -> Description {
        Description {
            id: "probe-read".into(),
            kind: "probe-read".into(),
            shape: BTreeMap::from([
                ("bytes".to_string(), self.bytes),
                ("workgroups".to_string(), u64::from(self.workgroups)),
            ]),
            dtype: "f32".into(),
            work: Work {
                flops: (self.bytes / 4) as f64,
                bytes: (self.bytes + ReadProbe::sums_bytes(self.workgroups)) as f64,
            },
            tokens: None,
        }
    }

    fn check_fits(&self, _device: &DeviceFacts) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        _progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        let n = (self.bytes / 4) as usize;
        // Small integers: every partial sum stays exact in f32, so the check is exact.
        let src: Vec<f32> = (0..n).map(|i| (i % 13) as f32).collect();
        let src_buf = ctx.storage_with("read-src", bytemuck::cast_slice(&src))?;
        let sums = ctx.storage_zeroed("read-sums", ReadProbe::sums_bytes(self.workgroups))?;
        let launch = ReadProbe::new(ctx)?.dispatch(
            ctx,
            (self.bytes / 16) as u32,
            self.workgroups,
            &src_buf,
            &sums,
        )?;
        let want = read_probe::reference(&src, self.workgroups);
        Ok(Box::new(Launch {
            launch,
            check: Box::new(move |ctx| {
                let got = ctx.read_f32(&sums, want.len())?;
                Ok(compare(
                    &got,
                    &want,
                    0.0,
                    format!("exact, all {} workgroup sums", want.len() / 4),
                ))
            }),
        }))
    }
}
