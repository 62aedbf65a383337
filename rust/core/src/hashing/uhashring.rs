//! uhashring 2.5's two rings, bit-exact: the default `MetaRing` and the `hash_fn="ketama"` `KetamaRing`.
//!
//! What decides where a key goes, kept exactly as uhashring does it:
//! - `MetaRing`: `vnodes * weight` points per node, each `int(md5(f"{name}-{w}").hexdigest(), 16)`
//!   (a big-endian 128-bit int) or a custom hash of that text; `_ring[point] = name` in creation
//!   order, so on a collision the last writer wins. A node's points are recreated on their own
//!   (`ring[name] = conf`), and removing or recreating a node drops only the points it still owns.
//!   That history decides collisions, so [`UhashRing`] replays it instead of rebuilding from scratch.
//! - `KetamaRing`: `vnodes * n * weight // weight_sum` vnodes per node (integer `//`, not libketama's
//!   float), `replicas` little-endian md5 words per vnode; every change rebuilds the whole ring in
//!   node order, equal points are all kept and all given to the last inserted node.
//! - Lookup is `bisect_right` (the first point strictly greater than the key's hash), wrapping to 0.

use std::collections::HashMap;
use std::fmt::Write;

use super::continuum::{Continuum, Search, Tie};
use super::hashfn::md5_digest;
use crate::{Error, Result};

/// The most points a ring may hold. uhashring makes one md5 per point; past this it takes minutes.
pub const MAX_POINTS: u64 = 1 << 24;
/// `MetaRing`'s default `vnodes`.
pub const META_DEFAULT_VNODES: u64 = 160;
/// `KetamaRing`'s default `vnodes`.
pub const KETAMA_DEFAULT_VNODES: u64 = 40;
/// `KetamaRing`'s default `replicas` (points per md5 digest).
pub const KETAMA_DEFAULT_REPLICAS: u32 = 4;

/// Which of uhashring's rings to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `MetaRing`: one 128-bit point per vnode.
    Meta,
    /// `KetamaRing`: `replicas` (0..=4) 32-bit points per vnode.
    Ketama { replicas: u32 },
}

/// One node as uhashring's `_nodes` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The caller's identity for the node, stable while it is on the ring.
    pub id: u64,
    /// `str(name)`: the text point strings are built from.
    pub label: String,
    pub vnodes: u64,
    pub weight: u64,
}

/// Where a `MetaRing` node's points come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaPoints {
    /// uhashring's default: md5 of `f"{name}-{w}"` as a big-endian 128-bit int.
    Md5,
    /// A custom `hash_fn`'s values for `f"{name}-{w}"`, `w` in `0..vnodes * weight`.
    Given(Vec<u128>),
}

/// `MetaRing`'s default hash of a key's text: `int(md5(text).hexdigest(), 16)`.
#[inline]
pub fn meta_hash(text: &[u8]) -> u128 {
    u128::from_be_bytes(md5_digest(text))
}

/// `KetamaRing.hashi(text, replica)`: little-endian word `replica` (0..4) of md5(text).
#[inline]
pub fn ketama_hash(text: &[u8], replica: usize) -> u32 {
    let d = md5_digest(text);
    let r = replica * 4;
    u32::from_le_bytes([d[r], d[r + 1], d[r + 2], d[r + 3]])
}

/// `KetamaRing`'s vnodes for one node: `vnodes * n * weight // weight_sum`.
pub fn ketama_vnodes(vnodes: u64, n: usize, weight: u64, weight_sum: u64) -> u128 {
    if weight_sum == 0 {
        return 0;
    }
    u128::from(vnodes) * n as u128 * u128::from(weight) / u128::from(weight_sum)
}

/// Calls `f` with the text `f"{label}-{w}"` for each `w` in `0..count`, reusing one buffer.
fn for_each_point_text(label: &str, count: u64, mut f: impl FnMut(&[u8])) {
    let mut text = String::with_capacity(label.len() + 8);
    text.push_str(label);
    text.push('-');
    let base = text.len();
    for w in 0..count {
        text.truncate(base);
        // Writing to a String cannot fail.
        let _ = write!(text, "{w}");
        f(text.as_bytes());
    }
}

