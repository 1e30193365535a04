"""docs/comparison/moved.py: the cells that moved between two comparison.json files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOVED = ROOT / "docs" / "comparison" / "moved.py"


def _cell(nemesis: str, invalid: int, **extra) -> dict:
    return {"backend": "redis", "workload": "mutex", "nemesis": nemesis, "status": "runnable",
            "runs": 5, "decided": 5, "invalid": invalid, "unknown": 0, "verdict":
            "invalid" if invalid else "valid", **extra}  # fmt: skip


def test_only_moved_cells_are_listed_with_their_figures_and_hints(tmp_path: Path) -> None:
    stale = {"stale_writes_accepted": {"total": 15, "runs": 5}}
    old = [
        _cell("none", 0),
        _cell("pause", 5, acted_at_once={"runs": 0, "of": 5}),  # no harm field: decided again
        _cell(
            "client-pause",
            5,
            acted_at_once={"runs": 5, "of": 5},
            damage=stale,
            faults_injected_per_run={"mean": 3.0},
        ),  # fmt: skip
    ]
    new = [
        _cell("none", 0),
        _cell("pause", 0, lapses=10),
        _cell(
            "client-pause",
            5,
            acted_at_once={"runs": 5, "of": 5},
            damage={"stale_writes_accepted": {"total": 10, "runs": 5}},
            faults_injected_per_run={"mean": 2.0},
        ),  # fmt: skip
        _cell("clock", 0),
    ]
    a, b = tmp_path / "old.json", tmp_path / "new.json"
    a.write_text(json.dumps({"cells": old}))
    b.write_text(json.dumps({"cells": new}))
    p = subprocess.run([sys.executable, str(MOVED), str(a), str(b)], capture_output=True,
                       text=True, cwd=ROOT)  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "1 cells unchanged, 2 moved"
    pause = next(ln for ln in lines if "| pause |" in ln)
    assert "promise · 5/5 · at once 0/5" in pause and "safe · 0/5" in pause
    assert pause.endswith("(lapses 10) |")
    paused = next(ln for ln in lines if "| client-pause |" in ln)
    assert "stale 15 · 3 faults a run" in paused and "stale 10 · 2 faults a run" in paused
    assert "- new: redis / mutex / clock (safe · 0/5)" in lines
    # the verdicts that moved first, then the cells whose figures alone did
    at = lines.index
    assert at("Harm class or rate moved (1):") < at(pause) < at("Only the figures moved (1):")
    assert at("Only the figures moved (1):") < at(paused)
    bad = subprocess.run([sys.executable, str(MOVED), str(a)], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
