//! Node ids between Python (`str` or `int`) and the core's [`NodeId`].

use distcore_core::clocks::id::RawId;
use distcore_core::clocks::NodeId;
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};
use pyo3::IntoPyObjectExt;

use crate::errors::type_name;

/// A `str` or an `int` that fits in 64 signed bits; `bool` is refused (it is an int by accident).
pub fn extract_node_id(obj: &Bound<'_, PyAny>) -> PyResult<NodeId> {
    Ok(match raw_node_id(obj)? {
        RawId::Int(i) => NodeId::Int(i),
        RawId::Str(s) => NodeId::str(s),
    })
}

/// As [`extract_node_id`], borrowing the text from the Python str instead of interning it.
pub fn raw_node_id<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<RawId<'a>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(RawId::Str(s.to_str()?));
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        return obj
            .extract::<i64>()
            .map(RawId::Int)
            .map_err(|_| PyOverflowError::new_err("an int node id must fit in 64 signed bits"));
    }
    Err(PyTypeError::new_err(format!(
        "node id must be str or int, not {}",
        type_name(obj)
    )))
}

/// The Python value of a node id.
pub fn node_id_to_py<'py>(py: Python<'py>, id: &NodeId) -> PyResult<Bound<'py, PyAny>> {
    match id {
        NodeId::Int(i) => i.into_bound_py_any(py),
        NodeId::Str(s) => Ok(PyString::new(py, s).into_any()),
    }
}
