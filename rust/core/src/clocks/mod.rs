//! Logical clocks: Lamport, vector clocks, version vectors and dotted version vectors, hybrid
//! logical clocks, and causal ordering of events stamped with vector clocks.
//!
//! Node identities are [`NodeId`]s (an integer or a string). Every clock keeps its entries in a
//! vector sorted by id, so compare and merge are one linear pass over both sides.

pub mod causal;
pub mod codec;
pub mod dvv;
pub mod hlc;
pub mod id;
pub mod lamport;
pub mod vector;

pub use causal::{causal_order, CausalDelivery};
pub use dvv::DvvSet;
pub use hlc::{Hlc, Timestamp};
pub use id::NodeId;
pub use lamport::LamportClock;
pub use vector::{Order, VectorClock};
