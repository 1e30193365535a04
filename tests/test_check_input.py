"""`harness check` never says VALID about data it could not read.

Anything unreadable (a bad line, no op at all, duplicate indexes, a run that was cut short or never
finished) turns "no violation found" into UNKNOWN, exit 2, naming the first bad lines and how many;
a violation proven by what was read stays INVALID, exit 1.
"""

from __future__ import annotations

import glob
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.runtime.base import free_port, wait_until

from .conftest import HARNESS, ROOT, harness, need_binary


def _op(i: int, t: int, p: int, ty: str, f: str, **kw) -> dict:
    return {"index": i, "time": t, "process": p, "type": ty, "f": f, "key": 1, **kw}


# Process 1 acquires while process 0 holds the lock: one overlap.
INVALID = [
    _op(0, 10, 0, "invoke", "acquire"),
    _op(1, 20, 0, "ok", "acquire", value=1),
    _op(2, 30, 1, "invoke", "acquire"),
    _op(3, 40, 1, "ok", "acquire", value=2),
    _op(4, 50, 1, "invoke", "release"),
    _op(5, 60, 1, "ok", "release"),
    _op(6, 70, 0, "invoke", "release"),
    _op(7, 80, 0, "ok", "release"),
]
# The same ops, process 1 acquiring only after process 0 released: no violation.
VALID = [
    _op(0, 10, 0, "invoke", "acquire"),
    _op(1, 20, 0, "ok", "acquire", value=1),
    _op(2, 30, 0, "invoke", "release"),
    _op(3, 40, 0, "ok", "release"),
    _op(4, 50, 1, "invoke", "acquire"),
    _op(5, 60, 1, "ok", "acquire", value=2),
    _op(6, 70, 1, "invoke", "release"),
    _op(7, 80, 1, "ok", "release"),
]


WIDE = {"COLUMNS": "400"}  # one output line per message, to match on


def _write(path: Path, ops: list[dict]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in ops))
    return path


