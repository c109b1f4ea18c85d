//! The result document: one per run, versioned, the stable interface of tokbench.
//!
//! `compare`, `check`, CI scripts and fleet roll-ups read these types, so every field carries a
//! doc comment (they become the descriptions in the shipped JSON Schema) and units live in field
//! names. Field names never change within a schema version; new fields may be added.
//! Every struct denies unknown fields, so a document that drifts from the code fails to load.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::serving::ServingSection;
use crate::dtype::{KvDtype, WeightDtype};
use crate::kernel_config::{KernelConfig, Math};
use crate::model::{ModelShape, Phase};

/// A time as results write it: RFC 3339 in UTC with milliseconds, "2026-12-01T21:00:00.123Z".
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Times written as [`timestamp`] does, and read from any RFC 3339 text.
mod utc_millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::timestamp(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| de::Error::custom(format!("{text:?} is not an RFC 3339 time: {e}")))
    }

    /// The same for an optional time (null stays null).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
        }
    }
}

/// Version of this document layout. Bumped only when a field is renamed or its meaning changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One tokbench run on one node: everything measured, and the context needed to trust it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    /// Layout version of this document; see [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The program that wrote this document.
    pub tool: ToolInfo,
    /// When the run started, RFC 3339 in UTC with milliseconds.
    #[serde(with = "utc_millis")]
    #[schemars(with = "DateTime<Utc>")]
    pub started_at: DateTime<Utc>,
    /// When the run finished, RFC 3339 in UTC with milliseconds; null while the run is still
    /// going (the document is rewritten after every workload) or when it never finished.
    #[serde(with = "utc_millis::option")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub finished_at: Option<DateTime<Utc>>,
    /// True when the run was stopped (Ctrl-C, SIGTERM) before all planned workloads ran; the
    /// workloads listed are complete.
    pub interrupted: bool,
    /// The machine the run happened on.
    pub node: NodeInfo,
    /// The GPU (or software rasteriser) the workloads ran on.
    pub adapter: AdapterInfo,
    /// How kernel durations were measured.
    pub timing_method: TimingMethod,
    /// What was asked for: the validated plan.
    pub plan: PlanRecord,
    /// Kernel choices the workloads ran with; null for a run that builds none.
    pub kernel_config: Option<KernelConfig>,
    /// Where `kernel_config` came from: tier defaults, the tuning cache (with its path), or a
    /// quick tune at the start of this run.
    pub kernel_config_source: Option<String>,
    /// The device's measured peaks (the probe workloads' figures); null until both probes ran.
    pub probes: Option<Probes>,
    /// How power was measured in this run: the source chosen, what else was tried, idle power.
    pub power: PowerSetup,
    /// One entry per finished workload, in the order they ran.
    pub workloads: Vec<WorkloadResult>,
    /// What `tokbench serve` measured: one point per concurrency; absent for other commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingSection>,
}

/// The program that wrote a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    /// Always "tokbench".
    pub name: String,
    /// The crate version, for example "0.1.0".
    pub version: String,
    /// Git commit the binary was built from; null when it was built outside a git checkout.
    pub git_sha: Option<String>,
}

/// The machine, as reported by the operating system (through sysinfo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// Host name.
    pub hostname: String,
    /// Operating system name and version, for example "Linux (Debian GNU/Linux 12)".
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU model name.
    pub cpu_brand: String,
    /// Logical CPU count.
    pub cpu_cores: u32,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// The scheduler slot the run occupied, when it ran under Slurm or Kubernetes.
    pub placement: Option<Placement>,
}

/// Where in a fleet a run happened, from the scheduler's environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// "slurm" or "kubernetes".
    pub scheduler: String,
    /// Slurm job id (SLURM_JOB_ID); null under Kubernetes.
    pub job_id: Option<String>,
    /// Node name as the scheduler knows it (SLURMD_NODENAME, or the downward-API node name).
    pub node_name: Option<String>,
    /// Slurm task id (SLURM_PROCID) or the Indexed Job's completion index.
    pub task_id: Option<String>,
    /// Kubernetes pod name; null under Slurm.
    pub pod_name: Option<String>,
    /// Kubernetes namespace; null under Slurm.
    pub namespace: Option<String>,
}

/// Where a power figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// The difference of a hardware energy counter over the window.
    MeasuredCounter,
    /// Power sampled on its own thread over the window, integrated (trapezoid rule).
    MeasuredSampled,
    /// A wattage the user gave (`--watts`), not measured.
    Declared,
    /// No figure; `reason` says why. Numbers are null, never 0.
    Unavailable,
}

/// What a power figure covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The whole GPU board (NVML).
    GpuBoard,
    /// The GPU package or chip (hwmon on Intel and AMD GPUs).
    GpuPackage,
    /// A CPU package (RAPL): the right scope for CPU adapters such as lavapipe.
    CpuPackage,
    /// The whole node at the wall (a meter or PDU through `--power-cmd`).
    NodeWall,
    /// Something else the user measured or declared.
    Other,
}

