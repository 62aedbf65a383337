"""uhashring 2.5's ``HashRing`` as a drop-in, with the points and lookups in Rust.

Re-exported as :class:`distcore.hashing.HashRing`.
"""

from __future__ import annotations

import itertools
import operator
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from distcore import _core
from distcore.exceptions import InvalidWeightError, NodeNotFoundError

__all__ = ["HashRing"]

# The conf keys uhashring keeps per node, and those whose change rebuilds the ring.
_CONF_KEYS = ("hostname", "instance", "nodename", "port", "vnodes", "weight")
_RING_KEYS = ("nodename", "vnodes", "weight")

# Lookups that each instance binds straight to the native core, so a call pays no Python frame;
# (HashRing attribute, core method). A subclass that overrides one keeps its override.
_DIRECT = (
    ("get_node", "get_node"),
    ("get", "get_conf"),
    ("get_node_pos", "get_node_pos"),
    ("get_server", "get_server"),
    ("get_key", "hashi"),
    ("hashi", "hashi"),
    ("get_node_indices", "get_node_indices"),
)

Conf = dict[str, Any]


def _as_int(value: Any) -> int | None:
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_conf(node: Hashable, conf: Conf) -> None:
    weight = _as_int(conf["weight"])
    if weight is None or weight <= 0:
        raise InvalidWeightError(
            f"weight of node {node!r} must be a positive int, got {conf['weight']!r}"
        )
    vnodes = _as_int(conf["vnodes"])
    if vnodes is None or vnodes < 0:
        raise ValueError(f"vnodes of node {node!r} must be an int >= 0, got {conf['vnodes']!r}")


