//! Adapter discovery and selection, and the device every workload runs on.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::InputError;
use crate::result::{AdapterInfo, TimingMethod};

/// A graphics API the user can restrict adapter discovery to (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// Vulkan (Linux, Windows, Android; lavapipe is a Vulkan driver).
    Vulkan,
    /// Metal (macOS, iOS).
    Metal,
    /// Direct3D 12 (Windows).
    Dx12,
    /// OpenGL / GLES.
    Gl,
}

impl BackendChoice {
    fn backends(self) -> wgpu::Backends {
        match self {
            Self::Vulkan => wgpu::Backends::VULKAN,
            Self::Metal => wgpu::Backends::METAL,
            Self::Dx12 => wgpu::Backends::DX12,
            Self::Gl => wgpu::Backends::GL,
        }
    }
}

impl FromStr for BackendChoice {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(Self::Vulkan),
            "metal" | "mtl" => Ok(Self::Metal),
            "dx12" | "d3d12" => Ok(Self::Dx12),
            "gl" | "gles" | "opengl" => Ok(Self::Gl),
            _ => Err(InputError::new(format!(
                "--backend {s:?}: unknown backend; use vulkan, metal, dx12 or gl"
            ))),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vulkan => "vulkan",
            Self::Metal => "metal",
            Self::Dx12 => "dx12",
            Self::Gl => "gl",
        })
    }
}

/// Which adapter to use: the user's `--adapter` and `--backend`, both optional.
#[derive(Debug, Clone, Default)]
pub struct AdapterSelector {
    /// An index into the `tokbench devices` list, or a case-insensitive substring of the name.
    pub adapter: Option<String>,
    /// Only consider adapters of this backend.
    pub backend: Option<BackendChoice>,
}

/// Every adapter wgpu can see, in a stable order (the order `tokbench devices` prints).
pub fn enumerate_adapters(backend: Option<BackendChoice>) -> Vec<wgpu::Adapter> {
    // `from_env` honours WGPU_BACKEND and friends; `--backend` overrides them.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = backend {
        desc.backends = b.backends();
    }
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// The message for a machine where wgpu finds nothing to run on.
const NO_ADAPTER_HELP: &str = "no GPU adapter found. On a machine without a GPU, install a \
    software Vulkan driver: `apt-get install mesa-vulkan-drivers` (Debian/Ubuntu) provides \
    lavapipe; otherwise install your GPU's Vulkan, Metal or DX12 driver";

/// Picks an adapter: the one the selector names, else the best by device type
/// (discrete > integrated > virtual > CPU), preferring Vulkan/Metal/DX12 over GL on a tie.
pub fn select_adapter(selector: &AdapterSelector) -> anyhow::Result<wgpu::Adapter> {
    let adapters = enumerate_adapters(selector.backend);
    if adapters.is_empty() {
        let scope = selector
            .backend
            .map(|b| format!(" for backend {b}"))
            .unwrap_or_default();
        return Err(InputError::new(format!("{NO_ADAPTER_HELP}{scope}")).into());
    }
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    let index = match &selector.adapter {
        Some(wanted) => pick_named(&infos, wanted)?,
        None => pick_best(&infos),
    };
    Ok(adapters
        .into_iter()
        .nth(index)
        .expect("index from the same list"))
}

fn pick_named(infos: &[wgpu::AdapterInfo], wanted: &str) -> Result<usize, InputError> {
    let listing = || {
        infos
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i}: {} ({:?})", a.name, a.backend))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Ok(i) = wanted.parse::<usize>() {
        return if i < infos.len() {
            Ok(i)
        } else {
            Err(InputError::new(format!(
                "--adapter {i}: no adapter with that index; available: {}",
                listing()
            )))
        };
    }
    let needle = wanted.to_lowercase();
    infos
        .iter()
        .enumerate()
        .filter(|(_, a)| a.name.to_lowercase().contains(&needle))
        .min_by_key(|(_, a)| rank(a))
        .map(|(i, _)| i)
        .ok_or_else(|| {
            InputError::new(format!(
                "--adapter {wanted:?}: no adapter name contains it; available: {}",
                listing()
            ))
        })
}

