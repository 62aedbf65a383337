//! Bindings for `distcore.hashing`.

mod batch;
mod hashfn;
mod ketama;

use pyo3::prelude::*;

/// Adds the hashing classes and functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    hashfn::register(m)?;
    ketama::register(m)?;
    Ok(())
}
