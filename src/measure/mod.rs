//! Measurement: warm-up and sampling (statistics live in the core's `stats`).

pub mod sampler;

pub use sampler::{MeasureEnv, Measured, Window, measure};
