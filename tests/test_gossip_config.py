"""GossipConfig: memberlist's three default configurations and its scaling formulas."""

from __future__ import annotations

import copy
import pickle

import pytest

from distcore.gossip import GossipConfig

# memberlist's config.go: DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig.
DEFAULTS = {
    "lan": {
        "probe_interval": 1.0,
        "probe_timeout": 0.5,
        "indirect_checks": 3,
        "retransmit_mult": 4,
        "suspicion_mult": 4,
        "suspicion_max_timeout_mult": 6,
        "push_pull_interval": 30.0,
        "gossip_interval": 0.2,
        "gossip_nodes": 3,
        "gossip_to_the_dead_time": 30.0,
        "awareness_max_multiplier": 8,
        "tcp_timeout": 10.0,
        "udp_buffer_size": 1400,
        "enable_compression": True,
    },
    "wan": {
        "probe_interval": 5.0,
        "probe_timeout": 3.0,
        "indirect_checks": 3,
        "retransmit_mult": 4,
        "suspicion_mult": 6,
        "push_pull_interval": 60.0,
        "gossip_interval": 0.5,
        "gossip_nodes": 4,
        "gossip_to_the_dead_time": 60.0,
        "tcp_timeout": 30.0,
    },
    "local": {
        "probe_interval": 1.0,
        "probe_timeout": 0.2,
        "indirect_checks": 1,
        "retransmit_mult": 2,
        "suspicion_mult": 3,
        "push_pull_interval": 15.0,
        "gossip_interval": 0.1,
        "gossip_to_the_dead_time": 15.0,
        "tcp_timeout": 1.0,
    },
}


@pytest.mark.parametrize("name", DEFAULTS)
def test_presets_have_memberlists_defaults(name: str) -> None:
    config = getattr(GossipConfig, name)()
    for field, value in DEFAULTS[name].items():
        assert getattr(config, field) == value, field
        assert config.to_dict()[field] == value
    assert GossipConfig() == GossipConfig.lan()


@pytest.mark.parametrize(
    ("n", "retransmits", "suspicion", "push_pull"),
    [
        (3, 4, (4.0, 24.0), 30.0),
        (10, 8, (4.0, 24.0), 30.0),
        (100, 12, (8.0, 48.0), 90.0),
        (1000, 16, (12.0, 72.0), 180.0),
        (10_000, 20, (16.0, 96.0), 300.0),
    ],
)
def test_formulas_scale_with_log10(
    n: int, retransmits: int, suspicion: tuple[float, float], push_pull: float
) -> None:
    lan = GossipConfig.lan()
    assert lan.retransmit_limit(n) == retransmits
    assert lan.suspicion_timeouts(n) == pytest.approx(suspicion)
    assert lan.push_pull_interval_for(n) == push_pull
    # Lifeguard wants suspicion_mult - 2 confirmations, none when too few members could give them.
    assert lan.suspicion_confirmations(n) == (0 if n < 4 else 2)


def test_overrides_replace_and_errors() -> None:
    fast = GossipConfig.local(probe_interval=0.5, gossip_nodes=5, enable_compression=False)
    assert (fast.probe_interval, fast.gossip_nodes, fast.enable_compression) == (0.5, 5, False)
    assert fast.probe_timeout == 0.2  # the rest stays local()'s
    assert fast.replace(gossip_nodes=2).gossip_nodes == 2
    assert fast.gossip_nodes == 5  # immutable
    with pytest.raises(TypeError, match='no field "probe"'):
        GossipConfig(probe=1)
    with pytest.raises(ValueError, match="positive number of seconds"):
        GossipConfig(probe_interval=-1)
    with pytest.raises(ValueError, match=">= 1"):
        GossipConfig(gossip_nodes=0)
    with pytest.raises(ValueError, match="probe_timeout must not be longer"):
        GossipConfig(probe_timeout=2.0)
    with pytest.raises(ValueError, match="protocol_version"):
        GossipConfig(protocol_version=9)


def test_pickle_copy_and_repr() -> None:
    config = GossipConfig.wan(gossip_nodes=7)
    assert pickle.loads(pickle.dumps(config)) == config
    assert copy.deepcopy(config) == config
    assert repr(config).startswith("GossipConfig(probe_interval=5.0, probe_timeout=3.0,")
    assert "gossip_nodes=7" in repr(config)
    assert config != GossipConfig.wan()
