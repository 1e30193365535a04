"""Crashes are not verdicts: exit 1 means "this lock is unsafe", so every failure of the harness
itself (read-only places, bad paths, impossible numbers, Ctrl-C twice, an internal error) ends
in one line on stderr and exit 2, and nothing recorded is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from backends.base import MAX_MS
from harness import cli
from harness.run.config import MAX_KEYS
from harness.run.stages import MAX_STOP_GRACE, STOP_GRACE, stop_grace
from workloads.mutex import MutexWorkload

from .conftest import HARNESS, ROOT, harness, pid_alive


def _one_line(p, code: int, *needles: str) -> str:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@contextmanager
def read_only(path: Path):
    """Make ``path`` really read-only, also for root (who ignores file modes): a read-only bind
    mount of the directory onto itself, undone afterwards."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


def _assert_unwritable(path: Path) -> None:
    with pytest.raises(OSError):
        (path / "probe").write_text("x")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    p = harness("run", "--backend", "redis", "--time-limit", "1", "--store", str(store))
    assert p.returncode == 0, p.stdout + p.stderr
    return (store / "latest").resolve()


def test_read_only_store_is_one_line(redis_bin, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    with read_only(store):
        _assert_unwritable(store)
        p = harness("run", "--backend", "redis", "--time-limit", "1", "--store", str(store))
        _one_line(p, 2, str(store))
    assert list(store.iterdir()) == []


@pytest.mark.parametrize("command", ["check", "report", "export"])
def test_read_only_run_dir_is_one_line_and_keeps_the_files(run_dir, command):
    before = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()}
    with read_only(run_dir):
        _assert_unwritable(run_dir)
        p = harness(command, str(run_dir))
        _one_line(p, 2, str(run_dir))
    after = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()}
    assert after == before


def test_junit_xml_on_a_directory_is_refused_before_the_run(redis_bin, tmp_path):
    store, out = tmp_path / "store", tmp_path / "ci[x]"  # brackets: text, not console markup
    out.mkdir()
    p = harness("run", "--backend", "redis", "--store", str(store), "--junit-xml", str(out))
    _one_line(p, 2, "--junit-xml", "directory", str(out))
    assert not store.exists()  # refused before anything started


def test_compare_out_on_a_directory_is_refused_before_the_matrix(redis_bin, tmp_path):
    store = tmp_path / "store"
    p = harness("compare", "--backends", "redis", "--store", str(store), "--out", str(tmp_path))
    _one_line(p, 2, "--out", "directory", "comparison.html")
    assert not store.exists()


