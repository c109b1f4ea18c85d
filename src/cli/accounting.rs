//! `tokbench accounting`: the analytic FLOPs and bytes of a pass, op by op and per token, as
//! the result documents count them. Needs no GPU.

use std::process::ExitCode;

use comfy_table::Cell;

use super::table;
use crate::exit;
use crate::model::{ModelShape, Pass, accounting};
use tokbench_core::dtype::WeightFormats;

pub(super) fn run(
    name: &str,
    shape: ModelShape,
    formats: WeightFormats,
    pass: Pass,
) -> anyhow::Result<ExitCode> {
    let dtype = formats.dense;
    let tokens = pass.tokens() as f64;
    let mut t = table::new(&["op", "× per pass", "GFLOP / token", "MB / token"]);
    let ops = accounting::ops(&shape, shape.n_layers, formats, pass);
    for op in &ops {
        let n = f64::from(op.count);
        t.add_row(vec![
            Cell::new(op.op),
            table::num(op.count),
            table::num(format!("{:.4}", op.work.flops * n / tokens / 1e9)),
            table::num(format!("{:.3}", op.work.bytes * n / tokens / 1e6)),
        ]);
    }
    let total = accounting::total(&shape, shape.n_layers, formats, pass);
    t.add_row(vec![
        Cell::new("total"),
        Cell::new(""),
        table::num(format!("{:.4}", total.flops / tokens / 1e9)),
        table::num(format!("{:.3}", total.bytes / tokens / 1e6)),
    ]);
    println!(
        "{name}, {} weights, {} batch {} {} {}: {} tokens per pass",
        formats.describe(),
        pass.phase.name(),
        pass.batch,
        match pass.phase {
            crate::model::Phase::Prefill => "prompt",
            crate::model::Phase::Decode => "depth",
        },
        pass.len,
        pass.tokens()
    );
    println!("{t}");
    let weights = accounting::weight_bytes(&shape, shape.n_layers, formats, pass);
    println!(
        "weights: {:.3} MB per pass, {:.3} MB per token ({} bits per weight{}, scales included)",
        weights / 1e6,
        weights / tokens / 1e6,
        dtype.bits_per_weight(),
        match formats.distinct_experts() {
            Some(e) => format!("; experts {}", e.bits_per_weight()),
            None => String::new(),
        }
    );
    if shape.is_moe() {
        let (total, active) = shape.params(shape.n_layers);
        println!(
            "parameters: {:.2} B in all, {:.2} B active per token ({} of {} routed experts{} in {} of {} layers; embedding table not counted)",
            total as f64 / 1e9,
            active as f64 / 1e9,
            shape.n_experts_active,
            shape.n_experts,
            match shape.n_shared_experts {
                0 => String::new(),
                n => format!(" and {n} shared"),
            },
            shape.moe_layers(shape.n_layers),
            shape.n_layers
        );
        println!(
            "experts touched per MoE layer at {} tokens per pass: {:.1} expected, E·(1 − (1 − k/E)^tokens) with uniform routing (a run records the count its router chose)",
            pass.tokens(),
            shape.expected_experts_touched(pass.tokens())
        );
    }
    println!(
        "arithmetic intensity: {:.2} FLOP/byte",
        total.flops / total.bytes
    );
    Ok(ExitCode::from(exit::OK))
}
