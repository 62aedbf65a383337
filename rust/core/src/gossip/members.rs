//! One member's view of the membership, copy-on-write over a table that many views can share.
//!
//! memberlist keeps a full list of members in every member, so a simulation of `n` members
//! holds `n²` entries: 10^10 at 100,000 members. Here a view is a shared, immutable table (the
//! converged membership every simulated member starts from) plus the slots where this view
//! differs from it. Views that agree cost nothing; a member that changed costs one entry in each
//! view that learnt of the change. A runtime member has a table of one (itself) and keeps every
//! other member in its own changes, which is an ordinary map.
//!
//! Members live in numbered slots. Everything a state machine asks often is O(1): look-up by
//! name, the count of live members, a random live member (rejection sampling over the slots),
//! the i-th member of a probe pass, and the members that are dead or left (kept apart, for
//! reaping and reconnecting without walking everyone).

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::RngExt;
use rustc_hash::FxHashMap as HashMap;

use std::net::SocketAddr;

use super::swim::Member;
use super::NodeState;

/// A membership table to share between views (read-only once built).
#[derive(Debug, Default)]
pub struct SharedTable {
    members: Vec<Member>,
    index: HashMap<String, u32>,
    by_addr: HashMap<SocketAddr, u32>,
    /// Counted once here, not once per view (a view over a table starts with its counts).
    live: usize,
    down: BTreeSet<u32>,
}

impl SharedTable {
    /// A table of `members`, in slot order; names must be distinct.
    pub fn new(members: Vec<Member>) -> SharedTable {
        let index: HashMap<String, u32> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i as u32))
            .collect();
        let live = members.iter().filter(|m| is_live(m.state)).count();
        let down = members
            .iter()
            .enumerate()
            .filter(|(_, m)| !is_live(m.state))
            .map(|(i, _)| i as u32)
            .collect();
        let by_addr = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.addr, i as u32))
            .collect();
        SharedTable {
            members,
            index,
            by_addr,
            live,
            down,
        }
    }

    /// Members in the table.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

fn is_live(state: NodeState) -> bool {
    matches!(state, NodeState::Alive | NodeState::Suspect)
}

/// One member's view of the membership.
#[derive(Debug, Clone)]
pub struct Members {
    shared: Arc<SharedTable>,
    /// Slots whose entry differs from the shared table; `None` is an empty slot (reaped).
    changed: HashMap<u32, Option<Member>>,
    /// Names not found at their shared slot (joined later, or back after being reaped).
    names: HashMap<String, u32>,
    /// Addresses not found at their shared slot (members added, or whose address changed).
    addrs: HashMap<SocketAddr, u32>,
    /// Slots in use or empty: the shared ones, then those added since.
    slots: u32,
    /// Empty slots, reused before the table grows.
    free: Vec<u32>,
    present: usize,
    live: usize,
    /// Slots of members that are dead or left.
    down: BTreeSet<u32>,
}

impl Members {
    /// A view equal to `shared`.
    pub fn over(shared: Arc<SharedTable>) -> Members {
        let n = shared.members.len();
        let (live, down) = (shared.live, shared.down.clone());
        Members {
            shared,
            changed: HashMap::default(),
            names: HashMap::default(),
            addrs: HashMap::default(),
            slots: n as u32,
            free: Vec::new(),
            present: n,
            live,
            down,
        }
    }

    /// Whether this view and `other` are over the same shared table.
    pub fn shares_table_with(&self, other: &Members) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The member in `slot`, if the slot is in use.
    pub fn at(&self, slot: u32) -> Option<&Member> {
        match self.changed.get(&slot) {
            Some(entry) => entry.as_ref(),
            None => self.shared.members.get(slot as usize),
        }
    }

    /// The slot of the member named `name`.
    pub fn slot_of(&self, name: &str) -> Option<u32> {
        if let Some(&slot) = self.names.get(name) {
            return Some(slot);
        }
        let &slot = self.shared.index.get(name)?;
        // The shared slot may have been emptied, or reused for someone else.
        self.at(slot).filter(|m| m.name == name).map(|_| slot)
    }

    /// The member at `addr` (entries left behind by changes are checked, not trusted).
    pub fn at_addr(&self, addr: SocketAddr) -> Option<&Member> {
        [self.addrs.get(&addr), self.shared.by_addr.get(&addr)]
            .into_iter()
            .flatten()
            .find_map(|&slot| self.at(slot).filter(|m| m.addr == addr))
    }

