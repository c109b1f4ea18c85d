//! tokbench's core: everything that needs no GPU and no command line.
//!
//! Model shapes and their FLOP/byte accounting ([`model`]), weight formats ([`dtype`], their byte layouts in [`format`](mod@format)), kernel
//! choices as data ([`kernel_config`]), the result document and its io ([`result`]),
//! statistics ([`stats`]), units and how figures read ([`units`]), and the reports over results ([`report`]: compare, check, cost,
//! exporters). Cargo enforces the layer rule: this crate depends on neither wgpu nor clap, so
//! reports and CI tooling build and test without a GPU, and the `tokbench` crate (device,
//! kernels, workloads, power, CLI) depends on this one, never the other way.

pub mod dtype;
mod error;
pub mod format;
pub mod kernel_config;
pub mod model;
pub mod report;
pub mod result;
pub mod serving;
pub mod stats;
pub mod units;

pub use error::{InputError, exit, exit_code_for};
