//! The result document: its types ([`schema`]) and how it is written and read ([`io`]).
//! No wgpu here: reports and CI tooling use this module without a GPU.

#[doc(hidden)]
pub mod fixtures;
pub mod io;
pub mod schema;

pub use schema::*;
