"""The harness's own overhead: lock cycles/s and acquire p50 through the harness versus a bare
redis-py loop making the same EVAL calls, side by side in one run on one redis-server.

    .venv/bin/python bench/overhead.py [--clients 10] [--seconds 5] [--rounds 3]

A lock cycle is acquire (the backend's SET NX PX + INCR script) then release (compare-and-
delete), with no hold. Both sides use 10 worker processes and 10 keys (one key per client, so
the lock is never contended and the figures measure the call path, not waiting). Rounds
alternate bare and harness so machine noise hits both; medians are printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from backends.base import Endpoint
from backends.redis import RedisClient
from harness.config import RunConfig
from harness.run import run_test
from harness.runtime import LocalRuntime


def _bare_worker(ep: Endpoint, key: str, seconds: float, q) -> None:
    c = RedisClient(ep, 1000)
    lat: list[int] = []
    cycles = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic_ns()
        fence = c._acquire(keys=[f"lock:{key}", f"fence:{key}"], args=[uuid.uuid4().hex, 3000])
        lat.append(time.monotonic_ns() - t)
        assert fence is not None
        c._release(keys=[f"lock:{key}"], args=["x"])  # same script, same round trip
        c.r.delete(f"lock:{key}")
        cycles += 1
    q.put((cycles, statistics.median(lat)))


def bare(ep: Endpoint, clients: int, seconds: float) -> tuple[float, float]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_bare_worker, args=(ep, f"b{i}", seconds, q))
             for i in range(clients)]
    for p in procs:
        p.start()
    got = [q.get(timeout=seconds + 30) for _ in procs]
    for p in procs:
        p.join()
    return sum(c for c, _ in got) / seconds, statistics.median(m for _, m in got) / 1e6


def through_harness(store: Path, clients: int, seconds: float) -> tuple[float, float]:
    cfg = RunConfig(backend="redis", concurrency=clients, keys=clients, time_limit=seconds,
                    hold_ms=0, store=store, render_report=False, seed=1)
    res = run_test(cfg)
    perf = res.results["checkers"]["perf"]
    releases = perf["counts"]["release"]["ok"]
    return releases / seconds, perf["acquire_latency_ms"]["ok"]["p50"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"bare": [], "harness": []}
    with tempfile.TemporaryDirectory() as tmp, LocalRuntime(Path(tmp)) as rt:
        node = rt.start("redis", 1).nodes[0]
        ep = Endpoint(node.name, node.host, node.port)
        for r in range(a.rounds):
            rows["bare"].append(bare(ep, a.clients, a.seconds))
            rows["harness"].append(through_harness(Path(tmp) / "store", a.clients, a.seconds))
            print(f"round {r + 1}: bare {rows['bare'][-1][0]:.0f} cycles/s "
                  f"p50 {rows['bare'][-1][1]:.3f} ms | harness {rows['harness'][-1][0]:.0f} "
                  f"cycles/s p50 {rows['harness'][-1][1]:.3f} ms", flush=True)
    med = {k: (statistics.median(c for c, _ in v), statistics.median(p for _, p in v))
           for k, v in rows.items()}
    print(f"\n{a.clients} clients, {a.seconds:g} s x {a.rounds} rounds, medians:")
    print(f"{'':10}{'cycles/s':>12}{'acquire p50 ms':>16}")
    for k, (c, p) in med.items():
        print(f"{k:10}{c:12.0f}{p:16.3f}")
    print(f"harness/bare: throughput {med['harness'][0] / med['bare'][0]:.2f}x, "
          f"p50 {med['harness'][1] / med['bare'][1]:.2f}x")


if __name__ == "__main__":
    main()
