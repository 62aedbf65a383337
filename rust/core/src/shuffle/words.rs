//! The built-in word count: text split exactly as Python's `str.split()` splits it, counted in
//! per-thread hash tables that are merged at the end (map-side combining: each thread's table
//! is its combiner), with no Python object per word.
//!
//! `str.split()` with no argument separates words by runs of whitespace, where whitespace is
//! every character `str.isspace()` accepts: Unicode's `White_Space` property plus the four
//! ASCII information separators U+001C..U+001F. The text must be UTF-8.

use std::thread;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// Counts per distinct word.
pub type Counts<'a> = FxHashMap<&'a [u8], u64>;

/// Below this many bytes per thread, one thread is faster (small in tests, to test the merge).
#[cfg(not(test))]
const MIN_BYTES_PER_THREAD: usize = 1 << 20;
#[cfg(test)]
const MIN_BYTES_PER_THREAD: usize = 1 << 10;

/// Whether ASCII byte `b` is whitespace for `str.split()`.
#[inline]
fn ascii_space(b: u8) -> bool {
    matches!(b, 0x09..=0x0D | 0x1C..=0x20)
}

/// The length of the whitespace character at the start of `s` (a non-empty suffix of valid
/// UTF-8 starting at a character boundary), or 0 if it is not whitespace.
#[inline]
fn space_len(s: &[u8]) -> usize {
    match s[0] {
        b if b < 0x80 => usize::from(ascii_space(b)),
        // U+0085, U+00A0
        0xC2 => usize::from(matches!(s.get(1), Some(0x85 | 0xA0))) * 2,
        // U+1680
        0xE1 => usize::from(s.get(1) == Some(&0x9A) && s.get(2) == Some(&0x80)) * 3,
        // U+2000..U+200A, U+2028, U+2029, U+202F, U+205F
        0xE2 => {
            let yes = match (s.get(1), s.get(2)) {
                (Some(0x80), Some(&c)) => matches!(c, 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF),
                (Some(0x81), Some(0x9F)) => true,
                _ => false,
            };
            usize::from(yes) * 3
        }
        // U+3000
        0xE3 => usize::from(s.get(1) == Some(&0x80) && s.get(2) == Some(&0x80)) * 3,
        _ => 0,
    }
}

/// The length of the UTF-8 character whose first byte is `b`.
#[inline]
fn char_len(b: u8) -> usize {
    match b {
        0..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Calls `f` on every word of `text` (valid UTF-8), in order.
pub fn for_each_word<'a>(text: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i < text.len() {
        let b = text[i];
        // ASCII letters and digits are the common case: no table, no branch on UTF-8.
        let n = if b < 0x80 {
            usize::from(ascii_space(b))
        } else {
            space_len(&text[i..])
        };
        if n > 0 {
            if let Some(s) = start.take() {
                f(&text[s..i]);
            }
            i += n;
        } else {
            start.get_or_insert(i);
            i += char_len(b);
        }
    }
    if let Some(s) = start {
        f(&text[s..]);
    }
}

/// Checks that `text` is UTF-8, naming the first bad byte.
pub fn check_utf8(text: &[u8]) -> Result<()> {
    std::str::from_utf8(text)
        .map(|_| ())
        .map_err(|e| Error::Decode(format!("the text is not UTF-8 at byte {}", e.valid_up_to())))
}

/// Counts the words of one piece of text.
fn count_into<'a>(text: &'a [u8], counts: &mut Counts<'a>) {
    for_each_word(text, |w| *counts.entry(w).or_insert(0) += 1);
}

/// Splits `text` into about `parts` pieces, each cut just after an ASCII whitespace byte, so no
/// word (and no multi-byte whitespace character) is cut in two.
fn pieces(text: &[u8], parts: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(parts);
    let mut rest = text;
    for k in (1..parts).rev() {
        let target = rest.len() - rest.len() * k / (k + 1);
        match rest[target..].iter().position(|&b| ascii_space(b)) {
            Some(p) => {
                let (head, tail) = rest.split_at(target + p + 1);
                out.push(head);
                rest = tail;
            }
            None => break, // no separator left: the rest is one piece
        }
    }
    out.push(rest);
    out
}

/// Counts the words of `text` (UTF-8) one piece of about `piece_bytes` at a time on this thread,
/// handing each piece's counts to `f`: memory stays bounded by one piece's distinct words.
pub fn count_pieces<'a>(
    text: &'a [u8],
    piece_bytes: usize,
    mut f: impl FnMut(&Counts<'a>) -> Result<()>,
) -> Result<()> {
    check_utf8(text)?;
    let mut counts = Counts::default();
    for piece in pieces(text, text.len().div_ceil(piece_bytes.max(1)).max(1)) {
        counts.clear();
        count_into(piece, &mut counts);
        f(&counts)?;
    }
    Ok(())
}

