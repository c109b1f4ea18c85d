//! The result document: its types ([`schema`]), how it is written and read ([`io`]), and the
//! one set of rules every loaded document is held to ([`validate`]).
//! No wgpu here: reports and CI tooling use this module without a GPU.

#[doc(hidden)]
pub mod fixtures;
pub mod io;
pub mod schema;
pub mod serving;
pub mod validate;

pub use schema::*;
pub use serving::*;
