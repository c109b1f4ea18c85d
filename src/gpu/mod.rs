//! Everything that touches wgpu directly: adapter choice, the device, buffers and timing.
//! Workloads build on [`GpuContext`]; `result/` and `report/` never import this module.

mod buffers;

pub use buffers::DeviceHung;
mod context;
mod dispatch;
mod host;
mod mock;
mod pipeline;
mod timer;

pub use context::{
    AdapterSelector, BackendChoice, DeviceError, DeviceErrorKind, DeviceFacts, GpuContext,
    USEFUL_FEATURES, adapter_record, coop_name, enumerate_adapters, replica_adapters,
    select_adapter,
};
pub use dispatch::Dispatch;
pub use host::{AdapterAdvice, HostGpu, advise, host_gpus};
pub use mock::{Device, MOCK_ADAPTER_NAME, MockDevice, MockMode};
pub use pipeline::ShaderChecks;
pub use timer::{MAX_RUNS_PER_BATCH, PassRecorder, Timer, TimestampTimer, WallClockTimer};

/// One device shared by all unit tests of the crate (opening a device per test is slow on
/// lavapipe). Chooses the adapter as `tokbench` does, honouring `TOKBENCH_ADAPTER`. A machine
/// without any adapter fails these tests: install `mesa-vulkan-drivers`.
#[cfg(test)]
pub(crate) fn test_context() -> &'static GpuContext {
    static CTX: std::sync::OnceLock<GpuContext> = std::sync::OnceLock::new();
    CTX.get_or_init(|| {
        let selector = AdapterSelector {
            adapter: std::env::var("TOKBENCH_ADAPTER").ok(),
            backend: None,
        };
        GpuContext::open(&selector).expect("GPU tests need an adapter (lavapipe will do)")
    })
}
