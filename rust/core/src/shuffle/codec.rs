//! The record encoding of the shuffle: keys and values as bytes whose byte order is the values'
//! natural order, so the core hashes, sorts, spills and merges records without knowing their
//! types, and a run sorted by `memcmp` is sorted as Python would sort its keys.
//!
//! Each value is a tag byte and a payload (the tuple layer of FoundationDB, reduced to Python's
//! common types):
//!
//! | tag  | type                | payload                                                         |
//! |------|---------------------|-----------------------------------------------------------------|
//! | 0x01 | `None`              | none                                                            |
//! | 0x02 | `False`             | none                                                            |
//! | 0x03 | `True`              | none                                                            |
//! | 0x04 | `int` (64-bit)      | 8 bytes big-endian, sign bit flipped                            |
//! | 0x05 | `float`             | 8 bytes big-endian, negative: all bits flipped, else sign flipped |
//! | 0x06 | `str`               | UTF-8, each 0x00 written 0x00 0xFF, then 0x00                   |
//! | 0x07 | `bytes`             | the same escaping, then 0x00                                    |
//! | 0x08 | `tuple`             | the elements, then 0x00                                         |
//! | 0x09 | `list`              | the elements, then 0x00                                         |
//! | 0x0A | anything else       | its pickle, escaped, then 0x00 (ordered by those bytes)         |
//!
//! Values of one type sort in their natural order (strings by code point, as Python does);
//! values of different types sort by tag. Keys that Python calls equal across types (`1`, `1.0`,
//! `True`) are distinct keys here.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// Tag of `None`.
pub const NONE: u8 = 0x01;
/// Tag of `False`.
pub const FALSE: u8 = 0x02;
/// Tag of `True`.
pub const TRUE: u8 = 0x03;
/// Tag of a 64-bit `int`.
pub const INT: u8 = 0x04;
/// Tag of a `float`.
pub const FLOAT: u8 = 0x05;
/// Tag of a `str`.
pub const STR: u8 = 0x06;
/// Tag of `bytes`.
pub const BYTES: u8 = 0x07;
/// Tag of a `tuple`.
pub const TUPLE: u8 = 0x08;
/// Tag of a `list`.
pub const LIST: u8 = 0x09;
/// Tag of a pickled object.
pub const PICKLE: u8 = 0x0A;
/// Ends a string, bytes, tuple, list or pickle.
const END: u8 = 0x00;
/// Follows a 0x00 that is data, not an end.
const ESCAPED: u8 = 0xFF;

/// A decoded value, borrowing from the encoded bytes where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` that fits 64 bits.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(Cow<'a, str>),
    /// `bytes`.
    Bytes(Cow<'a, [u8]>),
    /// A `tuple`.
    Tuple(Vec<Value<'a>>),
    /// A `list`.
    List(Vec<Value<'a>>),
    /// A pickled object, still pickled.
    Pickle(Cow<'a, [u8]>),
}

/// Appends `None`.
pub fn put_none(out: &mut Vec<u8>) {
    out.push(NONE);
}

/// Appends a `bool`.
pub fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { TRUE } else { FALSE });
}

/// Appends a 64-bit `int`.
pub fn put_int(out: &mut Vec<u8>, v: i64) {
    out.push(INT);
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

/// Appends a `float`; every NaN is written as the one quiet NaN (Python treats NaNs as distinct
/// keys; here they are one key, sorted after +inf).
pub fn put_float(out: &mut Vec<u8>, v: f64) {
    let bits = if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    };
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    out.push(FLOAT);
    out.extend_from_slice(&ordered.to_be_bytes());
}

/// Appends `data` escaped and ended, after `tag`.
fn put_escaped(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
    out.push(tag);
    let mut rest = data;
    while let Some(i) = memchr::memchr(END, rest) {
        out.extend_from_slice(&rest[..=i]);
        out.push(ESCAPED);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(END);
}

/// Appends a `str`.
pub fn put_str(out: &mut Vec<u8>, v: &str) {
    put_escaped(out, STR, v.as_bytes());
}

/// Appends `bytes`.
pub fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    put_escaped(out, BYTES, v);
}

/// Appends a pickled object's pickle.
pub fn put_pickle(out: &mut Vec<u8>, pickle: &[u8]) {
    put_escaped(out, PICKLE, pickle);
}

/// Starts a tuple (`list`: a list); put the elements, then [`end_sequence`].
pub fn begin_sequence(out: &mut Vec<u8>, list: bool) {
    out.push(if list { LIST } else { TUPLE });
}

/// Ends a tuple or list.
pub fn end_sequence(out: &mut Vec<u8>) {
    out.push(END);
}

/// Appends an already encoded list of already encoded elements.
pub fn put_list<'a>(out: &mut Vec<u8>, elements: impl IntoIterator<Item = &'a [u8]>) {
    begin_sequence(out, true);
    for e in elements {
        out.extend_from_slice(e);
    }
    end_sequence(out);
}

