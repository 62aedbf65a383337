//! Memcached-family key routing: twemproxy's and libmemcached's ketama, modula and random, bit-exact.
//!
//! See `docs/hashing.md` for every quirk and where it was verified.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::continuum::{Continuum, Search, Tie};
use super::hashfn::{md5_digest, HashFn};
use crate::par::for_each_chunk;
use crate::{Error, Result};

/// Which peer's ketama to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// twemproxy (nutcracker 0.5.0): servers sorted by name, md5 points, float32 points per server.
    Twemproxy,
    /// libmemcached weighted ketama (`KETAMA_WEIGHTED`, PHP's `OPT_LIBKETAMA_COMPATIBLE`): config order.
    LibmemcachedWeighted,
    /// libmemcached plain ketama: 100 points per server, one per hash, hashed with the key hash.
    Libmemcached,
    /// libmemcached's `CONSISTENT_KETAMA_SPY` (spymemcached's `/host:port-j` point names).
    LibmemcachedSpy,
}

impl Profile {
    /// Parses a profile name.
    pub fn from_name(name: &str) -> Result<Profile> {
        Ok(match name {
            "twemproxy" => Profile::Twemproxy,
            "libmemcached_weighted" => Profile::LibmemcachedWeighted,
            "libmemcached" => Profile::Libmemcached,
            "libmemcached_spy" => Profile::LibmemcachedSpy,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown profile {name:?} (twemproxy, libmemcached_weighted, libmemcached, libmemcached_spy)"
                )))
            }
        })
    }

    /// The key hash the peer uses when none is configured.
    pub fn default_hash(self) -> HashFn {
        match self {
            Profile::Twemproxy => HashFn::Fnv1a64,
            Profile::LibmemcachedWeighted | Profile::LibmemcachedSpy => HashFn::Md5,
            Profile::Libmemcached => HashFn::OneAtATime,
        }
    }
}

/// How keys are spread over servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// The consistent-hash continuum.
    Ketama,
    /// `hash % slots`, each server repeated `weight` times.
    Modula,
    /// A uniformly random live server per request (no key dependence).
    Random,
}

impl Distribution {
    /// Parses twemproxy's `distribution:` value.
    pub fn from_name(name: &str) -> Result<Distribution> {
        Ok(match name {
            "ketama" => Distribution::Ketama,
            "modula" => Distribution::Modula,
            "random" => Distribution::Random,
            _ => {
                return Err(Error::Config(format!(
                    "distribution: unknown value {name:?} (ketama, modula, random)"
                )))
            }
        })
    }
}

/// One cache server as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub weight: u32,
    /// twemproxy's optional server name (`host:port:weight name`).
    pub alias: Option<String>,
}

const DEFAULT_PORT: u16 = 11211;
/// twemproxy's `KETAMA_MAX_HOSTLEN` less its NUL: longer point strings are truncated.
const MAX_POINT_STRING: usize = 272;

