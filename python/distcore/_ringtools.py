"""Ring tools shared by the ``distcore`` CLI, its demo and the tests.

Builds any of distcore's rings by name, reads each node's share of the key space, and measures
what a change (a node added, removed or reweighted) does: which fraction of the keys moves and
from where to where. Everything works through the rings' public API, so it also works on rings a
user built by hand. Private: the CLI is the public face of this module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distcore import _core, hashing
from distcore.exceptions import ConfigError

#: Placement algorithms by CLI name, and the class of :mod:`distcore.hashing` behind each.
ALGORITHM_CLASSES: dict[str, str] = {
    "ketama": "KetamaRing",
    "jump": "JumpRing",
    "rendezvous": "RendezvousRing",
    "maglev": "MaglevRing",
    "bounded": "BoundedLoadRing",
    "anchor": "AnchorRing",
    "hashring": "HashRing",
}

#: The size of a ketama continuum's hash space.
HASH_SPACE_32 = 1 << 32

# Lookups are done in chunks of this many keys, so a progress bar can advance.
_CHUNK = 25_000


def available_algorithms() -> tuple[str, ...]:
    """The algorithm names whose ring class this build of distcore has."""
    return tuple(a for a, cls in ALGORITHM_CLASSES.items() if hasattr(hashing, cls))


def ring_class(algorithm: str) -> type:
    """The ring class for an algorithm name; :class:`ConfigError` if unknown or not built."""
    cls_name = ALGORITHM_CLASSES.get(algorithm)
    if cls_name is None:
        known = ", ".join(ALGORITHM_CLASSES)
        raise ConfigError(f"algorithm: unknown {algorithm!r} (one of {known})")
    cls = getattr(hashing, cls_name, None)
    if cls is None:
        raise ConfigError(f"algorithm: {algorithm!r} is not available in this build of distcore")
    return cls


# --------------------------------------------------------------------------------------------
# Server specs


@dataclass(frozen=True)
class ServerSpec:
    """A server as nutcracker writes it: ``host:port:weight [name]``, ``host:port`` or ``name``."""

    text: str
    host: str
    port: int
    weight: int
    alias: str | None
    #: The name a ring reports: the alias if there is one, else ``host:port``.
    name: str


def parse_server(text: str) -> ServerSpec:
    """Parses a server spec as :class:`~distcore.hashing.KetamaRing` does (one parser, in Rust);
    :class:`ConfigError` or :class:`InvalidWeightError` names what is wrong.

    >>> parse_server("10.0.0.1:11211:2 cache-a").name
    'cache-a'
    >>> parse_server("10.0.0.1:11212").weight
    1
    """
    text = text.strip()
    if text.startswith("- "):  # a line copied from a nutcracker YAML list
        text = text[2:].strip()
    text = text.strip("'\"")
    return ServerSpec(text, *_core.parse_server(text))


def read_servers_file(path: str | os.PathLike[str]) -> list[str]:
    """Server specs from a file, one a line; blank lines and ``#`` comments are skipped."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    if not out:
        raise ConfigError(f"servers: {os.fspath(path)} lists no servers")
    return out


def parse_reweight(text: str) -> tuple[str, float]:
    """``NAME=W`` -> ``(name, weight)``."""
    name, sep, w = text.rpartition("=")
    if not sep or not name:
        raise ConfigError(f"reweight: {text!r} is not NAME=WEIGHT")
    try:
        weight = float(w)
    except ValueError:
        raise ConfigError(f"reweight: {text!r} has a non-numeric weight") from None
    if not (math.isfinite(weight) and weight > 0):
        raise ConfigError(f"reweight: {text!r} needs a weight > 0")
    return name, weight


# --------------------------------------------------------------------------------------------
# Building rings


def _is_uhashring_api(ring: Any) -> bool:
    # distcore.hashing.HashRing (and uhashring itself) speak uhashring's API, not distcore's.
    return hasattr(ring, "iterate_nodes") and hasattr(ring, "get_points")


def _weight_value(w: float) -> int | float:
    return int(w) if float(w).is_integer() else w


