//! Command-line interface: flags are parsed by clap into the types here, validated into a plan,
//! and handed to the command modules. `main.rs` only maps the outcome to an exit code.

mod accounting;
mod check;
mod compare;
mod devices;
mod execute;
mod list_presets;
mod replicas;
mod serve;
mod signals;
mod table;
mod tune;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::gpu::{AdapterSelector, BackendChoice, DeviceFacts};
use crate::kernels::{KvDtype, WeightDtype};
use crate::model::{ModelShape, Phase, presets};
use crate::power::{PowerOptions, PowerRequest};
use crate::result::Scope;
use crate::result::io::Destination;
use crate::result::{DeviceDefault, SamplePolicy};
use crate::tune::{TuneCache, Tuning};
use crate::workload::plan::{self, ModelRequest};
use tokbench_core::dtype::Formats;
use tokbench_core::kernel_config::{MathRequest, ProductTiles};

/// Prompt length of `run` and `tune` on CPU adapters when none is given.
const DEFAULT_CPU_PROMPT_LEN: u32 = 128;

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    a regression or an invalid result was found, or the run failed (a GPU error, a hung or
       lost device): the workloads finished before it are saved
  2    usage or input error (bad flag, bad file, a size the device cannot hold); nothing measured
  130  interrupted (Ctrl-C, SIGTERM): stopped after the workload in flight, the finished ones
       saved with interrupted: true; a second Ctrl-C exits at once";

/// GPU token-throughput benchmark: tokens/s, tokens/J and cost per token on any GPU.
///
/// tokbench runs transformer-shaped WGSL kernels through wgpu (Vulkan, Metal, DX12, GL; Mesa
/// lavapipe where there is no GPU), checks them against a CPU reference, and writes one
/// versioned JSON result per run.
#[derive(Debug, Parser)]
#[command(name = "tokbench", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every adapter (GPU or software device) wgpu can see.
    Devices(DevicesArgs),
    /// Time one kernel at one shape, check it, and write a result.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Run the benchmark: the two probes, then prefill and decode of a model shape; prints a
    /// table and writes a result.
    Run(RunArgs),
    /// List the model-shape presets.
    Presets(PresetsArgs),
    /// Show the FLOPs and bytes of one pass, op by op and per token, as results count them.
    Accounting(AccountingArgs),
    /// Compare results across nodes: rank them per workload by tokens/s, tokens/J or cost per
    /// million tokens, with each hardware group's spread and slow nodes.
    Compare(compare::CompareArgs),
    /// Gate CI on regressions: compare a current result with a baseline, workload by workload.
    Check(check::CheckArgs),
    /// Tune the kernels for this device and a model shape: check and time every candidate
    /// configuration, print them, and cache the winner for later runs.
    Tune(TuneArgs),
    /// Serve synthetic requests with continuous batching: throughput per GPU against tokens/s
    /// per user, TTFT/TPOT/ITL percentiles and goodput at an SLO, per concurrency, with an
    /// analytic estimate beside each point.
    Serve(serve::ServeArgs),
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
struct TuneArgs {
    /// Model shape preset; by default the one `run` picks for this device.
    #[arg(long, env = "TOKBENCH_PRESET", conflicts_with = "model")]
    preset: Option<String>,
    /// A custom shape, as for `run --model`.
    #[arg(long, value_name = "SHAPE")]
    model: Option<String>,
    /// Weight format: f32, f16, bf16, fp8-e4m3, q8_0, q4_0 or mxfp4 (packed in u32 words, unpacked in registers: any adapter); accumulation is f32. Default: f16 where the adapter has SHADER_F16, else f32.
    #[arg(long)]
    dtype: Option<WeightDtype>,
    /// KV cache format the attention candidates are timed with, as for `run --kv-dtype` (the
    /// cache keeps formats apart). Default: f16 where the adapter has SHADER_F16, else f32.
    #[arg(long)]
    kv_dtype: Option<KvDtype>,
    /// Try only a few candidates, with few timed launches each (what `run` does without a
    /// cache entry).
    #[arg(long)]
    quick: bool,
    /// Math tier of the products: auto (the fastest correct candidate across tiers, checked
    /// then timed), simt (scalar/vector FMA) or coopmat (cooperative matrices, tensor cores:
    /// f16 weights; refused, exit 2, on adapters without them).
    #[arg(long, default_value = "auto", value_name = "auto|simt|coopmat")]
    math: MathRequest,
    /// Phases the run to tune for measures, comma-separated: prefill, decode (tuning is at the
    /// run's shapes, and the cache keeps them apart).
    #[arg(long, value_delimiter = ',', default_value = "prefill,decode", value_parser = parse_phase)]
    phase: Vec<Phase>,
    /// Sequences per pass of the run to tune for; a comma-separated list, like `run`'s.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: Vec<u32>,
    /// Prompt length of the run to tune for [default: `run`'s: 512; 128 on CPU adapters].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    prompt_len: Option<u32>,
    /// Decode depth(s) of the run to tune for; the split of decode attention is chosen at each.
    #[arg(long, value_delimiter = ',', default_value = "512", value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    depth: Vec<u32>,
    /// Adapter to use: an index from `tokbench devices`, or part of its name.
    #[arg(long, env = "TOKBENCH_ADAPTER", value_name = "INDEX|NAME")]
    adapter: Option<String>,
    /// Only consider adapters of this backend: vulkan, metal, dx12 or gl.
    #[arg(long, value_name = "BACKEND")]
    backend: Option<BackendChoice>,
    /// The tuning cache to write (default: ~/.cache/tokbench/tune.json).
    #[arg(long, value_name = "PATH", env = "TOKBENCH_TUNE_CACHE")]
    tune_cache: Option<PathBuf>,
    #[command(flatten)]
    host: HostArgs,
    /// Root of sysfs, where GPUs and CPU caches are looked up (tests point it at fake trees).
    #[arg(
        long,
        hide = true,
        value_name = "DIR",
        env = "TOKBENCH_SYSFS_ROOT",
        default_value = "/sys"
    )]
    sysfs_root: PathBuf,
}

