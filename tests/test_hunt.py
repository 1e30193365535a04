"""harness replay and harness hunt on real servers: a deliberately unsafe lock is found and its
schedule shrunk and replayed; faults that cannot break a lock end in "no failing schedule" (exit
0, never "safe"); bad input is one line, exit 2. Budgets are small: the suite must stay fast."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from checkers.history import Op, read
from harness.hunt.near_miss import measure
from harness.nemesis.schedule import parse_faults

from .conftest import harness


def _hunt_dir(store: Path) -> Path:
    (d,) = [p.parent for p in store.glob("*/*/hunt.json")]
    return d


def test_replay_measures_a_reproduction_rate(redis_bin, store: Path) -> None:
    p = harness("run", "-b", "unsafe-redis", "-t", "1.5", "-c", "8", "--seed", "2", "--no-report",
                "--store", str(store / "s"))  # fmt: skip
    assert p.returncode in (0, 1, 2), p.stdout + p.stderr
    run = (store / "s" / "latest").resolve()
    p = harness("replay", str(run), "--repeat", "2", "--jobs", "2", "--store", str(store / "r"))
    assert p.returncode in (0, 1), p.stdout + p.stderr
    doc = json.loads((store / "r" / "replay.json").read_text())
    assert {"runs", "invalid", "rate_low", "rate_high"} <= set(doc), doc
    assert doc["runs"] == 2 and 0 <= doc["rate_low"] <= doc["rate_high"] <= 1, doc
    assert p.returncode == (1 if doc["invalid"] else 0)
    assert f"{doc['invalid']} invalid of 2" in p.stdout and "not a promise" in p.stdout
    assert (store / "r" / "replays.html").exists()
    for d in doc["run_dirs"]:  # each replay ran the recorded schedule with the run's seed
        config = json.loads((Path(d) / "config.json").read_text())
        assert config["seed"] == 2 and config["schedule"] == [], config


def test_bad_input_is_one_line_exit_2(store: Path) -> None:
    for args, said in [
        (["hunt", "-b", "redis", "--faults", "nope", "--budget", "5"], "unknown nemesis 'nope'"),
        (["hunt", "-b", "nope", "--budget", "5"], "nope"),
        (["hunt", "-b", "redis", "--faults", " , ", "--budget", "5"], "--faults needs"),
        (["replay", str(store)], "not a run directory"),
    ]:
        p = harness(*args, "--store", str(store / "h"))
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], (args, p.stderr)


def test_a_hunt_finds_shrinks_and_replays_a_failing_schedule(redis_bin, store: Path) -> None:
    """unsafe-redis breaks under load alone: the hunt finds a failing candidate, shrinks it
    (its passes judged over several runs) and hands back a minimal schedule, its report, its
    reproduction rate and the command that replays it."""
    p = harness("hunt", "-b", "unsafe-redis", "--faults", "pause", "--ttl", "300", "-c", "8",
                "--budget", "60", "-t", "2", "--replay", "2", "--seed", "1",
                "--store", str(store), timeout=150)  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FOUND" in p.stdout and "hunt: 1 candidates" in p.stderr, p.stdout + p.stderr
    d = _hunt_dir(store)
    doc = json.loads((d / "hunt.json").read_text())
    assert doc["found"] is True and doc["candidates"] >= 2 and doc["runs"] >= 3, doc
    minimal = doc["schedule"]["faults"]
    first = doc["tried"][0]
    assert "invalid" in first["verdicts"] and len(minimal) <= len(first["faults"]), doc["tried"]
    assert any(t["phase"] != "search" for t in doc["tried"])  # it shrank
    parse_faults(json.loads((d / "minimal-schedule.json").read_text()))  # a runnable file
    assert "--schedule" in doc["command"] and str(d / "minimal-schedule.json") in doc["command"]
    rep = doc["reproduction"]
    assert rep["runs"] + rep["unknown"] + rep["errors"] == 2 and rep["invalid"] >= 1, rep
    assert doc["report"] and Path(doc["report"]).exists()
    html = (d / "hunt.html").read_text()
    assert "The minimal counterexample" in html and "Shrinking" in html


def test_a_hunt_that_cannot_break_the_lock_says_no_failing_schedule(redis_bin, store: Path) -> None:
    """Pausing a single redis server for less than the TTL (3 s; in a 2 s run every pause
    the hunt draws is 0.75 or 1.5 s) stalls every client, but no grant comes late enough to
    outlive its lease, and none comes while another is held: no such schedule breaks it. (A
    pause longer than the TTL can: an acquire's reply delayed past its lease.) The hunt ends
    within its budget, exit 0, saying how much it tried, never that the lock is safe."""
    p = harness("hunt", "-b", "redis", "--faults", "pause", "--budget", "14", "-t", "2",
                "--store", str(store), timeout=90)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert "no failing schedule in" in p.stdout, p.stdout + p.stderr
    assert not re.search(r"\bsafe\b", p.stdout, re.IGNORECASE), p.stdout
    doc = json.loads((_hunt_dir(store) / "hunt.json").read_text())
    assert doc["found"] is False and doc["candidates"] >= 1 and doc["wall_s"] < 14 + 60, doc
    assert all("invalid" not in t["verdicts"] for t in doc["tried"])
    assert (_hunt_dir(store) / "hunt.html").exists()


def test_near_misses_of_a_paused_holder(redis_bin, store: Path) -> None:
    """A holder frozen past its TTL acted past its lease; the grant that followed came after
    its lease's earliest expiry but before it stopped acting: a margin at or below zero."""
    sched = store / "s.json"
    sched.write_text(json.dumps([{"kind": "client-pause", "start": {"at_s": 0.3},
                                  "duration_s": 0.9}]))  # fmt: skip
    p = harness("run", "-b", "redis", "--ttl", "300", "--hold", "50", "-t", "2", "--keys", "1",
                "--schedule", str(sched), "--no-report", "--store", str(store / "r"))  # fmt: skip
    assert p.returncode in (0, 1), p.stdout + p.stderr
    run = (store / "r" / "latest").resolve()
    near = measure(read(run / "history.jsonl").ops, 300)
    assert near["acted_past_lease_ms"] is not None and near["acted_past_lease_ms"] > 0, near
    if p.returncode == 1:
        assert near["grant_margin_ms"] is not None and near["grant_margin_ms"] <= 0, near
    without_ttl = measure(read(run / "history.jsonl").ops, None)
    assert without_ttl["acted_past_lease_ms"] is None, without_ttl


def test_every_drawn_schedule_is_a_valid_file_that_fits_the_run() -> None:
    """The search's candidates are schedule files a run accepts, whose faults can all heal
    before the recovery window even when every acquire-relative start comes at once."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from harness.hunt.search import Space, draw_schedule
    from harness.nemesis.schedule import check_fit

    space = Space(["kill", "client-pause"], {"kill": ["random", "n1"], "client-pause": []}, 3000,
                  8, ["client-pause"], 2)  # fmt: skip
    seen: set[str] = set()

    @settings(max_examples=200, database=None, deadline=None)
    @given(st.data())
    def drawn(data: st.DataObject) -> None:
        faults = draw_schedule(data, space)
        check_fit(parse_faults(faults), 8)
        end = 0.0
        for f in faults:
            end = max(end, f["start"].get("at_s", 0)) + f["start"].get("delay_ms", 0) / 1000
            end += f["duration_s"]
            if "target" in f:  # a lock holder's target, only on a fault that takes one
                assert f["kind"] == "client-pause", f
                seen.add(json.dumps(f["target"]))
        assert end <= space.horizon + 1e-6, faults

    drawn()
    assert seen == {'"trigger"', '{"holder_of": "0"}', '{"holder_of": "1"}'}, seen


def _history(steps: list[tuple[float, int, str, str, int | None]]) -> list[Op]:
    """Ops of key "0" from (ms, process, type, f, value) in time order."""
    return [Op(i, int(ms * 1e6), p, t, f, "0", v, None) for i, (ms, p, t, f, v) in enumerate(steps)]


def _hold_and_write(p: int, t: float, fence: int, write_at: float) -> list[tuple[Any, ...]]:
    return [(t, p, "invoke", "acquire", None), (t + 1, p, "ok", "acquire", fence),
            (write_at, p, "invoke", "write", fence), (write_at + 1, p, "ok", "write", fence)]  # fmt: skip


def test_fence_near_misses_of_a_synthetic_history() -> None:
    """The fences' near misses: how long before its successor's write a write came (below 0 a
    stale write the resource accepted after a higher fence), and the token's headroom."""
    handed = sorted(
        _hold_and_write(0, 0, 1, 10) + [(20, 0, "invoke", "release", 1), (21, 0, "ok", "release", 1)]
        + _hold_and_write(1, 22, 2, 30) + [(40, 1, "invoke", "release", 2), (41, 1, "ok", "release", 2)]
        + _hold_and_write(2, 42, 5, 50)
    )  # fmt: skip
    near = measure(_history(handed), 300)
    # each write came 21 ms before the next holder's was accepted; tokens rose by 1, then 3
    assert near["stale_write_margin_ms"] == 21 and near["fence_gap"] == 1, near

    def paused(wakes_at: float) -> dict[str, Any]:
        """Holder 0 frozen before its write; holder 1 granted after its lease, writes at 410."""
        steps = _hold_and_write(0, 0, 1, wakes_at) + _hold_and_write(1, 399, 2, 410)
        return measure(_history(sorted(steps)), 300)

    near = paused(405)  # woke 6 ms before its successor's write was accepted: a near miss
    assert near["stale_write_margin_ms"] == 6 and near["fence_gap"] == 1, near
    near = paused(500)  # woke after: a stale write 89 ms late, its token 1 below the top
    assert near["stale_write_margin_ms"] == -89 and near["fence_gap"] == -1, near
    unfenced = [(ms, p, t, f, None) for ms, p, t, f, _v in sorted(handed)]
    near = measure(_history(unfenced), 300)
    assert near["stale_write_margin_ms"] is None and near["fence_gap"] is None, near
