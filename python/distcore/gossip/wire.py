"""memberlist's wire format (protocol versions 2 to 5), sans-IO: bytes in, dicts out, and back.

- :func:`decode_packet` / :func:`encode_packet`: a UDP packet, all of its layers peeled:
  label, AES-GCM envelope, CRC-32, LZW compression, compound messages.
- :func:`decode_stream` / :func:`encode_stream`: a TCP stream message (push-pull state exchange,
  user message, fallback ping), incremental: ``decode_stream`` returns ``None`` until the bytes
  read so far hold a whole message.
- :class:`Keyring`: AES-128/192/256-GCM keys, primary first, for online rotation.
- :func:`encode_serf_tags` / :func:`decode_serf_tags`: serf's reading of node metadata.

Messages are dicts with a ``"type"`` (``ping``, ``indirect_ping``, ``ack``, ``nack``,
``suspect``, ``alive``, ``dead``, ``user``, ``err``, ``push_pull``) and memberlist's fields in
snake case; IP addresses are text.

>>> from distcore.gossip.wire import decode_packet, encode_packet
>>> alive = {"type": "alive", "incarnation": 1, "node": "n1", "addr": "127.0.0.1",
...          "port": 7946, "meta": b"", "vsn": [1, 5, 2, 2, 5, 4]}
>>> ping = {"type": "ping", "seq_no": 7, "node": "n2"}
>>> packet = encode_packet([ping, alive], crc=True)
>>> [m["type"] for m in decode_packet(packet)]
['ping', 'alive']
>>> decode_packet(packet)[1]["addr"]
'127.0.0.1'
"""

from distcore._core import (
    Keyring,
    decode_packet,
    decode_serf_tags,
    decode_stream,
    encode_packet,
    encode_serf_tags,
    encode_stream,
)

__all__ = [
    "Keyring",
    "decode_packet",
    "decode_serf_tags",
    "decode_stream",
    "encode_packet",
    "encode_serf_tags",
    "encode_stream",
]
