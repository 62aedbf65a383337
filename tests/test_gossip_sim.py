"""distcore.gossip.simulate and `distcore gossip sim`: the real state machine on a simulated
network, seeded."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from distcore.cli import main
from distcore.gossip import GossipConfig, epidemic, simulate


def test_dissemination_detection_and_reproducibility() -> None:
    r = simulate(50, duration=30.0, seed=3)
    assert len(r["update_learnt"]) == 49  # every live member learnt member 0's update
    assert r["update_learnt"] == sorted(r["update_learnt"])
    assert r["update_learnt"][-1] < 5.0
    ((first, everyone),) = r["detection"]
    low, high = GossipConfig.lan().suspicion_timeouts(50)
    assert first is not None and first < everyone
    assert low <= everyone <= high + 10
    assert r["false_positives"] == 0
    timing = {"wall_seconds", "node_periods_per_second"}

    def outcome(d: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in d.items() if k not in timing}

    assert outcome(r) == outcome(simulate(50, duration=30.0, seed=3))
    assert outcome(r) != outcome(simulate(50, duration=30.0, seed=4))


def test_loss_and_partitions() -> None:
    lossy = simulate(30, loss=0.2, duration=40.0, seed=1)
    assert lossy["detection"][0][1] is not None  # still detected by all
    assert len(lossy["update_learnt"]) == 29
    split = simulate(20, crashes=0, partition=(5.0, 6.5), duration=20.0, seed=2)
    assert split["false_positives"] == 0  # shorter than the suspicion timeout: all refuted


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 to 1000000"):
        simulate(1)
    with pytest.raises(ValueError, match="loss"):
        simulate(10, loss=1.0)
    with pytest.raises(ValueError, match="duration"):
        simulate(10, duration=-1.0)


def test_the_sim_command_prints_and_plots(tmp_path: Path) -> None:
    png = tmp_path / "spread.png"
    result = CliRunner().invoke(
        main, ["gossip", "sim", "--nodes", "40", "--duration", "30", "--plot", str(png)]
    )
    assert result.exit_code == 0, result.output
    assert "update reached 99% of members" in result.output
    assert "declared dead by all" in result.output
    assert png.stat().st_size > 1000
    bad = CliRunner().invoke(main, ["gossip", "sim", "--nodes", "1"])
    assert bad.exit_code == 2


def test_members_share_one_membership_table_so_large_clusters_fit() -> None:
    # Every member's view is copy-on-write over one shared table: 20,000 members (400 million
    # entries if each held its own) run in seconds and little memory.
    r = simulate(20_000, duration=4.0, update_at=1.0, crashes=0, seed=5)
    assert len(r["update_learnt"]) == 20_000
    assert r["update_learnt"][-1] < 3.0
    assert r["false_positives"] == 0
    assert r["node_periods_per_second"] > 0


def test_lifeguard_spares_healthy_members_from_slow_ones() -> None:
    # Slow members handle packets 1 s late: their probes time out. Without Lifeguard they keep
    # suspecting healthy members; with it their health score stretches their probes instead.
    runs = {
        lifeguard: simulate(
            200,
            duration=60.0,
            loss=0.1,
            slow=10,
            slow_delay=1.0,
            crashes=0,
            seed=2,
            config=GossipConfig.lan(lifeguard=lifeguard),
        )
        for lifeguard in (True, False)
    }
    assert runs[True]["false_suspicions"] * 3 < runs[False]["false_suspicions"]
    assert runs[True]["false_positives"] == 0


def test_paused_members_are_suspected_then_refute() -> None:
    # Pauses shorter than the suspicion timeout: suspected while stopped, alive when back.
    r = simulate(100, duration=40.0, slow=5, pause=3.0, pause_every=15.0, crashes=0, seed=4)
    assert r["false_positives"] == 0
    # Longer than the longest suspicion timeout (48 s at 100 members): declared dead.
    long = simulate(100, duration=80.0, slow=2, pause=60.0, pause_every=100.0, crashes=0, seed=4)
    assert long["false_positives"] > 0


def test_epidemic_rounds_push_pull_against_theory() -> None:
    r = epidemic(10_000, fanout=3, seed=3)
    assert set(r) == {"push", "pull", "push_pull"}
    pp = r["push_pull"]
    assert pp["rounds_9999"] <= math.log(10_000, 3) + 3
    assert pp["coverage"][0] == pytest.approx(1e-4)
    assert len(pp["theory"]) >= len(pp["coverage"]) and pp["theory"][-1] >= 0.9999
    assert abs(pp["rounds_9999"] - next(i for i, c in enumerate(pp["theory"]) if c >= 0.9999)) <= 1
    assert r["push"]["rounds_9999"] > pp["rounds_9999"]
    lossy = epidemic(10_000, fanout=3, loss=0.3, seed=3)
    assert lossy["push_pull"]["rounds_9999"] >= pp["rounds_9999"]
    assert epidemic(10_000, fanout=3, seed=3) == r
    with pytest.raises(ValueError, match="fanout"):
        epidemic(10, fanout=10)
