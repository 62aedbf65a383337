"""The ``distcore`` command: a tour (``demo``), rings (``ring``), time (``time``), ``bench``.

Run ``distcore --help``, or ``distcore COMMAND --help`` for each command.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from distcore import __version__, hashing
from distcore import _ringtools as rt
from distcore._cliutil import CliError, user_errors
from distcore.gossip._cli import gossip_group
from distcore.mapreduce._cli import mr_group
from distcore.timesync._cli import time_group


def _console() -> Console:
    # Made per command so output goes to the current sys.stdout (click's test runner swaps it).
    return Console(highlight=False)


@contextlib.contextmanager
def _progress(console: Console, total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A transient progress bar on a terminal; nothing (None) when output is piped or captured."""
    if not console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def _bar(x: float, scale: float, width: int = 16) -> str:
    n = round(width * x / scale) if scale > 0 else 0
    return "█" * max(0, min(width, n))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="distcore")
def main() -> None:
    """distcore: distributed-systems primitives for Python with a Rust core.

    \b
    Start with `distcore demo`, then inspect your own pool with
      distcore ring --twemproxy nutcracker.yml --add "10.0.0.9:11211:1 cache-9"
    """


# ============================================================================================
# demo


DEMO_POOL = """\
demo:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  servers:
   - 10.0.0.1:11211:1 cache-1
   - 10.0.0.2:11211:1 cache-2
   - 10.0.0.3:11211:1 cache-3
   - 10.0.0.4:11211:1 cache-4
   - 10.0.0.5:11211:1 cache-5
"""
DEMO_NEW_SERVER = "10.0.0.6:11211:1 cache-6"
DEMO_KEYS = ("user:1001", "session:8f3a2c", "cart:42", "product:sku-7781", "page:/index.html")
# The other placement algorithms shown next to ketama, when this build has them.
DEMO_ALGORITHMS = ("maglev", "jump", "rendezvous", "anchor")


@main.command(short_help="A tour of distcore in a few seconds.")
@click.option(
    "--keys",
    "n_keys",
    type=click.IntRange(1_000, 10_000_000),
    default=100_000,
    show_default=True,
    help="How many keys to route when measuring what adding a server moves.",
)
@user_errors
def demo(n_keys: int) -> None:
    """A tour of distcore: what it does, on made-up data, in a few seconds.

    \b
    Consistent hashing: builds the ring a twemproxy pool of 5 memcached servers routes
    with (bit-exact with nutcracker), routes a few keys, shows each server's share of the
    key space, then adds a 6th server and measures which keys move, and compares the
    other placement algorithms (Maglev, jump, ...) and plain `hash % n`.

    \b
    Logical clocks: three nodes exchange messages; vector clocks tell which updates were
    concurrent, a hybrid logical clock keeps order while the wall clock jumps backwards,
    and causal delivery holds a reply until the message it answers has arrived.

    \b
    MapReduce: counts the words of a few MB of generated text twice, with the built-in
    tokenizer (Rust from bytes to counts) and with a Python mapper on worker processes,
    checks both against collections.Counter and shows the job's stats.
    """
    console = _console()
    console.print(
        Panel.fit(
            f"[bold]distcore {__version__}[/]: distributed-systems primitives, Rust core",
            border_style="cyan",
        )
    )
    _demo_hashing(console, n_keys)
    _demo_clocks(console)
    _demo_mapreduce(console)


def _demo_word_pairs(line: str) -> list[tuple[str, int]]:
    return [(w, 1) for w in line.split()]


