"""Campaigns on real redis-servers: repetitions with their derived seeds, --jobs 2 giving the
cells of --jobs 1, three shards gathered into the unsharded result cell for cell, JUnit one
case a cell, and resume after an interrupted campaign."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from .conftest import HARNESS, ROOT, harness, pid_alive

# redis (safe) and unsafe-redis (8 clients on one key: always broken within a second) make cells
# whose verdicts do not depend on timing, so runs can be compared cell for cell.
CAMPAIGN = ["--backends", "redis,unsafe-redis", "--repeat", "2", "-t", "1.5", "-c", "8",
            "--keys", "1", "--hold", "2", "--seed", "42"]  # fmt: skip


def _compare(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    p = harness("compare", *args, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def _cells(path: Path) -> dict[str, dict]:
    doc = json.loads(path.read_text())
    return {c["key"]: c for c in doc["cells"]}


def _facts(cells: dict[str, dict]) -> dict[str, tuple]:
    """What must be equal cell for cell: runs, verdict counts, and which seeds ran."""
    return {
        k: (
            c["runs"],
            c["invalid"],
            c["unknown"],
            c["valid"],
            sorted((r["repetition"], r["seed"], r["verdict"]) for r in c["per_run"]),
        )
        for k, c in cells.items()
    }


@pytest.mark.slow
def test_jobs_shards_and_gather_give_the_same_cells(redis_bin, tmp_path):
    whole = tmp_path / "whole"
    p = _compare(*CAMPAIGN, "--jobs", "2", "--store", str(whole))
    assert p.returncode == 1, p.stdout + p.stderr  # unsafe-redis is the worst verdict
    cells = _cells(whole / "comparison.json")
    assert set(cells) == {
        "redis / mutex[hold_ms=2] / none",
        "unsafe-redis / mutex[hold_ms=2] / none",
    }
    safe, broken = (
        cells["redis / mutex[hold_ms=2] / none"],
        cells["unsafe-redis / mutex[hold_ms=2] / none"],
    )
    assert (safe["runs"], safe["invalid"], safe["rate_low"]) == (2, 0, 0.0)
    assert (broken["runs"], broken["invalid"], broken["rate_high"]) == (2, 2, 1.0)
    assert broken["violation_kinds"].get("overlap", 0) >= 2
    assert broken["time_to_first_violation_s"] is not None
    # Repetitions: distinct seeds, derived from the campaign seed, each with its own command.
    manifest = json.loads((whole / "campaign.json").read_text())
    assert manifest["campaign"]["seed"] == 42 and len(manifest["runs"]) == 4
    seeds = [r["seed"] for r in manifest["runs"]]
    assert len(set(seeds)) == 4
    for c in cells.values():
        for r in c["per_run"]:
            config = json.loads((Path(r["run_dir"]) / "config.json").read_text())
            assert config["seed"] == r["seed"] and f"--seed {r['seed']}" in r["command"]
            assert r["command"].startswith("harness run --backend ")

    one = tmp_path / "one"
    p = _compare(*CAMPAIGN, "--jobs", "1", "--store", str(one))
    assert p.returncode == 1, p.stdout + p.stderr
    assert _facts(_cells(one / "comparison.json")) == _facts(cells)

    shards = [tmp_path / f"shard-{i}" for i in range(3)]
    for i, s in enumerate(shards):
        p = _compare(*CAMPAIGN, "--shard", f"{i}/3", "--store", str(s))
        assert p.returncode in (0, 1), p.stdout + p.stderr
    ran = [len(json.loads((s / "campaign.json").read_text())["runs"]) for s in shards]
    assert sorted(ran) == [1, 1, 2]  # 4 runs over 3 slices
    out = tmp_path / "site" / "comparison.html"
    junit = tmp_path / "junit.xml"
    p = _compare(*map(str, shards), "--out", str(out), "--junit-xml", str(junit))
    assert p.returncode == 1, p.stdout + p.stderr
    gathered = _cells(out.parent / "comparison.json")
    assert _facts(gathered) == _facts(cells)
    for k in cells:
        for f in ("rate_low", "rate_high", "not_applicable"):
            assert gathered[k][f] == cells[k][f]
    html = out.read_text()
    assert "2/2 (34%–100%)" in html and "0/2 (0%–66%)" in html
    assert html.count("report.html") >= 4
    for href in html.split('href="')[1:]:
        target = href.split('"')[0]
        if target.startswith("data:"):  # the inline (empty) icon
            continue
        assert (out.parent / target).exists()  # every run link leads to its report
    suite = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"redis / none", "unsafe-redis / none"}
    assert cases["unsafe-redis / none"].find("failure") is not None
    assert cases["redis / none"].find("failure") is None
    # a cell's case can be followed up: its time, seeds, harm and the first invalid run's command
    broken_case = cases["unsafe-redis / none"]
    assert float(broken_case.get("time")) >= 2 * 1.5
    props = {p.get("name"): p.get("value") for p in broken_case.iter("property")}
    assert props["lockharness.harm"] != "safe"
    assert len(props["lockharness.seeds"].split(",")) == 2
    assert props["lockharness.rerun"].startswith("harness run --backend unsafe-redis")
    assert Path(props["lockharness.run"]).is_dir()
    assert "\nrerun: harness run --backend unsafe-redis" in broken_case.find("system-out").text
    assert (out.parent / "comparison.md").read_text().count("|") > 6
    assert broken["acted_at_once"]["runs"] == 2  # overlaps: two holders acted at once
    assert "at once 2/2" in (out.parent / "comparison.md").read_text()

    # Published: the first invalid run's report ships beside the page; the page still works
    # once moved away from every store, and no other run is linked.
    pub = tmp_path / "pub" / "findings.html"
    p = _compare(*map(str, shards), "--out", str(pub), "--publish-reports", "first-invalid")
    assert p.returncode == 1, p.stdout + p.stderr
    moved = tmp_path / "moved"
    shutil.copytree(pub.parent, moved)
    html = (moved / "findings.html").read_text()
    links = [h.split('"')[0] for h in html.split('href="')[1:] if not h.startswith("data:")]
    assert len(links) == 1 and links[0].startswith("findings-runs/"), links
    assert "invalid" in (moved / links[0]).read_text()  # the invalid run's own report
    assert html.count('class="valid-run unlinked"') == 2
    assert html.count('class="invalid-run unlinked"') == 1
    again = _compare(*map(str, shards), "--out", str(pub), "--publish-reports", "all")
    assert again.returncode == 1 and len(list((pub.parent / "findings-runs").rglob("*.html"))) == 4
    foreign = tmp_path / "foreign"
    (foreign / "comparison-runs").mkdir(parents=True)
    p = _compare(str(whole), "--out", str(foreign / "comparison.html"), "--publish-reports", "all")
    assert p.returncode == 2 and "not a directory of reports shipped" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1

    other = tmp_path / "other"
    p = _compare("--backends", "redis", "-t", "1", "--store", str(other))
    p = _compare(str(whole), str(other))
    assert p.returncode == 2 and "holds another campaign" in p.stderr


@pytest.mark.slow
def test_an_interrupted_campaign_resumes_where_it_stopped(redis_bin, tmp_path):
    store = tmp_path / "s"
    args = ["compare", "--backends", "redis", "--repeat", "3", "-t", "4", "--jobs", "1",
            "--seed", "5", "--store", str(store)]  # fmt: skip
    proc = subprocess.Popen(
        [*HARNESS, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def histories() -> list[Path]:
        return list(store.rglob("history.jsonl"))

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # the first run finished and the second is recording
        done = list(store.rglob("results.json"))
        if done and any(not (h.parent / "results.json").exists() for h in histories()):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    assert "Traceback" not in err
    manifest = json.loads((store / "campaign.json").read_text())
    assert manifest["interrupted"] is True
    finished = [d.parent for d in store.rglob("results.json")]
    configs = [json.loads((d / "config.json").read_text()) for d in finished]
    complete = [d for d, c in zip(finished, configs, strict=True) if not c["interrupted"]]
    assert len(complete) == 1 and len(finished) == 2, out  # one done, one cut short
    stamp = (complete[0] / "results.json").stat().st_mtime_ns
    for d in store.rglob("config.json"):  # the interrupted run left no server behind
        for s in json.loads(d.read_text()).get("servers", []):
            assert not pid_alive(s["pid"])

    p = harness(*args, timeout=180)
    assert "resuming: 1 of 3 runs finished before, 2 to run" in p.stdout, p.stdout + p.stderr
    assert p.returncode == 0, p.stdout + p.stderr
    assert (complete[0] / "results.json").stat().st_mtime_ns == stamp  # not run again
    cell = next(iter(_cells(store / "comparison.json").values()))
    assert (cell["runs"], cell["valid"], cell["without_verdict"]) == (3, 3, [])
    assert complete[0].as_posix() in {r["run_dir"] for r in cell["per_run"]}
    # The interrupted attempt is kept beside the one that replaced it.
    assert len(list(store.rglob("config.json"))) == 4
    p = harness(*args, timeout=60)  # everything finished: nothing runs again
    assert "resuming: 3 of 3 runs finished before, 0 to run" in p.stdout and p.returncode == 0
    # The wall time is that of every invocation into the store, not only the last one.
    manifest = json.loads((store / "campaign.json").read_text())
    invs = manifest["invocations"]
    assert [(i["runs_run"], i["interrupted"]) for i in invs] == [(2, True), (2, False), (0, False)]
    assert manifest["wall_time_s"] == round(sum(i["wall_time_s"] for i in invs), 1)
    assert invs[0]["wall_time_s"] > 1 and invs[1]["wall_time_s"] > 4  # two 4 s runs, one cut
    doc = json.loads((store / "comparison.json").read_text())
    assert doc["header"]["wall_time_s"] == manifest["wall_time_s"]
    assert doc["header"]["invocations"] == 3


@pytest.mark.slow
def test_a_campaign_killed_outright_keeps_its_wall_time(redis_bin, tmp_path):
    """An invocation records itself as it starts and as its runs finish: killed with SIGKILL
    (a machine's session ending), it still counts in the store's wall time, marked as cut."""
    store = tmp_path / "s"
    args = ["compare", "--backends", "redis", "--repeat", "3", "-t", "2", "--jobs", "1",
            "--seed", "5", "--store", str(store)]  # fmt: skip
    proc = subprocess.Popen([*HARNESS, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        manifest: dict = {}
        while time.monotonic() < deadline:  # a run finished and the record says so
            try:
                manifest = json.loads((store / "campaign.json").read_text())
            except (OSError, ValueError):
                manifest = {}
            invs = manifest.get("invocations") or [{}]
            if invs[-1].get("runs_run", 0) >= 1:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the compare and the run it had started
        proc.wait()
    (inv,) = manifest["invocations"]
    assert inv["ended_at"] is None and inv["interrupted"] is True and inv["wall_time_s"] > 1, inv
    p = harness(*args, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    manifest = json.loads((store / "campaign.json").read_text())
    cut, done = manifest["invocations"]
    assert cut["ended_at"] is None and done["ended_at"] and done["interrupted"] is False
    assert manifest["wall_time_s"] == round(cut["wall_time_s"] + done["wall_time_s"], 1)
    head = json.loads((store / "comparison.json").read_text())["header"]
    assert head["invocations"] == 2 and head["invocations_cut"] == 1
    assert head["wall_time_s"] == manifest["wall_time_s"]
