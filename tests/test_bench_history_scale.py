"""bench/history_scale.py's histories past 10^7 ops are copies of the 10^7 one: the copies must
be one well-formed history whose violations are the copy's, once per copy (else the 10^8 figure
would time another workload)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import history_scale
from harness.run.analyse import recheck


def test_a_tiled_history_is_its_copies_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_scale, "TILE", 3000)
    tiled = history_scale.run_dir(tmp_path, 8000)  # ceil(8000 / 3000) = 3 copies
    base = tmp_path / "mutex-3000"
    one, three = recheck(base, render=False), recheck(tiled, render=False)
    rows = [json.loads(line) for line in (tiled / "history.jsonl").read_text().splitlines()]
    n = len(rows) // 3
    assert len(rows) == 3 * n and [r["index"] for r in rows] == list(range(3 * n))
    times = [r["time"] for r in rows]
    assert times == sorted(times)
    clients = [{r["process"] for r in rows[c * n : (c + 1) * n]} for c in range(3)]
    keys = [{r.get("key") for r in rows[c * n : (c + 1) * n]} - {None} for c in range(3)]
    for c in (1, 2):  # each copy's clients and keys are its own
        assert not clients[c] & clients[0] - {"nemesis"} and not keys[c] & keys[0]
    m1, m3 = one["checkers"]["mutex"], three["checkers"]["mutex"]
    assert m1["violation_count"] > 0 and one["valid"] is False
    assert m3["violation_count"] == 3 * m1["violation_count"] and three["valid"] is False
    assert m3["hold_count"] == 3 * m1["hold_count"]
    assert three["faults"]["partition"]["injected"] == 3 * one["faults"]["partition"]["injected"]