/// The searchable points: 128-bit for `MetaRing`, 32-bit for `KetamaRing`.
#[derive(Debug, Clone)]
enum Points {
    Wide(Continuum<u128>),
    Narrow(Continuum<u32>),
}

/// A uhashring `HashRing`'s routing state: its node table, its points and their owners.
#[derive(Debug, Clone)]
pub struct UhashRing {
    mode: Mode,
    nodes: Vec<Node>,
    /// `MetaRing._ring`: point -> owner id, in write order semantics (last writer wins).
    owner_of: HashMap<u128, u64>,
    /// `MetaRing._node_points`: each node's points in creation order.
    node_points: HashMap<u64, Vec<u128>>,
    points: Points,
    /// uhashring's `_distribution`: points created per node, in table order.
    counts: Vec<u64>,
}

impl UhashRing {
    /// An empty ring; `Ketama` takes 0 to 4 replicas (an md5 digest has four words).
    pub fn new(mode: Mode) -> Result<Self> {
        let points = match mode {
            Mode::Meta => {
                Points::Wide(Continuum::build(Vec::new(), Tie::Last, Search::After, true))
            }
            Mode::Ketama { replicas } => {
                if replicas > 4 {
                    return Err(Error::InvalidArgument(format!(
                        "replicas must be 0 to 4 (an md5 digest has four words), got {replicas}"
                    )));
                }
                Points::Narrow(Continuum::build(
                    Vec::new(),
                    Tie::Last,
                    Search::After,
                    false,
                ))
            }
        };
        Ok(UhashRing {
            mode,
            nodes: Vec::new(),
            owner_of: HashMap::new(),
            node_points: HashMap::new(),
            points,
            counts: Vec::new(),
        })
    }

