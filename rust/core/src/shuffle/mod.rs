//! The MapReduce core: what runs between a job's map and reduce functions without a Python object
//! per record:
//!
//! - [`codec`]: keys and values as order-preserving bytes;
//! - [`reduce`]: the built-in reducers (count, sum, min, max, mean, first, last, collect,
//!   approx_distinct) and their per-key states;
//! - [`combine`]: the map side (seeded hash partitioning, a combining table, spills to disk
//!   under a memory budget, one sorted run per map task);
//! - [`run`]: the run format and the k-way merge of the reduce side;
//! - [`fields`]: the built-in CSV and JSON-lines field mappers;
//! - [`words`]: the built-in word count (splitting as Python's `str.split()`);
//! - [`sort`]: the stable parallel sort of (u64 key, u64 value) pairs.

pub mod codec;
pub mod combine;
pub mod fields;
pub mod reduce;
pub mod run;
pub mod sort;
pub mod words;
