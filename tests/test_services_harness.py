"""Tests of the real-server harness itself (memcached, nutcracker, locate oracle)."""

from __future__ import annotations

import socket

import pytest

from services import (
    REQUIRE_ENV,
    MemcacheClient,
    MemcacheError,
    NutcrackerConfigError,
    check_config,
    locate,
    pid_exists,
    port_accepts,
    render_config,
    service_unavailable,
)

pytestmark = pytest.mark.services


def keys(count: int, prefix: str = "k") -> list[bytes]:
    return [f"{prefix}:{i}".encode() for i in range(count)]


def ketama(servers: list, **extra: object) -> dict[str, object]:
    """nutcracker pool settings: ketama over `servers` (weight 1, no names); `extra` wins.

    md5 because fnv1a_64 clusters similar short keys, which would make spread asserts flaky.
    """
    entries = [s.entry() for s in servers]
    return {"hash": "md5", "distribution": "ketama", "servers": entries, **extra}


def locate_nothing(wanted: list[bytes], servers: list) -> bool:
    """True if no server holds any of `wanted`."""
    for server in servers:
        with server.client() as mc:
            if mc.get_many(wanted):
                return False
    return True


def test_key_set_through_nutcracker_lands_on_exactly_one_backend(memcached_pool, nutcracker):
    servers = memcached_pool(5)
    proxy = nutcracker({"alpha": ketama(servers)})
    wanted = keys(1000)
    with proxy.client() as mc:
        mc.set_many(wanted)
        assert mc.get_many(wanted) == dict.fromkeys(wanted, b"x")
    placement = locate(wanted, servers)  # raises if a key is missing or duplicated
    assert set(placement) == set(wanted)
    assert set(placement.values()) == set(range(5)), "ketama should spread 1000 keys over 5 servers"


def test_hundred_server_pool_places_every_key_once_and_is_flushed_between_tests(
    memcached_pool, nutcracker
):
    servers = memcached_pool(100)
    assert len({s.port for s in servers}) == 100 and all(s.running for s in servers)
    # The first test set keys(1000) on servers[:5]; teardown must have flushed them.
    assert locate_nothing(keys(1000), servers)
    proxy = nutcracker({"big": ketama(servers)})
    wanted = keys(3000, "big")
    with proxy.client() as mc:
        mc.set_many(wanted)
    assert len(set(locate(wanted, servers).values())) > 80


def test_locate_names_keys_missing_or_on_several_backends(memcached_pool):
    first, second = memcached_pool(2)
    for server in (first, second):
        with server.client() as mc:
            mc.set_many([b"twice", b"only-first" if server is first else b"only-second"])
    assert locate([b"only-first", b"only-second"], [first, second]) == {
        b"only-first": 0,
        b"only-second": 1,
    }
    with pytest.raises(AssertionError) as info:
        locate([b"only-first", b"twice", b"nowhere"], [first, second])
    assert "b'nowhere'" in str(info.value) and "(b'twice', [0, 1])" in str(info.value)


def test_non_ascii_and_long_keys_round_trip_and_bad_keys_are_rejected(memcached_pool):
    (server,) = memcached_pool(1)
    wanted = ["ключ-💡".encode(), "é".encode() * 125, b"k" * 250, *keys(300)]
    with server.client() as mc:
        mc.set_many(wanted, value=b"v\r\nwith crlf")
        assert mc.get_many(wanted) == dict.fromkeys(wanted, b"v\r\nwith crlf")
        for bad in (b"has space", b"ctl\x01", b"k" * 251, b""):
            with pytest.raises(ValueError):
                mc.get_many([bad])
    assert locate(wanted, [server]) == dict.fromkeys(wanted, 0)


def test_set_through_nutcracker_reports_non_stored_reply(memcached_pool, nutcracker):
    proxy = nutcracker({"alpha": ketama(memcached_pool(2))})
    with proxy.client() as mc, pytest.raises(MemcacheError, match="SERVER_ERROR"):
        mc.set_many([b"huge"], value=b"x" * (2 * 1024 * 1024))  # over memcached's 1 MB item limit


def test_one_nutcracker_serves_several_pools_each_on_its_own_backends(memcached_pool, nutcracker):
    servers = memcached_pool(4)
    proxy = nutcracker({"left": ketama(servers[:2]), "right": ketama(servers[2:], hash_tag="{}")})
    assert proxy.address("left") != proxy.address("right")
    with proxy.client("left") as mc:
        mc.set_many(keys(200, "left"))
    with proxy.client("right") as mc:
        mc.set_many(keys(200, "{same}right"))
    assert set(locate(keys(200, "left"), servers[:2]).values()) == {0, 1}
    # hash_tag "{}" hashes only "same", so every right-pool key shares one backend.
    assert len(set(locate(keys(200, "{same}right"), servers[2:]).values())) == 1
    assert locate_nothing(keys(200, "left"), servers[2:])
    assert set(proxy.stats()) >= {"left", "right"}


def test_stopped_nutcracker_is_gone_and_its_ports_refuse(memcached_pool, nutcracker):
    proxy = nutcracker({"alpha": ketama(memcached_pool(1))})
    port = proxy.address()[1]
    assert pid_exists(proxy.pid) and port_accepts(port)
    proxy.stop()
    assert not pid_exists(proxy.pid)
    assert not port_accepts(port) and not port_accepts(proxy.stats_address[1])


def test_memcached_stopped_by_harness_is_gone_and_its_port_refuses(memcached_server):
    server = memcached_server()
    with server.client() as mc:
        mc.set_many([b"alive"])
    server.stop()
    assert not server.running and not pid_exists(server.pid)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.address, timeout=1).close()


def test_memcached_factory_serves_the_default_port_11211(memcached_server):
    server = memcached_server(port=11211)
    assert server.entry() == "127.0.0.1:11211:1"
    with MemcacheClient(server.entry()) as mc:
        mc.set_many([b"default-port"])
    assert locate([b"default-port"], [("127.0.0.1", 11211)]) == {b"default-port": 0}


def test_nutcracker_config_check_rejects_bad_settings(tmp_path):
    conf = tmp_path / "bad.yml"
    conf.write_text(
        render_config(
            {
                "alpha": {
                    "listen": "127.0.0.1:1",
                    "distribution": "bogus",
                    "servers": ["127.0.0.1:2:1"],
                }
            }
        )
    )
    with pytest.raises(NutcrackerConfigError, match="bogus"):
        check_config(conf)


@pytest.mark.parametrize(
    "required, outcome", [("1", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_unavailable_service_fails_only_when_required(monkeypatch, required, outcome):
    monkeypatch.setenv(REQUIRE_ENV, required)
    with pytest.raises(outcome) as info:
        service_unavailable("memcached not found")
    assert "memcached not found" in str(info.value) and REQUIRE_ENV in str(info.value)
