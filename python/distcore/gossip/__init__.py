"""Gossip membership, speaking HashiCorp memberlist's protocol.

- :mod:`distcore.gossip.wire` encodes and decodes memberlist's packets and streams (message
  bodies, compound messages, LZW compression, CRC, labels, AES-GCM with a rotating
  :class:`~distcore.gossip.wire.Keyring`), checked against real serf agents;
- :class:`GossipConfig` holds memberlist's configurations (``lan()``, ``wan()``, ``local()``)
  and its scaling formulas.

See ``docs/gossip.md``.
"""

from distcore._core import GossipConfig
from distcore.gossip import wire

__all__ = ["GossipConfig", "wire"]
