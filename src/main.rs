//! The `tokbench` binary: parse flags, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = tokbench::cli::Cli::parse();
    match tokbench::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            if err.chain().any(|e| e.is::<tokbench::gpu::DeviceHung>()) {
                // A hung driver thread would block the exit handlers (Mesa joins its queue
                // threads at exit): leave without running them. Everything measured is on disk.
                use std::io::Write as _;
                let _ = std::io::stderr().flush();
                let _ = std::io::stdout().flush();
                // SAFETY: _exit ends the process at once; no Rust state is used after it.
                unsafe { libc::_exit(i32::from(tokbench::exit::FAILURE)) };
            }
            tokbench::exit_code_for(&err)
        }
    }
}