def _demo_mapreduce(console: Console) -> None:
    import collections
    import tempfile

    import numpy as np

    from distcore.mapreduce import read, tokenize

    console.rule("[bold]MapReduce")
    rng = np.random.default_rng(5)
    vocab = np.array(
        ["the", "of", "and", "gossip", "clock", "ring", "shuffle", "merge", "spill"]
        + [f"w{i}" for i in range(5000)]
    )
    words = vocab[(rng.zipf(1.3, 600_000) - 1) % len(vocab)]
    text = "\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12)) + "\n"
    reference = collections.Counter(text.split())
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corpus.txt"
        path.write_text(text)
        table = Table("count_by_key() job", "words", "= Counter", "shuffled", "seconds")
        jobs = {
            "built-in tokenizer, threads": read(path).flat_map(tokenize),
            "Python mapper, processes": read(path).flat_map(_demo_word_pairs),
        }
        for name, ds in jobs.items():
            with ds.count_by_key().run(progress=False) as result:
                counts = result.to_dict()
                st = result.stats.stages[0]
                table.add_row(
                    name,
                    f"{len(counts):,}",
                    "yes" if counts == reference else "[red]NO[/]",
                    f"{st.map_output_records:,} -> {st.shuffle_records:,}",
                    f"{result.stats.seconds:.2f}",
                )
        console.print(table)
        top = ", ".join(f"{w} {n:,}" for w, n in reference.most_common(5))
        console.print(
            f"{len(words):,} words in {path.stat().st_size / 1e6:.1f} MB; most frequent: {top}. "
            "Map-side combining shrinks what is shuffled to one record per word per task."
        )


def _demo_clocks(console: Console) -> None:
    from distcore.clocks import HLC, CausalDelivery, VectorClock

    console.rule("[bold]Logical clocks[/]: order events without trusting wall clocks")
    alice, bob = VectorClock(), VectorClock()
    alice.increment("alice")
    bob.merge(alice)
    bob.increment("bob")
    alice.increment("alice")
    t = Table(title="Vector clocks: who saw what", title_justify="left")
    t.add_column("event")
    t.add_column("clock")
    t.add_column("vs alice's latest", style="bold")
    t.add_row("alice writes x=1, sends it to bob", "{'alice': 1}", "BEFORE")
    t.add_row("bob reads it, writes y=2", escape(repr(bob.to_dict())), bob.compare(alice).name)
    t.add_row("alice writes x=3 meanwhile", escape(repr(alice.to_dict())), "EQUAL")
    console.print(t)
    console.print(
        "bob's write and alice's second write are [bold]CONCURRENT[/]: neither saw the other, so"
        " a store must keep both (see DVVSet).\n"
    )

    wall = iter([1_000, 1_000, 400, 1_600])  # ms; the wall clock jumps back 600 ms
    hlc = HLC(physical=lambda: next(wall) * 1_000_000)
    t = Table(title="A hybrid logical clock while the wall clock jumps back", title_justify="left")
    t.add_column("wall clock (ms)", justify="right")
    t.add_column("HLC timestamp")
    for ms in (1_000, 1_000, 400, 1_600):
        t.add_row(f"{ms:,}", str(hlc.now()))
    console.print(t)
    console.print("Timestamps never go backwards and stay at physical time when it moves on.\n")

    node = CausalDelivery("carol")
    sender = CausalDelivery("alice")
    question = sender.broadcast()
    replier = CausalDelivery("bob")
    replier.receive("alice", question, "question")
    answer = replier.broadcast()
    held = node.receive("bob", answer, "answer")
    waiting = node.waiting_for()
    delivered = [p for _, _, p in node.receive("alice", question, "question")]
    console.print(
        f"Causal delivery at carol: bob's answer arrives first -> delivered {held}, waiting for"
        f" {waiting}; then alice's question arrives -> delivered {delivered}."
    )