/// The adapters `--adapter all` runs on, as indices into `infos` (the `tokbench devices`
/// list): every GPU, each once. A GPU that shows through Vulkan/Metal/DX12 is not run again
/// through GL, and CPU adapters (lavapipe) count only on a machine without a GPU.
pub fn node_adapters(infos: &[wgpu::AdapterInfo]) -> Vec<usize> {
    let gpu = |i: &usize| {
        !matches!(
            infos[*i].device_type,
            wgpu::DeviceType::Cpu | wgpu::DeviceType::Other
        )
    };
    let native = |i: &usize| infos[*i].backend != wgpu::Backend::Gl;
    let all: Vec<usize> = (0..infos.len()).collect();
    let kinds: Vec<usize> = if all.iter().any(gpu) {
        all.into_iter().filter(gpu).collect()
    } else {
        all
    };
    if kinds.iter().any(native) {
        kinds.into_iter().filter(native).collect()
    } else {
        kinds
    }
}

/// The adapters one replica each runs on, with their index in `tokbench devices` and facts:
/// `all` is every GPU of the node (see `node_adapters`) among what wgpu sees for `backend`;
/// a comma-separated list ("0,1", or parts of names) names them, each once.
pub fn replica_adapters(
    wanted: &str,
    backend: Option<BackendChoice>,
) -> Result<Vec<(usize, wgpu::AdapterInfo)>, InputError> {
    let infos: Vec<wgpu::AdapterInfo> = enumerate_adapters(backend)
        .iter()
        .map(|a| a.get_info())
        .collect();
    let indices = if wanted.eq_ignore_ascii_case("all") {
        node_adapters(&infos)
    } else {
        let mut indices = Vec::new();
        for name in wanted.split(',').map(str::trim) {
            let i = pick_named(&infos, name)?;
            if indices.contains(&i) {
                return Err(InputError::new(format!(
                    "--adapter {wanted}: {name:?} names adapter {i} again; each adapter runs one \
                     replica"
                )));
            }
            indices.push(i);
        }
        indices
    };
    if indices.is_empty() {
        return Err(InputError::new(format!(
            "--adapter {wanted}: no adapter found (see `tokbench devices`)"
        )));
    }
    Ok(indices.into_iter().map(|i| (i, infos[i].clone())).collect())
}

fn pick_best(infos: &[wgpu::AdapterInfo]) -> usize {
    (0..infos.len())
        .min_by_key(|&i| rank(&infos[i]))
        .expect("non-empty")
}

/// Lower is better.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (ty, api)
}

/// What went wrong on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceErrorKind {
    /// An allocation failed.
    OutOfMemory,
    /// wgpu rejected a call (a bug in tokbench, or a limit it did not check).
    Validation,
    /// The driver failed internally.
    Internal,
    /// The device was lost (reset, removed, driver crash).
    Lost,
}

/// An error the device raised.
#[derive(Debug, Clone, thiserror::Error)]
#[error("GPU {}: {message}", match kind {
    DeviceErrorKind::OutOfMemory => "out of memory",
    DeviceErrorKind::Validation => "validation error",
    DeviceErrorKind::Internal => "internal error",
    DeviceErrorKind::Lost => "device lost",
})]
pub struct DeviceError {
    /// Which kind.
    pub kind: DeviceErrorKind,
    /// The driver's or wgpu's words.
    pub message: String,
}

