//! `tokbench compare`: rank nodes and fleets from result files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::exit;
use crate::report::cost::CostFlags;
use crate::report::export::write_output;
use crate::report::{CompareFormat, CompareOptions, Metric, PriceBook, compare, load_paths};

pub(super) const EXIT_CODES: &str = "\
Exit codes:
  0  compared (skipped files, if any, are listed)
  1  an invalid result (failed correctness check) was found; it is left out of the rankings
  2  usage or input error: nothing could be compared (no readable result, no prefill or
     decode workload), a bad prices file or flag";

/// Flags of `tokbench compare`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(super) struct CompareArgs {
    /// Result files, directories (read recursively) and JSON-lines files (one result per line).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Rank by this [default: tokens_per_j where every result of a workload has a comparable
    /// figure, else tokens_per_s].
    #[arg(long, value_parser = super::choices::<Metric>())]
    metric: Option<Metric>,
    /// Flat energy price per kWh, in any currency: adds an energy cost per million tokens
    /// (replaces the prices file's price or time-of-use schedule).
    #[arg(long, value_name = "PRICE")]
    price_kwh: Option<f64>,
    /// Prices file (JSON, or TOML when it ends in .toml): energy price or time-of-use schedule,
    /// run hours, PUE or provisioned kW per GPU, carbon intensity, named hardware tiers, and
    /// hardware prices per node or adapter (purchase over a lifetime, rental per hour, or a
    /// tier). See the README's Cost section.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Power usage effectiveness of the site (1.0 or more): energy cost and carbon are counted
    /// from measured power × PUE [default: the prices file's, else 1.0].
    #[arg(long, value_name = "PUE")]
    pue: Option<f64>,
    /// All-in provisioned power per GPU in kW, facility included (InferenceX publishes 1.73 for
    /// H100/H200, 2.17 for B200, 1.79 for MI300X): energy is counted from it and the run time,
    /// not from measured power. Not with --pue.
    #[arg(long, value_name = "KW")]
    provisioned_kw_per_gpu: Option<f64>,
    /// Hours of the day the node runs, whole hours ("0-8,22-24"): the price paid is the
    /// time-of-use schedule's mean over them, and hardware paid around the clock is spread
    /// over the tokens of these hours only [default: all day].
    #[arg(long, value_name = "RANGES")]
    run_hours: Option<String>,
    /// A hardware tier of the prices file that prices every node without its own entry.
    #[arg(long, value_name = "NAME")]
    tier: Option<String>,
    /// Rank serving results (`tokbench serve`) by output tokens/s per GPU at this many tokens/s
    /// per user or more, interpolated on each node's Pareto frontier [default: by goodput at
    /// each result's SLO].
    #[arg(long, value_name = "TOK_PER_S_PER_USER", value_parser = parse_interactivity)]
    at_interactivity: Option<f64>,
    /// Output format.
    #[arg(long, value_parser = super::choices::<CompareFormat>(), default_value = "table")]
    format: CompareFormat,
    /// Write the report to this file (replaced if it exists) instead of stdout. With
    /// `--format card`, a path ending in .html or .htm gets the HTML page, any other the JSON
    /// card (stdout gets the JSON).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

/// Loads, compares and writes the report.
pub(super) fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let flags = CostFlags {
        price_kwh: args.price_kwh,
        pue: args.pue,
        provisioned_kw_per_gpu: args.provisioned_kw_per_gpu,
        run_hours: args.run_hours.clone(),
        tier: args.tier.clone(),
    };
    let prices = PriceBook::from_inputs(&flags, args.prices.as_deref())?;
    if args.metric == Some(Metric::CostPerMtok) && prices.is_none() {
        return Err(crate::InputError::new(
            "--metric cost_per_mtok needs prices: give --price-kwh and/or --prices FILE",
        )
        .into());
    }
    let loaded = load_paths(&args.paths);
    let options = CompareOptions {
        metric: args.metric,
        prices,
        at_interactivity: args.at_interactivity,
    };
    let report = compare(&loaded, &options)?;
    let text = args.format.render_for(&report, args.out.as_deref())?;
    write_output(args.out.as_deref(), &text)?;
    // Table and Markdown on stdout list skipped files themselves; elsewhere, say so on stderr.
    let listed =
        args.out.is_none() && matches!(args.format, CompareFormat::Table | CompareFormat::Md);
    if !listed {
        for line in loaded.skipped_lines() {
            eprintln!("skipped {}", crate::report::export::clean(&line));
        }
        if let Some(out) = &args.out {
            eprintln!("report: {}", out.display());
        }
    }
    if report.found_invalid() {
        eprintln!(
            "invalid results found (failed their correctness check); they are left out of the rankings"
        );
        Ok(ExitCode::from(exit::FAILURE))
    } else {
        Ok(ExitCode::from(exit::OK))
    }
}

fn parse_interactivity(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a positive number of tokens/s per user"
        )),
    }
}
