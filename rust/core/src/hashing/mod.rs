//! Consistent hashing and key placement.

pub mod hashfn;

pub use hashfn::HashFn;