    /// The member named `name`.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.slot_of(name).and_then(|s| self.at(s))
    }

    /// Changes the member in `slot` with `f`, keeping the counts right. Returns it after.
    ///
    /// # Panics
    /// If the slot is empty.
    pub fn modify(&mut self, slot: u32, f: impl FnOnce(&mut Member)) -> &Member {
        let shared = &self.shared;
        let (before, after, addr) = {
            let entry = self
                .changed
                .entry(slot)
                .or_insert_with(|| shared.members.get(slot as usize).cloned());
            let m = entry.as_mut().expect("modify an occupied slot");
            let (before, addr) = (m.state, m.addr);
            f(m);
            (before, m.state, (m.addr != addr).then_some(m.addr))
        };
        if let Some(addr) = addr {
            self.addrs.insert(addr, slot);
        }
        self.account(slot, before, false);
        self.account(slot, after, true);
        self.at(slot).expect("just modified")
    }

    fn account(&mut self, slot: u32, state: NodeState, add: bool) {
        if is_live(state) {
            if add {
                self.live += 1;
            } else {
                self.live -= 1;
            }
        } else if add {
            self.down.insert(slot);
        } else {
            self.down.remove(&slot);
        }
    }

    /// Adds a member not in the view; returns its slot.
    pub fn insert(&mut self, member: Member) -> u32 {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots += 1;
            self.slots - 1
        });
        let in_shared_slot = self
            .shared
            .index
            .get(&member.name)
            .is_some_and(|&s| s == slot);
        if !in_shared_slot {
            self.names.insert(member.name.clone(), slot);
        }
        self.account(slot, member.state, true);
        self.present += 1;
        self.addrs.insert(member.addr, slot);
        self.changed.insert(slot, Some(member));
        slot
    }

    /// Empties `slot` (a member reaped).
    pub fn remove(&mut self, slot: u32) {
        let Some(m) = self.at(slot).cloned() else {
            return;
        };
        self.account(slot, m.state, false);
        self.present -= 1;
        if self.names.get(&m.name) == Some(&slot) {
            self.names.remove(&m.name);
        }
        if self.addrs.get(&m.addr) == Some(&slot) {
            self.addrs.remove(&m.addr);
        }
        self.changed.insert(slot, None);
        self.free.push(slot);
    }

    /// Members in the view.
    pub fn len(&self) -> usize {
        self.present
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// Members alive or suspect.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Slots in use or empty (the range slot numbers come from).
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Slots of the members dead or left, in slot order.
    pub fn down(&self) -> impl Iterator<Item = u32> + '_ {
        self.down.iter().copied()
    }

    /// Every member, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        (0..self.slots).filter_map(|s| self.at(s))
    }

    /// The slots where this view differs from the shared table, or `other`'s does: the only
    /// entries a full-state exchange between the two can change (both views agree on the rest).
    pub fn differing_slots(&self, other: &Members) -> BTreeSet<u32> {
        self.changed
            .keys()
            .chain(other.changed.keys())
            .copied()
            .collect()
    }

    /// Up to `k` distinct random slots other than `except` whose member passes `keep`.
    ///
    /// Rejection sampling over the slots keeps it O(k) when most members pass (gossip and
    /// probe helpers run every round); it falls back to a walk over everyone when they do not.
    pub fn sample(
        &self,
        rng: &mut SmallRng,
        k: usize,
        except: u32,
        keep: impl Fn(&Member) -> bool,
    ) -> Vec<u32> {
        let mut chosen: Vec<u32> = Vec::with_capacity(k);
        if k == 0 {
            return chosen;
        }
        if self.slots > 64 {
            for _ in 0..k * 16 {
                let s = rng.random_range(0..self.slots);
                if s != except && !chosen.contains(&s) && self.at(s).is_some_and(&keep) {
                    chosen.push(s);
                    if chosen.len() == k {
                        return chosen;
                    }
                }
            }
        }
        let mut candidates: Vec<u32> = (0..self.slots)
            .filter(|&s| s != except && self.at(s).is_some_and(&keep))
            .collect();
        // The first k steps of a Fisher-Yates shuffle.
        let k = k.min(candidates.len());
        for i in 0..k {
            let j = rng.random_range(i..candidates.len());
            candidates.swap(i, j);
        }
        candidates.truncate(k);
        candidates
    }
}

