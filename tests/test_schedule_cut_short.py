"""No fault cut short: the schedule starts a fault only when it can be healed before the run's
recovery window, a fault the run's end stops early is recorded as cut short, and a run whose only
fault was cut short is UNKNOWN, not VALID.

The schedule is the harness's own code: it is driven here by a fake clock and a nemesis that
touches nothing. The end-to-end test runs real redis servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checkers import faults, lacks_evidence
from checkers.history import Op, read
from harness.nemesis.schedule import RECOVERY_SHARE, Schedule, recovery_window
from reports.faults import periods
from reports.overview import cards

from .conftest import harness


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """Records what the schedule writes, timed by the fake clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.ops: list[Op] = []

    def record(self, process, type_, f, key=None, value=None, error=None) -> None:
        t = round((self.clock() - 100.0) * 1e9)
        self.ops.append(Op(len(self.ops), t, process, type_, f, key, value, error))

    def flush(self) -> None:
        pass

    def now(self) -> int:
        return round((self.clock() - 100.0) * 1e9)


class Quiet:
    """A nemesis that injects nothing real: it only says what it would have done."""

    name = "quiet"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.in_force = False

    def duration(self) -> float:
        return self.seconds

    def start(self) -> dict[str, Any]:
        self.in_force = True
        return {"node": "n1"}

    def stop(self) -> dict[str, Any] | None:
        if not self.in_force:
            return None
        self.in_force = False
        return {"node": "n1", "healed": True}

    def teardown(self) -> None:
        self.in_force = False


def _drive(sched: Schedule, clock: Clock, until: float) -> None:
    """The run loop: a step every 50 ms until ``until`` s into the run, then the final heal."""
    while clock.t < 100.0 + until:
        sched.step()
        clock.t = round(clock.t + 0.05, 6)
    sched.heal()


def _stops(ops: list[Op]) -> list[Op]:
    return [o for o in ops if o.f.startswith("stop-") and o.type != "invoke"]


def test_a_fault_that_cannot_end_before_the_recovery_window_is_not_started() -> None:
    """`-t 8` with a 5 s interval and a 6 s client-pause: the pause would end at 11 s. It is
    not started, the schedule says why, and the run has no fault."""
    clock = Clock()
    rec = Recorder(clock)
    nem = Quiet(6.0)
    sched = Schedule([nem], rec, 5.0, 8.0, clock=clock)  # type: ignore[list-item]
    _drive(sched, clock, 8.0)
    assert rec.ops == [] and not nem.in_force
    assert sched.done and sched.not_started is not None
    assert "quiet of 6 s, due 5 s into the run" in sched.not_started
    assert "the last 0.8 s of the 8 s run" in sched.not_started
    config = {"nemesis": ["quiet"], "nemesis_interval": 5.0, "time_limit": 8.0}
    config["fault_not_started"] = sched.not_started
    why = faults.missing_evidence(faults.count(rec.ops), config, 8.0)
    assert why == ["no fault was injected: " + sched.not_started]


def test_faults_run_their_course_and_the_run_ends_healed_with_a_recovery_window() -> None:
    """A 10 s run, 2 s interval, 2 s faults: 2-4 s and 6-8 s fit (healed before 9 s, where the
    last tenth begins); a third would start at 10 s. Each ran its full duration; none is cut
    short; nothing is in force during the recovery window."""
    clock = Clock()
    rec = Recorder(clock)
    nem = Quiet(2.0)
    sched = Schedule([nem], rec, 2.0, 10.0, clock=clock)  # type: ignore[list-item]
    assert sched.recovery == pytest.approx(RECOVERY_SHARE * 10.0) == recovery_window(10.0)
    _drive(sched, clock, 10.0)
    starts = [o for o in rec.ops if o.f == "start-quiet" and o.type != "invoke"]
    stops = _stops(rec.ops)
    assert len(starts) == len(stops) == 2
    for a, b in zip(starts, stops, strict=True):
        assert b.time - a.time >= 2.0e9  # its whole planned duration
        assert "cut_short" not in b.value
    assert stops[-1].time <= (10.0 - sched.recovery) * 1e9  # healed before the window
    counts = faults.count(rec.ops)["quiet"]
    assert counts["injected"] == 2 and counts["cut_short"] == 0 and counts["healed"] == 2
    assert faults.missing_evidence({"quiet": counts}, {"nemesis": ["quiet"]}) == []


