//! Node identities: an integer or a string, totally ordered (every integer before every string).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// The id of a node (replica, process, actor) that owns an entry of a clock.
///
/// Integers sort numerically and before all strings; strings sort by their UTF-8 bytes. The
/// string is shared, so cloning an id (for example when merging clocks) never copies text.
#[derive(Clone, PartialEq, Eq, Hash)]
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

impl NodeId {
    /// A string id. Equal strings share one allocation, so comparing the ids of two clocks that
    /// name the same nodes is a pointer comparison, not a string comparison.
    pub fn str(s: &str) -> Self {
        let mut set = interner()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(shared) = set.get(s) {
            return NodeId::Str(Arc::clone(shared));
        }
        let fresh: Arc<str> = Arc::from(s);
        if set.len() < INTERN_LIMIT {
            set.insert(Arc::clone(&fresh));
        }
        NodeId::Str(fresh)
    }
}

impl Ord for NodeId {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (NodeId::Str(a), NodeId::Str(b)) if Arc::ptr_eq(a, b) => Ordering::Equal,
            (NodeId::Int(a), NodeId::Int(b)) => a.cmp(b),
            (NodeId::Int(_), NodeId::Str(_)) => Ordering::Less,
            (NodeId::Str(_), NodeId::Int(_)) => Ordering::Greater,
            (NodeId::Str(a), NodeId::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
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
