"""End-to-end runs on a real redis-server: a correct lock is valid, a broken one is caught,
and teardown leaves nothing behind even when the run is interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from checkers.history import load
from harness.run import run_test
from harness.run.config import RunConfig

from .conftest import HARNESS, ROOT, harness, pid_alive


def _servers(run_dir: Path) -> list[int]:
    return [s["pid"] for s in json.loads((run_dir / "config.json").read_text())["servers"]]


def test_correct_lock_is_valid(redis_bin, tmp_path):
    cfg = RunConfig(backend="redis", time_limit=4, concurrency=5, keys=2, store=tmp_path, seed=1)
    res = run_test(cfg)
    assert res.valid is True, res.results["summary"]
    assert res.exit_code == 0
    mutex = res.results["checkers"]["mutex"]
    assert mutex["hold_count"] > 50  # the run really exercised the lock
    assert (res.run_dir / "report.html").exists()
    assert (tmp_path / "latest").resolve() == res.run_dir.resolve()
    df = load(res.run_dir)
    assert set(df["type"]) <= {"invoke", "ok", "fail", "info"}
    assert (df["f"] == "write").any()
    assert not any(pid_alive(p) for p in _servers(res.run_dir))


def test_broken_lock_is_caught_from_the_command_line(redis_bin, tmp_path):
    p = harness(
        "run",
        "--backend",
        "unsafe-redis",
        "--concurrency",
        "8",
        "--time-limit",
        "6",
        "--hold",
        "2",
        "--keys",
        "1",
        "--store",
        str(tmp_path),
        "--seed",
        "3",
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert "INVALID" in p.stdout
    assert "Traceback" not in p.stderr
    run_dir = (tmp_path / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    kinds = {v["kind"] for v in results["checkers"]["mutex"]["violations"]}
    assert "overlap" in kinds
    html = (run_dir / "report.html").read_text()
    assert "overlap" in html


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_no_server(redis_bin, tmp_path, sig):
    proc = subprocess.Popen(
        [*HARNESS, "run", "--backend", "redis", "--time-limit", "60", "--store", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    history = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        latest = tmp_path / "latest"
        if latest.exists() and (latest / "history.jsonl").exists():
            history = latest.resolve() / "history.jsonl"
            if history.stat().st_size > 2000:
                break
        time.sleep(0.1)
    assert history is not None, "the run never started recording"
    run_dir = history.parent
    pids = _servers(run_dir)
    assert pids and all(pid_alive(p) for p in pids)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert proc.returncode in (1, 2)  # cut short: never reported as a clean pass
    assert "interrupted" in out
    assert not any(pid_alive(p) for p in pids), "a server outlived the interrupted run"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["interrupted"] is True
    assert results["ops_read"] > 10


@pytest.mark.skipif(os.geteuid() != 0, reason="partitions between nodes need root (namespace)")
def test_interrupt_mid_partition_heals_and_leaves_nothing(redis_bin, tmp_path):
    """Ctrl-C while a partition (iptables + proxy toxics) is in force on a 5-node cluster."""
    proc = subprocess.Popen(
        [
            *HARNESS,
            "run",
            "--backend",
            "redlock",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "1",
            "--time-limit",
            "60",
            "--store",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    history = None
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        h = tmp_path / "latest" / "history.jsonl"
        if h.exists() and '"info","f":"start-partition"' in h.read_text():
            history = h.resolve()
            break
        time.sleep(0.1)
    assert history is not None, "no partition started"
    pids = _servers(history.parent)
    assert len(pids) == 6  # five redis-servers and the proxy
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert not any(pid_alive(p) for p in pids)
    ops = [json.loads(x) for x in history.read_text().splitlines()]
    fs = [o["f"] for o in ops if o["process"] == "nemesis" and o["type"] == "info"]
    assert fs[-1] == "stop-partition"  # the heal was done and recorded
    host = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    assert "LOCKHARNESS" not in host


@pytest.mark.parametrize("workload", ["mutex", "lock-set"])
def test_rate_paces_every_lock_loop(redis_bin, tmp_path, workload):
    """``--rate`` (ClientContext.turns, shared by the lock loops): 20 turns/s over 3 s is about
    60 acquires, where an unpaced loop makes thousands."""
    from harness.run.config import run_config

    res = run_test(
        run_config(backend="redis", workload=workload, time_limit=3, rate=20, concurrency=2,
                   seed=4, store=tmp_path, render_report=False)
    )  # fmt: skip
    assert res.valid is True, res.results["summary"]
    acquires = res.results["checkers"]["perf"]["attempted_acquires"]
    assert 40 <= acquires <= 80, acquires
