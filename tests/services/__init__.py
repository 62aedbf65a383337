"""Real-server test harness: memcached, nutcracker (twemproxy) and chronyd on 127.0.0.1."""

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

__all__ = [
    "REQUIRE_ENV",
    "ChronyServer",
    "MemcacheClient",
    "MemcacheError",
    "MemcachedServer",
    "Nutcracker",
    "NutcrackerConfigError",
    "check_config",
    "endpoint",
    "flush_all",
    "locate",
    "ntp_answers",
    "pid_exists",
    "port_accepts",
    "render_config",
    "require_binary",
    "service_unavailable",
    "start_chrony",
    "start_memcached",
    "start_memcached_servers",
    "start_nutcracker",
    "stop_all",
]
