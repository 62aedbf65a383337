//! Node identities: an integer or a string, totally ordered (every integer before every string).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The id of a node (replica, process, actor) that owns an entry of a clock.
///
/// Integers sort numerically and before all strings; strings sort by their UTF-8 bytes. The
/// string is shared, so cloning an id (for example when merging clocks) never copies text.
#[derive(Clone, Eq)]
pub enum NodeId {
    /// An integer id.
    Int(i64),
    /// A string id.
    Str(Arc<str>),
}

/// Ids stop being interned past this many distinct strings (a bound on memory for programs that
/// make up ids without end; such ids still work, they only lose the pointer-equality fast path).
const INTERN_LIMIT: usize = 1 << 20;

fn interner() -> &'static Mutex<HashSet<Arc<str>>> {
    static INTERNER: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
    INTERNER.get_or_init(Mutex::default)
}

fn intern(set: &mut HashSet<Arc<str>>, s: &str) -> NodeId {
    if let Some(shared) = set.get(s) {
        return NodeId::Str(Arc::clone(shared));
    }
    let fresh: Arc<str> = Arc::from(s);
    if set.len() < INTERN_LIMIT {
        set.insert(Arc::clone(&fresh));
    }
    NodeId::Str(fresh)
}

impl NodeId {
    /// A string id. Equal strings share one allocation, so comparing the ids of two clocks that
    /// name the same nodes is a pointer comparison, not a string comparison.
    pub fn str(s: &str) -> Self {
        let mut set = interner().lock().unwrap_or_else(PoisonError::into_inner);
        intern(&mut set, s)
    }

    /// The id borrowed, as ordered.
    pub fn as_raw(&self) -> RawId<'_> {
        match self {
            NodeId::Int(i) => RawId::Int(*i),
            NodeId::Str(s) => RawId::Str(s),
        }
    }

    /// Many ids at once, taking the interner's lock once (for decoding and bulk construction).
    pub fn many<'a>(ids: impl IntoIterator<Item = RawId<'a>>) -> Vec<NodeId> {
        let mut set = interner().lock().unwrap_or_else(PoisonError::into_inner);
        ids.into_iter()
            .map(|raw| match raw {
                RawId::Int(i) => NodeId::Int(i),
                RawId::Str(s) => intern(&mut set, s),
            })
            .collect()
    }
}

/// A node id borrowed from its source (bytes being decoded, a Python str), before interning.
/// It orders exactly as the [`NodeId`] it becomes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RawId<'a> {
    /// An integer id.
    Int(i64),
    /// A string id.
    Str(&'a str),
}

impl Ord for RawId<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (RawId::Int(a), RawId::Int(b)) => a.cmp(b),
            (RawId::Int(_), RawId::Str(_)) => Ordering::Less,
            (RawId::Str(_), RawId::Int(_)) => Ordering::Greater,
            (RawId::Str(a), RawId::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        }
    }
}

impl PartialOrd for RawId<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for NodeId {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (NodeId::Int(a), NodeId::Int(b)) => a == b,
            // Interned ids are one allocation: equal pointers settle it without reading the text
            // (`Arc`'s own `==` compares the bytes for unsized types such as `str`).
            (NodeId::Str(a), NodeId::Str(b)) => Arc::ptr_eq(a, b) || a.as_bytes() == b.as_bytes(),
            _ => false,
        }
    }
}

impl Hash for NodeId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            NodeId::Int(i) => (0u8, i).hash(state),
            NodeId::Str(s) => (1u8, &**s).hash(state),
        }
    }
}

impl Ord for NodeId {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (NodeId::Str(a), NodeId::Str(b)) if Arc::ptr_eq(a, b) => Ordering::Equal,
            _ => self.as_raw().cmp(&other.as_raw()),
        }
    }
}

impl PartialOrd for NodeId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeId::Int(i) => write!(f, "{i}"),
            NodeId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<i64> for NodeId {
    fn from(i: i64) -> Self {
        NodeId::Int(i)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId::str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_sort_before_strings_and_numerically() {
        let mut ids = vec![
            NodeId::from("b"),
            NodeId::from(10),
            NodeId::from("a"),
            NodeId::from(-3),
            NodeId::from(2),
        ];
        ids.sort();
        assert_eq!(
            ids,
            vec![
                NodeId::from(-3),
                NodeId::from(2),
                NodeId::from(10),
                NodeId::from("a"),
                NodeId::from("b"),
            ]
        );
    }
}
