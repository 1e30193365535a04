"""A command line that scripts and CI logs can trust: off a terminal nothing is wrapped or cut,
--json gives a stable shape, contradictory or out-of-range options and unwritable outputs are
refused before anything starts, a Ctrl-C while loading is one line, and a campaign's store is
seen by list and serve."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, harness

NARROW = {"COLUMNS": "80"}  # what a CI log or a pipe gets when it says anything at all


def _one_line_error(p, *needles: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_off_a_terminal_paths_are_one_line_and_tables_are_whole(redis_bin, tmp_path):
    store = tmp_path / ("a-rather-long-store-directory-name-for-ci-artifacts-" + "x" * 60)
    p = harness("run", "--backend", "redis", "-t", "1", "--store", str(store), env=NARROW)
    assert p.returncode == 0, p.stdout + p.stderr
    run_dir = next(store.glob("redis-mutex-none/*"))
    assert f"run:    {run_dir}\n" in p.stdout
    assert f"report: {run_dir / 'report.html'}\n" in p.stdout
    for argv in (["backends"], ["list", "--store", str(store)], ["nemeses"], ["workloads"]):
        out = harness(*argv, env=NARROW).stdout
        assert "…" not in out, argv
    listed = harness("list", "--store", str(store), env=NARROW).stdout
    assert str(run_dir) in listed  # whole, on one line


def test_backends_lists_each_backends_options() -> None:
    """Each backend's --opt options with default and meaning, as nemeses lists theirs; integer
    bounds whole (2147483647, not 2.14748e+09)."""
    out = harness("backends", env=NARROW).stdout
    rows = out.split("redis-failover", 1)[1]
    for opt in ("wait_replicas: 0", "repl_lag_ms: 0", "down_after_ms"):
        assert opt in rows, opt
    assert "pooler:" in out.split("postgres-xact", 1)[1]
    assert "e+09" not in out and "e+09" not in harness("nemeses", env=NARROW).stdout


def test_json_forms(redis_bin, tmp_path):
    store = tmp_path / "s"
    p = harness("run", "-b", "redis", "-t", "1", "--no-report", "--store", str(store), "--json")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)  # stdout holds the JSON only
    assert got["verdict"] == "valid" and got["exit_code"] == 0 and got["report"] is None
    assert Path(got["results"]).is_file() and got["checkers"]["mutex"]["valid"] is True
    rows = json.loads(harness("list", "--store", str(store), "--json").stdout)
    assert [(r["run"], r["verdict"], r["backend"]) for r in rows] == [
        (got["run"], "valid", "redis")
    ]
    assert json.loads(harness("list", "--store", str(tmp_path / "none"), "--json").stdout) == []
    backends = {b["name"]: b for b in json.loads(harness("backends", "--json").stdout)}
    assert backends["redis"]["available"] is True and backends["redis"]["servers"]["kind"]
    assert {"nodes", "timeout_ms"} <= {o["name"] for o in backends["etcd"]["options"]}
    nemeses = {n["name"]: n for n in json.loads(harness("nemeses", "--json").stdout)}
    assert "pause_ms" in {o["name"] for o in nemeses["client-pause"]["options"]}
    workloads = {w["name"]: w for w in json.loads(harness("workloads", "--json").stdout)}
    ttl = next(o for o in workloads["mutex"]["options"] if o["name"] == "ttl_ms")
    assert ttl["flag"] == "--ttl" and ttl["type"] == "int" and ttl["min"] == 1


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--workload-opt", "ttl_ms=1000", "--ttl", "2000"], ["--ttl", "ttl_ms=1000", "once"]),
        (["--seed", "-1"], ["--seed", "2^63-1"]),
        (["--seed", str(10**23)], ["--seed", "2^63-1"]),
        (["--rate", "inf"], ["--rate", "finite"]),
        (["--rate", "nan"], ["--rate", "finite"]),
        (["--nemesis-interval", "inf"], ["--nemesis-interval", "finite"]),
        (["--junit-xml", "/proc/junit.xml"], ["--junit-xml", "/proc/junit.xml"]),
        (["--junit-xml", "/sys/lockharness/junit.xml"], ["--junit-xml", "cannot write"]),
    ],
)
def test_refused_before_anything_starts(tmp_path, argv, needles):
    store = tmp_path / "s"
    p = harness("run", "--backend", "redis", "-t", "1", "--store", str(store), *argv)
    _one_line_error(p, *needles)
    assert not store.exists() or not any(store.iterdir())  # no run was started


def test_compare_refuses_the_seed_run_refuses(tmp_path):
    p = harness("compare", "--backends", "redis", "--seed", "-1", "--store", str(tmp_path))
    _one_line_error(p, "seed", "2^63-1")


# A Ctrl-C at points of the command line's loading (deterministic: sent by an import hook,
# not after a sleep): one line, exit 2, never a traceback nor Click's "Aborted!" and exit 1.
LOADING = """
import os, signal, sys
sys.argv = ["harness", "run", "--backend", "redis", "-t", "1", "--store", sys.argv[1]]
WHEN = sys.argv_when = {when!r}
class Hook:
    def find_spec(self, name, path=None, target=None):
        if name == WHEN:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Hook())
