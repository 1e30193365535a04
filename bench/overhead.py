"""The harness's own overhead: lock cycles/s and acquire p50 through the harness versus a bare
loop making the same redis calls, side by side in one run.

    .venv/bin/python bench/overhead.py [--clients 10] [--seconds 5] [--rounds 3]

A lock cycle is acquire then release with no hold (the mutex workload with ``--hold 0``). Both
sides do exactly the same work against redis: 10 clients (the bare side forks one process
each; the harness lays them out its own way, pooled as threads in up to 4 worker processes a
core), each with the redis backend's own client (``backends.redis.RedisClient``), each cycle
picking one of 1,000 keys at random (the harness's key names, "0".."999"; two clients rarely
want the same key, so the figures measure the call path, not waiting), then
``acquire(key, ttl 3000, wait 500)`` and ``release(lease)``. That is 2 round trips per cycle on
both sides: EVALSHA of the acquire script (SET NX PX + INCR) and EVALSHA of the release script
(GET + DEL). Counted with MONITOR (printed by every run; 10 clients, 1 s a side, load average
4.7, main at 058af97): bare 2.009 a cycle over 1,013 cycles, harness 2.006 over 3,110. The rest
is the first EVALSHA's NOSCRIPT miss and SCRIPT LOAD on a fresh server, the rare re-poll of a
key another client holds (the backend's own back-off, on both sides alike) and, on the harness
side only, its readiness probe's PING and INFO once a run. Each side's server is a redis-server
with the backend's default persistence (``always``) on the host's loopback (the harness runs
with ``netns="off"`` so that it does). What the harness adds is everything else in its workers:
recording each op to the history, the client status array, the in-memory protected write.

Before the timed rounds, one short counting pass per side watches the server with MONITOR and
prints the commands per cycle it saw, by command (and by script for EVALSHA), so the claim above
is measured on every run. Rounds alternate bare and harness so machine noise hits both; medians
are printed, with the CPU time of the client processes and their redis-server per cycle
(getrusage of the reaped children on the harness side, which includes its run's redis-server;
on the bare side the workers' getrusage plus the live server's /proc CPU time). The machine's
load and cores are printed at the start and at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import random
import re
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.base import Endpoint, NotAcquired  # noqa: E402
from backends.redis import ACQUIRE, DEFAULT_PERSISTENCE, RELEASE, RENEW, RedisClient  # noqa: E402
from bench.machine import print_load  # noqa: E402
from harness.run import run_test  # noqa: E402
from harness.run.config import run_config  # noqa: E402
from harness.runtime import LocalRuntime  # noqa: E402
from harness.runtime.lifeline import descendants  # noqa: E402
from workloads.base import KeyNames  # noqa: E402

KEYS = 1000
TTL_MS, WAIT_MS = 3000, 500  # the mutex workload's defaults
SCRIPTS = {hashlib.sha1(s.encode()).hexdigest(): n for n, s in (("acquire script", ACQUIRE),
           ("release script", RELEASE), ("renew script", RENEW))}  # fmt: skip
MONITOR_LINE = re.compile(rb'^\+\d+\.\d+ \[\d+ ([^\]]*)\] "([^"]+)"(?: "([^"]*)")?')


def _bare_worker(ep: Endpoint, seed: int, seconds: float, q) -> None:
    c = RedisClient(ep, 1000)
    rng, keys = random.Random(seed), KeyNames(KEYS)
    lat: list[int] = []
    cycles = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        key = keys[rng.randrange(KEYS)]
        t = time.monotonic_ns()
        try:
            lease = c.acquire(key, TTL_MS, WAIT_MS)
        except NotAcquired:  # held by another client for the whole wait: as a refused acquire
            continue
        lat.append(time.monotonic_ns() - t)
        c.release(lease)
        cycles += 1
    c.close()
    q.put((cycles, statistics.median(lat) if lat else 0.0))


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _proc_cpu(pid: int) -> float:
    """A live process's user + system CPU seconds (its own, not its children's)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare(ep: Endpoint, server_pid: int, clients: int, seconds: float) -> tuple[float, ...]:
    ctx = mp.get_context("fork")
    cpu = _child_cpu() + _proc_cpu(server_pid)
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_bare_worker, args=(ep, 1000 + i, seconds, q)) for i in range(clients)
    ]
    for p in procs:
        p.start()
    got = [q.get(timeout=seconds + 30) for _ in procs]
    for p in procs:
        p.join()
    cycles = sum(c for c, _ in got)
    cpu_us = (_child_cpu() + _proc_cpu(server_pid) - cpu) / max(cycles, 1) * 1e6
    return cycles / seconds, statistics.median(m for _, m in got) / 1e6, cpu_us, cycles


