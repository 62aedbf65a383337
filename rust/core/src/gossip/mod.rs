//! Gossip membership in HashiCorp memberlist's protocol, sans-IO (no sockets, no clock).
//!
//! - the wire format: message bodies ([`wire`]), the packet and stream layers around them
//!   ([`packet`]) and the AES-GCM keyring ([`keyring`]);
//! - the parts of SWIM + Lifeguard: memberlist's configurations and scaling formulas
//!   ([`config`]), local health awareness ([`awareness`]), dynamic suspicion timeouts
//!   ([`suspicion`]) and the transmit-limited broadcast queue ([`queue`]).

pub mod awareness;
pub mod config;
pub mod epidemic;
pub mod keyring;
pub mod members;
pub mod msgpack;
pub mod packet;
pub mod queue;
pub mod sim;
pub mod suspicion;
pub mod swim;
pub mod wire;

pub use config::Config;
pub use keyring::Keyring;
pub use wire::{Message, NodeState, PushNodeState, PushPull};
