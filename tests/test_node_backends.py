"""The Node.js libraries from the npm registry, through the process adapter, on real
redis-servers: VALID without faults, INVALID with a story when a holder (its worker and its
adapter process) is paused past its lease."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkers.history import read

from .adapters import need_node
from .conftest import harness, need_server, pid_alive


def _run_dir(stdout: str) -> Path:
    line = next(x for x in stdout.splitlines() if x.startswith("run:"))
    return Path(line.split(None, 1)[1].strip())


def test_node_redlock_is_valid_without_faults(store: Path):
    need_server("redis")
    need_node()
    r = harness("run", "--backend", "node-redlock", "-t", "10", "--store", str(store))
    assert r.returncode == 0 and "verdict: VALID" in r.stdout, r.stdout + r.stderr
    run = _run_dir(r.stdout)
    config = json.loads((run / "config.json").read_text())
    assert len([s for s in config["servers"] if s.get("role", "lock") == "lock"]) == 5
    results = json.loads((run / "results.json").read_text())
    assert results["checkers"]["mutex"]["hold_count"] >= 5  # evidence, not an empty run
    for pid in config.get("worker_pids") or []:
        assert not pid_alive(pid)


@pytest.mark.parametrize(
    ("backend", "opts", "seconds"),
    [("node-redlock", [], 10), ("node-redis-semaphore", ["--opt", "refresh=true"], 8)],
)
def test_a_paused_holder_breaks_the_node_locks(
    store: Path, backend: str, opts: list[str], seconds: int
):
    """client-pause freezes the holder's worker and its adapter process (so redis-semaphore's
    background refresh freezes too) past the 1 s lease; another client acquires; the holder
    wakes, writes, and its release is refused: INVALID, with the two holds as the story."""
    need_server("redis")
    need_node()
    r = harness(
        "run", "--backend", backend, *opts, "--nemesis", "client-pause",
        "-t", str(seconds), "--ttl", "1000", "--hold", "250", "--wait", "2000", "--keys", "1",
        "-c", "3", "--nemesis-interval", "2", "--seed", "1", "--store", str(store),
        "--no-report",
    )  # fmt: skip
    assert r.returncode == 1 and "verdict: INVALID" in r.stdout, r.stdout + r.stderr
    run = _run_dir(r.stdout)
    ops = read(run / "history.jsonl").ops
    paused = [o for o in ops if o.f == "start-client-pause" and o.type == "info"]
    assert paused and paused[0].value["signal"] == "SIGSTOP"
    adapters = paused[0].value["children"]  # the adapter process was stopped with its worker
    assert adapters
    mutex = json.loads((run / "results.json").read_text())["checkers"]["mutex"]
    kinds = set(mutex["violation_kinds"])
    assert kinds and kinds <= {"revoked-while-held", "overlap"}, mutex["summary"]
    v = mutex["violations"][0]
    assert v["first"]["process"] != v["second"]["process"]  # two holders: the story
    victim, t = paused[0].value["process"], paused[0].time
    woke = [o for o in ops if o.process == victim and o.time > t and o.type != "invoke"]
    assert any(o.f == "write" for o in woke), woke  # it acted as holder after waking
    released = [o.type for o in woke if o.f == "release"]
    assert released and released[0] != "ok" or backend == "node-redis-semaphore", released
    assert not any(pid_alive(p) for p in adapters)  # ended with the run
