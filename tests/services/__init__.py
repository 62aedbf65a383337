"""Real-server test harness: memcached, nutcracker (twemproxy), chronyd and serf on 127.0.0.1."""

from ._common import (
    REQUIRE_ENV,
    pid_exists,
    port_accepts,
    require_binary,
    service_unavailable,
    stop_all,
)
from .chrony import ChronyServer, ntp_answers, start_chrony
from .memcached import (
    MemcacheClient,
    MemcachedServer,
    MemcacheError,
    endpoint,
    flush_all,
    locate,
    start_memcached,
    start_memcached_servers,
)
from .nutcracker import (
    Nutcracker,
    NutcrackerConfigError,
    check_config,
    render_config,
    start_nutcracker,
)
from .serf import (
    SerfAgent,
    SerfError,
    SerfJoinError,
    free_gossip_port,
    parse_members,
    serf_key,
    start_serf,
)

__all__ = [
    "REQUIRE_ENV",
    "ChronyServer",
    "MemcacheClient",
    "MemcacheError",
    "MemcachedServer",
    "Nutcracker",
    "NutcrackerConfigError",
    "SerfAgent",
    "SerfError",
    "SerfJoinError",
    "check_config",
    "endpoint",
    "flush_all",
    "free_gossip_port",
    "locate",
    "ntp_answers",
    "parse_members",
    "pid_exists",
    "port_accepts",
    "render_config",
    "require_binary",
    "serf_key",
    "service_unavailable",
    "start_chrony",
    "start_memcached",
    "start_memcached_servers",
    "start_nutcracker",
    "start_serf",
    "stop_all",
]
