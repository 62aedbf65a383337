//! Gossip membership. This part speaks HashiCorp memberlist's wire format: the message bodies
//! ([`wire`]), the packet and stream layers around them ([`packet`]) and the AES-GCM keyring
//! ([`keyring`]). Everything here is sans-IO: bytes in, bytes out.

pub mod keyring;
pub mod msgpack;
pub mod packet;
pub mod wire;

pub use keyring::Keyring;
pub use wire::{Message, NodeState, PushNodeState, PushPull};
