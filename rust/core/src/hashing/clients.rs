//! The Python memcached clients' own key routing, bit-exact, so a service can switch clients
//! without moving keys.
//!
//! - pymemcache 4.0.0 `HashClient` with its default `RendezvousHash`: every node scores
//!   `murmur3_32(f"{node}-{key}", 0)` and the highest score wins; on equal scores the larger node
//!   name (Python `max(str, str)`) wins. Its pure-Python murmur3 reads `ord(c) & 0xff` of each
//!   character, so a text is hashed as the low byte of each code point, not as UTF-8.
//! - python-memcached 1.62 `Client._get_server` with every server alive:
//!   `buckets[((crc32(key) & 0xffffffff) >> 16) & 0x7fff % len(buckets)]`, where `buckets` holds
//!   each server `weight` times, in config order.

use std::borrow::Cow;

use super::hashfn::{crc32, Murmur3};
use crate::{Error, Result};

/// pymemcache's murmur3 input: the low byte of each character's code point.
pub fn low_bytes(text: &str) -> Cow<'_, [u8]> {
    if text.is_ascii() {
        Cow::Borrowed(text.as_bytes())
    } else {
        Cow::Owned(text.chars().map(|c| c as u32 as u8).collect())
    }
}

/// pymemcache's node name for a server given as a string, as `HashClient` builds it:
/// `normalize_server_spec` then `_make_client_key`. `"host:port"` and `"[v6]:port"` become
/// `"host:port"` (11211 when no port is given), `"unix:/path"` and `"/path"` become the path.
pub fn pymemcache_node_name(spec: &str) -> Result<String> {
    if let Some(path) = spec.strip_prefix("unix:") {
        return Ok(path.to_owned());
    }
    if spec.starts_with('/') {
        return Ok(spec.to_owned());
    }
    let (host, port) = if !spec.contains(':') || spec.ends_with(']') {
        (spec, 11211)
    } else {
        let (host, port) = spec.rsplit_once(':').expect("spec contains ':'");
        let port = parse_int(port).ok_or_else(|| {
            Error::Config(format!("server {spec:?}: port {port:?} is not an integer"))
        })?;
        (host, port)
    };
    // str.strip("[]") when the host starts with "[".
    let host = if host.starts_with('[') {
        host.trim_matches(|c| c == '[' || c == ']')
    } else {
        host
    };
    Ok(format!("{host}:{port}"))
}

/// Python's `int()` of a decimal string: surrounding whitespace, a sign, `_` between digits.
fn parse_int(text: &str) -> Option<i128> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let v: i128 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -v } else { v })
}

/// pymemcache 4.0.0 `HashClient`'s default routing: rendezvous hashing with its murmur3.
#[derive(Debug, Clone)]
pub struct PymemcacheRing {
    nodes: Vec<String>,
    /// murmur3 fed with each node's `"<node>-"`, ready to take a key.
    prefixes: Vec<Murmur3>,
}

impl PymemcacheRing {
    /// A ring of node names (`"host:port"`); a repeated name is kept once, as `add_node` does.
    pub fn new<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut ring = PymemcacheRing {
            nodes: Vec::new(),
            prefixes: Vec::new(),
        };
        for n in nodes {
            let n = n.into();
            if ring.nodes.contains(&n) {
                continue;
            }
            let mut prefix = low_bytes(&n).into_owned();
            prefix.push(b'-');
            let mut hasher = Murmur3::new(0);
            hasher.update(&prefix);
            ring.prefixes.push(hasher);
            ring.nodes.push(n);
        }
        ring
    }

    /// Node names in the order given.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The score of node `i` for a key given as murmur input (see [`low_bytes`]).
    #[inline]
    pub fn score(&self, i: usize, key: &[u8]) -> u32 {
        let mut hasher = self.prefixes[i].clone();
        hasher.update(key);
        hasher.finish()
    }

    /// The node a key goes to; `key` is the key's text as [`low_bytes`] gives it.
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Result<usize> {
        let mut best: Option<(u32, usize)> = None;
        for i in 0..self.nodes.len() {
            let score = self.score(i, key);
            best = match best {
                Some((s, b)) if s > score || (s == score && self.nodes[b] >= self.nodes[i]) => {
                    Some((s, b))
                }
                _ => Some((score, i)),
            };
        }
        best.map(|(_, i)| i).ok_or(Error::EmptyRing)
    }
}