/// How the chosen adapter is checked against the GPUs the host has.
#[derive(Debug, Args)]
struct HostArgs {
    /// Refuse (exit 2) to run on a CPU adapter such as lavapipe: for GPU nodes, where landing
    /// on the CPU means a GPU driver is missing.
    #[arg(long)]
    require_gpu: bool,
    /// Root of the device nodes where GPUs wgpu cannot see are looked for (tests point it at
    /// fake trees).
    #[arg(
        long,
        hide = true,
        value_name = "DIR",
        env = "TOKBENCH_DEV_ROOT",
        default_value = "/dev"
    )]
    dev_root: PathBuf,
}

#[derive(Debug, Args)]
struct AccountingArgs {
    /// Model shape preset.
    #[arg(long, default_value = "llama3-8b-shape")]
    preset: String,
    /// prefill or decode.
    #[arg(long, default_value = "decode", value_parser = parse_phase)]
    phase: Phase,
    /// Sequences per pass.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: u32,
    /// Prompt length (prefill) or KV depth (decode).
    #[arg(long, default_value_t = 512)]
    len: u32,
    /// Weight format (see `run --help`); accounting needs no adapter, so the default is f16,
    /// what a run uses where the adapter has SHADER_F16.
    #[arg(long, default_value = "f16")]
    dtype: WeightDtype,
    /// Format of the routed experts' weights, where it should differ from --dtype (same
    /// choices); mixture-of-experts models only. Default: the format the model ships its
    /// experts in (gpt-oss: mxfp4), else --dtype.
    #[arg(long, value_name = "DTYPE")]
    expert_dtype: Option<WeightDtype>,
    /// KV cache format: f32, f16 or q8_0 (see `run --help`); f16 by default, as for
    /// `--dtype`. Multi-head latent attention's latent cache counts as f32 whatever this says.
    #[arg(long, default_value = "f16")]
    kv_dtype: KvDtype,
}

#[derive(Debug, Args)]
struct PresetsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Only list adapters of this backend: vulkan, metal, dx12 or gl.
    #[arg(long, value_name = "BACKEND")]
    backend: Option<BackendChoice>,
}

