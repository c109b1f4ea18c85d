//! `tokbench compare`: rank nodes and fleets from result files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::exit;
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
    /// Energy price per kWh, in any currency: adds an energy cost per million tokens.
    #[arg(long, value_name = "PRICE")]
    price_kwh: Option<f64>,
    /// Hardware prices (JSON, or TOML when it ends in .toml): per node or adapter name, a
    /// purchase price with its lifetime in years, or a rental price per hour.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_parser = super::choices::<CompareFormat>(), default_value = "table")]
    format: CompareFormat,
    /// Write the report to this file (replaced if it exists) instead of stdout.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

/// Loads, compares and writes the report.
pub(super) fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let prices = PriceBook::from_inputs(args.price_kwh, args.prices.as_deref())?;
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
    };
    let report = compare(&loaded, &options)?;
    let text = args.format.render(&report)?;
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