/// python-memcached's `serverHashFunction` (`cmemcache_hash`): bits 16..30 of CRC-32.
#[inline]
pub fn python_memcached_hash(key: &[u8]) -> u32 {
    crc32(key)
}

/// python-memcached's name for a server spec, from `_Host`'s patterns: `"host[:port]"` and
/// `"inet:host[:port]"` become `"host:port"`, `"inet6:[addr][:port]"` becomes `"[addr]:port"`,
/// `"unix:path"` stays as it is; the port defaults to 11211.
pub fn python_memcached_node_name(spec: &str) -> Result<String> {
    let bad = || Error::Config(format!("unable to parse connection string: {spec:?}"));
    if spec.contains('\n') {
        return Err(bad());
    }
    if let Some(path) = spec.strip_prefix("unix:") {
        return Ok(format!("unix:{path}"));
    }
    let port_of = |p: Option<&str>| -> Result<u64> {
        match p {
            None => Ok(11211),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| bad())
            }
            Some(_) => Err(bad()),
        }
    };
    if let Some(rest) = spec.strip_prefix("inet6:") {
        // \[(?P<host>[^\[\]]+)\](:(?P<port>[0-9]+))?
        if let Some(inner) = rest.strip_prefix('[') {
            if let Some((addr, after)) = inner.split_once(']') {
                if !addr.is_empty() && !addr.contains('[') {
                    let port = match after {
                        "" => Some(port_of(None)?),
                        a => a.strip_prefix(':').map(|p| port_of(Some(p))).transpose()?,
                    };
                    if let Some(port) = port {
                        return Ok(format!("[{addr}]:{port}"));
                    }
                }
            }
        }
    }
    // (inet:)?(?P<host>[^:]+)(:(?P<port>[0-9]+))?
    let host_port = |text: &str| -> Option<Result<String>> {
        let (host, port) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        if host.is_empty() {
            return None;
        }
        Some(port_of(port).map(|p| format!("{host}:{p}")))
    };
    if let Some(rest) = spec.strip_prefix("inet:") {
        if let Some(Ok(name)) = host_port(rest) {
            return Ok(name);
        }
    }
    match host_port(spec) {
        Some(Ok(name)) => Ok(name),
        _ => Err(bad()),
    }
}

/// The most buckets a python-memcached ring may hold (it builds the list in memory too).
pub const MAX_BUCKETS: u64 = 1 << 24;

/// python-memcached 1.62 `Client`'s routing with every server alive.
#[derive(Debug, Clone)]
pub struct PythonMemcachedRing {
    nodes: Vec<String>,
    weights: Vec<u32>,
    buckets: Vec<u32>,
}

impl PythonMemcachedRing {
    /// A ring of `(name, weight)` in config order; weights must be > 0.
    pub fn new<I, S>(servers: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        let mut ring = PythonMemcachedRing {
            nodes: Vec::new(),
            weights: Vec::new(),
            buckets: Vec::new(),
        };
        for (i, (name, weight)) in servers.into_iter().enumerate() {
            if weight == 0 {
                return Err(Error::InvalidWeight(0.0));
            }
            if (ring.buckets.len() + weight as usize) as u64 > MAX_BUCKETS {
                return Err(Error::InvalidArgument(format!(
                    "the weights add up to more than {MAX_BUCKETS} buckets"
                )));
            }
            ring.buckets
                .extend(std::iter::repeat_n(i as u32, weight as usize));
            ring.nodes.push(name.into());
            ring.weights.push(weight);
        }
        Ok(ring)
    }

    /// Server names in config order (a name may repeat, as in python-memcached's list).
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Server weights in config order.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// The server for a key's bytes (str keys are UTF-8 encoded first, as python-memcached does).
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Result<usize> {
        self.lookup_hash(u64::from(python_memcached_hash(key)))
    }

