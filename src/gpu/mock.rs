//! The hidden mock device (`--mock-device`, `TOKBENCH_MOCK_DEVICE`), like hyperfine's
//! `--debug-mode`: it opens no adapter and runs nothing, so tests of the CLI, the result files,
//! reports and hardening run on any machine, deterministically. Its results say
//! `timing_method: mock` and are never measurements.

use std::time::Duration;

use super::{DeviceFacts, GpuContext};
use crate::result::TimingMethod;

/// How the mock device behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockMode {
    /// Every execution returns at once with a time derived from its work.
    Instant,
    /// Every execution sleeps for its time, so runs last as long as their sampling policy says
    /// (for interruption tests).
    Sleep,
    /// The device never finishes: every execution fails once the watchdog timeout passes.
    Hang,
}

impl std::str::FromStr for MockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "instant" | "1" | "true" => Ok(Self::Instant),
            "sleep" => Ok(Self::Sleep),
            "hang" => Ok(Self::Hang),
            other => Err(format!("{other:?}: use instant, sleep or hang")),
        }
    }
}

/// A device that exists only for tests.
#[derive(Debug, Clone)]
pub struct MockDevice {
    /// Its behaviour.
    pub mode: MockMode,
    /// The watchdog timeout a hang waits for.
    pub wait_timeout: Duration,
    facts: DeviceFacts,
}

/// Name of the mock adapter, as results record it.
pub const MOCK_ADAPTER_NAME: &str = "tokbench mock device";

impl MockDevice {
    /// A mock device: a CPU-type adapter with f16 and wgpu's default limits.
    pub fn new(mode: MockMode, wait_timeout: Duration) -> Self {
        let info = wgpu::AdapterInfo {
            name: MOCK_ADAPTER_NAME.into(),
            vendor: 0,
            device: 0,
            device_type: wgpu::DeviceType::Cpu,
            device_pci_bus_id: String::new(),
            driver: "mock".into(),
            driver_info: "nothing runs".into(),
            backend: wgpu::Backend::Noop,
            subgroup_min_size: 8,
            subgroup_max_size: 8,
            transient_saves_memory: None,
            limit_bucket: None,
        };
        Self {
            mode,
            wait_timeout,
            facts: DeviceFacts {
                info,
                features: wgpu::Features::SHADER_F16,
                limits: wgpu::Limits::default(),
                timing_method: TimingMethod::Mock,
                cooperative: Vec::new(),
            },
        }
    }

    /// What planning sees of it.
    pub fn facts(&self) -> &DeviceFacts {
        &self.facts
    }
}

/// The device a run measures on: a real one, or the mock.
#[derive(Clone, Copy)]
pub enum Device<'a> {
    /// An open wgpu device.
    Gpu(&'a GpuContext),
    /// The mock device.
    Mock(&'a MockDevice),
}

impl Device<'_> {
    /// What planning, fit checks and results need of it.
    pub fn facts(&self) -> DeviceFacts {
        match self {
            Self::Gpu(ctx) => ctx.facts(),
            Self::Mock(mock) => mock.facts.clone(),
        }
    }

    /// The open GPU, where there is one (tuning and kernels need it).
    pub fn gpu(&self) -> Option<&GpuContext> {
        match self {
            Self::Gpu(ctx) => Some(ctx),
            Self::Mock(_) => None,
        }
    }
}
