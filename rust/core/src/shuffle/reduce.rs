//! The built-in reducers: what a key's values fold into, on the map side (combining) and on the
//! reduce side alike. Each keeps a small [`State`] per key that takes values one at a time
//! ([`State::update`]), merges with the state of a later part of the input ([`State::merge`]),
//! survives a spill to disk ([`State::write`]/[`State::read`]) and ends as one value
//! ([`State::finish`], in the record encoding of [`codec`](super::codec)).

use xxhash_rust::xxh3::xxh3_64;

use super::codec::{self, Number};
use crate::error::{Error, Result};

/// A built-in reducer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reducer {
    /// How many values.
    Count,
    /// Their sum: an int while every value is an int or bool, else a float (as Python's `sum`).
    Sum,
    /// The smallest value (numbers compared by value across int and float).
    Min,
    /// The largest value.
    Max,
    /// The arithmetic mean, a float (compensated summation).
    Mean,
    /// The first value in input order.
    First,
    /// The last value in input order.
    Last,
    /// Every value, in input order, as a list.
    Collect,
    /// An estimate of the number of distinct values: exact up to [`EXACT_DISTINCT`], then
    /// HyperLogLog with 2^12 registers (standard error 1.6 %).
    ApproxDistinct,
}

/// Every reducer with its name.
pub const REDUCERS: [(&str, Reducer); 9] = [
    ("count", Reducer::Count),
    ("sum", Reducer::Sum),
    ("min", Reducer::Min),
    ("max", Reducer::Max),
    ("mean", Reducer::Mean),
    ("first", Reducer::First),
    ("last", Reducer::Last),
    ("collect", Reducer::Collect),
    ("approx_distinct", Reducer::ApproxDistinct),
];

impl Reducer {
    /// The reducer called `name`.
    pub fn parse(name: &str) -> Result<Self> {
        REDUCERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
            .ok_or_else(|| {
                let names: Vec<&str> = REDUCERS.iter().map(|(n, _)| *n).collect();
                Error::InvalidArgument(format!(
                    "unknown reducer {name:?}; one of {}",
                    names.join(", ")
                ))
            })
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        REDUCERS
            .iter()
            .find(|(_, r)| *r == self)
            .map(|(n, _)| *n)
            .expect("every reducer is named")
    }

    /// The state of one value.
    pub fn start(self, value: &[u8]) -> Result<State> {
        let mut s = match self {
            Reducer::Count => State::Count(0),
            Reducer::Sum => State::SumInt(0),
            Reducer::Mean => State::Mean {
                sum: 0.0,
                carry: 0.0,
                n: 0,
            },
            Reducer::Min | Reducer::Max | Reducer::First | Reducer::Last => {
                return Ok(State::Value(value.to_vec()))
            }
            Reducer::Collect => State::List(Vec::new()),
            Reducer::ApproxDistinct => State::Distinct(Distinct::Exact(Vec::new())),
        };
        s.update(self, value)?;
        Ok(s)
    }

    /// The state of `n` values whose content does not matter (only for `count`).
    pub fn counted(self, n: u64) -> State {
        debug_assert_eq!(self, Reducer::Count);
        State::Count(n)
    }
}

/// Values exactly counted by `approx_distinct` before it switches to HyperLogLog.
pub const EXACT_DISTINCT: usize = 512;
const HLL_BITS: u32 = 12;
const HLL_REGISTERS: usize = 1 << HLL_BITS;

/// The distinct-values state: the hashes themselves while few, then HyperLogLog registers.
#[derive(Debug, Clone, PartialEq)]
pub enum Distinct {
    /// Sorted distinct 64-bit hashes.
    Exact(Vec<u64>),
    /// HyperLogLog registers.
    Registers(Box<[u8]>),
}

impl Distinct {
    fn add(&mut self, hash: u64) {
        match self {
            Distinct::Exact(hashes) => {
                if let Err(at) = hashes.binary_search(&hash) {
                    hashes.insert(at, hash);
                    if hashes.len() > EXACT_DISTINCT {
                        let mut regs = vec![0u8; HLL_REGISTERS].into_boxed_slice();
                        for h in hashes.iter() {
                            hll_add(&mut regs, *h);
                        }
                        *self = Distinct::Registers(regs);
                    }
                }
            }
            Distinct::Registers(regs) => hll_add(regs, hash),
        }
    }

