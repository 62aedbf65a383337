//! Bindings for `distcore.gossip`.

mod config;
mod sim;
mod swim;
mod wire;

use pyo3::prelude::*;

/// Adds the gossip classes and functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<config::PyGossipConfig>()?;
    m.add_class::<swim::PySwim>()?;
    m.add_function(wrap_pyfunction!(sim::simulate, m)?)?;
    m.add_function(wrap_pyfunction!(sim::epidemic, m)?)?;
    wire::register(m)
}
