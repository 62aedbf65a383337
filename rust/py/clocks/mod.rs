//! Bindings for `distcore.clocks`.

mod causal;
mod dvv;
mod hlc;
mod id;
mod lamport;
mod vector;

use pyo3::prelude::*;

/// Adds the clock classes and functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    vector::register(m)?;
    lamport::register(m)?;
    hlc::register(m)?;
    causal::register(m)?;
    dvv::register(m)?;
    Ok(())
}
