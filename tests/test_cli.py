"""The `distcore` command: demo, ring and bench, through click's runner and a real subprocess."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from distcore import _ringtools as rt
from distcore import hashing
from distcore.cli import main

FIVE = [f"10.0.0.{i}:11211:1 cache-{i}" for i in range(1, 6)]
SIXTH = "10.0.0.6:11211:1 cache-6"

POOLS_YAML = """\
alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  servers:
   - 10.0.0.1:11211:1 cache-1
   - 10.0.0.2:11211:1 cache-2
   - 10.0.0.3:11211:1 cache-3
beta:
  listen: 127.0.0.1:22122
  hash: md5
  servers:
   - 10.0.1.1:11211:1
   - 10.0.1.2:11211:1
"""


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "distcore.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def percent_after(label: str, text: str) -> float:
    """The first percentage printed after `label`, as a fraction."""
    m = re.search(re.escape(label) + r"\D*?([0-9]+\.[0-9]+)%", text)
    assert m, f"no percentage after {label!r} in:\n{text}"
    return float(m.group(1)) / 100


@pytest.fixture
def pools_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "nutcracker.yml"
    path.write_text(POOLS_YAML)
    return path


# --- help -------------------------------------------------------------------------------------


def test_help_works_on_every_subcommand() -> None:
    assert set(main.commands) >= {"demo", "ring", "bench"}
    for args in ([], *([name] for name in main.commands)):
        result = run(*args, "--help")
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Usage: ")
        assert "--help" in result.output


def test_help_works_as_a_module_and_as_the_console_script() -> None:
    proc = run_subprocess("--help")
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout and "ring" in proc.stdout and "bench" in proc.stdout
    script = shutil.which("distcore", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the distcore console script is not installed next to this python")
    proc = subprocess.run(
        [script, "ring", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "--twemproxy" in proc.stdout


# --- demo -------------------------------------------------------------------------------------


def test_demo_moves_about_a_sixth_of_the_keys_only_onto_the_new_server() -> None:
    result = run("demo", "--keys", "20000")
    assert result.exit_code == 0, result.output
    moved = percent_after("ketama:", result.output)
    assert 0.10 < moved < 0.25
    assert "all of them onto cache-6" in " ".join(result.output.split())
    # `hash % n` is in the comparison, and moves most keys.
    modula = re.search(r"hash % n \(modula\)\s*│\s*([0-9.]+)%", result.output)
    assert modula and float(modula.group(1)) > 50


# --- ring -------------------------------------------------------------------------------------


def test_adding_one_server_to_five_prints_a_moved_fraction_near_a_sixth() -> None:
    proc = run_subprocess("ring", "--servers", *FIVE, "--add", SIXTH, "--samples", "20000")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    exact = percent_after("moved:", out)
    sampled = percent_after("(exact);", out)
    assert 0.10 < exact < 0.25
    assert 0.10 < sampled < 0.25
    assert percent_after("between servers kept:", out) == 0.0
    assert "cache-6" in out


def test_ring_shows_where_keys_go_before_and_after(pools_yaml: Path) -> None:
    result = run(
        "ring",
        "--twemproxy",
        str(pools_yaml),
        "--pool",
        "alpha",
        "--remove",
        "cache-2",
        "--key",
        "user:1",
        "--key",
        "user:2",
        "--key",
        "user:3",
    )
    assert result.exit_code == 0, result.output
    ring = hashing.KetamaRing.from_twemproxy(pools_yaml, "alpha")
    after = hashing.KetamaRing.from_twemproxy(pools_yaml, "alpha")
    after.remove_node("cache-2")
    for key in ("user:1", "user:2", "user:3"):
        line = next(ln for ln in result.output.splitlines() if f" {key} " in ln)
        assert f"{ring.hash(key):,}" in line
        assert ring.get_node(key) in line and after.get_node(key) in line
        assert ("(moved)" in line) == (ring.get_node(key) != after.get_node(key))


def test_servers_may_follow_one_flag_or_be_comma_separated() -> None:
    spaced = run("ring", "--servers", "a:1:1", "b:2:1", "c:3:1")
    commas = run("ring", "--servers", "a:1:1,b:2:1", "--servers", "c:3:1")
    assert spaced.exit_code == commas.exit_code == 0, spaced.output + commas.output
    assert "KetamaRing(3 servers" in spaced.output
    assert spaced.output == commas.output


def test_servers_file_and_reweight(tmp_path: Path) -> None:
    f = tmp_path / "servers.txt"
    f.write_text("# my pool\n" + "\n".join(FIVE) + "\n\n")
    result = run("ring", "--servers-file", str(f), "--reweight", "cache-1=3", "--hash", "md5")
    assert result.exit_code == 0, result.output
    assert "cache-1=3" in result.output
    before = hashing.KetamaRing(FIVE, hash="md5")
    after = hashing.KetamaRing(FIVE, hash="md5")
    after.set_weight("cache-1", 3)
    exact = rt.moves_exact(before, after)
    assert exact is not None
    printed = percent_after("moved:", " ".join(result.output.split()))
    assert printed == pytest.approx(exact.fraction, abs=0.00006)
    # cache-1 receives exactly what it gains; but twemproxy recomputes every server's points from
    # its weight share (160 -> 112 here), so keys also move between the other servers.
    gain = after.distribution()["cache-1"] - before.distribution()["cache-1"]
    assert exact.into()["cache-1"] == pytest.approx(gain, abs=1e-12)
    assert exact.fraction > rt.min_moved_fraction(before.distribution(), after.distribution())


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "ring.png"
    result = run("ring", "--servers", *FIVE, "--add", SIXTH, "--plot", str(out))
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1024


# --- errors -----------------------------------------------------------------------------------


def test_a_bad_field_in_the_yaml_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("alpha:\n  hash: nosuch\n  servers:\n   - 10.0.0.1:11211:1\n")
    proc = run_subprocess("ring", "--twemproxy", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "alpha.hash" in proc.stderr and "nosuch" in proc.stderr


@pytest.mark.parametrize(
    ("text", "pool", "expected"),
    [
        ("alpha:\n  servers: [\n  - a\n: b", None, "not valid YAML"),
        (POOLS_YAML, None, "pool: the config has 2 pools"),
        (POOLS_YAML, "gamma", "no pool 'gamma'"),
        ("alpha:\n  servers: []\n", None, "alpha.servers"),
        ("alpha:\n  listen: x\n  colour: red\n  servers:\n   - a:1:1\n", None, "colour"),
    ],
)
def test_config_errors_exit_2_with_one_line(
    tmp_path: Path, text: str, pool: str | None, expected: str
) -> None:
    path = tmp_path / "nutcracker.yml"
    path.write_text(text)
    result = run("ring", "--twemproxy", str(path), *(["--pool", pool] if pool else []))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--twemproxy", "/nonexistent/nutcracker.yml"], "no such file"),
        ([], "no servers"),
        (["--servers", "a:1:0"], "weight"),
        (["--servers", "a:1", "--remove", "zz"], "no server 'zz'"),
        (["--servers", "a:1", "--reweight", "a"], "NAME=WEIGHT"),
        (["--servers", "a:1", "--hash", "nosuch"], "nosuch"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], expected: str) -> None:
    result = run("ring", *args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert expected in result.stderr


# --- the shared tools -------------------------------------------------------------------------


def test_adding_a_server_moves_exactly_its_share_and_only_onto_it() -> None:
    before = hashing.KetamaRing(FIVE)
    after = hashing.KetamaRing(FIVE)
    after.add_node(SIXTH)
    exact = rt.moves_exact(before, after)
    assert exact is not None and exact.exact
    assert exact.fraction == pytest.approx(after.distribution()["cache-6"], abs=1e-12)
    assert exact.onto_new == pytest.approx(exact.fraction) and exact.between_kept == 0
    assert exact.fraction == pytest.approx(
        rt.min_moved_fraction(before.distribution(), after.distribution()), abs=1e-12
    )
    sampled = rt.moves_sampled(before, after, rt.sample_keys(50_000, seed=1))
    assert sampled.between_kept == 0
    # fnv1a_64 on similar keys is not uniform; the exact share is still within a few points.
    assert abs(sampled.fraction - exact.fraction) < 0.03


def test_exact_moves_agree_with_sampling_for_md5() -> None:
    before = hashing.KetamaRing(FIVE, hash="md5")
    after = hashing.KetamaRing(FIVE, hash="md5")
    after.remove_node("cache-3")
    exact = rt.moves_exact(before, after)
    sampled = rt.moves_sampled(before, after, rt.sample_keys(100_000))
    assert exact is not None
    assert exact.fraction == pytest.approx(before.distribution()["cache-3"], abs=1e-12)
    assert sampled.fraction == pytest.approx(exact.fraction, abs=0.005)
    assert exact.gone_nodes == {"cache-3"} and exact.from_gone == pytest.approx(exact.fraction)


def test_modula_is_measured_by_sampling_and_moves_most_keys() -> None:
    before = rt.build_ring("ketama", FIVE, distribution="modula")
    after = rt.build_ring("ketama", [*FIVE, SIXTH], distribution="modula")
    assert rt.moves_exact(before, after) is None
    moves = rt.moves_sampled(before, after, rt.sample_keys(30_000))
    assert 0.75 < moves.fraction < 0.90  # 1 - 1/6 of keys keep h % 5 == h % 6 ... about 5/6 move


@pytest.mark.parametrize("algorithm", ["jump", "rendezvous", "maglev", "anchor"])
def test_other_algorithms_move_about_a_sixth_onto_the_new_node(algorithm: str) -> None:
    if algorithm not in rt.available_algorithms():
        pytest.skip(f"{algorithm} is not in this build")
    names = {f"cache-{i}": 1.0 for i in range(1, 6)}
    before = rt.build_ring(algorithm, names)
    after = rt.build_ring(algorithm, names)
    rt.apply_changes(after, add=["cache-6"])
    moves = rt.moves_sampled(before, after, rt.sample_keys(60_000))
    assert 0.14 < moves.fraction < 0.19
    assert moves.onto_new > 0.14
    # Maglev reshuffles a little of the table between old nodes too (the paper's disruption).
    assert moves.between_kept < (0.02 if algorithm == "maglev" else 1e-9)


def test_parse_server_specs() -> None:
    s = rt.parse_server("10.0.0.1:11212:3 cache-a")
    assert (s.host, s.port, s.weight, s.name) == ("10.0.0.1", 11212, 3, "cache-a")
    assert rt.parse_server("- 10.0.0.1:11211:1").name == "10.0.0.1:11211"
    assert rt.parse_server("redis-7").name == "redis-7"
    for bad in ("", "a:b", "a:1:x", "a:1:0", "a:70000", "a:1:1:1"):
        with pytest.raises(ValueError):
            rt.parse_server(bad)


def test_peak_to_mean_accounts_for_weights() -> None:
    assert rt.peak_to_mean({"a": 0.5, "b": 0.5}) == 1.0
    assert rt.peak_to_mean({"a": 2 / 3, "b": 1 / 3}, {"a": 2, "b": 1}) == pytest.approx(1.0)
    assert rt.peak_to_mean({"a": 0.6, "b": 0.4}) == pytest.approx(1.2)


def test_bench_without_a_checkout_says_where_the_benchmarks_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import distcore.cli as cli

    monkeypatch.setattr(cli, "_find_benches", lambda: None)
    result = CliRunner().invoke(main, ["bench"])
    assert result.exit_code == 1
    assert "make bench" in result.stderr