def _check(path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The command's own output, and the same check as JSON."""
    r = harness("check", str(path), env=WIDE)
    assert "Traceback" not in r.stdout + r.stderr
    j = harness("check", "--json", str(path))
    assert j.returncode == r.returncode
    return r, json.loads(j.stdout)


def _unknown(path: Path, *needles: str) -> dict:
    r, res = _check(path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "UNKNOWN" in r.stdout and "VALID" not in r.stdout.replace("UNKNOWN", "")
    assert res["valid"] == "unknown"
    for n in needles:
        assert n in r.stdout, (n, r.stdout)
    return res


def test_empty_file(tmp_path):
    p = tmp_path / "history.jsonl"
    p.write_bytes(b"")
    res = _unknown(p, "history is empty", "JSON Lines")
    assert res["ops_read"] == 0


def test_binary_garbage(tmp_path):
    p = tmp_path / "history.jsonl"
    p.write_bytes(bytes(range(256)) * 8)  # 8 lines (0x0a is in every run), none of them JSON
    res = _unknown(p, "lines could not be read (lines 1, 2, 3, 4, 5, ...)", "no op could be read")
    assert res["problem_count"] == res["problem_lines"][-1] == 9
    assert "of 9 lines" in res["summary"]


def test_json_array(tmp_path):
    p = tmp_path / "history.jsonl"
    p.write_text(json.dumps(VALID) + "\n")
    _unknown(p, "1 of 1 lines could not be read (line 1)", "got list", "JSON Lines")


def test_edn_export_is_not_a_history(tmp_path):
    src = _write(tmp_path / "history.jsonl", VALID)
    assert harness("export", "--format", "edn", str(src)).returncode == 0
    edn = tmp_path / "history.edn"
    res = _unknown(edn, "8 of 8 lines could not be read (lines 1, 2, 3, 4, 5, ...)", "not JSON")
    assert res["problem_count"] == 8


def test_lines_missing_process_or_f(tmp_path):
    ops = [dict(o) for o in VALID]
    del ops[2]["process"]
    del ops[5]["f"]
    res = _unknown(_write(tmp_path / "h.jsonl", ops), "2 of 8 lines could not be read (lines 3, 6)")
    assert "missing field(s) process" in res["problems"][0]
    assert "missing field(s) f" in res["problems"][1]
    assert res["ops_read"] == 6  # the readable ops were still checked


def test_string_times_everywhere(tmp_path):
    ops = [dict(o, time=str(o["time"])) for o in VALID]
    res = _unknown(_write(tmp_path / "h.jsonl", ops), "8 of 8 lines could not be read")
    assert "time '10' is not an integer" in res["problems"][0]


def test_one_string_time_in_a_valid_history(tmp_path):
    ops = [dict(o) for o in VALID]
    ops[5]["time"] = "60"
    res = _unknown(_write(tmp_path / "h.jsonl", ops), "1 of 8 lines could not be read (line 6)")
    assert res["ops_read"] == 8  # kept, placed by its process's neighbours


def test_invalid_history_with_one_string_time_stays_invalid(tmp_path):
    assert harness("check", str(_write(tmp_path / "a.jsonl", INVALID))).returncode == 1
    ops = [dict(o) for o in INVALID]
    ops[3]["time"] = "40"  # the very acquire that breaks into process 0's hold
    r, res = _check(_write(tmp_path / "b.jsonl", ops))
    assert r.returncode == 1, r.stdout
    assert "INVALID" in r.stdout and res["valid"] is False
    assert "line 4" in r.stdout and "1 of 8 lines could not be read (line 4)" in r.stdout
    assert res["problem_count"] == 1 and res["problem_lines"] == [4]


def test_a_bad_time_is_not_guessed_into_a_violation(tmp_path):
    """Process 1's acquire returned somewhere between its invoke (5) and its release (200):
    maybe while process 0 held the lock (100..150), maybe after (its fence, 3, is above process
    0's). Not a proof either way: placing it at its invoke would have been an overlap."""
    ops = [
        _op(0, 5, 1, "invoke", "acquire"),
        _op(1, "soon", 1, "ok", "acquire", value=3),
        _op(2, 90, 0, "invoke", "acquire"),
        _op(3, 100, 0, "ok", "acquire", value=2),
        _op(4, 150, 0, "invoke", "release"),
        _op(5, 160, 0, "ok", "release"),
        _op(6, 200, 1, "invoke", "release"),
        _op(7, 210, 1, "ok", "release"),
    ]
    res = _unknown(_write(tmp_path / "h.jsonl", ops), "1 of 8 lines could not be read (line 2)")
    assert res["checkers"]["mutex"]["valid"] is True


def test_a_missing_time_among_timed_lines_is_not_the_line_order(tmp_path):
    """Taken as its index (5 ns), process 1's acquire would fall inside process 0's hold."""
    ops = [dict(o) for o in VALID]
    del ops[5]["time"]
    res = _unknown(_write(tmp_path / "h.jsonl", ops), "1 of 8 lines could not be read (line 6)")
    assert "no time, while other lines have one" in res["problems"][0]
    assert res["checkers"]["mutex"]["valid"] is True and res["ops_read"] == 8


def test_negative_and_null_times(tmp_path):
    ops = [dict(o) for o in VALID]
    ops[1]["time"], ops[6]["time"] = -3, None
    res = _unknown(_write(tmp_path / "h.jsonl", ops), "2 of 8 lines could not be read (lines 2, 7)")
    assert "time -3 is not an integer >= 0" in res["problems"][0]


def test_duplicate_index_in_a_valid_history(tmp_path):
    ops = [dict(o) for o in VALID]
    ops[4]["index"] = 3
    res = _unknown(_write(tmp_path / "h.jsonl", ops), "index 3 is used on lines 4, 5")
    assert res["duplicate_indexes"] == ["index 3 is used on lines 4, 5"]


def test_duplicate_index_in_an_invalid_history_is_reported_too(tmp_path):
    ops = [dict(o) for o in INVALID]
    ops[6]["index"] = 5
    r, res = _check(_write(tmp_path / "h.jsonl", ops))
    assert r.returncode == 1 and res["valid"] is False
    assert "index 5 is used on lines 6, 7" in r.stdout


def test_report_on_a_missing_directory(tmp_path):
    r = harness("report", str(tmp_path / "nope"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no such run directory" in r.stderr and "harness check" not in r.stderr


# Stored runs: one real (short) run, copied and altered as a crash or a user might leave it.


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    need_binary("redis-server", "redis-server")
    store = tmp_path_factory.mktemp("store")
    r = harness("run", "--backend", "redis", "-t", "1.5", "--seed", "1", "--store", str(store))
    assert r.returncode == 0, r.stdout + r.stderr
    return (store / "latest").resolve()


def _copy(run: Path, dest: Path, **config) -> Path:
    d = dest / "redis-mutex-none" / "run"
    shutil.copytree(run, d)
    cfg = json.loads((d / "config.json").read_text())
    for k, v in config.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_stored_run_checks_valid(real_run, tmp_path):
    r, res = _check(_copy(real_run, tmp_path))
    assert r.returncode == 0 and res["valid"] is True and "unknown_because" not in res


def test_stored_run_that_was_interrupted(real_run, tmp_path):
    res = _unknown(_copy(real_run, tmp_path, interrupted=True), "interrupted")
    assert res["interrupted"] is True


def test_stored_run_cut_short_still_proves_a_violation(real_run, tmp_path):
    d = _copy(real_run, tmp_path, duration_s=None, interrupted=True)
    _write(d / "history.jsonl", INVALID)
    r, res = _check(d)
    assert r.returncode == 1 and res["valid"] is False
    assert "also: the run was interrupted before its time limit" in r.stdout
    assert "never finished" in " ".join(res["unknown_because"])


def test_stored_run_that_never_finished(real_run, tmp_path):
    d = _copy(real_run, tmp_path, duration_s=None, interrupted=None)
    (d / "results.json").unlink()  # killed before its check
    r = harness("list", "--store", str(tmp_path), env=WIDE)
    assert "unfinished" in r.stdout and "not checked" not in r.stdout
    _unknown(d, "never finished", "no duration_s in config.json")  # the field it reads
    assert "never finished" in json.loads((d / "results.json").read_text())["summary"]
    r = harness("list", "--store", str(tmp_path), env=WIDE)
    assert "unknown" in r.stdout and "never finished" in r.stdout  # the results say why


def test_stored_run_with_a_corrupt_line(real_run, tmp_path):
    d = _copy(real_run, tmp_path)
    lines = (d / "history.jsonl").read_text().splitlines(keepends=True)
    lines[3] = lines[3][:10] + "\n"
    (d / "history.jsonl").write_text("".join(lines))
    res = _unknown(d, f"1 of {len(lines)} lines could not be read (line 4)")
    assert res["ops_read"] == len(lines) - 1


def test_stored_run_with_a_corrupt_config(real_run, tmp_path):
    d = _copy(real_run, tmp_path)
    (d / "config.json").write_text('{"backend": "redis",')
    before = (d / "results.json").read_text()
    r = harness("check", str(d))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{d / 'config.json'}: not valid JSON" in r.stderr
    assert (d / "results.json").read_text() == before  # nothing overwritten


def _procs_mentioning(text: str) -> list[int]:
    found = []
    for cmd in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if text.encode() in Path(cmd).read_bytes():
                found.append(int(cmd.split("/")[2]))
        except OSError:
            pass
    return found


@pytest.mark.slow
def test_ctrl_c_during_start_up(tmp_path):
    """SIGINT while ZooKeeper (a JVM, seconds to start) is still starting: no client ran."""
    from harness.runtime import MissingBinary
    from harness.runtime.zookeeper import ZooKeeperServer

    try:
        ZooKeeperServer().find_binary()
    except MissingBinary as e:
        pytest.skip(str(e))
    p = subprocess.Popen(
        [*HARNESS, "run", "--backend", "zookeeper", "-t", "5", "--store", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: glob.glob(f"{tmp_path}/*/*/config.json"), timeout=60)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 2, out + err
    assert "Traceback" not in out + err and "No such file" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "interrupted during start-up" in lines[0], err
    run = Path(glob.glob(f"{tmp_path}/*/*/config.json")[0]).parent
    res = json.loads((run / "results.json").read_text())
    assert res["valid"] == "unknown" and res["interrupted"] is True
    assert "interrupted during start-up" in res["summary"]
    assert not (run / "history.jsonl").exists() or res["ops_read"] == 0
    listed = harness("list", "--store", str(tmp_path), env=WIDE)
    assert "interrupted during start-up" in listed.stdout and "not checked" not in listed.stdout
    time.sleep(0.5)
    assert _procs_mentioning(str(run)) == []  # the half-started server went with the run


def test_failed_run_is_listed_as_failed(tmp_path):
    """A real server that does not speak the backend's protocol: setup fails after the run
    directory was made; the directory says why."""
    need_binary("redis-server", "redis-server")
    port = free_port("127.0.0.1")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        r = harness(
            "run",
            "--backend",
            "mongodb",
            "--netns",
            "off",
            "--opt",
            f"uri=mongodb://127.0.0.1:{port}/",
            "--opt",
            "timeout_ms=1000",
            "-t",
            "1",
            "--store",
            str(tmp_path),
        )
    finally:
        redis.terminate()
        redis.wait(10)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "setup failed" in r.stderr
    run = (tmp_path / "latest").resolve()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["failed"].startswith("backend mongodb setup failed")
    listed = harness("list", "--store", str(tmp_path), env=WIDE)
    assert "failed" in listed.stdout and "not checked" not in listed.stdout
    c = harness("check", str(run), env=WIDE)
    assert c.returncode == 2 and "the run failed: backend mongodb setup failed" in c.stdout


LOST_CTRL_C = """
import os, signal, subprocess
from harness.run.stages import Interrupted, _interrupts

sent = []


def after_fork_in_parent():  # a Ctrl-C that lands here raises where Python drops the error
    if not sent:
        sent.append(1)
        signal.raise_signal(signal.SIGINT)


os.register_at_fork(after_in_parent=after_fork_in_parent)
with _interrupts() as intr:
    subprocess.run(["true"], preexec_fn=lambda: None)  # servers are started like this
    print("still running")
    try:
        intr.check()
    except Interrupted:
        print("stopped")
"""


def test_ctrl_c_lost_in_an_at_fork_hook_still_stops_the_run():
    import sys

    r = subprocess.run(
        [sys.executable, "-c", LOST_CTRL_C], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.stdout.split() == ["still", "running", "stopped"], r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr


def test_results_json_is_written_whole_and_reads_back_the_same(tmp_path):
    """``store.write_json`` (orjson, the json module past orjson's limits): what a history may
    hold, a fence past 64 bits and text outside ASCII, reads back equal, with no leftover file."""
    from harness.run import store

    for data in (
        {"fence": 2**70, "summary": "‼ two at once — k/5", "holds": [{"start": 1, "end": None}]},
        {"n": 1, "rate": 0.5, "by_client": {"0": 1.25}, "ok": True, "valid": "unknown"},
    ):
        path = tmp_path / "results.json"
        store.write_json(path, data)
        assert store.read_json(path) == data
        assert path.read_bytes().endswith(b"}\n") and not list(tmp_path.glob("*.tmp"))