/// Features tokbench uses when the adapter has them.
pub const USEFUL_FEATURES: [(wgpu::Features, &str); 4] = [
    (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
    (wgpu::Features::SHADER_F16, "SHADER_F16"),
    (wgpu::Features::SUBGROUP, "SUBGROUP"),
    // Tensor cores (Vulkan VK_KHR_cooperative_matrix, Metal simdgroup matrices).
    (
        wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
        "EXPERIMENTAL_COOPERATIVE_MATRIX",
    ),
];

/// An open device on the chosen adapter, with what tokbench needs to know about it.
pub struct GpuContext {
    /// The adapter the device was opened on.
    pub adapter: wgpu::Adapter,
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Features enabled on the device (a subset of [`USEFUL_FEATURES`]).
    pub features: wgpu::Features,
    /// The adapter's own limits, all requested.
    pub limits: wgpu::Limits,
    /// wgpu's description of the adapter.
    pub info: wgpu::AdapterInfo,
    /// How durations are measured on this device.
    pub timing_method: TimingMethod,
    /// Longest wait for the GPU before it is declared hung; `None` waits forever.
    pub wait_timeout: Option<std::time::Duration>,
    /// Runtime checks for shaders marked trusted; untrusted shaders are always checked.
    pub shader_checks: super::ShaderChecks,
    /// One set of queries and readback buffers: timing is serialised through this lock.
    pub(crate) timestamps: Option<Mutex<super::timer::TimestampQueries>>,
    pub(crate) pipelines: Mutex<HashMap<String, wgpu::ComputePipeline>>,
    /// Errors the device raised outside any error scope, turned into `Err` by `wait_idle`
    /// (wgpu's default handler would panic).
    pub(crate) device_errors: Arc<Mutex<Vec<DeviceError>>>,
}

impl GpuContext {
    /// Opens the adapter `selector` picks, requesting its own limits and the useful features.
    pub fn open(selector: &AdapterSelector) -> anyhow::Result<Self> {
        Self::from_adapter(select_adapter(selector)?)
    }

    /// Opens a device on `adapter`.
    pub fn from_adapter(adapter: wgpu::Adapter) -> anyhow::Result<Self> {
        let info = adapter.get_info();
        let available = adapter.features();
        let features = USEFUL_FEATURES
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| available.contains(*f))
            .fold(wgpu::Features::empty(), |acc, f| acc | f);
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("tokbench"),
            required_features: features,
            required_limits: limits.clone(),
            // SAFETY: the only experimental feature requested is EXPERIMENTAL_COOPERATIVE_MATRIX,
            // used by the cooperative-matrix shaders only, whose outputs are checked against the
            // CPU reference before any figure counts.
            experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
            ..Default::default()
        }))
        .with_context(|| format!("opening a device on adapter {:?}", info.name))?;
        let device_errors = Arc::new(Mutex::new(Vec::new()));
        let sink = device_errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let kind = match e {
                wgpu::Error::OutOfMemory { .. } => DeviceErrorKind::OutOfMemory,
                wgpu::Error::Validation { .. } => DeviceErrorKind::Validation,
                wgpu::Error::Internal { .. } => DeviceErrorKind::Internal,
            };
            sink.lock().expect("device error sink").push(DeviceError {
                kind,
                message: e.to_string(),
            });
        }));
        let lost = device_errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                lost.lock().expect("device error sink").push(DeviceError {
                    kind: DeviceErrorKind::Lost,
                    message: format!("{reason:?}: {message}"),
                });
            }
        });
        let timestamps = features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| Mutex::new(super::timer::TimestampQueries::new(&device)));
        let timing_method = if timestamps.is_some() {
            TimingMethod::GpuTimestamps
        } else {
            TimingMethod::WallClock
        };
        Ok(Self {
            adapter,
            device,
            queue,
            features,
            limits,
            info,
            timing_method,
            wait_timeout: None,
            // Trusted shaders keep every access in bounds by their geometry (checked on the host
            // before each launch) and pass their correctness tests here without checks.
            shader_checks: super::ShaderChecks::Unchecked,
            timestamps,
            pipelines: Mutex::new(HashMap::new()),
            device_errors,
        })
    }

    /// Fails with the first error the device raised since the last call, if any (a
    /// [`DeviceError`], so callers can tell out-of-memory and device loss apart).
    pub fn take_device_error(&self) -> anyhow::Result<()> {
        let mut errors = self.device_errors.lock().expect("device error sink");
        match errors.drain(..).next() {
            Some(first) => Err(first.into()),
            None => Ok(()),
        }
    }

    /// What planning needs of this device, as plain data.
    pub fn facts(&self) -> DeviceFacts {
        DeviceFacts {
            info: self.info.clone(),
            features: self.features,
            limits: self.limits.clone(),
            timing_method: self.timing_method,
            cooperative: self.cooperative_matrix_properties(),
        }
    }

    /// The subgroup sizes the driver may pick, when the device has SUBGROUP.
    pub fn subgroup_sizes(&self) -> Option<crate::kernels::SubgroupSizes> {
        self.facts().subgroup_sizes()
    }

    /// The cooperative-matrix configurations wgpu accepts on this device; empty without
    /// EXPERIMENTAL_COOPERATIVE_MATRIX.
    pub fn cooperative_matrix_properties(&self) -> Vec<wgpu::CooperativeMatrixProperties> {
        if self.has(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            self.adapter.cooperative_matrix_properties()
        } else {
            Vec::new()
        }
    }

    /// The traits kernel choices depend on.
    pub fn traits(&self) -> crate::kernels::AdapterTraits {
        self.facts().traits()
    }

    /// A grid of `groups` workgroups for kernels that index linearly across x and y
    /// (`wid.x + wid.y * groups.x`): wraps into y beyond the per-dimension limit. Kernels skip
    /// the indices past their end.
    pub fn grid_1d(&self, groups: u32) -> [u32; 3] {
        let max = self.limits.max_compute_workgroups_per_dimension;
        [groups.clamp(1, max), groups.div_ceil(max).max(1), 1]
    }

    /// Whether the device has `feature` enabled.
    pub fn has(&self, feature: wgpu::Features) -> bool {
        self.features.contains(feature)
    }

    /// Largest buffer one binding can cover: the smaller of the binding and buffer limits.
    pub fn max_binding_bytes(&self) -> u64 {
        self.facts().max_binding_bytes()
    }

    /// The adapter as recorded in a result document.
    pub fn adapter_record(&self) -> AdapterInfo {
        self.facts().adapter_record()
    }
}

