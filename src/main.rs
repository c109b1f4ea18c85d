//! The `tokbench` binary: parse flags, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = tokbench::cli::Cli::parse();
    match tokbench::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            tokbench::exit_code_for(&err)
        }
    }
}