class HashRing:
    """A consistent hashing ring that places keys exactly as uhashring 2.5's ``HashRing``.

    A drop-in for ``uhashring.HashRing``: the same constructor, methods and properties, and the
    same node for every key in both of its modes, with the points and lookups in Rust:
    ``get_node`` takes about 0.25 µs, against 3 to 4.5 µs with uhashring.

    Parameters
    ----------
    nodes : str, list or dict, optional
        Node names; or a dict of name -> int weight, or name -> conf dict with any of
        ``hostname``, ``port``, ``instance``, ``nodename``, ``vnodes`` and ``weight``.
    hash_fn : None, "ketama" or callable, optional
        ``None`` (default): each node gets ``vnodes * weight`` points, the md5 of
        ``f"{name}-{w}"`` as a 128-bit int; keys hash as ``md5(str(key))``.
        ``"ketama"``: libketama-style 32-bit points, ``vnodes * len(nodes) * weight // total``
        md5 digests per node, ``replicas`` points per digest.
        A callable maps a key (and each ``f"{name}-{w}"``) to an int in ``[0, 2**128)``.
    vnodes : int, optional
        Default points (or digests, with ketama) per node: 160, or 40 with ketama.
    weight_fn : callable, optional
        Called as ``weight_fn(**conf)`` for each node to compute its weight.
    replicas : int
        Points per md5 digest with ketama, 0 to 4 (default 4; 3 emulates ``hash_ring``).

    Notes
    -----
    uhashring quirks kept, because they decide where keys go:

    - keys hash as ``str(key)``: an int ``5`` and the str ``"5"`` are the same key, and a bytes
      key ``b"k"`` hashes as the text ``"b'k'"``, not as its bytes;
    - a key goes to the first point strictly after its hash (``bisect_right``), wrapping;
    - on equal points the node written last wins (with ketama, the later node in node order);
    - ketama mode computes points per node with integer ``//`` (libketama and twemproxy use
      float32 and give some nodes fewer points, for example with 25 equal nodes);
    - ``iterate_nodes`` yields each conf's ``nodename``, ``range`` yields the conf dicts, and
      ``get_nodes()`` is a live view of ``conf``'s keys.

    Deliberate differences from uhashring:

    - a lookup on an empty ring (no nodes, or no points) raises
      :class:`~distcore.exceptions.EmptyRingError`, a :class:`LookupError`, instead of returning
      ``None``; ``iterate_nodes`` raises it instead of yielding ``None`` (``range`` still yields
      nothing);
    - weights must be positive ints, and so must what ``weight_fn`` returns
      (:class:`~distcore.exceptions.InvalidWeightError`, a :class:`ValueError`); uhashring let a
      0 weight through as a node with no points. ``vnodes`` must be an int >= 0;
    - removing an unknown node raises :class:`~distcore.exceptions.NodeNotFoundError`, a
      :class:`KeyError` as uhashring's;
    - options are keyword-only and an unknown one is a :class:`TypeError` (uhashring ignores
      them); ``nodes`` may also be a tuple;
    - ``replicas`` must be 0 to 4 (uhashring fails with an ``IndexError`` above 4);
    - a custom ``hash_fn`` must return ints in ``[0, 2**128)`` (:class:`TypeError` or
      :class:`ValueError`);
    - a ring holds at most 2**24 points (:class:`ValueError`);
    - ``distribution`` (a :class:`~collections.Counter`), ``ring``/``continuum`` (a dict in point
      order) and ``get_points()`` are snapshots: changing them does not change the ring; there
      is no ``runtime`` attribute;
    - a failed change (a bad weight, a raising ``weight_fn``) leaves the ring as it was;
    - lookups are thread-safe and see the ring before or after a concurrent change, never half
      of one; changes are serialized;
    - extra: :meth:`get_node_indices` looks up many keys at once.

    Examples
    --------
    >>> from distcore.hashing import HashRing
    >>> ring = HashRing(["node1", "node2", "node3"])
    >>> ring.get_node("coconut")
    'node2'
    >>> ring.size
    480
    >>> ring = HashRing({"a": 1, "b": {"weight": 2, "instance": "B"}}, hash_fn="ketama")
    >>> ring.get_node("coconut"), ring["coconut"]
    ('b', 'B')
    >>> ring.distribution
    Counter({'b': 212, 'a': 104})
    """

    def __init__(
        self,
        nodes: str | Iterable[Hashable] | Mapping[Hashable, int | Mapping[str, Any]] | None = None,
        *,
        hash_fn: str | Callable[[Any], int] | None = None,
        vnodes: int | None = None,
        weight_fn: Callable[..., int] | None = None,
        replicas: int = 4,
    ) -> None:
        self._core = _core.UhashringCore(hash_fn, replicas)
        ketama = self._core.mode == "ketama"
        if vnodes is None:
            vnodes = 40 if ketama else 160
        if _as_int(vnodes) is None or operator.index(vnodes) < 0:
            raise ValueError(f"vnodes must be an int >= 0, got {vnodes!r}")
        if weight_fn is not None and not callable(weight_fn):
            raise TypeError("weight_fn should be a callable function")
        self._ketama = ketama
        self._default_vnodes = vnodes
        self._weight_fn = weight_fn
        self._nodes: dict[Hashable, Conf] = {}
        self._ids: dict[Hashable, int] = {}
        self._next_id = itertools.count()
        self._lock = threading.RLock()
        cls = type(self)
        for attr, core_attr in _DIRECT:
            if getattr(cls, attr) is getattr(HashRing, attr):
                setattr(self, attr, getattr(self._core, core_attr))
        staged, changed = self._configure([] if nodes is None else nodes)
        if changed:
            self._commit(staged, rebuild=list(staged))

    # ---------------------------------------------------------------------------------------
    # Changes

    def _configure(self, nodes: Any) -> tuple[dict[Hashable, Conf], bool]:
        """uhashring's ``_configure_nodes``, staged: the new confs and whether the ring changes."""
        if isinstance(nodes, str):
            nodes = [nodes]
        elif not isinstance(nodes, (Mapping, list, tuple)):
            raise ValueError(f"nodes configuration should be a list or a dict, got {type(nodes)}")
        is_map = isinstance(nodes, Mapping)
        staged: dict[Hashable, Conf] = {}
        changed = False
        for node in nodes:
            conf: Conf = {
                "hostname": node,
                "instance": None,
                "nodename": node,
                "port": None,
                "vnodes": self._default_vnodes,
                "weight": 1,
            }
            current = staged[node] if node in staged else self._nodes.get(node, {})
            if not current:
                changed = True
            if is_map:
                node_conf = nodes[node]
                if isinstance(node_conf, int):
                    conf["weight"] = node_conf
                elif isinstance(node_conf, Mapping):
                    for k, v in node_conf.items():
                        if k in conf:
                            conf[k] = v
                            if k in _RING_KEYS and current.get(k) != v:
                                changed = True
                else:
                    raise ValueError(
                        f"node configuration should be a dict or an int, got {type(node_conf)}"
                    )
            if self._weight_fn:
                conf["weight"] = self._weight_fn(**conf)
            if current.get("weight") != conf["weight"]:
                changed = True
            _check_conf(node, conf)
            staged[node] = conf
        return staged, changed

    def _commit(
        self,
        staged: Mapping[Hashable, Conf],
        rebuild: list[Hashable] | None,
        removed: Hashable | None = None,
    ) -> None:
        """Hands the new node table to the core, then updates ``conf`` in place.

        ``rebuild`` names the nodes whose points are recreated (ketama rebuilds every node for
        any list); ``None`` keeps every point, as uhashring does when no conf that places keys
        changed.
        """
        nodes = dict(self._nodes)
        nodes.update(staged)
        ids = dict(self._ids)
        if removed is not None:
            del nodes[removed], ids[removed]
        for name in staged:
            if name not in ids:
                ids[name] = next(self._next_id)
        table = [
            (ids[n], n, c, operator.index(c["vnodes"]), operator.index(c["weight"]))
            for n, c in nodes.items()
        ]
        changed = None if rebuild is None else [ids[n] for n in rebuild]
        self._core.sync(table, changed)
        self._ids = ids
        if removed is not None:
            del self._nodes[removed]
        self._nodes.update(staged)

    def __setitem__(self, nodename: Hashable, conf: int | Mapping[str, Any] | None = None) -> None:
        """Adds node ``nodename``, or replaces its conf (an int weight or a conf dict)."""
        with self._lock:
            staged, changed = self._configure({nodename: {"weight": 1} if conf is None else conf})
            if not changed:
                self._commit(staged, rebuild=None)
            else:
                self._commit(staged, rebuild=[] if self._ketama else [nodename])

    def add_node(self, nodename: Hashable, conf: int | Mapping[str, Any] | None = None) -> None:
        """Adds node ``nodename``, or replaces its conf (an int weight or a conf dict)."""
        self.__setitem__(nodename, conf)

    def __delitem__(self, nodename: Hashable) -> None:
        """Removes node ``nodename`` (:class:`NodeNotFoundError` if it is not on the ring)."""
        with self._lock:
            if nodename not in self._nodes:
                raise NodeNotFoundError(f"no such node: {nodename!r}")
            self._commit({}, rebuild=[], removed=nodename)

    def remove_node(self, nodename: Hashable) -> None:
        """Removes node ``nodename`` (:class:`NodeNotFoundError` if it is not on the ring)."""
        self.__delitem__(nodename)

    def regenerate(self) -> None:
        """Re-evaluates ``weight_fn`` for every node and rebuilds the ring."""
        with self._lock:
            staged, _ = self._configure(dict(self._nodes))
            self._commit(staged, rebuild=list(staged))

    # ---------------------------------------------------------------------------------------
    # Lookups (the first seven are bound to the native core on each instance)

    def get_node(self, key: Any) -> Any:
        """The name of the node ``key`` goes to."""
        return self._core.get_node(key)

    def get(self, key: Any) -> Conf:
        """The conf dict of the node ``key`` goes to."""
        conf: Conf = self._core.get_conf(key)
        return conf

    def get_node_pos(self, key: Any) -> int:
        """The index of the point ``key`` lands on in the sorted points."""
        return self._core.get_node_pos(key)

    def get_server(self, key: Any) -> tuple[int, Any]:
        """``(point, name)`` of the point ``key`` lands on (libketama style)."""
        return self._core.get_server(key)

    def get_key(self, key: Any) -> int:
        """The hash of ``key`` (``hash_ring`` compatibility; same as :meth:`hashi`)."""
        return self._core.hashi(key)

    def hashi(self, key: Any, replica: int = 0) -> int:
        """The hash of ``key`` on the ring's scale; with ketama, md5 word ``replica`` (0 to 3)."""
        return self._core.hashi(key, replica)

    def get_node_indices(self, keys: Iterable[Any]) -> npt.NDArray[np.int32]:
        """The index (into ``list(get_nodes())``) of each key's node, as an int32 array."""
        return self._core.get_node_indices(keys)

    def __getitem__(self, key: Any) -> Any:
        """The ``instance`` of the node ``key`` goes to."""
        return self._core.get_conf(key)["instance"]

    def get_node_instance(self, key: Any) -> Any:
        """The ``instance`` of the node ``key`` goes to."""
        return self._core.get_conf(key)["instance"]

    def get_node_hostname(self, key: Any) -> Any:
        """The ``hostname`` of the node ``key`` goes to."""
        return self._core.get_conf(key)["hostname"]

    def get_node_port(self, key: Any) -> Any:
        """The ``port`` of the node ``key`` goes to."""
        return self._core.get_conf(key)["port"]

    def get_node_weight(self, key: Any) -> Any:
        """The ``weight`` of the node ``key`` goes to."""
        return self._core.get_conf(key)["weight"]

    def range(self, key: Any, size: int | None = None, unique: bool = True) -> Iterator[Conf]:
        """The confs of the nodes met walking the ring clockwise from ``key``'s point.

        ``unique`` yields each node once; ``size`` stops after that many (with ``unique`` it
        defaults to the number of nodes). Replica and fallback lists.
        """
        if unique:
            size = size or len(self._nodes)
        if isinstance(size, float) and size.is_integer():
            size = int(size)
        stop = _as_int(size)
        yield from self._core.range(key, stop if stop is not None and stop >= 1 else None, unique)

    def iterate_nodes(self, key: Any, distinct: bool = True) -> Iterator[Any]:
        """The ``nodename`` of each node met walking clockwise from ``key`` (``hash_ring`` API)."""
        if self._core.size == 0:
            # Raises EmptyRingError, as every lookup on an empty ring does.
            self._core.get_node_pos(key)
        for conf in self.range(key, unique=distinct):
            yield conf["nodename"]

    # ---------------------------------------------------------------------------------------
    # The ring as data

    def get_nodes(self) -> Any:
        """The node names (a live view of ``conf``'s keys)."""
        return self._nodes.keys()

    def get_instances(self) -> list[Any]:
        """The ``instance`` of every node that has one."""
        return [c.get("instance") for c in self._nodes.values() if c.get("instance")]

    def get_points(self) -> list[tuple[int, Any]]:
        """``[(point, name)]`` in point order, equal points listed each time."""
        return self._core.points()

    def print_continuum(self) -> None:
        """Prints the points, libketama style."""
        points = self.get_points()
        if points:
            print(f"Numpoints in continuum: {len(points)}")
        else:
            print("Continuum empty")
        for point, node in points:
            print(f"{node} ({point})")

    @property
    def conf(self) -> dict[Hashable, Conf]:
        """Each node's conf dict, by name (the ring's own dict)."""
        return self._nodes

    nodes = conf

    @property
    def distribution(self) -> Counter[Any]:
        """Points per node."""
        return Counter(dict(self._core.distribution()))

    @property
    def ring(self) -> dict[int, Any]:
        """``{point: name}`` over the distinct points."""
        return self._core.ring()

    continuum = ring

    @property
    def size(self) -> int:
        """The number of distinct points."""
        return self._core.size

    @property
    def _ring(self) -> dict[int, Any]:
        return self._core.ring()

    @property
    def _keys(self) -> list[int]:
        return self._core.keys()

    def __repr__(self) -> str:
        mode = {"md5": "", "ketama": ", hash_fn='ketama'", "custom": ", hash_fn=<custom>"}
        return f"HashRing({list(self._nodes)!r}{mode[self._core.mode]})"