impl Server {
    /// Parses nutcracker's `host:port:weight [name]` (also `host:port`, weight 1, and a bare `name`,
    /// which is a server known only by its name). Parsed from the right, as nutcracker does.
    pub fn parse(spec: &str) -> Result<Server> {
        let spec = spec.trim();
        let bad = |why: &str| Error::Config(format!("servers: {why} in {spec:?}"));
        let (addr, alias) = match spec.split_once(char::is_whitespace) {
            Some((a, n)) if !n.trim().is_empty() => (a, Some(n.trim().to_owned())),
            _ => (spec, None),
        };
        if addr.is_empty() {
            return Err(bad("empty server"));
        }
        let parts: Vec<&str> = addr.rsplitn(3, ':').collect();
        let (host, port, weight) = match parts.as_slice() {
            [name] => {
                return Ok(Server {
                    host: (*name).to_owned(),
                    port: DEFAULT_PORT,
                    weight: 1,
                    alias: Some(alias.unwrap_or_else(|| (*name).to_owned())),
                })
            }
            [port, host] => (*host, *port, "1"),
            [weight, port, host] => (*host, *port, *weight),
            _ => unreachable!("rsplitn(3) yields 1 to 3 parts"),
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if host.contains(':') && !host.starts_with('[') {
            return Err(bad("too many ':' (an IPv6 host goes in brackets)"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| bad("port is not a number 0-65535"))?;
        let weight = weight
            .parse::<u32>()
            .map_err(|_| bad("weight is not a positive integer"))?;
        if weight == 0 {
            return Err(Error::InvalidWeight(0.0));
        }
        Ok(Server {
            host: host.to_owned(),
            port,
            weight,
            alias,
        })
    }

    /// The name lookups return: the alias, else `host:port`.
    pub fn name(&self) -> String {
        match &self.alias {
            Some(a) => a.clone(),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// The string whose md5 places this server's points, without the `-j` suffix.
    fn point_name(&self, profile: Profile) -> String {
        match (profile, &self.alias) {
            (Profile::Twemproxy, Some(a)) => a.clone(),
            (Profile::LibmemcachedSpy, _) => format!("/{}:{}", self.host, self.port),
            _ if self.port == DEFAULT_PORT => self.host.clone(),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// twemproxy's and libmemcached's points per server, in float32 exactly as the C code computes it:
/// `floorf((float)(pct * 160 / 4 * (float)n + 1e-10)) * 4` (so 156 instead of 160 for some n).
pub fn weighted_points_per_server(weight: u32, total_weight: u32, live: u32) -> u32 {
    let pct = weight as f32 / total_weight as f32;
    let t = pct * 160.0_f32 / 4.0_f32 * live as f32;
    // The C adds a double 1e-10 and converts back to float: a no-op for any t >= 1, kept for t < 1.
    let t = (f64::from(t) + 1e-10) as f32;
    (t.floor() * 4.0) as u32
}

/// The four little-endian u32 points of one md5 digest.
#[inline]
pub fn md5_points(data: &[u8]) -> [u32; 4] {
    let d = md5_digest(data);
    std::array::from_fn(|i| {
        u32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]])
    })
}

/// A ring of memcached servers that routes keys exactly as the chosen peer does.
#[derive(Debug)]
pub struct KetamaRing {
    profile: Profile,
    hash: HashFn,
    distribution: Distribution,
    hash_tag: Option<[u8; 2]>,
    /// In the peer's server order (sorted by name for twemproxy, config order for libmemcached).
    servers: Vec<Server>,
    live: Vec<bool>,
    continuum: Continuum<u32>,
    /// Modula and random: server indices, each repeated by weight (modula) or once (random).
    slots: Vec<u32>,
    rng: AtomicU64,
}

impl Clone for KetamaRing {
    fn clone(&self) -> Self {
        KetamaRing {
            profile: self.profile,
            hash: self.hash,
            distribution: self.distribution,
            hash_tag: self.hash_tag,
            servers: self.servers.clone(),
            live: self.live.clone(),
            continuum: self.continuum.clone(),
            slots: self.slots.clone(),
            rng: AtomicU64::new(self.rng.load(Ordering::Relaxed)),
        }
    }
}

impl KetamaRing {
    /// Builds a ring; `hash` defaults to the profile's. Errors leave nothing half-built.
    pub fn new(
        profile: Profile,
        servers: Vec<Server>,
        hash: Option<HashFn>,
        distribution: Distribution,
        hash_tag: Option<&str>,
    ) -> Result<KetamaRing> {
        let hash_tag = match hash_tag {
            None | Some("") => None,
            Some(t) if t.len() == 2 => Some([t.as_bytes()[0], t.as_bytes()[1]]),
            Some(t) => {
                return Err(Error::Config(format!(
                    "hash_tag: must be two characters, got {t:?}"
                )))
            }
        };
        let mut ring = KetamaRing {
            profile,
            hash: hash.unwrap_or_else(|| profile.default_hash()),
            distribution,
            hash_tag,
            servers: Vec::new(),
            live: Vec::new(),
            continuum: Continuum::build(Vec::new(), Tie::First, Search::AtOrAfter, false),
            slots: Vec::new(),
            rng: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        };
        ring.replace_servers(servers)?;
        Ok(ring)
    }

    /// Checks and installs a whole new server list, then rebuilds; on error nothing changes.
    fn replace_servers(&mut self, mut servers: Vec<Server>) -> Result<()> {
        for s in &servers {
            if s.weight == 0 {
                return Err(Error::InvalidWeight(0.0));
            }
        }
        if self.profile == Profile::Twemproxy {
            // conf_validate_server sorts by name: shorter first, then bytewise.
            servers.sort_by_cached_key(|s| {
                let name = s.point_name(self.profile);
                (name.len(), name)
            });
        }
        let mut names = std::collections::HashSet::new();
        let mut point_names = std::collections::HashSet::new();
        for s in &servers {
            if !names.insert(s.name()) || !point_names.insert(s.point_name(self.profile)) {
                return Err(Error::DuplicateNode(s.name()));
            }
        }
        // Ejected servers stay ejected across a reconfiguration.
        let dead: std::collections::HashSet<String> = self
            .servers
            .iter()
            .zip(&self.live)
            .filter(|(_, &live)| !live)
            .map(|(s, _)| s.name())
            .collect();
        self.live = servers.iter().map(|s| !dead.contains(&s.name())).collect();
        self.servers = servers;
        self.rebuild();
        Ok(())
    }

    fn rebuild(&mut self) {
        let live_idx: Vec<usize> = (0..self.servers.len()).filter(|&i| self.live[i]).collect();
        let total: u32 = live_idx.iter().map(|&i| self.servers[i].weight).sum();
        self.slots.clear();
        let mut entries = Vec::new();
        match self.distribution {
            Distribution::Ketama => {
                if self.profile == Profile::Libmemcached && !self.weighted() {
                    for &i in &live_idx {
                        let base = self.servers[i].point_name(self.profile);
                        for j in 0..100u32 {
                            let h = self.hash.hash(format!("{base}-{j}").as_bytes());
                            entries.push((h, i as u32));
                        }
                    }
                } else {
                    entries = self.md5_points(&live_idx, total);
                }
            }
            Distribution::Modula => {
                for &i in &live_idx {
                    for _ in 0..self.servers[i].weight {
                        self.slots.push(i as u32);
                    }
                }
            }
            Distribution::Random => self.slots.extend(live_idx.iter().map(|&i| i as u32)),
        }
        self.continuum = Continuum::build(entries, Tie::First, Search::AtOrAfter, false);
    }

    /// The md5 continuum of weighted ketama: `pps/4` digests of `"<name>-<j>"` per live server, four
    /// points per digest, in server order. Digests are spread over the cores (a 1000-server ring
    /// is 40 000 of them).
    fn md5_points(&self, live_idx: &[usize], total_weight: u32) -> Vec<(u32, u32)> {
        let n_live = live_idx.len() as u32;
        let names: Vec<Vec<u8>> = live_idx
            .iter()
            .map(|&i| self.servers[i].point_name(self.profile).into_bytes())
            .collect();
        // first_digest[k]: the index of live server k's first digest; one extra entry at the end.
        let mut first_digest = Vec::with_capacity(live_idx.len() + 1);
        let mut digests = 0usize;
        for &i in live_idx {
            first_digest.push(digests);
            digests += (weighted_points_per_server(self.servers[i].weight, total_weight, n_live)
                / 4) as usize;
        }
        first_digest.push(digests);
        let mut entries = vec![(0u32, 0u32); digests * 4];
        for_each_chunk(&mut entries, |start, chunk| {
            let mut text = Vec::with_capacity(MAX_POINT_STRING + 12);
            let mut words = [0u32; 4];
            let mut k = first_digest.partition_point(|&d| d <= start / 4) - 1;
            for (e, slot) in (start..).zip(chunk.iter_mut()) {
                let d = e / 4;
                if e == start || e % 4 == 0 {
                    while first_digest[k + 1] <= d {
                        k += 1;
                    }
                    text.clear();
                    text.extend_from_slice(&names[k]);
                    text.push(b'-');
                    write!(text, "{}", d - first_digest[k]).expect("writing to a Vec cannot fail");
                    text.truncate(MAX_POINT_STRING);
                    words = md5_points(&text);
                }
                *slot = (words[e % 4], live_idx[k] as u32);
            }
        });
        entries
    }

    /// libmemcached switches plain ketama to weighted as soon as one server has weight > 1.
    fn weighted(&self) -> bool {
        self.servers.iter().any(|s| s.weight > 1)
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }
    pub fn hash_fn(&self) -> HashFn {
        self.hash
    }
    pub fn distribution(&self) -> Distribution {
        self.distribution
    }
    pub fn hash_tag(&self) -> Option<[u8; 2]> {
        self.hash_tag
    }
    /// Servers in the ring's order; lookups return indices into this.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }
    /// Whether each server is live (not ejected).
    pub fn live(&self) -> &[bool] {
        &self.live
    }
    pub fn continuum(&self) -> &Continuum<u32> {
        &self.continuum
    }

    /// The part of the key that is hashed: the text inside the hash tag when there is one.
    #[inline]
    pub fn hashed_part<'k>(&self, key: &'k [u8]) -> &'k [u8] {
        let Some([open, close]) = self.hash_tag else {
            return key;
        };
        if let Some(start) = key.iter().position(|&b| b == open) {
            if let Some(len) = key[start + 1..].iter().position(|&b| b == close) {
                if len > 0 {
                    return &key[start + 1..start + 1 + len];
                }
            }
        }
        key
    }

    /// The key hash as the peer computes it (0 for an empty key).
    #[inline]
    pub fn key_hash(&self, key: &[u8]) -> u32 {
        let part = self.hashed_part(key);
        if part.is_empty() {
            0
        } else {
            self.hash.hash(part)
        }
    }

    /// The index of the server a key goes to.
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Result<usize> {
        if self.servers.len() == 1 && self.live[0] {
            // Both peers skip hashing for a single server.
            return Ok(0);
        }
        if self.distribution == Distribution::Random {
            return self.lookup_hash(0);
        }
        self.lookup_hash(self.key_hash(key))
    }

    /// The index of the server a key hash goes to (the hash as `key_hash` returns it).
    #[inline]
    pub fn lookup_hash(&self, h: u32) -> Result<usize> {
        match self.distribution {
            Distribution::Ketama => self
                .continuum
                .owner(h)
                .map(|o| o as usize)
                .ok_or(Error::EmptyRing),
            Distribution::Modula => {
                if self.slots.is_empty() {
                    return Err(Error::EmptyRing);
                }
                Ok(self.slots[h as usize % self.slots.len()] as usize)
            }
            Distribution::Random => {
                if self.slots.is_empty() {
                    return Err(Error::EmptyRing);
                }
                // xorshift64*: twemproxy uses random(); only the uniformity matters here.
                let mut x = self.rng.load(Ordering::Relaxed);
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                self.rng.store(x, Ordering::Relaxed);
                let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
                Ok(self.slots[(r % self.slots.len() as u64) as usize] as usize)
            }
        }
    }

    /// Up to `n` distinct live servers for a key, the first being `lookup(key)`: the next servers
    /// clockwise on the continuum (ketama) or in slot order (modula, random).
    pub fn lookup_n(&self, key: &[u8], n: usize) -> Result<Vec<usize>> {
        let first = self.lookup(key)?;
        let mut out = Vec::with_capacity(n);
        match self.distribution {
            Distribution::Ketama if !self.continuum.is_empty() => {
                let pos = self.continuum.position(self.key_hash(key)).unwrap_or(0);
                let mut owners = Vec::new();
                self.continuum.distinct_from(pos, n, &mut owners);
                if owners.first().is_some_and(|&o| o as usize != first) {
                    owners.retain(|&o| o as usize != first);
                    owners.insert(0, first as u32);
                    owners.truncate(n);
                }
                out.extend(owners.into_iter().map(|o| o as usize));
            }
            _ => {
                let start = self
                    .slots
                    .iter()
                    .position(|&s| s as usize == first)
                    .unwrap_or(0);
                for step in 0..self.slots.len() {
                    let s = self.slots[(start + step) % self.slots.len()] as usize;
                    if out.len() < n && !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Each server's share of the key space (0 for ejected servers).
    pub fn shares(&self) -> Vec<f64> {
        match self.distribution {
            Distribution::Ketama => self.continuum.shares(self.servers.len()),
            Distribution::Modula | Distribution::Random => {
                let mut shares = vec![0f64; self.servers.len()];
                for &s in &self.slots {
                    shares[s as usize] += 1.0 / self.slots.len() as f64;
                }
                shares
            }
        }
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.servers
            .iter()
            .position(|s| s.name() == name)
            .ok_or_else(|| Error::UnknownNode(name.to_owned()))
    }

    /// Adds a server (twemproxy re-sorts by name).
    pub fn add_server(&mut self, server: Server) -> Result<()> {
        let mut servers = self.servers.clone();
        servers.push(server);
        self.replace_servers(servers)
    }

    /// Removes a server by name.
    pub fn remove_server(&mut self, name: &str) -> Result<()> {
        let i = self.index_of(name)?;
        let mut servers = self.servers.clone();
        servers.remove(i);
        self.replace_servers(servers)
    }

    /// Changes a server's weight.
    pub fn set_weight(&mut self, name: &str, weight: u32) -> Result<()> {
        let i = self.index_of(name)?;
        let mut servers = self.servers.clone();
        servers[i].weight = weight;
        self.replace_servers(servers)
    }

    /// Marks a server dead or alive, as `auto_eject_hosts` does: the ring is rebuilt over live servers.
    pub fn set_live(&mut self, name: &str, live: bool) -> Result<()> {
        let i = self.index_of(name)?;
        if self.live[i] != live {
            self.live[i] = live;
            self.rebuild();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(host: &str, port: u16, weight: u32, alias: Option<&str>) -> Server {
        Server {
            host: host.into(),
            port,
            weight,
            alias: alias.map(Into::into),
        }
    }

    /// Two servers, `h:1` and `h:2`, in twemproxy's ketama.
    fn two_servers(hash_tag: Option<&str>) -> KetamaRing {
        KetamaRing::new(
            Profile::Twemproxy,
            vec![server("h", 1, 1, None), server("h", 2, 1, None)],
            None,
            Distribution::Ketama,
            hash_tag,
        )
        .unwrap()
    }

    #[test]
    fn float32_points_per_server_gives_156_at_25_servers() {
        assert_eq!(weighted_points_per_server(1, 25, 25), 156);
        assert_eq!(weighted_points_per_server(1, 10, 10), 160);
        assert_eq!(weighted_points_per_server(1, 100, 100), 156);
        // libmemcached's fixture weights
        let w = [600, 300, 200, 350, 1000, 800, 950, 100];
        let total = w.iter().sum();
        let pps: Vec<u32> = w
            .iter()
            .map(|&x| weighted_points_per_server(x, total, 8))
            .collect();
        assert_eq!(pps, [176, 88, 56, 104, 296, 236, 280, 28]);
    }

    #[test]
    fn md5_point_example_from_twemproxy() {
        assert_eq!(
            md5_points(b"127.0.0.1:21001-0"),
            [0xe8b6_5ed5, 0x3143_4ef0, 0x1700_5373, 0x93f8_70b8]
        );
    }

    #[test]
    fn twemproxy_sorts_servers_by_name_length_then_bytes() {
        let ring = KetamaRing::new(
            Profile::Twemproxy,
            vec![
                server("10.0.0.1", 11211, 1, Some("bbb")),
                server("10.0.0.2", 11211, 1, Some("a")),
                server("10.0.0.3", 11211, 1, Some("aa")),
            ],
            None,
            Distribution::Modula,
            None,
        )
        .unwrap();
        let names: Vec<String> = ring.servers().iter().map(Server::name).collect();
        assert_eq!(names, ["a", "aa", "bbb"]);
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let mut ring = two_servers(None);
        let before = ring.lookup(b"k").unwrap();
        assert_eq!(
            ring.add_server(server("h", 1, 1, None)),
            Err(Error::DuplicateNode("h:1".into()))
        );
        assert_eq!(ring.set_weight("h:1", 0), Err(Error::InvalidWeight(0.0)));
        assert_eq!(
            ring.remove_server("nope"),
            Err(Error::UnknownNode("nope".into()))
        );
        assert_eq!(ring.servers().len(), 2);
        assert_eq!(ring.lookup(b"k").unwrap(), before);
    }

    #[test]
    fn server_specs_parse_like_nutcracker() {
        assert_eq!(
            Server::parse("127.0.0.1:11211:3 cacheA").unwrap(),
            server("127.0.0.1", 11211, 3, Some("cacheA"))
        );
        assert_eq!(
            Server::parse("10.0.0.1:22122").unwrap(),
            server("10.0.0.1", 22122, 1, None)
        );
        assert_eq!(Server::parse("cache1").unwrap().name(), "cache1");
        assert!(matches!(Server::parse("h:port:1"), Err(Error::Config(_))));
        assert!(matches!(Server::parse("h:1:x"), Err(Error::Config(_))));
        assert_eq!(Server::parse("h:1:0"), Err(Error::InvalidWeight(0.0)));
        assert!(matches!(Server::parse("a:1:1:1"), Err(Error::Config(_))));
        assert_eq!(Server::parse("[::1]:11211:2").unwrap().host, "[::1]");
    }

    #[test]
    fn hash_tag_hashes_only_the_tagged_part() {
        let ring = two_servers(Some("{}"));
        assert_eq!(ring.hashed_part(b"user:{42}:name"), b"42");
        assert_eq!(ring.hashed_part(b"user:{}:name"), b"user:{}:name");
        assert_eq!(ring.hashed_part(b"no tag"), b"no tag");
        assert_eq!(ring.key_hash(b"a{x}"), ring.key_hash(b"b{x}c"));
    }

    #[test]
    fn ejecting_everything_empties_the_ring() {
        let mut ring = two_servers(None);
        ring.set_live("h:1", false).unwrap();
        assert_eq!(ring.lookup(b"x"), Ok(1));
        ring.set_live("h:2", false).unwrap();
        assert_eq!(ring.lookup(b"x"), Err(Error::EmptyRing));
    }
}
