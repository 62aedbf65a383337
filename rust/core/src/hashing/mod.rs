//! Consistent hashing and key placement.

pub mod continuum;
pub mod hashfn;
pub mod ketama;

pub mod anchor;
pub mod bounded;
pub mod jump;
pub mod maglev;
pub mod nodes;
pub mod rendezvous;

pub mod clients;
pub mod uhashring;

pub use continuum::{Continuum, Search, Tie};
pub use hashfn::HashFn;
pub use ketama::{Distribution, KetamaRing, Profile, Server};
