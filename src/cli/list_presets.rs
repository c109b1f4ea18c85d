//! `tokbench presets`: the model shapes tokbench knows.

use std::process::ExitCode;

use comfy_table::Cell;
use serde::Serialize;

use super::table;
use crate::exit;
use crate::model::ModelShape;
use crate::model::presets::PRESETS;

/// One line of `tokbench presets --json`.
#[derive(Debug, Serialize)]
struct Listed {
    name: &'static str,
    description: &'static str,
    #[serde(flatten)]
    shape: ModelShape,
    /// Weights outside the embedding table.
    params: u64,
    /// The part of `params` one token computes with (its routed and shared experts; all of
    /// them for a dense model).
    params_active: u64,
    /// The format the model ships its routed experts in, which runs default to (gpt-oss:
    /// mxfp4); absent where the experts follow `--dtype`.
    #[serde(skip_serializing_if = "Option::is_none")]
    expert_dtype: Option<crate::kernels::WeightDtype>,
}

pub(super) fn run(json: bool) -> anyhow::Result<ExitCode> {
    let listed: Vec<Listed> = PRESETS
        .iter()
        .map(|p| {
            let (params, params_active) = p.shape.params(p.shape.n_layers);
            Listed {
                name: p.name,
                description: p.description,
                shape: p.shape,
                params,
                params_active,
                expert_dtype: p.expert_dtype,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(ExitCode::from(exit::OK));
    }
    let mut t = table::new(&[
        "preset",
        "d_model",
        "n_layers",
        "n_heads",
        "n_kv_heads",
        "head_dim",
        "d_ff",
        "vocab",
        "weights",
        "active",
        "experts",
        "attention",
    ]);
    for l in &listed {
        let s = l.shape;
        t.add_row(vec![
            Cell::new(l.name),
            table::num(s.d_model),
            table::num(s.n_layers),
            table::num(s.n_heads),
            table::num(s.n_kv_heads),
            table::num(s.head_dim),
            table::num(s.d_ff),
            table::num(s.vocab),
            table::num(format!("{:.2} B", l.params as f64 / 1e9)),
            table::num(format!("{:.2} B", l.params_active as f64 / 1e9)),
            Cell::new(experts(l)),
            Cell::new(attention(&s)),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::from(exit::OK))
}

/// "128 top-8, +1 shared, FFN 2048, first 3 dense", "32 top-4, FFN 2880, mxfp4", or "-" for
/// a dense model.
fn experts(l: &Listed) -> String {
    let s = &l.shape;
    if !s.is_moe() {
        return "-".into();
    }
    let mut text = format!("{} top-{}", s.n_experts, s.n_experts_active);
    if s.n_shared_experts > 0 {
        text += &format!(", +{} shared", s.n_shared_experts);
    }
    text += &format!(", FFN {}", s.d_ff_expert);
    if s.first_dense_layers > 0 {
        text += &format!(", first {} dense", s.first_dense_layers);
    }
    if let Some(dtype) = l.expert_dtype {
        text += &format!(", {}", dtype.name());
    }
    text
}

/// "GQA", "MLA kv_lora 512 (rope 64, nope 128, v 128)", "GQA, window 128 on 1 of 2, sinks".
fn attention(s: &ModelShape) -> String {
    let mut text = if s.is_mla() {
        format!(
            "MLA q_lora {} kv_lora {} (rope {}, nope {}, v {})",
            s.q_lora_rank, s.kv_lora_rank, s.qk_rope_head_dim, s.qk_nope_head_dim, s.v_head_dim
        )
    } else {
        "GQA".to_string()
    };
    if s.window > 0 {
        text += &format!(
            ", window {} on {} of {} layers",
            s.window, s.window_layers, s.window_period
        );
    }
    if s.attention_sinks > 0 {
        text += ", sinks";
    }
    text
}
