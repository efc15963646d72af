#!/usr/bin/env bash
# CI: make sure PostgreSQL (127.0.0.1:5432, user postgres, trust auth) and Redis
# (127.0.0.1:6379) answer before the tests. Starts them if they are installed but down,
# installs them from Debian packages if missing (needs root). Idempotent: a no-op when both
# already answer. The tests fail (not skip) under CI=true when a service is unreachable.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
wait_for() {  # wait_for NAME CHECK
  for _ in $(seq 1 60); do "$2" && { echo "$1 is up"; return 0; }; sleep 0.5; done
  echo "$1 did not come up" >&2
  return 1
}

apt_updated=""
install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# -- PostgreSQL
if pg_up; then
  echo "PostgreSQL is up"
else
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "installing PostgreSQL"
    install postgresql postgresql-client
  fi
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  # the tests connect as postgres without a password, over TCP on loopback only
  if ! as_root grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    as_root sed -i -E 's/^(local|host)(\s.*)\s(peer|md5|scram-sha-256)$/\1\2 trust/' "$hba"
    as_root grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba" ||
      echo "host all all 127.0.0.1/32 trust" | as_root tee -a "$hba" >/dev/null
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL pg_up
fi
psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1" >/dev/null ||
  { echo "PostgreSQL answers but refuses user postgres without a password" >&2; exit 1; }

# -- Redis
if redis_up; then
  echo "Redis is up"
else
  if ! command -v redis-server >/dev/null; then
    echo "installing Redis"
    install redis-server
  fi
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis_up
fi