/// What planning, fit checks and results need to know of a device, as plain data: a
/// [`GpuContext`] has them, and so does the mock device, which opens nothing.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    /// wgpu's description of the adapter.
    pub info: wgpu::AdapterInfo,
    /// Features enabled on the device.
    pub features: wgpu::Features,
    /// The device's limits.
    pub limits: wgpu::Limits,
    /// How durations are measured on it.
    pub timing_method: TimingMethod,
    /// The cooperative-matrix configurations wgpu accepts on it (empty without the feature).
    pub cooperative: Vec<wgpu::CooperativeMatrixProperties>,
}

impl DeviceFacts {
    /// A CPU adapter (lavapipe, or the mock device).
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Whether the device has `feature` enabled.
    pub fn has(&self, feature: wgpu::Features) -> bool {
        self.features.contains(feature)
    }

    /// The subgroup sizes the driver may pick (one fixed size where min = max), when the
    /// device has SUBGROUP and reports a sane range.
    pub fn subgroup_sizes(&self) -> Option<crate::kernels::SubgroupSizes> {
        let (min, max) = (self.info.subgroup_min_size, self.info.subgroup_max_size);
        (self.has(wgpu::Features::SUBGROUP) && min >= 1 && min <= max)
            .then_some(crate::kernels::SubgroupSizes { min, max })
    }

    /// The traits kernel choices depend on.
    pub fn traits(&self) -> crate::kernels::AdapterTraits {
        crate::kernels::AdapterTraits {
            cpu: self.is_cpu(),
            subgroups: self.subgroup_sizes(),
        }
    }

    /// Largest buffer one binding can cover: the smaller of the binding and buffer limits.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// The adapter as recorded in a result document.
    pub fn adapter_record(&self) -> AdapterInfo {
        adapter_record(&self.info, self.features, &self.limits, &self.cooperative)
    }
}

/// Describes an adapter for results and `tokbench devices`.
pub fn adapter_record(
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    limits: &wgpu::Limits,
    cooperative: &[wgpu::CooperativeMatrixProperties],
) -> AdapterInfo {
    AdapterInfo {
        name: info.name.clone(),
        vendor_id: info.vendor,
        device_id: info.device,
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        backend: backend_name(info.backend).to_string(),
        device_type: device_type_name(info.device_type).to_string(),
        features: USEFUL_FEATURES
            .iter()
            .filter(|(f, _)| features.contains(*f))
            .map(|(_, name)| name.to_string())
            .collect(),
        limits: key_limits(info, features, limits),
        cooperative_matrices: cooperative.iter().map(coop_name).collect(),
    }
}

/// "8x8x8 f16->f32": M×N×K, input and accumulator types.
pub fn coop_name(p: &wgpu::CooperativeMatrixProperties) -> String {
    let ty = |t: wgpu::CooperativeScalarType| match t {
        wgpu::CooperativeScalarType::F32 => "f32",
        wgpu::CooperativeScalarType::F16 => "f16",
        wgpu::CooperativeScalarType::I32 => "i32",
        wgpu::CooperativeScalarType::U32 => "u32",
    };
    format!(
        "{}x{}x{} {}->{}{}",
        p.m_size,
        p.n_size,
        p.k_size,
        ty(p.ab_type),
        ty(p.cr_type),
        if p.saturating_accumulation {
            " (saturating)"
        } else {
            ""
        }
    )
}

fn backend_name(b: wgpu::Backend) -> &'static str {
    match b {
        wgpu::Backend::Vulkan => "vulkan",
        wgpu::Backend::Metal => "metal",
        wgpu::Backend::Dx12 => "dx12",
        wgpu::Backend::Gl => "gl",
        wgpu::Backend::BrowserWebGpu => "webgpu",
        wgpu::Backend::Noop => "noop",
    }
}

fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
        wgpu::DeviceType::VirtualGpu => "virtual-gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// The limits that shape tokbench's kernels and buffers.
