//! Runs a list of workloads on one device, writing the result after each one.

use std::process::ExitCode;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::CommonArgs;
use super::table;
use crate::exit;
use crate::gpu::GpuContext;
use crate::result::io::ResultWriter;
use crate::result::{PlanRecord, RunResult, SCHEMA_VERSION, ToolInfo};
use crate::workload::Workload;

/// Measures `workloads` in order. Input problems are found before anything is written;
/// each finished workload is on disk before the next starts.
pub(super) fn run_workloads(
    command: &str,
    common: &CommonArgs,
    workloads: Vec<Box<dyn Workload>>,
) -> anyhow::Result<ExitCode> {
    let ctx = GpuContext::open(&common.selector())?;
    for w in &workloads {
        w.check_fits(&ctx)?;
    }
    let policy = common.policy();
    let doc = RunResult {
        schema_version: SCHEMA_VERSION,
        tool: tool_info(),
        started_at: now_utc(),
        finished_at: None,
        node: crate::node::fingerprint(),
        adapter: ctx.adapter_record(),
        timing_method: ctx.timing_method,
        plan: PlanRecord {
            command: command.into(),
            sampling: policy,
        },
        workloads: Vec::new(),
    };
    let mut writer = ResultWriter::create(&common.destination(), doc)?;
    eprintln!(
        "tokbench: {} ({}, {}), timing: {:?}; writing {}",
        ctx.info.name,
        writer.document().adapter.backend,
        writer.document().adapter.device_type,
        ctx.timing_method,
        writer.path().display()
    );

    for (i, workload) in workloads.iter().enumerate() {
        let bar = ProgressBar::new(policy.min_samples.into()).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} samples {elapsed}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("[{}/{}] {}", i + 1, workloads.len(), workload.id()));
        let outcome = workload.run(&ctx, &policy, &mut |done, planned| {
            bar.set_length(planned as u64);
            bar.set_position(done as u64);
        });
        bar.finish_and_clear();
        let result = outcome.with_context(|| {
            format!(
                "workload {} failed; the {} finished before it are saved in {}",
                workload.id(),
                writer.document().workloads.len(),
                writer.path().display()
            )
        })?;
        writer.push(result)?;
    }
    writer.update(|doc| doc.finished_at = Some(now_utc()))?;

    let doc = writer.document();
    println!("{}", table::workloads(doc));
    println!("result: {}", writer.path().display());
    let invalid: Vec<&str> = doc
        .workloads
        .iter()
        .filter(|w| !w.valid)
        .map(|w| w.id.as_str())
        .collect();
    if invalid.is_empty() {
        Ok(ExitCode::from(exit::OK))
    } else {
        eprintln!(
            "invalid results (failed the correctness check): {}",
            invalid.join(", ")
        );
        Ok(ExitCode::from(exit::FAILURE))
    }
}

/// This program, for the result document.
pub(crate) fn tool_info() -> ToolInfo {
    ToolInfo {
        name: "tokbench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_sha: option_env!("TOKBENCH_GIT_SHA")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    }
}

/// The current time, RFC 3339 in UTC with milliseconds.
pub(crate) fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
