//! Python objects to and from the shuffle's record encoding (`distcore_core::shuffle::codec`).
//!
//! None, bool, int (64-bit), float, str, bytes, tuple and list have their own order-preserving
//! encodings; everything else (big ints, dates, user classes) travels as its pickle.

use distcore_core::shuffle::codec::{self, Value};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::errors::{type_name, PyDistError, RecordTypeError};

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn pickle<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("pickle")?.getattr(name)?.unbind())
    })
    .map(|f| f.bind(py))
}

/// Appends `obj`, encoded. `key`: `obj` is a key, so lists (unhashable) are refused.
pub fn put(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>, key: bool) -> PyResult<()> {
    if let Ok(s) = obj.cast_exact::<PyString>() {
        codec::put_str(out, s.to_str()?);
    } else if let Ok(i) = obj.cast_exact::<PyInt>() {
        match i.extract::<i64>() {
            Ok(v) => codec::put_int(out, v),
            Err(_) => put_pickled(out, obj)?,
        }
    } else if obj.is_none() {
        codec::put_none(out);
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        codec::put_float(out, f.value());
    } else if let Ok(b) = obj.cast::<PyBool>() {
        codec::put_bool(out, b.is_true());
    } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
        codec::begin_sequence(out, false);
        for item in t.iter() {
            put(out, &item, key)?;
        }
        codec::end_sequence(out);
    } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
        codec::put_bytes(out, b.as_bytes());
    } else if let Ok(l) = obj.cast_exact::<PyList>() {
        if key {
            return Err(RecordTypeError::new_err(
                "a key must be hashable, not a list",
            ));
        }
        codec::begin_sequence(out, true);
        for item in l.iter() {
            put(out, &item, key)?;
        }
        codec::end_sequence(out);
    } else if let Ok(s) = obj.cast::<PyString>() {
        codec::put_str(out, s.to_str()?);
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        // float subclasses, numpy.float64 among them
        codec::put_float(out, f.value());
    } else if let (true, Ok(v)) = (obj.hasattr("__index__")?, obj.extract::<i64>()) {
        // int subclasses and integers that say they are (numpy.int64, IntEnum)
        codec::put_int(out, v);
    } else {
        put_pickled(out, obj)?;
    }
    Ok(())
}

fn put_pickled(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = obj.py();
    let dumped = pickle(py, &PICKLE_DUMPS, "dumps")?
        .call1((obj,))
        .map_err(|e| {
            let err = RecordTypeError::new_err(format!(
                "cannot pickle a {} key or value",
                type_name(obj)
            ));
            err.set_cause(py, Some(e));
            err
        })?;
    codec::put_pickle(out, dumped.cast::<PyBytes>()?.as_bytes());
    Ok(())
}

/// `obj`, encoded, in a new buffer.
pub fn encode(obj: &Bound<'_, PyAny>, key: bool) -> PyResult<Vec<u8>> {
    let mut out = Vec::new();
    put(&mut out, obj, key)?;
    Ok(out)
}

/// The Python object of a decoded value.
pub fn to_py<'py>(py: Python<'py>, v: Value<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::None => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, f).into_any(),
        Value::Str(s) => PyString::new(py, &s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Value::Tuple(items) => {
            let items = items
                .into_iter()
                .map(|i| to_py(py, i))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any()
        }
        Value::List(items) => {
            let items = items
                .into_iter()
                .map(|i| to_py(py, i))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Pickle(p) => pickle(py, &PICKLE_LOADS, "loads")?.call1((PyBytes::new(py, &p),))?,
    })
}

/// The Python object of an encoded value.
pub fn decode<'py>(py: Python<'py>, buf: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, codec::decode(buf).map_err(PyDistError)?)
}
