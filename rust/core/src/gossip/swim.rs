//! The SWIM + Lifeguard state machine, sans-IO in the spirit of `foca`: packets, stream states
//! and the time come in; packets to send, push-pull requests and membership events go out. It
//! never reads a clock or touches a socket, so the runtime and the simulator drive the same code.
//!
//! It follows memberlist's rules: probes round-robin over a shuffled member list, an indirect
//! probe through `indirect_checks` members (asking for nacks) when an ack is late, suspicion with
//! incarnation numbers and refutation, dead and left, reaping after `gossip_to_the_dead_time`;
//! Lifeguard's health score (missed acks and nacks, refutations) stretching the probe interval
//! and timeout, the dynamic suspicion timeout, and the buddy system (a probe of a suspect carries
//! the suspicion); broadcasts piggybacked on every packet and gossiped to `gossip_nodes` members
//! every `gossip_interval`; a push-pull with a random member every scaled `push_pull_interval`.

use rustc_hash::FxHashMap as HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;

use super::awareness::Awareness;
use super::config::Config;
use super::members::{Members, ProbeOrder, SharedTable};
use super::queue::BroadcastQueue;
use super::suspicion::Suspicion;
use super::wire::{Alive, Dead, IndirectPing, Message, Ping, Suspect};
use super::{NodeState, PushNodeState, PushPull};
use crate::error::{Error, Result};

/// A member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    pub meta: Vec<u8>,
    pub incarnation: u32,
    pub state: NodeState,
    /// When the state last changed (the caller's clock).
    pub since: Duration,
    /// Protocol min, max, current, delegate min, max, current.
    pub vsn: Vec<u8>,
}

/// A change in membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member joined (or came back after dead/left).
    Join(Member),
    /// A member's metadata or address changed.
    Update(Member),
    /// A member is suspected of having failed.
    Suspect(String),
    /// A suspected member was found alive (it refuted).
    Alive(Member),
    /// A member was declared dead.
    Dead(String),
    /// A member left gracefully.
    Leave(String),
    /// Another node announced itself under a live member's name from a different address
    /// (`member` is the one kept; a name taken twice, or this node's own name in use elsewhere).
    /// The announcement is ignored, as memberlist does.
    Conflict { member: Member, other: SocketAddr },
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these messages to `to` in one packet (a compound when several).
    Packet {
        to: SocketAddr,
        messages: Vec<Message>,
    },
    /// Exchange full state with `to` over a stream: send [`Swim::local_state`], and give the
    /// reply to [`Swim::merge_remote_state`].
    PushPull { to: SocketAddr, join: bool },
    /// Ping `node` at `to` over a stream (memberlist's TCP fallback), giving up at `deadline`;
    /// on an ack with `seq_no`, call [`Swim::stream_ack`].
    StreamPing {
        to: SocketAddr,
        seq_no: u32,
        node: String,
        deadline: Duration,
    },
    /// Membership changed.
    Event(Event),
    /// Application data another member broadcast.
    User(Vec<u8>),
}

/// memberlist's compound framing costs 2 bytes per message, plus 2 for the header.
const COMPOUND_OVERHEAD: usize = 2;
const COMPOUND_HEADER: usize = 2;

#[derive(Debug, Clone)]
struct Probe {
    seq_no: u32,
    target: String,
    /// When the direct ack is due (then probe indirectly).
    ack_deadline: Duration,
    /// When the probe fails (then suspect).
    deadline: Duration,
    indirect_sent: bool,
    expected_nacks: u32,
    nacks: u32,
    /// The fallback stream ping was answered.
    stream_acked: bool,
}

/// What a probe needs of its target (not the whole member: no metadata copied per probe).
struct ProbeTarget {
    name: String,
    addr: SocketAddr,
    incarnation: u32,
    state: NodeState,
}

#[derive(Debug, Clone)]
struct Relay {
    requester: SocketAddr,
    their_seq_no: u32,
    nack: bool,
    deadline: Duration,
}

