#!/usr/bin/env bash
# Installs the Debian servers the tests start (run as root). Idempotent and quiet when all are there.
# chrony + faketime: NTP servers for distcore.timesync (the tests run their own chronyd -x).
# serf: HashiCorp serf agents for the gossip tests (the tests run their own on loopback ports).
set -euo pipefail
packages=(memcached nutcracker chrony faketime serf)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's packages start their services on install where systemd runs; the tests start their own.
for svc in memcached nutcracker chrony serf; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
# Without systemd, chrony's init script may have started a system chronyd (it would discipline
# the clock under the tests); stop it through its own pid file.
if [ -s /run/chrony/chronyd.pid ] && kill -0 "$(cat /run/chrony/chronyd.pid)" 2>/dev/null; then
  kill "$(cat /run/chrony/chronyd.pid)" || true
fi
# serf's postinst also starts a system agent (0.0.0.0:7946, RPC 127.0.0.1:7373) through its init
# script where no policy-rc.d forbids it; that one runs from a pid file start-stop-daemon made.
if [ -s /run/serf.pid ] && kill -0 "$(cat /run/serf.pid)" 2>/dev/null; then
  kill "$(cat /run/serf.pid)" || true
fi
