//! Measurement: warm-up and sampling (statistics live in the core's `stats`).

pub mod mock;
pub mod sampler;

pub use mock::MockTimer;
pub use sampler::{MeasureEnv, Measured, Window, measure};