#[derive(Debug, Subcommand)]
enum KernelCommand {
    /// Matrix multiply C (m × n) = A (m × k, f32) · B (k × n, --dtype). With cooperative
    /// matrices (--math coopmat, or auto where the adapter has them) the SIMT kernel of the same
    /// dtype is measured too, and the ratio printed.
    #[command(after_help = EXIT_CODES)]
    Matmul {
        /// Rows of A and C.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        m: u32,
        /// Columns of B and C.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        n: u32,
        /// Columns of A, rows of B.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        k: u32,
        /// Format of B. Weight format: f32, f16, bf16, fp8-e4m3, q8_0, q4_0 or mxfp4 (packed in u32 words, unpacked in registers: any adapter); accumulation is f32. Default: f16 where the adapter has SHADER_F16, else f32.
        #[arg(long)]
        dtype: Option<WeightDtype>,
        /// Measure these many-row tiles instead of the tier's choice, as JSON; repeat the flag to
        /// measure several side by side (each workload id names its tiles). For example
        /// '{"tier":"register","wg_x":64,"wg_y":1,"tm":8,"tn":4}',
        /// '{"tier":"workgroup","bm":64,"bn":64,"tm":4,"tn":4}' or
        /// '{"tier":"large","bm":128,"bn":128,"bk":16,"tm":8,"tn":8,"split_k":16}'.
        #[arg(long, value_name = "JSON", value_parser = parse_tiles)]
        tiles: Vec<ProductTiles>,
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// `--tiles`: one [`ProductTiles`] as JSON.
fn parse_tiles(text: &str) -> Result<ProductTiles, String> {
    serde_json::from_str(text).map_err(|e| format!("--tiles {text}: {e}"))
}

/// The model of `run` and `serve`: a preset, an inline shape or a shape file.
#[derive(Debug, Args)]
struct ModelArgs {
    /// Model shape preset (see `tokbench presets`); by default one that suits the device.
    #[arg(long, env = "TOKBENCH_PRESET", conflicts_with_all = ["model", "model_file"])]
    preset: Option<String>,
    /// A custom shape: "d_model=..,n_layers=..,n_heads=..,n_kv_heads=..,head_dim=..,d_ff=..,vocab=..".
    #[arg(long, value_name = "SHAPE", conflicts_with = "model_file")]
    model: Option<String>,
    /// A custom shape from a JSON file with those seven fields.
    #[arg(long, value_name = "PATH")]
    model_file: Option<PathBuf>,
}

impl ModelArgs {
    /// The model these flags name; `None` lets the device choose.
    fn choice(&self) -> anyhow::Result<Option<(String, ModelShape)>> {
        Ok(if let Some(name) = &self.preset {
            let p = presets::find(name)?;
            Some((p.name.to_string(), p.shape))
        } else if let Some(text) = &self.model {
            Some(("custom".to_string(), ModelShape::parse_inline(text)?))
        } else if let Some(path) = &self.model_file {
            Some(("custom".to_string(), ModelShape::from_file(path)?))
        } else {
            None
        })
    }
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Phases to run, comma-separated: prefill, decode.
    #[arg(long, value_delimiter = ',', default_value = "prefill,decode", value_parser = parse_phase)]
    phase: Vec<Phase>,
    /// Sequences per pass (prefill prompts, or decode sequences); a comma-separated list
    /// sweeps, each batch at every depth.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch: Vec<u32>,
    /// Prefill prompt length, in tokens [default: 512; 128 on CPU adapters].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    prompt_len: Option<u32>,
    /// Decode KV depth(s): tokens already in the cache; a comma-separated list sweeps.
    #[arg(long, value_delimiter = ',', default_value = "512", value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    depth: Vec<u32>,
    /// Weight format: f32, f16, bf16, fp8-e4m3, q8_0, q4_0 or mxfp4 (packed in u32 words, unpacked in registers: any adapter); accumulation is f32. Default: f16 where the adapter has SHADER_F16, else f32.
    #[arg(long)]
    dtype: Option<WeightDtype>,
    /// Format of the routed experts' weights, where it should differ from --dtype (same
    /// choices); mixture-of-experts models only. Default: the format the model ships its
    /// experts in (gpt-oss: mxfp4), else --dtype.
    #[arg(long, value_name = "DTYPE")]
    expert_dtype: Option<WeightDtype>,
    /// KV cache format: f32 (32 bits per element), f16 (16, two per u32 word via WGSL's core pack2x16float: any adapter) or q8_0 (8.5: GGUF blocks of 32 int8 along head_dim with one f16 scale, a head_dim that is no multiple of 32 padded with zeros to whole blocks). The RoPE/cache-write kernel rounds or quantizes k and v into it; both attention kernels unpack it in registers and accumulate in f32. Default: f16 where the adapter has SHADER_F16, else f32. MLA presets keep their latent cache in f32 and refuse the others. A format other than f16 is named in the workload ids ("-kvq8_0", "-kvf32").
    #[arg(long)]
    kv_dtype: Option<KvDtype>,
    /// Run only the first N layers (recorded in the result).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    layers: Option<u32>,
    /// Device memory to plan for, in GiB (wgpu cannot report a GPU's memory).
    #[arg(long, value_name = "GIB", value_parser = parse_gib)]
    device_memory_gib: Option<f64>,
    /// Use the tier's default kernel configuration instead of a tuned one (by default the
    /// tuning cache, or a quick tune saved there).
    #[arg(long)]
    no_tune: bool,
    #[command(flatten)]
    common: CommonArgs,
}

/// Flags shared by every command that measures.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Math tier of the products: auto (the fastest correct candidate across tiers, checked
    /// then timed), simt (scalar/vector FMA) or coopmat (cooperative matrices, tensor cores:
    /// f16 weights; refused, exit 2, on adapters without them).
    #[arg(long, default_value = "auto", value_name = "auto|simt|coopmat")]
    math: MathRequest,
    /// Adapter to use: an index from `tokbench devices`, or part of its name; `all` or a list
    /// ("0,1") (run and kernel) measures every GPU of the node, or those listed, all at once:
    /// one process per GPU, each with its own device and result, and a node summary beside
    /// them.
    #[arg(long, env = "TOKBENCH_ADAPTER", value_name = "INDEX|NAME|all|LIST")]
    adapter: Option<String>,
    /// Only consider adapters of this backend: vulkan, metal, dx12 or gl.
    #[arg(long, value_name = "BACKEND")]
    backend: Option<BackendChoice>,
    /// Take at least this many timed samples per workload [default: 10; 3 on CPU adapters,
    /// where a prefill pass takes seconds: short workloads still sample for --min-time].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    samples: Option<u32>,
    /// And sample for at least this many seconds per workload.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_seconds)]
    min_time: f64,
    /// Measure every workload this many times, interleaved (all workloads, then all again), each
    /// repetition with its own warm-up, samples and statistics in the result; the headline
    /// figures are the repetitions' medians. 3 or more on both sides let `check` see run-to-run
    /// variance.
    #[arg(long, value_name = "N", env = "TOKBENCH_REPEAT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Stop warming up after this many seconds even if times have not settled [default: 5; 2
    /// on CPU adapters].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    max_warmup: Option<f64>,
    /// Run each workload's timed phase for at least this many seconds of wall time and record
    /// the drift of throughput and power between its first and last tenth (throttling).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    sustain_s: Option<f64>,
    /// Treat a GPU wait longer than this as a hung device: the workload fails with an error
    /// naming it, the finished ones stay saved, exit code 1.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0, value_parser = parse_timeout)]
    timeout_s: f64,
    #[command(flatten)]
    power: PowerArgs,
    /// The tuning cache (default: ~/.cache/tokbench/tune.json).
    #[arg(long, value_name = "PATH", env = "TOKBENCH_TUNE_CACHE")]
    tune_cache: Option<PathBuf>,
    #[command(flatten)]
    host: HostArgs,
    /// Keep wgpu's runtime bounds checks (and zeroed workgroup memory) in every shader; by
    /// default kernels whose geometry keeps every access in bounds run without them.
    #[arg(long)]
    checked_shaders: bool,
    /// Run on the mock device instead of a GPU (tokbench's own tests): instant, sleep or hang.
    /// Nothing runs; results say `timing_method: mock`.
    #[arg(long, hide = true, env = "TOKBENCH_MOCK_DEVICE", value_name = "MODE")]
    mock_device: Option<crate::gpu::MockMode>,
    /// Write the result to exactly this file (it must not exist).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Also print the result document as one JSON line on stdout (the table goes to stderr),
    /// for log collectors: `kubectl logs ... > fleet.jsonl`.
    #[arg(long)]
    jsonl: bool,
    /// Directory for generated result paths: <DIR>/<hostname>/<UTC time>-<adapter>.json.
    #[arg(
        long,
        value_name = "DIR",
        env = "TOKBENCH_RESULTS_DIR",
        default_value = "results"
    )]
    results_dir: PathBuf,
}

