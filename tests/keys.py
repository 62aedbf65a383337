"""Test keys that exercise the peers' quirks: ASCII, UTF-8 (bytes >= 0x80), long and tagged keys."""

from __future__ import annotations

import random

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-.{}"
_UNICODE = "éüßçñøåæœ€中文字日本語한국어ё🙂•ᴥ"


def memcached_keys(n: int, seed: int, prefix: str = "") -> list[bytes]:
    """`n` distinct memcached-safe keys (no spaces or control bytes); one in ten has UTF-8."""
    rng = random.Random(seed)
    keys: dict[bytes, None] = {}
    while len(keys) < n:
        length = rng.choice((1, 2, 5, 8, 13, 21, 40, 100, 200))
        text = "".join(rng.choice(_ALPHABET) for _ in range(length))
        if rng.random() < 0.1:
            cut = rng.randrange(len(text) + 1)
            text = text[:cut] + "".join(rng.choice(_UNICODE) for _ in range(3)) + text[cut:]
        raw = (prefix + text).encode()[:250]
        try:
            raw.decode()
        except UnicodeDecodeError:  # the cut at 250 bytes split a character
            continue
        keys[raw] = None
    return list(keys)