/// Counts the words of `text` (UTF-8) on up to `threads` threads (0: one per core).
pub fn count_words(text: &[u8], threads: usize) -> Result<Counts<'_>> {
    check_utf8(text)?;
    let threads = crate::par::threads_for(text.len(), threads, MIN_BYTES_PER_THREAD);
    let parts = pieces(text, threads);
    let mut tables: Vec<Counts<'_>> = thread::scope(|s| {
        let handles: Vec<_> = parts[1..]
            .iter()
            .map(|&p| {
                s.spawn(move || {
                    let mut c = Counts::default();
                    count_into(p, &mut c);
                    c
                })
            })
            .collect();
        let mut first = Counts::default();
        count_into(parts[0], &mut first);
        let mut all = vec![first];
        all.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("a counting thread")),
        );
        all
    });
    // Merge into the largest table.
    tables.sort_by_key(|t| std::cmp::Reverse(t.len()));
    let mut total = tables.swap_remove(0);
    for t in tables {
        merge(&mut total, t);
    }
    Ok(total)
}

/// Adds the counts of `other` to `total`.
fn merge<'a>(total: &mut Counts<'a>, other: Counts<'a>) {
    for (w, n) in other {
        *total.entry(w).or_insert(0) += n;
    }
}

/// Counts the words of several texts together. On a text that is not UTF-8, the error comes
/// with that text's index.
pub fn count_words_in<'a>(
    texts: &[&'a [u8]],
    threads: usize,
) -> std::result::Result<Counts<'a>, (usize, Error)> {
    let mut total = Counts::default();
    for (i, text) in texts.iter().enumerate() {
        let counts = count_words(text, threads).map_err(|e| (i, e))?;
        if total.is_empty() {
            total = counts;
        } else {
            merge(&mut total, counts);
        }
    }
    Ok(total)
}

/// The `n` most frequent words, most frequent first, ties in byte order of the word (so the
/// result does not depend on hashing or threads).
pub fn top(counts: &Counts<'_>, n: usize) -> Vec<(Vec<u8>, u64)> {
    let mut all: Vec<(&[u8], u64)> = counts.iter().map(|(w, c)| (*w, *c)).collect();
    let by = |a: &(&[u8], u64), b: &(&[u8], u64)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
    if n < all.len() {
        all.select_nth_unstable_by(n, by);
        all.truncate(n);
    }
    all.sort_unstable_by(by);
    all.into_iter().map(|(w, c)| (w.to_vec(), c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for_each_word(s.as_bytes(), |w| out.push(std::str::from_utf8(w).unwrap()));
        out
    }

    #[test]
    fn splits_as_python_str_split() {
        assert_eq!(words("  a bb\tccc\n\n d "), ["a", "bb", "ccc", "d"]);
        assert_eq!(words(""), Vec::<&str>::new());
        assert_eq!(words(" \u{3000} "), Vec::<&str>::new());
        // Every separator Python's str.isspace() accepts, and some it does not.
        let seps = [
            '\t', '\n', '\u{0B}', '\u{0C}', '\r', '\u{1C}', '\u{1D}', '\u{1E}', '\u{1F}', ' ',
            '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}', '\u{2005}', '\u{200A}', '\u{2028}',
            '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}',
        ];
        for sep in seps {
            assert_eq!(words(&format!("x{sep}y")), ["x", "y"], "{sep:?}");
        }
        for glue in [
            '\u{200B}', '\u{180E}', '\u{FEFF}', 'é', '\u{2030}', '\u{3001}',
        ] {
            let s = format!("x{glue}y");
            assert_eq!(words(&s), [s.as_str()], "{glue:?} is not whitespace");
        }
    }

    #[test]
    fn counts_match_a_plain_count_whatever_the_threads() {
        let mut text = String::new();
        for i in 0..300_000 {
            text.push_str(["the ", "a\u{3000}", "été\n", "x\u{2028}"][i % 4]);
            if i % 7 == 0 {
                text.push('w');
                text.push_str(&(i % 1000).to_string());
                text.push('\t');
            }
        }
        let mut want = std::collections::HashMap::<&str, u64>::default();
        for w in text.split(|c: char| c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)) {
            if !w.is_empty() {
                *want.entry(w).or_default() += 1;
            }
        }
        for threads in [1, 2, 3, 8] {
            let got = count_words(text.as_bytes(), threads).unwrap();
            assert_eq!(got.len(), want.len());
            for (w, n) in &want {
                assert_eq!(got[w.as_bytes()], *n, "{w}");
            }
        }
        let t = top(&count_words(text.as_bytes(), 2).unwrap(), 2);
        assert_eq!(t[0].0, b"a".to_vec()); // 75,000 each for a, the, ...: ties by bytes
        assert_eq!(t[1].0, b"the".to_vec());
    }

    #[test]
    fn pieces_cut_only_after_separators() {
        let text = b"aaaa bbbb cccc dddd eeee";
        for parts in 1..8 {
            let ps = pieces(text, parts);
            assert_eq!(ps.concat(), text.to_vec());
            for p in &ps[..ps.len() - 1] {
                assert!(ascii_space(*p.last().unwrap()));
            }
        }
        assert_eq!(pieces(b"nospace", 4), vec![&b"nospace"[..]]);
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_with_its_position() {
        let err = count_words(b"ok \xff bad", 1).unwrap_err();
        assert_eq!(err.to_string(), "the text is not UTF-8 at byte 3");
    }
}
