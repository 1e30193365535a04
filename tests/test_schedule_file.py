"""Schedules as data: every run writes schedule.json, ``harness run --schedule FILE`` runs
exactly that schedule (checked before anything starts), and a run's own schedule.json given back
runs the same faults. Real redis servers; bad input never starts one."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pytest

from checkers.history import read
from harness.nemesis.schedule import ScheduleError, parse_faults

from .conftest import harness


def _schedule(store: Path) -> tuple[Path, dict[str, Any]]:
    run = (store / "latest").resolve()
    return run, json.loads((run / "schedule.json").read_text())


BAD = [  # refused by the run's preparation, before any server starts
    ({"faults": [{"kind": "no-such-fault"}]}, "unknown nemesis 'no-such-fault'"),
    ({"faults": [{"kind": "kill", "options": {"x": "1"}}]}, "takes no option x"),
    ({"faults": [{"kind": "kill", "options": {"target": "n9"}}]}, "'n9' is not a node"),
    ({"faults": [{"kind": "kill", "start": {"at_s": 3.9}, "duration_s": 1}]}, "recovery window"),
    ({"faults": [{"kind": "kill", "target": {"holder_of": "0"}}]}, "kill takes no target"),
    (
        {"faults": [{"kind": "client-pause", "target": {"holder_of": "2"}}]},
        "not a key of this run",
    ),
]
SHAPES = [  # refused by the file's reader (the same one line)
    ({"faults": [{"kind": "kill", "start": {"at_s": -1}}]}, "start.at_s must be a number"),
    ({"faults": [{"kind": "kill", "start": {"after": "release"}}]}, "start.after must be"),
    ({"faults": [{"kind": "kill", "when": 1}]}, "unknown field 'when'"),
    (
        [
            {"kind": "kill", "start": {"at_s": 1}, "duration_s": 2},
            {"kind": "pause", "start": {"at_s": 2}, "duration_s": 0.5},
        ],
        "faults run one at a time",
    ),
    ({"format": "other"}, "format is 'other'"),
    ([{"kind": "kill", "duration_s": 0}], "duration_s must be a number"),
    ({"faults": "kill"}, "expected"),
    ([{"kind": "client-pause", "target": "trigger"}], "needs a start after an event"),
    ([{"kind": "client-pause", "target": "holder"}], 'target must be "trigger" or'),
    ([{"kind": "client-pause", "target": {"holder_of": "k"}}], "holder_of must be a key name"),
]


@pytest.mark.parametrize("raw,said", BAD, ids=[s for _, s in BAD])
def test_a_bad_schedule_is_refused_before_anything_starts(raw: Any, said: str) -> None:
    from harness.run import prepare
    from harness.run.config import RunConfig

    with pytest.raises(ValueError, match=said):  # NemesisError and ScheduleError are ValueErrors
        prepare(RunConfig(backend="redis", time_limit=4, schedule=parse_faults_raw(raw)))


def parse_faults_raw(raw: Any) -> list[dict[str, Any]]:
    return raw["faults"]


def test_the_command_line_refuses_a_bad_schedule_in_one_line(tmp_path: Path) -> None:
    raw, said = BAD[1]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(raw))
    store = tmp_path / "store"
    p = harness("run", "-b", "redis", "--schedule", str(path), "-t", "4", "--store", str(store))
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], p.stderr
    assert not store.exists() or not any(store.iterdir())  # nothing started, nothing stored


@pytest.mark.parametrize("raw,said", SHAPES, ids=[s for _, s in SHAPES])
def test_a_badly_shaped_schedule_says_what_is_wrong(raw: Any, said: str) -> None:
    with pytest.raises(ScheduleError, match=said):
        parse_faults(raw)


def test_schedule_file_errors_that_need_no_run(tmp_path: Path) -> None:
    p = harness("run", "-b", "redis", "--schedule", str(tmp_path / "none.json"))
    assert p.returncode == 2 and "No such file" in p.stderr, p.stderr
    (tmp_path / "x.json").write_text("{not json")
    p = harness("run", "-b", "redis", "--schedule", str(tmp_path / "x.json"))
    assert p.returncode == 2 and "not JSON" in p.stderr, p.stderr
    (tmp_path / "ok.json").write_text('[{"kind": "kill"}]')
    p = harness("run", "-b", "redis", "-n", "pause", "--schedule", str(tmp_path / "ok.json"))
    assert p.returncode == 2 and "give one" in p.stderr, p.stderr
    # a schedule as recorded (with what a run observed) reads back as its plan
    (f,) = parse_faults(
        [{"kind": "kill", "start": {"at_s": 1.5}, "duration_s": 1, "started_s": 1.5, "targets": {}}]
    )
    assert (f.kind, f.start.at_s, f.duration_s) == ("kill", 1.5, 1.0)


def _planned(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (f["kind"], f["options"], f["start"], f["duration_s"], f["targets"].get("node"))
        for f in doc["faults"]
    ]


def test_a_runs_schedule_given_back_runs_the_same_faults(redis_bin, store: Path) -> None:
    """The rotation records its schedule (random targets pinned to the node they hit); that file
    given to --schedule runs the same faults at the same times, for the same durations."""
    common = ["-b", "redis", "--ttl", "300", "-t", "5", "--no-report", "--seed", "5"]
    p = harness("run", *common, "-n", "kill,pause", "--nemesis-interval", "0.8",
                "--store", str(store / "a"))  # fmt: skip
    assert p.returncode in (0, 1, 2), p.stdout + p.stderr
    first_run, first = _schedule(store / "a")
    assert first["generator"] == "rotation" and len(first["faults"]) >= 2, first
    for f in first["faults"]:
        assert f["injected"] and f["healed_s"] > f["in_force_s"] >= f["started_s"], f
        assert f["options"]["target"] == f["targets"]["node"]  # pinned
    p = harness("run", *common, "--schedule", str(first_run / "schedule.json"),
                "--store", str(store / "b"))  # fmt: skip
    assert p.returncode in (0, 1, 2), p.stdout + p.stderr
    again_run, again = _schedule(store / "b")
    assert again["generator"] == "file"
    assert _planned(again) == _planned(first)
    for a, b in zip(first["faults"], again["faults"], strict=True):
        assert b["injected"] and abs(b["started_s"] - a["started_s"]) < 1.0, (a, b)
    config = json.loads((again_run / "config.json").read_text())
    assert config["nemesis"] == ["kill", "pause"] and len(config["schedule"]) == len(
        first["faults"]
    )


def test_an_event_relative_start_follows_an_observed_acquire(redis_bin, store: Path) -> None:
    """ "Pause a holder 150 ms after a client's next acquire": the fault's start op comes at
    least 150 ms after some acquire returned ok, and a run without faults writes an empty
    schedule."""
    sched = store / "ev.json"
    sched.write_text(
        json.dumps(
            [{"kind": "client-pause", "start": {"after": "acquire", "delay_ms": 150},
              "duration_s": 0.5}]
        )
    )  # fmt: skip
    p = harness("run", "-b", "redis", "--ttl", "300", "--hold", "400", "-t", "3", "--no-report",
                "--schedule", str(sched), "--store", str(store / "s"))  # fmt: skip
    assert p.returncode in (0, 1), p.stdout + p.stderr
    run, doc = _schedule(store / "s")
    (f,) = doc["faults"]
    assert f["start"] == {"after": "acquire", "delay_ms": 150.0} and f["injected"], f
    ops = read(run / "history.jsonl").ops
    start = next(o for o in ops if o.f == "start-client-pause" and o.type == "invoke")
    oks = [o.time for o in ops if o.f == "acquire" and o.type == "ok" and o.time < start.time]
    # the first acquire of the run triggers it: 150 ms later (and not seconds later)
    assert oks and 149e6 <= start.time - min(oks) < 1.5e9, (oks[:3], start)
    p = harness("run", "-b", "redis", "-t", "1", "--no-report", "--store", str(store / "n"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert _schedule(store / "n")[1]["faults"] == []


def test_the_trigger_target_pauses_the_client_that_acquired(redis_bin, store: Path) -> None:
    """ "Pause the holder TTL + 10 ms after its acquire": redis's lock is correct by design (a
    holder renews its lease every 100 ms), but its holder frozen for 1.2 s, past its TTL, wakes
    after another client was granted the key and writes: INVALID, with the story. One key, so
    the other clients all wait for it (with two, each picks a key at random and all may pick the
    other one during the pause: no second holder, a lapse, VALID). The client recorded as hit
    is the one whose acquire started the delay; a holder_of target, read back from
    schedule.json, round-trips."""
    sched = store / "trigger.json"
    fault = {"kind": "client-pause", "start": {"after": "acquire", "delay_ms": 310},
             "target": "trigger", "duration_s": 1.2}  # fmt: skip
    sched.write_text(json.dumps([fault]))
    p = harness("run", "-b", "redis", "--ttl", "300", "--hold", "600", "--renew-every", "100",
                "-c", "4", "--keys", "1", "-t", "3", "--schedule", str(sched),
                "--store", str(store / "s"))  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr
    run, doc = _schedule(store / "s")
    (f,) = doc["faults"]
    assert f["target"] == "trigger" and f["injected"], f
    ops = read(run / "history.jsonl").ops
    pause = next(o for o in ops if o.f == "start-client-pause" and o.type == "invoke")
    # the paused client's latest grant came 310 ms before, and it had not released it
    hit = f["targets"]["process"]
    trigger = max((o for o in ops if o.f == "acquire" and o.type == "ok" and o.process == hit
                   and o.time < pause.time), key=lambda o: o.time)  # fmt: skip
    assert trigger.key == f["targets"]["key"], (f, trigger)
    assert 309e6 <= pause.time - trigger.time < 2e9, (trigger, pause)
    assert not [o for o in ops if o.process == hit and o.f == "release"
                and trigger.time < o.time < pause.time]  # fmt: skip
    report = html.unescape((run / "report.html").read_text())
    assert f"paused client {hit}'s process" in report, report[:2000]  # the story
    (again,) = parse_faults(
        [{**fault, "start": {"at_s": 0.5}, "target": {"holder_of": 0}, "targets": f["targets"]}]
    )
    assert again.to_dict()["target"] == {"holder_of": "0"}
