"""Many gossip Nodes in one process, on one asyncio loop: the rest of the cluster for the CPU
benchmark in ``test_bench_gossip.py`` (so a 100-member cluster needs 2 processes, not 100).

Usage: ``python benches/_gossip_swarm.py --count 98 --join 127.0.0.1:PORT [--profile lan]``.
It starts the nodes one after the other (each joins through ``--join``), prints ``ready N`` and
then, every second, ``lag SECONDS`` (how late a 1 s sleep of its loop woke up: a loop that cannot
keep up makes its nodes miss acks, and the cluster would see false suspicions). SIGTERM or
SIGINT shuts the nodes down without leaving.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from distcore._core import GossipConfig
from distcore.gossip import Node


async def run(count: int, join: tuple[str, int], profile: str) -> None:
    config = getattr(GossipConfig, profile)()
    nodes = []
    for i in range(count):
        nodes.append(await Node.start(f"swarm-{i:03d}", ("127.0.0.1", 0), [join], config=config))
    print(f"ready {len(nodes)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        before = loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if not stop.is_set():
            print(f"lag {loop.time() - before - 1.0:.4f}", flush=True)
    for node in nodes:
        await node.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--join", required=True, metavar="IP:PORT")
    p.add_argument("--profile", choices=["lan", "wan", "local"], default="lan")
    args = p.parse_args()
    host, _, port = args.join.rpartition(":")
    logging.basicConfig(level=logging.ERROR)  # push-pull warnings would flood the output
    asyncio.run(run(args.count, (host, int(port)), args.profile))


if __name__ == "__main__":
    main()
