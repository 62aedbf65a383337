"""``distcore gossip``: run a member (``agent``) and ask a running one who it sees (``members``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import math
import signal
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from distcore._cliutil import CliError, user_errors
from distcore._core import GossipConfig, epidemic, simulate
from distcore.gossip._node import Node
from distcore.gossip.wire import Keyring, decode_serf_tags, encode_serf_tags


def parse_address(text: str, default_port: int = 7946) -> tuple[str, int]:
    """``IP[:PORT]`` (IPv4, or IPv6 in brackets) -> (ip, port); memberlist speaks IP addresses."""
    host, sep, port = text.rpartition(":")
    if not sep or (text.count(":") > 1 and not text.startswith("[")):
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not IP:PORT: {text!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address: {host!r}") from None
    return host, int(port)


def _tags(values: tuple[str, ...]) -> dict[str, str]:
    tags = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise ValueError(f"a tag is KEY=VALUE, not {v!r}")
        tags[key] = value
    return tags


@click.group(name="gossip", short_help="Gossip membership (memberlist's protocol): agent, members.")
def gossip_group() -> None:
    """Gossip membership that speaks HashiCorp memberlist's protocol (serf can join)."""


@gossip_group.command(short_help="Run a member; print membership changes.")
@click.option("--name", required=True, help="This member's name, unique in the cluster.")
@click.option(
    "--bind", "bind", default="127.0.0.1:7946", show_default=True, help="HOST:PORT (UDP+TCP)."
)
@click.option(
    "--join", "joins", multiple=True, metavar="HOST:PORT", help="A member to join through."
)
@click.option(
    "--profile", type=click.Choice(["lan", "wan", "local"]), default="lan", show_default=True
)
@click.option(
    "--probe-interval", type=float, help="Seconds between probes (overrides the profile)."
)
@click.option("--probe-timeout", type=float, help="Seconds to wait for an ack.")
@click.option("--gossip-interval", type=float, help="Seconds between gossip rounds.")
@click.option("--push-pull-interval", type=float, help="Seconds between full-state exchanges.")
@click.option("--encrypt", "keys", multiple=True, metavar="BASE64", help="A key (first = primary).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="serf-style tags.")
@click.option(
    "--label", default=None, help="memberlist's cluster label (at most 255 bytes); none by default."
)
@click.option("--rpc", default=None, metavar="HOST:PORT", help="Serve `distcore gossip members`.")
@user_errors
def agent(
    name: str,
    bind: str,
    joins: tuple[str, ...],
    profile: str,
    probe_interval: float | None,
    probe_timeout: float | None,
    gossip_interval: float | None,
    push_pull_interval: float | None,
    keys: tuple[str, ...],
    tags: tuple[str, ...],
    label: str | None,
    rpc: str | None,
) -> None:
    """Run a gossip member until SIGINT (leave gracefully) or SIGTERM (stop without leaving).

    \b
    It prints one line per membership change: KIND NAME HOST:PORT INCARNATION
    (a conflict adds the other address claiming the name). Its --rpc port answers
    JSON lines: {"cmd": "members"}, {"cmd": "stats"} (packet counters), and for fault
    drills {"cmd": "block", "addrs": ["IP:PORT", ...]} (drop traffic with them; add
    "udp_only": true to drop UDP only) and {"cmd": "unblock"}. It exits with status 2
    and one line if no --join address answers or the name is taken.
    Example:
      distcore gossip agent --name a --bind 127.0.0.1:7001 --rpc 127.0.0.1:7101
      distcore gossip agent --name b --bind 127.0.0.1:7002 --join 127.0.0.1:7001
    """
    overrides = {
        k: v
        for k, v in {
            "probe_interval": probe_interval,
            "probe_timeout": probe_timeout,
            "gossip_interval": gossip_interval,
            "push_pull_interval": push_pull_interval,
        }.items()
        if v is not None
    }
    config = getattr(GossipConfig, profile)(**overrides)
    try:
        keyring = Keyring([base64.b64decode(k, validate=True) for k in keys]) if keys else None
    except ValueError as e:
        raise CliError(f"--encrypt takes base64 keys of 16, 24 or 32 bytes: {e}") from None
    meta = encode_serf_tags(_tags(tags)) if tags else b""
    address = parse_address(bind)
    seeds = [parse_address(j) for j in joins]
    rpc_address = parse_address(rpc) if rpc else None
    asyncio.run(_run_agent(name, address, seeds, config, meta, keyring, rpc_address, label))


async def _run_agent(
    name: str,
    bind: tuple[str, int],
    seeds: list[tuple[str, int]],
    config: GossipConfig,
    meta: bytes,
    keyring: Keyring | None,
    rpc: tuple[str, int] | None,
    label: str | None = None,
) -> None:
    node = await Node.start(
        name, bind, seeds, config=config, meta=meta, keyring=keyring, label=label
    )
    stop = asyncio.Event()
    leave = False

    def on_signal(graceful: bool) -> None:
        nonlocal leave
        leave = graceful
        stop.set()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_signal, True)
    loop.add_signal_handler(signal.SIGTERM, on_signal, False)

    async def serve_rpc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ValueError):
            request = json.loads(await reader.readline() or b"{}")
            cmd = request.get("cmd")
            if cmd == "members":
                reply: dict[str, Any] = {"members": [_member_json(m) for m in node.members()]}
            elif cmd == "stats":
                reply = {"stats": node.stats()}
            elif cmd == "block":  # fault drills: partition this agent from these addresses
                addrs = [parse_address(a) for a in request.get("addrs", [])]
                node.block(addrs, udp_only=bool(request.get("udp_only", False)))
                reply = {"ok": True}
            elif cmd == "unblock":
                node.unblock()
                reply = {"ok": True}
            else:
                reply = {"error": f"unknown command {request.get('cmd')!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve_rpc, *rpc) if rpc else None
    print(f"{name} listening on {node.address[0]}:{node.address[1]}", flush=True)

    async def report() -> None:
        async for ev in node.events():
            m = ev.member
            line = f"{ev.kind} {m.name} {m.addr[0]}:{m.addr[1]} {m.incarnation}"
            if ev.other_addr is not None:
                line += f" {ev.other_addr[0]}:{ev.other_addr[1]}"
            print(line, flush=True)

    reporter = asyncio.create_task(report())
    await stop.wait()
    if leave:
        await node.leave()
    reporter.cancel()
    if server:
        server.close()
    await node.shutdown()


def _member_json(m: Any) -> dict[str, Any]:
    try:
        tags = decode_serf_tags(m.meta) if m.meta else {}
    except ValueError:
        tags = {}
    return {
        "name": m.name,
        "addr": f"{m.addr[0]}:{m.addr[1]}",
        "state": m.state,
        "incarnation": m.incarnation,
        "tags": tags,
    }


@gossip_group.command(short_help="List the members a running agent sees.")
@click.option("--rpc", required=True, metavar="HOST:PORT", help="The agent's --rpc address.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def members(rpc: str, as_json: bool) -> None:
    """Ask an agent started with --rpc who it sees, and in which state."""
    reply = asyncio.run(_ask(parse_address(rpc), {"cmd": "members"}))
    if "error" in reply:
        raise CliError(reply["error"])
    if as_json:
        click.echo(json.dumps(reply))
        return
    table = Table("name", "address", "state", "incarnation", "tags")
    for m in reply["members"]:
        tags = ",".join(f"{k}={v}" for k, v in sorted(m["tags"].items()))
        table.add_row(m["name"], m["addr"], m["state"], str(m["incarnation"]), tags)
    Console(file=sys.stdout).print(table)


async def _ask(address: tuple[str, int], request: dict[str, Any]) -> dict[str, Any]:
    async with asyncio.timeout(5):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await reader.readline()
        writer.close()
    return json.loads(line)  # type: ignore[no-any-return]


@gossip_group.command(short_help="Simulate a cluster: dissemination, detection, traffic.")
@click.option("--nodes", type=click.IntRange(2, 1_000_000), default=1000, show_default=True)
@click.option("--loss", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@click.option("--latency", type=float, default=0.005, show_default=True, help="Seconds one way.")
@click.option("--jitter", type=float, default=0.005, show_default=True, help="Extra 0..J seconds.")
@click.option("--profile", type=click.Choice(["lan", "wan", "local"]), default="lan")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Simulated seconds.")
@click.option("--crashes", type=click.IntRange(0), default=1, show_default=True)
@click.option("--slow", type=click.IntRange(0), default=0, help="Members that are slow/paused.")
@click.option("--slow-delay", type=float, default=0.0, help="Seconds a slow member lags.")
@click.option("--pause", type=float, default=0.0, help="Seconds a slow member stops...")
@click.option("--pause-every", type=float, default=10.0, help="... once every this many.")
@click.option("--no-lifeguard", is_flag=True, help="Plain SWIM, for comparison.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG of the spread.")
@user_errors
def sim(
    nodes: int,
    loss: float,
    latency: float,
    jitter: float,
    profile: str,
    duration: float,
    crashes: int,
    slow: int,
    slow_delay: float,
    pause: float,
    pause_every: float,
    no_lifeguard: bool,
    seed: int,
    plot: str | None,
) -> None:
    """Run NODES members of the real state machine on a simulated network (seeded).

    \b
    Member 0 announces an update at 2 s (its spread is dissemination); the last CRASHES members
    crash at 5 s (their detection is measured); SLOW members lag or pause. Prints both, the
    false positives, the traffic per member, and the push / pull / push-pull spread in rounds
    (gossip's epidemic model, fan-out = the profile's gossip_nodes) next to its theory.
    """
    config = getattr(GossipConfig, profile)(lifeguard=not no_lifeguard)
    r = simulate(
        nodes,
        seed=seed,
        loss=loss,
        latency=latency,
        jitter=jitter,
        duration=duration,
        crashes=crashes,
        slow=slow,
        slow_delay=slow_delay,
        pause=pause,
        pause_every=pause_every,
        config=config,
    )
    rounds = epidemic(nodes, fanout=config.gossip_nodes, loss=loss, seed=seed)
    learnt = r["update_learnt"]
    live = nodes - min(crashes, nodes - 1)
    console = Console(file=sys.stdout)
    lifeguard = "" if config.lifeguard else ", no Lifeguard"
    title = f"{nodes:,} members, {loss:.0%} loss, {profile}{lifeguard}"
    table = Table("measure", "value", title=title)
    for q in (0.5, 0.99, 1.0):
        k = max(1, round(q * live))
        value = f"{learnt[k - 1]:.2f} s" if len(learnt) >= k else "not reached"
        table.add_row(f"update reached {q:.0%} of members", value)
    for n, (first, everyone) in enumerate(r["detection"]):
        name = "crash" if len(r["detection"]) == 1 else f"crash {n + 1}"
        table.add_row(
            f"{name}: first suspicion", f"{first:.2f} s" if first is not None else "never"
        )
        table.add_row(
            f"{name}: declared dead by all",
            f"{everyone:.2f} s" if everyone is not None else "not by all",
        )
    table.add_row("false positives (dead verdicts, per viewer)", str(r["false_positives"]))
    table.add_row("healthy members suspected (per viewer)", str(r["false_suspicions"]))
    per = nodes * r["seconds"]
    table.add_row("packets per member per second", f"{r['packets'] / per:.1f}")
    table.add_row("bytes per member per second", f"{r['bytes'] / per:,.0f}")
    table.add_row(
        "simulator speed",
        f"{r['node_periods_per_second']:,.0f} member-periods/s ({r['wall_seconds']:.1f} s)",
    )
    console.print(table)
    bound = math.log(nodes, 3) + 3
    spread = Table(
        "spread in rounds", "99 %", "99.99 %", "theory 99.99 %",
        title=f"epidemic model, fan-out {config.gossip_nodes} (log3(N) + 3 = {bound:.1f})",
    )  # fmt: skip
    for mode, got in rounds.items():
        theory = next((i for i, c in enumerate(got["theory"]) if c >= 0.9999), None)
        spread.add_row(
            mode.replace("_", "-"),
            str(got["rounds_99"]),
            str(got["rounds_9999"]),
            str(theory) if theory is not None else "-",
        )
    console.print(spread)
    if plot:
        _plot_spread(learnt, live, config.gossip_interval, rounds, plot, title)
        console.print(f"wrote {plot}")


def _plot_spread(
    learnt: list[float],
    live: int,
    gossip_interval: float,
    rounds: dict[str, dict[str, Any]],
    path: str,
    title: str,
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CliError("--plot needs matplotlib (pip install 'distcore[plot]')") from None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    steps = [t / gossip_interval for t in learnt]
    left.step(steps, [(i + 1) / live for i in range(len(learnt))], where="post")
    left.set_xlabel(f"gossip rounds ({gossip_interval * 1000:.0f} ms) after the update")
    left.set_ylabel("members that know it")
    left.set_ylim(0, 1.02)
    left.set_title("SWIM state machine: an update's spread")
    left.grid(alpha=0.3)
    for (mode, got), color in zip(rounds.items(), ("C0", "C1", "C2"), strict=True):
        label = mode.replace("_", "-")
        right.plot(got["coverage"], "o-", color=color, label=f"{label} (measured)")
        right.plot(got["theory"], "--", color=color, alpha=0.6, label=f"{label} (theory)")
    right.set_xlabel("round")
    right.set_ylabel("members that know it")
    right.set_ylim(0, 1.02)
    right.set_title("Epidemic model: push, pull, push-pull")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
