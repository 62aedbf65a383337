//! Bindings for `distcore.hashing`.

mod hashfn;

use pyo3::prelude::*;

/// Adds the hashing classes and functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    hashfn::register(m)?;
    Ok(())
}
