//! Causal order of events stamped with vector clocks, and causal-broadcast delivery.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, VecDeque};

use super::{NodeId, VectorClock};
use crate::error::{Error, Result};

/// A permutation of `clocks` consistent with happens-before (if `a` happened before `b`, `a`
/// comes first), and for each position the index of its group.
///
/// Events are sorted by the sum of their counters, which strictly grows along happens-before, so
/// every run of equal sums holds events that are pairwise concurrent or equal: that run is a
/// group. Within a group the order is deterministic: by the clocks' entries (node id, then
/// counter, lexicographically), then by input position, so equal inputs always give the same
/// output. O(n log n) in the number of events.
pub fn causal_order(clocks: &[&VectorClock]) -> (Vec<usize>, Vec<usize>) {
    let totals: Vec<u128> = clocks.iter().map(|c| c.total()).collect();
    let mut order: Vec<usize> = (0..clocks.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        totals[a]
            .cmp(&totals[b])
            .then_with(|| cmp_entries(clocks[a], clocks[b]))
            .then(a.cmp(&b))
    });
    let mut groups = Vec::with_capacity(order.len());
    let mut group = 0;
    for (pos, &i) in order.iter().enumerate() {
        if pos > 0 && totals[i] != totals[order[pos - 1]] {
            group += 1;
        }
        groups.push(group);
    }
    (order, groups)
}

fn cmp_entries(a: &VectorClock, b: &VectorClock) -> CmpOrdering {
    a.entries().cmp(b.entries())
}

/// A message a [`CausalDelivery`] buffer holds or hands out.
#[derive(Debug, Clone)]
pub struct Message<P> {
    /// The node that broadcast it.
    pub sender: NodeId,
    /// The sender's clock when it broadcast (its own entry counts this message).
    pub clock: VectorClock,
    /// The application's data.
    pub payload: P,
}

/// What [`CausalDelivery::receive`] did with a message.
#[derive(Debug)]
pub enum Received<P> {
    /// Delivered, with every held message it unblocked, in delivery order.
    Delivered(Vec<Message<P>>),
    /// Held until the messages it depends on are delivered.
    Held,
    /// Already delivered (a duplicate); dropped.
    Duplicate,
}

/// Causal-broadcast delivery (Birman, Schiper and Stephenson, 1991).
///
/// Each node stamps a broadcast with its clock after counting the broadcast in its own entry. A
/// receiver with delivered-clock `D` delivers a message from `j` stamped `V` only when
/// `V[j] == D[j] + 1` (the next one from `j`) and `V[k] <= D[k]` for every other `k` (everything
/// the sender had seen was delivered here); otherwise it holds the message.
#[derive(Debug)]
pub struct CausalDelivery<P> {
    me: NodeId,
    delivered: VectorClock,
    /// Held messages per sender, by the sender's sequence number.
    held: BTreeMap<NodeId, BTreeMap<u64, Message<P>>>,
    held_count: usize,
}

impl<P> CausalDelivery<P> {
    /// A buffer for node `me` that has delivered nothing.
    pub fn new(me: NodeId) -> Self {
        CausalDelivery {
            me,
            delivered: VectorClock::new(),
            held: BTreeMap::new(),
            held_count: 0,
        }
    }

    /// This node's id.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// For each node, how many of its broadcasts were delivered here.
    pub fn delivered(&self) -> &VectorClock {
        &self.delivered
    }

    /// A buffer for `me` that already delivered `delivered` (to restore a saved one; its held
    /// messages are given back with [`CausalDelivery::receive`]).
    pub fn resume(me: NodeId, delivered: VectorClock) -> Self {
        CausalDelivery {
            delivered,
            ..CausalDelivery::new(me)
        }
    }

    /// Number of messages held.
    pub fn held_count(&self) -> usize {
        self.held_count
    }

    /// The held messages, by sender then sequence number.
    pub fn held(&self) -> impl Iterator<Item = &Message<P>> {
        self.held.values().flat_map(BTreeMap::values)
    }

    /// Stamps a broadcast by this node: counts it as delivered here and returns the clock to
    /// send with it.
    pub fn broadcast(&mut self) -> Result<VectorClock> {
        self.delivered.increment(&self.me.clone(), 1)?;
        Ok(self.delivered.clone())
    }

