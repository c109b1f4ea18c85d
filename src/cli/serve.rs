//! `tokbench serve`: flags, progress bars and the table of points.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{CommonArgs, EXIT_CODES, table};
use crate::exit;

use crate::kernels::{KvDtype, WeightDtype};
use crate::power::{AdapterIdentity, PowerMeter};
use crate::result::{PointSource, RunResult, ServingPoint};
use crate::serve::{ServeObserver, ServeRequest};
use crate::workload::plan::ModelRequest;

/// Flags of `tokbench serve`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    model: super::ModelArgs,
    /// Request lengths by name: chat (1k/1k), reasoning (1k/8k), summarize (8k/1k); --isl and
    /// --osl override either length.
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Prompt tokens per request (input sequence length); default 1024 (chat).
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    isl: Option<u32>,
    /// Output tokens per request, the first included; default 1024 (chat).
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    osl: Option<u32>,
    /// Request slots, each with its own KV cache; a comma-separated list runs one point each.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16", value_parser = clap::value_parser!(u32).range(0..=4096))]
    concurrency: Vec<u32>,
    /// Concurrencies to estimate only (analytic, from isolated measurements; not executed).
    #[arg(long, value_name = "C,...", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(0..=65536))]
    estimate: Vec<u32>,
    /// Requests each point completes; default 10 per slot on GPUs, 1 per slot on CPU adapters.
    #[arg(long, value_name = "N", conflicts_with = "duration", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    requests: Option<u32>,
    /// Run each point for this many engine seconds instead of a request count (requests still
    /// running at the end count for throughput and TTFT, not for TPOT and end-to-end latency).
    #[arg(long, value_name = "SECONDS", value_parser = super::parse_timeout)]
    duration: Option<f64>,
    /// Tokens one engine step may process: a row per decoding request, the rest for one
    /// prefill chunk (vLLM's max_num_batched_tokens).
    #[arg(long, value_name = "TOKENS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65536))]
    step_tokens: u32,
    /// Latency objectives for goodput, judged at p99: ttft=2000ms,tpot=100ms, or a named
    /// MLPerf set (llama3.1-8b-server, llama3.1-8b-interactive, llama2-70b-server, ...).
    #[arg(long, value_name = "SLO")]
    slo: Option<String>,
    /// Weight format: f32, f16, bf16, fp8-e4m3, q8_0, q4_0 or mxfp4
    /// (packed in u32 words, unpacked in registers: any adapter); accumulation is f32. Default:
    /// f16 where the adapter has SHADER_F16, else f32.
    #[arg(long)]
    dtype: Option<WeightDtype>,
    /// KV cache format of every slot: f32, f16 or q8_0 (see `run --help`). Default: f16 where
    /// the adapter has SHADER_F16, else f32.
    #[arg(long)]
    kv_dtype: Option<KvDtype>,
    /// Run only the first N layers (recorded in the result).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    layers: Option<u32>,
    /// Device memory to plan for, in GiB (wgpu cannot report a GPU's memory).
    #[arg(long, value_name = "GIB", value_parser = super::parse_gib)]
    device_memory_gib: Option<f64>,
    /// Use the tier's default kernel configuration instead of a tuned one.
    #[arg(long)]
    no_tune: bool,
    #[command(flatten)]
    common: CommonArgs,
}

impl ServeArgs {
    /// The serving request, validated without a device.
    fn request(&self) -> anyhow::Result<ServeRequest> {
        let base = match &self.scenario {
            Some(name) => Some(crate::serving::scenario(name)?),
            None => None,
        };
        let chat = crate::serving::scenario("chat")?;
        let isl = self.isl.or(base.map(|s| s.isl)).unwrap_or(chat.isl);
        let osl = self.osl.or(base.map(|s| s.osl)).unwrap_or(chat.osl);
        let scenario = match base {
            Some(s) if s.isl == isl && s.osl == osl => s.name.to_string(),
            _ if self.scenario.is_none() && self.isl.is_none() && self.osl.is_none() => {
                "chat".into()
            }
            _ => "custom".into(),
        };
        let slo = match &self.slo {
            Some(text) => Some(crate::serving::slo::parse(text)?),
            None => None,
        };
        let req = ServeRequest {
            scenario,
            isl,
            osl,
            concurrency: super::first_of_each(&self.concurrency),
            estimate_only: super::first_of_each(&self.estimate)
                .into_iter()
                .filter(|c| !self.concurrency.contains(c))
                .collect(),
            requests: self.requests,
            duration_s: self.duration,
            step_tokens: self.step_tokens,
            slo,
        };
        req.validate()?;
        Ok(req)
    }

    fn model_request(&self) -> anyhow::Result<ModelRequest> {
        Ok(ModelRequest {
            model: self.model.choice()?,
            phases: Vec::new(),
            batches: vec![1],
            prompt_len: 1,
            depths: Vec::new(),
            dtype: self.dtype,
            expert_dtype: None,
            kv_dtype: self.kv_dtype,
            layers: self.layers,
            memory_bytes: self.device_memory_gib.map(super::gib_bytes),
            tuning: self.common.tuning(self.no_tune),
            math: self.common.math,
            cpu_cache_bytes: crate::node::largest_cpu_cache_bytes(&self.common.power.sysfs_root),
        })
    }
}