/// How power is measured.
#[derive(Debug, Args)]
#[command(next_help_heading = "Power")]
struct PowerArgs {
    /// Power source: auto, nvml, hwmon, rapl, command, declared or none. auto takes the best
    /// for the adapter (NVML for NVIDIA, hwmon for Intel/AMD GPUs), then RAPL, then --power-cmd
    /// or --watts; naming a source that cannot work here is a usage error.
    #[arg(long, value_name = "SOURCE")]
    power_source: Option<PowerRequest>,
    /// Declared power in watts (provenance "declared", not measured); implies
    /// --power-source declared.
    #[arg(long, value_name = "W", allow_negative_numbers = true)]
    watts: Option<f64>,
    /// A command printing the current power in watts (a wall meter, a PDU, `ipmitool dcmi power
    /// reading` through a script), sampled; implies --power-source command.
    #[arg(long, value_name = "CMD")]
    power_cmd: Option<String>,
    /// What --power-cmd or --watts covers: node-wall, gpu-board, gpu-package, cpu-package or
    /// other.
    #[arg(long, value_name = "SCOPE", default_value = "node-wall", value_parser = parse_scope)]
    power_scope: Scope,
    /// Samples per second of sampled sources.
    #[arg(long, value_name = "HZ", default_value_t = 10.0)]
    power_hz: f64,
    /// Seconds of idle power measured before the workloads, with the same source (0 skips).
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    idle_s: f64,
    /// Sample each workload for at least this many seconds, so slow power sources (NVML
    /// averages over 1 s) give a trustworthy figure.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    min_energy_s: f64,
    /// Root of sysfs, where hwmon and RAPL are read (tests point it at fake trees).
    #[arg(
        long,
        value_name = "DIR",
        env = "TOKBENCH_SYSFS_ROOT",
        default_value = "/sys"
    )]
    sysfs_root: PathBuf,
    /// Path of the NVML library (default: the system's libnvidia-ml).
    #[arg(long, value_name = "PATH")]
    nvml_lib: Option<PathBuf>,
}

