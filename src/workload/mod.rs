//! Workloads: set up buffers for one measurable piece of work, measure it, check it against a
//! CPU reference, and describe it as a [`WorkloadResult`].

pub mod matmul;

use std::collections::BTreeMap;

use crate::gpu::GpuContext;
use crate::measure::{Measured, stats};
use crate::result::{Correctness, SamplePolicy, WorkloadResult};

/// Progress callback: (samples so far, samples planned).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// One measurable piece of work.
pub trait Workload {
    /// Stable identifier, the same on every node for the same definition.
    fn id(&self) -> String;

    /// Fails with an [`crate::InputError`] if the device cannot hold or run the workload.
    /// Called for every workload before any of them runs, so bad input costs no measurement.
    fn check_fits(&self, ctx: &GpuContext) -> anyhow::Result<()>;

    /// Sets up, measures and verifies the workload.
    fn run(
        &self,
        ctx: &GpuContext,
        policy: &SamplePolicy,
        progress: Progress<'_>,
    ) -> anyhow::Result<WorkloadResult>;
}

/// The analytic work of one execution.
#[derive(Debug, Clone, Copy)]
pub struct WorkCount {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes moved to or from device memory.
    pub bytes: f64,
}

/// Assembles the result of a kernel-style workload from its parts.
pub fn kernel_result(
    id: String,
    kind: &str,
    shape: BTreeMap<String, u64>,
    dtype: &str,
    correctness: Correctness,
    measured: &Measured,
    work: WorkCount,
) -> WorkloadResult {
    let stats = stats::summarize(&measured.samples_s, measured.warmup_iterations);
    let median = stats.median_s;
    WorkloadResult {
        id,
        kind: kind.into(),
        shape,
        dtype: dtype.into(),
        valid: correctness.failure.is_none(),
        correctness,
        achieved_gflops: work.flops / median / 1e9,
        achieved_gbps: work.bytes / median / 1e9,
        flops: work.flops,
        bytes: work.bytes,
        stats,
    }
}