    /// Takes a message from `sender` stamped `clock`.
    pub fn receive(
        &mut self,
        sender: NodeId,
        clock: VectorClock,
        payload: P,
    ) -> Result<Received<P>> {
        let seq = clock.get(&sender);
        if seq == 0 {
            return Err(Error::InvalidArgument(format!(
                "the clock of a message from {sender} must count it in {sender}'s entry"
            )));
        }
        if seq <= self.delivered.get(&sender)
            || self.held.get(&sender).is_some_and(|h| h.contains_key(&seq))
        {
            return Ok(Received::Duplicate);
        }
        let msg = Message {
            sender,
            clock,
            payload,
        };
        if !self.deliverable(&msg) {
            self.held
                .entry(msg.sender.clone())
                .or_default()
                .insert(seq, msg);
            self.held_count += 1;
            return Ok(Received::Held);
        }
        let mut out = Vec::new();
        let mut queue = VecDeque::from([msg]);
        while let Some(m) = queue.pop_front() {
            self.delivered.set(&m.sender, m.clock.get(&m.sender));
            out.push(m);
            // Only the next message of each sender can have become deliverable.
            let ready: Vec<(NodeId, u64)> = self
                .held
                .iter()
                .filter_map(|(s, msgs)| {
                    let next = self.delivered.get(s) + 1;
                    msgs.get(&next)
                        .filter(|m| self.deliverable(m))
                        .map(|_| (s.clone(), next))
                })
                .collect();
            for (s, next) in ready {
                let msgs = self.held.get_mut(&s).expect("sender present");
                let m = msgs.remove(&next).expect("message present");
                if msgs.is_empty() {
                    self.held.remove(&s);
                }
                self.held_count -= 1;
                queue.push_back(m);
            }
        }
        Ok(Received::Delivered(out))
    }

    fn deliverable(&self, m: &Message<P>) -> bool {
        let d = &self.delivered;
        m.clock.get(&m.sender) == d.get(&m.sender) + 1
            && m.clock
                .entries()
                .all(|(k, v)| *k == m.sender || v <= d.get(k))
    }

    /// For a held message, the broadcasts it waits for: per node, the first and last missing
    /// sequence numbers.
    pub fn missing_for(&self, m: &Message<P>) -> Vec<(NodeId, u64, u64)> {
        let d = &self.delivered;
        m.clock
            .entries()
            .filter_map(|(k, v)| {
                let need = if *k == m.sender { v - 1 } else { v };
                let have = d.get(k);
                (need > have).then(|| (k.clone(), have + 1, need))
            })
            .collect()
    }

    /// Everything held messages wait for, merged: per node, the first and last missing sequence
    /// numbers (the first is always the next one to deliver from that node).
    pub fn waiting_for(&self) -> Vec<(NodeId, u64, u64)> {
        let mut need = VectorClock::new();
        for m in self.held() {
            for (k, _, last) in self.missing_for(m) {
                if last > need.get(&k) {
                    need.set(&k, last);
                }
            }
        }
        need.entries()
            .map(|(k, last)| (k.clone(), self.delivered.get(k) + 1, last))
            .collect()
    }
}

/// The least upper bound of many clocks.
pub fn merge_all(clocks: &[&VectorClock]) -> VectorClock {
    let mut out = VectorClock::new();
    for c in clocks {
        out.merge(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vc(pairs: &[(&str, u64)]) -> VectorClock {
        VectorClock::from_entries(pairs.iter().map(|(k, v)| (NodeId::from(*k), *v))).unwrap()
    }

    #[test]
    fn causal_order_respects_happens_before() {
        let events = [
            vc(&[("a", 2), ("b", 1)]),
            vc(&[("a", 1)]),
            vc(&[("b", 1)]),
            vc(&[("a", 1), ("b", 1)]),
            vc(&[]),
        ];
        let refs: Vec<&VectorClock> = events.iter().collect();
        let (order, groups) = causal_order(&refs);
        assert_eq!(order, vec![4, 1, 2, 3, 0]);
        assert_eq!(groups, vec![0, 1, 1, 2, 3]);
    }

    #[test]
    fn delivery_holds_until_dependencies_arrive() {
        let (a, b) = (NodeId::from("a"), NodeId::from("b"));
        let mut at_a: CausalDelivery<&str> = CausalDelivery::new(a.clone());
        let m1 = at_a.broadcast().unwrap(); // a:1
        let m2 = at_a.broadcast().unwrap(); // a:2
        let mut at_b: CausalDelivery<&str> = CausalDelivery::new(b.clone());
        let mut at_c: CausalDelivery<&str> = CausalDelivery::new(NodeId::from("c"));
        // b sees m1 then replies: its reply depends on a:1.
        assert!(
            matches!(at_b.receive(a.clone(), m1.clone(), "m1").unwrap(), Received::Delivered(v) if v.len() == 1)
        );
        let reply = at_b.broadcast().unwrap();
        // c gets the reply and m2 first: both held, waiting for a:1.
        assert!(matches!(
            at_c.receive(b.clone(), reply, "reply").unwrap(),
            Received::Held
        ));
        assert!(matches!(
            at_c.receive(a.clone(), m2, "m2").unwrap(),
            Received::Held
        ));
        assert_eq!(at_c.waiting_for(), vec![(a.clone(), 1, 1)]);
        let Received::Delivered(out) = at_c.receive(a.clone(), m1.clone(), "m1").unwrap() else {
            panic!("m1 must deliver");
        };
        let payloads: Vec<&str> = out.iter().map(|m| m.payload).collect();
        // reply and m2 are concurrent; held messages unblock in sender-id order.
        assert_eq!(payloads, vec!["m1", "m2", "reply"]);
        assert_eq!(at_c.held_count(), 0);
        assert!(matches!(
            at_c.receive(a, m1, "m1").unwrap(),
            Received::Duplicate
        ));
    }
}
