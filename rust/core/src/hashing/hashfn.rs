//! Key hash functions, bit-exact with twemproxy 0.5.0's hashkit (and libmemcached's libhashkit).
//!
//! The peers' quirks are part of the contract and are kept on purpose:
//! - `fnv*`, `one_at_a_time` and the 3-byte tail of `hsieh` read key bytes as C `char`, which is signed on
//!   x86: a byte >= 0x80 is sign-extended before it is mixed in;
//! - `crc32` is libmemcached's 15-bit "crc" (`((~crc) >> 16) & 0x7fff`), while `crc32a` is the standard CRC-32;
//! - `crc16` (XMODEM) never masks its accumulator to 16 bits, so its result is 32 bits wide;
//! - `fnv1a_64` runs FNV-1a with the 64-bit constants truncated to a 32-bit state;
//! - `murmur` is `MurmurHash2` with seed `0xdeadbeef * len`;
//! - `jenkins` is lookup3 `hashlittle(key, len, 13)`.

use md5::{Digest, Md5};

use crate::{Error, Result};

/// One of twemproxy's twelve key hash functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFn {
    OneAtATime,
    Md5,
    Crc16,
    Crc32,
    Crc32a,
    Fnv1_64,
    Fnv1a64,
    Fnv1_32,
    Fnv1a32,
    Hsieh,
    Murmur,
    Jenkins,
}

impl HashFn {
    /// All twelve, in twemproxy's `HASH_CODEC` order.
    pub const ALL: [HashFn; 12] = [
        HashFn::OneAtATime,
        HashFn::Md5,
        HashFn::Crc16,
        HashFn::Crc32,
        HashFn::Crc32a,
        HashFn::Fnv1_64,
        HashFn::Fnv1a64,
        HashFn::Fnv1_32,
        HashFn::Fnv1a32,
        HashFn::Hsieh,
        HashFn::Murmur,
        HashFn::Jenkins,
    ];

    /// The name twemproxy's YAML uses for this function.
    pub fn name(self) -> &'static str {
        match self {
            HashFn::OneAtATime => "one_at_a_time",
            HashFn::Md5 => "md5",
            HashFn::Crc16 => "crc16",
            HashFn::Crc32 => "crc32",
            HashFn::Crc32a => "crc32a",
            HashFn::Fnv1_64 => "fnv1_64",
            HashFn::Fnv1a64 => "fnv1a_64",
            HashFn::Fnv1_32 => "fnv1_32",
            HashFn::Fnv1a32 => "fnv1a_32",
            HashFn::Hsieh => "hsieh",
            HashFn::Murmur => "murmur",
            HashFn::Jenkins => "jenkins",
        }
    }

    /// Parses a twemproxy hash name.
    pub fn from_name(name: &str) -> Result<HashFn> {
        HashFn::ALL
            .into_iter()
            .find(|h| h.name() == name)
            .ok_or_else(|| Error::UnknownHash(name.to_owned()))
    }

    /// Hashes `key` exactly as twemproxy does.
    #[inline]
    pub fn hash(self, key: &[u8]) -> u32 {
        match self {
            HashFn::OneAtATime => one_at_a_time(key),
            HashFn::Md5 => md5_u32(key),
            HashFn::Crc16 => crc16(key),
            HashFn::Crc32 => crc32(key),
            HashFn::Crc32a => crc32a(key),
            HashFn::Fnv1_64 => fnv1_64(key),
            HashFn::Fnv1a64 => fnv1a_64(key),
            HashFn::Fnv1_32 => fnv1_32(key),
            HashFn::Fnv1a32 => fnv1a_32(key),
            HashFn::Hsieh => hsieh(key),
            HashFn::Murmur => murmur(key),
            HashFn::Jenkins => jenkins(key),
        }
    }
}

/// A byte read as a C `char` on x86 (signed), widened as C widens it.
#[inline]
fn c_char(b: u8) -> u32 {
    b as i8 as i32 as u32
}

