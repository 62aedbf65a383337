//! Bindings for the shuffle core: the map side's combining table, the reduce side's merge, and
//! the result runs the executors pass between tasks. Records cross from Python in batches (a list
//! of pairs per call); built-in stages (the word tokenizer, the reducers) run with the GIL
//! released.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use distcore_core::shuffle::combine::{self, Combiner, Stats};
use distcore_core::shuffle::reduce::Reducer;
use distcore_core::shuffle::run::{Merge, RunWriter, SharedBytes, Source};
use distcore_core::shuffle::{codec, fields, words};
use distcore_core::Error;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::values;
use crate::errors::{type_name, PyDistError, RecordTypeError};

fn parse_reducer(name: &str) -> PyResult<Reducer> {
    Ok(Reducer::parse(name).map_err(PyDistError)?)
}

fn stats_dict<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("records_in", s.records_in)?;
    d.set_item("records_out", s.records_out)?;
    d.set_item("spills", s.spills)?;
    d.set_item("spilled_bytes", s.spilled_bytes)?;
    d.set_item("output_bytes", s.output_bytes)?;
    Ok(d)
}

/// A finished map-side run: its bytes (or `None` when written to a file), partition offsets, stats.
type FinishedRun<'py> = (Option<Py<PyBytes>>, Vec<u64>, Bound<'py, PyDict>);

/// Writes a finished run to a file at `path`, or to memory.
fn sink(path: Option<PathBuf>) -> PyResult<Sink> {
    match path {
        None => Ok(Sink::Memory(Vec::new())),
        Some(p) => {
            let f = File::create(&p)
                .map_err(|e| PyDistError(Error::Io(format!("{}: {e}", p.display()))))?;
            Ok(Sink::File(BufWriter::with_capacity(1 << 20, f)))
        }
    }
}

enum Sink {
    Memory(Vec<u8>),
    File(BufWriter<File>),
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Memory(v) => v.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Memory(_) => Ok(()),
            Sink::File(f) => f.flush(),
        }
    }
}

/// The bytes of a run written to memory; `None` for a file.
fn run_bytes(py: Python<'_>, sink: Sink) -> Option<Py<PyBytes>> {
    match sink {
        Sink::Memory(v) => Some(PyBytes::new(py, &v).unbind()),
        Sink::File(_) => None,
    }
}

/// The map side of one task: takes (key, value) pairs in batches, folds each key's values with a
/// built-in reducer as they come (map-side combining), spills sorted runs to ``spill_dir`` when
/// its table passes ``memory_limit`` bytes, and ends as one run sorted by (partition, key).
/// Keys go to partitions by ``xxh3_64(encoded key, seed)``, never by Python's ``hash()``.
#[pyclass(module = "distcore._core")]
pub struct ShuffleWriter {
    inner: Option<Combiner>,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl ShuffleWriter {
    fn combiner(&mut self) -> PyResult<&mut Combiner> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the writer is finished"))
    }
}

#[pymethods]
impl ShuffleWriter {
    #[new]
    #[pyo3(signature = (reducer, partitions, *, seed = 0, memory_limit = usize::MAX, spill_dir = None))]
    fn new(
        reducer: &str,
        partitions: u32,
        seed: u64,
        memory_limit: usize,
        spill_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        if let Some(d) = &spill_dir {
            combine::check_spill_dir(d).map_err(PyDistError)?;
        }
        let inner = Combiner::new(
            parse_reducer(reducer)?,
            partitions,
            seed,
            memory_limit,
            spill_dir,
        )
        .map_err(PyDistError)?;
        Ok(Self {
            inner: Some(inner),
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        })
    }