/// The run's power arrangement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerSetup {
    /// What was asked for: "auto", "nvml", "hwmon", "rapl", "command", "declared" or "none".
    pub requested: String,
    /// The source used; null when none was available.
    pub source: Option<String>,
    /// What the source covers; null when none.
    pub scope: Option<Scope>,
    /// Every source considered, in order, with why it was used or skipped.
    pub tried: Vec<PowerAttempt>,
    /// Average power before the workloads, with nothing running, in watts; null when not
    /// measured (`--idle-s 0`, or no measured source).
    pub idle_power_w: Option<f64>,
    /// How long idle power was measured, in seconds.
    pub idle_s: f64,
    /// A second source that cross-checks the first (sampled power beside a counter); null when
    /// there is none.
    pub cross_check_source: Option<String>,
    /// Where device telemetry (clocks, temperature, throttling) is read, for example "nvml:
    /// NVML device 0 (NVIDIA H100 80GB HBM3, 00000000:01:00.0)"; null where the platform has
    /// none (a CPU adapter, or no NVML or amdgpu hwmon for the GPU).
    pub telemetry_source: Option<String>,
}

/// One source considered for power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerAttempt {
    /// Source name.
    pub source: String,
    /// True for the source chosen.
    pub used: bool,
    /// Why it was used or skipped.
    pub detail: String,
}

/// Power and energy over one workload's measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRecord {
    /// Source name ("nvml", "hwmon", "rapl", "command", "declared"); null when none.
    pub source: Option<String>,
    /// What the figure covers; null when unavailable.
    pub scope: Option<Scope>,
    /// Where the figure came from.
    pub provenance: Provenance,
    /// How energy was obtained: "counter-delta", "trapezoid" or "declared-constant"; null when
    /// unavailable.
    pub method: Option<String>,
    /// Why there is no figure; null when there is one.
    pub reason: Option<String>,
    /// Energy over the window, in joules.
    pub energy_j: Option<f64>,
    /// energy_j / window_s, in watts.
    pub avg_power_w: Option<f64>,
    /// The run's idle power, in watts.
    pub idle_power_w: Option<f64>,
    /// Energy above idle over the window: energy_j − idle_power_w · window_s, in joules.
    pub dynamic_energy_j: Option<f64>,
    /// Length of the measured window, in seconds (host clock, first timed submit to last
    /// completion).
    pub window_s: f64,
    /// Executions of the workload inside the window.
    pub executions: u64,
    /// Share of the window the GPU spent on the timed executions: their summed GPU-timed
    /// seconds ÷ window_s. Below 1 the window also holds host work (encoding, submission,
    /// readback) while the device idled, whose energy is counted too; below 0.9 the record
    /// carries a warning. Null for windows without timed work (idle measurement).
    pub duty_cycle: Option<f64>,
    /// Power samples taken in the window (sampled sources); null for counters and declared.
    pub samples: Option<u64>,
    /// Share of the window between the first and last sample (sampled sources).
    pub coverage: Option<f64>,
    /// Longest time between consecutive samples, in seconds (sampled sources).
    pub max_gap_s: Option<f64>,
    /// Average power from the cross-check source over the same window, in watts.
    pub cross_check_power_w: Option<f64>,
    /// The device's clocks, temperature and throttling over the same window; null where the
    /// platform has no telemetry.
    pub telemetry: Option<Telemetry>,
    /// Drift over a sustained window (`--sustain-s`): throughput and power of its first tenth
    /// against its last; null when not asked for.
    pub sustain: Option<Sustain>,
    /// Anything that makes the figure less trustworthy.
    pub warnings: Vec<String>,
}

/// How a workload held up over a sustained window (`--sustain-s`): its first tenth against its
/// last, so a device that throttles after a while shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sustain {
    /// The wall time asked for, in seconds; the window is at least this long.
    pub sustain_s: f64,
    /// Median execution time of the first tenth of the samples, in seconds.
    pub first_tenth_median_s: f64,
    /// Median execution time of the last tenth of the samples, in seconds.
    pub last_tenth_median_s: f64,
    /// Relative change of throughput from the first tenth to the last:
    /// first_tenth_median_s ÷ last_tenth_median_s − 1 (−0.2: the end ran 20% slower).
    pub throughput_drift: f64,
    /// Average power over the first tenth of the window, in watts; null without a measured
    /// source (declared power does not drift).
    pub first_tenth_power_w: Option<f64>,
    /// Average power over the last tenth of the window, in watts; null as above.
    pub last_tenth_power_w: Option<f64>,
    /// Relative change of power from the first tenth to the last: last ÷ first − 1; null when
    /// either is.
    pub power_drift: Option<f64>,
}

