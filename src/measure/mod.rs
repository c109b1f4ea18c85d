//! Measurement: warm-up, sampling and statistics.

pub mod sampler;
pub mod stats;

pub use sampler::{MeasureEnv, Measured, Window, measure};