def _demo_hashing(console: Console, n_keys: int) -> None:
    console.rule("[bold]Consistent hashing[/]: route keys to cache servers as twemproxy does")
    console.print("A nutcracker pool (the YAML twemproxy reads):")
    console.print(Syntax(DEMO_POOL, "yaml", theme="ansi_dark", background_color="default"))
    ring = hashing.KetamaRing.from_twemproxy(DEMO_POOL)
    console.print(f"[dim]>>> ring = KetamaRing.from_twemproxy(config)[/]\n{escape(repr(ring))}\n")

    t = Table(title="Where keys go: ring.get_node(key)", title_justify="left")
    t.add_column("key")
    t.add_column("fnv1a_64 hash", justify="right")
    t.add_column("server", style="bold green")
    t.add_column("replica (get_nodes(key, 2)[1])", style="dim")
    for key in DEMO_KEYS:
        t.add_row(escape(key), f"{ring.hash(key):,}", ring.get_node(key), ring.get_nodes(key, 2)[1])
    console.print(t)

    _shares_table(console, ring, "Each server's share of the key space (exact, from the continuum)")

    keys = rt.sample_keys(n_keys)
    console.print(f"\nAdding a 6th server, [bold]{DEMO_NEW_SERVER}[/]; routing {n_keys:,} keys:")
    after = hashing.KetamaRing.from_twemproxy(DEMO_POOL)
    after.add_node(DEMO_NEW_SERVER)

    others = [a for a in DEMO_ALGORITHMS if a in rt.available_algorithms()]
    builds: list[tuple[str, Any, Any]] = [("ketama (twemproxy)", ring, after)]
    names = {f"cache-{i}": 1.0 for i in range(1, 6)}
    for algo in others:
        b = rt.build_ring(algo, names)
        a = rt.build_ring(algo, names)
        rt.apply_changes(a, add=["cache-6"])
        builds.append((algo, b, a))
    modula_specs = [line.strip()[2:] for line in DEMO_POOL.splitlines() if line.strip()[:2] == "- "]
    mb = hashing.KetamaRing(modula_specs, distribution="modula")
    ma = hashing.KetamaRing([*modula_specs, DEMO_NEW_SERVER], distribution="modula")
    builds.append(("hash % n (modula)", mb, ma))

    results: list[tuple[str, rt.Moves, float]] = []
    start = time.perf_counter()
    with _progress(console, 2 * n_keys * len(builds), "routing keys") as advance:
        for label, b, a in builds:
            moves = rt.moves_sampled(b, a, keys, advance)
            balance = rt.peak_to_mean(rt.shares(a, keys).shares)
            results.append((label, moves, balance))
    elapsed = time.perf_counter() - start

    ketama_moves = results[0][1]
    exact = rt.moves_exact(ring, after)
    onto = ketama_moves.onto_new / max(ketama_moves.fraction, 1e-12)
    console.print(
        f"  ketama: [bold]{_pct(ketama_moves.fraction)}[/] of the keys moved "
        + (f"({_pct(exact.fraction)} of the hash space, exact; " if exact else "(")
        + f"ideal 1/6 = {_pct(1 / 6)}), "
        + ("[bold]all[/] of them" if onto > 0.99999 else f"{_pct(onto, 1)} of them")
        + " onto cache-6:"
    )
    ft = Table(show_header=True, box=None, padding=(0, 2))
    ft.add_column("from")
    ft.add_column("to")
    ft.add_column("keys", justify="right")
    ft.add_column("of all keys", justify="right")
    for (src, dst), frac in ketama_moves.flows.items():
        ft.add_row(src, dst, f"{round(frac * n_keys):,}", _pct(frac))
    console.print(ft)

    ct = Table(title=f"Adding a 6th server to 5: keys moved, of {n_keys:,}", title_justify="left")
    ct.add_column("algorithm", no_wrap=True)
    ct.add_column("moved", justify="right")
    ct.add_column("onto cache-6", justify="right")
    ct.add_column("among old 5", justify="right")
    ct.add_column("peak/mean", justify="right")
    for label, moves, balance in results:
        bad = moves.between_kept > 0.01
        ct.add_row(
            label,
            _pct(moves.fraction),
            _pct(moves.onto_new),
            f"[red]{_pct(moves.between_kept)}[/]" if bad else _pct(moves.between_kept),
            f"{balance:.3f}",
        )
    console.print(ct)
    missing = [a for a in DEMO_ALGORITHMS if a not in others]
    if missing:
        console.print(f"[dim](not in this build: {', '.join(missing)})[/]")
    console.print(
        f"[dim]{len(builds) * 2 * n_keys:,} lookups in {elapsed:.2f} s, through "
        "ring.get_node_indices(keys).[/]\n"
        "peak/mean: the busiest server's share over the fair 1/6, after the change.\n"
        "Consistent hashing moves about 1/6 of the keys, onto the new server"
        + (" (Maglev also reshuffles a sliver of its table)" if "maglev" in others else "")
        + "; `hash % n` moves most of them.\n"
        "Next: [bold]distcore ring --twemproxy nutcracker.yml --add "
        f'"{DEMO_NEW_SERVER}" --plot ring.png[/]'
    )


# ============================================================================================
# ring


