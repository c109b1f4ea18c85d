//! `tokbench check`: the CI regression gate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::exit;
use crate::report::export::write_output;
use crate::report::{CheckFormat, CheckMetric, CheckOptions, check, load_one, scale_times};

pub(super) const EXIT_CODES: &str = "\
Exit codes:
  0  no regression (inconclusive verdicts included, unless --strict)
  1  a regression, a current workload that failed its correctness check, or (with --strict)
     an inconclusive verdict
  2  usage or input error: a missing or malformed file, different hardware (without
     --allow-different-hardware), a changed workload definition, nothing in common";

/// Flags of `tokbench check`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(super) struct CheckArgs {
    /// The reference result (for example one committed to the repository).
    #[arg(long, value_name = "FILE")]
    baseline: PathBuf,
    /// The result to judge.
    #[arg(long, value_name = "FILE")]
    current: PathBuf,
    /// Relative change that matters, in percent ("5" or "5%"). A regression is called only when
    /// the whole interval of the change lies beyond it. With 3 or more repetitions on both
    /// sides (`run --repeat 3`) the interval is over the repetitions, so it holds run-to-run
    /// noise; with fewer it is one run's samples, widened by the probes' movement.
    #[arg(long, value_name = "PCT", default_value = "5", value_parser = parse_percent)]
    threshold: f64,
    /// What to gate on: tokens_per_s (time per execution, from the raw samples) or tokens_per_j
    /// (point values: energy has no per-sample figures).
    #[arg(long, default_value = "tokens_per_s", value_parser = super::choices::<CheckMetric>())]
    metric: CheckMetric,
    /// Output format (md suits a CI step summary; bmf is Bencher's metric format).
    #[arg(long, value_parser = super::choices::<CheckFormat>(), default_value = "table")]
    format: CheckFormat,
    /// Write the output to this file (replaced if it exists) instead of stdout.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Compare even when adapter, driver or CPU differ (the output lists the differences).
    #[arg(long)]
    allow_different_hardware: bool,
    /// Fail (exit 1) on an inconclusive verdict too: an interval reaching beyond the threshold
    /// but wider than the whole ±threshold band.
    #[arg(long)]
    strict: bool,
    /// Multiply every time of the current result by this factor before checking (1.25 = 25%
    /// slower): a synthetic slowdown, to measure whether the gate catches one of that size. The
    /// output says so.
    #[arg(long, value_name = "FACTOR", value_parser = parse_factor)]
    scale_current: Option<f64>,
}

fn parse_factor(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 100.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a factor between 0 and 100 (1.25 = 25% slower)"
        )),
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if v.is_finite() && (0.0..=1000.0).contains(&v) {
        Ok(v / 100.0)
    } else {
        Err(format!("{s} must be between 0 and 1000 percent"))
    }
}

/// Loads both results, checks, writes the verdict; exit 1 on a regression or invalid result
/// (or an inconclusive verdict with --strict).
pub(super) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let baseline = load_one(&args.baseline, "--baseline")?;
    let mut current = load_one(&args.current, "--current")?;
    if let Some(f) = args.scale_current {
        scale_times(&mut current.doc, f);
    }
    let options = CheckOptions {
        metric: args.metric,
        threshold: args.threshold,
        allow_different_hardware: args.allow_different_hardware,
        strict: args.strict,
    };
    let mut report = check(&baseline, &current, &options)?;
    if let Some(f) = args.scale_current {
        report.notes.push(format!(
            "--scale-current {f}: every current time was multiplied by {f}, a synthetic change \
             for measuring the gate, not a measurement"
        ));
    }
    write_output(args.out.as_deref(), &args.format.render(&report)?)?;
    let headline = crate::report::export::check_headline(&report);
    if args.out.is_some() || args.format != CheckFormat::Table {
        // The verdict in the CI log too, whatever went to stdout or the file.
        eprintln!("tokbench check: {headline}");
    }
    Ok(ExitCode::from(if report.passed {
        exit::OK
    } else {
        exit::FAILURE
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_percent;

    #[test]
    fn thresholds_are_percentages() {
        assert_eq!(parse_percent("5"), Ok(0.05));
        assert_eq!(parse_percent("2.5%"), Ok(0.025));
        assert!(parse_percent("-1").is_err() && parse_percent("five").is_err());
    }
}
