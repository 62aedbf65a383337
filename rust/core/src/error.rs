//! The one error type of the core; the bindings map each variant to a Python exception in one place.

use thiserror::Error;

/// Everything the core can refuse.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// A lookup on a ring that has no nodes.
    #[error("the ring is empty")]
    EmptyRing,
    /// A node name that is already on the ring.
    #[error("duplicate node name: {0:?}")]
    DuplicateNode(String),
    /// A node name that is not on the ring.
    #[error("no such node: {0:?}")]
    UnknownNode(String),
    /// A weight that is zero, negative or not finite.
    #[error("weight must be > 0, got {0}")]
    InvalidWeight(f64),
    /// A hash function name the core does not know.
    #[error("unknown hash function: {0:?}")]
    UnknownHash(String),
    /// A configuration that is not valid; the message names the field.
    #[error("{0}")]
    Config(String),
    /// Any other argument out of its domain, with a short reason.
    #[error("{0}")]
    InvalidArgument(String),
}

/// Result with the core's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