def test_a_fault_stopped_before_its_planned_end_is_recorded_cut_short() -> None:
    """The load ends early (every client at its op bound, or Ctrl-C) 1 s into a 3 s fault: the
    final heal records the stop as cut short, and the fault is not counted as injected."""
    clock = Clock()
    rec = Recorder(clock)
    nem = Quiet(3.0)
    sched = Schedule([nem], rec, 1.0, 30.0, clock=clock)  # type: ignore[list-item]
    _drive(sched, clock, 2.0)
    (stop,) = _stops(rec.ops)
    assert stop.value == {"node": "n1", "healed": True, "cut_short": True, "planned_s": 3.0}
    assert not nem.in_force
    counts = faults.count(rec.ops)["quiet"]
    assert counts["injected"] == 0 and counts["cut_short"] == 1 and counts["healed"] == 1
    told = periods(rec.ops)[0].text()
    assert "for 1.0 s; cut short by the end of the run (3 s planned), so not counted" in told, told


def _op(i: int, t_s: float, type_: str, f: str, value: Any = None) -> Op:
    return Op(i, round(t_s * 1e9), "nemesis", type_, f, value=value)


def test_a_history_whose_only_fault_was_cut_short_is_unknown() -> None:
    """A client-pause from 5.05 s to 8.03 s of a 6 s plan, healed by the end of the run: cut
    short. Valid checkers say VALID; the evidence says UNKNOWN, with that reason."""
    ops = [
        _op(0, 5.0, "invoke", "start-client-pause"),
        _op(1, 5.05, "info", "start-client-pause", {"process": 2, "pid": 1, "signal": "SIGSTOP"}),
        _op(2, 8.03, "invoke", "stop-client-pause"),
        _op(
            3, 8.03, "info", "stop-client-pause", {"pid": 1, "signal": "SIGCONT", "cut_short": True}
        ),
    ]
    counts = faults.count(ops)
    assert counts["client-pause"]["injected"] == 0
    assert counts["client-pause"]["cut_short"] == 1
    assert "1 cut short" in faults.text(counts)
    card = next(c for c in cards({"faults": counts}) if c.label == "faults injected")
    assert card.value == "0" and "1 cut short" in card.sub, card
    why = faults.missing_evidence(counts, {"nemesis": ["client-pause"]})
    assert why == ["no fault ran its course: 1 client-pause cut short by the end of the run"]
    results: dict[str, Any] = {"valid": True, "summary": "valid"}
    for reason in why:
        lacks_evidence(results, reason)
    assert results["valid"] == "unknown"
    # With a full fault before it, the run is judged on the full one and says one was cut short.
    full = [
        _op(0, 1.0, "invoke", "start-client-pause"),
        _op(1, 1.0, "info", "start-client-pause", {"process": 1, "pid": 2, "signal": "SIGSTOP"}),
        _op(2, 4.0, "invoke", "stop-client-pause"),
        _op(3, 4.0, "info", "stop-client-pause", {"pid": 2, "signal": "SIGCONT"}),
    ]
    both = full + [
        Op(i + 4, o.time, o.process, o.type, o.f, value=o.value) for i, o in enumerate(ops)
    ]
    counts = faults.count(both)["client-pause"]
    assert counts["injected"] == 1 and counts["cut_short"] == 1 and counts["healed"] == 2
    assert faults.missing_evidence({"client-pause": counts}, {"nemesis": ["client-pause"]}) == []


def test_a_cut_short_stop_after_a_failed_or_empty_start_counts_nothing() -> None:
    """cut_short only moves a fault that was in force: a pause that found no holder stays
    not injected."""
    ops = [
        _op(0, 1.0, "invoke", "start-client-pause"),
        _op(1, 4.0, "info", "start-client-pause", {"injected": False, "why": "no holder"}),
        _op(2, 5.0, "invoke", "stop-client-pause"),
        _op(3, 5.0, "info", "stop-client-pause", {"cut_short": True}),
    ]
    c = faults.count(ops)["client-pause"]
    assert c["injected"] == 0 and c["cut_short"] == 0 and c["not_injected"] == 1


