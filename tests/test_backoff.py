"""Clients back off after failures (``workloads.base.Backoff``): bounded exponential backoff with
equal jitter from the client's seeded RNG, the same for every workload and backend, set with
``harness run --backoff`` and recorded in config.json. A pause only paces attempts: it is taken
before a turn, never while a client holds a lock."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from backends.base import Endpoint, LockFailed, NotAcquired
from backends.etcd import EtcdBackend
from harness.run.config import RunConfig, backoff_of, parse_backoff
from harness.run.recorder import Recorder
from workloads.base import RETRY_PAUSE, STATUS_FIELDS, Backoff, ClientContext
from workloads.mutex import MutexWorkload

from .conftest import harness, need_server


@dataclass
class Params:
    backoff_ms: tuple[int, int]
    concurrency: int = 1
    keys: int = 1
    rate: float = 0.0
    seed: int | None = 7
    time_limit: float = 10.0


class Never:
    def is_set(self) -> bool:
        return False


def _ctx(tmp_path: Path, backoff_ms: tuple[int, int], seconds: float, backend=None):
    fd = os.open(tmp_path / "history.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ctx = ClientContext(
        index=0, cfg=Params(backoff_ms), backend=backend, endpoints=[Endpoint("n1", "127.0.0.1", 9)],
        recorder=Recorder(fd, time.monotonic_ns(), buffered=True), shared=None, stop=Never(),
        status=[0] * STATUS_FIELDS, deadline=time.monotonic() + seconds, max_ops=100_000,
    )  # fmt: skip
    return ctx, fd


def _ops(tmp_path: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]


def test_pauses_double_to_the_cap_within_equal_jitter_and_a_success_resets() -> None:
    b = Backoff(10, 1000, random.Random(1))
    steps = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0, 1.0]
    pauses = [b.failed(100.0, unknown=False) for _ in steps]
    for p, s in zip(pauses, steps, strict=True):
        assert s / 2 <= p <= s
    assert len(set(pauses)) == len(pauses)  # jittered
    assert b.left(100.0) == pytest.approx(max(pauses))  # all at one moment: the longest
    b.succeeded()
    assert b.left(100.0) == 0 and 0.005 <= b.failed(200.0, unknown=True) <= 0.01
    again = Backoff(10, 1000, random.Random(1))
    assert [again.failed(0.0, unknown=False) for _ in steps] == pauses  # seeded: reproducible


def test_disabled_backoff_keeps_the_old_fixed_pause() -> None:
    b = Backoff(0, 0, random.Random(1))
    assert b.failed(5.0, unknown=False) == 0  # a refusal: at once, as before
    assert b.failed(5.0, unknown=True) == RETRY_PAUSE  # unknown or no connection: 50 ms


def test_a_hot_failure_loop_is_paced_by_the_backoff(tmp_path: Path) -> None:
    """The issue's case: every acquire fails at once (nothing listens on the port: etcd's lease
    grant is refused, a certain failure). Without backoff the mutex client asks thousands of
    times a second; with it, a handful."""
    backend = EtcdBackend({"timeout_ms": "200"})
    counts = {}
    for backoff in ((10, 1000), (0, 0)):
        d = tmp_path / str(backoff[0])
        d.mkdir()
        ctx, fd = _ctx(d, backoff, 2.0, backend)
        try:
            MutexWorkload().run_client(ctx)
        finally:
            os.close(fd)
        ops = _ops(d)
        fails = [o for o in ops if o["f"] == "acquire" and o["type"] == "fail"]
        assert fails and all("lease grant failed" in o["error"] for o in fails)
        assert not [o for o in ops if o["f"] == "acquire" and o["type"] == "ok"]
        counts[backoff] = len(fails)
        if backoff[0]:  # each pause at least half its step: 5+10+20+...+320 ms, then >= 500 ms
            gaps = [(b["time"] - a["time"]) / 1e6 for a, b in zip(fails, fails[1:], strict=False)]
            for i, gap in enumerate(gaps):
                assert gap >= min(1000, 10 * 2**i) / 2, (i, gaps)
    # 2 s: at most 7 pauses to reach the cap (0.635 s), then one every >= 0.5 s
    assert counts[(10, 1000)] <= 11, counts
    assert counts[(0, 0)] >= 100, counts  # a loaded machine still makes hundreds


def test_a_refusal_of_a_held_lock_is_no_failure_and_a_grant_resets(tmp_path: Path) -> None:
    ctx, fd = _ctx(tmp_path, (100, 1000), 5.0)
    try:

        def held() -> None:
            raise NotAcquired("lock 'k' still held after 0 ms")

        def refused() -> None:
            raise LockFailed("lease grant failed: connection refused")

        ctx.call("acquire", "k", held)  # the lock service answered: the lock is in use
        assert ctx.backoff.failures == 0 and ctx.backoff.left(time.monotonic()) == 0
        ctx.call("acquire", "k", refused)
        ctx.call("acquire", "k", refused)
        assert ctx.backoff.failures == 2 and ctx.backoff.left(time.monotonic()) > 0.05
        until = ctx.backoff.until
        next(iter(ctx.turns()))  # the next turn waits the pause out
        assert time.monotonic() >= until
        ctx.call("acquire", "k", lambda: None)
        assert ctx.backoff.failures == 0 and ctx.backoff.left(time.monotonic()) == 0
        ctx.not_sent("connect", None, "ConnectionRefusedError")  # no connection: a failure
        assert ctx.backoff.failures == 1
    finally:
        os.close(fd)


def test_the_option_is_validated_and_old_runs_read_as_none() -> None:
    assert parse_backoff("10,1000") == (10, 1000)
    assert parse_backoff(" 5 , 5 ") == (5, 5)
    assert parse_backoff("0") == (0, 0)
    for bad in ("", "x", "10", "5,2", "0,10", "-1,5", "1,60001", "1.5,10", "1,2,3"):
        with pytest.raises(ValueError, match="--backoff is BASE_MS,MAX_MS"):
            parse_backoff(bad)
    with pytest.raises(ValueError, match="--backoff"):
        RunConfig(backoff_ms=(3, 1)).validate()
    assert RunConfig().backoff_ms == (10, 1000)
    assert backoff_of({}) is None  # a run from before backoff: clients retried at once
    assert backoff_of({"backoff_ms": [0, 0]}) is None
    assert backoff_of({"backoff_ms": [10, 1000]}) == (10, 1000)
    assert backoff_of({"backoff_ms": "fast"}) is None


@pytest.mark.parametrize("value", ["5,2", "ten", "0,0,0"])
def test_a_bad_backoff_is_one_line_and_exit_2(value: str, tmp_path: Path) -> None:
    got = harness("run", "--backend", "redis", "--backoff", value, "--store", str(tmp_path))
    assert got.returncode == 2
    assert got.stderr.strip().count("\n") == 0 and "--backoff is BASE_MS,MAX_MS" in got.stderr
    assert "Traceback" not in got.stderr and not list(tmp_path.iterdir())


def test_a_real_run_records_its_backoff_and_its_availability_in_time(store: Path) -> None:
    need_server("redis")
    got = harness(
        "run", "-b", "redis", "-n", "kill", "-t", "5", "--nemesis-interval", "1.5", "--seed",
        "3", "--backoff", "20,500", "--no-report", "--store", str(store),
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    run = store / "latest"
    assert json.loads((run / "config.json").read_text())["backoff_ms"] == [20, 500]
    results = json.loads((run / "results.json").read_text())
    av = results["availability"]
    assert av["backoff_ms"] == [20, 500] and av["keys"] == 2 and av["window_count"] >= 1
    w = av["windows"][0]
    assert w["fault"] == "kill" and w["available_share"] < 0.5  # the one server was down
    # a grant after the restart: a lease left by a killed holder lasts at most its TTL (3 s)
    assert w["heal_to_grant_s"] is not None and w["heal_to_grant_s"] < 5
    assert av["outside"]["available_share"] > w["available_share"]
    # 5 clients, each at most ~log2(500/20) + 2 per second of the window, a grant resetting it
    assert w["attempts"] <= 5 * (2 * 6 + 4 * w["seconds"]), w
