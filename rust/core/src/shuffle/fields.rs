//! The built-in field mappers: a key (and optionally a value) taken from each CSV row or JSON line
//! of a chunk of bytes, encoded for the combiner, with no Python object per record.
//!
//! Both must give exactly what their Python forms (`distcore.mapreduce.CsvField` / `JsonField`)
//! give, so the rules are spelled out here and there:
//!
//! - a CSV field becomes an `int` when it is an optional sign and decimal digits that fit 64 bits,
//!   else a `float` when Rust's `f64` parser accepts it (digits with `.` and an exponent, `inf`,
//!   `infinity`, `nan`, any case, with a sign), else the `str` as written;
//! - a JSON value keeps its JSON type: string, 64-bit integer, float, bool, null (`None`), array
//!   (a list; not as a key); a missing path gives `None`; objects and integers past 64 bits are
//!   refused.

use super::codec;
use crate::error::{Error, Result};

/// Appends a CSV field, typed as the module says.
pub fn put_csv_field(out: &mut Vec<u8>, field: &str) {
    let digits = field.strip_prefix(['+', '-']).unwrap_or(field);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = field.parse::<i64>() {
            codec::put_int(out, i);
            return;
        }
    }
    match field.parse::<f64>() {
        Ok(f) => codec::put_float(out, f),
        Err(_) => codec::put_str(out, field),
    }
}

/// Calls `f(key, value)` for each row of `chunk` (whole CSV rows, no header), the key from
/// column `key` and the value from column `value` (`None`: the value is `None`), both encoded.
/// `first_row` numbers the chunk's first row in messages.
pub fn csv_pairs(
    chunk: &[u8],
    delimiter: u8,
    key: usize,
    value: Option<usize>,
    first_row: u64,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<u64> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(chunk);
    let (mut k, mut v) = (Vec::new(), Vec::new());
    let mut record = csv::StringRecord::new();
    let mut rows = 0u64;
    loop {
        let more = reader
            .read_record(&mut record)
            .map_err(|e| Error::Decode(format!("row {}: {e}", first_row + rows)))?;
        if !more {
            return Ok(rows);
        }
        // Blank lines are no rows, as Python's csv module reads them.
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        let column = |i: usize| {
            record.get(i).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "row {} has {} fields, no column {i}",
                    first_row + rows,
                    record.len()
                ))
            })
        };
        k.clear();
        v.clear();
        put_csv_field(&mut k, column(key)?);
        match value {
            Some(i) => put_csv_field(&mut v, column(i)?),
            None => codec::put_none(&mut v),
        }
        f(&k, &v)?;
        rows += 1;
    }
}

/// Appends a JSON value as the module says; `key`: lists are refused.
fn put_json(out: &mut Vec<u8>, v: &serde_json::Value, key: bool) -> Result<()> {
    use serde_json::Value as J;
    match v {
        J::Null => codec::put_none(out),
        J::Bool(b) => codec::put_bool(out, *b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                codec::put_int(out, i);
            } else if n.is_u64() {
                return Err(Error::Type(format!("the integer {n} does not fit 64 bits")));
            } else {
                codec::put_float(out, n.as_f64().unwrap_or(f64::NAN));
            }
        }
        J::String(s) => codec::put_str(out, s),
        J::Array(items) if !key => {
            codec::begin_sequence(out, true);
            for item in items {
                put_json(out, item, false)?;
            }
            codec::end_sequence(out);
        }
        J::Array(_) => return Err(Error::Type("a key must be hashable, not a list".into())),
        J::Object(_) => return Err(Error::Type(
            "the built-in JSON mapper takes strings, numbers, bools, null and arrays, not objects"
                .into(),
        )),
    }
    Ok(())
}

/// The value at a dotted `path` (`["a", "b"]` for `a.b`), or `Null` when it is missing.
fn at_path<'a>(v: &'a serde_json::Value, path: &[String]) -> &'a serde_json::Value {
    static NULL: serde_json::Value = serde_json::Value::Null;
    path.iter()
        .try_fold(v, |v, name| v.get(name))
        .unwrap_or(&NULL)
}

