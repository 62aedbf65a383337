//! Batch inputs shared by every ring: keys packed into one buffer, or pre-hashed numpy arrays.

use numpy::{PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::hashfn::with_key_bytes;

/// Batches smaller than this are done without releasing the GIL: the release costs more than it saves.
pub const DETACH_MIN: usize = 2048;

/// Keys copied out of Python objects into one buffer, so the work can run without the GIL.
pub struct PackedKeys {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl PackedKeys {
    /// Copies a list, tuple or other iterable of str/bytes keys.
    pub fn from_sequence(seq: &Bound<'_, PyAny>) -> PyResult<PackedKeys> {
        let hint = seq.len().unwrap_or(0);
        let mut packed = PackedKeys {
            bytes: Vec::with_capacity(hint * 16),
            ends: Vec::with_capacity(hint),
        };
        if let Ok(l) = seq.cast::<PyList>() {
            for item in l {
                packed.push(&item)?;
            }
        } else if let Ok(t) = seq.cast::<PyTuple>() {
            for item in t {
                packed.push(&item)?;
            }
        } else {
            for item in seq.try_iter()? {
                packed.push(&item?)?;
            }
        }
        Ok(packed)
    }

    fn push(&mut self, item: &Bound<'_, PyAny>) -> PyResult<()> {
        with_key_bytes(item, |k| self.bytes.extend_from_slice(k))?;
        self.ends.push(self.bytes.len());
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Key `i`.
    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// What a batch lookup was given.
pub enum BatchInput<'py> {
    Keys(PackedKeys),
    Hashes(PyReadonlyArray1<'py, u64>),
    /// Key hashes the binding computed itself.
    Owned(Vec<u64>),
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

/// Hashes each key of a list or tuple in place, while attached: for hashes of a few nanoseconds
/// this beats copying the keys out first. `None` when `seq` is neither a list nor a tuple.
pub fn hash_list_or_tuple<H>(
    seq: &Bound<'_, PyAny>,
    mut hash: impl FnMut(&[u8]) -> H,
) -> PyResult<Option<Vec<H>>> {
    let mut one = |item: Bound<'_, PyAny>| with_key_bytes(&item, &mut hash);
    if let Ok(l) = seq.cast::<PyList>() {
        return l.iter().map(&mut one).collect::<PyResult<_>>().map(Some);
    }
    if let Ok(t) = seq.cast::<PyTuple>() {
        return t.iter().map(&mut one).collect::<PyResult<_>>().map(Some);
    }
    Ok(None)
}

/// A batch's data without Python objects, so it can cross into detached and parallel code.
#[derive(Clone, Copy)]
pub enum BatchData<'a> {
    Keys(&'a PackedKeys),
    Hashes(&'a [u64]),
}

impl BatchData<'_> {
    pub fn len(&self) -> usize {
        match self {
            BatchData::Keys(k) => k.len(),
            BatchData::Hashes(h) => h.len(),
        }
    }
}

impl BatchInput<'_> {
    /// The batch's plain data (borrowed from the packed keys or the numpy buffer).
    pub fn data(&self) -> PyResult<BatchData<'_>> {
        Ok(match self {
            BatchInput::Keys(k) => BatchData::Keys(k),
            BatchInput::Hashes(a) => BatchData::Hashes(a.as_slice()?),
            BatchInput::Owned(h) => BatchData::Hashes(h),
        })
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
