//! `distcore._core`: thin PyO3 bindings over `distcore-core`. Users import `distcore.*`, never this module.

mod clocks;
mod errors;
mod gossip;
mod hashing;
mod mapreduce;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    use super::{clocks, errors, gossip, hashing, mapreduce};
    use pyo3::prelude::*;

    #[pymodule_export]
    use errors::{
        ClockSkewError, ConfigError, CounterOverflowError, DecodeError, DecryptionError,
        DistcoreError, DuplicateNodeError, EmptyRingError, GossipError, InvalidKeyError,
        InvalidLabelError, InvalidWeightError, JoinError, KissOfDeathError, LabelMismatchError,
        MapReduceError, MetadataTooLargeError, NameConflictError, NodeNotFoundError,
        PollTooSoonError, RecordTypeError, SchedulerError, TaskError, TimeSyncError,
        UnpicklableError, WorkerLostError,
    };

    // Python's dunder name, not a Rust constant.
    #[allow(non_upper_case_globals)]
    #[pymodule_export]
    const __version__: &str = env!("CARGO_PKG_VERSION");

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        errors::add_builtin_bases(m.py())?;
        hashing::register(m)?;
        clocks::register(m)?;
        gossip::register(m)?;
        mapreduce::register(m)
    }
}