/// Device telemetry over a measured window, read on the power sampler's schedule (and at the
/// window's edges). Each figure is the minimum, mean and maximum of the readings in the
/// window; a figure the platform does not give is null, never 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// Where it was read: "nvml" or "hwmon".
    pub source: String,
    /// Readings in the window.
    pub samples: u64,
    /// Shader clock, in MHz: NVML's SM clock, amdgpu's `freq1_input` (sclk).
    pub sm_clock_mhz: Option<MinMeanMax>,
    /// Memory clock, in MHz: NVML's memory clock, amdgpu's `freq2_input` (mclk).
    pub memory_clock_mhz: Option<MinMeanMax>,
    /// GPU temperature, in degrees Celsius: NVML's GPU sensor, amdgpu's `temp1_input` (edge).
    pub temperature_c: Option<MinMeanMax>,
    /// Power limit in force, in watts: NVML's enforced limit, amdgpu's `power1_cap`.
    pub power_limit_w: Option<MinMeanMax>,
    /// Performance state, 0 (fastest) to 15 (NVML's P-state).
    pub pstate: Option<MinMeanMax>,
    /// Every clock throttle reason seen in a reading, in NVML's terms ("gpu-idle",
    /// "sw-power-cap", "hw-slowdown", "sync-boost", "sw-thermal-slowdown",
    /// "hw-thermal-slowdown", "hw-power-brake-slowdown", "applications-clocks-setting",
    /// "display-clock-setting"); empty when none was; null where the platform does not say.
    pub throttle_reasons: Option<Vec<String>>,
    /// Share of readings, 0 to 1, in which a reason that slows the clocks below what the
    /// workload asks for was active (power cap, thermal or hardware slowdown, power brake, sync
    /// boost); null where the platform does not say.
    pub throttled_share: Option<f64>,
}

/// The smallest, mean and largest of a figure's readings, in the figure's unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinMeanMax {
    /// Smallest reading.
    pub min: f64,
    /// Mean of the readings.
    pub mean: f64,
    /// Largest reading.
    pub max: f64,
}

impl MinMeanMax {
    /// The spread of `values`; `None` when there are none (or any is not finite).
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        Some(Self {
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            mean: values.iter().sum::<f64>() / values.len() as f64,
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The adapter (GPU or software device) used, as wgpu reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterInfo {
    /// Adapter name, for example "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// PCI vendor id (or the backend's equivalent), for example 4318 (0x10de) for NVIDIA.
    pub vendor_id: u32,
    /// PCI device id (or the backend's equivalent).
    pub device_id: u32,
    /// Driver name.
    pub driver: String,
    /// Driver version details.
    pub driver_info: String,
    /// Graphics API wgpu used: "vulkan", "metal", "dx12" or "gl".
    pub backend: String,
    /// "discrete-gpu", "integrated-gpu", "virtual-gpu", "cpu" or "other".
    pub device_type: String,
    /// wgpu features enabled on the device that matter to tokbench (for example "TIMESTAMP_QUERY").
    pub features: Vec<String>,
    /// Key device limits, by wgpu's limit name (for example "max_storage_buffer_binding_size"),
    /// and on adapters with SUBGROUP the subgroup size range ("subgroup_min_size",
    /// "subgroup_max_size").
    pub limits: BTreeMap<String, u64>,
    /// Cooperative-matrix (tensor-core) configurations wgpu accepts on the device, as
    /// "MxNxK inputs->accumulator" (for example "16x16x16 f16->f32"); empty when the device has
    /// no EXPERIMENTAL_COOPERATIVE_MATRIX (or for documents written before this field).
    #[serde(default)]
    pub cooperative_matrices: Vec<String>,
}

/// How durations were measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TimingMethod {
    /// GPU timestamp queries written at the start and end of each timed compute pass.
    GpuTimestamps,
    /// Host monotonic clock around submit and wait-for-idle; includes submission overhead.
    WallClock,
    /// The hidden mock device of tokbench's own tests: nothing ran, every duration is derived
    /// from the workload's FLOPs and bytes at fixed mock peaks. Never a measurement.
    Mock,
}

/// What a workload is: one place for the names results use for it.
#[derive(Serialize, Deserialize, JsonSchema, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// The FMA-chain probe: peak SIMT arithmetic.
    ProbeFma,
    /// The copy probe: peak read-and-write bandwidth.
    ProbeCopy,
    /// The read probe (a streaming sum): peak read bandwidth, decode's yardstick.
    ProbeRead,
    /// The cooperative-matrix probe: peak matrix arithmetic.
    ProbeMatrix,
    /// One matrix multiply (`tokbench kernel matmul`).
    Matmul,
    /// A model's prompt pass.
    Prefill,
    /// A model's generation step.
    Decode,
}

impl WorkloadKind {
    /// The name results and tables use: "probe-fma", "matmul", "prefill", ...
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// True for the probes, which measure the device rather than a workload.
    pub fn is_probe(self) -> bool {
        matches!(
            self,
            Self::ProbeFma | Self::ProbeCopy | Self::ProbeRead | Self::ProbeMatrix
        )
    }
}

impl From<Phase> for WorkloadKind {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Prefill => Self::Prefill,
            Phase::Decode => Self::Decode,
        }
    }
}

/// The validated plan a run followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRecord {
    /// The subcommand that produced the run: "run" or "kernel".
    pub command: String,
    /// How samples were taken.
    pub sampling: SamplePolicy,
    /// The model workloads asked for; null for a kernel-only run.
    pub model: Option<ModelPlan>,
    /// How many times each workload was measured (`--repeat`), interleaved: every workload
    /// once, then every workload again, so a slow drift of the machine hits all alike. 1 for a
    /// single measurement (and in documents written before repetitions existed).
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Settings the user did not give that tokbench chose for this device (a shorter prompt
    /// and fewer samples of long passes on CPU adapters, so a first run ends in about a
    /// minute), each with its value and why; empty when every setting was given or is the
    /// same everywhere.
    #[serde(default)]
    pub device_defaults: Vec<DeviceDefault>,
    /// Warnings about the adapter chosen (a CPU adapter beside a GPU wgpu cannot see, a GL
    /// fallback), as printed.
    #[serde(default)]
    pub adapter_warnings: Vec<String>,
}