impl PowerArgs {
    /// The power options; `--watts` and `--power-cmd` imply their source unless one is named.
    fn options(&self) -> PowerOptions {
        let requested = self.power_source.unwrap_or(if self.power_cmd.is_some() {
            PowerRequest::Command
        } else if self.watts.is_some() {
            PowerRequest::Declared
        } else {
            PowerRequest::Auto
        });
        PowerOptions {
            requested,
            watts: self.watts,
            command: self.power_cmd.clone(),
            command_scope: self.power_scope,
            sysfs_root: self.sysfs_root.clone(),
            hz: self.power_hz,
            idle_s: self.idle_s,
            min_energy_s: self.min_energy_s,
            nvml_library: self.nvml_lib.clone(),
            command_timeout_s: None,
        }
    }
}

/// A clap parser for one of the core's enums: names and aliases from strum, each with its doc
/// comment as help (the core knows no clap, so the choices are built here).
fn choices<T>() -> impl clap::builder::TypedValueParser<Value = T>
where
    T: strum::IntoEnumIterator
        + strum::EnumMessage
        + std::str::FromStr
        + Clone
        + Send
        + Sync
        + 'static,
{
    let values = T::iter().map(|v| {
        let names = v.get_serializations();
        clap::builder::PossibleValue::new(names[0])
            .aliases(names[1..].iter().copied())
            .help(v.get_documentation().unwrap_or_default())
    });
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(values).map(|name| {
        name.parse::<T>()
            .unwrap_or_else(|_| unreachable!("{name} is one of the listed names"))
    })
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!("{s:?} is not a scope: use node-wall, gpu-board, gpu-package, cpu-package or other")
    })
}

impl CommonArgs {
    /// The kernel configuration to measure with: the tier's defaults with `--no-tune`, else
    /// the tuning cache's.
    fn tuning(&self, no_tune: bool) -> Tuning {
        if no_tune {
            return Tuning::Defaults;
        }
        match self.tune_cache.clone().or_else(TuneCache::default_path) {
            Some(path) => Tuning::Cached(path),
            None => Tuning::Uncached,
        }
    }

    /// `--adapter all` or a list: one replica per adapter, all at once; the value as given.
    fn replicas(&self) -> Option<&str> {
        self.adapter
            .as_deref()
            .filter(|a| a.eq_ignore_ascii_case("all") || a.contains(','))
    }