/// The limits kernel choices depend on, plus the subgroup size range the adapter reports (where
/// it has SUBGROUP): kernels must be correct at every size in it.
fn key_limits(
    info: &wgpu::AdapterInfo,
    features: wgpu::Features,
    l: &wgpu::Limits,
) -> BTreeMap<String, u64> {
    let subgroups = features
        .contains(wgpu::Features::SUBGROUP)
        .then_some([
            ("subgroup_min_size", u64::from(info.subgroup_min_size)),
            ("subgroup_max_size", u64::from(info.subgroup_max_size)),
        ])
        .into_iter()
        .flatten();
    [
        ("max_buffer_size", l.max_buffer_size),
        (
            "max_storage_buffer_binding_size",
            l.max_storage_buffer_binding_size,
        ),
        (
            "max_storage_buffers_per_shader_stage",
            l.max_storage_buffers_per_shader_stage.into(),
        ),
        (
            "max_compute_workgroup_storage_size",
            l.max_compute_workgroup_storage_size.into(),
        ),
        (
            "max_compute_invocations_per_workgroup",
            l.max_compute_invocations_per_workgroup.into(),
        ),
        (
            "max_compute_workgroup_size_x",
            l.max_compute_workgroup_size_x.into(),
        ),
        (
            "max_compute_workgroup_size_y",
            l.max_compute_workgroup_size_y.into(),
        ),
        (
            "max_compute_workgroups_per_dimension",
            l.max_compute_workgroups_per_dimension.into(),
        ),
    ]
    .into_iter()
    .chain(subgroups)
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, ty: wgpu::DeviceType, backend: wgpu::Backend) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: name.into(),
            vendor: 0,
            device: 0,
            device_type: ty,
            device_pci_bus_id: String::new(),
            driver: String::new(),
            driver_info: String::new(),
            backend,
            subgroup_min_size: 4,
            subgroup_max_size: 4,
            transient_saves_memory: None,
            limit_bucket: None,
        }
    }

    #[test]
    fn best_adapter_prefers_discrete_then_vulkan_over_gl() {
        use wgpu::{Backend::*, DeviceType::*};
        let list = [
            info("llvmpipe", Cpu, Gl),
            info("llvmpipe", Cpu, Vulkan),
            info("Intel UHD", IntegratedGpu, Vulkan),
            info("RTX 4090", DiscreteGpu, Vulkan),
        ];
        assert_eq!(pick_best(&list), 3);
        assert_eq!(pick_best(&list[..2]), 1);
    }

    #[test]
    fn every_gpu_of_a_node_once_and_lavapipe_only_without_one() {
        use wgpu::{Backend::*, DeviceType::*};
        let node = [
            info("llvmpipe", Cpu, Vulkan),
            info("H100 #0", DiscreteGpu, Vulkan),
            info("H100 #1", DiscreteGpu, Vulkan),
            info("H100 #0", DiscreteGpu, Gl),
        ];
        assert_eq!(node_adapters(&node), [1, 2]);
        let gl_only = [info("H100", DiscreteGpu, Gl), info("llvmpipe", Cpu, Gl)];
        assert_eq!(node_adapters(&gl_only), [0]);
        let cpu_only = [info("llvmpipe", Cpu, Gl), info("llvmpipe", Cpu, Vulkan)];
        assert_eq!(node_adapters(&cpu_only), [1]);
        assert!(node_adapters(&[]).is_empty());
    }

    #[test]
    fn named_adapter_by_index_or_substring() {
        use wgpu::{Backend::*, DeviceType::*};
        let list = [info("llvmpipe", Cpu, Gl), info("llvmpipe", Cpu, Vulkan)];
        assert_eq!(pick_named(&list, "0").unwrap(), 0);
        assert_eq!(pick_named(&list, "LLVM").unwrap(), 1);
        let err = pick_named(&list, "7").unwrap_err().to_string();
        assert!(
            err.contains("--adapter 7") && err.contains("0: llvmpipe"),
            "{err}"
        );
        assert!(pick_named(&list, "nvidia").is_err());
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!(
            "Vulkan".parse::<BackendChoice>().unwrap(),
            BackendChoice::Vulkan
        );
        assert_eq!("gl".parse::<BackendChoice>().unwrap(), BackendChoice::Gl);
        let err = "cuda".parse::<BackendChoice>().unwrap_err().to_string();
        assert!(err.contains("cuda") && err.contains("vulkan"), "{err}");
    }
}