def build_ring(
    algorithm: str,
    servers: Sequence[str | ServerSpec] | Mapping[str, float],
    *,
    profile: str | None = None,
    hash: str | None = None,
    distribution: str | None = None,
    hash_tag: str | None = None,
) -> Any:
    """Builds a ring of ``servers`` with the named algorithm.

    ``servers`` are nutcracker specs (strings or :class:`ServerSpec`), or a dict name -> weight.
    ``profile``, ``distribution`` and ``hash_tag`` are ketama's; ``hash`` is the key hash for
    ketama, and ``"ketama"`` selects uhashring's ketama mode for ``"hashring"``.
    """
    cls = ring_class(algorithm)
    if algorithm != "ketama":
        for opt, value in (
            ("profile", profile),
            ("distribution", distribution),
            ("hash_tag", hash_tag),
        ):
            if value is not None:
                raise ConfigError(f"{opt}: only applies to the ketama algorithm")
        if hash is not None and algorithm != "hashring":
            raise ConfigError(f"hash: {algorithm} hashes keys with xxh3_64; --hash is ketama's")

    if algorithm == "ketama":
        if isinstance(servers, Mapping):
            specs: Any = {k: _weight_value(v) for k, v in servers.items()}
        else:
            specs = [s.text if isinstance(s, ServerSpec) else s for s in servers]
        return cls(
            specs,
            profile=profile or "twemproxy",
            hash=hash,
            distribution=distribution or "ketama",
            hash_tag=hash_tag,
        )

    weights = _names_weights(servers)
    if algorithm == "hashring":
        kwargs: dict[str, Any] = {}
        if hash is not None:
            if hash != "ketama":
                raise ConfigError("hash: the hashring algorithm takes only --hash ketama")
            kwargs["hash_fn"] = "ketama"
        nodes = {n: {"weight": _weight_value(w)} for n, w in weights.items()}
        return cls(nodes, **kwargs)
    if all(w == 1 for w in weights.values()):
        return cls(list(weights))
    return cls({n: _weight_value(w) for n, w in weights.items()})