    fn merge(&mut self, other: Distinct) {
        match other {
            Distinct::Exact(hashes) => hashes.into_iter().for_each(|h| self.add(h)),
            Distinct::Registers(theirs) => {
                if let Distinct::Exact(hashes) = self {
                    let mut regs = theirs;
                    for h in hashes.iter() {
                        hll_add(&mut regs, *h);
                    }
                    *self = Distinct::Registers(regs);
                } else if let Distinct::Registers(regs) = self {
                    regs.iter_mut()
                        .zip(theirs.iter())
                        .for_each(|(a, b)| *a = (*a).max(*b));
                }
            }
        }
    }

    fn estimate(&self) -> u64 {
        match self {
            Distinct::Exact(hashes) => hashes.len() as u64,
            Distinct::Registers(regs) => {
                let m = HLL_REGISTERS as f64;
                let sum: f64 = regs.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
                let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
                let zeros = regs.len() - regs.iter().filter(|r| **r > 0).count();
                // Linear counting while many registers are still empty (Flajolet et al.).
                let est = if raw <= 2.5 * m && zeros > 0 {
                    m * (m / zeros as f64).ln()
                } else {
                    raw
                };
                est.round() as u64
            }
        }
    }
}

fn hll_add(regs: &mut [u8], hash: u64) {
    let index = (hash >> (64 - HLL_BITS)) as usize;
    let rest = hash << HLL_BITS;
    let rank = (rest.leading_zeros() + 1).min(64 - HLL_BITS + 1) as u8;
    regs[index] = regs[index].max(rank);
}

/// What one key's values have folded into so far.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// `count`.
    Count(u64),
    /// `sum` over ints only so far.
    SumInt(i128),
    /// `sum` once a float was seen: Neumaier's compensated sum.
    SumFloat {
        /// The running sum.
        sum: f64,
        /// The low-order bits the sum lost.
        carry: f64,
    },
    /// `mean`: a compensated sum and the count.
    Mean {
        /// The running sum.
        sum: f64,
        /// The low-order bits the sum lost.
        carry: f64,
        /// How many values.
        n: u64,
    },
    /// `min`, `max`, `first`, `last`: one encoded value.
    Value(Vec<u8>),
    /// `collect`: the encoded values, one after another.
    List(Vec<u8>),
    /// `approx_distinct`.
    Distinct(Distinct),
}

/// Adds `x` to a Neumaier sum.
fn neumaier(sum: &mut f64, carry: &mut f64, x: f64) {
    let t = *sum + x;
    if sum.abs() >= x.abs() {
        *carry += (*sum - t) + x;
    } else {
        *carry += (x - t) + *sum;
    }
    *sum = t;
}

fn as_f64(n: Number) -> f64 {
    match n {
        Number::Int(i) => i as f64,
        Number::Float(f) => f,
    }
}

impl State {
    /// Folds in one more (encoded) value.
    pub fn update(&mut self, reducer: Reducer, value: &[u8]) -> Result<()> {
        match self {
            State::Count(n) => *n += 1,
            State::SumInt(total) => match codec::number(value)? {
                Number::Int(i) => *total += i128::from(i),
                Number::Float(f) => {
                    let (mut sum, mut carry) = (*total as f64, 0.0);
                    neumaier(&mut sum, &mut carry, f);
                    *self = State::SumFloat { sum, carry };
                }
            },
            State::SumFloat { sum, carry } | State::Mean { sum, carry, .. } => {
                let x = as_f64(codec::number(value)?);
                neumaier(sum, carry, x);
                if let State::Mean { n, .. } = self {
                    *n += 1;
                }
            }
            State::Value(current) => {
                let replace = match reducer {
                    Reducer::Min => codec::compare(value, current).is_lt(),
                    Reducer::Max => codec::compare(value, current).is_gt(),
                    Reducer::Last => true,
                    _ => false,
                };
                if replace {
                    current.clear();
                    current.extend_from_slice(value);
                }
            }
            State::List(items) => items.extend_from_slice(value),
            State::Distinct(d) => d.add(xxh3_64(value)),
        }
        Ok(())
    }

