//! Logical clocks: Lamport, vector clocks, version vectors and dotted version vectors, hybrid
//! logical clocks, and causal ordering of events stamped with vector clocks.
//!
//! Node identities are [`NodeId`]s (an integer or a string). Every clock keeps its entries in a
//! vector sorted by id, so compare and merge are one linear pass over both sides.

pub mod codec;
pub mod id;
pub mod vector;

pub use id::NodeId;
pub use vector::{Order, VectorClock};