/// Jenkins one-at-a-time with signed-char bytes.
pub fn one_at_a_time(key: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &b in key {
        h = h.wrapping_add(c_char(b));
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

/// The full 16-byte md5 digest.
#[inline]
pub fn md5_digest(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The first four bytes of md5, little-endian.
#[inline]
pub fn md5_u32(key: &[u8]) -> u32 {
    let d = md5_digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

const CRC16_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
            bit += 1;
        }
        table[i] = crc & 0xffff;
        i += 1;
    }
    table
};

/// CRC-16/XMODEM whose accumulator is never masked (twemproxy's `hash_crc16`).
pub fn crc16(key: &[u8]) -> u32 {
    let mut crc: u32 = 0;
    for &b in key {
        crc = (crc << 8) ^ CRC16_TABLE[(((crc >> 8) ^ b as u32) & 0xff) as usize];
    }
    crc
}

/// libmemcached's 15-bit "crc": bits 16..31 of the standard CRC-32, top bit cleared.
pub fn crc32(key: &[u8]) -> u32 {
    (crc32a(key) >> 16) & 0x7fff
}

/// The standard CRC-32 (as zlib's `crc32`).
pub fn crc32a(key: &[u8]) -> u32 {
    crc32fast::hash(key)
}

const FNV_64_INIT: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_32_INIT: u32 = 2_166_136_261;
const FNV_32_PRIME: u32 = 16_777_619;

/// FNV-1 64-bit with signed-char bytes, truncated to 32 bits.
pub fn fnv1_64(key: &[u8]) -> u32 {
    let mut h = FNV_64_INIT;
    for &b in key {
        h = h.wrapping_mul(FNV_64_PRIME);
        h ^= b as i8 as i64 as u64;
    }
    h as u32
}

/// twemproxy's `fnv1a_64`: FNV-1a on a 32-bit state with the 64-bit constants truncated.
/// Equal to the low 32 bits of true FNV-1a-64 only for bytes < 0x80.
pub fn fnv1a_64(key: &[u8]) -> u32 {
    let mut h = FNV_64_INIT as u32;
    for &b in key {
        h ^= c_char(b);
        h = h.wrapping_mul(FNV_64_PRIME as u32);
    }
    h
}

/// FNV-1 32-bit with signed-char bytes.
pub fn fnv1_32(key: &[u8]) -> u32 {
    let mut h = FNV_32_INIT;
    for &b in key {
        h = h.wrapping_mul(FNV_32_PRIME);
        h ^= c_char(b);
    }
    h
}

/// FNV-1a 32-bit with signed-char bytes.
pub fn fnv1a_32(key: &[u8]) -> u32 {
    let mut h = FNV_32_INIT;
    for &b in key {
        h ^= c_char(b);
        h = h.wrapping_mul(FNV_32_PRIME);
    }
    h
}

#[inline]
fn get16(d: &[u8]) -> u32 {
    u32::from(d[0]) | (u32::from(d[1]) << 8)
}

/// Paul Hsieh's `SuperFastHash` as twemproxy has it (signed char in the 3-byte tail).
pub fn hsieh(key: &[u8]) -> u32 {
    if key.is_empty() {
        return 0;
    }
    let mut h: u32 = 0;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        h = h.wrapping_add(get16(c));
        let tmp = (get16(&c[2..]) << 11) ^ h;
        h = (h << 16) ^ tmp;
        h = h.wrapping_add(h >> 11);
    }
    let rest = chunks.remainder();
    match rest.len() {
        3 => {
            h = h.wrapping_add(get16(rest));
            h ^= h << 16;
            h ^= c_char(rest[2]) << 18;
            h = h.wrapping_add(h >> 11);
        }
        2 => {
            h = h.wrapping_add(get16(rest));
            h ^= h << 11;
            h = h.wrapping_add(h >> 17);
        }
        1 => {
            h = h.wrapping_add(u32::from(rest[0]));
            h ^= h << 10;
            h = h.wrapping_add(h >> 1);
        }
        _ => {}
    }
    h ^= h << 3;
    h = h.wrapping_add(h >> 5);
    h ^= h << 4;
    h = h.wrapping_add(h >> 17);
    h ^= h << 25;
    h.wrapping_add(h >> 6)
}

/// `MurmurHash2` with twemproxy's seed `0xdeadbeef * len`.
pub fn murmur(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let len = key.len() as u32;
    let seed = 0xdead_beef_u32.wrapping_mul(len);
    let mut h = seed ^ len;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        if rest.len() >= 3 {
            h ^= u32::from(rest[2]) << 16;
        }
        if rest.len() >= 2 {
            h ^= u32::from(rest[1]) << 8;
        }
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// Bob Jenkins' lookup3 `hashlittle(key, len, 13)`.
pub fn jenkins(key: &[u8]) -> u32 {
    #[inline]
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }
    #[inline]
    fn word(bytes: &[u8]) -> u32 {
        // A partial last block is zero-padded, which is what lookup3's masked reads amount to.
        let mut w = [0u8; 4];
        w[..bytes.len()].copy_from_slice(bytes);
        u32::from_le_bytes(w)
    }
    let init = 0xdead_beef_u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(13);
    let (mut a, mut b, mut c) = (init, init, init);
    if key.is_empty() {
        return c;
    }
    let mut rest = key;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    let n = rest.len();
    a = a.wrapping_add(word(&rest[..n.min(4)]));
    if n > 4 {
        b = b.wrapping_add(word(&rest[4..n.min(8)]));
    }
    if n > 8 {
        c = c.wrapping_add(word(&rest[8..n]));
    }
    // final(a, b, c)
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
}

