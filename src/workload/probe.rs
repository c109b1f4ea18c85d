//! The probes every `tokbench run` starts with: the device's peak arithmetic (an FMA chain),
//! peak bandwidth, both as a copy (read and write) and as a streaming sum (read only), and,
//! where the adapter has cooperative matrices, their peak (a chain of matrix
//! multiply-accumulates). Every other workload's roofline shares are against these: its compute
//! share against the peak of the math it used; decode, which mostly reads, against the read
//! probe's bandwidth, the others against the copy's.

use std::cell::Cell;

use super::{Description, Launch, Prepared, Progress, Workload};
use crate::gpu::{DeviceFacts, Dispatch, GpuContext, PassRecorder};
use crate::kernels::WeightDtype;
use crate::kernels::copy::Copy;
use crate::kernels::fma_probe::FmaProbe;
use crate::kernels::matrix_probe::MatrixProbe;
use crate::kernels::read_probe::{self, ReadProbe};
use crate::kernels::verify::{self, compare};
use crate::result::{Correctness, WorkloadKind};

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
        Description::probe(
            WorkloadKind::ProbeFma,
            &[
                ("invocations", u64::from(self.invocations)),
                ("iterations", u64::from(self.iterations)),
            ],
            WeightDtype::F32,
            FmaProbe::flops_of(self.iterations, self.invocations),
            f64::from(self.invocations) * 16.0,
        )
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

/// `n` floats counting 0, 1, … up to `period` − 1 and again (integers, exact in f32), and a
/// storage buffer holding them.
fn repeating_source(
    ctx: &GpuContext,
    label: &str,
    n: usize,
    period: usize,
) -> anyhow::Result<(Vec<f32>, wgpu::Buffer)> {
    let src: Vec<f32> = (0..n).map(|i| (i % period) as f32).collect();
    let buf = ctx.storage_with(label, bytemuck::cast_slice(&src))?;
    Ok((src, buf))
}

impl Workload for CopyProbeWorkload {
    fn describe(&self) -> Description {
        Description::probe(
            WorkloadKind::ProbeCopy,
            &[("bytes", self.bytes)],
            WeightDtype::F32,
            0.0,
            2.0 * self.bytes as f64,
        )
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        _progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        let n = (self.bytes / 4) as usize;
        let (src, src_buf) = repeating_source(ctx, "copy-src", n, 65_521)?;
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

/// Peak cooperative-matrix arithmetic: chains of D × D multiply-accumulates (f16 inputs, f32
/// accumulate) per subgroup, the yardstick of `coopmat-f16` workloads.
pub struct MatrixProbeWorkload {
    /// Side of the matrices: the largest size the adapter lists for f16 → f32.
    pub size: u32,
    /// Workgroups launched (one subgroup each, or more where the driver splits them).
    pub groups: u32,
    /// Multiply-accumulates of each chain.
    pub iterations: u32,
}

impl MatrixProbeWorkload {
    /// Sized for `device`: enough to fill a big GPU, short enough for lavapipe, which emulates
    /// the matrices.
    pub fn for_device(device: &DeviceFacts, size: u32) -> Self {
        let (groups, iterations) = if device.is_cpu() {
            (64, 256)
        } else {
            (1 << 15, 1024)
        };
        Self {
            size,
            groups,
            iterations,
        }
    }

    /// The description for `subgroups` subgroups: before a launch one per workgroup, after it
    /// as many as the workgroups said they had.
    fn description(&self, subgroups: u64) -> Description {
        let d2 = u64::from(self.size * self.size);
        Description::probe(
            WorkloadKind::ProbeMatrix,
            &[
                ("size", u64::from(self.size)),
                ("workgroups", u64::from(self.groups)),
                ("subgroups", subgroups),
                ("iterations", u64::from(self.iterations)),
            ],
            WeightDtype::F16,
            MatrixProbe::flops_of(self.size, self.iterations, subgroups),
            (subgroups * d2 * 4) as f64,
        )
    }
}

impl Workload for MatrixProbeWorkload {
    fn describe(&self) -> Description {
        self.description(u64::from(self.groups))
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        _progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        let probe = MatrixProbe::new(ctx, self.size, self.iterations)?;
        let (a, b) = probe.inputs();
        let ab: Vec<f32> = a.into_iter().chain(b).collect();
        let ab_buf = ctx.storage_with("matrix-ab", &WeightDtype::F16.encode_rows(&ab, 1))?;
        let out = ctx.storage_zeroed("matrix-out", probe.out_bytes(self.groups))?;
        let counts = ctx.storage_zeroed("matrix-counts", u64::from(self.groups) * 4)?;
        let launch = probe.dispatch(ctx, self.groups, &ab_buf, &out, &counts)?;
        Ok(Box::new(PreparedMatrix {
            workload: self,
            probe,
            out,
            counts,
            launch,
            subgroups: Cell::new(None),
        }))
    }
}

struct PreparedMatrix<'a> {
    workload: &'a MatrixProbeWorkload,
    probe: MatrixProbe,
    out: wgpu::Buffer,
    counts: wgpu::Buffer,
    launch: Dispatch,
    /// How many subgroups ran, read back by `verify`.
    subgroups: Cell<Option<u64>>,
}

impl Prepared for PreparedMatrix<'_> {
    fn execution(&self) -> &dyn PassRecorder {
        &self.launch
    }

    fn verify(&self, ctx: &GpuContext) -> anyhow::Result<Correctness> {
        let groups = self.workload.groups;
        // The work done depends on how many subgroups the driver made: each workgroup says.
        let per_group: Vec<u32> =
            bytemuck::pod_collect_to_vec(&ctx.read_bytes(&self.counts, u64::from(groups) * 4)?);
        self.subgroups
            .set(Some(per_group.iter().map(|&n| u64::from(n)).sum()));
        let d2 = (self.workload.size * self.workload.size) as usize;
        let slots = self.probe.max_subgroups() as usize;
        let got = ctx.read_f32(&self.out, groups as usize * slots * d2)?;
        let want = self.probe.reference();
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
        Ok(correctness)
    }

    fn describe(&self, planned: Description) -> anyhow::Result<Description> {
        Ok(match self.subgroups.get() {
            Some(subgroups) => self.workload.description(subgroups),
            None => planned,
        })
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
        Description::probe(
            WorkloadKind::ProbeRead,
            &[
                ("bytes", self.bytes),
                ("workgroups", u64::from(self.workgroups)),
            ],
            WeightDtype::F32,
            (self.bytes / 4) as f64,
            (self.bytes + ReadProbe::sums_bytes(self.workgroups)) as f64,
        )
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        _progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        // Small integers: every partial sum stays exact in f32, so the check is exact.
        let (src, src_buf) = repeating_source(ctx, "read-src", (self.bytes / 4) as usize, 13)?;
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
