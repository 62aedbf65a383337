//! Bindings for `distcore.clocks`.

mod id;

use pyo3::prelude::*;

/// Adds the clock classes and functions to `_core`.
#[allow(clippy::unnecessary_wraps)]
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
