//! `tokbench accounting`: the analytic FLOPs and bytes of a pass, op by op and per token, as
//! the result documents count them. Needs no GPU.

use std::process::ExitCode;

use comfy_table::Cell;

use super::table;
use crate::exit;
use crate::kernels::KvDtype;
use crate::model::{ModelShape, Pass, accounting};
use tokbench_core::dtype::Formats;

pub(super) fn run(
    name: &str,
    shape: ModelShape,
    formats: Formats,
    pass: Pass,
) -> anyhow::Result<ExitCode> {
    // MLA's latent cache is f32 whatever the flag says (as `run` holds it).
    let formats = match shape.is_mla() {
        true => Formats {
            kv: KvDtype::F32,
            ..formats
        },
        false => formats,
    };
    let (dtype, kv) = (formats.dense, formats.kv);
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
        "{name}, {} weights, {} KV cache, {} batch {} {} {}: {} tokens per pass",
        formats.describe(),
        kv.name(),
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
    if !shape.is_mla() {
        // Every layer's K and V rows of the keys one pass reads (decode: depth + 1 per
        // sequence; prefill: its prompt), as the cache stores them.
        let rows = f64::from(pass.batch)
            * f64::from(pass.len + u32::from(pass.phase == crate::model::Phase::Decode));
        let kv_bytes = rows
            * 2.0
            * f64::from(shape.n_kv_heads)
            * kv.row_bytes(shape.head_dim as usize) as f64
            * f64::from(shape.n_layers);
        println!(
            "KV cache: {:.3} MB read per token by attention without windows ({} bits per element, scales included)",
            kv_bytes / tokens / 1e6,
            kv.bits_per_element()
        );
    }
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