/// The state machine of one member.
pub struct Swim {
    config: Config,
    me: String,
    me_slot: u32,
    members: Members,
    probe_order: ProbeOrder,
    seq_no: u32,
    awareness: Awareness,
    suspicions: HashMap<String, Suspicion>,
    probe: Option<Probe>,
    relays: HashMap<u32, Relay>,
    queue: BroadcastQueue<Message>,
    next_probe: Duration,
    next_gossip: Duration,
    next_push_pull: Duration,
    leaving: bool,
    rng: SmallRng,
    out: Vec<Output>,
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn push_node_state(m: &Member) -> PushNodeState {
    PushNodeState {
        name: m.name.clone(),
        addr: ip_bytes(m.addr.ip()),
        port: m.addr.port(),
        meta: m.meta.clone(),
        incarnation: m.incarnation,
        state: m.state,
        vsn: m.vsn.clone(),
    }
}

fn socket_addr(ip: &[u8], port: u16) -> Option<SocketAddr> {
    let ip = match ip.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(ip).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

impl Swim {
    /// A member named `name`, reachable at `addr`, alone in its cluster until it joins one.
    /// `vsn` is what it advertises (protocol and delegate version ranges); `seed` makes every
    /// random choice reproducible.
    pub fn new(
        config: Config,
        name: &str,
        addr: SocketAddr,
        meta: Vec<u8>,
        vsn: Vec<u8>,
        seed: u64,
        now: Duration,
    ) -> Result<Swim> {
        if meta.len() > 512 {
            return Err(Error::InvalidArgument(format!(
                "node metadata is at most 512 bytes (memberlist's MetaMaxSize), got {}",
                meta.len()
            )));
        }
        let me = Member {
            name: name.to_owned(),
            addr,
            meta,
            incarnation: 1,
            state: NodeState::Alive,
            since: now,
            vsn,
        };
        let table = Arc::new(SharedTable::new(vec![me]));
        let mut swim = Swim::with_table(config, &table, name, seed, now)?;
        swim.broadcast_alive_self();
        Ok(swim)
    }

    /// A member named `name` whose view starts as `table` (where it must be), shared with other
    /// members built from the same table: a simulation's converged cluster costs one table, not
    /// one per member. Nothing is queued to broadcast.
    pub fn with_table(
        config: Config,
        table: &Arc<SharedTable>,
        name: &str,
        seed: u64,
        now: Duration,
    ) -> Result<Swim> {
        let members = Members::over(table.clone());
        let me_slot = members.slot_of(name).ok_or_else(|| {
            Error::InvalidArgument(format!("{name:?} is not in the membership table"))
        })?;
        Ok(Swim {
            awareness: Awareness::new(if config.lifeguard {
                config.awareness_max_multiplier
            } else {
                1 // a score stuck at 0: probes never stretch
            }),
            next_probe: now + config.probe_interval,
            next_gossip: now + config.gossip_interval,
            next_push_pull: now + config.push_pull_interval,
            config,
            me: name.to_owned(),
            me_slot,
            members,
            probe_order: ProbeOrder::default(),
            seq_no: 0,
            suspicions: HashMap::default(),
            probe: None,
            relays: HashMap::default(),
            queue: BroadcastQueue::new(),
            leaving: false,
            rng: SmallRng::seed_from_u64(seed),
            out: Vec::new(),
        })
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.me
    }

    /// Every known member, this node included, by name.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    /// The member reachable at `addr`.
    pub fn member_at(&self, addr: SocketAddr) -> Option<&Member> {
        self.members.at_addr(addr)
    }

    /// Members that are alive or suspect (kept up to date on every state change).
    pub fn live_count(&self) -> usize {
        self.members.live()
    }

    /// Members known, whatever their state, until reaped: what memberlist scales retransmits,
    /// suspicion timeouts and the push-pull interval with (its `estNumNodes`), so a leave or a
    /// verdict is retransmitted as often while the dead are still remembered.
    pub fn known_count(&self) -> usize {
        self.members.len()
    }

    fn me_member(&self) -> &Member {
        self.members.at(self.me_slot).expect("self is a member")
    }

    /// Drops every queued broadcast (for a simulation that starts from a long-converged cluster).
    pub fn clear_broadcasts(&mut self) {
        self.queue = BroadcastQueue::new();
    }

    /// Lifeguard's health score of this node.
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// The outputs produced so far, in order.
    pub fn drain(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Asks to join the cluster through `seeds` (a push-pull with each).
    pub fn join(&mut self, seeds: &[SocketAddr]) {
        for &to in seeds {
            self.out.push(Output::PushPull { to, join: true });
        }
    }

    /// Queues application data for piggybacking (memberlist's user broadcasts).
    pub fn broadcast(&mut self, data: Vec<u8>) {
        self.queue.push_message(None, Message::User(data));
    }

    /// Replaces this node's metadata and tells the cluster (a new incarnation).
    pub fn update_meta(&mut self, meta: Vec<u8>) -> Result<()> {
        if meta.len() > 512 {
            return Err(Error::InvalidArgument(format!(
                "node metadata is at most 512 bytes, got {}",
                meta.len()
            )));
        }
        self.members.modify(self.me_slot, |me| {
            me.meta = meta;
            me.incarnation += 1;
        });
        self.broadcast_alive_self();
        Ok(())
    }

    /// Leaves gracefully: tells the cluster this node left (a dead message from itself).
    pub fn leave(&mut self, now: Duration) {
        self.leaving = true;
        let me = self.members.modify(self.me_slot, |me| {
            me.state = NodeState::Left;
            me.since = now;
        });
        let dead = Dead {
            incarnation: me.incarnation,
            node: self.me.clone(),
            from: self.me.clone(),
        };
        self.queue
            .push_message(Some(&self.me.clone()), Message::Dead(dead));
    }

    fn broadcast_alive_self(&mut self) {
        let me = self.me_member();
        let alive = Alive {
            incarnation: me.incarnation,
            node: me.name.clone(),
            addr: ip_bytes(me.addr.ip()),
            port: me.addr.port(),
            meta: me.meta.clone(),
            vsn: me.vsn.clone(),
        };
        let name = self.me.clone();
        self.queue.push_message(Some(&name), Message::Alive(alive));
    }

    /// This node's full state for a push-pull.
    pub fn local_state(&self, join: bool) -> PushPull {
        PushPull {
            join,
            nodes: self.members.iter().map(push_node_state).collect(),
            user_state: Vec::new(),
        }
    }

    /// What this node sends `other` in a push-pull: its full state, or when both views are over
    /// the same shared table, only the entries where either differs from it (merging the others
    /// changes nothing, as both hold them). The simulator's push-pulls stay O(changes), not O(n).
    pub fn state_for(&self, other: &Swim, join: bool) -> PushPull {
        if !self.members.shares_table_with(&other.members) {
            return self.local_state(join);
        }
        PushPull {
            join,
            nodes: self
                .members
                .differing_slots(&other.members)
                .into_iter()
                .filter_map(|s| self.members.at(s))
                .map(push_node_state)
                .collect(),
            user_state: Vec::new(),
        }
    }

    /// Merges a remote full state (memberlist's `mergeState`: alive -> alive, left -> dead from
    /// itself, dead or suspect -> suspect, since a suspicion can still be refuted).
    pub fn merge_remote_state(&mut self, remote: &PushPull, now: Duration) {
        for n in &remote.nodes {
            match n.state {
                NodeState::Alive => {
                    let Some(addr) = socket_addr(&n.addr, n.port) else {
                        continue;
                    };
                    self.on_alive(
                        &Alive {
                            incarnation: n.incarnation,
                            node: n.name.clone(),
                            addr: ip_bytes(addr.ip()),
                            port: n.port,
                            meta: n.meta.clone(),
                            vsn: n.vsn.clone(),
                        },
                        now,
                    );
                }
                NodeState::Left => self.on_dead(
                    &Dead {
                        incarnation: n.incarnation,
                        node: n.name.clone(),
                        from: n.name.clone(),
                    },
                    now,
                ),
                NodeState::Dead | NodeState::Suspect => self.on_suspect(
                    &Suspect {
                        incarnation: n.incarnation,
                        node: n.name.clone(),
                        from: self.me.clone(),
                    },
                    now,
                ),
            }
        }
    }

    /// Handles the messages of one packet from `from`.
    pub fn handle_packet(&mut self, from: SocketAddr, messages: &[Message], now: Duration) {
        for m in messages {
            self.handle_message(from, m, now);
        }
    }

    fn handle_message(&mut self, from: SocketAddr, m: &Message, now: Duration) {
        match m {
            Message::Ping(p) => {
                if !p.node.is_empty() && p.node != self.me {
                    return; // meant for a node that was here before us
                }
                let to = socket_addr(&p.source_addr, p.source_port).unwrap_or(from);
                let ack = Message::Ack {
                    seq_no: p.seq_no,
                    payload: Vec::new(),
                };
                self.send(to, vec![ack]);
            }
            Message::IndirectPing(p) => {
                let Some(target) = socket_addr(&p.target, p.port) else {
                    return;
                };
                self.seq_no = self.seq_no.wrapping_add(1);
                let seq_no = self.seq_no;
                let requester = socket_addr(&p.source_addr, p.source_port).unwrap_or(from);
                self.relays.insert(
                    seq_no,
                    Relay {
                        requester,
                        their_seq_no: p.seq_no,
                        nack: p.nack,
                        deadline: now + self.config.probe_timeout,
                    },
                );
                let ping = Ping {
                    seq_no,
                    node: p.node.clone(),
                    ..Ping::default()
                };
                self.send(target, vec![Message::Ping(ping)]);
            }
            Message::Ack { seq_no, .. } => {
                if let Some(relay) = self.relays.remove(seq_no) {
                    let ack = Message::Ack {
                        seq_no: relay.their_seq_no,
                        payload: Vec::new(),
                    };
                    self.send(relay.requester, vec![ack]);
                } else if self.probe.as_ref().is_some_and(|p| p.seq_no == *seq_no) {
                    self.probe = None;
                    self.awareness.apply(-1);
                }
            }
            Message::Nack { seq_no } => {
                if let Some(p) = self.probe.as_mut().filter(|p| p.seq_no == *seq_no) {
                    p.nacks += 1;
                }
            }
            Message::Alive(a) => self.on_alive(a, now),
            Message::Suspect(s) => self.on_suspect(s, now),
            Message::Dead(d) => self.on_dead(d, now),
            Message::User(data) => self.out.push(Output::User(data.clone())),
            Message::Err(_) => {}
        }
    }

    fn set_state(&mut self, name: &str, state: NodeState, incarnation: u32, now: Duration) {
        if let Some(slot) = self.members.slot_of(name) {
            self.members.modify(slot, |m| {
                m.state = state;
                m.incarnation = incarnation;
                m.since = now;
            });
        }
    }

    fn refute(&mut self, incarnation: u32) {
        // Another member thinks we are suspect or dead: outbid it.
        self.awareness.apply(1);
        self.members.modify(self.me_slot, |me| {
            me.incarnation = me.incarnation.max(incarnation) + 1;
        });
        self.broadcast_alive_self();
    }

    fn on_alive(&mut self, a: &Alive, now: Duration) {
        let Some(addr) = socket_addr(&a.addr, a.port) else {
            return;
        };
        if a.node == self.me {
            let me = self.me_member();
            if addr != me.addr {
                // Someone else uses our name: report it, do not fight over the name.
                let member = me.clone();
                self.out.push(Output::Event(Event::Conflict {
                    member,
                    other: addr,
                }));
                return;
            }
            if self.leaving || a.incarnation < me.incarnation {
                return;
            }
            if a.incarnation > me.incarnation || a.meta != me.meta {
                self.refute(a.incarnation);
            }
            return;
        }
        // Most alive messages are repeats (gossip sends each one many times): decide on a
        // borrowed member, copy only when something changes.
        let known = self.members.get(&a.node).map(|old| {
            let live = matches!(old.state, NodeState::Alive | NodeState::Suspect);
            if live && old.addr != addr {
                Err(Box::new(old.clone())) // a conflict
            } else {
                Ok((old.state, old.incarnation, old.addr, old.meta != a.meta))
            }
        });
        match known {
            None => {
                let m = Member {
                    name: a.node.clone(),
                    addr,
                    meta: a.meta.clone(),
                    incarnation: a.incarnation,
                    state: NodeState::Alive,
                    since: now,
                    vsn: a.vsn.clone(),
                };
                self.members.insert(m.clone());
                self.queue
                    .push_message(Some(&a.node), Message::Alive(a.clone()));
                self.out.push(Output::Event(Event::Join(m)));
            }
            Some(Err(member)) => {
                // memberlist keeps the member it knows and reports the other.
                self.out.push(Output::Event(Event::Conflict {
                    member: *member,
                    other: addr,
                }));
            }
            Some(Ok((old_state, old_incarnation, old_addr, meta_changed))) => {
                if a.incarnation <= old_incarnation {
                    return;
                }
                self.suspicions.remove(&a.node);
                let slot = self.members.slot_of(&a.node).expect("known member");
                let m = self
                    .members
                    .modify(slot, |m| {
                        m.incarnation = a.incarnation;
                        m.addr = addr;
                        m.vsn.clone_from(&a.vsn);
                        m.meta.clone_from(&a.meta);
                        if m.state != NodeState::Alive {
                            m.state = NodeState::Alive;
                            m.since = now;
                        }
                    })
                    .clone();
                self.queue
                    .push_message(Some(&a.node), Message::Alive(a.clone()));
                let event = match old_state {
                    NodeState::Dead | NodeState::Left => Event::Join(m),
                    NodeState::Suspect => Event::Alive(m),
                    NodeState::Alive if meta_changed || old_addr != addr => Event::Update(m),
                    NodeState::Alive => return,
                };
                self.out.push(Output::Event(event));
            }
        }
    }

    fn on_suspect(&mut self, s: &Suspect, now: Duration) {
        let Some(old) = self.members.get(&s.node).map(|m| (m.state, m.incarnation)) else {
            return;
        };
        let (old_state, old_incarnation) = old;
        if s.incarnation < old_incarnation {
            return;
        }
        if s.node == self.me {
            if !self.leaving {
                self.refute(s.incarnation);
            }
            return;
        }
        if let Some(sus) = self.suspicions.get_mut(&s.node) {
            if sus.confirm(&s.from) {
                self.queue
                    .push_message(Some(&s.node), Message::Suspect(s.clone()));
            }
            return;
        }
        if old_state != NodeState::Alive {
            return;
        }
        self.set_state(&s.node, NodeState::Suspect, s.incarnation, now);
        self.queue
            .push_message(Some(&s.node), Message::Suspect(s.clone()));
        let n = self.known_count();
        let (min, max) = self.config.suspicion_timeouts(n);
        let k = self.config.suspicion_confirmations(n);
        self.suspicions
            .insert(s.node.clone(), Suspicion::new(&s.from, k, min, max, now));
        self.out.push(Output::Event(Event::Suspect(s.node.clone())));
    }

    fn on_dead(&mut self, d: &Dead, now: Duration) {
        let Some((old_state, old_incarnation)) =
            self.members.get(&d.node).map(|m| (m.state, m.incarnation))
        else {
            return;
        };
        if d.incarnation < old_incarnation || matches!(old_state, NodeState::Dead | NodeState::Left)
        {
            return;
        }
        if d.node == self.me {
            if !self.leaving {
                self.refute(d.incarnation);
            }
            return;
        }
        self.suspicions.remove(&d.node);
        let left = d.node == d.from;
        let state = if left {
            NodeState::Left
        } else {
            NodeState::Dead
        };
        self.set_state(&d.node, state, d.incarnation, now);
        self.queue
            .push_message(Some(&d.node), Message::Dead(d.clone()));
        let event = if left {
            Event::Leave(d.node.clone())
        } else {
            Event::Dead(d.node.clone())
        };
        self.out.push(Output::Event(event));
    }

    /// Sends `messages` to `to`, piggybacking queued broadcasts that fit.
    fn send(&mut self, to: SocketAddr, mut messages: Vec<Message>) {
        let used: usize = messages
            .iter()
            .map(|m| m.encoded_len() + COMPOUND_OVERHEAD)
            .sum();
        let room = self
            .config
            .udp_buffer_size
            .saturating_sub(used + COMPOUND_HEADER);
        let n = self.known_count();
        messages.extend(
            self.queue
                .take(COMPOUND_OVERHEAD, room, n, self.config.retransmit_mult),
        );
        self.out.push(Output::Packet { to, messages });
    }

    /// The next time [`Swim::tick`] has work to do.
    pub fn next_deadline(&self) -> Duration {
        let mut t = self.next_probe.min(self.next_push_pull);
        if !self.queue.is_empty() {
            // Gossip rounds only matter with something to spread: an idle member sleeps through
            // them (the simulator's members wake ~3x less often).
            t = t.min(self.next_gossip);
        }
        if let Some(p) = &self.probe {
            t = t.min(if p.indirect_sent {
                p.deadline
            } else {
                p.ack_deadline
            });
        }
        for s in self.suspicions.values() {
            t = t.min(s.deadline());
        }
        for r in self.relays.values() {
            t = t.min(r.deadline);
        }
        t
    }

    /// Runs every timer due at `now`.
    pub fn tick(&mut self, now: Duration) {
        self.expire_relays(now);
        self.advance_probe(now);
        self.expire_suspicions(now);
        if now >= self.next_probe {
            self.next_probe = now + self.awareness.scale(self.config.probe_interval);
            self.start_probe(now);
        }
        if now >= self.next_gossip {
            // memberlist's gossip ticker: rounds at fixed steps. A member that slept through
            // rounds (nothing to send) resumes on the same grid, at the next step.
            let interval = self.config.gossip_interval;
            let late = now.saturating_sub(self.next_gossip);
            let steps = (late.as_nanos() / interval.as_nanos().max(1)) as u32 + 1;
            self.next_gossip += interval * steps;
            if late < interval {
                self.gossip(now);
            }
        }
        if now >= self.next_push_pull {
            let n = self.known_count();
            self.next_push_pull = now + self.config.push_pull_interval_for(n);
            if let Some((_, to)) = self.sample_peers(1, |m| m.state == NodeState::Alive).pop() {
                self.out.push(Output::PushPull { to, join: false });
            }
            // Reconnect (as serf does for failed members): also exchange state with one member
            // declared dead, not left, before it is reaped. After a partition the two sides
            // otherwise stop talking once their broadcasts are spent, and stay split for good;
            // the exchange makes each side refute the other's verdict and the cluster heals.
            let dead: Vec<u32> = self
                .members
                .down()
                .filter(|&s| {
                    self.members
                        .at(s)
                        .is_some_and(|m| m.state == NodeState::Dead)
                })
                .collect();
            if let Some(to) = dead.choose(&mut self.rng).and_then(|&s| self.members.at(s)) {
                let to = to.addr;
                self.out.push(Output::PushPull { to, join: false });
            }
        }
        self.reap(now);
    }

    /// Up to `k` random other members for which `keep` holds, as (name, address).
    fn sample_peers(
        &mut self,
        k: usize,
        keep: impl Fn(&Member) -> bool,
    ) -> Vec<(String, SocketAddr)> {
        self.members
            .sample(&mut self.rng, k, self.me_slot, keep)
            .into_iter()
            .filter_map(|s| self.members.at(s))
            .map(|m| (m.name.clone(), m.addr))
            .collect()
    }

    fn start_probe(&mut self, now: Duration) {
        if self.probe.is_some() || self.leaving {
            return;
        }
        // Round-robin over a random order, a new one each pass (SWIM's bound on time to first
        // detection); skip this node, empty slots and members not alive or suspect.
        let slots = self.members.slots();
        let target = (0..slots).find_map(|_| {
            let slot = self.probe_order.next(&mut self.rng, slots)?;
            let m = self.members.at(slot)?;
            (slot != self.me_slot && matches!(m.state, NodeState::Alive | NodeState::Suspect)).then(
                || ProbeTarget {
                    name: m.name.clone(),
                    addr: m.addr,
                    incarnation: m.incarnation,
                    state: m.state,
                },
            )
        });
        let Some(target) = target else {
            return;
        };
        self.seq_no = self.seq_no.wrapping_add(1);
        let ping = Message::Ping(Ping {
            seq_no: self.seq_no,
            node: target.name.clone(),
            ..Ping::default()
        });
        let mut messages = vec![ping];
        if target.state == NodeState::Suspect && self.config.lifeguard {
            // Lifeguard's buddy system: tell the suspect at once, so it can refute.
            messages.push(Message::Suspect(Suspect {
                incarnation: target.incarnation,
                node: target.name.clone(),
                from: self.me.clone(),
            }));
        }
        let timeout = self.awareness.scale(self.config.probe_timeout);
        let interval = self.awareness.scale(self.config.probe_interval);
        self.probe = Some(Probe {
            seq_no: self.seq_no,
            target: target.name.clone(),
            ack_deadline: now + timeout,
            deadline: now + interval,
            indirect_sent: false,
            expected_nacks: 0,
            nacks: 0,
            stream_acked: false,
        });
        self.send(target.addr, messages);
    }

    fn advance_probe(&mut self, now: Duration) {
        let Some(p) = self.probe.as_ref() else {
            return;
        };
        let indirect_due = !p.indirect_sent && now >= p.ack_deadline;
        if !indirect_due && now < p.deadline {
            return; // the common case, every tick: nothing due, nothing copied
        }
        if indirect_due {
            let p = p.clone();
            let Some(target) = self.members.get(&p.target).cloned() else {
                self.probe = None;
                return;
            };
            let target_name = p.target.clone();
            let helpers = self.sample_peers(self.config.indirect_checks, |m| {
                m.state == NodeState::Alive && m.name != target_name
            });
            let me = self.me_member().clone();
            for (_, helper) in &helpers {
                let req = IndirectPing {
                    seq_no: p.seq_no,
                    target: ip_bytes(target.addr.ip()),
                    port: target.addr.port(),
                    node: target.name.clone(),
                    nack: true,
                    source_addr: ip_bytes(me.addr.ip()),
                    source_port: me.addr.port(),
                    source_node: me.name.clone(),
                };
                self.send(*helper, vec![Message::IndirectPing(req)]);
            }
            if let Some(probe) = self.probe.as_mut() {
                probe.indirect_sent = true;
                probe.expected_nacks = helpers.len() as u32;
            }
            // memberlist pings members that speak protocol 3 or later over TCP as well, so a
            // member cut off from UDP alone is not declared dead.
            if self.config.tcp_pings && target.vsn.get(1).is_some_and(|&pmax| pmax >= 3) {
                self.out.push(Output::StreamPing {
                    to: target.addr,
                    seq_no: p.seq_no,
                    node: target.name.clone(),
                    deadline: p.deadline,
                });
            }
        }
        if self.probe.as_ref().is_some_and(|p| now >= p.deadline) {
            let p = self.probe.take().expect("a probe is due");
            if p.stream_acked {
                return; // reachable over TCP only: memberlist warns and neither suspects nor scores
            }
            // Lifeguard: a failed probe, and each missing nack, count against our own health.
            let missing = p.expected_nacks.saturating_sub(p.nacks);
            self.awareness.apply(1 + missing as i32);
            if let Some(target) = self.members.get(&p.target).cloned() {
                let me = self.me.clone();
                self.on_suspect(
                    &Suspect {
                        incarnation: target.incarnation,
                        node: target.name,
                        from: me,
                    },
                    now,
                );
            }
        }
    }

    /// The fallback stream ping with `seq_no` was answered.
    pub fn stream_ack(&mut self, seq_no: u32) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq_no == seq_no) {
            p.stream_acked = true;
        }
    }

    fn expire_relays(&mut self, now: Duration) {
        let due: Vec<u32> = self
            .relays
            .iter()
            .filter(|(_, r)| now >= r.deadline)
            .map(|(s, _)| *s)
            .collect();
        for s in due {
            let r = self.relays.remove(&s).expect("due relay");
            if r.nack {
                self.send(
                    r.requester,
                    vec![Message::Nack {
                        seq_no: r.their_seq_no,
                    }],
                );
            }
        }
    }

    fn expire_suspicions(&mut self, now: Duration) {
        let due: Vec<String> = self
            .suspicions
            .iter()
            .filter(|(_, s)| now >= s.deadline())
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            self.suspicions.remove(&name);
            if let Some(m) = self.members.get(&name).cloned() {
                if m.state == NodeState::Suspect {
                    let me = self.me.clone();
                    self.on_dead(
                        &Dead {
                            incarnation: m.incarnation,
                            node: name,
                            from: me,
                        },
                        now,
                    );
                }
            }
        }
    }

