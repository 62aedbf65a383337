//! Batch inputs shared by every ring: keys packed into one buffer, or pre-hashed numpy arrays.

use numpy::{PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::errors::key_type_error;

/// Batches smaller than this are done without releasing the GIL: the release costs more than it saves.
pub const DETACH_MIN: usize = 2048;

/// Keys copied out of Python objects into one buffer, so the work can run without the GIL.
pub struct PackedKeys {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl PackedKeys {
    /// Copies a list or tuple of str/bytes keys.
    pub fn from_sequence(seq: &Bound<'_, PyAny>) -> PyResult<PackedKeys> {
        let items: Vec<Bound<'_, PyAny>> = if let Ok(l) = seq.cast::<PyList>() {
            l.iter().collect()
        } else if let Ok(t) = seq.cast::<PyTuple>() {
            t.iter().collect()
        } else {
            seq.try_iter()?.collect::<PyResult<_>>()?
        };
        let mut packed = PackedKeys {
            bytes: Vec::with_capacity(items.len() * 16),
            ends: Vec::with_capacity(items.len()),
        };
        for item in &items {
            if let Ok(s) = item.cast::<PyString>() {
                packed.bytes.extend_from_slice(s.to_str()?.as_bytes());
            } else if let Ok(b) = item.cast::<PyBytes>() {
                packed.bytes.extend_from_slice(b.as_bytes());
            } else {
                return Err(key_type_error(item));
            }
            packed.ends.push(packed.bytes.len());
        }
        Ok(packed)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

/// What a batch lookup was given.
pub enum BatchInput<'py> {
    Keys(PackedKeys),
    Hashes(PyReadonlyArray1<'py, u64>),
}

impl<'py> BatchInput<'py> {
    /// A numpy array is taken as pre-hashed uint64 keys; anything else as a sequence of str/bytes.
    pub fn extract(obj: &Bound<'py, PyAny>) -> PyResult<BatchInput<'py>> {
        if let Ok(arr) = obj.extract::<PyReadonlyArray1<'py, u64>>() {
            if !arr.is_contiguous() {
                return Err(PyTypeError::new_err("hash array must be C-contiguous"));
            }
            return Ok(BatchInput::Hashes(arr));
        }
        if obj.hasattr("__array_interface__")? {
            return Err(PyTypeError::new_err(
                "pre-hashed keys must be a 1-d numpy array of uint64",
            ));
        }
        Ok(BatchInput::Keys(PackedKeys::from_sequence(obj)?))
    }
}

/// Runs `f` with the GIL released when the batch is large enough to pay for it.
pub fn maybe_detach<T: Send>(py: Python<'_>, n: usize, f: impl FnOnce() -> T + Send) -> T {
    if n >= DETACH_MIN {
        py.detach(f)
    } else {
        f()
    }
}