fn one() -> u32 {
    1
}

/// A setting tokbench chose for the device because the user gave none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceDefault {
    /// The flag that would have set it, for example "--prompt-len".
    pub flag: String,
    /// The value chosen, as the flag would take it.
    pub value: String,
    /// Why this value on this device.
    pub reason: String,
}

/// The model part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPlan {
    /// Preset name, or "custom" for a shape given by flags or a file.
    pub preset: String,
    /// The model shape.
    pub model: ModelShape,
    /// Weight format of every matrix but the routed experts'.
    pub dtype: WeightDtype,
    /// The routed experts' format where it differs from `dtype` (gpt-oss: MXFP4 by default,
    /// `--expert-dtype`); absent where they share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert_dtype: Option<WeightDtype>,
    /// Storage format of the KV cache (`--kv-dtype`): "f32", "f16" or "q8_0". Null in
    /// documents written before the flag existed, whose caches were f32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_dtype: Option<KvDtype>,
    /// Layers each pass runs through (at most the model's n_layers; `--layers` caps it).
    pub layers_run: u32,
    /// True when the layers' weights did not fit in device memory, so every layer reads the same
    /// weights (the bytes streamed per token are still those of all layers).
    pub weights_shared_across_layers: bool,
    /// Phases run, in order: "prefill", "decode".
    pub phases: Vec<Phase>,
    /// Sequences per pass: the first of `batches`.
    pub batch: u32,
    /// Every batch the run swept (`--batch 1,8`), in order; each ran every phase and depth.
    /// Documents from before the sweep have only `batch`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<u32>,
    /// Prompt length of prefill.
    pub prompt_len: u32,
    /// KV depths decode ran at.
    pub depths: Vec<u32>,
}

/// The device's own measured peaks, the yardsticks of every roofline share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    /// FMA-chain probe: GFLOP/s.
    pub fma_gflops: f64,
    /// Copy probe: GB/s (bytes read + written).
    pub copy_gbps: f64,
    /// Matrix probe (chains of cooperative multiply-accumulates, f16 inputs, f32 accumulate):
    /// GFLOP/s, the peak cooperative-matrix workloads are compared with; null on adapters
    /// without cooperative matrices.
    #[serde(default)]
    pub matrix_gflops: Option<f64>,
    /// Read probe (a streaming sum, one vec4 written per workgroup): GB/s of bytes read, the
    /// peak decode's bandwidth share is taken against; null until it ran, and in documents
    /// written before it existed.
    #[serde(default)]
    pub read_gbps: Option<f64>,
}
/// How many samples to take and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplePolicy {
    /// At least this many timed samples per workload.
    pub min_samples: u32,
    /// And at least this much summed sample time per workload, in seconds.
    pub min_time_s: f64,
    /// Warm-up stops once per-iteration times plateau, or after this many seconds.
    pub max_warmup_s: f64,
    /// And keep sampling for at least this many seconds of wall time (`--sustain-s`), recording
    /// the drift between the window's first and last tenth (`power.sustain`); null when not
    /// asked for.
    pub sustain_s: Option<f64>,
}

