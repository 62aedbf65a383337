//! distcore-core: the algorithms behind distcore, in pure Rust with no Python.

pub mod clocks;
pub mod error;
pub mod gossip;
pub mod hashing;
pub mod par;
pub mod shuffle;

pub use error::{Error, Result};
