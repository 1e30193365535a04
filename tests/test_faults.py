"""A faulted run is VALID only with evidence that its faults were injected: bad nemesis option
values are refused before any server starts, a run whose faults never fired or failed is
UNKNOWN, fault counts come from the history, and a compare matrix runs every cell that can."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from backends.option_values import Option
from checkers import faults
from checkers.history import Op
from harness.nemesis import nemeses
from harness.nemesis.options import accepted, described
from harness.runtime.base import free_port
from harness.toxiproxy import ToxiproxyClient, ToxiproxyError

from .conftest import HARNESS, ROOT, harness, pid_alive

BAD_NEMESIS_INPUT = [
    (["-n", "flaky", "--nemesis-opt", "share=2"], "share='2'", "(0, 1]"),
    (["-n", "latency", "--nemesis-opt", "latency_ms=-50"], "latency_ms='-50'", ">= 0"),
    (["-n", "slow", "--nemesis-opt", "rate_kbs=0"], "rate_kbs='0'", ">= 1"),
    (["-n", "kill", "--nemesis-opt", "down_ms=nan"], "down_ms='nan'", ">= 0"),
    (["-n", "kill", "--nemesis-opt", "target=n4"], "'n4'", "n1"),
    (["-n", "latency", "--nemesis-opt", "target=n2"], "'n2'", "all, random, n1"),
    (["-n", "client-pause", "--nemesis-opt", "pause_ms=0"], "pause_ms='0'", "> 0"),
    (["-n", "clock", "--nemesis-opt", "offset_ms=1e13"], "offset_ms='1e13'", "number in"),
    (["-n", "partition", "--nemesis-opt", "topology=bridge"], "'bridge'", "isolate-one"),
    (["-n", "kill", "-t", "5"], "--time-limit 5 s", "--nemesis-interval 5 s"),
]


@pytest.mark.parametrize(("args", "named", "accepted"), BAD_NEMESIS_INPUT)
def test_bad_nemesis_input_is_refused_before_any_server_starts(
    redis_bin, tmp_path, args, named, accepted
):
    store = tmp_path / "store"
    p = harness("run", "-b", "redis", *args, "--store", str(store), timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert named in lines[0] and accepted in lines[0], lines[0]
    assert not store.exists()  # nothing started, nothing written


def test_clock_on_etcd_is_refused_before_start(tmp_path):
    store = tmp_path / "store"
    p = harness("run", "-b", "etcd", "-n", "clock", "--store", str(store), timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "cannot move etcd's clock" in p.stderr and not store.exists()


def test_every_nemesis_option_declares_its_type_and_range():
    for cls in nemeses().values():
        for name, opt in cls.options.items():
            assert isinstance(opt, Option), (cls.name, name)
            assert accepted(opt) and opt.help and described(opt), (cls.name, name)


def _nemesis_ops(*rows: tuple[str, str, object, str | None]) -> list[Op]:
    return [
        Op(i, i * 1000, "nemesis", t, f, value=v, error=e) for i, (t, f, v, e) in enumerate(rows)
    ]


def test_fault_counts_and_evidence_from_a_history():
    ops = _nemesis_ops(
        ("invoke", "start-kill", None, None),
        ("info", "start-kill", {"node": "n1"}, None),
        ("invoke", "stop-kill", None, None),
        ("info", "stop-kill", {"node": "n1", "restarted": True}, None),
        ("invoke", "start-latency", None, None),
        ("info", "start-latency", None, "ToxiproxyError: 409 toxic already exists"),
        ("invoke", "stop-latency", None, None),
        ("info", "stop-latency", None, None),  # nothing to heal
    )
    c = faults.count(ops)
    assert c["kill"] | {} == {
        "attempted": 1,
        "injected": 1,
        "cut_short": 0,
        "failed": 0,
        "not_injected": 0,
        "healed": 1,
        "heal_failed": 0,
    }
    assert c["latency"]["failed"] == 1 and c["latency"]["healed"] == 0
    unready = faults.count(
        _nemesis_ops(
            ("invoke", "start-kill", None, None),
            ("info", "start-kill", {"node": "n1"}, None),
            ("invoke", "stop-kill", None, None),
            ("info", "stop-kill", {"node": "n1", "restarted": True, "ready": False}, None),
        )
    )
    assert unready["kill"]["healed"] == 0 and unready["kill"]["heal_failed"] == 1
    why = faults.missing_evidence(c, {"nemesis": ["kill", "latency"]})
    assert why == ["1 of 1 latency injection(s) failed: ToxiproxyError: 409 toxic already exists"]
    # only the kill: evidence enough
    assert faults.missing_evidence({"kill": c["kill"]}, {"nemesis": ["kill"]}) == []
    # asked for faults, none in the history
    why = faults.missing_evidence({}, {"nemesis": ["kill"], "nemesis_interval": 5}, 3.2)
    assert why and why[0].startswith("no fault was injected: the load ended after 3.2 s")
    # a pause that found no holder put nothing in force
    paused = faults.count(
        _nemesis_ops(
            ("invoke", "start-client-pause", None, None),
            ("info", "start-client-pause", {"injected": False, "why": "no holder"}, None),
        )
    )
    assert paused["client-pause"]["injected"] == 0
    assert faults.missing_evidence(paused, {"nemesis": ["client-pause"]})[0].startswith(
        "no fault was injected: 1 attempt(s) did not take effect (no holder)"
    )
    # Jepsen writes nemesis invocations as info: each pairs with the next op of its f
    jepsen = faults.count(
        _nemesis_ops(
            ("info", "start", None, None),
            ("info", "start", ":isolated", None),
            ("info", "stop", None, None),
            ("info", "stop", ":network-healed", None),
        )
    )
    assert jepsen["nemesis"]["injected"] == 1 and jepsen["nemesis"]["healed"] == 1


def _results(store: Path) -> tuple[Path, dict]:
    run = (store / "latest").resolve()
    return run, json.loads((run / "results.json").read_text())


def test_faulted_run_records_injected_and_healed_counts(redis_bin, tmp_path):
    store, junit = tmp_path / "s", tmp_path / "junit.xml"
    p = harness(
        "run", "-b", "redis", "-n", "pause", "--nemesis-interval", "1", "-t", "4",
        "--store", str(store), "--junit-xml", str(junit),
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    run, res = _results(store)
    pause = res["faults"]["pause"]
    assert pause["injected"] >= 1 and pause["healed"] == pause["injected"], pause
    assert pause["failed"] == 0 and "unknown_because" not in res
    assert f"pause: {pause['injected']} injected" in p.stdout
    verdict = next(
        c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "verdict"
    )
    assert verdict.find("error") is None and verdict.find("failure") is None
    # checking the stored run again gives the same counts
    p = harness("check", "--json", str(run))
    assert p.returncode == 0 and json.loads(p.stdout)["faults"] == res["faults"]


def test_run_whose_fault_never_fired_is_unknown(redis_bin, tmp_path):
    """The clients' --ops bound ends the load long before the first fault is due."""
    store, junit = tmp_path / "s", tmp_path / "junit.xml"
    p = harness(
        "run", "-b", "redis", "-n", "kill", "--nemesis-interval", "20", "-t", "30",
        "--ops", "20", "--store", str(store), "--junit-xml", str(junit),
    )  # fmt: skip
    assert p.returncode == 2, p.stdout + p.stderr
    assert "UNKNOWN" in p.stdout and "no fault was injected" in p.stdout
    run, res = _results(store)
    assert res["valid"] == "unknown" and res["faults"] == {}
    assert res["unknown_because"][0].startswith("no fault was injected: the load ended after")
    suite = ET.parse(junit).getroot()
    verdict = next(c for c in suite.iter("testcase") if c.get("name") == "verdict")
    assert "no fault was injected" in verdict.find("error").get("message")
    assert int(suite.get("errors")) >= 1
    assert "no fault was injected" in (run / "report.html").read_text()


