//! Bindings for `distcore.hashing`.

mod batch;
mod clients;
mod hashfn;
mod ketama;
mod placement;
mod uhashring;

use pyo3::prelude::*;

/// Adds the hashing classes and functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    hashfn::register(m)?;
    ketama::register(m)?;
    uhashring::register(m)?;
    clients::register(m)?;
    placement::register(m)?;
    Ok(())
}
