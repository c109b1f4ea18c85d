//! tokbench: how many tokens a node makes per second, per watt and per unit of money.
//!
//! Data flows one way: [`cli`] builds a validated plan, [`gpu`] opens the device,
//! [`workload`]s run [`kernels`] through [`measure`], and the outcome is a [`result::RunResult`]
//! written after every workload. `result` and [`report`] never touch wgpu.
//! [`power`] turns each measured window into energy, with where the figure came from.

pub mod cli;
mod error;
pub mod gpu;
pub mod kernels;
pub mod measure;
pub mod model;
pub mod node;
pub mod power;
pub mod report;
pub mod result;
pub mod runner;
pub mod tune;
pub mod workload;

pub use error::{InputError, exit, exit_code_for};