def test_run_whose_injection_fails_is_unknown(redis_bin, tmp_path):
    """A real Toxiproxy already holds a toxic of the nemesis's name: every injection fails. The
    4 s fault due at 4 s must end before the recovery window (the last 0.95 s of 9.5 s), or it
    would not be attempted at all."""
    port = free_port("127.0.0.1")
    server = subprocess.Popen(
        [*HARNESS[:2], "harness.toxiproxy", "--port", str(port)], cwd=ROOT, stderr=subprocess.PIPE
    )
    store = tmp_path / "s"
    try:
        api = ToxiproxyClient(f"http://127.0.0.1:{port}", timeout=2.0)
        _wait(lambda: api.proxies() is not None, "the proxy server to answer")
        run = subprocess.Popen(
            [*HARNESS, "run", "-b", "redis", "-n", "latency", "--nemesis-interval", "4",
             "-t", "9.5", "--toxiproxy", api.url, "--netns", "off", "--store", str(store)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # As soon as the run's proxies exist (well before the first fault, 4 s in), take the
        # toxic name its injection will ask for.
        _wait(lambda: len(api.proxies()) >= 2, "the run's proxies")
        for name in api.proxies():
            api.add_toxic(name, "latency", {"latency": 1}, name="nemesis-latency")
        out, err = run.communicate(timeout=120)
    finally:
        server.terminate()
        server.wait(10)
    assert run.returncode == 2, out + err
    _, res = _results(store)
    assert res["faults"]["latency"]["failed"] >= 1 and res["faults"]["latency"]["injected"] == 0
    assert any("latency injection(s) failed" in r for r in res["unknown_because"])
    assert "latency injection(s) failed" in out
    assert not pid_alive(server.pid)


def _wait(cond, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (ToxiproxyError, OSError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_compare_shows_an_inapplicable_cell_and_runs_the_others(redis_bin, tmp_path):
    store = tmp_path / "s"
    p = harness(
        "compare", "--backends", "etcd,redis", "--nemeses", "none,clock", "-t", "2.5",
        "--nemesis-interval", "1", "--store", str(store), timeout=180,
    )  # fmt: skip
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode in (0, 1), p.stdout + p.stderr  # redis under clock may break
    html = (store / "comparison.html").read_text()
    assert "not applicable" in html and "cannot move etcd" in html
    ran = {d.parent.parent.name for d in store.rglob("results.json")}
    assert ran == {"etcd-mutex-none", "redis-mutex-none", "redis-mutex-clock"}, ran
    assert not list(store.rglob("etcd-mutex-clock*"))  # refused before start: nothing on disk
    assert ((store / "latest").resolve() / "results.json").exists()


def test_compare_with_no_runnable_cell_writes_the_page_and_exits_2(tmp_path):
    store = tmp_path / "s"
    p = harness("compare", "--backends", "etcd", "--nemeses", "clock", "--store", str(store))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stdout + p.stderr
    assert "not applicable" in (store / "comparison.html").read_text()
    assert not (store / "latest").exists()


def test_compare_cell_without_its_server_binary_is_shown_and_the_others_run(redis_bin, tmp_path):
    if shutil.which("mongod"):
        pytest.skip("mongod is installed here: the mongodb cell would run")
    store = tmp_path / "s"
    p = harness(
        "compare", "--backends", "mongodb,redis", "-t", "2", "--store", str(store), timeout=120
    )
    assert p.returncode == 2, p.stdout + p.stderr  # a cell the user asked for did not run
    html = (store / "comparison.html").read_text()
    assert "not available here" in html and "mongod not found" in html
    latest = (store / "latest").resolve()
    assert latest.parent.name == "redis-mutex-none" and (latest / "results.json").exists()
    assert not list(store.rglob("mongodb-*"))


def test_compare_shows_a_cell_whose_fault_cannot_fire_as_not_applicable(tmp_path):
    """A cell whose fault could not fire in its time limit is not applicable (as --help says): the
    other cells run; a campaign in which no cell can run is refused, exit 2, never a bare 0."""
    store = tmp_path / "s"
    p = harness(
        "compare", "--backends", "redis", "--nemeses", "none,kill", "-t", "5",
        "--store", str(store),
    )  # fmt: skip
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    out = p.stdout + p.stderr
    assert "kill: not applicable" in out
    assert "--time-limit 5 s is not longer than --nemesis-interval 5 s" in out
    assert list(store.glob("runs/redis-mutex-none-*")) and not list(
        store.glob("runs/redis-mutex-kill*")
    )
    only = tmp_path / "k"
    p = harness(
        "compare", "--backends", "redis", "--nemeses", "kill", "-t", "5", "--store", str(only)
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stdout + p.stderr
