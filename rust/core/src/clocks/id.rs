//! Node identities: an integer or a string, totally ordered (every integer before every string).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

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

impl NodeId {
    /// A string id.
    pub fn str(s: &str) -> Self {
        NodeId::Str(Arc::from(s))
    }
}

impl Ord for NodeId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
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
