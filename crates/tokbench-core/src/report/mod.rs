//! Reports over result documents: `tokbench compare` (ranking nodes and fleets, with a cost
//! model) and `tokbench check` (a CI regression gate), and the formats they are written in.
//!
//! No wgpu here, and nothing that touches a device: reports run and are tested without a GPU.
//! Data flows one way: [`load`] reads documents (naming everything it skips), [`mod@compare`] and
//! [`mod@check`] turn them into report values, [`export`] renders those.

pub mod card;
pub mod check;
pub mod compare;
pub mod cost;
pub mod export;
#[doc(hidden)]
pub mod fixtures;
pub mod fleet;
pub mod identity;
pub mod load;
pub mod node_summary;
pub mod reference;
pub mod serving;

pub use check::{Basis, CheckMetric, CheckOptions, CheckReport, Verdict, check, scale_times};
pub use compare::{CompareOptions, CompareReport, Metric, compare};
pub use cost::PriceBook;
pub use export::{CheckFormat, CompareFormat};
pub use load::{Loaded, Skipped, Source, load_one, load_paths};