    fn selector(&self) -> AdapterSelector {
        AdapterSelector {
            adapter: self.adapter.clone(),
            backend: self.backend,
        }
    }

    /// The sampling policy on `device`, and the settings chosen for it because none was given.
    fn policy(&self, device: &DeviceFacts) -> (SamplePolicy, Vec<DeviceDefault>) {
        let mut chosen = Vec::new();
        let min_samples = device_default(
            self.samples,
            device,
            (10, 3),
            "--samples",
            "CPU adapter: a prefill pass of a real model's shape takes seconds, so 3 samples of it (workloads shorter than --min-time still sample for that long)",
            &mut chosen,
        );
        let max_warmup_s = device_default(
            self.max_warmup,
            device,
            (5.0, 2.0),
            "--max-warmup",
            "CPU adapter: one warm-up pass of a seconds-long prefill; short workloads plateau well within 2 s",
            &mut chosen,
        );
        let policy = SamplePolicy {
            min_samples,
            min_time_s: self.min_time,
            max_warmup_s,
            sustain_s: self.sustain_s,
        };
        (policy, chosen)
    }

    fn destination(&self) -> Destination {
        match &self.out {
            Some(path) => Destination::Exact(path.clone()),
            None => Destination::Generated {
                results_dir: self.results_dir.clone(),
            },
        }
    }
}

/// `given` when the user gave it, else the default for the device: `(gpu, cpu)`. A CPU default
/// that differs from the GPU one is recorded in `chosen` with `reason`.
fn device_default<T: PartialEq + Copy + std::fmt::Display>(
    given: Option<T>,
    device: &DeviceFacts,
    (gpu, cpu): (T, T),
    flag: &str,
    reason: &str,
    chosen: &mut Vec<DeviceDefault>,
) -> T {
    if let Some(v) = given {
        return v;
    }
    if device.is_cpu() && cpu != gpu {
        chosen.push(DeviceDefault {
            flag: flag.into(),
            value: cpu.to_string(),
            reason: format!("{reason}; give {flag} to choose"),
        });
        cpu
    } else {
        gpu
    }
}

/// `items` without repeats, in first-seen order (`--depth 128,512,128` runs two depths).
fn first_of_each<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for &x in items {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn parse_phase(s: &str) -> Result<Phase, String> {
    match s.trim() {
        "prefill" => Ok(Phase::Prefill),
        "decode" => Ok(Phase::Decode),
        other => Err(format!(
            "{other:?} is not a phase: use prefill, decode or both"
        )),
    }
}

fn parse_gib(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e6 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of GiB")),
    }
}

/// `gib` GiB (as [`parse_gib`] reads them) in bytes.
fn gib_bytes(gib: f64) -> u64 {
    (gib * f64::from(1u32 << 30)) as u64
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match parse_seconds(s)? {
        0.0 => Err("the timeout must be more than 0 seconds".into()),
        v => Ok(v),
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} must be between 0 and 86400 seconds"))
    }
}

