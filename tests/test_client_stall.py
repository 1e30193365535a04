"""The client-stall nemesis: a stalled main thread starves the process's other threads (how=gil)
or does not (how=spin), and python-redis-lock's renewal thread cannot save a holder whose main
thread keeps the GIL past the lock's expiry (python-redis-lock #91), on a real redis-server."""

from __future__ import annotations

import os
import threading
import time

from checkers.history import read
from harness.nemesis import client_stall
from harness.run import run_test
from harness.run.config import run_config
from harness.run.workers import context

from .conftest import harness


def _thread_runs_during_stall(how: int, ms: int) -> int:
    """In a forked worker with the handler installed: how many times a background thread ticks
    (every 1 ms) while the main thread is stalled for ``ms``."""
    mp = context()
    client_stall._shared = mp.RawArray("q", 3)
    ticks = mp.RawValue("q", -1)
    ready = mp.Event()

    def worker() -> None:
        client_stall.install()
        n = [0]

        def tick() -> None:
            for _ in range(100_000):  # bounded: 100 s at most
                n[0] += 1
                time.sleep(0.001)

        threading.Thread(target=tick, daemon=True).start()
        ready.set()
        time.sleep(0.2)  # the thread is ticking
        before = n[0]
        os.kill(os.getpid(), client_stall.SIGNAL)  # the handler stalls this main thread
        ticks.value = n[0] - before

    try:
        client_stall._shared[0], client_stall._shared[1] = ms, how
        p = mp.Process(target=worker, daemon=True)
        p.start()
        assert ready.wait(30)
        p.join(30)
        assert p.exitcode == 0 and ticks.value >= 0
        assert client_stall._shared[2] >= ms * 1000
        return ticks.value
    finally:
        client_stall._shared = None


def test_gil_stall_starves_other_threads_and_spin_does_not():
    assert _thread_runs_during_stall(client_stall.HOW.index("gil"), 600) <= 2
    assert _thread_runs_during_stall(client_stall.HOW.index("spin"), 600) >= 20


def _run(tmp_path, how: str):
    cfg = run_config(
        backend="python-redis-lock",
        backend_opts={"auto_renewal": "true"},
        nemesis=["client-stall"],
        nemesis_opts={"stall_ms": "3000", "how": how},
        nemesis_interval=0.5,
        time_limit=5,
        ttl_ms=1000,
        hold_ms=50,
        concurrency=3,
        keys=1,
        store=tmp_path / how,
        seed=3,
        render_report=False,
    )
    res = run_test(cfg)
    ops = read(res.run_dir / "history.jsonl").ops
    start = next(o for o in ops if o.f == "start-client-stall" and o.type == "info")
    stop = next(o for o in ops if o.f == "stop-client-stall" and o.type == "info")
    assert start.value["how"] == how and stop.value["stalled_ms"] >= 3000
    return res


def test_renewal_thread_starves_under_a_gil_stall(redis_bin, tmp_path):
    """auto_renewal's thread is alive, but a main thread holding the GIL past the 1 s expiry
    leaves it no turn: the lock expires, another client takes it. The spin control, where
    CPython still switches threads, keeps the lease renewed."""
    assert _run(tmp_path, "gil").exit_code == 1
    assert _run(tmp_path, "spin").exit_code == 0


def test_bad_how_is_one_line():
    p = harness("run", "-b", "redis", "-n", "client-stall", "--nemesis-opt", "how=fast")
    assert p.returncode == 2, p.stderr
    assert (
        "how='fast' is not accepted: give gil or spin" in p.stderr and "Traceback" not in p.stderr
    )
