"""Turns a pytest-benchmark JSON into the distcore-vs-peer table, a Markdown file and a PNG chart.

Usage: ``python benches/report.py bench-results/hashing.json [--md PATH] [--png PATH]``
(by default the .md and .png go next to the JSON, with its stem); ``make bench`` runs it once
per benchmark file (hashing.json, clocks.json, gossip.json).

Each distcore benchmark names its peer in ``extra_info`` (see ``test_bench_hashing.py``); the
table shows both medians, the time per key, how many times faster distcore is, and the issue's
target with met / not met. Medians, because the benchmark machines are shared VMs.

``extra_info`` may also carry ``unit`` (what ``keys`` counts: "key" by default, "op" for the
clocks, "crash" for the gossip detection), ``target_call_ns`` (a target for the whole timed call
rather than per key), ``max_ratio`` (a target relative to the peer measured in the same run: met
when distcore's median <= ``max_ratio`` x the peer's median) and ``summary`` (a sentence printed
under the table).

Benchmarks tagged ``impl="measure"`` are not timings but a figure measured during the timed call
(the gossip CPU benchmark: ``value`` in ``unit``, ``target_max``, and ``peer``/``peer_value``
measured in the same window); they get a table of their own.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model, nproc


@dataclass
class Row:
    group: str
    name: str
    median_s: float
    per_key_ns: float | None
    peer: str | None
    peer_median_s: float | None
    peer_per_key_ns: float | None
    target_ns: float | None
    keys: int
    unit: str = "key"
    target_call_ns: float | None = None
    max_ratio: float | None = None
    summary: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.peer_per_key_ns is None or self.per_key_ns is None:
            return None
        return self.peer_per_key_ns / self.per_key_ns

    @property
    def is_build(self) -> bool:
        return self.keys == 1

    @property
    def met(self) -> bool | None:
        if self.max_ratio is not None:
            if self.peer_median_s is None:
                return None
            return self.median_s <= self.peer_median_s * self.max_ratio
        if self.target_call_ns is not None:
            return self.median_s * 1e9 <= self.target_call_ns
        if self.target_ns is None:
            return None
        value = self.median_s * 1e9 if self.is_build else self.per_key_ns
        return value is not None and value <= self.target_ns


def fmt_time(seconds: float) -> str:
    """A duration with a unit that keeps 3-4 significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:,.1f}x" if ratio >= 1 else f"{ratio:.2g}x"


def fmt_keys(keys: int, unit: str = "key") -> str:
    if keys == 1 and unit == "key":
        return "1 build"
    units = unit if keys == 1 else f"{unit}s"
    for suffix, scale in (("M", 1_000_000), ("k", 1000)):
        if keys >= scale and keys % scale == 0:
            return f"{keys // scale}{suffix} {units}"
    return f"{keys} {units}"


def fmt_ns(ns: float | None) -> str:
    if ns is None:
        return ""
    return f"{ns:.1f} ns" if ns < 100 else f"{ns:,.0f} ns"


def rows_from(data: dict[str, Any]) -> list[Row]:
    benches = data.get("benchmarks", [])
    by_name = {(b["group"], b["extra_info"].get("name", b["name"])): b for b in benches}
    rows = []
    for b in benches:
        info = b.get("extra_info", {})
        if info.get("impl") != "distcore":
            continue
        keys = int(info.get("keys", 1))
        median = float(b["stats"]["median"])
        peer_b = by_name.get((b["group"], info.get("peer")))
        peer_median = float(peer_b["stats"]["median"]) if peer_b else None
        peer_keys = int(peer_b["extra_info"].get("keys", 1)) if peer_b else None
        rows.append(
            Row(
                group=b["group"],
                name=info.get("name", b["name"]),
                median_s=median,
                per_key_ns=median / keys * 1e9,
                peer=info.get("peer") if peer_b else None,
                peer_median_s=peer_median,
                peer_per_key_ns=(
                    peer_median / peer_keys * 1e9 if peer_median is not None and peer_keys else None
                ),
                target_ns=info.get("target_ns"),
                keys=keys,
                unit=info.get("unit", "key"),
                target_call_ns=info.get("target_call_ns"),
                max_ratio=info.get("max_ratio"),
                summary=info.get("summary"),
            )
        )
    # Rows of one group together, groups in order of first appearance (a parametrized test
    # runs all its cases in a row, so a file's groups can interleave).
    first = {g: i for i, g in enumerate(dict.fromkeys(r.group for r in rows))}
    return sorted(rows, key=lambda r: first[r.group])


