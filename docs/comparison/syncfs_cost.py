"""What the lose_unsynced filesystem costs (README, "What it finds"): bring-up time and one
client's acquire+release rate for 4 s, without and with the servers' data on syncfs, the two
interleaved so that the machine's load falls on both alike; medians of REPS runs (default 5).

    .venv/bin/python docs/comparison/syncfs_cost.py [REPS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from backends.base import Endpoint
from backends.registry import make
from harness.runtime import LocalRuntime

CASES = [
    ("redis", {"persistence": "everysec"}),
    ("redis", {"persistence": "always"}),
    ("postgres-lease", {"fsync": "on"}),
]


def once(
    backend: str, opts: dict[str, str], syncfs: bool, secs: float = 4.0
) -> tuple[float, float]:
    """(bring-up s, acquire+release per s) of one fresh server."""
    b = make(backend, opts)
    need = b.servers()
    with tempfile.TemporaryDirectory(prefix="lh-syncfs-cost-") as d:
        os.chmod(d, 0o755)  # PostgreSQL runs as its own user
        with LocalRuntime(Path(d), keep_data=False) as rt:
            rt.syncfs = syncfs
            t = time.monotonic()
            c = rt.start(need.kind, need.nodes, need.options)
            up = time.monotonic() - t
            eps = [Endpoint(n.name, n.host, n.port) for n in c.nodes]
            b.setup(eps)
            client = b.client(eps, 0)
            n, end = 0, time.monotonic() + secs
            while time.monotonic() < end:
                client.release(client.acquire("k", 2000, 1000))
                n += 1
            client.close()
            return up, n / secs


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for backend, opts in CASES:
        got: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(reps):
            for fs in (False, True):
                got[fs].append(once(backend, opts, fs))
        for fs, runs in got.items():
            up = statistics.median(r[0] for r in runs)
            rate = statistics.median(r[1] for r in runs)
            print(
                f"{backend} {opts} syncfs={fs}: bring-up {up:.2f} s, {rate:.0f} acquire+release/s "
                f"(median of {reps})",
                flush=True,
            )


if __name__ == "__main__":
    main()
