//! The raw hash functions, exposed for cross-checking against other implementations.

use distcore_core::hashing::{hashfn, HashFn};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

use crate::errors::{key_type_error, PyDistError};

/// Borrows a key's bytes: str as UTF-8, bytes and bytearray as they are.
pub fn with_key_bytes<R>(key: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(f(s.to_str()?.as_bytes()));
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    if let Ok(b) = key.cast::<PyByteArray>() {
        return Ok(f(&b.to_vec()));
    }
    Err(key_type_error(key))
}

/// Hashes `key` with one of twemproxy's twelve key hash functions (bit-exact with nutcracker 0.5.0).
#[pyfunction]
fn hash_key(name: &str, key: &Bound<'_, PyAny>) -> PyResult<u32> {
    let f = HashFn::from_name(name).map_err(PyDistError::from)?;
    with_key_bytes(key, |k| f.hash(k))
}

/// The names of the twelve twemproxy hash functions, in twemproxy's order.
#[pyfunction]
fn hash_names() -> Vec<&'static str> {
    HashFn::ALL.iter().map(|f| f.name()).collect()
}

/// `MurmurHash3` x86 32-bit (what `mmh3.hash(key, seed, signed=False)` returns).
#[pyfunction]
#[pyo3(signature = (key, seed = 0))]
fn murmur3_32(key: &Bound<'_, PyAny>, seed: u32) -> PyResult<u32> {
    with_key_bytes(key, |k| hashfn::murmur3_32(k, seed))
}

/// XXH3 64-bit (what `xxhash.xxh3_64_intdigest(key, seed)` returns).
#[pyfunction]
#[pyo3(signature = (key, seed = 0))]
fn xxh3_64(key: &Bound<'_, PyAny>, seed: u64) -> PyResult<u64> {
    with_key_bytes(key, |k| hashfn::xxh3_64(k, seed))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hash_key, m)?)?;
    m.add_function(wrap_pyfunction!(hash_names, m)?)?;
    m.add_function(wrap_pyfunction!(murmur3_32, m)?)?;
    m.add_function(wrap_pyfunction!(xxh3_64, m)?)?;
    Ok(())
}