/// `MurmurHash3` x86 32-bit, as the `mmh3` package and pymemcache compute it.
/// Hand-written because the crates.io ports hash through `io::Read`, which costs more than the hash.
pub fn murmur3_32(key: &[u8], seed: u32) -> u32 {
    let mut m = Murmur3::new(seed);
    m.update(key);
    m.finish()
}

/// `MurmurHash3` x86 32-bit over data given in pieces. A hasher fed a fixed prefix can be cloned
/// and finished with many suffixes without hashing the prefix again (pymemcache's scores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Murmur3 {
    h: u32,
    /// Bytes of an incomplete 4-byte block.
    tail: [u8; 4],
    tail_len: usize,
    len: usize,
}

impl Murmur3 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    pub fn new(seed: u32) -> Self {
        Murmur3 {
            h: seed,
            tail: [0; 4],
            tail_len: 0,
            len: 0,
        }
    }

    #[inline]
    fn scramble(block: [u8; 4]) -> u32 {
        u32::from_le_bytes(block)
            .wrapping_mul(Self::C1)
            .rotate_left(15)
            .wrapping_mul(Self::C2)
    }

    #[inline]
    fn mix(&mut self, block: [u8; 4]) {
        self.h = (self.h ^ Self::scramble(block))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    /// Feeds more bytes.
    #[inline]
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len();
        if self.tail_len > 0 {
            let take = (4 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 4 {
                return;
            }
            self.mix(self.tail);
            self.tail_len = 0;
        }
        let mut chunks = data.chunks_exact(4);
        for c in &mut chunks {
            self.mix([c[0], c[1], c[2], c[3]]);
        }
        let rest = chunks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The hash of everything fed so far.
    #[inline]
    pub fn finish(&self) -> u32 {
        let mut h = self.h;
        if self.tail_len > 0 {
            let mut block = [0u8; 4];
            block[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            h ^= Self::scramble(block);
        }
        h ^= self.len as u32;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

/// XXH3 64-bit with a seed (seed 0 equals `xxhash.xxh3_64_intdigest`).
#[inline]
pub fn xxh3_64(key: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values for "foobar" and "café" (UTF-8) checked end to end through nutcracker 0.5.0 (see
    // shared/reference/hashing.md §1a); the nutcracker tests in tests/ re-check every function.
    #[test]
    fn twemproxy_vectors() {
        let cases: [(HashFn, u32, u32); 12] = [
            (HashFn::OneAtATime, 0xf952_fde7, 0xd99c_709e),
            (HashFn::Md5, 0x22f6_5838, 0xe47f_1107),
            (HashFn::Crc16, 0x9eff_b025, 0xf626_9667),
            (HashFn::Crc32, 0x0000_1ef6, 0x0000_18ad),
            (HashFn::Crc32a, 0x9ef6_1f95, 0x98ad_42b5),
            (HashFn::Fnv1_64, 0xa4dd_a9c2, 0x8a06_fef1),
            (HashFn::Fnv1a64, 0xf739_67e8, 0xcef6_bb89),
            (HashFn::Fnv1_32, 0x31f0_b262, 0xd682_f171),
            (HashFn::Fnv1a32, 0xbf9c_f968, 0x7572_c049),
            (HashFn::Hsieh, 0x07a5_862c, 0xde3f_8855),
            (HashFn::Murmur, 0xabec_ff17, 0xda11_981f),
            (HashFn::Jenkins, 0x0fdd_8b60, 0xcb62_25ad),
        ];
        for (f, foobar, cafe) in cases {
            assert_eq!(f.hash(b"foobar"), foobar, "{} foobar", f.name());
            assert_eq!(f.hash("café".as_bytes()), cafe, "{} café", f.name());
        }
    }

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for f in HashFn::ALL {
            assert_eq!(HashFn::from_name(f.name()), Ok(f));
        }
        assert_eq!(
            HashFn::from_name("sha1"),
            Err(Error::UnknownHash("sha1".into()))
        );
    }

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Published MurmurHash3_x86_32 vectors (also what mmh3.hash(..., signed=False) returns).
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn murmur3_fed_in_pieces_equals_murmur3_of_the_whole() {
        let data: Vec<u8> = (0u8..40).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
        for split in 0..data.len() {
            for split2 in split..data.len() {
                let mut m = Murmur3::new(7);
                m.update(&data[..split]);
                m.update(&data[split..split2]);
                m.update(&data[split2..]);
                assert_eq!(m.finish(), murmur3_32(&data, 7), "{split} {split2}");
            }
        }
    }

    #[test]
    fn jenkins_handles_every_tail_length() {
        // lookup3's own self-test value: hashlittle("Four score and seven years ago", 30, 0) = 0x17770551;
        // with initval 13 we check only that all tail lengths differ and do not panic.
        let data = b"Four score and seven years ago";
        let mut seen = std::collections::HashSet::new();
        for n in 0..data.len() {
            seen.insert(jenkins(&data[..n]));
        }
        assert_eq!(seen.len(), data.len());
    }
}
