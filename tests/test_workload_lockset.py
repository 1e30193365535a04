"""The lock-set workload end to end on real servers: valid without faults on the locks that
hold, and the damage a paused holder does to a real store, shown by the set checker's counts.

- redis + client-pause, write=plain: the frozen holder wakes and writes back the set it read
  before the pause, dropping what others added meanwhile (lost updates);
- the same with write=fenced: the store refuses the stale writer's older token; nothing is lost;
- etcd + client-pause, write=guarded: the write is conditional on the holder's lock key still
  existing; its lease expired during the pause, so the write is refused; nothing is lost;
- unsafe-redis loses updates without any fault (two clients hold the lock at once);
- impossible combinations are refused in one line before any server starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkers import fencing
from checkers.history import Op
from harness.run import RunResult, run_test
from harness.run.config import run_config

from .conftest import harness

# A holder frozen for 2 x TTL while it holds the only key, about once a second; the critical
# section (read ... write) is most of the hold, so the pause lands between read and write.
PAUSED_HOLDER = dict(
    nemesis=["client-pause"],
    nemesis_interval=1.0,
    time_limit=5,
    keys=1,
    concurrency=3,
    hold_ms=100,
    wait_ms=3000,
)


def _run(tmp_path: Path, backend: str, **kw) -> RunResult:
    base = dict(
        backend=backend,
        workload="lock-set",
        store=tmp_path,
        seed=7,
        render_report=False,
    )
    return run_test(run_config(**(base | kw)))


def _set(res: RunResult) -> dict:
    return res.results["checkers"]["set"]


def _history(res: RunResult) -> list[dict]:
    return [json.loads(ln) for ln in (res.run_dir / "history.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backend", ["redis", "etcd", "zookeeper", "postgres-lease"])
def test_valid_without_faults_on_the_locks_own_store(tmp_path: Path, backend: str) -> None:
    res = _run(tmp_path, backend, time_limit=2.5)
    s = _set(res)
    assert res.valid is True and res.exit_code == 0, res.results["summary"]
    assert s["acknowledged_count"] >= 10 and s["lost_count"] == 0, s["summary"]
    assert res.results["checkers"]["mutex"]["valid"] is True
    reads = [op for op in _history(res) if op["f"] == "read"]
    assert [op["type"] for op in reads] == ["invoke", "ok", "invoke", "ok"]  # one per key
    assert json.loads((res.run_dir / "config.json").read_text())["workload_opts"]["store"] == (
        "lock"
    )


def test_redis_client_pause_plain_write_loses_updates(tmp_path: Path) -> None:
    res = _run(tmp_path, "redis", ttl_ms=300, write="plain", **PAUSED_HOLDER)
    s = _set(res)
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    assert s["lost_count"] >= 1, s["summary"]
    assert res.results["checkers"]["fencing"]["stale_accepted"] >= 1
    ops = _history(res)
    healed = max(op["time"] for op in ops if op["f"] == "stop-client-pause")
    reads = [op for op in ops if op["f"] == "read"]
    assert reads and all(op["time"] > healed for op in reads)  # the final read came after


def test_memory_store_client_pause_loses_updates(tmp_path: Path) -> None:
    """Jepsen's own lock-set: the set kept in the harness, the same damage."""
    res = run_test(
        run_config(
            backend="redis",
            workload="lock-set",
            store=tmp_path,
            seed=7,
            render_report=False,
            ttl_ms=300,
            workload_opts={"store": "memory"},
            **PAUSED_HOLDER,
        )
    )
    assert _set(res)["lost_count"] >= 1, _set(res)["summary"]
    config = json.loads((res.run_dir / "config.json").read_text())
    assert config["workload_opts"]["store"] == "memory"
    assert {s["role"] for s in config["servers"]} == {"lock"}  # no store server started


def test_redis_client_pause_fenced_write_loses_nothing(tmp_path: Path) -> None:
    res = _run(tmp_path, "redis", ttl_ms=300, write="fenced", **PAUSED_HOLDER)
    s, f = _set(res), res.results["checkers"]["fencing"]
    assert s["valid"] is True and s["lost_count"] == 0, s["summary"]
    # the pause did strike: the stale writer came back, and the store turned it away
    assert f["stale_rejected"] >= 1 and f["stale_accepted"] == 0, f["summary"]
    assert f["enforced"] is True and f["valid"] is True