def through_harness(store: Path, clients: int, seconds: float) -> tuple[float, ...]:
    cfg = run_config(
        backend="redis",
        concurrency=clients,
        keys=KEYS,  # clients pick keys at random: with 1,000 two rarely want the same one
        time_limit=seconds,
        hold_ms=0,
        ttl_ms=TTL_MS,
        wait_ms=WAIT_MS,
        store=store,
        render_report=False,
        netns="off",  # the host's loopback, as the bare loop's (and MONITOR can reach it)
        seed=1,
    )
    cpu = _child_cpu()
    res = run_test(cfg)
    perf = res.results["checkers"]["perf"]
    releases = perf["counts"]["release"]["ok"]
    cpu_us = (_child_cpu() - cpu) / max(releases, 1) * 1e6  # workers + the run's redis-server
    return releases / seconds, perf["acquire_latency_ms"]["ok"]["p50"], cpu_us, releases


def _find_server(root: int, skip: tuple[str, int], deadline: float, halt) -> tuple[str, int] | None:
    """The address of a redis-server below ``root`` other than ``skip``: the one the harness's
    run starts, found as it starts."""
    while time.monotonic() < deadline and not halt.is_set():
        for pid in descendants(root):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if argv[0].endswith("redis-server") and "--port" in argv and "--bind" in argv:
                addr = (argv[argv.index("--bind") + 1], int(argv[argv.index("--port") + 1]))
                if addr != skip:
                    return addr
        time.sleep(0.002)
    return None


def _monitor(addr, skip, root: int, limit_s: float, halt, ready, q) -> None:
    """In a process of its own (so it keeps up): count the commands clients send a
    redis-server (MONITOR; commands a script runs are not round trips and are left out), by
    name and, for EVALSHA, by script, until the server closes the connection, ``halt`` is set
    or ``limit_s`` passes. With ``addr`` None, the harness's server is watched once it starts."""
    deadline = time.monotonic() + limit_s
    counts: Counter[str] = Counter()
    error = None
    try:
        addr = addr or _find_server(root, skip, deadline, halt)
        s = None
        while addr and s is None and time.monotonic() < deadline:
            try:
                s = socket.create_connection(addr, timeout=0.2)
                s.sendall(b"MONITOR\r\n")
            except OSError:  # found before it listens
                s = None
                time.sleep(0.002)
        ready.set()
        if s is None:
            raise OSError("no redis-server to watch")
        buf = b""
        with s:
            while time.monotonic() < deadline and not halt.is_set():
                try:
                    chunk = s.recv(1 << 16)
                except TimeoutError:
                    continue
                if not chunk:  # the server stopped
                    break
                buf += chunk
                *lines, buf = buf.split(b"\r\n")
                for ln in lines:
                    m = MONITOR_LINE.match(ln)
                    if m and m.group(1) != b"lua":  # not the +OK, not a script's own calls
                        name, arg = m.group(2).decode().lower(), (m.group(3) or b"").decode()
                        counts[SCRIPTS.get(arg, "evalsha ?") if name == "evalsha" else name] += 1
    except OSError as e:
        error = str(e)
    finally:
        ready.set()
        q.put((counts, error))


class Monitor:
    """A ``_monitor`` process: ``start()``, run the side, then ``result()``."""

    def __init__(self, addr: tuple[str, int] | None, skip: tuple[str, int], limit_s: float):
        ctx = mp.get_context("fork")
        self.halt, self.ready, self.q = ctx.Event(), ctx.Event(), ctx.Queue()
        args = (addr, skip, os.getpid(), limit_s, self.halt, self.ready, self.q)
        self.proc = ctx.Process(target=_monitor, args=args, daemon=True)
        self.limit_s = limit_s

    def start(self) -> Monitor:
        self.proc.start()
        return self

    def result(self, halt: bool) -> tuple[Counter[str], str | None]:
        """What it counted; ``halt``: stop now (else at the end of the server's stream)."""
        if halt:
            self.halt.set()
        got = self.q.get(timeout=self.limit_s + 10)
        self.proc.join(10)
        return got