    /// Takes a batch of ``(key, value)`` pairs, to the keys' hash partitions or, with
    /// ``partitions``, to the partition given for each pair. A pair that is not a 2-tuple, or a
    /// value the reducer cannot take, raises :class:`RecordTypeError` naming its index in the
    /// batch; the pairs before it are taken.
    #[pyo3(signature = (pairs, partitions = None))]
    #[allow(clippy::needless_pass_by_value)] // PyO3 hands arguments over by value
    fn add_pairs(
        &mut self,
        pairs: &Bound<'_, PyList>,
        partitions: Option<Vec<u32>>,
    ) -> PyResult<()> {
        if let Some(p) = &partitions {
            if p.len() != pairs.len() {
                return Err(PyValueError::new_err(format!(
                    "{} partitions for {} pairs",
                    p.len(),
                    pairs.len()
                )));
            }
        }
        let mut key = std::mem::take(&mut self.key_buf);
        let mut value = std::mem::take(&mut self.value_buf);
        let result = (|| {
            let c = self.combiner()?;
            let counting = c.reducer() == Reducer::Count;
            for (i, pair) in pairs.iter().enumerate() {
                let t = pair
                    .cast::<PyTuple>()
                    .ok()
                    .filter(|t| t.len() == 2)
                    .ok_or_else(|| {
                        RecordTypeError::new_err(format!(
                            "pair {i} of the batch is a {}, not a (key, value) tuple",
                            type_name(&pair)
                        ))
                    })?;
                key.clear();
                value.clear();
                let at = |e: PyErr| {
                    let err = RecordTypeError::new_err(format!("pair {i} of the batch: {e}"));
                    err.set_cause(pair.py(), Some(e));
                    err
                };
                values::put(&mut key, &t.get_item(0)?, true).map_err(at)?;
                if counting {
                    // A count needs no value: skip its encoding.
                    value.push(codec::NONE);
                } else {
                    values::put(&mut value, &t.get_item(1)?, false).map_err(at)?;
                }
                let to = partitions.as_ref().map(|p| p[i]);
                c.add_to(to, &key, &value)
                    .map_err(|e| at(PyDistError(e).into()))?;
            }
            Ok(())
        })();
        self.key_buf = key;
        self.value_buf = value;
        result
    }

    /// Takes a batch of keys, each with the value ``None`` (for ``count``).
    fn add_keys(&mut self, keys: &Bound<'_, PyList>) -> PyResult<()> {
        let mut key = std::mem::take(&mut self.key_buf);
        let none = [codec::NONE];
        let result = (|| {
            let c = self.combiner()?;
            for (i, k) in keys.iter().enumerate() {
                key.clear();
                values::put(&mut key, &k, true)
                    .map_err(|e| RecordTypeError::new_err(format!("key {i} of the batch: {e}")))?;
                c.add(&key, &none).map_err(PyDistError)?;
            }
            Ok(())
        })();
        self.key_buf = key;
        result
    }

    /// The built-in tokenizer: takes every word of ``text`` (UTF-8, split as ``str.split()``)
    /// as a (word, 1) pair, GIL released. Needs the ``count`` reducer.
    fn add_words(&mut self, py: Python<'_>, text: &Bound<'_, PyBytes>) -> PyResult<()> {
        let text = text.as_bytes();
        let c = self.combiner()?;
        py.detach(|| {
            let mut key = Vec::new();
            // A piece at a time: its table of distinct words is all the extra memory.
            words::count_pieces(text, 1 << 20, |counts| {
                for (w, n) in counts {
                    key.clear();
                    // Valid UTF-8: count_pieces checked it.
                    codec::put_str(&mut key, std::str::from_utf8(w).unwrap_or_default());
                    c.add_count(&key, *n)?;
                }
                Ok(())
            })
        })
        .map_err(|e| PyDistError(e).into())
    }

    /// The built-in CSV field mapper: for each row of ``chunk`` (whole rows, no header), the pair
    /// (column ``key``, column ``value`` or ``None``), fields typed as ``CsvField`` types them.
    /// GIL released. Returns the rows taken; ``first_row`` numbers rows in messages.
    #[pyo3(signature = (chunk, *, key, value = None, delimiter = ",", first_row = 0))]
    fn add_csv(
        &mut self,
        py: Python<'_>,
        chunk: &Bound<'_, PyBytes>,
        key: usize,
        value: Option<usize>,
        delimiter: &str,
        first_row: u64,
    ) -> PyResult<u64> {
        let [d] = delimiter.as_bytes() else {
            return Err(PyValueError::new_err(format!(
                "the delimiter must be one ASCII character, not {delimiter:?}"
            )));
        };
        let (chunk, d) = (chunk.as_bytes(), *d);
        let c = self.combiner()?;
        py.detach(|| fields::csv_pairs(chunk, d, key, value, first_row, |k, v| c.add(k, v)))
            .map_err(|e| PyDistError(e).into())
    }

    /// The built-in JSON-lines field mapper: for each line of ``chunk``, the pair (the value at
    /// the dotted path ``key``, the value at ``value`` or ``None``), as ``JsonField`` gives it.
    /// GIL released. Returns the records taken; ``offset`` (the chunk's byte offset in its file)
    /// places lines in messages.
    #[pyo3(signature = (chunk, *, key, value = None, offset = 0))]
    fn add_json(
        &mut self,
        py: Python<'_>,
        chunk: &Bound<'_, PyBytes>,
        key: &str,
        value: Option<&str>,
        offset: u64,
    ) -> PyResult<u64> {
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        let (key, value) = (path(key), value.map(path));
        let chunk = chunk.as_bytes();
        let c = self.combiner()?;
        py.detach(|| fields::json_pairs(chunk, &key, value.as_deref(), offset, |k, v| c.add(k, v)))
            .map_err(|e| PyDistError(e).into())
    }