    /// The ring's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The node table, in uhashring's `_nodes` order (owner indices index it).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Replaces the node table. Nodes no longer in it lose their points as `_remove_node` drops
    /// them; the other nodes keep theirs until [`create`](Self::create) or a ketama rebuild.
    pub fn set_nodes(&mut self, nodes: Vec<Node>) -> Result<()> {
        let mut ids = HashMap::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            if n.weight == 0 {
                return Err(Error::InvalidWeight(0.0));
            }
            if ids.insert(n.id, i).is_some() {
                return Err(Error::DuplicateNode(n.label.clone()));
            }
        }
        let gone: Vec<u64> = self
            .node_points
            .keys()
            .copied()
            .filter(|id| !ids.contains_key(id))
            .collect();
        for id in gone {
            self.drop_points(id);
        }
        self.nodes = nodes;
        Ok(())
    }

    /// Drops the points node `id` still owns (a collision may have handed some to another node).
    fn drop_points(&mut self, id: u64) {
        if let Some(old) = self.node_points.remove(&id) {
            for p in old {
                if self.owner_of.get(&p) == Some(&id) {
                    self.owner_of.remove(&p);
                }
            }
        }
    }

    /// `MetaRing._create_ring` for one node of the table: drops the points it still owns, then
    /// writes `vnodes * weight` fresh ones (each overwriting any owner of an equal point).
    pub fn create(&mut self, id: u64, points: MetaPoints) -> Result<()> {
        if self.mode != Mode::Meta {
            return Err(Error::InvalidArgument(
                "create is for the meta ring only".into(),
            ));
        }
        let node = self
            .nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| Error::UnknownNode(id.to_string()))?;
        let count = node
            .vnodes
            .checked_mul(node.weight)
            .filter(|&c| c <= MAX_POINTS);
        let Some(count) = count else {
            return Err(too_many_points(&node.label));
        };
        let fresh = match points {
            MetaPoints::Md5 => {
                let mut v = Vec::with_capacity(count as usize);
                for_each_point_text(&node.label, count, |t| v.push(meta_hash(t)));
                v
            }
            MetaPoints::Given(v) => {
                if v.len() as u64 != count {
                    return Err(Error::InvalidArgument(format!(
                        "node {:?} needs {count} points, got {}",
                        node.label,
                        v.len()
                    )));
                }
                v
            }
        };
        self.drop_points(id);
        for &p in &fresh {
            self.owner_of.insert(p, id);
        }
        self.node_points.insert(id, fresh);
        if self.owner_of.len() as u64 > MAX_POINTS {
            return Err(Error::InvalidArgument(format!(
                "the ring would hold more than {MAX_POINTS} points"
            )));
        }
        Ok(())
    }

    /// Rebuilds the searchable points: `MetaRing` from its point map, `KetamaRing` from scratch
    /// over the node table (as its `_create_ring` does on every change).
    pub fn rebuild(&mut self) -> Result<()> {
        match self.mode {
            Mode::Meta => {
                let dense: HashMap<u64, u32> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.id, i as u32))
                    .collect();
                let entries = self
                    .owner_of
                    .iter()
                    .map(|(&p, id)| (p, dense[id]))
                    .collect();
                self.points =
                    Points::Wide(Continuum::build(entries, Tie::Last, Search::After, true));
                self.counts = self
                    .nodes
                    .iter()
                    .map(|n| self.node_points.get(&n.id).map_or(0, |v| v.len() as u64))
                    .collect();
            }
            Mode::Ketama { replicas } => {
                let n = self.nodes.len();
                let weight_sum: u64 = self.nodes.iter().map(|x| x.weight).sum();
                let mut vnodes = Vec::with_capacity(n);
                let mut total: u128 = 0;
                for node in &self.nodes {
                    let ks = ketama_vnodes(node.vnodes, n, node.weight, weight_sum);
                    total += ks * u128::from(replicas);
                    if total > u128::from(MAX_POINTS) {
                        return Err(too_many_points(&node.label));
                    }
                    vnodes.push(ks as u64);
                }
                let mut entries = Vec::with_capacity(total as usize);
                for (i, (node, &ks)) in self.nodes.iter().zip(&vnodes).enumerate() {
                    for_each_point_text(&node.label, ks, |t| {
                        let d = md5_digest(t);
                        for r in 0..replicas as usize {
                            let w = u32::from_le_bytes([
                                d[4 * r],
                                d[4 * r + 1],
                                d[4 * r + 2],
                                d[4 * r + 3],
                            ]);
                            entries.push((w, i as u32));
                        }
                    });
                }
                self.points =
                    Points::Narrow(Continuum::build(entries, Tie::Last, Search::After, false));
                self.counts = vnodes.iter().map(|&ks| ks * u64::from(replicas)).collect();
            }
        }
        Ok(())
    }

    /// The mode's own hash of a key's text (`MetaRing` with no custom `hash_fn`, or `KetamaRing`).
    #[inline]
    pub fn key_hash(&self, text: &[u8]) -> u128 {
        match self.mode {
            Mode::Meta => meta_hash(text),
            Mode::Ketama { .. } => u128::from(ketama_hash(text, 0)),
        }
    }

    /// uhashring's `_get_pos`: the index of the first point > `h`, wrapping to 0; `None` if empty.
    #[inline]
    pub fn position(&self, h: u128) -> Option<usize> {
        match &self.points {
            Points::Wide(c) => c.position(h),
            Points::Narrow(c) => match u32::try_from(h) {
                Ok(h) => c.position(h),
                // Past every 32-bit point: bisect_right gives the end, which wraps to 0.
                Err(_) => (!c.is_empty()).then_some(0),
            },
        }
    }

    /// The owner (index into [`nodes`](Self::nodes)) of the point `h` lands on.
    #[inline]
    pub fn owner(&self, h: u128) -> Option<usize> {
        self.position(h).map(|p| self.owners()[p] as usize)
    }

    /// Number of points, equal points counted each time (uhashring's `len(_keys)`).
    pub fn len(&self) -> usize {
        match &self.points {
            Points::Wide(c) => c.len(),
            Points::Narrow(c) => c.len(),
        }
    }

    /// True when the ring has no points (uhashring then returns `None` from lookups).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct points (uhashring's `size`, `len(_ring)`).
    pub fn size(&self) -> usize {
        match &self.points {
            Points::Wide(c) => c.len(),
            Points::Narrow(c) => {
                let p = c.points();
                p.len() - p.windows(2).filter(|w| w[0] == w[1]).count()
            }
        }
    }

    /// The point at sorted position `pos`.
    pub fn point(&self, pos: usize) -> u128 {
        match &self.points {
            Points::Wide(c) => c.points()[pos],
            Points::Narrow(c) => u128::from(c.points()[pos]),
        }
    }

    /// The owner of each sorted point.
    pub fn owners(&self) -> &[u32] {
        match &self.points {
            Points::Wide(c) => c.owners(),
            Points::Narrow(c) => c.owners(),
        }
    }

    /// The sorted points as 128-bit values.
    pub fn points(&self) -> Vec<u128> {
        match &self.points {
            Points::Wide(c) => c.points().to_vec(),
            Points::Narrow(c) => c.points().iter().map(|&p| u128::from(p)).collect(),
        }
    }

    /// Points created per node, in table order (uhashring's `distribution`).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// uhashring's `range`: owners walking clockwise once from `start`, each at most once when
    /// `unique`, stopping after `stop` of them.
    pub fn walk(&self, start: usize, stop: Option<usize>, unique: bool) -> Vec<usize> {
        let owners = self.owners();
        let len = owners.len();
        let mut out = Vec::new();
        let mut seen = vec![false; self.nodes.len()];
        for step in 0..len {
            let o = owners[(start + step) % len] as usize;
            if unique {
                if seen[o] {
                    continue;
                }
                seen[o] = true;
            }
            out.push(o);
            if Some(out.len()) == stop {
                break;
            }
        }
        out
    }
}