    /// Folds in the state of a later part of the input.
    pub fn merge(&mut self, reducer: Reducer, later: State) -> Result<()> {
        match (&mut *self, later) {
            (State::Count(a), State::Count(b)) => *a += b,
            (State::SumInt(a), State::SumInt(b)) => *a += b,
            (State::SumFloat { sum, carry }, State::SumInt(b)) => neumaier(sum, carry, b as f64),
            (State::SumInt(a), State::SumFloat { sum, carry }) => {
                let (mut s, mut c) = (sum, carry);
                neumaier(&mut s, &mut c, *a as f64);
                *self = State::SumFloat { sum: s, carry: c };
            }
            (State::SumFloat { sum, carry }, State::SumFloat { sum: s, carry: c }) => {
                neumaier(sum, carry, s);
                *carry += c;
            }
            (
                State::Mean { sum, carry, n },
                State::Mean {
                    sum: s,
                    carry: c,
                    n: m,
                },
            ) => {
                neumaier(sum, carry, s);
                *carry += c;
                *n += m;
            }
            (State::Value(_), State::Value(v)) => self.update(reducer, &v)?,
            (State::List(a), State::List(b)) => a.extend_from_slice(&b),
            (State::Distinct(a), State::Distinct(b)) => a.merge(b),
            (a, b) => {
                return Err(Error::Decode(format!(
                    "cannot merge {a:?} with {b:?} for {}",
                    reducer.name()
                )))
            }
        }
        Ok(())
    }

    /// Bytes the state owns on the heap (beside its own size), for the memory budget.
    pub fn heap_size(&self) -> usize {
        match self {
            State::Value(v) | State::List(v) => v.capacity(),
            State::Distinct(Distinct::Exact(h)) => h.capacity() * 8,
            State::Distinct(Distinct::Registers(r)) => r.len(),
            _ => 0,
        }
    }

    /// Appends the state in the spill format (its reducer is known to the reader).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            State::Count(n) => out.extend_from_slice(&n.to_le_bytes()),
            State::SumInt(total) => {
                out.push(0);
                out.extend_from_slice(&total.to_le_bytes());
            }
            State::SumFloat { sum, carry } => {
                out.push(1);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&carry.to_le_bytes());
            }
            State::Mean { sum, carry, n } => {
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&carry.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            State::Value(v) | State::List(v) => out.extend_from_slice(v),
            State::Distinct(Distinct::Exact(hashes)) => {
                out.push(0);
                for h in hashes {
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            State::Distinct(Distinct::Registers(regs)) => {
                out.push(1);
                out.extend_from_slice(regs);
            }
        }
    }

    /// Reads a state written by [`State::write`] for `reducer`.
    pub fn read(reducer: Reducer, buf: &[u8]) -> Result<State> {
        let bad = || Error::Decode(format!("corrupt {} state in a shuffle run", reducer.name()));
        let le8 = |b: &[u8]| -> Result<[u8; 8]> { b.try_into().map_err(|_| bad()) };
        Ok(match reducer {
            Reducer::Count => State::Count(u64::from_le_bytes(le8(buf)?)),
            Reducer::Sum => match buf.split_first() {
                Some((0, rest)) => {
                    State::SumInt(i128::from_le_bytes(rest.try_into().map_err(|_| bad())?))
                }
                Some((1, rest)) if rest.len() == 16 => State::SumFloat {
                    sum: f64::from_le_bytes(le8(&rest[..8])?),
                    carry: f64::from_le_bytes(le8(&rest[8..])?),
                },
                _ => return Err(bad()),
            },
            Reducer::Mean if buf.len() == 24 => State::Mean {
                sum: f64::from_le_bytes(le8(&buf[..8])?),
                carry: f64::from_le_bytes(le8(&buf[8..16])?),
                n: u64::from_le_bytes(le8(&buf[16..])?),
            },
            Reducer::Mean => return Err(bad()),
            Reducer::Min | Reducer::Max | Reducer::First | Reducer::Last => {
                State::Value(buf.to_vec())
            }
            Reducer::Collect => State::List(buf.to_vec()),
            Reducer::ApproxDistinct => match buf.split_first() {
                Some((0, rest)) if rest.len() % 8 == 0 => State::Distinct(Distinct::Exact(
                    rest.chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
                        .collect(),
                )),
                Some((1, rest)) if rest.len() == HLL_REGISTERS => {
                    State::Distinct(Distinct::Registers(rest.into()))
                }
                _ => return Err(bad()),
            },
        })
    }

    /// The reduced value, encoded.
    pub fn finish(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            State::Count(n) => {
                codec::put_int(out, i64::try_from(*n).map_err(|_| overflow("count"))?);
            }
            State::SumInt(total) => {
                codec::put_int(out, i64::try_from(*total).map_err(|_| overflow("sum"))?);
            }
            State::SumFloat { sum, carry } => codec::put_float(out, sum + carry),
            State::Mean { sum, carry, n } => codec::put_float(out, (sum + carry) / *n as f64),
            State::Value(v) => out.extend_from_slice(v),
            State::List(items) => codec::put_list(out, std::iter::once(items.as_slice())),
            State::Distinct(d) => codec::put_int(out, d.estimate() as i64),
        }
        Ok(())
    }
}