def _names_weights(servers: Sequence[str | ServerSpec] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(servers, Mapping):
        return {str(k): float(v) for k, v in servers.items()}
    out: dict[str, float] = {}
    for s in servers:
        spec = s if isinstance(s, ServerSpec) else parse_server(s)
        if spec.name in out:
            raise ConfigError(f"servers: duplicate server {spec.name!r}")
        out[spec.name] = float(spec.weight)
    return out


def apply_changes(
    ring: Any,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    reweight: Iterable[tuple[str, float]] = (),
) -> list[str]:
    """Applies changes to ``ring`` in place, through its own API; returns them described."""
    done = []
    ketama = isinstance(ring, hashing.KetamaRing)
    uhr = _is_uhashring_api(ring)
    for name in remove:
        if name not in node_names(ring):
            raise ConfigError(f"remove: no server {name!r} on the ring")
        ring.remove_node(name)
        done.append(f"-{name}")
    for text in add:
        spec = parse_server(text)
        if ketama:
            ring.add_node(spec.text)
        elif uhr:
            ring.add_node(spec.name, {"weight": spec.weight})
        elif spec.weight != 1:
            ring.add_node(spec.name, spec.weight)
        else:
            ring.add_node(spec.name)
        done.append(f"+{spec.name}")
    for name, weight in reweight:
        if name not in node_names(ring):
            raise ConfigError(f"reweight: no server {name!r} on the ring")
        if ketama:
            if not weight.is_integer():
                raise ConfigError(f"reweight: ketama weights are integers, not {weight:g}")
            ring.set_weight(name, int(weight))
        elif uhr:
            conf = dict(ring.nodes[name])
            conf["weight"] = _weight_value(weight)
            ring.remove_node(name)
            ring.add_node(name, conf)
        elif hasattr(ring, "set_weight"):
            ring.set_weight(name, _weight_value(weight))
        else:
            raise ConfigError(f"reweight: {type(ring).__name__} has no weights")
        done.append(f"{name}={weight:g}")
    return done


# --------------------------------------------------------------------------------------------
# Reading a ring


def node_names(ring: Any) -> tuple[str, ...]:
    """Node names in the ring's index order (what ``get_node_indices`` indexes)."""
    if _is_uhashring_api(ring):
        return tuple(ring.get_nodes())
    nodes = ring.nodes
    if callable(nodes):
        nodes = nodes()
    return tuple(n if isinstance(n, str) else n[0] for n in nodes)


def node_weights(ring: Any) -> dict[str, float]:
    """Each node's weight (1 where the ring has no weights)."""
    names = node_names(ring)
    if _is_uhashring_api(ring):
        return {n: float(ring.nodes[n].get("weight", 1)) for n in names}
    w = getattr(ring, "weights", None)
    if callable(w):
        w = w()
    if isinstance(w, Mapping):
        return {n: float(w.get(n, 1)) for n in names}
    if w is not None and not isinstance(w, str):
        return {n: float(x) for n, x in zip(names, w, strict=True)}
    return dict.fromkeys(names, 1.0)


def point_counts(ring: Any) -> dict[str, int] | None:
    """Points (ketama, uhashring) or table entries (Maglev) per node; None for other rings."""
    names = node_names(ring)
    if _is_uhashring_api(ring):
        dist = ring.distribution
        return {n: int(dist.get(n, 0)) for n in names}
    points = getattr(ring, "points", None)
    if callable(points):
        _, owners = points()
        counts = np.bincount(np.asarray(owners, dtype=np.int64), minlength=len(names))
        return {n: int(c) for n, c in zip(names, counts, strict=False)}
    table = getattr(ring, "table", None)  # Maglev: the entries of its lookup table
    if callable(table):
        counts = np.bincount(np.asarray(table(), dtype=np.int64), minlength=len(names))
        return {n: int(c) for n, c in zip(names, counts, strict=False)}
    return None


def sample_keys(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct-looking, reproducible keys such as ``"key:3f09a1c4b2e7"``."""
    rng = np.random.default_rng(seed)
    return [f"key:{x:012x}" for x in rng.integers(0, 1 << 48, size=n, dtype=np.uint64).tolist()]


def assign(
    ring: Any, keys: Sequence[str | bytes], progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """The node index (into :func:`node_names`) of each key, as an int32 array.

    ``progress(n)`` is called after each chunk of ``n`` keys.
    """
    out = np.empty(len(keys), dtype=np.int32)
    batch = getattr(ring, "get_node_indices", None)
    index = None if batch else {n: i for i, n in enumerate(node_names(ring))}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        if batch is not None:
            out[start : start + len(chunk)] = batch(list(chunk))
        else:
            assert index is not None
            get = ring.get_node
            out[start : start + len(chunk)] = [index[get(k)] for k in chunk]
        if progress is not None:
            progress(len(chunk))
    return out


@dataclass(frozen=True)
class Shares:
    """Each node's share of the key space; ``exact`` when the ring computed it, not sampled."""

    shares: dict[str, float]
    exact: bool


def shares(ring: Any, keys: Sequence[str | bytes] | None = None) -> Shares:
    """Each node's share of the key space: exact where the ring knows it, else from ``keys``."""
    dist = getattr(ring, "distribution", None)
    if callable(dist):
        d = dist()
        if isinstance(d, Mapping) and d:
            vals = [float(v) for v in d.values()]
            if abs(sum(vals) - 1.0) < 1e-6 or all(v == 0 for v in vals):
                return Shares({str(k): float(v) for k, v in d.items()}, exact=True)
    names = node_names(ring)
    keys = keys if keys is not None else sample_keys(100_000)
    counts = np.bincount(assign(ring, keys), minlength=len(names))
    total = max(int(counts.sum()), 1)
    return Shares({n: int(c) / total for n, c in zip(names, counts, strict=True)}, exact=False)


def peak_to_mean(share: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float:
    """The largest share over its fair share (``weight / sum(weights)``); 1.0 is perfect balance."""
    if not share:
        return math.nan
    weights = weights or {}
    w = {n: float(weights.get(n, 1.0)) for n in share}
    live = {n: w[n] for n in share if share[n] > 0} or w
    total = sum(live.values())
    return max(share[n] / (live[n] / total) for n in live)


def min_moved_fraction(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """The least fraction of keys any placement must move to go from one set of shares to another.

    Half the L1 distance: every node that gains share must receive that much, from somewhere.
    """
    names = set(before) | set(after)
    return 0.5 * sum(abs(after.get(n, 0.0) - before.get(n, 0.0)) for n in names)


# --------------------------------------------------------------------------------------------
# Measuring a change


@dataclass(frozen=True)
class Moves:
    """Where keys went between two rings.

    ``flows[(from, to)]`` is the fraction of all keys that moved from node ``from`` to ``to``.
    ``exact`` is True when it was computed over the whole hash space, not sampled from ``total``
    keys.
    """

    fraction: float
    flows: dict[tuple[str, str], float]
    before: tuple[str, ...]
    after: tuple[str, ...]
    total: int
    exact: bool
    new_nodes: frozenset[str] = field(default_factory=frozenset)
    gone_nodes: frozenset[str] = field(default_factory=frozenset)

    @property
    def onto_new(self) -> float:
        """Fraction of keys that moved onto nodes that were not on the ring before."""
        return sum(f for (_, b), f in self.flows.items() if b in self.new_nodes)

    @property
    def from_gone(self) -> float:
        """Fraction of keys that moved because their node left the ring."""
        return sum(f for (a, b), f in self.flows.items() if a in self.gone_nodes)

    @property
    def between_kept(self) -> float:
        """Fraction of keys that moved between nodes on the ring both before and after."""
        return sum(
            f
            for (a, b), f in self.flows.items()
            if a not in self.gone_nodes and b not in self.new_nodes
        )

    def into(self) -> dict[str, float]:
        """Fraction of keys each node received."""
        out: dict[str, float] = {}
        for (_, b), f in self.flows.items():
            out[b] = out.get(b, 0.0) + f
        return out


def _moves_from(
    before: tuple[str, ...],
    after: tuple[str, ...],
    idx_before: np.ndarray,
    idx_after: np.ndarray,
    weights: np.ndarray | None,
    total: int,
    exact: bool,
) -> Moves:
    pos_after = {n: i for i, n in enumerate(after)}
    remap = np.array([pos_after.get(n, -1) for n in before], dtype=np.int64)
    b = idx_before.astype(np.int64)
    a = idx_after.astype(np.int64)
    moved = remap[b] != a
    pairs = b[moved] * len(after) + a[moved]
    w = None if weights is None else weights[moved]
    counts = np.bincount(pairs, weights=w, minlength=0) if pairs.size else np.zeros(0)
    flows = {
        (before[p // len(after)], after[p % len(after)]): float(c) / total
        for p, c in enumerate(counts)
        if c
    }
    moved_total = float(w.sum()) if w is not None else float(moved.sum())
    return Moves(
        fraction=moved_total / total,
        flows=dict(sorted(flows.items(), key=lambda kv: -kv[1])),
        before=before,
        after=after,
        total=total,
        exact=exact,
        new_nodes=frozenset(set(after) - set(before)),
        gone_nodes=frozenset(set(before) - set(after)),
    )


def moves_sampled(
    before: Any,
    after: Any,
    keys: Sequence[str | bytes],
    progress: Callable[[int], None] | None = None,
) -> Moves:
    """Moves measured on ``keys``: each key is looked up on both rings."""
    idx_b = assign(before, keys, progress)
    idx_a = assign(after, keys, progress)
    return _moves_from(
        node_names(before), node_names(after), idx_b, idx_a, None, len(keys), exact=False
    )


def moves_exact(before: Any, after: Any) -> Moves | None:
    """Moves over the whole 32-bit hash space of two ketama continuums; None if not ketama.

    Between consecutive points of either ring, both rings send every hash to one node each, so
    looking up each point (one per interval) and weighting by the interval's length is exact.
    """
    for ring in (before, after):
        if not isinstance(ring, hashing.KetamaRing) or ring.algorithm != "ketama":
            return None
    pb, _ = before.points()
    pa, _ = after.points()
    last = np.array([HASH_SPACE_32 - 1], dtype=np.uint64)
    ends = np.unique(np.concatenate([np.asarray(pb, np.uint64), np.asarray(pa, np.uint64), last]))
    # Interval j is (ends[j-1], ends[j]]; the first one starts at 0.
    lengths = np.diff(ends.astype(np.float64), prepend=-1.0)
    idx_b = before.get_node_indices(ends)
    idx_a = after.get_node_indices(ends)
    return _moves_from(
        node_names(before), node_names(after), idx_b, idx_a, lengths, HASH_SPACE_32, exact=True
    )


# --------------------------------------------------------------------------------------------
# Plotting


def plot_shares(
    path: str | os.PathLike[str],
    before: Mapping[str, float],
    after: Mapping[str, float] | None = None,
    *,
    title: str = "Share of the key space per server",
    fair_line: bool = True,
) -> None:
    """Writes a PNG bar chart of each server's share, before and (if given) after a change.

    ``fair_line`` draws the equal share ``1/n`` (of the servers before), for equal weights.

    Needs matplotlib (``pip install 'distcore[plot]'``); uses the Agg backend, so no display.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plot: needs matplotlib (pip install 'distcore[plot]')") from None

    names = list(before) + [n for n in (after or {}) if n not in before]
    x = np.arange(len(names))
    width = 0.4 if after is not None else 0.7
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2), 4.2), dpi=100)
    try:
        ax.bar(
            x - (width / 2 if after is not None else 0),
            [100 * before.get(n, 0.0) for n in names],
            width,
            label="before" if after is not None else "share",
            color="#4c72b0",
        )
        if after is not None:
            ax.bar(
                x + width / 2,
                [100 * after.get(n, 0.0) for n in names],
                width,
                label="after",
                color="#dd8452",
            )
        if fair_line:
            fair = 100 / max(1, len(before))
            ax.axhline(fair, color="grey", lw=0.8, ls="--", label=f"1/{len(before)} = {fair:.1f}%")
        if len(names) > 6:
            ax.set_xticks(x, names, rotation=45, ha="right")
        else:
            ax.set_xticks(x, names)
        ax.set_ylabel("share of keys (%)")
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize="small")
        fig.tight_layout()
        fig.savefig(os.fspath(path), format="png")
    finally:
        plt.close(fig)