def _shares_table(
    console: Console,
    ring: Any,
    title: str,
    keys: Sequence[str] | None = None,
    compare: Mapping[str, float] | None = None,
) -> rt.Shares:
    sh = rt.shares(ring, keys)
    weights = rt.node_weights(ring)
    points = rt.point_counts(ring)
    total_w = sum(weights.values()) or 1.0
    t = Table(title=title, title_justify="left")
    t.add_column("server", overflow="fold")
    t.add_column("weight", justify="right")
    if points is not None:
        t.add_column("points", justify="right")
    t.add_column("share", justify="right")
    if compare is not None:
        t.add_column("Δ pp", justify="right")
    t.add_column("fair share", justify="right")
    t.add_column("", no_wrap=True, overflow="crop")
    scale = max(sh.shares.values(), default=0.0)
    for name in rt.node_names(ring):
        share = sh.shares.get(name, 0.0)
        row = [escape(name), f"{weights.get(name, 1.0):g}"]
        if points is not None:
            row.append(f"{points.get(name, 0):,}")
        row.append(_pct(share))
        if compare is not None:
            d = share - compare.get(name, 0.0)
            row.append("new" if name not in compare else f"{100 * d:+.2f}")
        row += [_pct(weights.get(name, 1.0) / total_w), _bar(share, scale)]
        t.add_row(*row)
    if compare is not None:
        for name in compare:
            if name not in sh.shares:
                t.add_row(
                    f"[strike]{escape(name)}[/]",
                    "",
                    *([""] if points else []),
                    "0.00%",
                    "removed",
                    "",
                    "",
                )
    console.print(t)
    p2m = rt.peak_to_mean(sh.shares, weights)
    console.print(
        f"peak-to-mean: [bold]{p2m:.3f}[/] (the busiest server gets {_pct(p2m - 1, 1)} more than "
        f"its fair share; {'exact' if sh.exact else f'sampled from {len(keys or ()):,} keys'})"
    )
    return sh


def _describe(ring: Any, source: str) -> str:
    return f"{source}: {escape(repr(ring))}"


