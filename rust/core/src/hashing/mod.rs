//! Consistent hashing and key placement.

pub mod continuum;
pub mod hashfn;
pub mod ketama;

pub use continuum::{Continuum, Search, Tie};
pub use hashfn::HashFn;
pub use ketama::{Distribution, KetamaRing, Profile, Server};