/// One measured workload: a kernel at a shape, or (later) a prefill or decode phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadResult {
    /// Stable identifier within and across runs, for example "matmul-f32-m1024-n1024-k1024".
    pub id: String,
    /// What ran: a probe, a kernel ("matmul"), or a model phase ("prefill", "decode").
    pub kind: WorkloadKind,
    /// Named problem dimensions, for example {"m": 1024, "n": 1024, "k": 1024}.
    pub shape: BTreeMap<String, u64>,
    /// Element type of the weights (or of the probe's data): "f32" or "f16".
    pub dtype: WeightDtype,
    /// False when the correctness check failed; such a workload must not be ranked or compared.
    pub valid: bool,
    /// The correctness check against a CPU reference.
    pub correctness: Correctness,
    /// Timing statistics over the samples of one execution each.
    pub stats: Stats,
    /// Floating-point operations of one execution, counted analytically.
    pub flops: f64,
    /// Bytes one execution must move to or from device memory, counted analytically.
    pub bytes: f64,
    /// flops / median time, in GFLOP/s.
    pub achieved_gflops: f64,
    /// bytes / median time, in GB/s (10^9 bytes per second).
    pub achieved_gbps: f64,
    /// The achieved figures as shares of the probes' peaks; null for the probes themselves and
    /// for runs without probes.
    pub roofline: Option<Roofline>,
    /// "prefill" or "decode"; null for kernel and probe workloads.
    pub phase: Option<Phase>,
    /// Preset name ("custom" for a shape from flags or a file); null for kernel workloads.
    pub preset: Option<String>,
    /// The model shape; null for kernel workloads.
    pub model: Option<ModelShape>,
    /// Sequences per pass; null for kernel workloads.
    pub batch: Option<u32>,
    /// Prompt length (prefill); null otherwise.
    pub prompt_len: Option<u32>,
    /// KV depth before the step (decode); null otherwise.
    pub depth: Option<u32>,
    /// Layers the pass ran through; null for kernel workloads.
    pub layers_run: Option<u32>,
    /// Storage format of the KV cache the pass wrote and attention read: "f32", "f16" or
    /// "q8_0"; null for kernel and probe workloads, and in documents written before the flag
    /// existed (whose caches were f32: [`WorkloadResult::kv_format`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_dtype: Option<KvDtype>,
    /// True when every layer read the same weights (they did not all fit); null for kernel
    /// workloads.
    pub weights_shared_across_layers: Option<bool>,
    /// Tokens one execution produces: batch × prompt_len for prefill, batch for decode.
    pub tokens: Option<u64>,
    /// tokens / median time of one execution.
    pub tokens_per_s: Option<f64>,
    /// Power and energy over the measured window.
    pub power: PowerRecord,
    /// Tokens per joule: the tokens executed in the energy window over the joules of that
    /// window, tokens × power.executions ÷ power.energy_j (so tokens_per_j × energy_j is the
    /// window's token count; idle time inside the window, see power.duty_cycle, costs energy
    /// and lowers it); null without a power figure or for non-token workloads.
    pub tokens_per_j: Option<f64>,
    /// Tokens per joule above idle power: tokens × power.executions ÷ power.dynamic_energy_j;
    /// null without idle power or when the window drew no more than idle.
    pub tokens_per_j_dynamic: Option<f64>,
    /// Joules per token: power.energy_j ÷ (tokens × power.executions), 1 / tokens_per_j.
    pub j_per_token: Option<f64>,
    /// The math tier of the workload's products and the peak it is compared with; null for
    /// probes (and documents written before this field).
    #[serde(default)]
    pub math: Option<MathRecord>,
    /// Each repetition of the workload (`--repeat N`, N ≥ 2) in the order they ran, with its own
    /// samples, statistics and power window; empty when it was measured once. With
    /// repetitions, the headline figures come from the repetitions' medians: `stats.median_s`
    /// (and so tokens_per_s, achieved_gflops, achieved_gbps, roofline) is the median of their
    /// median times, and `power` and tokens_per_j are those of the repetition with the median
    /// tokens/J. `check` gates on the repetitions when both sides have at least 3.
    #[serde(default)]
    pub repetitions: Vec<Repetition>,
    /// What the routers of a mixture-of-experts model did in one execution; null for dense
    /// models and non-token workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<ExpertsRecord>,
}

impl WorkloadResult {
    /// The KV cache format of a token workload: the recorded one, or f32 for documents written
    /// before `--kv-dtype` existed (their caches were f32); null for kernel and probe
    /// workloads.
    pub fn kv_format(&self) -> Option<KvDtype> {
        match (self.kv_dtype, self.phase) {
            (Some(kv), _) => Some(kv),
            (None, Some(_)) => Some(KvDtype::F32),
            (None, None) => None,
        }
    }
}

/// The experts a mixture-of-experts pass touched: its bytes come from these weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpertsRecord {
    /// Format of the routed experts' weights (the workload's `dtype` covers every other
    /// matrix); null in documents from before experts could have a format of their own.
    #[serde(default)]
    pub dtype: Option<WeightDtype>,
    /// Routed experts each token uses (top-k) of `n_experts` per layer.
    pub n_experts_active: u32,
    /// Routed experts per mixture-of-experts layer.
    pub n_experts: u32,
    /// Tokens routed per layer in one execution (the pass's rows).
    pub tokens_routed: u64,
    /// Experts the router touched in each mixture-of-experts layer, in layer order: the mean
    /// over `touched_by_step`.
    pub touched_by_layer: Vec<f64>,
    /// Experts touched per step and layer (`[step][layer]`): a decode workload's executions
    /// take its steps in turn, each with other tokens, so the experts they touch vary as a real
    /// decode's do. Empty in documents from before steps varied (every execution replayed one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touched_by_step: Vec<Vec<u32>>,
    /// Mean of `touched_by_layer`: the count the pass's `bytes` are computed from.
    pub touched_per_layer: f64,
    /// What uniform routing would touch: E·(1 − (1 − k/E)^tokens_routed).
    pub expected_per_layer: f64,
}

/// Which arithmetic a workload's products ran on, why, and the peak they are set against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MathRecord {
    /// The tier: "simt-f32", "simt-f16" or "coopmat-f16".
    pub tier: Math,
    /// What `--math` asked for: "auto", "simt" or "coopmat".
    pub requested: String,
    /// Why this tier: the tuner's choice, the user's, or what the adapter or weight type lacks
    /// when auto fell back to SIMT.
    pub reason: String,
    /// How activations (f32 in memory) reach the products: "f32" for SIMT, "f16, converted on
    /// load" for cooperative matrices.
    pub activations: String,
    /// The probe whose peak roofline.compute_share is taken against: "probe-fma" (SIMT) or
    /// "probe-matrix" (cooperative matrices).
    pub peak_probe: String,
    /// That probe's GFLOP/s; null until it ran.
    pub peak_gflops: Option<f64>,
}

