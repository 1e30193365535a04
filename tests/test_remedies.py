"""Remedies of an INVALID report (reports/remedies.py): each answers what happened in the run,
and each command is one the real ``harness run`` accepts: parsed by its Click parser and
checked by the run's own ``prepare`` (every check that needs no server), for several backends
and workloads. One real run shows a remedy working: redis under client pauses with stale
writes accepted, then the report's fencing remedy: none accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reports.remedies import RUN_DEFAULTS, Remedy, remedies, run_argv

ROOT = Path(__file__).resolve().parent.parent


def _wopts(workload: str, **given: Any) -> dict[str, Any]:
    """The workload's options as config.json records them: every one, with its value."""
    from workloads.registry import workload_class

    opts = {k: o.default for k, o in workload_class(workload).options.items()}
    if workload == "lock-set":
        opts["store"] = "lock"  # what prepare records for store=auto on a lock's cluster
    return opts | given


def _config(backend: str, workload: str = "mutex", **kw: Any) -> dict[str, Any]:
    wopts = _wopts(workload, **kw.pop("wopts", {}))
    lock = {"fenced": True, "model": "lease", "expiry": "ttl", "ttl_ms": float(wopts["ttl_ms"])}
    return {
        "backend": backend,
        "workload": workload,
        "workload_opts": wopts,
        "nemesis": kw.pop("nemesis", ["client-pause"]),
        "nemesis_interval": 5.0,
        "nemesis_opts": kw.pop("nemesis_opts", {}),
        "concurrency": 5,
        "keys": 2,
        "time_limit": 8.0,
        "ops": None,
        "rate": 0.0,
        "seed": 7,
        "backend_opts": kw.pop("backend_opts", {}),
        "store": kw.pop("store", "store"),
        "toxiproxy": None,
        "netns": True,
        "client_groups": 2,
        "runtime": "local",
        "images": {},
        "docker_host": None,
        "docker_netns": None,
        "compose_project": "lockharness",
        "model": "lease",
        "schedule": None,
        "backoff_ms": [10, 1000],
        "lock": lock | kw.pop("lock", {}),
        "non_durable": kw.pop("non_durable", []),
        **kw,
    }


def _hold(process: int, start_s: float, end_s: float, fence: int | None) -> dict[str, Any]:
    return {"key": "0", "process": process, "start": int(start_s * 1e9),
            "end": int(end_s * 1e9), "fence": fence, "release": "fail"}  # fmt: skip


def _results(
    kind: str = "revoked-while-held", held_s: float = 1.2, stale: int = 3, lost_by_lock: int = 0,
    lost_by_store: int = 0, fenced: bool = True,
) -> dict[str, Any]:  # fmt: skip
    first, second = _hold(1, 1.0, 1.0 + held_s, 4 if fenced else None), _hold(2, 1.6, 1.7, 5)
    checkers: dict[str, Any] = {
        "mutex": {"valid": False, "violation_kinds": {kind: 1},
                  "violations": [{"kind": kind, "key": "0", "first": first, "second": second}]},
        "fencing": {"valid": not stale or None, "enforced": False, "stale_accepted": stale,
                    "fenced_holds": 10 if fenced else 0, "non_increasing": 0},
    }  # fmt: skip
    if lost_by_lock or lost_by_store:
        checkers["set"] = {"valid": False, "lost_by_lock": lost_by_lock,
                           "lost_by_store": lost_by_store}  # fmt: skip
    return {"valid": False, "summary": "invalid", "checkers": checkers}


def _titles(found: list[Remedy]) -> list[str]:
    return [m.title for m in found]