/// Appends `v`.
pub fn put(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::None => put_none(out),
        Value::Bool(b) => put_bool(out, *b),
        Value::Int(i) => put_int(out, *i),
        Value::Float(f) => put_float(out, *f),
        Value::Str(s) => put_str(out, s),
        Value::Bytes(b) => put_bytes(out, b),
        Value::Pickle(p) => put_pickle(out, p),
        Value::Tuple(items) | Value::List(items) => {
            begin_sequence(out, matches!(v, Value::List(_)));
            for item in items {
                put(out, item);
            }
            end_sequence(out);
        }
    }
}

/// Encodes `v` into a new buffer.
pub fn encode(v: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, v);
    out
}

fn truncated() -> Error {
    Error::Decode("truncated record value".into())
}

/// Reads an escaped payload at the start of `buf`: the data (borrowed when it held no escape)
/// and the bytes it took, its end included.
fn take_escaped(buf: &[u8]) -> Result<(Cow<'_, [u8]>, usize)> {
    let first = memchr::memchr(END, buf).ok_or_else(truncated)?;
    if buf.get(first + 1) != Some(&ESCAPED) {
        return Ok((Cow::Borrowed(&buf[..first]), first + 1));
    }
    let mut data = Vec::with_capacity(first + 16);
    let mut at = 0;
    loop {
        let i = at + memchr::memchr(END, &buf[at..]).ok_or_else(truncated)?;
        data.extend_from_slice(&buf[at..i]);
        if buf.get(i + 1) == Some(&ESCAPED) {
            data.push(END);
            at = i + 2;
        } else {
            return Ok((Cow::Owned(data), i + 1));
        }
    }
}

fn eight(buf: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = buf
        .get(..8)
        .ok_or_else(truncated)?
        .try_into()
        .expect("8 bytes");
    Ok(u64::from_be_bytes(bytes))
}

/// Decodes the value at the start of `buf`; returns it and the bytes it took.
pub fn decode_prefix(buf: &[u8]) -> Result<(Value<'_>, usize)> {
    let (&tag, rest) = buf.split_first().ok_or_else(truncated)?;
    let (v, used) = match tag {
        NONE => (Value::None, 0),
        FALSE => (Value::Bool(false), 0),
        TRUE => (Value::Bool(true), 0),
        INT => (Value::Int((eight(rest)? ^ (1 << 63)) as i64), 8),
        FLOAT => {
            let o = eight(rest)?;
            let bits = if o >> 63 == 1 { o ^ (1 << 63) } else { !o };
            (Value::Float(f64::from_bits(bits)), 8)
        }
        STR => {
            let (data, used) = take_escaped(rest)?;
            let s = match data {
                Cow::Borrowed(b) => Cow::Borrowed(
                    std::str::from_utf8(b)
                        .map_err(|_| Error::Decode("invalid UTF-8 in a str".into()))?,
                ),
                Cow::Owned(b) => Cow::Owned(
                    String::from_utf8(b)
                        .map_err(|_| Error::Decode("invalid UTF-8 in a str".into()))?,
                ),
            };
            (Value::Str(s), used)
        }
        BYTES => {
            let (data, used) = take_escaped(rest)?;
            (Value::Bytes(data), used)
        }
        PICKLE => {
            let (data, used) = take_escaped(rest)?;
            (Value::Pickle(data), used)
        }
        TUPLE | LIST => {
            let mut items = Vec::new();
            let mut at = 0;
            loop {
                match rest.get(at) {
                    None => return Err(truncated()),
                    Some(&END) => break,
                    Some(_) => {
                        let (item, used) = decode_prefix(&rest[at..])?;
                        items.push(item);
                        at += used;
                    }
                }
            }
            let v = if tag == LIST {
                Value::List(items)
            } else {
                Value::Tuple(items)
            };
            (v, at + 1)
        }
        other => {
            return Err(Error::Decode(format!(
                "unknown record value tag 0x{other:02x}"
            )))
        }
    };
    Ok((v, used + 1))
}

/// Decodes `buf`, which must hold exactly one value.
pub fn decode(buf: &[u8]) -> Result<Value<'_>> {
    let (v, used) = decode_prefix(buf)?;
    if used != buf.len() {
        return Err(Error::Decode(format!(
            "{} bytes after a record value",
            buf.len() - used
        )));
    }
    Ok(v)
}

/// A number, as the numeric reducers see a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An `int` (or a `bool`, as Python's `sum` counts it).
    Int(i64),
    /// A `float`.
    Float(f64),
}

/// The number an encoded value holds, or a type error naming what it holds instead.
pub fn number(buf: &[u8]) -> Result<Number> {
    match buf.first() {
        Some(&INT) => Ok(Number::Int((eight(&buf[1..])? ^ (1 << 63)) as i64)),
        Some(&FLOAT) => match decode(buf)? {
            Value::Float(f) => Ok(Number::Float(f)),
            _ => unreachable!("a float tag decodes to a float"),
        },
        Some(&FALSE) => Ok(Number::Int(0)),
        Some(&TRUE) => Ok(Number::Int(1)),
        Some(&t) => Err(Error::Type(format!(
            "expected a number, got {}",
            type_name(t)
        ))),
        None => Err(truncated()),
    }
}