def test_junit_xml_under_a_read_only_directory_is_refused_before_the_run(redis_bin, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    store = tmp_path / "store"
    with read_only(ro):
        p = harness("run", "-b", "redis", "--store", str(store), "--junit-xml", str(ro / "j.xml"))
    _one_line(p, 2, "--junit-xml", str(ro))
    assert not store.exists()


@pytest.mark.parametrize(
    "flag, value, accepted",
    [
        ("--keys", "0", f"1 to {MAX_KEYS:,}"),
        ("--keys", str(MAX_KEYS + 1), f"1 to {MAX_KEYS:,}"),
        ("--keys", str(10**12), f"1 to {MAX_KEYS:,}"),
        ("--ttl", "0", f"1 to {MAX_MS} ms"),
        ("--ttl", "99999999999999999999", f"1 to {MAX_MS} ms"),
        ("--ttl", str(MAX_MS + 1), f"1 to {MAX_MS} ms"),
        ("--hold", "-1", f"0 to {MAX_MS} ms"),
        ("--hold", str(MAX_MS + 1), f"0 to {MAX_MS} ms"),
        ("--wait", str(MAX_MS + 1), f"0 to {MAX_MS} ms"),
        ("--time-limit", "inf", "<= 604800 s"),
        ("--time-limit", "nan", "<= 604800 s"),
        ("--time-limit", "604801", "<= 604800 s"),
    ],
)
def test_out_of_bounds_is_refused_up_front(tmp_path, flag, value, accepted):
    store = tmp_path / "store"
    p = harness("run", "--backend", "redis", flag, value, "--store", str(store))
    _one_line(p, 2, flag, accepted, value)
    assert not store.exists()  # nothing written, nothing started


def test_the_largest_accepted_keys_and_ttl_really_run(redis_bin, tmp_path):
    """The bounds are what works: a million keys (a lock per key ran out of memory maps at
    100,000) and a TTL of 2^31-1 ms give a real, valid run."""
    p = harness(
        "run",
        *("--backend", "redis", "--time-limit", "2", "--store", str(tmp_path)),
        *("--keys", str(MAX_KEYS), "--ttl", str(MAX_MS), "--fencing"),
    )
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert res["valid"] is True
    ops = [json.loads(x) for x in (tmp_path / "latest" / "history.jsonl").read_text().splitlines()]
    assert sum(1 for o in ops if o["f"] == "write" and o["type"] == "ok") > 5


@pytest.mark.slow
def test_a_hold_of_an_hour_ends_with_the_time_limit(redis_bin, tmp_path):
    """A holder sleeping for an hour is woken by the end of the run, skips its write, releases,
    and the run ends within the time limit plus the stop grace (it used to wait out the hold)."""
    t = 3
    p = harness(
        "run",
        *("--backend", "redis", "--time-limit", str(t), "--store", str(tmp_path)),
        *("--hold", "3600000", "--ttl", "7200000"),
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    run = (tmp_path / "latest").resolve()
    config = json.loads((run / "config.json").read_text())
    assert config["duration_s"] < t + STOP_GRACE + 10  # slack for server start on a busy machine
    ops = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    granted = [o for o in ops if o["f"] == "acquire" and o["type"] == "ok"]
    released = [o for o in ops if o["f"] == "release" and o["type"] == "ok"]
    assert granted and len(released) == len(granted)  # every cut-short hold was released
    assert not any(o["f"] == "write" for o in ops)  # no hold reached its end: no write


def test_the_stop_grace_is_bounded_whatever_the_wait_and_hold():
    """Clients stuck in a long acquire wait are killed after the cap, not after --wait."""
    assert stop_grace(MutexWorkload()) == STOP_GRACE
    assert stop_grace(MutexWorkload({"wait_ms": 10_000})) == 12.0
    assert stop_grace(MutexWorkload({"wait_ms": MAX_MS, "hold_ms": MAX_MS})) == MAX_STOP_GRACE


@pytest.mark.slow
def test_ctrl_c_pressed_again_and_again_still_writes_the_verdict(redis_bin, tmp_path):
    proc = subprocess.Popen(
        [*HARNESS, "run", "--backend", "redis", "--time-limit", "60", "--store", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    history = tmp_path / "latest" / "history.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (history.exists() and history.stat().st_size > 2000):
        time.sleep(0.1)
    assert history.exists(), "the run never started recording"
    run = history.resolve().parent
    pids = [s["pid"] for s in json.loads((run / "config.json").read_text())["servers"]]
    sent, end = 0, time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < end:  # Ctrl-C through the whole teardown
        proc.send_signal(signal.SIGINT)
        sent += 1
        time.sleep(0.02)
    out, err = proc.communicate(timeout=30)
    assert sent >= 2
    results = json.loads((run / "results.json").read_text())
    assert results["interrupted"] is True
    assert results["ops_read"] > 10
    assert proc.returncode == (1 if results["valid"] is False else 2), (out, err)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    _one_line(done, proc.returncode, "interrupt deferred", "results.json")
    assert "interrupted" in out
    assert not any(pid_alive(p) for p in pids), "a server outlived the interrupted run"


def _invoke(args: list[str]):
    r = CliRunner().invoke(cli.main, args)
    r.returncode = r.exit_code
    return r


def test_an_internal_error_is_one_line_with_the_traceback_saved(monkeypatch, tmp_path):
    def broken(store):
        raise AttributeError("'NoneType' object has no attribute 'glob'")

    monkeypatch.setattr(cli.store, "runs", broken)
    r = _invoke(["list", "--store", str(tmp_path)])
    line = _one_line(r, 2, "internal error", "AttributeError", "traceback in")
    saved = Path(line.rsplit("traceback in ", 1)[1].rstrip(")"))
    try:
        assert "Traceback" in saved.read_text() and "broken" in saved.read_text()
    finally:
        saved.unlink()


def test_a_command_without_its_own_wrapper_is_covered_too(monkeypatch):
    from harness.net import netns

    def broken():
        raise KeyError("ip")

    monkeypatch.setattr(netns, "available", broken)
    r = _invoke(["doctor"])
    line = _one_line(r, 2, "internal error", "KeyError")
    Path(line.rsplit("traceback in ", 1)[1].rstrip(")")).unlink()


def test_ctrl_c_outside_a_run_exits_2_not_aborted_1(monkeypatch, tmp_path):
    def interrupted(store):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.store, "runs", interrupted)
    r = _invoke(["list", "--store", str(tmp_path)])
    _one_line(r, 2, "interrupted")
    assert "Aborted" not in r.stderr


def test_usage_errors_stay_clicks_own_and_exit_2():
    p = harness("run")
    assert p.returncode == 2 and "Missing option" in p.stderr and "Traceback" not in p.stderr
    assert harness("run", "--help").returncode == 0


@pytest.mark.slow
def test_ctrl_c_stops_a_compare_matrix_after_the_running_cell(redis_bin, tmp_path):
    proc = subprocess.Popen(
        [*HARNESS, "compare", "--backends", "redis,unsafe-redis", "-t", "60", "--jobs", "1"]
        + ["--store", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        h.stat().st_size > 2000 for h in tmp_path.rglob("history.jsonl")
    ):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err
    assert "[1/2] redis" in out and "] unsafe-redis" not in out  # the second cell never ran
    assert "unsafe-redis / mutex / none: 0 decided of 0 runs" in out
    assert (tmp_path / "comparison.html").exists()
    assert not list(tmp_path.rglob("unsafe-redis-mutex-none"))


@pytest.mark.slow
def test_ctrl_c_while_servers_start_says_nothing_was_recorded(tmp_path):
    from harness.runtime.base import MissingBinary
    from harness.runtime.kinds import server_kind

    try:  # ZooKeeper (a JVM, three nodes) starts slowly enough to be interrupted while starting
        server_kind("zookeeper").find_binary()
    except MissingBinary as e:
        pytest.skip(str(e))
    proc = subprocess.Popen(
        [*HARNESS, "run", "--backend", "zookeeper", "-t", "30", "--store", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    latest = tmp_path / "latest"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (latest / "config.json").exists():
        time.sleep(0.01)
    assert not (latest / "history.jsonl").exists()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    _one_line(done, 2, "interrupted during start-up", "before any client ran", "nothing recorded")
    assert json.loads((latest / "config.json").read_text())["interrupted"] is True
