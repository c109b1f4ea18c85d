//! Workloads: each describes one measurable piece of work (without a device), sets it up on a
//! device, and checks its output against a CPU reference. The runner measures them and writes
//! the results ([`crate::runner`]).

pub mod forward;
pub mod matmul;
pub mod plan;
pub mod probe;
pub mod reference;
pub mod synthetic;
pub mod token;
pub mod weights;

use std::collections::BTreeMap;

use crate::gpu::{DeviceFacts, Dispatch, GpuContext, PassRecorder};
use crate::kernels::WeightDtype;
use crate::model::{ModelShape, Pass, Work};
use crate::result::{Correctness, MathRecord, WorkloadKind};

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

/// What one execution of a workload is, known without a device: the result's identity and
/// the work it counts. The runner turns it, the measured samples and the check into a
/// [`WorkloadResult`](crate::result::WorkloadResult).
#[derive(Debug, Clone)]
pub struct Description {
    /// Stable identifier, the same on every node for the same definition.
    pub id: String,
    /// What it is: a probe, the matmul kernel, or a model phase.
    pub kind: WorkloadKind,
    /// Named sizes.
    pub shape: BTreeMap<String, u64>,
    /// Weight element type.
    pub dtype: WeightDtype,
    /// FLOPs and bytes of one execution.
    pub work: Work,
    /// The math tier the products run on, for workloads with products.
    pub math: Option<MathRecord>,
    /// For prefill and decode: the model pass.
    pub tokens: Option<TokenDescription>,
}

impl Description {
    /// A probe's description: its kind's name as id, its named sizes, and the work of one
    /// execution; probes have no math tier and no tokens.
    pub fn probe(
        kind: WorkloadKind,
        sizes: &[(&str, u64)],
        dtype: WeightDtype,
        flops: f64,
        bytes: f64,
    ) -> Self {
        Self {
            id: kind.name().into(),
            kind,
            shape: sizes.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
            dtype,
            work: Work { flops, bytes },
            math: None,
            tokens: None,
        }
    }
}

/// The model side of a prefill or decode workload.
#[derive(Debug, Clone)]
pub struct TokenDescription {
    /// Prefill or decode, with batch and length.
    pub pass: Pass,
    /// Preset name, or "custom".
    pub preset: String,
    /// The model's shape.
    pub model: ModelShape,
    /// Layers one pass runs through.
    pub layers_run: u32,
    /// True when every layer reads the same weights.
    pub weights_shared_across_layers: bool,
    /// Storage format of the KV cache.
    pub kv_dtype: crate::kernels::KvDtype,
    /// What the routers did, once the pass ran (mixture-of-experts models).
    pub experts: Option<crate::result::ExpertsRecord>,
}

/// One measurable piece of work: it describes itself without a device, and prepares on one.
pub trait Workload {
    /// What one execution is.
    fn describe(&self) -> Description;

    /// Stable identifier, the same on every node for the same definition.
    fn id(&self) -> String {
        self.describe().id
    }

    /// Fails with an [`crate::InputError`] if the device cannot hold or run the workload.
    /// Called for every workload before any of them runs, so bad input costs no measurement.
    /// The probes size themselves to the device, so by default everything fits.
    fn check_fits(&self, _device: &DeviceFacts) -> anyhow::Result<()> {
        Ok(())
    }

    /// Sets up buffers and records one execution, ready to be timed.
    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>>;
}

/// A workload set up on a device: what the runner times, and how to check what it computed.
pub trait Prepared {
    /// One execution, recordable any number of times.
    fn execution(&self) -> &dyn PassRecorder;

    /// Checks the output of the executions against the CPU reference.
    fn verify(&self, ctx: &GpuContext) -> anyhow::Result<Correctness>;

    /// The description, amended by what set-up and the executions found out (weights shared
    /// after an out-of-memory fallback, the experts the routers touched). A readback that fails
    /// fails the workload: its figures would otherwise rest on a guess.
    fn describe(&self, planned: Description) -> anyhow::Result<Description> {
        Ok(planned)
    }
}

/// Reads a workload's output back and compares it with its reference.
pub type Check<'a> = Box<dyn Fn(&GpuContext) -> anyhow::Result<Correctness> + 'a>;

/// A workload that is one recorded launch, checked by a closure over what it set up (the
/// probes, the matmul kernel).
pub struct Launch<'a> {
    /// The execution.
    pub launch: Dispatch,
    /// Reads the output back and compares it with the reference.
    pub check: Check<'a>,
}

impl Prepared for Launch<'_> {
    fn execution(&self) -> &dyn PassRecorder {
        &self.launch
    }

    fn verify(&self, ctx: &GpuContext) -> anyhow::Result<Correctness> {
        (self.check)(ctx)
    }
}

/// A shared workload is a workload (the benches time it with criterion and then run it).
impl<W: Workload + ?Sized> Workload for std::rc::Rc<W> {
    fn describe(&self) -> Description {
        (**self).describe()
    }

    fn check_fits(&self, device: &DeviceFacts) -> anyhow::Result<()> {
        (**self).check_fits(device)
    }

    fn prepare<'a>(
        &'a self,
        ctx: &'a GpuContext,
        progress: Progress<'_>,
    ) -> anyhow::Result<Box<dyn Prepared + 'a>> {
        (**self).prepare(ctx, progress)
    }
}