    fn gossip(&mut self, now: Duration) {
        if self.queue.is_empty() {
            return; // nothing to spread: skip the walk over the membership
        }
        let dead_time = self.config.gossip_to_the_dead_time;
        let targets = self.sample_peers(self.config.gossip_nodes, |m| match m.state {
            NodeState::Alive | NodeState::Suspect => true,
            NodeState::Dead | NodeState::Left => now.saturating_sub(m.since) < dead_time,
        });
        let n = self.known_count();
        for t in targets {
            let msgs = self.queue.take(
                COMPOUND_OVERHEAD,
                self.config.udp_buffer_size - COMPOUND_HEADER,
                n,
                self.config.retransmit_mult,
            );
            if msgs.is_empty() {
                return;
            }
            self.out.push(Output::Packet {
                to: t.1,
                messages: msgs,
            });
        }
    }

    fn reap(&mut self, now: Duration) {
        let dead_time = self.config.gossip_to_the_dead_time;
        let due: Vec<u32> = self
            .members
            .down()
            .filter(|&s| {
                s != self.me_slot
                    && self
                        .members
                        .at(s)
                        .is_some_and(|m| now.saturating_sub(m.since) >= dead_time)
            })
            .collect();
        for slot in due {
            self.members.remove(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(10);

    /// A lossless network with one step of latency, over which whole clusters run in simulated time.
    struct Net {
        nodes: Vec<Swim>,
        /// Nodes that neither send nor receive (crashed or paused).
        down: Vec<bool>,
        in_flight: Vec<(usize, SocketAddr, Vec<Message>)>,
        now: Duration,
        events: Vec<(usize, Event)>,
        user: Vec<(usize, Vec<u8>)>,
        /// Members below this index cannot reach the others, and back (a partition).
        split: Option<usize>,
        /// Members whose UDP is dropped both ways while their TCP still works.
        udp_cut: Vec<bool>,
    }

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
    }

    impl Net {
        fn new(n: usize, config: &Config) -> Net {
            let nodes = (0..n)
                .map(|i| {
                    Swim::new(
                        config.clone(),
                        &format!("n{i}"),
                        addr(i),
                        Vec::new(),
                        vec![1, 5, 2, 2, 5, 4],
                        i as u64,
                        Duration::ZERO,
                    )
                    .unwrap()
                })
                .collect();
            Net {
                nodes,
                down: vec![false; n],
                in_flight: Vec::new(),
                now: Duration::ZERO,
                events: Vec::new(),
                user: Vec::new(),
                split: None,
                udp_cut: vec![false; n],
            }
        }

        fn index(a: SocketAddr) -> usize {
            usize::from(a.port() - 7000)
        }

        fn cut(&self, a: usize, b: usize) -> bool {
            self.split.is_some_and(|k| (a < k) != (b < k))
        }

        fn collect(&mut self, i: usize) {
            for o in self.nodes[i].drain() {
                if self.down[i] {
                    continue;
                }
                match o {
                    Output::Packet { to, messages } => {
                        let j = Net::index(to);
                        if !self.cut(i, j) && !self.udp_cut[i] && !self.udp_cut[j] {
                            self.in_flight.push((i, to, messages));
                        }
                    }
                    Output::StreamPing { to, seq_no, .. } => {
                        let j = Net::index(to);
                        if !self.down[j] && !self.cut(i, j) {
                            self.nodes[i].stream_ack(seq_no);
                        }
                    }
                    Output::PushPull { to, join } => {
                        let j = Net::index(to);
                        if self.down[j] || self.cut(i, j) {
                            continue;
                        }
                        let mine = self.nodes[i].local_state(join);
                        let theirs = self.nodes[j].local_state(false);
                        let now = self.now;
                        self.nodes[j].merge_remote_state(&mine, now);
                        self.nodes[i].merge_remote_state(&theirs, now);
                    }
                    Output::Event(e) => self.events.push((i, e)),
                    Output::User(data) => self.user.push((i, data)),
                }
            }
        }

        fn step(&mut self) {
            self.now += STEP;
            let packets = std::mem::take(&mut self.in_flight);
            for (from, to, messages) in packets {
                let j = Net::index(to);
                if !self.down[j] {
                    let now = self.now;
                    self.nodes[j].handle_packet(addr(from), &messages, now);
                }
            }
            for i in 0..self.nodes.len() {
                if !self.down[i] {
                    let now = self.now;
                    self.nodes[i].tick(now);
                }
            }
            for i in 0..self.nodes.len() {
                self.collect(i);
            }
        }

        fn run_for(&mut self, d: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.step();
            }
        }

        /// Runs until `f` holds or `limit` passes; the time it took.
        fn run_until(&mut self, limit: Duration, f: impl Fn(&Net) -> bool) -> Option<Duration> {
            let start = self.now;
            while self.now.saturating_sub(start) < limit {
                if f(self) {
                    return Some(self.now.saturating_sub(start));
                }
                self.step();
            }
            None
        }

        fn state_at(&self, viewer: usize, of: usize) -> Option<NodeState> {
            self.nodes[viewer]
                .member(&format!("n{of}"))
                .map(|m| m.state)
        }

        fn joined(n: usize, config: &Config) -> Net {
            let mut net = Net::new(n, config);
            for i in 1..n {
                net.nodes[i].join(&[addr(0)]);
                net.collect(i);
            }
            // Gossip spreads the joins (each broadcast retransmit_limit times); a member it
            // missed catches up at its next push-pull.
            let took = net.run_until(config.push_pull_interval * 2, |net| {
                (0..n).all(|i| net.nodes[i].live_count() == n)
            });
            assert!(took.is_some(), "the cluster did not converge");
            net
        }
    }

    #[test]
    fn a_member_cut_off_from_udp_alone_is_kept_alive_by_tcp_pings() {
        for tcp_pings in [true, false] {
            let config = Config {
                tcp_pings,
                ..Config::local()
            };
            let mut net = Net::joined(5, &config);
            net.events.clear();
            net.udp_cut[4] = true;
            net.run_for(Duration::from_secs(10));
            let suspected = net
                .events
                .iter()
                .any(|(i, e)| *i != 4 && matches!(e, Event::Suspect(n) if n == "n4"));
            assert_eq!(suspected, !tcp_pings, "tcp_pings={tcp_pings}");
        }
    }

    #[test]
    fn a_name_taken_by_a_live_member_is_reported_as_a_conflict_on_both_sides() {
        let mut net = Net::joined(3, &Config::local());
        let mut imposter = Swim::new(
            Config::local(),
            "n0",
            addr(9),
            Vec::new(),
            vec![1, 5, 2, 2, 5, 4],
            9,
            net.now,
        )
        .unwrap();
        let theirs = net.nodes[1].local_state(false);
        imposter.merge_remote_state(&theirs, net.now);
        let conflicts: Vec<Event> = imposter
            .drain()
            .into_iter()
            .filter_map(|o| match o {
                Output::Event(e @ Event::Conflict { .. }) => Some(e),
                _ => None,
            })
            .collect();
        assert!(
            matches!(&conflicts[..], [Event::Conflict { member, other }]
                if member.addr == addr(9) && *other == addr(0)),
            "{conflicts:?}"
        );
        net.nodes[1].merge_remote_state(&imposter.local_state(true), net.now);
        let seen = net.nodes[1].drain();
        assert!(seen.iter().any(|o| matches!(o,
            Output::Event(Event::Conflict { member, other })
                if member.addr == addr(0) && *other == addr(9))));
        assert_eq!(
            net.nodes[1].member("n0").unwrap().addr,
            addr(0),
            "the known one is kept"
        );
    }

    #[test]
    fn without_lifeguard_probes_never_stretch_and_suspicion_is_fixed() {
        for lifeguard in [true, false] {
            let config = Config {
                lifeguard,
                ..Config::local()
            };
            let mut net = Net::joined(4, &config);
            // Everyone else stops: node 0's probes fail, which Lifeguard reads as its own ill
            // health (missed nacks from the members it asked).
            for i in 1..4 {
                net.down[i] = true;
            }
            net.run_for(Duration::from_secs(3));
            let (min, max) = config.suspicion_timeouts(100);
            assert_eq!(net.nodes[0].health_score() > 0, lifeguard);
            assert_eq!(min == max, !lifeguard);
        }
    }

    #[test]
    fn a_cluster_converges_through_one_seed() {
        let net = Net::joined(8, &Config::local());
        for i in 0..8 {
            assert!((0..8).all(|j| net.state_at(i, j) == Some(NodeState::Alive)));
        }
        assert!(net
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Join(m) if m.name == "n7")));
    }

    #[test]
    fn a_crashed_member_is_declared_dead_by_all() {
        let config = Config::local();
        let mut net = Net::joined(6, &config);
        net.down[5] = true;
        let took = net
            .run_until(Duration::from_secs(60), |net| {
                (0..5).all(|i| net.state_at(i, 5) == Some(NodeState::Dead))
            })
            .expect("everyone marks n5 dead");
        // At least a probe timeout plus the minimum suspicion, at most a few probe periods plus
        // the longest suspicion.
        let (min, max) = config.suspicion_timeouts(6);
        assert!(took >= min, "{took:?} < {min:?}");
        assert!(took <= max + 10 * config.probe_interval, "{took:?}");
        assert!((0..5).all(|i| net.state_at(i, i) == Some(NodeState::Alive)));
        assert!(net
            .events
            .iter()
            .any(|(_, e)| *e == Event::Suspect("n5".into())));
    }

    #[test]
    fn a_paused_member_refutes_and_comes_back_with_a_higher_incarnation() {
        let config = Config::local();
        let mut net = Net::joined(5, &config);
        let before = net.nodes[0].member("n4").unwrap().incarnation;
        net.down[4] = true;
        // Paused past its suspicion timeout: declared dead, but not yet reaped.
        net.run_until(Duration::from_secs(30), |net| {
            (0..4).any(|i| net.state_at(i, 4) == Some(NodeState::Dead))
        })
        .expect("n4 is declared dead");
        net.down[4] = false;
        net.run_until(Duration::from_secs(30), |net| {
            (0..4).all(|i| net.state_at(i, 4) == Some(NodeState::Alive))
        })
        .expect("n4 is alive again everywhere");
        let after = net.nodes[0].member("n4").unwrap().incarnation;
        assert!(after > before, "{after} <= {before}");
        assert_eq!(
            net.nodes[4].member("n4").unwrap().incarnation,
            after,
            "n4 refuted itself"
        );
        assert!(net
            .events
            .iter()
            .any(|(i, e)| *i < 4 && matches!(e, Event::Join(m) if m.name == "n4")));
    }

    #[test]
    fn user_broadcasts_are_sent_retransmit_limit_times_by_their_sender() {
        // As memberlist: the sender piggybacks and gossips it retransmit_limit(n) times; members
        // do not relay it (serf relays its own events). Four LAN members: 4 sends, 3 peers.
        let mut net = Net::joined(4, &Config::lan());
        net.nodes[3].broadcast(b"hello".to_vec());
        net.run_for(Duration::from_secs(5));
        let got: Vec<usize> = net.user.iter().map(|(i, _)| *i).collect();
        assert_eq!(got.len(), Config::lan().retransmit_limit(4));
        assert!(got.iter().all(|&i| i != 3));
        assert!(net.user.iter().all(|(_, d)| d == b"hello"));
    }

    #[test]
    fn a_partition_heals_after_both_sides_declared_each_other_dead() {
        let config = Config {
            push_pull_interval: Duration::from_secs(2),
            ..Config::local()
        };
        let mut net = Net::joined(6, &config);
        net.split = Some(3);
        net.run_until(Duration::from_secs(60), |net| {
            net.state_at(0, 4) == Some(NodeState::Dead)
                && net.state_at(4, 0) == Some(NodeState::Dead)
        })
        .expect("each side declares the other dead");
        // Let the broadcasts about the verdicts run out, then heal: only the reconnecting
        // push-pulls with dead members can bring the sides together again.
        net.run_for(Duration::from_secs(8));
        net.split = None;
        net.run_until(Duration::from_secs(6), |net| {
            (0..6).all(|i| (0..6).all(|j| net.state_at(i, j) == Some(NodeState::Alive)))
        })
        .expect("the partition heals before dead members are reaped");
    }

    #[test]
    fn a_graceful_leave_is_left_not_dead() {
        let config = Config::local();
        let mut net = Net::joined(5, &config);
        let now = net.now;
        net.nodes[2].leave(now);
        // Gossip carries it to most members at once; a member it missed (each broadcast is sent
        // only retransmit_limit times) learns it at its next push-pull at the latest.
        let bound = config.push_pull_interval + Duration::from_secs(1);
        net.run_until(bound, |net| {
            [0, 1, 3, 4]
                .iter()
                .all(|&i| net.state_at(i, 2) == Some(NodeState::Left))
        })
        .expect("everyone sees n2 leave");
        assert!(net
            .events
            .iter()
            .any(|(_, e)| *e == Event::Leave("n2".into())));
        assert!(!net
            .events
            .iter()
            .any(|(_, e)| *e == Event::Dead("n2".into())));
        // Reaped after gossip_to_the_dead_time.
        net.run_for(Config::local().gossip_to_the_dead_time + Duration::from_secs(1));
        assert_eq!(net.state_at(0, 2), None);
    }

    #[test]
    fn probing_a_suspect_carries_the_suspicion_and_runs_are_reproducible() {
        let mut a = Net::joined(4, &Config::local());
        let mut b = Net::joined(4, &Config::local());
        a.down[3] = true;
        b.down[3] = true;
        a.run_for(Duration::from_secs(8));
        b.run_for(Duration::from_secs(8));
        assert_eq!(a.events, b.events, "same seeds, same run");
        // A probe of the suspect carries a suspect message (Lifeguard's buddy system).
        let mut net = Net::joined(3, &Config::local());
        let now = net.now;
        let susp = Suspect {
            incarnation: net.nodes[0].member("n2").unwrap().incarnation,
            node: "n2".into(),
            from: "n1".into(),
        };
        net.nodes[0].handle_packet(addr(1), &[Message::Suspect(susp)], now);
        let mut saw_buddy = false;
        for _ in 0..500 {
            net.now += STEP;
            let now = net.now;
            net.nodes[0].tick(now);
            for o in net.nodes[0].drain() {
                if let Output::Packet { to, messages } = o {
                    if to == addr(2) && matches!(messages.first(), Some(Message::Ping(_))) {
                        saw_buddy |= messages
                            .iter()
                            .any(|m| matches!(m, Message::Suspect(s) if s.node == "n2"));
                    }
                }
            }
            if saw_buddy {
                break;
            }
        }
        assert!(saw_buddy);
    }
}