def _results(store: Path) -> tuple[Path, dict[str, Any]]:
    run = (store / "latest").resolve()
    return run, json.loads((run / "results.json").read_text())


def test_client_pause_that_cannot_finish_before_the_time_limit_is_not_started(
    redis_bin, tmp_path
) -> None:
    """The issue's example on real servers: `-t 8` with a 6 s pause due at 5 s used to pause a
    holder from 5.05 s to 8.03 s and call the run VALID. Now the pause is not started and the run
    is UNKNOWN (exit 2), saying why."""
    store = tmp_path / "s"
    p = harness(
        "run", "-b", "redis", "-n", "client-pause", "-t", "8", "--seed", "3",
        "--store", str(store), "--no-report",
    )  # fmt: skip
    assert p.returncode == 2, p.stdout + p.stderr
    assert "UNKNOWN" in p.stdout and "no fault was injected" in p.stdout, p.stdout
    run, res = _results(store)
    assert res["valid"] == "unknown" and res["faults"] == {}, res["faults"]
    (why,) = [r for r in res["unknown_because"] if r.startswith("no fault")]
    assert "client-pause of 6 s, due 5" in why and "recovery window" in why, why
    config = json.loads((run / "config.json").read_text())
    assert config["recovery_s"] == 0.8
    # checking the stored run again gives the same verdict and reason
    p = harness("check", "--json", str(run))
    assert p.returncode == 2 and why in json.loads(p.stdout)["unknown_because"]


def test_client_pause_that_fits_runs_its_course_on_real_servers(redis_bin, tmp_path) -> None:
    """A 2 s pause due at 2 s in a 6 s run fits (healed by 4.1 s, before the recovery window at
    5.4 s): it runs its course, is counted injected, and the run ends healed."""
    store = tmp_path / "s"
    p = harness(
        "run", "-b", "redis", "-n", "client-pause", "-t", "6", "--nemesis-interval", "2",
        "--ttl", "1000", "--hold", "250", "-c", "3", "--keys", "1", "--seed", "1",
        "--store", str(store), "--no-report",
    )  # fmt: skip
    assert p.returncode in (0, 1), p.stdout + p.stderr  # a paused holder may break redis
    run, res = _results(store)
    c = res["faults"]["client-pause"]
    assert c["injected"] == 1 and c["cut_short"] == 0 and c["healed"] == 1, c
    assert not any(r.startswith("no fault") for r in res.get("unknown_because", []))
    ops = [o for o in read(run / "history.jsonl").ops if o.process == "nemesis"]
    start = next(o for o in ops if o.f == "start-client-pause" and o.type != "invoke")
    stop = next(o for o in ops if o.f == "stop-client-pause" and o.type != "invoke")
    assert stop.time - start.time >= 2.0e9 and "cut_short" not in stop.value
    assert stop.time <= (6.0 - recovery_window(6.0)) * 1e9


def test_a_kill_cut_short_by_the_end_of_the_load_is_unknown_on_real_servers(
    redis_bin, tmp_path
) -> None:
    """The clients reach their --ops bound while a 20 s kill is in force (retrying without
    backoff, so the bound comes within the kill at any pace): the final heal
    restarts the node, records the stop as cut short, and the run, whose only fault did not run
    its course, is UNKNOWN with that reason, in the terminal, results.json and the report."""
    store = tmp_path / "s"
    p = harness(
        "run", "-b", "redis", "-n", "kill", "--nemesis-interval", "1",
        "--nemesis-opt", "down_ms=20000", "-t", "60", "--ops", "300", "--seed", "1",
        "--backoff", "0", "--store", str(store),
    )  # fmt: skip
    assert p.returncode == 2, p.stdout + p.stderr
    assert "kill: 0 injected, 1 cut short, 1 healed" in p.stdout, p.stdout
    run, res = _results(store)
    reason = "no fault ran its course: 1 kill cut short by the end of the run"
    assert res["valid"] == "unknown" and reason in res["unknown_because"], res
    (stop,) = [
        o for o in read(run / "history.jsonl").ops if o.f == "stop-kill" and o.type != "invoke"
    ]
    assert stop.value["cut_short"] is True and stop.value["ready"] is True, stop.value
    html = (run / "report.html").read_text()
    assert "cut short by the end of the run (20 s planned)" in html and reason in html