# (config, results, the remedies expected, in order)
CASES = {
    "redis mutex, paused holder": (
        _config("redis", wopts={"ttl_ms": 500}),
        _results(),
        [
            "Enforce fence tokens at the resource",
            "Check the lock before writing",
            "A longer TTL",
            "A lock without a lease",
        ],
    ),
    "etcd lock-set, lost updates": (
        _config("etcd", "lock-set", wopts={"ttl_ms": 1000}, nemesis=["client-stall"]),
        _results(lost_by_lock=4, stale=0),
        [
            "Enforce fence tokens at the resource",
            "Write only while the lock is held, at the store",
            "A longer TTL",
            "A lock without a lease",
        ],
    ),
    "redlock, no fence tokens": (
        _config("redlock", wopts={"ttl_ms": 400}, lock={"fenced": False}),
        _results(stale=2, fenced=False),
        ["Check the lock before writing", "A longer TTL", "A lock without a lease"],
    ),
    "postgres-lease lock-set, no pause: renewal": (
        _config("postgres-lease", "lock-set", nemesis=["partition"], wopts={"ttl_ms": 500}),
        _results(lost_by_lock=2, stale=2),
        [
            "Enforce fence tokens at the resource",
            "Write only while the lock is held, at the store",
            "A longer TTL",
        ],
    ),
    "mysql-lease mutex, slow holder: renewal": (
        _config("mysql-lease", nemesis=["latency"], wopts={"ttl_ms": 500}),
        _results(stale=0),
        ["Check the lock before writing", "A longer TTL", "Renew the lease while holding"],
    ),
    "redis after kill, persistence off": (
        _config(
            "redis",
            "lock-set",
            nemesis=["kill"],
            backend_opts={"persistence": "off"},
            non_durable=["redis n1: persistence=off"],
        ),  # fmt: skip
        _results(kind="early-grant", held_s=0.1, stale=0, lost_by_store=5),
        ["A durable server setting"],
    ),
    "postgres-lease failover, asynchronous replica": (
        _config(
            "postgres-lease",
            nemesis=["kill"],
            backend_opts={"failover": True},
            non_durable=["asynchronous replica"],
        ),  # fmt: skip
        _results(kind="early-grant", held_s=0.1, stale=0),
        ["A durable server setting"],
    ),
    "unsafe-redis: grants twice by itself": (
        _config("unsafe-redis", nemesis=[], netns=False),
        _results(kind="overlap", held_s=0.01, stale=5),
        ["A lock whose grant is atomic", "Enforce fence tokens at the resource"],
    ),
    "zookeeper, session lost while paused": (
        _config("zookeeper", lock={"expiry": "hidden"}, wopts={"ttl_ms": 3000}),
        _results(held_s=4.0, stale=1),
        ["Enforce fence tokens at the resource", "A lock without a lease"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_remedies_answer_what_happened(name: str) -> None:
    config, results, expected = CASES[name]
    assert _titles(remedies(results, config)) == expected


def test_no_remedy_for_a_run_that_is_not_invalid() -> None:
    config, results, _ = CASES["redis mutex, paused holder"]
    assert remedies(results | {"valid": True}, config) == []
    assert remedies(results | {"valid": "unknown"}, config) == []


def test_a_remedy_changes_one_thing_and_says_so() -> None:
    config, results, _ = CASES["redis mutex, paused holder"]
    base = run_argv(config)
    for m in remedies(results, config):
        assert m.command.startswith("harness run --backend ")
        changed = [a for a in m.argv if a not in base]
        assert changed, m.title
        assert any(a in m.change for a in changed), (m.change, changed)  # the one it names
    ttl = next(m for m in remedies(results, config) if m.title == "A longer TTL")
    # the pause follows the TTL by default: the command pins this run's pause (2 x 500 ms)
    assert "pause_ms=1000" in ttl.argv and "ttl_ms=2500" in ttl.argv


def test_run_defaults_are_the_command_lines() -> None:
    from harness.cli import app

    params = {p.name: p.default for p in app.main.commands["run"].params}
    want = dict(RUN_DEFAULTS)
    want["backoff_ms"] = ",".join(map(str, want["backoff_ms"]))
    got = {k: params[k if k != "backoff_ms" else "backoff"] for k in want}
    assert got == want


def _accepted(argv: list[str] | tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run ``harness`` with ``argv`` up to the point where servers would start: Click parses it
    and the run's prepare checks it; returns "" when accepted, else what was printed."""
    import harness.run
    from harness import cli

    class Accepted(BaseException):
        pass

    def stop(*a: Any, **kw: Any) -> None:
        raise Accepted

    monkeypatch.setattr(harness.run, "run_test", stop)
    try:
        r = CliRunner().invoke(cli.main, list(argv))
    except Accepted:  # a BaseException: Click's runner lets it through
        return ""
    return f"exit {r.exit_code}: {r.output} {r.exception!r}"


@pytest.mark.parametrize("name", list(CASES))
def test_every_command_is_accepted_by_harness_run(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config, results, _ = CASES[name]
    config = config | {"store": str(tmp_path)}
    found = remedies(results, config)
    assert found
    for m in found:
        assert _accepted(m.argv, monkeypatch) == "", m.command
    assert _accepted(run_argv(config), monkeypatch) == ""  # the run itself, unchanged


def test_a_schedule_run_reruns_its_schedule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run made from a schedule file: its remedies run the same faults (its schedule.json),
    not a new rotation of the same kinds."""
    fault = {"kind": "client-pause", "options": {}, "start": {"at_s": 1.5}, "duration_s": 1.0,
             "targets": {"client": 3, "process": 3, "key": "1"}}  # fmt: skip
    schedule = {"format": "lockharness-schedule", "version": 1, "generator": "rotation",
                "time_limit_s": 8.0, "lease_ms": 500.0, "faults": [fault]}  # fmt: skip
    (tmp_path / "schedule.json").write_text(json.dumps(schedule))
    config, results, _ = CASES["redis mutex, paused holder"]
    config = config | {"schedule": schedule, "store": str(tmp_path)}
    argv = run_argv(config, tmp_path)
    assert argv[argv.index("--schedule") + 1] == str(tmp_path / "schedule.json")
    assert "--nemesis" not in argv
    found = remedies(results, config, tmp_path)
    assert "A longer TTL" in _titles(found)
    for m in found:
        assert "--schedule" in m.argv and "--nemesis-opt" not in m.argv
        assert _accepted(m.argv, monkeypatch) == "", m.command


def _run(argv: list[str] | tuple[str, ...], store: Path) -> dict[str, Any]:
    """``harness run`` as a user runs it; its results.json."""
    out = subprocess.run(
        [sys.executable, "-m", "harness", *argv, "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode in (0, 1), out.stderr[-2000:]
    doc = json.loads(out.stdout)
    run_dir = Path(doc["run"])
    results = json.loads((run_dir / "results.json").read_text())
    return {"run_dir": run_dir, "results": results,
            "config": json.loads((run_dir / "config.json").read_text())}  # fmt: skip


def test_the_fencing_remedy_stops_the_stale_writes(redis_bin: None, store: Path) -> None:
    first = _run(
        ["run", "--backend", "redis", "--nemesis", "client-pause", "-t", "4",
         "--nemesis-interval", "1", "--ttl", "300", "--seed", "2"],
        store,
    )  # fmt: skip
    res = first["results"]
    assert res["valid"] is False, res["summary"]
    assert res["checkers"]["fencing"]["stale_accepted"] > 0, res["summary"]
    found = remedies(res, first["config"], first["run_dir"])
    fence = next(m for m in found if m.change == "--workload-opt fencing=true")
    # the report ends with it
    page = (first["run_dir"] / "report.html").read_text()
    assert "What to do" in page and "fencing=true" in page
    argv = list(fence.argv)
    argv = argv[: argv.index("--store")]  # its own store: the test's
    again = _run(argv, store)["results"]
    fencing = again["checkers"]["fencing"]
    assert fencing["enforced"] is True
    assert fencing["stale_accepted"] == 0, again["summary"]
    assert fencing["stale_rejected"] > 0, again["summary"]  # the paused holder did try


def test_the_check_refuses_what_harness_run_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a guarded write on a store that cannot see the lock, an
    option no workload has, are refused before any server starts."""
    base = ["run", "--backend", "redlock", "--workload", "lock-set", "-t", "8"]
    assert "write=guarded" in _accepted([*base, "--workload-opt", "write=guarded"], monkeypatch)
    assert "no option" in _accepted([*base, "--workload-opt", "fence=true"], monkeypatch)


def test_a_run_outside_a_namespace_reruns_outside() -> None:
    config, _, _ = CASES["unsafe-redis: grants twice by itself"]
    argv = run_argv(config)
    assert argv[argv.index("--netns") + 1] == "off"
    assert "--netns" not in run_argv(CASES["redis mutex, paused holder"][0])  # auto, as given