    /// Bytes its table holds, as the memory budget counts them.
    #[getter]
    fn memory(&self) -> usize {
        self.inner.as_ref().map_or(0, Combiner::memory)
    }

    /// What it did so far: records_in, records_out, spills, spilled_bytes, output_bytes.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(
            py,
            &self.inner.as_ref().map(Combiner::stats).unwrap_or_default(),
        )
    }

    /// Ends the map side: the run (bytes, or ``None`` when written to ``path``), its partition
    /// offsets (``partitions + 1``) and the stats. Spill files are removed.
    #[pyo3(signature = (path = None))]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        path: Option<PathBuf>,
    ) -> PyResult<FinishedRun<'py>> {
        let c = self
            .inner
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the writer is finished"))?;
        let out = sink(path)?;
        let (out, offsets, stats) = py.detach(|| c.finish(out)).map_err(PyDistError)?;
        Ok((run_bytes(py, out), offsets, stats_dict(py, &stats)?))
    }
}

/// A run's range, as Python passes it: ``(bytes or path, start, end)``. Bytes are read in place
/// (kept alive, not copied), however many ranges share them.
fn sources(items: &Bound<'_, PyList>) -> PyResult<Vec<Source>> {
    items
        .iter()
        .map(|item| {
            let (data, start, end): (Bound<'_, PyAny>, u64, u64) = item.extract()?;
            let src = if let Ok(b) = data.cast::<PyBytes>() {
                let shared: SharedBytes = Arc::new(PyBackedBytes::from(b.clone()));
                Source::memory(shared, start as usize, end as usize)
            } else {
                let path: PathBuf = data.extract()?;
                Source::file(&path, start, end)
            };
            src.map_err(|e| PyDistError(e).into())
        })
        .collect()
}

/// The reduce side's k-way merge of sorted runs, read in batches of ``(key, value)`` tuples in key
/// order, each key's states merged in the runs' order and finished by the reducer (``collect``
/// gives the list of the key's values; a result run read with ``first`` gives its values back).
#[pyclass(module = "distcore._core")]
pub struct RunReader {
    merge: Merge,
}

#[pymethods]
impl RunReader {
    #[new]
    fn new(reducer: &str, runs: &Bound<'_, PyList>) -> PyResult<Self> {
        let merge = Merge::new(parse_reducer(reducer)?, sources(runs)?).map_err(PyDistError)?;
        Ok(Self { merge })
    }

    /// Up to ``n`` more ``(key, value)`` tuples; an empty list at the end.
    #[pyo3(signature = (n = 8192))]
    fn read<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let mut buf = Vec::new();
        for _ in 0..n {
            let Some((key, state)) = self.merge.next_group().map_err(PyDistError)? else {
                break;
            };
            buf.clear();
            state.finish(&mut buf).map_err(PyDistError)?;
            let pair = PyTuple::new(py, [values::decode(py, &key)?, values::decode(py, &buf)?])?;
            out.append(pair)?;
        }
        Ok(out)
    }

    /// Like :meth:`read`, into a dict.
    #[pyo3(signature = (into, n = usize::MAX))]
    fn read_into(&mut self, py: Python<'_>, into: &Bound<'_, PyDict>, n: usize) -> PyResult<usize> {
        let mut buf = Vec::new();
        for i in 0..n {
            let Some((key, state)) = self.merge.next_group().map_err(PyDistError)? else {
                return Ok(i);
            };
            buf.clear();
            state.finish(&mut buf).map_err(PyDistError)?;
            into.set_item(values::decode(py, &key)?, values::decode(py, &buf)?)?;
        }
        Ok(n)
    }
}

