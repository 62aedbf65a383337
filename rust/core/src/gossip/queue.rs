//! The broadcast queue (memberlist's `TransmitLimitedQueue`): messages piggybacked on probes
//! and gossip, least-sent first, each sent `retransmit_limit(n)` times, and a newer message
//! about the same subject (a node's alive/suspect/dead) replacing the older one.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use super::config::retransmit_limit;
use super::wire::Message;

/// Queue order: fewest transmits first, then longest message, then newest (memberlist's).
type Key = (usize, Reverse<usize>, Reverse<u64>);

#[derive(Debug, Clone)]
struct Item<M> {
    subject: Option<String>,
    message: M,
    size: usize,
}

/// Broadcasts waiting to be piggybacked: messages of type `M` (the state machine keeps them
/// decoded, with their encoded size, so nothing is encoded and decoded again to piggyback them).
#[derive(Debug, Clone)]
pub struct BroadcastQueue<M = Vec<u8>> {
    items: BTreeMap<Key, Item<M>>,
    by_subject: HashMap<String, Key>,
    next_id: u64,
}

impl<M> Default for BroadcastQueue<M> {
    fn default() -> Self {
        BroadcastQueue {
            items: BTreeMap::new(),
            by_subject: HashMap::default(),
            next_id: 0,
        }
    }
}

impl<M: Clone> BroadcastQueue<M> {
    /// An empty queue.
    pub fn new() -> BroadcastQueue<M> {
        BroadcastQueue::default()
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `message`, `size` bytes on the wire; with a `subject` (e.g. a node name) it
    /// replaces a queued message about the same subject.
    pub fn push(&mut self, subject: Option<&str>, message: M, size: usize) {
        if let Some(s) = subject {
            if let Some(old) = self.by_subject.remove(s) {
                self.items.remove(&old);
            }
        }
        self.next_id += 1;
        let key = (0, Reverse(size), Reverse(self.next_id));
        if let Some(s) = subject {
            self.by_subject.insert(s.to_owned(), key);
        }
        self.items.insert(
            key,
            Item {
                subject: subject.map(str::to_owned),
                message,
                size,
            },
        );
    }

    /// Takes the messages to piggyback on a packet with `limit` bytes free, each costing
    /// `overhead` more (a compound's length field), in queue order, skipping what does not fit.
    /// Each taken message counts one transmit and is dropped after `retransmit_mult *
    /// ceil(log10(num_nodes + 1))` of them.
    pub fn take(
        &mut self,
        overhead: usize,
        limit: usize,
        num_nodes: usize,
        retransmit_mult: u32,
    ) -> Vec<M> {
        let max_transmits = retransmit_limit(retransmit_mult, num_nodes);
        let mut used = 0;
        let mut taken = Vec::new();
        for (key, item) in &self.items {
            let Some(free) = limit.checked_sub(used + overhead) else {
                break;
            };
            if free == 0 {
                break;
            }
            if item.size <= free {
                used += overhead + item.size;
                taken.push(*key);
            }
        }
        let mut out = Vec::with_capacity(taken.len());
        for key in taken {
            let item = self.items.remove(&key).expect("taken from the map");
            out.push(item.message.clone());
            let transmits = key.0 + 1;
            let next = (transmits < max_transmits).then_some((transmits, key.1, key.2));
            if let Some(s) = &item.subject {
                match next {
                    Some(next) => {
                        if let Some(k) = self.by_subject.get_mut(s) {
                            *k = next;
                        }
                    }
                    None => {
                        self.by_subject.remove(s);
                    }
                }
            }
            if let Some(next) = next {
                self.items.insert(next, item);
            }
        }
        out
    }
}

impl BroadcastQueue<Message> {
    /// Queues a message, sized by its encoding.
    pub fn push_message(&mut self, subject: Option<&str>, message: Message) {
        let size = message.encoded_len();
        self.push(subject, message, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(q: &mut BroadcastQueue, subject: Option<&str>, message: Vec<u8>) {
        let size = message.len();
        q.push(subject, message, size);
    }

    #[test]
    fn least_sent_longest_newest_first_and_retransmit_limit() {
        let mut q = BroadcastQueue::new();
        push(&mut q, Some("a"), b"alive a".to_vec());
        push(&mut q, None, b"user message, longer".to_vec());
        push(&mut q, None, b"user 2".to_vec());
        // Longest first at equal transmits.
        let first = q.take(2, 1400, 3, 1);
        assert_eq!(
            first,
            vec![
                b"user message, longer".to_vec(),
                b"alive a".to_vec(),
                b"user 2".to_vec()
            ]
        );
        // retransmit_mult 1 with 3 nodes: ceil(log10 4) = 1 transmit each.
        assert!(q.is_empty());

        push(&mut q, Some("a"), b"alive a".to_vec());
        push(&mut q, Some("a"), b"dead a".to_vec());
        assert_eq!(q.len(), 1, "a newer message about a replaces the older");
        // retransmit_mult 2, 10 nodes: ceil(log10 11) = 2 -> 4 transmits.
        for _ in 0..4 {
            assert_eq!(q.take(2, 1400, 10, 2), vec![b"dead a".to_vec()]);
        }
        assert!(q.is_empty());
    }

    #[test]
    fn only_what_fits_is_taken() {
        let mut q = BroadcastQueue::new();
        push(&mut q, None, vec![1; 100]);
        push(&mut q, None, vec![2; 50]);
        push(&mut q, None, vec![3; 10]);
        let got = q.take(2, 70, 5, 4);
        assert_eq!(got, vec![vec![2; 50], vec![3; 10]]);
        // The 100-byte message is still first in line (never sent), the others went once.
        assert_eq!(q.take(2, 200, 5, 4)[0], vec![1; 100]);
    }
}