fn overflow(what: &str) -> Error {
    Error::CounterOverflow(format!("the {what} does not fit a 64-bit int"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shuffle::codec::{decode, encode, Value};

    fn run(reducer: Reducer, values: &[Value<'_>], split: usize) -> Value<'static> {
        let enc: Vec<Vec<u8>> = values.iter().map(encode).collect();
        let fold = |part: &[Vec<u8>]| {
            let mut s = reducer.start(&part[0]).unwrap();
            part[1..].iter().for_each(|v| s.update(reducer, v).unwrap());
            // Through the spill format.
            let mut buf = Vec::new();
            s.write(&mut buf);
            State::read(reducer, &buf).unwrap()
        };
        let mut state = fold(&enc[..split]);
        if split < enc.len() {
            state.merge(reducer, fold(&enc[split..])).unwrap();
        }
        let mut out = Vec::new();
        state.finish(&mut out).unwrap();
        let v = decode(&out).unwrap();
        // Own it, for the caller.
        decode(Box::leak(encode(&v).into_boxed_slice())).unwrap()
    }

    #[test]
    fn each_reducer_gives_what_python_would_split_anywhere() {
        let ints = [Value::Int(5), Value::Int(-2), Value::Int(9), Value::Int(5)];
        for split in 1..=ints.len() {
            assert_eq!(run(Reducer::Count, &ints, split), Value::Int(4));
            assert_eq!(run(Reducer::Sum, &ints, split), Value::Int(17));
            assert_eq!(run(Reducer::Min, &ints, split), Value::Int(-2));
            assert_eq!(run(Reducer::Max, &ints, split), Value::Int(9));
            assert_eq!(run(Reducer::Mean, &ints, split), Value::Float(4.25));
            assert_eq!(run(Reducer::First, &ints, split), Value::Int(5));
            assert_eq!(run(Reducer::Last, &ints, split), Value::Int(5));
            assert_eq!(
                run(Reducer::Collect, &ints, split),
                Value::List(ints.to_vec())
            );
            assert_eq!(run(Reducer::ApproxDistinct, &ints, split), Value::Int(3));
        }
        let mixed = [Value::Int(1), Value::Float(0.5), Value::Bool(true)];
        assert_eq!(run(Reducer::Sum, &mixed, 1), Value::Float(2.5));
        assert_eq!(run(Reducer::Min, &mixed, 2), Value::Float(0.5));
        assert_eq!(
            run(Reducer::Max, &mixed, 1),
            Value::Int(1),
            "first of equal maxima kept"
        );
    }

    #[test]
    fn compensated_sums_keep_small_terms() {
        let vals = [Value::Float(1e16), Value::Float(1.0), Value::Float(-1e16)];
        assert_eq!(run(Reducer::Sum, &vals, 1), Value::Float(1.0));
    }

    #[test]
    fn sums_of_strings_are_type_errors() {
        let err = Reducer::Sum
            .start(&encode(&Value::Str("x".into())))
            .unwrap_err();
        assert_eq!(err, Error::Type("expected a number, got str".into()));
    }

    #[test]
    fn approx_distinct_is_within_five_percent_at_100k() {
        let mut s = Reducer::ApproxDistinct
            .start(&encode(&Value::Int(0)))
            .unwrap();
        for i in 1..100_000 {
            s.update(Reducer::ApproxDistinct, &encode(&Value::Int(i)))
                .unwrap();
        }
        let mut half = Reducer::ApproxDistinct
            .start(&encode(&Value::Int(0)))
            .unwrap();
        for i in 50_000..150_000 {
            half.update(Reducer::ApproxDistinct, &encode(&Value::Int(i)))
                .unwrap();
        }
        s.merge(Reducer::ApproxDistinct, half).unwrap();
        let mut out = Vec::new();
        s.finish(&mut out).unwrap();
        let Value::Int(est) = decode(&out).unwrap() else {
            panic!()
        };
        assert!((est - 150_001).abs() < 7_500, "{est}");
    }

    #[test]
    fn reducers_are_named() {
        for (name, r) in REDUCERS {
            assert_eq!(Reducer::parse(name).unwrap(), r);
            assert_eq!(r.name(), name);
        }
        assert!(Reducer::parse("median").is_err());
    }
}