/// One repetition of a workload: a complete measurement of its own (warm-up, samples, power
/// window), taken in its turn of the interleaved order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repetition {
    /// Statistics over this repetition's own samples.
    pub stats: Stats,
    /// tokens / this repetition's median time; null for workloads without tokens.
    pub tokens_per_s: Option<f64>,
    /// Power and energy over this repetition's window.
    pub power: PowerRecord,
    /// Tokens per joule over this repetition's window (as the workload's tokens_per_j); null
    /// without a power figure or for workloads without tokens.
    pub tokens_per_j: Option<f64>,
}

/// How well a sampled power figure's samples cover its window (the sampled fields of a
/// [`PowerRecord`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleCoverage {
    /// Samples taken in the window, edges included.
    pub samples: u64,
    /// Share of the window between the first and last sample, 0 to 1.
    pub coverage: f64,
    /// Longest time without a sample, in seconds.
    pub max_gap_s: f64,
}

impl PowerRecord {
    /// Declared power of `source` covering `scope`: `watts` × the window exactly, with
    /// `avg_power_w` exactly `watts`. Declared figures have no idle or dynamic energy.
    pub fn declared(
        source: &str,
        scope: Scope,
        watts: f64,
        window_s: f64,
        executions: u64,
    ) -> Self {
        Self {
            source: Some(source.into()),
            scope: Some(scope),
            provenance: Provenance::Declared,
            method: Some("declared-constant".into()),
            reason: None,
            energy_j: Some(watts * window_s),
            avg_power_w: Some(watts),
            ..Self::unavailable("", window_s, executions)
        }
    }

    /// An energy counter's advance over the window, `energy_j`, with dynamic energy where
    /// `idle_power_w` is known.
    pub fn counter(
        source: &str,
        scope: Scope,
        energy_j: f64,
        idle_power_w: Option<f64>,
        window_s: f64,
        executions: u64,
    ) -> Self {
        Self {
            source: Some(source.into()),
            scope: Some(scope),
            provenance: Provenance::MeasuredCounter,
            method: Some("counter-delta".into()),
            reason: None,
            energy_j: Some(energy_j),
            avg_power_w: Some(energy_j / window_s),
            idle_power_w,
            dynamic_energy_j: idle_power_w.map(|idle| energy_j - idle * window_s),
            ..Self::unavailable("", window_s, executions)
        }
    }

    /// Sampled power integrated over the window (trapezoid rule) to `energy_j`, with how well
    /// the samples cover it, and dynamic energy where `idle_power_w` is known.
    pub fn sampled(
        source: &str,
        scope: Scope,
        energy_j: f64,
        idle_power_w: Option<f64>,
        window_s: f64,
        executions: u64,
        sampling: SampleCoverage,
    ) -> Self {
        Self {
            provenance: Provenance::MeasuredSampled,
            method: Some("trapezoid".into()),
            samples: Some(sampling.samples),
            coverage: Some(sampling.coverage),
            max_gap_s: Some(sampling.max_gap_s),
            ..Self::counter(source, scope, energy_j, idle_power_w, window_s, executions)
        }
    }

    /// No figure, for `reason`; every number null.
    pub fn unavailable(reason: impl Into<String>, window_s: f64, executions: u64) -> Self {
        Self {
            source: None,
            scope: None,
            provenance: Provenance::Unavailable,
            method: None,
            reason: Some(reason.into()),
            energy_j: None,
            avg_power_w: None,
            idle_power_w: None,
            dynamic_energy_j: None,
            window_s,
            executions,
            duty_cycle: None,
            samples: None,
            coverage: None,
            max_gap_s: None,
            cross_check_power_w: None,
            telemetry: None,
            sustain: None,
            warnings: Vec::new(),
        }
    }
}

impl PowerSetup {
    /// A run that measures no power.
    pub fn none(requested: &str, why: &str) -> Self {
        Self {
            requested: requested.into(),
            source: None,
            scope: None,
            tried: vec![PowerAttempt {
                source: "none".into(),
                used: false,
                detail: why.into(),
            }],
            idle_power_w: None,
            idle_s: 0.0,
            cross_check_source: None,
            telemetry_source: None,
        }
    }
}

/// Achieved figures set against the device's measured peaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Roofline {
    /// The compute peak of the workload's math: the FMA probe's GFLOP/s for SIMT, the matrix
    /// probe's for cooperative matrices (see the workload's math.peak_probe).
    pub peak_gflops: f64,
    /// The bandwidth peak: the GB/s of the probe named in `bandwidth_probe`.
    pub peak_gbps: f64,
    /// achieved_gflops / peak_gflops.
    pub compute_share: f64,
    /// achieved_gbps / peak_gbps.
    pub bandwidth_share: f64,
    /// The probe peak_gbps is from: "probe-read" (a streaming sum) for decode, which mostly
    /// reads; "probe-copy" (read + write) for everything else, and in documents written before
    /// the read probe existed.
    #[serde(default = "copy_probe")]
    pub bandwidth_probe: String,
    /// True when a share exceeds [`Roofline::PLAUSIBLE_SHARE`] (105%): the probe did not reach
    /// the device's peak, so the share is not a fraction of it; `warning` says which.
    #[serde(default)]
    pub exceeds_peak: bool,
    /// What is wrong with the shares when `exceeds_peak` is set; null otherwise.
    #[serde(default)]
    pub warning: Option<String>,
}