/// Runs `tokbench serve`.
pub(super) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Everything that needs no device first: bad input costs nothing.
    let req = args.request()?;
    let model_req = args.model_request()?;
    let common = &args.common;
    let options = common.power.options();
    options.validate()?;
    common
        .destination()
        .preflight(&crate::node::hostname(), 64 << 10)?;
    // A hidden GPU is said loudly, and --require-gpu refuses a CPU adapter, as in `run`.
    let (device, adapter_warnings) = super::execute::open_device(common)?;
    let mut meter = PowerMeter::open(&options, &AdapterIdentity::from_wgpu(&device.facts().info))?;
    let outcome = crate::serve::run(
        device,
        &model_req,
        &req,
        &common.destination(),
        &mut meter,
        &adapter_warnings,
        Some(super::signals::stop_flag()),
        &mut Bars::default(),
        &mut |m| eprintln!("tokbench: {m}"),
    )?;
    let doc = &outcome.document;
    let text = points_table(doc);
    if common.jsonl {
        eprintln!("{text}");
        eprintln!("result: {}", outcome.path.display());
        println!("{}", serde_json::to_string(doc)?);
    } else {
        println!("{text}");
        println!("result: {}", outcome.path.display());
    }
    if outcome.interrupted {
        eprintln!(
            "tokbench: interrupted; the finished points are saved in {}",
            outcome.path.display()
        );
        return Ok(ExitCode::from(exit::INTERRUPTED));
    }
    Ok(ExitCode::from(exit::OK))
}

/// The points as a table, then the frontier, goodput and estimate gaps.
fn points_table(doc: &RunResult) -> String {
    let Some(s) = &doc.serving else {
        return String::new();
    };
    let mut t = table::new(&[
        "concurrency",
        "figures",
        "requests",
        "out tok/s/GPU",
        "tok/s/user",
        "TTFT p50",
        "TTFT p99",
        "TPOT p50",
        "TPOT p99",
        "ITL p99",
        "e2e p50",
        "W",
        "J/out tok",
        "meets SLO",
    ]);
    let ms = |p: Option<crate::result::Percentiles>, f: fn(&crate::result::Percentiles) -> f64| {
        p.map_or("-".to_string(), |p| table::format_duration(f(&p)))
    };
    for p in &s.points {
        t.add_row(vec![
            table::num(p.concurrency),
            comfy_table::Cell::new(match p.source {
                PointSource::Executed => "executed",
                PointSource::Estimated => "estimated",
            }),
            table::num(p.requests_completed),
            table::num(format!("{:.2}", p.output_tokens_per_s_per_gpu)),
            table::num(format!("{:.2}", p.tokens_per_s_per_user)),
            table::num(ms(p.ttft, |p| p.p50_s)),
            table::num(ms(p.ttft, |p| p.p99_s)),
            table::num(ms(p.tpot, |p| p.p50_s)),
            table::num(ms(p.tpot, |p| p.p99_s)),
            table::num(ms(p.itl, |p| p.p99_s)),
            table::num(ms(p.e2e, |p| p.p50_s)),
            table::num(p.avg_power_w.map_or("-".into(), |w| format!("{w:.1}"))),
            table::num(
                p.energy_per_output_token_j
                    .map_or("-".into(), |j| format!("{j:.3}")),
            ),
            comfy_table::Cell::new(match p.meets_slo {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }),
        ]);
    }
    let mut out = format!(
        "{} {}/{} tokens, step budget {} tokens\n{t}",
        s.scenario, s.isl_tokens, s.osl_tokens, s.step_token_budget
    );
    out.push_str(&format!(
        "\nPareto frontier (executed): concurrency {:?}",
        s.frontier_concurrencies
    ));
    if let Some(slo) = &s.slo {
        out.push_str(&match &s.goodput {
            Some(g) => format!(
                "\ngoodput at {}: concurrency {}, {:.2} output tok/s per GPU",
                slo.name, g.concurrency, g.output_tokens_per_s_per_gpu
            ),
            None => format!("\ngoodput at {}: no executed point meets it", slo.name),
        });
    }
    for g in &s.estimate_gaps {
        out.push_str(&format!(
            "\nestimate vs executed at concurrency {}: {:.2} vs {:.2} tok/s ({:+.1}%)",
            g.concurrency,
            g.estimated_tokens_per_s,
            g.executed_tokens_per_s,
            g.relative_gap * 100.0
        ));
    }
    out
}

/// One progress bar per point on stderr, with an ETA (hidden when stderr is not a terminal).
#[derive(Default)]
struct Bars {
    bar: Option<ProgressBar>,
}

impl ServeObserver for Bars {
    fn begin(&mut self, doc: &RunResult, path: &Path, notes: &[String]) {
        super::execute::announce(doc, path, notes);
    }

    fn stage(&mut self, what: &str) {
        eprintln!("tokbench: {what}");
    }

    fn point(&mut self, index: usize, total: usize, c: u32) {
        let bar = ProgressBar::new(1000).with_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {percent}% {msg} {elapsed} (ETA {eta})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("[{}/{total}] concurrency {c}", index + 1));
        self.bar = Some(bar);
    }

    fn progress(&mut self, fraction: f64, completed: u32) {
        if let Some(bar) = &self.bar {
            bar.set_position((fraction * 1000.0) as u64);
            bar.set_message(format!("{completed} requests done"));
        }
    }

    fn finished(&mut self, p: &ServingPoint) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "tokbench: concurrency {}: {:.2} output tok/s per GPU, {:.2} tok/s per user",
            p.concurrency, p.output_tokens_per_s_per_gpu, p.tokens_per_s_per_user
        );
    }
}