def target_text(row: Row) -> str:
    if row.max_ratio is not None:
        return f"≤ {row.max_ratio:g}x the peer's time"
    if row.target_call_ns is not None:
        return f"≤ {fmt_time(row.target_call_ns / 1e9)} / {fmt_keys(row.keys, row.unit)}"
    if row.target_ns is None:
        return ""
    if row.is_build:
        return f"≤ {row.target_ns / 1e6:g} ms"
    return f"≤ {row.target_ns:g} ns/{row.unit}"


def met_text(row: Row) -> str:
    return {None: "", True: "met", False: "**not met**"}[row.met]


# What the table's times mean, per unit of ``keys``.
NOTES = {
    "key": "Times are medians. Per-call rows time `deque(map(f, keys), maxlen=0)` over 1000 keys, "
    "so they include about 5 ns of loop per key for both sides. Batch peers have no batch "
    "API: they are the Python loop a user would write, timed on 100k of the keys. "
    '"faster" = peer time per key / distcore time per key.',
    "op": "Times are medians. Single-operation rows time `deque(map(f, args), maxlen=0)` over "
    "N calls (N in the median column), so they include about 5 ns of loop per call for both "
    "sides. Peers: hlcpy 0.0.2, vectorclock 0.5.3, and pure Python written for the benchmark "
    "(benches/_pyhlc.py, dict merges, `sorted` by causal_order's documented key) where no "
    "package has the operation; slow peers run fewer calls (see their files). "
    '"faster" = peer time per op / distcore time per op.',
    "crash": "Times are medians over fresh clusters: from the SIGKILL of one member until every "
    "other member lists it as dead (distcore, through its agents' RPC) or failed (serf), each "
    "member polled every 50 ms by its own thread. Real processes on 127.0.0.1, the LAN profile "
    'on both sides. "faster" = serf time / distcore time (above 1: distcore detects sooner).',
    "run": "Times are medians of whole runs (the rounds are in the median column: few, for "
    "runs of seconds) on the same file or arrays, every contender's result checked against "
    "distcore's. "
    '"faster" = peer time / distcore time.',
}


@dataclass
class Measure:
    group: str
    name: str
    value: float
    unit: str
    target_max: float | None
    peer: str | None
    peer_value: float | None
    details: dict[str, Any]

    @property
    def met(self) -> bool | None:
        return None if self.target_max is None else self.value <= self.target_max


#: extra_info keys of a measure that are not details worth printing
_MEASURE_KEYS = {"impl", "name", "value", "unit", "target_max", "peer", "peer_value"}


def measures_from(data: dict[str, Any]) -> list[Measure]:
    out = []
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if info.get("impl") != "measure":
            continue
        out.append(
            Measure(
                group=b["group"],
                name=info.get("name", b["name"]),
                value=float(info["value"]),
                unit=info.get("unit", ""),
                target_max=info.get("target_max"),
                peer=info.get("peer"),
                peer_value=info.get("peer_value"),
                details={k: v for k, v in info.items() if k not in _MEASURE_KEYS},
            )
        )
    return out


def measures_markdown(measures: list[Measure]) -> list[str]:
    lines = [
        "",
        "| measure | distcore | peer | peer value | target | met |",
        "|---|---:|---|---:|---|---|",
    ]
    for m in measures:
        peer_value = f"{m.peer_value:g} {m.unit}" if m.peer_value is not None else ""
        target = f"≤ {m.target_max:g} {m.unit}" if m.target_max is not None else ""
        met = {None: "", True: "met", False: "**not met**"}[m.met]
        lines.append(
            f"| {m.group} | {m.value:g} {m.unit} | {m.peer or ''} | {peer_value} | {target} "
            f"| {met} |"
        )
    for m in measures:
        details = ", ".join(f"{k}={v}" for k, v in m.details.items())
        lines += ["", f"{m.name}: {details}."]
    return lines