def test_etcd_client_pause_guarded_write_loses_nothing(tmp_path: Path) -> None:
    # A rotating pause may land after the holder's write (then only its release is refused):
    # here the holder is frozen 30 ms into its hold, between its read and its write, past its TTL.
    pause = {"kind": "client-pause", "start": {"after": "acquire", "delay_ms": 30},
             "target": "trigger", "duration_s": 2.5}  # fmt: skip
    opts = {**PAUSED_HOLDER, "nemesis": [], "schedule": [pause]}
    res = _run(tmp_path, "etcd", ttl_ms=1000, write="guarded", **opts)
    s = _set(res)
    assert s["valid"] is True and s["lost_count"] == 0, s["summary"]
    refused = [
        op
        for op in _history(res)
        if op["f"] == "add" and op["type"] == "fail" and op.get("error", "").startswith("NotHeld")
    ]
    assert refused, "no guarded write was refused: the pause never outlived the lease"


def test_unsafe_redis_loses_updates_without_faults(tmp_path: Path) -> None:
    res = _run(tmp_path, "unsafe-redis", time_limit=3, concurrency=8)
    s = _set(res)
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    assert s["lost_count"] >= 1, s["summary"]


def test_separate_postgres_store_for_a_redis_lock(tmp_path: Path) -> None:
    res = run_test(
        run_config(
            backend="redis",
            workload="lock-set",
            store=tmp_path,
            time_limit=2,
            render_report=False,
            workload_opts={"store": "postgres", "write": "fenced"},
        )
    )
    assert res.valid is True, res.results["summary"]
    servers = json.loads((res.run_dir / "config.json").read_text())["servers"]
    assert {(s["kind"], s["role"]) for s in servers} == {("redis", "lock"), ("postgres", "store")}
    assert _set(res)["acknowledged_count"] >= 10


@pytest.mark.parametrize(
    ("backend", "opts", "says"),
    [
        ("redlock", ["write=fenced"], "needs fence tokens"),
        ("redlock", ["store=lock"], "has no cluster here"),
        ("redis", ["write=guarded", "store=postgres"], "can check the lock only"),
        ("etcd", ["store=etcd"], "give one of auto, lock, memory, redis, postgres"),
    ],
)
def test_impossible_combinations_are_one_line_before_anything_starts(
    tmp_path: Path, backend: str, opts: list[str], says: str
) -> None:
    wopts = [a for o in opts for a in ("--workload-opt", o)]
    r = harness(
        "run", "--backend", backend, "--workload", "lock-set", *wopts, "--store", str(tmp_path)
    )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr, lines
    assert not any(tmp_path.iterdir())  # no run directory: nothing started


def test_fencing_checker_judges_an_add_by_its_holds_fence() -> None:
    """A lock-set add is the write of its hold: stale when another process was granted the
    key after the writer's own grant, rejected when its error starts with "stale fence"."""

    def op(i: int, p: int, t: str, f: str, v=None, err=None) -> Op:
        return Op(i, i * 1_000_000, p, t, f, "k", v, err)

    ops = [
        op(0, 1, "invoke", "acquire"),
        op(1, 1, "ok", "acquire", 5),
        op(2, 2, "invoke", "acquire"),
        op(3, 2, "ok", "acquire", 6),  # process 1's lease expired while it was paused
        op(4, 2, "invoke", "add", 20),
        op(5, 2, "ok", "add", 20),
        op(6, 2, "invoke", "release", 6),
        op(7, 2, "ok", "release", 6),
        op(8, 1, "invoke", "add", 10),  # process 1 wakes and writes under fence 5
        op(9, 1, "fail", "add", 10, "stale fence token 5 < 6"),
        op(10, 1, "invoke", "release", 5),
        op(11, 1, "fail", "release", 5, "NotOwner"),
    ]
    r = fencing.check(ops, enforced=True)
    assert r["writes"] == 2 and r["stale_rejected"] == 1 and r["stale_accepted"] == 0
    assert r["stale_examples"][0]["fence"] == 5 and r["stale_examples"][0]["reason"] == "revoked"
    ops[9] = op(9, 1, "ok", "add", 10)
    r = fencing.check(ops, enforced=True)
    assert r["stale_accepted"] == 1 and r["valid"] is False