fn copy_probe() -> String {
    "probe-copy".into()
}

impl Roofline {
    /// Above this share of a probe's peak, the probe (not the workload) is what fell short.
    pub const PLAUSIBLE_SHARE: f64 = 1.05;

    /// The shares of `achieved` (GFLOP/s, GB/s) in the GFLOP/s of `compute_probe` and the GB/s
    /// of `bandwidth_probe`, flagged when either exceeds [`Self::PLAUSIBLE_SHARE`].
    pub fn new(
        (achieved_gflops, achieved_gbps): (f64, f64),
        (compute_probe, peak_gflops): (&str, f64),
        (bandwidth_probe, peak_gbps): (&str, f64),
    ) -> Self {
        let compute_share = achieved_gflops / peak_gflops;
        let bandwidth_share = achieved_gbps / peak_gbps;
        let over: Vec<String> = [
            ("compute", compute_share, compute_probe),
            ("bandwidth", bandwidth_share, bandwidth_probe),
        ]
        .into_iter()
        .filter(|&(_, share, _)| share > Self::PLAUSIBLE_SHARE)
        .map(|(what, share, probe)| format!("{what} share {:.1}% of {probe}", share * 100.0))
        .collect();
        let warning = (!over.is_empty()).then(|| {
            format!(
                "{}: above {:.0}%, so the probe did not reach the device's peak; the share is not a fraction of the peak",
                over.join(", "),
                Self::PLAUSIBLE_SHARE * 100.0
            )
        });
        Self {
            peak_gflops,
            peak_gbps,
            compute_share,
            bandwidth_share,
            bandwidth_probe: bandwidth_probe.to_string(),
            exceeds_peak: warning.is_some(),
            warning,
        }
    }
}

/// Result of comparing GPU output with a CPU reference computed in f64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Correctness {
    /// Normalised mean squared error: sum((gpu - ref)^2) / sum(ref^2); null if it could not be
    /// computed (NaN or Inf in the output).
    pub nmse: Option<f64>,
    /// Largest absolute difference between GPU and reference values; null as for `nmse`.
    pub max_abs_err: Option<f64>,
    /// What the output was checked against, for example "cpu-f64, all 1048576 outputs".
    pub reference: String,
    /// NMSE at or below which the check passes.
    pub nmse_threshold: f64,
    /// Why the check failed; null when it passed.
    pub failure: Option<String>,
}

impl Correctness {
    /// A workload whose output was not checked because nothing computed it (the mock device):
    /// no figures, and `reference` says why.
    pub fn not_checked(why: &str) -> Self {
        Self {
            nmse: None,
            max_abs_err: None,
            reference: format!("none ({why})"),
            nmse_threshold: 0.0,
            failure: None,
        }
    }
}