def per_cycle(counts: Counter[str]) -> str:
    """Commands per cycle (per release-script call), the lock scripts first."""
    cycles = counts["release script"]
    if not cycles:
        return "no cycle seen"
    total = sum(counts.values())
    parts = [f"{n} {c / cycles:.3f}" for n, c in counts.most_common()]
    return f"{total / cycles:.3f} round trips/cycle over {cycles} cycles = " + " + ".join(parts)


def count_calls(ep: Endpoint, server_pid: int, store: Path, clients: int, seconds: float) -> None:
    """One short pass per side with MONITOR attached (slower: not timed), printing what each
    cycle cost in round trips."""
    mon = Monitor((ep.host, ep.port), (ep.host, ep.port), seconds + 60).start()
    mon.ready.wait(10)
    bare(ep, server_pid, clients, seconds)
    time.sleep(0.5)  # the last replies' MONITOR lines
    counts, error = mon.result(halt=True)
    print(f"round trips, bare:    {error or per_cycle(counts)}", flush=True)
    mon = Monitor(None, (ep.host, ep.port), seconds + 120).start()
    t = time.monotonic()
    through_harness(store, clients, seconds)
    took = time.monotonic() - t
    # its server has stopped, so the stream ends; never attached: stop looking
    counts, error = mon.result(halt=not mon.ready.is_set())
    error = error and f"{error} (the run took {took:.1f} s)"
    print(f"round trips, harness: {error or per_cycle(counts)}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0, help="per side and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count-seconds", type=float, default=1.0, help="the MONITOR pass per side")
    a = ap.parse_args()
    if not (1 <= a.clients <= 256 and 0 < a.seconds <= 600 and 1 <= a.rounds <= 20):
        print("error: need 1 <= --clients <= 256, 0 < --seconds <= 600, 1 <= --rounds <= 20")
        return 2
    if not 0 < a.count_seconds <= 60:
        print("error: need 0 < --count-seconds <= 60")
        return 2
    print_load("overhead")
    rows: dict[str, list[tuple[float, ...]]] = {"bare": [], "harness": []}
    with tempfile.TemporaryDirectory() as tmp, LocalRuntime(Path(tmp)) as rt:
        node = rt.start("redis", 1, {"persistence": DEFAULT_PERSISTENCE}).nodes[0]
        ep = Endpoint(node.name, node.host, node.port)
        pid = node.proc.pid
        store = Path(tmp) / "store"
        count_calls(ep, pid, store, a.clients, a.count_seconds)
        for r in range(a.rounds):
            rows["bare"].append(bare(ep, pid, a.clients, a.seconds))
            rows["harness"].append(through_harness(store, a.clients, a.seconds))
            b, h = rows["bare"][-1], rows["harness"][-1]
            print(
                f"round {r + 1}: bare {b[0]:.0f} cycles/s p50 {b[1]:.3f} ms {b[2]:.0f} us "
                f"CPU/cycle | harness {h[0]:.0f} cycles/s p50 {h[1]:.3f} ms {h[2]:.0f} us "
                f"CPU/cycle",
                flush=True,
            )
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
    print(f"\n{a.clients} clients, {a.seconds:g} s x {a.rounds} rounds, medians:")
    print(f"{'':10}{'cycles/s':>12}{'acquire p50 ms':>16}{'CPU us/cycle':>14}")
    for k, (c, p, u) in med.items():
        print(f"{k:10}{c:12.0f}{p:16.3f}{u:14.0f}")
    print(
        f"harness/bare: throughput {med['harness'][0] / med['bare'][0]:.2f}x, "
        f"p50 {med['harness'][1] / med['bare'][1]:.2f}x, "
        f"CPU per cycle {med['harness'][2] / med['bare'][2]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
