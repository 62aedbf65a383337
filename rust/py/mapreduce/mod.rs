//! Bindings for `distcore.mapreduce`: the built-in word count and the pair sort (here), the
//! shuffle core ([`shuffle`]) and the record encoding ([`values`]), GIL released where no Python
//! object is touched.

mod shuffle;
mod values;

use distcore_core::shuffle::{sort, words};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyBytesMethods, PyDict, PyList};

use crate::errors::PyDistError;

/// A sorted (keys, values) pair of numpy arrays.
type Columns<'py> = (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u64>>);

/// What a count returns: every word, or the most frequent ones.
enum Counted<'a> {
    All(words::Counts<'a>),
    Top(Vec<(Vec<u8>, u64)>),
}

/// Counts the words of each text in ``texts`` (bytes, UTF-8) together, split exactly as
/// Python's ``str.split()`` splits them, on up to ``threads`` threads (0: one per core), with the
/// GIL released. Returns ``{word: count}``, or with ``top`` the ``top`` most frequent
/// ``(word, count)`` pairs, most frequent first, ties in byte order of the word.
///
/// Raises
/// ------
/// DecodeError
///     If a text is not UTF-8 (the message names the text, by ``names`` when given, else by its
///     index, and the byte).
#[pyfunction]
#[pyo3(signature = (texts, *, top = None, threads = 0, names = None))]
#[allow(clippy::needless_pass_by_value)] // PyO3 hands arguments over by value
pub fn count_words<'py>(
    py: Python<'py>,
    texts: Vec<Bound<'py, PyBytes>>,
    top: Option<usize>,
    threads: usize,
    names: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyAny>> {
    let slices: Vec<&[u8]> = texts.iter().map(PyBytesMethods::as_bytes).collect();
    let counted = py.detach(|| {
        words::count_words_in(&slices, threads).map(|total| match top {
            Some(n) => Counted::Top(words::top(&total, n)),
            None => Counted::All(total),
        })
    });
    let counted = counted.map_err(|(i, e)| {
        let which = names
            .as_ref()
            .and_then(|n| n.get(i).cloned())
            .unwrap_or_else(|| format!("text {i}"));
        match e {
            distcore_core::Error::Decode(m) => {
                PyDistError(distcore_core::Error::Decode(format!("{which}: {m}"))).into()
            }
            other => PyErr::from(PyDistError(other)),
        }
    })?;
    // Words are cut at whitespace in valid UTF-8, so each is valid UTF-8 too.
    let text = |w: &[u8]| {
        std::str::from_utf8(w)
            .map(str::to_owned)
            .unwrap_or_default()
    };
    match counted {
        Counted::All(all) => {
            let d = PyDict::new(py);
            for (w, n) in all {
                d.set_item(text(w), n)?;
            }
            Ok(d.into_any())
        }
        Counted::Top(top) => {
            let pairs: Vec<(String, u64)> = top.into_iter().map(|(w, n)| (text(&w), n)).collect();
            Ok(PyList::new(py, pairs)?.into_any())
        }
    }
}

/// Sorts ``values`` by ``keys`` (two 1-d uint64 numpy arrays of one length), stably (equal keys
/// keep their order), on up to ``threads`` threads (0: one per core), with the GIL released.
/// Returns new ``(keys, values)`` arrays.
#[pyfunction]
#[pyo3(signature = (keys, values, *, threads = 0))]
#[allow(clippy::needless_pass_by_value)] // PyO3 hands arguments over by value
pub fn sort_pairs<'py>(
    py: Python<'py>,
    keys: PyReadonlyArray1<'py, u64>,
    values: PyReadonlyArray1<'py, u64>,
    threads: usize,
) -> PyResult<Columns<'py>> {
    if keys.len() != values.len() {
        return Err(PyValueError::new_err(format!(
            "keys and values differ in length: {} and {}",
            keys.len(),
            values.len()
        )));
    }
    let (k, v) = match (keys.as_slice(), values.as_slice()) {
        (Ok(k), Ok(v)) => py.detach(|| sort::sort_columns(k, v, threads)),
        _ => {
            return Err(PyValueError::new_err(
                "keys and values must be C-contiguous",
            ))
        }
    };
    Ok((k.into_pyarray(py), v.into_pyarray(py)))
}

/// Adds the MapReduce functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(count_words, m)?)?;
    m.add_function(wrap_pyfunction!(sort_pairs, m)?)?;
    shuffle::register(m)
}
