"""The harness's own overhead: lock cycles/s and acquire p50 through the harness versus a bare
redis-py loop making the same EVAL calls, side by side in one run on one redis-server.

    .venv/bin/python bench/overhead.py [--clients 10] [--seconds 5] [--rounds 3]

A lock cycle is acquire (the backend's SET NX PX + INCR script) then release (compare-and-delete),
with no hold. Both sides use 10 worker processes; the bare loop gives each client its own key,
the harness picks among 1,000 keys at random, so the lock is almost never contended and the
figures measure the call path, not waiting. (The bare loop makes one more call per cycle, a DEL
after its release script.) Rounds alternate bare and harness so machine noise hits both;
medians are printed, with the CPU time the client processes spent per cycle (getrusage of
children; on the harness side it includes the run's own redis-server, which the bare side's
is not counted in).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from backends.base import Endpoint
from backends.redis import RedisClient
from harness.run import run_test
from harness.run.config import run_config
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


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bare(ep: Endpoint, clients: int, seconds: float) -> tuple[float, float, float]:
    ctx = mp.get_context("fork")
    cpu = _child_cpu()
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_bare_worker, args=(ep, f"b{i}", seconds, q)) for i in range(clients)
    ]
    for p in procs:
        p.start()
    got = [q.get(timeout=seconds + 30) for _ in procs]
    for p in procs:
        p.join()
    cycles = sum(c for c, _ in got)
    cpu_us = (_child_cpu() - cpu) / cycles * 1e6
    return cycles / seconds, statistics.median(m for _, m in got) / 1e6, cpu_us


def through_harness(store: Path, clients: int, seconds: float) -> tuple[float, float, float]:
    cfg = run_config(
        backend="redis",
        concurrency=clients,
        keys=1000,  # clients pick keys at random: with 1,000 two rarely want the same one
        time_limit=seconds,
        hold_ms=0,
        store=store,
        render_report=False,
        seed=1,
    )
    cpu = _child_cpu()
    res = run_test(cfg)
    perf = res.results["checkers"]["perf"]
    releases = perf["counts"]["release"]["ok"]
    cpu_us = (_child_cpu() - cpu) / releases * 1e6  # the worker processes' CPU per cycle
    return releases / seconds, perf["acquire_latency_ms"]["ok"]["p50"], cpu_us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    load = os.getloadavg()[0]
    rows: dict[str, list[tuple[float, float, float]]] = {"bare": [], "harness": []}
    with tempfile.TemporaryDirectory() as tmp, LocalRuntime(Path(tmp)) as rt:
        node = rt.start("redis", 1).nodes[0]
        ep = Endpoint(node.name, node.host, node.port)
        for r in range(a.rounds):
            rows["bare"].append(bare(ep, a.clients, a.seconds))
            rows["harness"].append(through_harness(Path(tmp) / "store", a.clients, a.seconds))
            b, h = rows["bare"][-1], rows["harness"][-1]
            print(
                f"round {r + 1}: bare {b[0]:.0f} cycles/s p50 {b[1]:.3f} ms {b[2]:.0f} us "
                f"CPU/cycle | harness {h[0]:.0f} cycles/s p50 {h[1]:.3f} ms {h[2]:.0f} us "
                f"CPU/cycle",
                flush=True,
            )
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
    print(
        f"\n{a.clients} clients, {a.seconds:g} s x {a.rounds} rounds, medians "
        f"(load average before: {load:.1f}):"
    )
    print(f"{'':10}{'cycles/s':>12}{'acquire p50 ms':>16}{'client CPU us/cycle':>22}")
    for k, (c, p, u) in med.items():
        print(f"{k:10}{c:12.0f}{p:16.3f}{u:22.0f}")
    print(
        f"harness/bare: throughput {med['harness'][0] / med['bare'][0]:.2f}x, "
        f"p50 {med['harness'][1] / med['bare'][1]:.2f}x, "
        f"CPU per cycle {med['harness'][2] / med['bare'][2]:.2f}x"
    )


if __name__ == "__main__":
    main()