/// Summary statistics of duration samples, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Median sample; for a workload with repetitions, the median of the repetitions' median
    /// times (the headline figure).
    pub median_s: f64,
    /// Arithmetic mean.
    pub mean_s: f64,
    /// Sample standard deviation (n - 1 in the denominator).
    pub stddev_s: f64,
    /// Fastest sample.
    pub min_s: f64,
    /// Slowest sample.
    pub max_s: f64,
    /// 10th percentile.
    pub p10_s: f64,
    /// 90th percentile.
    pub p90_s: f64,
    /// Coefficient of variation: stddev / mean.
    pub cv: f64,
    /// Lower end of the 95% confidence interval of the median (distribution-free, from order
    /// statistics); for a workload with repetitions, of the repetitions' medians, so it holds
    /// run-to-run variance (with few repetitions it is their whole range).
    pub ci95_low_s: f64,
    /// Upper end of the 95% confidence interval of the median (as `ci95_low_s`).
    pub ci95_high_s: f64,
    /// Iterations run before sampling, until times plateaued (summed over repetitions).
    pub warmup_iterations: u32,
    /// Every raw sample, in the order taken (every repetition's, one after another); the mean,
    /// standard deviation, extremes, percentiles and CV are over all of them.
    pub samples_s: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::fixtures::run_with_samples;
    use crate::result::io::parse;

    const SCHEMA_PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schema/result-v1.schema.json"
    );

    #[test]
    fn documents_round_trip_through_json() {
        let doc = run_with_samples("node-a", &[1e-3, 1.1e-3, 0.9e-3]);
        let text = serde_json::to_string_pretty(&doc).unwrap();
        assert_eq!(parse(&text).unwrap(), doc);
    }

    #[test]
    fn power_record_constructors_fill_what_their_kind_measures() {
        let d = PowerRecord::declared("declared", Scope::NodeWall, 65.0, 2.0, 3);
        assert_eq!((d.energy_j, d.avg_power_w), (Some(130.0), Some(65.0)));
        assert_eq!(d.provenance, Provenance::Declared);
        assert_eq!(
            (d.idle_power_w, d.dynamic_energy_j, d.reason),
            (None, None, None)
        );
        let c = PowerRecord::counter("rapl", Scope::CpuPackage, 100.0, Some(10.0), 4.0, 5);
        assert_eq!(c.method.as_deref(), Some("counter-delta"));
        assert_eq!(
            (c.avg_power_w, c.dynamic_energy_j),
            (Some(25.0), Some(60.0))
        );
        assert_eq!((c.samples, c.executions, c.window_s), (None, 5, 4.0));
        let coverage = SampleCoverage {
            samples: 40,
            coverage: 1.0,
            max_gap_s: 0.1,
        };
        let s = PowerRecord::sampled("command", Scope::NodeWall, 100.0, None, 4.0, 5, coverage);
        assert_eq!(s.provenance, Provenance::MeasuredSampled);
        assert_eq!(s.method.as_deref(), Some("trapezoid"));
        assert_eq!(
            (s.samples, s.max_gap_s, s.dynamic_energy_j),
            (Some(40), Some(0.1), None)
        );
        let u = PowerRecord::unavailable("no source", 4.0, 5);
        assert_eq!((u.energy_j, u.source, u.scope), (None, None, None));
        assert_eq!(u.reason.as_deref(), Some("no source"));
    }

    #[test]
    fn a_share_above_105_percent_is_flagged_and_named() {
        let fine = Roofline::new((10.0, 104.0), ("probe-fma", 100.0), ("probe-read", 100.0));
        assert!(!fine.exceeds_peak && fine.warning.is_none(), "{fine:?}");
        assert_eq!(fine.bandwidth_probe, "probe-read");
        let over = Roofline::new((10.0, 106.0), ("probe-fma", 100.0), ("probe-read", 100.0));
        assert!(over.exceeds_peak);
        let warning = over.warning.unwrap();
        assert!(
            warning.contains("bandwidth share 106.0% of probe-read")
                && warning.contains("did not reach"),
            "{warning}"
        );
        let compute = Roofline::new((120.0, 1.0), ("probe-fma", 100.0), ("probe-copy", 100.0));
        assert!(compute.exceeds_peak && compute.warning.unwrap().contains("probe-fma"));
    }

    #[test]
    fn a_roofline_written_before_the_read_probe_reads_as_against_the_copy_probe() {
        let old = r#"{"peak_gflops": 1.0, "peak_gbps": 2.0, "compute_share": 0.5, "bandwidth_share": 0.25}"#;
        let r: Roofline = serde_json::from_str(old).unwrap();
        assert_eq!(r.bandwidth_probe, "probe-copy");
        assert!(!r.exceeds_peak && r.warning.is_none());
        let p: Probes = serde_json::from_str(r#"{"fma_gflops": 1.0, "copy_gbps": 2.0}"#).unwrap();
        assert_eq!(p.read_gbps, None);
    }

    #[test]
    fn min_mean_max_of_readings() {
        let s = MinMeanMax::of(&[1500.0, 1410.0, 1980.0, 1410.0]).unwrap();
        assert_eq!((s.min, s.mean, s.max), (1410.0, 1575.0, 1980.0));
        assert_eq!(MinMeanMax::of(&[]), None);
        assert_eq!(MinMeanMax::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn unknown_fields_are_rejected_at_every_level() {
        let doc = serde_json::to_value(run_with_samples("n", &[1.0])).unwrap();
        for pointer in [
            "",
            "/tool",
            "/node",
            "/adapter",
            "/plan",
            "/workloads/0",
            "/workloads/0/stats",
        ] {
            let mut v = doc.clone();
            v.pointer_mut(pointer)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("surprise".into(), 1.into());
            let err = parse(&v.to_string()).unwrap_err();
            assert!(err.contains("surprise"), "{pointer}: {err}");
        }
    }

    #[test]
    fn other_schema_versions_and_other_documents_are_refused() {
        let mut v = serde_json::to_value(run_with_samples("n", &[1.0])).unwrap();
        v["schema_version"] = 99.into();
        assert!(
            parse(&v.to_string())
                .unwrap_err()
                .contains("schema_version 99")
        );
        assert!(
            parse(r#"{"name": "not a result"}"#)
                .unwrap_err()
                .contains("not a tokbench result")
        );
        assert!(parse("{ truncated").unwrap_err().contains("not valid JSON"));
    }

    /// The shipped JSON Schema is generated from these types; regenerate it with
    /// `TOKBENCH_BLESS=1 cargo test --release schema` after changing them.
    #[test]
    fn shipped_json_schema_matches_the_types() {
        let generated =
            serde_json::to_string_pretty(&schemars::schema_for!(RunResult)).unwrap() + "\n";
        if std::env::var_os("TOKBENCH_BLESS").is_some() {
            std::fs::write(SCHEMA_PATH, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
        assert!(
            shipped == generated,
            "schema/result-v1.schema.json is out of date; run TOKBENCH_BLESS=1 cargo test --release schema"
        );
    }

    #[test]
    fn every_public_field_is_documented_in_the_schema() {
        let schema = serde_json::to_value(schemars::schema_for!(RunResult)).unwrap();
        let mut undocumented = Vec::new();
        let mut objects: Vec<(String, serde_json::Value)> = schema["$defs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        objects.push(("RunResult".into(), schema.clone()));
        for (name, def) in &objects {
            for (field, prop) in def["properties"].as_object().into_iter().flatten() {
                if prop.get("description").is_none() {
                    undocumented.push(format!("{name}.{field}"));
                }
            }
        }
        assert!(
            undocumented.is_empty(),
            "fields without doc comments: {undocumented:?}"
        );
    }
}