fn too_many_points(label: &str) -> Error {
    Error::InvalidArgument(format!(
        "node {label:?}: the ring would hold more than {MAX_POINTS} points (vnodes * weight too large)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, label: &str, vnodes: u64, weight: u64) -> Node {
        Node {
            id,
            label: label.to_owned(),
            vnodes,
            weight,
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    fn meta(nodes: &[Node]) -> UhashRing {
        let mut r = UhashRing::new(Mode::Meta).unwrap();
        r.set_nodes(nodes.to_vec()).unwrap();
        for n in nodes {
            r.create(n.id, MetaPoints::Md5).unwrap();
        }
        r.rebuild().unwrap();
        r
    }

    #[test]
    fn meta_points_are_big_endian_md5_of_name_dash_w() {
        let r = meta(&[node(1, "a", 2, 1)]);
        let mut want = vec![meta_hash(b"a-0"), meta_hash(b"a-1")];
        want.sort_unstable();
        assert_eq!(r.points(), want);
        // int(md5(b"a-0").hexdigest(), 16)
        let hex = hex(&md5_digest(b"a-0"));
        assert_eq!(meta_hash(b"a-0"), u128::from_str_radix(&hex, 16).unwrap());
    }

    #[test]
    fn lookup_is_bisect_right_with_wrap() {
        let r = meta(&[node(1, "a", 3, 1), node(2, "b", 3, 1)]);
        let pts = r.points();
        assert_eq!(r.position(pts[0]), Some(1));
        assert_eq!(r.position(pts[0] - 1), Some(0));
        assert_eq!(r.position(*pts.last().unwrap()), Some(0));
    }

    #[test]
    fn ketama_vnodes_use_integer_division() {
        // 25 equal nodes, 40 vnodes: 40 each (libketama's float32 formula gives 39).
        assert_eq!(ketama_vnodes(40, 25, 1, 25), 40);
        assert_eq!(ketama_vnodes(40, 3, 1, 4), 30);
        assert_eq!(ketama_vnodes(40, 3, 2, 4), 60);
    }

    #[test]
    fn ketama_keeps_equal_points_and_gives_them_to_the_last_inserted() {
        // md5 words that collide: "node197-0" word 1 and "node1651-1" word 2 (found by search).
        assert_eq!(ketama_hash(b"node197-0", 1), ketama_hash(b"node1651-1", 2));
        for (first, second) in [("node197", "node1651"), ("node1651", "node197")] {
            let mut r = UhashRing::new(Mode::Ketama { replicas: 4 }).unwrap();
            r.set_nodes(vec![node(1, first, 40, 1), node(2, second, 40, 1)])
                .unwrap();
            r.rebuild().unwrap();
            assert_eq!(r.len(), 320);
            assert_eq!(r.size(), 319);
            let h = u128::from(ketama_hash(b"node197-0", 1));
            let pos = r.points().iter().position(|&p| p == h).unwrap();
            assert_eq!(r.owners()[pos], 1);
            assert_eq!(r.owners()[pos + 1], 1);
            assert_eq!(r.counts(), &[160, 160]);
        }
    }

    #[test]
    fn meta_collisions_follow_write_history() {
        // Force every point of two nodes onto the same three values.
        let mut r = UhashRing::new(Mode::Meta).unwrap();
        let a = node(1, "a", 3, 1);
        let b = node(2, "b", 3, 1);
        r.set_nodes(vec![a.clone(), b.clone()]).unwrap();
        r.create(1, MetaPoints::Given(vec![10, 20, 30])).unwrap();
        r.create(2, MetaPoints::Given(vec![20, 30, 40])).unwrap();
        r.rebuild().unwrap();
        assert_eq!(r.points(), vec![10, 20, 30, 40]);
        assert_eq!(r.owners(), &[0, 1, 1, 1]);
        // Recreating a drops only the points it still owns, then overwrites.
        r.create(1, MetaPoints::Given(vec![10, 20, 30])).unwrap();
        r.rebuild().unwrap();
        assert_eq!(r.owners(), &[0, 0, 0, 1]);
        // Removing a drops 10, 20, 30 (all its own now): b keeps only 40.
        r.set_nodes(vec![b]).unwrap();
        r.rebuild().unwrap();
        assert_eq!(r.points(), vec![40]);
        assert_eq!(r.counts(), &[3]);
    }

    #[test]
    fn narrow_hash_past_every_point_wraps() {
        let mut r = UhashRing::new(Mode::Ketama { replicas: 4 }).unwrap();
        r.set_nodes(vec![node(1, "a", 40, 1)]).unwrap();
        r.rebuild().unwrap();
        assert_eq!(r.position(u128::from(u32::MAX) + 1), Some(0));
    }

    #[test]
    fn walk_visits_owners_clockwise_once() {
        let r = meta(&[node(1, "a", 5, 1), node(2, "b", 5, 1), node(3, "c", 5, 1)]);
        let all = r.walk(4, None, false);
        assert_eq!(all.len(), 15);
        assert_eq!(all[0], r.owners()[4] as usize);
        let mut distinct = r.walk(4, None, true);
        assert_eq!(distinct[0], r.owners()[4] as usize);
        distinct.sort_unstable();
        assert_eq!(distinct, vec![0, 1, 2]);
        assert_eq!(r.walk(4, Some(2), true).len(), 2);
    }

    #[test]
    fn refuses_bad_input() {
        assert!(UhashRing::new(Mode::Ketama { replicas: 5 }).is_err());
        let mut r = UhashRing::new(Mode::Meta).unwrap();
        assert_eq!(
            r.set_nodes(vec![node(1, "a", 1, 0)]),
            Err(Error::InvalidWeight(0.0))
        );
        r.set_nodes(vec![node(1, "a", MAX_POINTS, 2)]).unwrap();
        assert!(r.create(1, MetaPoints::Md5).is_err());
        assert!(r.is_empty());
        assert_eq!(r.position(5), None);
    }
}