def markdown(rows: list[Row], header: list[str], measures: list[Measure] | None = None) -> str:
    if not rows:  # measures only (e.g. `-k cpu`)
        return "\n".join([*header, *measures_markdown(measures or [])]) + "\n"
    unit = rows[0].unit if rows else "key"
    cols = [
        "operation",
        "distcore",
        "median",
        f"per {unit}",
        "peer",
        f"peer per {unit}",
        "faster",
        "target",
        "met",
    ]
    table: list[list[str]] = []
    for r in rows:
        table.append(
            [
                r.group,
                r.name,
                f"{fmt_time(r.median_s)} / {fmt_keys(r.keys, r.unit)}",
                "" if r.is_build else fmt_ns(r.per_key_ns),
                r.peer or "",
                (fmt_time(r.peer_median_s or 0) if r.is_build else fmt_ns(r.peer_per_key_ns))
                if r.peer
                else "",
                fmt_ratio(r.ratio) if r.ratio is not None else "",
                target_text(r),
                met_text(r),
            ]
        )
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    right = {2, 3, 5, 6}

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)
        )
        + "|"
    )
    lines = [*header, "", line(cols), sep, *(line(t) for t in table), ""]
    not_met = [r for r in rows if r.met is False]
    if not_met:
        lines.append(
            "Not met: "
            + "; ".join(
                f"{r.name} "
                + (
                    fmt_time(r.median_s)
                    if r.is_build or r.target_call_ns is not None or r.max_ratio is not None
                    else fmt_ns(r.per_key_ns)
                )
                + f" (target {target_text(r)})"
                for r in not_met
            )
            + "."
        )
    elif any(r.met for r in rows):
        lines.append("Every target with a figure here is met.")
    else:
        lines.append("No target applies to these rows.")
    lines += [f"\n{r.name}: {r.summary}" for r in rows if r.summary]
    lines += ["", NOTES.get(unit, NOTES["key"])]
    if measures:
        lines += measures_markdown(measures)
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return False
    rows = [r for r in rows if r.ratio is not None]
    if not rows:
        return False
    labels = [f"{r.name}\nvs {r.peer}" for r in rows]
    ratios = [r.ratio or 1.0 for r in rows]
    colors = ["#55a868" if r.met else "#c44e52" if r.met is False else "#8c8c8c" for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(rows) + 1.6), dpi=100)
    try:
        y = list(range(len(rows)))[::-1]
        # Bars start at 1x: right of the line distcore is faster, left of it slower.
        ax.barh(y, [r - 1 for r in ratios], left=1, color=colors)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", lw=0.8)
        for yi, ratio in zip(y, ratios, strict=True):
            ax.text(max(ratio, 1), yi, f" {fmt_ratio(ratio)}", va="center", fontsize=7)
        ax.set_xlabel("times faster than the peer (log scale; green: target met, red: not met)")
        ax.set_title(title, fontsize=9)
        ax.set_xlim(min(0.5, min(ratios) / 2), max(2.0, max(ratios)) * 4)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", type=Path, help="pytest-benchmark --benchmark-json output")
    p.add_argument("--md", type=Path, help="Markdown output (default: next to the JSON)")
    p.add_argument("--png", type=Path, help="PNG chart output (default: next to the JSON)")
    args = p.parse_args(argv)
    try:
        data = json.loads(args.json.read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read {args.json}: {e}", file=sys.stderr)
        return 2
    rows = rows_from(data)
    measures = measures_from(data)
    if not rows and not measures:
        print(f"error: no distcore benchmarks in {args.json}", file=sys.stderr)
        return 1

    machine = data.get("machine_info", {})
    cpu = machine.get("cpu_model") or cpu_model()
    cores = machine.get("nproc") or nproc()
    when = data.get("datetime")
    date = datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M UTC") if when else "unknown date"
    py = machine.get("python_version", "")
    version = machine.get("distcore_version", "")
    title = f"distcore {version} vs peers: {cpu}, nproc {cores}, {date}"
    header = [
        f"## distcore {version} benchmarks vs peers".replace("  ", " "),
        "",
        f"- machine: {cpu}, nproc {cores}, {machine.get('system', '')} "
        f"{machine.get('release', '')}".rstrip(),
        f"- Python {py} ({machine.get('python_implementation', '')}), run {date}",
    ]
    load = (machine.get("loadavg_start"), machine.get("loadavg_end"))
    if None not in load:
        busy = max(load) > 0.5 * cores
        header.append(
            f"- load average {load[0]:g} at the start, {load[1]:g} at the end"
            + (" (the machine was busy: figures are pessimistic)" if busy else "")
        )
    text = markdown(rows, header, measures)
    print(text)
    md = args.md or args.json.with_suffix(".md")
    png = args.png or args.json.with_suffix(".png")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text, encoding="utf-8")
    print(f"wrote {md}")
    if plot(rows, png, title):
        print(f"wrote {png}")
    if any(math.isnan(r.median_s) for r in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