/// Calls `f(key, value)` for each non-blank line of `chunk` (JSON lines), the key at `key` and
/// the value at `value` (`None`: the value is `None`). Errors name the line by its byte offset,
/// counted from `offset` (the chunk's offset in its file).
pub fn json_pairs(
    chunk: &[u8],
    key: &[String],
    value: Option<&[String]>,
    offset: u64,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<u64> {
    let (mut k, mut v) = (Vec::new(), Vec::new());
    let mut records = 0;
    let mut at = 0usize;
    for line in chunk.split_inclusive(|&b| b == b'\n') {
        let start = at;
        at += line.len();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let where_ = || format!("line at byte {}", offset + start as u64);
        let doc: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| Error::Decode(format!("{}: {e}", where_())))?;
        k.clear();
        v.clear();
        put_json(&mut k, at_path(&doc, key), true)
            .map_err(|e| Error::Type(format!("{}: {e}", where_())))?;
        match value {
            Some(p) => put_json(&mut v, at_path(&doc, p), false)
                .map_err(|e| Error::Type(format!("{}: {e}", where_())))?,
            None => codec::put_none(&mut v),
        }
        f(&k, &v)?;
        records += 1;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shuffle::codec::{decode, Value};

    fn field(s: &str) -> Value<'static> {
        let mut out = Vec::new();
        put_csv_field(&mut out, s);
        let v = decode(&out).unwrap();
        decode(Box::leak(codec::encode(&v).into_boxed_slice())).unwrap()
    }

    #[test]
    fn csv_fields_are_typed_as_documented() {
        assert_eq!(field("42"), Value::Int(42));
        assert_eq!(field("-7"), Value::Int(-7));
        assert_eq!(field("+7"), Value::Int(7));
        assert_eq!(field("99999999999999999999"), Value::Float(1e20));
        assert_eq!(field("2.5"), Value::Float(2.5));
        assert_eq!(field("1e3"), Value::Float(1000.0));
        assert_eq!(field("Inf"), Value::Float(f64::INFINITY));
        assert_eq!(field(" 42"), Value::Str(" 42".into()));
        assert_eq!(field("1_000"), Value::Str("1_000".into()));
        assert_eq!(field(""), Value::Str("".into()));
        assert_eq!(field("abc"), Value::Str("abc".into()));
    }

    #[test]
    fn csv_and_json_rows_give_pairs() {
        let mut got = Vec::new();
        let rows = csv_pairs(b"a,1\n\"b,c\",2\n\na,3\n", b',', 0, Some(1), 0, |k, v| {
            got.push((decode(k).unwrap() == Value::Str("a".into()), v.to_vec()));
            assert!(matches!(decode(v).unwrap(), Value::Int(1..=3)));
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, 3);
        assert_eq!(got.iter().filter(|(a, _)| *a).count(), 2);
        let err = csv_pairs(b"a\n", b',', 0, Some(1), 10, |_, _| Ok(())).unwrap_err();
        assert_eq!(err.to_string(), "row 10 has 1 fields, no column 1");

        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        let mut keys = Vec::new();
        let n = json_pairs(
            b"{\"u\": {\"id\": 3}, \"n\": 1.5}\n\n{\"n\": 2}\n",
            &path("u.id"),
            Some(&path("n")),
            100,
            |k, v| {
                keys.push((k.to_vec(), v.to_vec()));
                Ok(())
            },
        );
        assert_eq!(n.unwrap(), 2);
        assert_eq!(decode(&keys[0].0).unwrap(), Value::Int(3));
        assert_eq!(decode(&keys[0].1).unwrap(), Value::Float(1.5));
        assert_eq!(
            decode(&keys[1].0).unwrap(),
            Value::None,
            "a missing path is None"
        );
        let bad = json_pairs(b"{}\n{oops\n", &path("a"), None, 100, |_, _| Ok(())).unwrap_err();
        assert!(bad.to_string().starts_with("line at byte 103:"), "{bad}");
        let obj = json_pairs(b"{\"a\": {}}\n", &path("a"), None, 0, |_, _| Ok(())).unwrap_err();
        assert!(matches!(obj, Error::Type(_)));
    }
}