@main.command(short_help="Shares, key routes and moved keys of a ring (twemproxy YAML or list).")
@click.argument("more_servers", nargs=-1, metavar="[SERVER]...")
@click.option(
    "--twemproxy",
    "twemproxy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A nutcracker (twemproxy) YAML config to read the pool from.",
)
@click.option("--pool", help="The pool in the YAML (needed when it has several).")
@click.option(
    "--servers",
    "servers",
    multiple=True,
    metavar="SPEC",
    help='A server "host:port:weight [name]" (repeat, separate with commas, or list more '
    "after it as arguments).",
)
@click.option(
    "--servers-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of server specs, one a line (# comments allowed).",
)
@click.option(
    "--algorithm",
    type=click.Choice(list(rt.ALGORITHM_CLASSES)),
    default="ketama",
    show_default=True,
    help="Placement algorithm (ketama: twemproxy/libmemcached compatible; hashring: uhashring's).",
)
@click.option(
    "--profile",
    type=click.Choice(["twemproxy", "libmemcached_weighted", "libmemcached", "libmemcached_spy"]),
    help="Ketama compatibility profile.  [default: twemproxy]",
)
@click.option(
    "--hash",
    "hash_name",
    metavar="NAME",
    help="Key hash for ketama: one of "
    + ", ".join(hashing.HASH_FUNCTIONS)
    + ' (default: the profile\'s); "ketama" for --algorithm hashring.',
)
@click.option(
    "--distribution",
    type=click.Choice(["ketama", "modula", "random"]),
    help="Ketama's distribution mode.  [default: ketama]",
)
@click.option("--key", "keys", multiple=True, metavar="KEY", help="Show where KEY goes (repeat).")
@click.option("--add", "add", multiple=True, metavar="SPEC", help="Add a server (repeat).")
@click.option("--remove", "remove", multiple=True, metavar="NAME", help="Remove a server (repeat).")
@click.option(
    "--reweight", "reweight", multiple=True, metavar="NAME=W", help="Change a weight (repeat)."
)
@click.option(
    "--samples",
    type=click.IntRange(1_000, 50_000_000),
    default=100_000,
    show_default=True,
    help="Random keys routed to measure moves (and shares a ring cannot compute exactly).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random keys.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of the shares per server (before and after a change).",
)
@user_errors
def ring(
    more_servers: tuple[str, ...],
    twemproxy: Path | None,
    pool: str | None,
    servers: tuple[str, ...],
    servers_file: Path | None,
    algorithm: str,
    profile: str | None,
    hash_name: str | None,
    distribution: str | None,
    keys: tuple[str, ...],
    add: tuple[str, ...],
    remove: tuple[str, ...],
    reweight: tuple[str, ...],
    samples: int,
    seed: int,
    plot: Path | None,
) -> None:
    """Inspect a ring: each server's share of the key space, where keys go, what a change moves.

    \b
    Examples:
      distcore ring --twemproxy nutcracker.yml --pool alpha --key user:42
      distcore ring --servers "10.0.0.1:11211:1 a" "10.0.0.2:11211:1 b" --add "10.0.0.3:11211:1 c"
      distcore ring --servers-file servers.txt --algorithm maglev --remove b --plot ring.png
      distcore ring --twemproxy nutcracker.yml --reweight cache-1=2

    Moved fractions are exact over the 32-bit hash space for ketama, and measured on --samples
    random keys for every algorithm.
    """
    console = _console()
    given = (*servers, *more_servers)
    specs = [s.strip() for group in given for s in group.split(",") if s.strip()]
    if servers_file is not None:
        specs += rt.read_servers_file(servers_file)
    if twemproxy is not None and specs:
        raise CliError("give either --twemproxy or servers, not both")
    if twemproxy is None and pool is not None:
        raise CliError("--pool needs --twemproxy")

    factory: Callable[[], Any]
    if twemproxy is not None:
        if not twemproxy.is_file():
            raise CliError(f"no such file: {twemproxy}")
        conf = twemproxy
        if algorithm == "ketama":
            if profile or hash_name or distribution:
                raise CliError("with --twemproxy, the YAML sets the hash and distribution")
            source = f"twemproxy {twemproxy}" + (f" pool {pool}" if pool else "")

            def factory() -> Any:
                return hashing.KetamaRing.from_twemproxy(conf, pool)
        else:
            template = hashing.KetamaRing.from_twemproxy(conf, pool)
            weights = rt.node_weights(template)
            source = f"{algorithm} over the servers of {twemproxy}"

            def factory() -> Any:
                return rt.build_ring(algorithm, weights, hash=hash_name)
    else:
        if not specs:
            raise CliError("no servers: give --twemproxy FILE, --servers SPEC... or --servers-file")
        for s in specs:
            rt.parse_server(s)  # a clear error for a malformed spec
        source = f"{algorithm} ring"

        def factory() -> Any:
            return rt.build_ring(
                algorithm,
                specs,
                profile=profile,
                hash=hash_name,
                distribution=distribution,
            )

    before = factory()
    console.print(_describe(before, source))
    sample = rt.sample_keys(samples, seed)
    before_sh = _shares_table(console, before, "Share of the key space per server", sample)

    changes = [rt.parse_reweight(r) for r in reweight]
    after = None
    if add or remove or reweight:
        after = factory()
        done = rt.apply_changes(after, add=add, remove=remove, reweight=changes)
        console.print(f"\nAfter {', '.join(escape(d) for d in done)}: {escape(repr(after))}")
        after_sh = _shares_table(
            console, after, "Share of the key space after the change", sample, before_sh.shares
        )
        _print_moves(console, before, after, sample, before_sh, after_sh)

    if keys:
        _keys_table(console, before, after, keys)

    if plot is not None:
        rt.plot_shares(
            plot,
            before_sh.shares,
            None if after is None else rt.shares(after, sample).shares,
            title=f"{algorithm}: share of the key space per server",
            fair_line=len(set(rt.node_weights(before).values())) == 1,
        )
        console.print(f"wrote {escape(str(plot))}")


