//! The exception hierarchy and the one place where core errors become Python exceptions.

use distcore_core::Error;
use pyo3::exceptions::{
    PyConnectionError, PyException, PyKeyError, PyLookupError, PyOSError, PyOverflowError,
    PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::{create_exception, PyErr};

create_exception!(
    distcore.exceptions,
    DistcoreError,
    PyException,
    "Base class of every error distcore raises."
);
create_exception!(
    distcore.exceptions,
    EmptyRingError,
    DistcoreError,
    "A lookup on a ring with no nodes."
);
create_exception!(
    distcore.exceptions,
    NodeNotFoundError,
    DistcoreError,
    "A node name that is not on the ring."
);
create_exception!(
    distcore.exceptions,
    DuplicateNodeError,
    DistcoreError,
    "A node that is already on the ring, or named twice in a clock."
);
create_exception!(
    distcore.exceptions,
    InvalidWeightError,
    DistcoreError,
    "A node weight that is not a positive finite number."
);
create_exception!(
    distcore.exceptions,
    ConfigError,
    DistcoreError,
    "A configuration (for example a nutcracker YAML) that is not valid."
);

create_exception!(
    distcore.exceptions,
    DecodeError,
    DistcoreError,
    "Bytes or text that are not a valid encoding (a clock, a timestamp, a packet)."
);
create_exception!(
    distcore.exceptions,
    CounterOverflowError,
    DistcoreError,
    "A logical counter that is negative or would pass its largest value."
);
create_exception!(
    distcore.exceptions,
    ClockSkewError,
    DistcoreError,
    "A remote timestamp further ahead of the local clock than max_offset; the clock is unchanged."
);
create_exception!(
    distcore.exceptions,
    TimeSyncError,
    DistcoreError,
    "No usable time from a server: timeout, malformed or unsynchronized reply, wrong origin."
);
create_exception!(
    distcore.exceptions,
    KissOfDeathError,
    TimeSyncError,
    "An NTP server sent a kiss-o'-death (DENY, RSTR, RATE, ...); its code is in ``.code``."
);
create_exception!(
    distcore.exceptions,
    PollTooSoonError,
    TimeSyncError,
    "A poll of an NTP server sooner than its minimum interval allows (RFC 4330)."
);

create_exception!(
    distcore.exceptions,
    LabelMismatchError,
    DecodeError,
    "A gossip packet or stream whose memberlist label is not this node's (or is missing)."
);
create_exception!(
    distcore.exceptions,
    DecryptionError,
    DecodeError,
    "A gossip packet or stream that no key in the keyring decrypts (or that should be encrypted)."
);
create_exception!(
    distcore.exceptions,
    GossipError,
    DistcoreError,
    "Base class of the errors a gossip node raises."
);
// The base is TimeoutError for the instance layout; `add_builtin_bases` puts GossipError first.
create_exception!(
    distcore.exceptions,
    JoinError,
    PyTimeoutError,
    "No seed could be contacted when joining; the seeds and their errors are in the message."
);
create_exception!(
    distcore.exceptions,
    NameConflictError,
    GossipError,
    "This node's name is held by a live member at another address (named in the message)."
);
create_exception!(
    distcore.exceptions,
    MetadataTooLargeError,
    GossipError,
    "Node metadata over memberlist's limit of 512 bytes."
);
create_exception!(
    distcore.exceptions,
    InvalidLabelError,
    GossipError,
    "A memberlist label longer than 255 bytes (as UTF-8, when given as text)."
);
create_exception!(
    distcore.exceptions,
    InvalidKeyError,
    GossipError,
    "An encryption key that is not 16, 24 or 32 bytes long (AES-128/192/256)."
);

create_exception!(
    distcore.exceptions,
    MapReduceError,
    DistcoreError,
    "Base class of the errors a MapReduce job raises."
);
create_exception!(
    distcore.exceptions,
    RecordTypeError,
    MapReduceError,
    "A key or value a job cannot take: a sum over strings, a mapper output that is not a pair."
);
create_exception!(
    distcore.exceptions,
    TaskError,
    MapReduceError,
    "A job's own function (mapper, combiner, reducer) raised; the message names the function, the \
     record and its position, and ``__cause__`` is the original exception."
);
create_exception!(
    distcore.exceptions,
    WorkerLostError,
    MapReduceError,
    "A worker process died running a task more times than the job's retries allow."
);
create_exception!(
    distcore.exceptions,
    UnpicklableError,
    MapReduceError,
    "A job function that cannot be sent to worker processes (pickle / cloudpickle refused it)."
);
// Created on ConnectionError for the instance layout (an OSError's); MapReduceError goes in
// front of it in `add_builtin_bases`, as for JoinError.
create_exception!(
    distcore.exceptions,
    SchedulerError,
    PyConnectionError,
    "A Dask scheduler that cannot be reached (the address and the error are in the message)."
);

/// Adds the built-in base that matches each exception's meaning, so `except LookupError` and
/// `except ValueError` keep working. `create_exception!` allows only one base, hence this step.
pub fn add_builtin_bases(py: Python<'_>) -> PyResult<()> {
    let pairs: [(
        Bound<'_, pyo3::types::PyType>,
        Bound<'_, pyo3::types::PyType>,
    ); 12] = [
        (
            py.get_type::<EmptyRingError>(),
            py.get_type::<PyLookupError>(),
        ),
        (
            py.get_type::<NodeNotFoundError>(),
            py.get_type::<PyKeyError>(),
        ),
        (
            py.get_type::<DuplicateNodeError>(),
            py.get_type::<PyValueError>(),
        ),
        (
            py.get_type::<InvalidWeightError>(),
            py.get_type::<PyValueError>(),
        ),
        (py.get_type::<ConfigError>(), py.get_type::<PyValueError>()),
        (py.get_type::<DecodeError>(), py.get_type::<PyValueError>()),
        (
            py.get_type::<CounterOverflowError>(),
            py.get_type::<PyOverflowError>(),
        ),
        (
            py.get_type::<MetadataTooLargeError>(),
            py.get_type::<PyValueError>(),
        ),
        (
            py.get_type::<InvalidLabelError>(),
            py.get_type::<PyValueError>(),
        ),
        (
            py.get_type::<InvalidKeyError>(),
            py.get_type::<PyValueError>(),
        ),
        (
            py.get_type::<RecordTypeError>(),
            py.get_type::<PyTypeError>(),
        ),
        (
            py.get_type::<UnpicklableError>(),
            py.get_type::<PyTypeError>(),
        ),
    ];
    for (cls, builtin) in pairs {
        let bases = pyo3::types::PyTuple::new(py, [cls.getattr("__base__")?, builtin.into_any()])?;
        cls.setattr("__bases__", bases)?;
    }
    // JoinError was created on TimeoutError (whose instances are laid out as OSError's, which
    // a later base change cannot add); GossipError goes in front of it.
    let join = py.get_type::<JoinError>();
    let bases = pyo3::types::PyTuple::new(
        py,
        [
            py.get_type::<GossipError>().into_any(),
            py.get_type::<PyTimeoutError>().into_any(),
        ],
    )?;
    join.setattr("__bases__", bases)?;
    let scheduler = py.get_type::<SchedulerError>();
    let bases = pyo3::types::PyTuple::new(
        py,
        [
            py.get_type::<MapReduceError>().into_any(),
            py.get_type::<PyConnectionError>().into_any(),
        ],
    )?;
    scheduler.setattr("__bases__", bases)?;
    Ok(())
}

/// A core error on its way to Python; `#[pyfunction]`s return `Result<T, PyDistError>` so `?` works.
pub struct PyDistError(pub Error);

impl From<Error> for PyDistError {
    fn from(e: Error) -> Self {
        PyDistError(e)
    }
}

impl From<PyDistError> for PyErr {
    fn from(e: PyDistError) -> PyErr {
        let msg = e.0.to_string();
        match e.0 {
            Error::EmptyRing => EmptyRingError::new_err(msg),
            Error::DuplicateNode(_) => DuplicateNodeError::new_err(msg),
            Error::UnknownNode(_) => NodeNotFoundError::new_err(msg),
            Error::InvalidWeight(_) => InvalidWeightError::new_err(msg),
            Error::UnknownHash(_) | Error::InvalidArgument(_) => PyValueError::new_err(msg),
            Error::Config(_) => ConfigError::new_err(msg),
            Error::Decode(_) => DecodeError::new_err(msg),
            Error::CounterOverflow(_) => CounterOverflowError::new_err(msg),
            Error::ClockSkew { .. } => ClockSkewError::new_err(msg),
            Error::Type(_) => RecordTypeError::new_err(msg),
            Error::Io(_) => PyOSError::new_err(msg),
        }
    }
}

/// The name of `obj`'s type, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// A key must be str (hashed as UTF-8) or bytes-like; anything else is a `TypeError`.
pub fn key_type_error(obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("key must be str or bytes, not {}", type_name(obj)))
}