/// The reduce task of a built-in reducer, all in Rust with the GIL released: merges ``runs`` (the
/// partition's ranges of the map tasks' runs, in map-task order) and writes the result run (keys
/// in order, each with its finished value; read it back with ``RunReader("first", ...)``) to
/// ``path`` or memory. Returns ``(bytes or None, length, records)``.
#[pyfunction]
#[pyo3(signature = (reducer, runs, *, path = None))]
#[allow(clippy::needless_pass_by_value)] // PyO3 hands arguments over by value
pub fn reduce_runs(
    py: Python<'_>,
    reducer: &str,
    runs: &Bound<'_, PyList>,
    path: Option<PathBuf>,
) -> PyResult<(Option<Py<PyBytes>>, u64, u64)> {
    let r = parse_reducer(reducer)?;
    let srcs = sources(runs)?;
    let out = sink(path)?;
    let (out, offsets, records) = py
        .detach(|| {
            let mut merge = Merge::new(r, srcs)?;
            let mut writer = RunWriter::new(out, 1);
            let (mut value, mut records) = (Vec::new(), 0u64);
            while let Some((key, state)) = merge.next_group()? {
                value.clear();
                state.finish(&mut value)?;
                writer.raw(&key, &value)?;
                records += 1;
            }
            writer.finish(1).map(|(o, off)| (o, off, records))
        })
        .map_err(PyDistError)?;
    Ok((run_bytes(py, out), offsets[1], records))
}

/// Writes a result run from Python: ``(key, value)`` pairs given in ascending key order (a
/// Python reducer's output). Read it back with ``RunReader("first", ...)``.
#[pyclass(module = "distcore._core")]
pub struct ResultWriter {
    writer: Option<RunWriter<Sink>>,
    last_key: Vec<u8>,
    records: u64,
}

#[pymethods]
impl ResultWriter {
    #[new]
    #[pyo3(signature = (path = None))]
    fn new(path: Option<PathBuf>) -> PyResult<Self> {
        Ok(Self {
            writer: Some(RunWriter::new(sink(path)?, 1)),
            last_key: Vec::new(),
            records: 0,
        })
    }

    /// Appends a batch of ``(key, value)`` pairs; keys must ascend (in the encoding's order).
    fn add_pairs(&mut self, pairs: &Bound<'_, PyList>) -> PyResult<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the writer is finished"))?;
        let (mut key, mut value) = (Vec::new(), Vec::new());
        for pair in pairs.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
            key.clear();
            value.clear();
            values::put(&mut key, &k, true)?;
            values::put(&mut value, &v, false)?;
            if self.records > 0 && key <= self.last_key {
                return Err(PyValueError::new_err(
                    "result keys must be added in ascending order, once each",
                ));
            }
            w.raw(&key, &value).map_err(PyDistError)?;
            std::mem::swap(&mut self.last_key, &mut key);
            self.records += 1;
        }
        Ok(())
    }

    /// Ends the run: ``(bytes or None, length, records)``.
    fn finish(&mut self, py: Python<'_>) -> PyResult<(Option<Py<PyBytes>>, u64, u64)> {
        let w = self
            .writer
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the writer is finished"))?;
        let (out, offsets) = w.finish(1).map_err(PyDistError)?;
        Ok((run_bytes(py, out), offsets[1], self.records))
    }
}

/// The partition (``0 <= p < partitions``) a key goes to with ``seed``: ``xxh3_64`` of its
/// encoding, scaled by a multiply-shift. The same in every process and on every machine.
#[pyfunction]
#[pyo3(signature = (key, partitions, *, seed = 0))]
pub fn partition_of(key: &Bound<'_, PyAny>, partitions: u32, seed: u64) -> PyResult<u32> {
    if partitions == 0 {
        return Err(PyValueError::new_err("partitions must be >= 1"));
    }
    Ok(combine::partition(
        &values::encode(key, true)?,
        seed,
        partitions,
    ))
}

/// ``obj`` in the shuffle's record encoding (bytes that sort as the values do).
#[pyfunction]
pub fn encode_record_value<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &values::encode(obj, false)?))
}

/// The value an encoding holds (the inverse of :func:`encode_record_value`).
#[pyfunction]
pub fn decode_record_value<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    values::decode(py, data)
}

/// The names of the built-in reducers.
#[pyfunction]
pub fn reducer_names(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let names: Vec<Bound<'_, PyString>> = distcore_core::shuffle::reduce::REDUCERS
        .iter()
        .map(|(n, _)| PyString::new(py, n))
        .collect();
    PyList::new(py, names)
}

/// Adds the shuffle's classes and functions to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ShuffleWriter>()?;
    m.add_class::<RunReader>()?;
    m.add_class::<ResultWriter>()?;
    m.add_function(wrap_pyfunction!(reduce_runs, m)?)?;
    m.add_function(wrap_pyfunction!(partition_of, m)?)?;
    m.add_function(wrap_pyfunction!(encode_record_value, m)?)?;
    m.add_function(wrap_pyfunction!(decode_record_value, m)?)?;
    m.add_function(wrap_pyfunction!(reducer_names, m)?)
}