def _print_moves(
    console: Console,
    before: Any,
    after: Any,
    sample: Sequence[str],
    before_sh: rt.Shares,
    after_sh: rt.Shares,
) -> None:
    with _progress(console, 2 * len(sample), "routing keys") as advance:
        sampled = rt.moves_sampled(before, after, sample, advance)
    exact = rt.moves_exact(before, after)
    least = rt.min_moved_fraction(before_sh.shares, after_sh.shares)
    best = exact or sampled
    # One standard error of a sampled fraction, so a reader can tell noise from a difference.
    err = math.sqrt(sampled.fraction * (1 - sampled.fraction) / len(sample))
    sampled_text = f"{_pct(sampled.fraction)} ± {_pct(err)} of {len(sample):,} random keys"
    console.print(
        f"\nmoved: [bold]{_pct(best.fraction)}[/] of the hash space (exact); {sampled_text}"
        if exact
        else f"\nmoved: [bold]{sampled_text}[/]"
    )
    console.print(
        f"least any placement could move for the new shares: {_pct(least)}"
        + ("" if before_sh.exact and after_sh.exact else " (from sampled shares)")
    )
    console.print(
        f"onto new servers: {_pct(best.onto_new)}   from removed servers: {_pct(best.from_gone)}"
        f"   between servers kept: {_pct(best.between_kept)}"
    )
    t = Table(title="Where the moved keys went", title_justify="left")
    t.add_column("from")
    t.add_column("to")
    t.add_column("of all keys", justify="right")
    shown = list(best.flows.items())
    for (src, dst), frac in shown[:20]:
        t.add_row(escape(src), escape(dst), _pct(frac, 3))
    if len(shown) > 20:
        rest = sum(f for _, f in shown[20:])
        t.add_row(f"({len(shown) - 20} more)", "", _pct(rest, 3))
    console.print(t)


def _keys_table(console: Console, before: Any, after: Any | None, keys: Sequence[str]) -> None:
    t = Table(title="Where keys go", title_justify="left")
    t.add_column("key")
    hash_fn = getattr(before, "hash", None)
    if callable(hash_fn):
        t.add_column("hash", justify="right")
    t.add_column("server", style="bold green")
    if after is not None:
        t.add_column("after", style="bold")
    for key in keys:
        row = [escape(key)]
        if callable(hash_fn):
            row.append(f"{hash_fn(key):,}")
        node = before.get_node(key)
        row.append(escape(node))
        if after is not None:
            new = after.get_node(key)
            row.append(escape(new) + (" [yellow](moved)[/]" if new != node else ""))
        t.add_row(*row)
    console.print(t)


# ============================================================================================
# bench


def _find_benches() -> Path | None:
    here = Path(__file__).resolve()
    for root in (Path.cwd(), *here.parents):
        cand = root / "benches"
        if (cand / "report.py").is_file():
            return cand
    return None


#: The benchmark files, one per capability: benches/test_bench_NAME.py -> bench-results/NAME.*
BENCH_CAPABILITIES = ("hashing", "clocks", "gossip", "mapreduce", "mapreduce_dask")


@main.command(short_help="Benchmarks vs the peers (uhashring, hlcpy, ...), from a checkout.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-results"),
    show_default=True,
    help="Where each capability's NAME.json, NAME.md and NAME.png go.",
)
@click.option(
    "--only",
    type=click.Choice(BENCH_CAPABILITIES),
    multiple=True,
    help="Only these capabilities (repeatable); default all.",
)
@click.option("-k", "select", metavar="EXPR", help="Only the benchmarks matching EXPR (pytest -k).")
def bench(out_dir: Path, only: tuple[str, ...], select: str | None) -> None:
    """Run the benchmarks side by side with the peers and print the ratios (source checkout).

    \b
    Same as `make bench` without the release build: build first with
      maturin develop --release
    Results: bench-results/{hashing,clocks,gossip,mapreduce,mapreduce_dask}.{json,md,png}. Needs
    pytest-benchmark and the peers (pip install 'distcore[bench]'); gossip's peer is Debian's
    serf (a few minutes).
    """
    benches = _find_benches()
    if benches is None:
        _fail(
            "the benchmarks live in a source checkout of distcore: clone it and run `make bench`",
            1,
        )
    root = benches.parent
    out_dir = out_dir if out_dir.is_absolute() else Path.cwd() / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in only or BENCH_CAPABILITIES:
        json_path = out_dir / f"{name}.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(benches / f"test_bench_{name}.py"),
            "--benchmark-only",
            f"--benchmark-json={json_path}",
            "-p",
            "no:cacheprovider",
        ]
        if select:
            cmd += ["-k", select]
        rc = subprocess.run(cmd, cwd=root, check=False).returncode
        if rc != 0:
            _fail(f"the {name} benchmarks failed (pytest exit status {rc})", rc)
        report = [sys.executable, str(benches / "report.py"), str(json_path)]
        rc = subprocess.run(report, cwd=root, check=False).returncode
        if rc != 0:
            sys.exit(rc)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


main.add_command(time_group)
main.add_command(gossip_group)
main.add_command(mr_group)


if __name__ == "__main__":
    main(prog_name="distcore")
