"""distcore.gossip.simulate and `distcore gossip sim`: the real state machine on a simulated
network, seeded."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from distcore.cli import main
from distcore.gossip import GossipConfig, simulate


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
    assert r == simulate(50, duration=30.0, seed=3)
    assert r != simulate(50, duration=30.0, seed=4)


def test_loss_and_partitions() -> None:
    lossy = simulate(30, loss=0.2, duration=40.0, seed=1)
    assert lossy["detection"][0][1] is not None  # still detected by all
    assert len(lossy["update_learnt"]) == 29
    split = simulate(20, crashes=0, partition=(5.0, 6.5), duration=20.0, seed=2)
    assert split["false_positives"] == 0  # shorter than the suspicion timeout: all refuted


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 to 20000"):
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
