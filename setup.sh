#!/usr/bin/env bash
# Sets up everything a fresh Debian 12 machine needs: the server packages (as root), the
# virtualenv with the harness installed, and the clock shim. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

# chromium: the browser test opens reports and the serve index in headless Chromium
PKGS="redis-server etcd-server zookeeper libslf4j-java postgresql mariadb-server iptables iproute2 gcc python3-venv chromium"
# The Docker runtime: the harness starts its own dockerd (in a namespace it makes), never the
# package's service; images are built with debootstrap; docker-compose validates the compose file.
PKGS="$PKGS docker.io debootstrap docker-compose"
# Redis Sentinel (the redis-failover backend) and PgBouncer (the postgres backends' pooler=...):
# the harness starts its own, by pid, never the packages' services.
PKGS="$PKGS redis-sentinel pgbouncer"
# fuse3: the lose_unsynced kill keeps a server's data on the harness's own FUSE filesystem
PKGS="$PKGS fuse3"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # policy-rc.d keeps the packages' own services from starting: the harness starts its own.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null
    rm -f /usr/sbin/policy-rc.d
    # A docker.io service started anyway (no policy-rc.d honoured) would rewrite the host's
    # iptables: say so loudly rather than run tests on a changed host.
    if command -v iptables >/dev/null && iptables -S 2>/dev/null | grep -q -- '-N DOCKER'; then
      echo "setup: a Docker service changed the host's iptables (DOCKER chains); stop it" >&2
      exit 1
    fi
  else
    echo "setup: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import harness, checkers, backends, reports, workloads" \
  || { echo "setup: the install failed" >&2; exit 1; }
# The Node.js adapters' libraries (adapters/node: node-redlock, node-redis-semaphore), from the
# npm registry at the versions of the committed package-lock.json; skipped when already there.
if command -v npm >/dev/null; then
  if ! cmp -s adapters/node/package-lock.json adapters/node/node_modules/.installed-lock; then
    (cd adapters/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null \
      && cp package-lock.json node_modules/.installed-lock) \
      || { echo "setup: npm ci in adapters/node failed" >&2; exit 1; }
  fi
else
  echo "setup: no npm: the node-* backends (adapters/node) will not run" >&2
fi
echo "setup: ready (.venv/bin/harness)"
