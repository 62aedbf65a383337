"""Gossip membership, speaking HashiCorp memberlist's protocol.

- :mod:`distcore.gossip.wire` encodes and decodes memberlist's packets and streams (message
  bodies, compound messages, LZW compression, CRC, labels, AES-GCM with a rotating
  :class:`~distcore.gossip.wire.Keyring`), checked against real serf agents;
- :class:`GossipConfig` holds memberlist's configurations (``lan()``, ``wan()``, ``local()``)
  and its scaling formulas;
- :class:`Node` is a member on asyncio (``await Node.start(name, seeds=[...])``): SWIM with
  Lifeguard from the Rust state machine :class:`SwimStateMachine`, which it drives, with
  memberlist's TCP fallback pings, labels and counters of what it drops (``Node.stats()``);
  :class:`BackgroundNode` runs one on a thread for synchronous code;
- :func:`simulate` runs whole clusters of that state machine (up to a million members) on a
  simulated network; :func:`epidemic` isolates push, pull and push-pull spread in rounds.

See ``docs/gossip.md``.
"""

from distcore._core import GossipConfig, SwimStateMachine, epidemic, simulate
from distcore.gossip import wire
from distcore.gossip._node import BackgroundNode, Member, MemberEvent, Node

__all__ = [
    "BackgroundNode",
    "GossipConfig",
    "Member",
    "MemberEvent",
    "Node",
    "SwimStateMachine",
    "epidemic",
    "simulate",
    "wire",
]
