//! The MapReduce core: what runs between a job's map and reduce functions without a Python object
//! per record. So far: the built-in word count (splitting as Python's `str.split()`, counting in
//! per-thread tables merged at the end) and the stable parallel sort of (u64 key, u64 value)
//! pairs. Partitioning, spilling and merging follow.

pub mod sort;
pub mod words;
