//! tokbench: how many tokens a node makes per second, per watt and per unit of money.
//!
//! Data flows one way: [`cli`] builds a validated plan, [`gpu`] opens the device,
//! [`workload`]s run [`kernels`] through [`measure`], and the outcome is a [`result::RunResult`]
//! written after every workload. `result` and [`report`] never touch wgpu.
//! [`power`] turns each measured window into energy, with where the figure came from.

pub mod cli;
pub mod gpu;
pub mod kernels;
pub mod measure;
pub mod node;
pub mod power;
pub mod runner;
pub mod serve;
pub mod tune;
pub mod workload;

// The GPU-free layers, re-exported so `tokbench::model`, `tokbench::result` and
// `tokbench::report` name the same items as `tokbench_core::…`.
pub use tokbench_core::{InputError, exit, exit_code_for};
pub use tokbench_core::{dtype, kernel_config, model, report, result, serving, stats};
