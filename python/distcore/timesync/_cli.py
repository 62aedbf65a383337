"""``distcore time``: query NTP servers (SNTP + Marzullo), run a Berkeley master or follower."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distcore._cliutil import user_errors
from distcore.exceptions import TimeSyncError

from ._berkeley import FollowerService, MasterService, RoundResult, VirtualClock
from ._marzullo import Estimate, combine
from ._sntp import NTPSample, SNTPClient, parse_server, server_key

EXIT_NO_TIME = 1


def _addresses(values: tuple[str, ...], *, any_port: bool = False) -> list[str]:
    for value in values:
        parse_server(value, any_port=any_port)  # ValueError -> exit 2
    return list(values)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:+.3f}"


@click.group(name="time", short_help="Clock sync: query NTP servers, run a Berkeley service.")
def time_group() -> None:
    """Clock synchronisation without touching the system clock.

    \b
    Measure your clock against NTP servers (SNTP, combined with Marzullo's algorithm):
      distcore time query pool.ntp.org time.cloudflare.com time.google.com
    Agree on a time inside a group (Berkeley algorithm; virtual clocks only):
      distcore time serve --role follower --bind 127.0.0.1:9001
      distcore time serve --role master --bind 127.0.0.1:9000 --follower 127.0.0.1:9001
    """


@time_group.command(short_help="Offset and delay to NTP servers, and their combined estimate.")
@click.argument("servers", nargs=-1, required=True, metavar="HOST[:PORT]...")
@click.option(
    "--samples",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Polls per server; the least-delay one counts. Without --local, 15 s apart (RFC 4330).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=2.0,
    show_default=True,
    help="Seconds to wait for each reply.",
)
@click.option("--local", is_flag=True, help="Your own servers: poll without the 15 s minimum.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@user_errors
def query(
    servers: tuple[str, ...], samples: int, timeout: float, local: bool, as_json: bool
) -> None:
    """Query NTP servers with SNTP; show each one's offset, delay and stratum, then the
    interval most of them agree on (Marzullo) and any falsetickers.

    The offset is server time minus this machine's clock. Nothing is changed on this machine.
    Exit status: 0 with an estimate, 1 if no server answered usably or no majority agreed,
    2 on bad input.
    """
    names = _addresses(servers)
    client = SNTPClient(timeout=timeout, local=local)
    console = Console(highlight=False)
    if samples > 1 and not local and not as_json:
        console.print(
            f"[dim]{samples} polls per server, 15 s apart (RFC 4330); "
            "use --local for your own servers[/]"
        )
    results = client.measure(names, samples)
    good = [r for r in results.values() if isinstance(r, NTPSample)]
    estimate: Estimate | None = None
    problem: str | None = None
    if good:
        try:
            estimate = combine(good)
        except TimeSyncError as e:
            problem = str(e)
    else:
        problem = "no usable reply from any server"
    if as_json:
        click.echo(json.dumps(_as_json(results, estimate, problem), indent=2))
    else:
        _print_results(console, results, estimate, problem)
    if estimate is None:
        sys.exit(EXIT_NO_TIME)


def _as_json(
    results: dict[str, NTPSample | TimeSyncError], estimate: Estimate | None, problem: str | None
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for key, r in results.items():
        if isinstance(r, NTPSample):
            rows.append(
                {
                    "server": key,
                    "offset": r.offset,
                    "delay": r.delay,
                    "error": r.error,
                    "stratum": r.stratum,
                    "ref_id": r.ref_id,
                    "leap": r.leap,
                }
            )
        else:
            rows.append({"server": key, "error_message": str(r)})
    out: dict[str, Any] = {"servers": rows, "estimate": None, "problem": problem}
    if estimate is not None:
        out["estimate"] = {
            "offset": estimate.offset,
            "low": estimate.low,
            "high": estimate.high,
            "error": estimate.error,
            "truechimers": list(estimate.truechimers),
            "falsetickers": list(estimate.falsetickers),
        }
    return out


def _print_results(
    console: Console,
    results: dict[str, NTPSample | TimeSyncError],
    estimate: Estimate | None,
    problem: str | None,
) -> None:
    table = Table(
        title="SNTP replies (offset = server - local)",
        title_justify="left",
        box=None,
        padding=(0, 1),
        header_style="bold",
    )
    table.add_column("server", no_wrap=True)
    for name in ("offset ms", "delay ms", "± ms", "stratum"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("ref id", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    false = set(estimate.falsetickers) if estimate is not None else set()
    for key, r in results.items():
        if isinstance(r, NTPSample):
            verdict = (
                "[bold red]falseticker[/]"
                if key in false
                else ("[green]truechimer[/]" if estimate is not None else "")
            )
            table.add_row(
                escape(key),
                _ms(r.offset),
                f"{r.delay * 1e3:.3f}",
                f"{r.error * 1e3:.3f}",
                str(r.stratum),
                escape(r.ref_id),
                verdict,
            )
        else:
            table.add_row(escape(key), "", "", "", "", "", f"[red]{escape(str(r))}[/]")
    console.print(table)
    if estimate is not None:
        console.print(
            f"Combined (Marzullo): offset [bold]{_ms(estimate.offset)} ms[/] "
            f"± {estimate.error * 1e3:.3f} ms, interval \\[{_ms(estimate.low)}, "
            f"{_ms(estimate.high)}] ms; {len(estimate.truechimers)} of "
            f"{len(estimate.truechimers) + len(estimate.falsetickers)} servers agree"
        )
        if estimate.falsetickers:
            console.print(
                "[bold red]Falsetickers:[/] " + ", ".join(escape(s) for s in estimate.falsetickers)
            )
    if problem is not None:
        console.print(f"[bold red]No estimate:[/] {escape(problem)}")


@time_group.command(short_help="Run a Berkeley master or follower (virtual clocks, UDP).")
@click.option(
    "--role", type=click.Choice(["master", "follower"]), required=True, help="What to run."
)
@click.option(
    "--bind",
    default="127.0.0.1:0",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to listen on (port 0: any free port).",
)
@click.option(
    "--follower",
    "followers",
    multiple=True,
    metavar="HOST:PORT",
    help="A follower to poll (master; repeat for each).",
)
@click.option("--master", metavar="HOST:PORT", help="Only accept this master (follower).")
@click.option(
    "--interval",
    type=click.FloatRange(0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds between rounds (master).",
)
@click.option(
    "--reply-timeout",
    type=click.FloatRange(0, min_open=True),
    default=0.5,
    show_default=True,
    help="Seconds to wait for followers each round (master).",
)
@click.option(
    "--max-spread",
    type=click.FloatRange(0),
    default=0.1,
    show_default=True,
    help="Seconds: clocks further apart than this are outliers (master).",
)
@click.option("--rounds", type=click.IntRange(1), help="Stop after this many rounds (master).")
@click.option(
    "--offset",
    type=float,
    default=0.0,
    show_default=True,
    help="Start the virtual clock this many seconds off the system clock (demos, tests).",
)
@user_errors
def serve(
    role: str,
    bind: str,
    followers: tuple[str, ...],
    master: str | None,
    interval: float,
    reply_timeout: float,
    max_spread: float,
    rounds: int | None,
    offset: float,
) -> None:
    """Run one member of a Berkeley time service until Ctrl-C.

    The master polls each follower Cristian-style, averages the clocks that agree within
    --max-spread (outliers left out), and sends every follower, outliers included, its
    correction; it corrects its own clock too. Clocks are virtual (system time + offset):
    the system clock is never changed.
    """
    parse_server(bind, any_port=True)
    clock = VirtualClock(offset_ns=round(offset * 1e9))
    if role == "master":
        if not followers:
            raise click.UsageError("--role master needs at least one --follower HOST:PORT")
        _addresses(followers)
        runner = _run_master(
            MasterService(
                followers,
                bind=bind,
                clock=clock,
                interval=interval,
                reply_timeout=reply_timeout,
                max_spread=max_spread,
            ),
            rounds,
        )
    else:
        if followers:
            raise click.UsageError("--follower is for --role master")
        if master is not None and parse_server(master, default_port=0, any_port=True)[1] == 0:
            raise ValueError(f"bad address {master!r}: a master needs a port")
        runner = _run_follower(bind, clock, master)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner)
    click.echo("stopped", err=True)


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


async def _run_master(service: MasterService, rounds: int | None) -> None:
    def report(r: RoundResult) -> None:
        parts = [
            f"{name} {r.offsets[name] / 1e6:+.3f}ms->{r.corrections[name] / 1e6:+.3f}ms"
            + (" (outlier)" if name in r.outliers else "")
            for name in r.offsets
        ]
        missing = f"; missing: {', '.join(r.missing)}" if r.missing else ""
        _echo(f"round {r.round}: target {r.target_ns / 1e6:+.3f} ms; " + "; ".join(parts) + missing)

    async with service:
        host, port = service.address
        _echo(f"master on {server_key((host, port))}, {len(service.follower_specs)} follower(s)")
        await service.serve(rounds, report)


async def _run_follower(bind: str, clock: VirtualClock, master: str | None) -> None:
    async with FollowerService(
        bind,
        clock,
        master=master,
        on_adjust=lambda offset: _echo(f"corrected: offset now {offset / 1e6:+.3f} ms"),
    ) as service:
        host, port = service.address
        _echo(f"follower on {server_key((host, port))}, offset {clock.offset_ns / 1e6:+.3f} ms")
        await asyncio.Event().wait()