from harness.entry import main
main()
"""


@pytest.mark.parametrize(
    "when", ["harness.cli", "rich.table", "harness.run.stages", "harness.run.container_runs"]
)
def test_a_ctrl_c_while_loading_is_one_line(tmp_path, when):
    p = subprocess.run(
        [sys.executable, "-c", LOADING.format(when=when), str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert "Traceback" not in p.stderr and "Aborted" not in p.stderr, p.stderr
    assert p.returncode == 2 and "interrupted" in p.stderr, (p.returncode, p.stderr)


def test_a_ctrl_c_in_the_first_second_of_a_run_is_never_a_traceback(redis_bin, tmp_path):
    """After Python's own start-up (its site import, before any harness code, is not ours). The
    early delays land while the command line loads, inside imports of extension modules: an
    exception raised there was once swallowed by a library (the run went on, exit 0) or crashed
    the interpreter (SIGSEGV)."""
    for delay in (0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.9):
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "-b", "redis", "-t", "2", "--no-report",
             "--store", str(tmp_path / "s")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        try:
            subprocess.run(["sleep", str(delay)], check=True)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if "init_import_site" in err:
            continue  # interrupted inside Python's own start-up, on a very loaded machine
        assert "Traceback" not in err, (delay, err)
        assert proc.returncode == 2, (delay, proc.returncode, out, err)


def test_list_and_serve_see_a_campaigns_runs(redis_bin, tmp_path):
    """A campaign (a kill cell that cannot fire in 2 s, so only the none cell runs) keeps its
    runs under runs/: list and serve show them."""
    store = tmp_path / "campaign"
    p = harness("compare", "--backends", "redis", "--nemeses", "none,kill", "-t", "2",
                "--repeat", "1", "--jobs", "1", "--store", str(store))  # fmt: skip
    assert p.returncode in (0, 2), p.stdout + p.stderr  # 2 only if the none run was unknown
    assert "redis / mutex / kill: not applicable: no fault would be injected" in p.stdout
    (results,) = store.glob("runs/*/*/redis-mutex-none/*/results.json")  # the none cell ran
    verdict = "valid" if json.loads(results.read_text())["valid"] is True else "unknown"
    rows = json.loads(harness("list", "--store", str(store), "--json").stdout)
    assert [(r["run"], r["nemesis"], r["verdict"]) for r in rows] == [
        (str(results.parent), [], verdict)
    ]
    from reports.serve import Store

    runs = Store(store).runs()
    assert [(r.rel, r.verdict) for r in runs] == [
        (results.parent.relative_to(store).as_posix(), verdict)
    ]
