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
}

pub(super) fn run(json: bool) -> anyhow::Result<ExitCode> {
    let listed: Vec<Listed> = PRESETS
        .iter()
        .map(|p| Listed {
            name: p.name,
            description: p.description,
            shape: p.shape,
            params: u64::from(p.shape.n_layers) * p.shape.layer_params() + p.shape.head_params(),
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
        ]);
    }
    println!("{t}");
    Ok(ExitCode::from(exit::OK))
}
