"""Cluster bring-up times through the local runtime (real servers on loopback).

    .venv/bin/python bench/bringup.py              # every cluster, median of 3
    .venv/bin/python bench/bringup.py --runs 5 etcd zookeeper

For each cluster: the time from ``LocalRuntime.start`` until the kind's readiness probe passes
(every node serving: etcd ``/health``, ZooKeeper ``srvr`` mode, PostgreSQL and MariaDB a query,
Redis PING), and the time ``close()`` takes to end every process. A MariaDB start includes
``mariadb-install-db`` of its fresh data dir. The first PostgreSQL start on a machine
also builds the initdb template (cached afterwards), so run this once before quoting figures.
The machine's load shows in the figures: etcd's first election, for one, waits on the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import print_load  # noqa: E402
from harness.runtime import LocalRuntime, MissingBinary  # noqa: E402

# label -> (server kind, nodes)
CLUSTERS: dict[str, tuple[str, int]] = {
    "redis": ("redis", 1),
    "redlock": ("redis", 5),
    "etcd": ("etcd", 3),
    "zookeeper": ("zookeeper", 3),
    "postgres": ("postgres", 1),
    "mariadb": ("mariadb", 1),
}


def measure(kind: str, nodes: int) -> tuple[float, float]:
    """(seconds to ready, seconds to close) for one fresh cluster."""
    with tempfile.TemporaryDirectory(prefix="bringup-") as d:
        rt = LocalRuntime(Path(d))
        try:
            t0 = time.monotonic()
            rt.start(kind, nodes)
            up = time.monotonic() - t0
        finally:
            t1 = time.monotonic()
            rt.close()
            down = time.monotonic() - t1
    return up, down


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("clusters", nargs="*", help=f"any of {', '.join(CLUSTERS)} (default: all)")
    ap.add_argument("--runs", type=int, default=3, help="runs per cluster (default 3)")
    args = ap.parse_args()
    unknown = [c for c in args.clusters if c not in CLUSTERS]
    if unknown:
        print(f"unknown cluster {', '.join(unknown)}; accepted: {', '.join(CLUSTERS)}")
        return 2
    if not 1 <= args.runs <= 20:
        print(f"--runs {args.runs} is not accepted: give 1..20")
        return 2
    print_load("bringup")
    print(f"{'cluster':<10} {'nodes':>5} {'ready (median)':>15} {'min':>7} {'max':>7} {'close':>7}")
    for label in args.clusters or list(CLUSTERS):
        kind, nodes = CLUSTERS[label]
        ups, downs = [], []
        try:
            for _ in range(args.runs):
                up, down = measure(kind, nodes)
                ups.append(up)
                downs.append(down)
        except MissingBinary as e:
            print(f"{label:<10} {nodes:>5}  skipped: {e}")
            continue
        print(
            f"{label:<10} {nodes:>5} {statistics.median(ups):>14.2f}s {min(ups):>6.2f}s "
            f"{max(ups):>6.2f}s {statistics.median(downs):>6.2f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
