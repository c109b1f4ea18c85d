//! Command-line interface: flags are parsed by clap into the types here, validated into a plan,
//! and handed to the command modules. `main.rs` only maps the outcome to an exit code.

mod devices;
mod execute;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::gpu::{AdapterSelector, BackendChoice};
use crate::result::SamplePolicy;
use crate::result::io::Destination;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a regression or an invalid result was found, or the run failed
  2  usage or input error (bad flag, bad file, a size the device cannot hold); nothing measured";

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
    /// Run the benchmark: a default set of workloads; prints a table and writes a result.
    Run(RunArgs),
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
    /// f32 matrix multiply C (m × n) = A (m × k) · B (k × n).
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
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Flags shared by every command that measures.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Adapter to use: an index from `tokbench devices`, or part of its name.
    #[arg(long, env = "TOKBENCH_ADAPTER", value_name = "INDEX|NAME")]
    adapter: Option<String>,
    /// Only consider adapters of this backend: vulkan, metal, dx12 or gl.
    #[arg(long, value_name = "BACKEND")]
    backend: Option<BackendChoice>,
    /// Take at least this many timed samples per workload.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    samples: u32,
    /// And sample for at least this many seconds per workload.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_seconds)]
    min_time: f64,
    /// Stop warming up after this many seconds even if times have not settled.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = parse_seconds)]
    max_warmup: f64,
    /// Write the result to exactly this file (it must not exist).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Directory for generated result paths: <DIR>/<hostname>/<UTC time>-<adapter>.json.
    #[arg(
        long,
        value_name = "DIR",
        env = "TOKBENCH_RESULTS_DIR",
        default_value = "results"
    )]
    results_dir: PathBuf,
}

impl CommonArgs {
    fn selector(&self) -> AdapterSelector {
        AdapterSelector {
            adapter: self.adapter.clone(),
            backend: self.backend,
        }
    }

    fn policy(&self) -> SamplePolicy {
        SamplePolicy {
            min_samples: self.samples,
            min_time_s: self.min_time,
            max_warmup_s: self.max_warmup,
        }
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
        Command::Kernel(KernelCommand::Matmul { m, n, k, common }) => {
            let workload = crate::workload::matmul::MatmulWorkload {
                m: m as usize,
                n: n as usize,
                k: k as usize,
            };
            execute::run_workloads("kernel", &common, vec![Box::new(workload)])
        }
        Command::Run(args) => execute::run_workloads("run", &args.common, default_workloads()),
    }
}

/// `tokbench run` for now: a few matmul shapes, one of them a decode-like GEMV and one that
/// divides no tile.
fn default_workloads() -> Vec<Box<dyn crate::workload::Workload>> {
    use crate::workload::matmul::MatmulWorkload;
    [
        (256, 256, 256),
        (512, 512, 512),
        (1, 4096, 4096),
        (127, 255, 63),
    ]
    .into_iter()
    .map(|(m, n, k)| Box::new(MatmulWorkload { m, n, k }) as Box<dyn crate::workload::Workload>)
    .collect()
}