/// The Python type name of a tag, for messages.
pub fn type_name(tag: u8) -> &'static str {
    match tag {
        NONE => "None",
        FALSE | TRUE => "bool",
        INT => "int",
        FLOAT => "float",
        STR => "str",
        BYTES => "bytes",
        TUPLE => "tuple",
        LIST => "list",
        PICKLE => "an object",
        _ => "an unknown type",
    }
}

/// Orders two encoded values as Python orders them: numbers (bool, int, float) by value across
/// their types, everything else by its bytes (natural order within one type).
pub fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let numeric = |t: Option<&u8>| matches!(t, Some(&(FALSE | TRUE | INT | FLOAT)));
    if a.first() != b.first() && numeric(a.first()) && numeric(b.first()) {
        if let (Ok(x), Ok(y)) = (number(a), number(b)) {
            return compare_numbers(x, y);
        }
    }
    a.cmp(b)
}

/// Orders an int and a float exactly (no rounding of large ints).
fn compare_numbers(x: Number, y: Number) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (x, y) {
        (Number::Int(a), Number::Int(b)) => a.cmp(&b),
        (Number::Float(a), Number::Float(b)) => a.total_cmp(&b),
        (Number::Int(a), Number::Float(b)) => {
            compare_numbers(Number::Float(b), Number::Int(a)).reverse()
        }
        (Number::Float(a), Number::Int(b)) => {
            // 2^63: the first float past i64::MAX.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            if a.is_nan() || a >= LIMIT {
                Ordering::Greater
            } else if a < -LIMIT {
                Ordering::Less
            } else {
                // a is within i64's range: compare integer parts, then the fraction.
                let whole = a.floor();
                match (whole as i64).cmp(&b) {
                    Ordering::Equal if a > whole => Ordering::Greater,
                    other => other,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value<'static>> {
        let leaf = prop_oneof![
            Just(Value::None),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("NaN", |f| !f.is_nan())
                .prop_map(Value::Float),
            ".{0,8}".prop_map(|s| Value::Str(Cow::Owned(s))),
            prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Bytes(Cow::Owned(b))),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
                prop::collection::vec(inner, 0..4).prop_map(Value::List),
            ]
        })
    }

    proptest! {
        #[test]
        fn values_round_trip(v in value()) {
            let enc = encode(&v);
            prop_assert_eq!(decode(&enc).unwrap(), v);
        }

        #[test]
        fn ints_sort_as_bytes(a: i64, b: i64) {
            prop_assert_eq!(encode(&Value::Int(a)).cmp(&encode(&Value::Int(b))), a.cmp(&b));
        }

        #[test]
        fn floats_sort_as_bytes(a: f64, b: f64) {
            prop_assume!(!a.is_nan() && !b.is_nan());
            let order = encode(&Value::Float(a)).cmp(&encode(&Value::Float(b)));
            prop_assert_eq!(order, a.total_cmp(&b));
        }

        #[test]
        fn strings_and_tuples_sort_as_python_does(a in "[a\\x00b]{0,5}", b in "[a\\x00b]{0,5}", n: i64, m: i64) {
            let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
            prop_assert_eq!(encode(&s(&a)).cmp(&encode(&s(&b))), a.cmp(&b));
            let ta = Value::Tuple(vec![s(&a), Value::Int(n)]);
            let tb = Value::Tuple(vec![s(&b), Value::Int(m)]);
            prop_assert_eq!(encode(&ta).cmp(&encode(&tb)), (&a, n).cmp(&(&b, m)));
        }

        #[test]
        fn numbers_compare_across_types(a: i64, b in -1e19f64..1e19) {
            let order = compare(&encode(&Value::Int(a)), &encode(&Value::Float(b)));
            // Exact reference: the int against the float's floor, then its fraction.
            let floor = b.floor();
            let expected = match i128::from(a).cmp(&(floor as i128)) {
                std::cmp::Ordering::Equal if b > floor => std::cmp::Ordering::Less,
                other => other,
            };
            prop_assert_eq!(order, expected);
        }
    }

    #[test]
    fn a_shorter_tuple_sorts_first_and_zero_bytes_survive() {
        let s = |x: &str| Value::Str(Cow::Owned(x.to_owned()));
        let short = encode(&Value::Tuple(vec![s("a")]));
        let long = encode(&Value::Tuple(vec![s("a"), s("")]));
        assert!(short < long);
        let z = Value::Bytes(Cow::Owned(vec![0, 0, 1, 0]));
        assert_eq!(decode(&encode(&z)).unwrap(), z);
        assert!(decode(&[STR, b'a']).is_err());
        assert!(decode(&[0x42]).is_err());
    }
}
