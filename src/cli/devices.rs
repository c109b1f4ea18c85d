//! `tokbench devices`: every adapter, without opening a device.

use std::process::ExitCode;

use comfy_table::Cell;
use serde::Serialize;

use super::table;
use crate::exit;
use crate::gpu::{BackendChoice, adapter_record, enumerate_adapters};
use crate::result::AdapterInfo;

/// One line of `tokbench devices --json`.
#[derive(Debug, Serialize)]
struct Listed {
    /// The index `--adapter` accepts.
    index: usize,
    #[serde(flatten)]
    adapter: AdapterInfo,
}

pub(super) fn run(json: bool, backend: Option<BackendChoice>) -> anyhow::Result<ExitCode> {
    let listed: Vec<Listed> = enumerate_adapters(backend)
        .iter()
        .enumerate()
        .map(|(index, a)| Listed {
            index,
            adapter: adapter_record(
                &a.get_info(),
                a.features(),
                &a.limits(),
                // What the adapter lists; a device opened on it enables the feature when present.
                &if a
                    .features()
                    .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
                {
                    a.cooperative_matrix_properties()
                } else {
                    Vec::new()
                },
            ),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else if listed.is_empty() {
        eprintln!(
            "no adapters found. Without a GPU, `apt-get install mesa-vulkan-drivers` provides \
             lavapipe, a software Vulkan driver."
        );
    } else {
        let mut t = table::new(&[
            "#",
            "name",
            "backend",
            "type",
            "vendor:device",
            "driver",
            "features",
            "cooperative matrices",
            "max binding",
        ]);
        for l in &listed {
            let a = &l.adapter;
            t.add_row(vec![
                table::num(l.index),
                Cell::new(&a.name),
                Cell::new(&a.backend),
                Cell::new(&a.device_type),
                Cell::new(format!("{:04x}:{:04x}", a.vendor_id, a.device_id)),
                Cell::new(format!("{} {}", a.driver, a.driver_info).trim().to_string()),
                Cell::new(a.features.join(" ")),
                Cell::new(if a.cooperative_matrices.is_empty() {
                    "none (SIMT only)".to_string()
                } else {
                    a.cooperative_matrices.join(", ")
                }),
                table::num(format!(
                    "{} MiB",
                    a.limits["max_storage_buffer_binding_size"] >> 20
                )),
            ]);
        }
        println!("{t}");
    }
    // An empty list is an answer, not an error: the message above says what to install.
    Ok(ExitCode::from(if listed.is_empty() {
        exit::USAGE
    } else {
        exit::OK
    }))
}
