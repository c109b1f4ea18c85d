//! Workloads: set up buffers for one measurable piece of work, measure it, check it against a
//! CPU reference, and describe it as a [`WorkloadResult`].

pub mod forward;
pub mod matmul;
pub mod plan;
pub mod probe;
pub mod reference;
pub mod synthetic;
pub mod token;
pub mod weights;

use std::collections::BTreeMap;

use crate::gpu::GpuContext;
use crate::measure::{MeasureEnv, Measured};
use crate::model::Work;
use crate::result::{Correctness, WorkloadResult};
use crate::stats;

/// What a workload is doing, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Generating and uploading weights: (bytes done, bytes in all).
    Uploading(u64, u64),
    /// Timing: (samples taken, samples planned).
    Samples(usize, usize),
    /// Checking the output against the CPU reference.
    Verifying,
    /// Measuring idle power before the first workload.
    Idle,
}

/// Progress callback.
pub type Progress<'a> = &'a mut dyn FnMut(Stage);

/// One measurable piece of work.
pub trait Workload {
    /// Stable identifier, the same on every node for the same definition.
    fn id(&self) -> String;

    /// Fails with an [`crate::InputError`] if the device cannot hold or run the workload.
    /// Called for every workload before any of them runs, so bad input costs no measurement.
    fn check_fits(&self, ctx: &GpuContext) -> anyhow::Result<()>;

    /// Sets up, measures (with `env`'s sampling policy and power meter) and verifies the
    /// workload.
    fn run(
        &self,
        ctx: &GpuContext,
        env: &MeasureEnv<'_>,
        progress: Progress<'_>,
    ) -> anyhow::Result<WorkloadResult>;
}

/// Assembles the result of a kernel-style workload from its parts.
pub fn kernel_result(
    id: String,
    kind: &str,
    shape: BTreeMap<String, u64>,
    dtype: &str,
    correctness: Correctness,
    measured: &Measured,
    work: Work,
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
        roofline: None,
        phase: None,
        preset: None,
        model: None,
        batch: None,
        prompt_len: None,
        depth: None,
        layers_run: None,
        weights_shared_across_layers: None,
        tokens: None,
        tokens_per_s: None,
        power: measured.power.clone(),
        tokens_per_j: None,
        tokens_per_j_dynamic: None,
        j_per_token: None,
        math: None,
    }
}

/// A shared workload is a workload (the benches time it with criterion and then run it).
impl<W: Workload + ?Sized> Workload for std::rc::Rc<W> {
    fn id(&self) -> String {
        (**self).id()
    }

    fn check_fits(&self, ctx: &GpuContext) -> anyhow::Result<()> {
        (**self).check_fits(ctx)
    }

    fn run(
        &self,
        ctx: &GpuContext,
        env: &MeasureEnv<'_>,
        progress: Progress<'_>,
    ) -> anyhow::Result<WorkloadResult> {
        (**self).run(ctx, env, progress)
    }
}