/// Runs the parsed command line; the exit code says how it went.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Devices(args) => devices::run(args.json, args.backend),
        Command::Presets(args) => list_presets::run(args.json),
        Command::Compare(args) => compare::run(args),
        Command::Check(args) => check::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Tune(a) => {
            let selector = AdapterSelector {
                adapter: a.adapter.clone(),
                backend: a.backend,
            };
            // No preset: `tune::run` picks the one `run` would, once the device is open.
            let model = match (&a.preset, &a.model) {
                (_, Some(text)) => Some(("custom".to_string(), ModelShape::parse_inline(text)?)),
                (Some(name), None) => {
                    let p = presets::find(name)?;
                    Some((p.name.to_string(), p.shape))
                }
                (None, None) => None,
            };
            let effort = if a.quick {
                crate::tune::Effort::Quick
            } else {
                crate::tune::Effort::Full
            };
            let runs = tune::RunShapes {
                phases: first_of_each(&a.phase),
                batches: first_of_each(&a.batch),
                prompt_len: a.prompt_len,
                depths: first_of_each(&a.depth),
            };
            tune::run(
                &selector,
                model,
                (a.dtype, a.kv_dtype, a.math),
                effort,
                &runs,
                a.tune_cache.clone().or_else(TuneCache::default_path),
                &a.host,
                &a.sysfs_root,
            )
        }
        Command::Accounting(a) => {
            let p = presets::find(&a.preset)?;
            let pass = crate::model::Pass {
                phase: a.phase,
                batch: a.batch,
                len: a.len,
            };
            let formats = Formats::for_model(
                &p.shape,
                (a.dtype, a.kv_dtype),
                a.expert_dtype,
                p.expert_dtype,
            )?;
            accounting::run(p.name, p.shape, formats, pass)
        }
        Command::Kernel(KernelCommand::Matmul {
            m,
            n,
            k,
            dtype,
            tiles,
            common,
        }) => {
            let math = common.math;
            execute::run_workloads("kernel", &common, |device| {
                let facts = device.facts();
                let (dtype, dtype_note) = plan::resolve_dtype(dtype, &facts)?;
                let shape = (m as usize, n as usize, k as usize);
                let workloads = if tiles.is_empty() {
                    crate::workload::matmul::MatmulWorkload::for_math(
                        device,
                        shape,
                        Some(dtype),
                        math,
                    )?
                } else {
                    tiles
                        .iter()
                        .map(|&t| {
                            crate::workload::matmul::MatmulWorkload::with_tiles(
                                &facts,
                                shape,
                                Some(dtype),
                                t,
                            )
                        })
                        .collect::<anyhow::Result<_>>()?
                };
                // auto without cooperative matrices says why it measured SIMT only.
                let notes = dtype_note
                    .into_iter()
                    .chain(
                        workloads
                            .iter()
                            .map(|w| &w.math.reason)
                            .filter(|r| r.starts_with("auto: SIMT"))
                            .map(|r| format!("--math {r}")),
                    )
                    .collect();
                Ok(crate::runner::Planned {
                    workloads: workloads
                        .into_iter()
                        .map(|w| Box::new(w) as Box<dyn crate::workload::Workload>)
                        .collect(),
                    notes,
                    ..Default::default()
                })
            })
        }
        Command::Run(args) => {
            let mut request = args.model_request()?;
            execute::run_workloads("run", &args.common, |device| {
                let mut chosen = Vec::new();
                request.prompt_len = device_default(
                    args.prompt_len,
                    &device.facts(),
                    (512, DEFAULT_CPU_PROMPT_LEN),
                    "--prompt-len",
                    "CPU adapter: a 512-token prefill of a real model's shape takes about 20 s a pass on lavapipe; 128 tokens keep the first run near a minute",
                    &mut chosen,
                );
                let planned = plan::plan(device, &request, &mut |m| eprintln!("tokbench: {m}"))?;
                if planned.config_source.starts_with("quick tune") {
                    chosen.push(DeviceDefault {
                        flag: "tokbench tune".into(),
                        value: "quick".into(),
                        reason: "no tuning cache entry for this device and these shapes: a quick tune at the run's shapes (at most 3 timed launches per candidate, fewer for long ones; no subgroup GEMVs on CPU adapters); run `tokbench tune` with the same shapes for a full one, or give --no-tune".into(),
                    });
                }
                Ok(crate::runner::Planned {
                    workloads: planned.with_probes(&device.facts()),
                    model: Some(planned.plan),
                    kernel_config: Some(planned.config),
                    kernel_config_source: Some(planned.config_source),
                    notes: planned.notes,
                    device_defaults: chosen,
                    adapter_warnings: Vec::new(),
                })
            })
        }
    }
}

impl RunArgs {
    /// The model part of the plan, validated as far as it can be without a device.
    fn model_request(&self) -> anyhow::Result<ModelRequest> {
        let model = self.model.choice()?;
        if let Some((_, shape)) = &model {
            Formats::check_experts_flag(shape, self.expert_dtype)?;
        }
        Ok(ModelRequest {
            model,
            phases: first_of_each(&self.phase),
            batches: first_of_each(&self.batch),
            // Set once the device is known (its default depends on the adapter).
            prompt_len: self.prompt_len.unwrap_or(512),
            depths: first_of_each(&self.depth),
            dtype: self.dtype,
            expert_dtype: self.expert_dtype,
            kv_dtype: self.kv_dtype,
            layers: self.layers,
            memory_bytes: self.device_memory_gib.map(gib_bytes),
            tuning: self.common.tuning(self.no_tune),
            math: self.common.math,
            cpu_cache_bytes: crate::node::largest_cpu_cache_bytes(&self.common.power.sysfs_root),
        })
    }
}
