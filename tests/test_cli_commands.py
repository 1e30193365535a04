"""The rest of the command line on real runs: list, export, compare, JUnit XML, the pytest
plugin, and the informational commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from .conftest import harness


def test_run_writes_junit_and_list_and_export_see_it(redis_bin, tmp_path):
    junit = tmp_path / "out" / "junit.xml"
    p = harness(
        "run",
        "--backend",
        "redis",
        "-t",
        "2",
        "--store",
        str(tmp_path / "s"),
        "--junit-xml",
        str(junit),
    )
    assert p.returncode == 0, p.stderr
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "0"
    assert {c.get("name") for c in suite.iter("testcase")} >= {"mutex", "fencing", "perf"}

    p = harness("list", "--store", str(tmp_path / "s"))
    assert p.returncode == 0 and "redis" in p.stdout and "VALID" in p.stdout

    run_dir = (tmp_path / "s" / "latest").resolve()
    p = harness("export", "--format", "edn", str(run_dir))
    assert p.returncode == 0, p.stderr
    edn = (run_dir / "history.edn").read_text().splitlines()
    n_ops = len((run_dir / "history.jsonl").read_text().splitlines())
    assert len(edn) == n_ops and edn[0].startswith("{") and ":type :invoke" in edn[0]

    (run_dir / "report.html").unlink()
    p = harness("report", str(run_dir))
    assert p.returncode == 0, p.stderr
    assert "VALID" in (run_dir / "report.html").read_text().upper()


def test_junit_marks_an_invalid_run_as_failure(redis_bin, tmp_path):
    junit = tmp_path / "junit.xml"
    p = harness(
        "run",
        "--backend",
        "unsafe-redis",
        "-c",
        "8",
        "--keys",
        "1",
        "--hold",
        "2",
        "-t",
        "4",
        "--store",
        str(tmp_path / "s"),
        "--junit-xml",
        str(junit),
        "--no-report",
    )
    assert p.returncode == 1
    suite = ET.parse(junit).getroot()
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert "mutex" in failed
    # the terminal says what to do, each remedy with its command on one line
    remedies = [ln for ln in p.stdout.splitlines() if ln.startswith("remedy: ")]
    assert any("harness run --backend redis " in ln for ln in remedies), p.stdout


def test_compare_runs_a_matrix_and_links_each_report(redis_bin, tmp_path):
    out = tmp_path / "cmp.html"
    p = harness(
        "compare",
        "--backends",
        "redis,unsafe-redis",
        "--nemeses",
        "none",
        "-t",
        "3",
        "-c",
        "6",
        "--keys",
        "1",
        "--hold",
        "2",
        "--store",
        str(tmp_path / "s"),
        "--out",
        str(out),
    )
    assert p.returncode == 1, p.stdout + p.stderr  # the broken lock makes the worst verdict
    # the console ends with a line a cell: KEY: RATE, then its harm as the page names it
    lines = dict(ln.strip().split(": ", 1) for ln in p.stdout.splitlines() if " / none: " in ln)
    (safe,) = [v for k, v in lines.items() if k.startswith("redis / mutex")]
    (broken,) = [v for k, v in lines.items() if k.startswith("unsafe-redis / mutex")]
    assert safe.startswith("0/1 ") and safe.endswith(", ✓ safe"), lines
    assert broken.startswith("1/1 ") and not broken.endswith("✓ safe"), lines
    html = out.read_text()
    assert "unsafe-redis" in html and "redis" in html
    links = [ln for ln in html.split('href="')[1:] if "report.html" in ln.split('"')[0]]
    assert len(links) == 2
    for ln in links:
        assert (out.parent / ln.split('"')[0]).exists()
    # each run records the machine's load at its start and end; the header sums them up
    doc = json.loads((out.parent / "cmp.json").read_text())  # named after the page
    machines = [r["machine"] for c in doc["cells"] for r in c["per_run"]]
    assert all(len(m["load_start"]) == 3 and len(m["load_end"]) == 3 for m in machines), machines
    load = doc["header"]["load"]
    assert load["runs"] == load["of"] == 2 and load["cores"] == [os.cpu_count()], load
    ends = [x for m in machines for x in (m["load_start"][0], m["load_end"][0])]
    assert load["max"] == max(ends) and min(ends) <= load["median"] <= max(ends)
    assert f"median {load['median']}, highest {load['max']}" in html


def test_compare_bad_input(tmp_path):
    p = harness("compare", "--backends", "redis", "--nemeses", "nosuch", "--store", str(tmp_path))
    assert p.returncode == 2 and "nosuch" in p.stderr and "Traceback" not in p.stderr
    p = harness("compare", str(tmp_path))
    assert p.returncode == 2 and "not a run directory" in p.stderr


def test_pytest_plugin_fixture(redis_bin, lock_harness, request, tmp_path):
    res = lock_harness(backend="redis", time_limit=2, render_report=False)
    assert res.valid is True and res.exit_code == 0
    assert json.loads(Path(res.run_dir, "config.json").read_text())["backend"] == "redis"
    assert Path(res.run_dir).is_relative_to(tmp_path)  # no --lock-harness-store: tmp_path
    assert ("lockharness_run", str(res.run_dir)) in request.node.user_properties


def test_pytest_fixture_takes_a_nemesis_as_text_and_lists_every_field(lock_harness):
    import pytest

    from harness.nemesis import NotApplicable

    # "client-pause" is one nemesis (not the letters c, l, ...): too short a run to inject it
    with pytest.raises(NotApplicable, match="no fault would be injected"):
        lock_harness(backend="redis", nemesis="client-pause", time_limit=1)
    with pytest.raises(TypeError) as e:
        lock_harness(backend="redis", nemsis=["kill"])  # misspelt
    for name in ("nemsis", "nemesis", "time_limit", "seed", "ttl_ms", "hold_ms"):
        assert name in str(e.value)


def test_pytest_fixture_keeps_runs_where_ci_uploads_them(redis_bin, tmp_path):
    """--lock-harness-store DIR: each test's runs under DIR/<test name>/, kept after pytest."""
    (tmp_path / "test_gate.py").write_text(
        "def test_gate(lock_harness):\n"
        "    r = lock_harness(backend='redis', nemesis='none', time_limit=1, render_report=False)\n"
        "    assert r.valid is True\n"
    )
    kept = tmp_path / "artifacts"
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_gate.py",
         "--lock-harness-store", str(kept)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(list(kept.glob("test_gate/redis-mutex-none/*/results.json"))) == 1


def test_info_commands():
    for cmd in (["doctor"], ["backends"], ["nemeses"], ["--help"], ["run", "--help"]):
        p = harness(*cmd)
        assert p.returncode == 0, (cmd, p.stderr)
    assert "redis-server" in harness("doctor").stdout
    assert "client-pause" in harness("nemeses").stdout


def test_relative_store_from_another_directory(redis_bin, tmp_path):
    p = harness(
        "run", "--backend", "redis", "-t", "2", "--store", "runs", "--no-report", cwd=tmp_path
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "runs" / "latest" / "results.json").exists()