/// SWIM's probe order: round-robin over a random permutation of the slots, a new permutation
/// each pass (so every member is probed once per pass: SWIM's bound on time to first detection).
///
/// The permutation is `i -> (a*i + b) mod n` with `a` coprime to `n`: O(1) memory whatever the
/// membership's size, where memberlist shuffles a list of every member. Members that join
/// mid-pass are probed from the next pass on.
#[derive(Debug, Clone, Default)]
pub struct ProbeOrder {
    n: u64,
    a: u64,
    b: u64,
    i: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl ProbeOrder {
    /// The next slot to probe, among `slots` slots; a new pass starts when one ends.
    pub fn next(&mut self, rng: &mut SmallRng, slots: u32) -> Option<u32> {
        if slots == 0 {
            return None;
        }
        if self.i >= self.n {
            let n = u64::from(slots);
            let mut a = rng.random_range(1..=n);
            while gcd(a, n) != 1 {
                a = rng.random_range(1..=n);
            }
            *self = ProbeOrder {
                n,
                a,
                b: rng.random_range(0..n),
                i: 0,
            };
        }
        let slot = (self.a * self.i + self.b) % self.n;
        self.i += 1;
        Some(slot as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::time::Duration;

    /// A member at port 7000 + i for the name `n{i}` (7999 for any other name).
    fn member(name: &str, state: NodeState) -> Member {
        let port = 7000 + name[1..].parse::<u16>().unwrap_or(999);
        Member {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            meta: Vec::new(),
            incarnation: 1,
            state,
            since: Duration::ZERO,
            vsn: vec![1, 5, 2, 2, 5, 4],
        }
    }

    fn table(n: usize) -> Arc<SharedTable> {
        Arc::new(SharedTable::new(
            (0..n)
                .map(|i| member(&format!("n{i}"), NodeState::Alive))
                .collect(),
        ))
    }

    #[test]
    fn views_share_a_table_and_copy_on_write() {
        let shared = table(100);
        let mut a = Members::over(shared.clone());
        let b = Members::over(shared);
        assert!(a.shares_table_with(&b));
        assert_eq!((a.len(), a.live()), (100, 100));
        let s = a.slot_of("n7").unwrap();
        a.modify(s, |m| m.state = NodeState::Dead);
        assert_eq!(a.get("n7").unwrap().state, NodeState::Dead);
        assert_eq!(
            b.get("n7").unwrap().state,
            NodeState::Alive,
            "b is untouched"
        );
        assert_eq!((a.live(), a.down().collect::<Vec<_>>()), (99, vec![s]));
        assert_eq!(a.differing_slots(&b), BTreeSet::from([s]));
        // Reaped, then back under the same name: a new slot (the old one is reused first).
        a.remove(s);
        assert!(a.get("n7").is_none());
        assert_eq!((a.len(), a.live(), a.down().count()), (99, 99, 0));
        let reused = a.insert(member("x", NodeState::Alive));
        assert_eq!(reused, s, "the emptied slot is reused");
        assert!(a.get("n7").is_none(), "n7's shared slot now holds x");
        let back = a.insert(member("n7", NodeState::Alive));
        assert_eq!(a.get("n7").unwrap().name, "n7");
        assert_eq!(a.slot_of("n7"), Some(back));
        assert_eq!((a.len(), a.live()), (101, 101));
        assert_eq!(a.iter().count(), 101);
        // Look-up by address follows inserts, moves and removals.
        let moved = SocketAddr::from(([10, 0, 0, 9], 7));
        let slot = a.slot_of("n3").unwrap();
        a.modify(slot, |m| m.addr = moved);
        assert_eq!(a.at_addr(moved).unwrap().name, "n3");
        a.remove(slot);
        assert!(a.at_addr(moved).is_none());
        assert_eq!(
            b.at_addr(member("n0", NodeState::Alive).addr).unwrap().name,
            "n0"
        );
    }

    #[test]
    fn samples_are_distinct_and_pass_the_filter() {
        let mut rng = SmallRng::seed_from_u64(1);
        for n in [3, 50, 1000] {
            let mut v = Members::over(table(n));
            for i in (0..n).step_by(2) {
                v.modify(i as u32, |m| m.state = NodeState::Dead);
            }
            for _ in 0..50 {
                let s = v.sample(&mut rng, 3, 1, |m| m.state == NodeState::Alive);
                let mut d = s.clone();
                d.sort_unstable();
                d.dedup();
                assert_eq!(d.len(), s.len());
                assert!(s.iter().all(|&x| x != 1 && x % 2 == 1));
                assert_eq!(s.len(), 3.min(n / 2 - 1));
            }
        }
    }

    #[test]
    fn a_probe_pass_visits_every_slot_once() {
        let mut rng = SmallRng::seed_from_u64(2);
        for n in [1u32, 2, 7, 12, 1000] {
            let mut order = ProbeOrder::default();
            for _pass in 0..3 {
                let mut seen: Vec<u32> = (0..n).map(|_| order.next(&mut rng, n).unwrap()).collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>());
            }
        }
        assert_eq!(ProbeOrder::default().next(&mut rng, 0), None);
    }
}
