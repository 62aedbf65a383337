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
    /// A value of the wrong type for what is asked of it (a sum over strings); the message says which.
    #[error("{0}")]
    Type(String),
    /// A file that could not be read or written; the message names it.
    #[error("{0}")]
    Io(String),
    /// Bytes or text that are not a valid encoding of the expected value; the message says where.
    #[error("{0}")]
    Decode(String),
    /// A counter that would go past its largest value (or a negative one where counters are >= 0).
    #[error("{0}")]
    CounterOverflow(String),
    /// A remote clock reading too far ahead of the local physical clock; nothing was changed.
    #[error("remote clock is {ahead_ns} ns ahead of the local clock, more than max_offset {max_offset_ns} ns")]
    ClockSkew {
        /// How far the remote reading is ahead of local physical time, in ns.
        ahead_ns: u64,
        /// The configured bound, in ns.
        max_offset_ns: u64,
    },
}

/// Result with the core's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
