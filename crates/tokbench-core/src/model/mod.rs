//! Model shapes and their analytic work: presets, custom shapes, FLOP and byte accounting.
//! No GPU here.

pub mod accounting;
pub mod flops;
pub mod mla;
pub mod presets;
mod shape;

pub use accounting::{Pass, Phase, Work};
pub use shape::{DENSE, LayerKind, MAX_EXPERTS, MAX_EXPERTS_ACTIVE, ModelShape};