    /// The server for an explicit server hash (python-memcached's `(hash, key)` keys).
    #[inline]
    pub fn lookup_hash(&self, h: u64) -> Result<usize> {
        if self.buckets.is_empty() {
            return Err(Error::EmptyRing);
        }
        Ok(self.buckets[(h % self.buckets.len() as u64) as usize] as usize)
    }

    /// Number of buckets (the sum of the weights).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_bytes_truncate_code_points() {
        assert_eq!(&*low_bytes("abc"), b"abc");
        assert_eq!(&*low_bytes("café"), &[b'c', b'a', b'f', 0xe9]);
        assert_eq!(&*low_bytes("€"), &[0xac]); // U+20AC
    }

    #[test]
    fn pymemcache_names_follow_normalize_server_spec() {
        assert_eq!(
            pymemcache_node_name("10.0.0.1:11212").unwrap(),
            "10.0.0.1:11212"
        );
        assert_eq!(pymemcache_node_name("cache").unwrap(), "cache:11211");
        assert_eq!(pymemcache_node_name("[::1]:5").unwrap(), "::1:5");
        assert_eq!(pymemcache_node_name("[::1]").unwrap(), "::1:11211");
        assert_eq!(
            pymemcache_node_name("unix:/tmp/m.sock").unwrap(),
            "/tmp/m.sock"
        );
        assert_eq!(pymemcache_node_name("/tmp/m.sock").unwrap(), "/tmp/m.sock");
        assert_eq!(pymemcache_node_name("h: 0_12").unwrap(), "h:12");
        assert!(pymemcache_node_name("h:x").is_err());
    }

    #[test]
    fn rendezvous_ties_go_to_the_larger_name() {
        let ring = PymemcacheRing::new(["a", "b", "a"]);
        assert_eq!(ring.nodes(), &["a".to_owned(), "b".to_owned()]);
        let key = b"k";
        let want = usize::from(ring.score(0, key) <= ring.score(1, key));
        assert_eq!(ring.lookup(key).unwrap(), want);
        // Same name text twice is one node; an empty ring has no owner.
        assert_eq!(
            PymemcacheRing::new(Vec::<String>::new()).lookup(b"k"),
            Err(Error::EmptyRing)
        );
    }

    #[test]
    fn python_memcached_names_follow_host_patterns() {
        let n = |s| python_memcached_node_name(s).unwrap();
        assert_eq!(n("127.0.0.1:11212"), "127.0.0.1:11212");
        assert_eq!(n("cache"), "cache:11211");
        assert_eq!(n("inet:cache:7"), "cache:7");
        assert_eq!(n("inet6:[::1]:7"), "[::1]:7");
        assert_eq!(n("inet6:[::1]"), "[::1]:11211");
        assert_eq!(n("unix:/tmp/m.sock"), "unix:/tmp/m.sock");
        assert_eq!(n("h:007"), "h:7");
        assert!(python_memcached_node_name("h:x").is_err());
        assert!(python_memcached_node_name(":1").is_err());
        assert!(python_memcached_node_name("a:b:c").is_err());
    }

    #[test]
    fn python_memcached_buckets_repeat_servers_by_weight() {
        let ring = PythonMemcachedRing::new([("a", 1), ("b", 2)]).unwrap();
        assert_eq!(ring.bucket_count(), 3);
        assert_eq!(ring.lookup_hash(0).unwrap(), 0);
        assert_eq!(ring.lookup_hash(1).unwrap(), 1);
        assert_eq!(ring.lookup_hash(2).unwrap(), 1);
        assert_eq!(ring.lookup_hash(3).unwrap(), 0);
        // crc32("foobar") = 0x9ef61f95: (>> 16) & 0x7fff = 0x1ef6 = 7926; 7926 % 3 = 0.
        assert_eq!(python_memcached_hash(b"foobar"), 7926);
        assert_eq!(ring.lookup(b"foobar").unwrap(), 0);
        assert!(PythonMemcachedRing::new([("a", 0)]).is_err());
        let empty = PythonMemcachedRing::new(Vec::<(String, u32)>::new()).unwrap();
        assert_eq!(empty.lookup(b"k"), Err(Error::EmptyRing));
    }
}
