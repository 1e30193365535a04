"""From a stored history to a verdict: read, check, write ``results.json``, render the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import store
from .history import ReadResult, read


def check_history(
    path: Path, config: dict[str, Any] | None = None, got: ReadResult | None = None
) -> dict[str, Any]:
    """Check one history file; a partial read is checked as far as it goes and says so."""
    from checkers import check_all, faults, lacks_evidence

    got = got or read(path)
    results = check_all(got.ops, fencing_enforced=bool((config or {}).get("fencing")))
    results["ops_read"] = len(got.ops)
    results["faults"] = faults.count(got.ops)
    load_s = max((op.time for op in got.ops), default=0) / 1e9
    for reason in faults.missing_evidence(results["faults"], config, load_s):
        lacks_evidence(results, reason)
    if got.partial:
        results["partial"] = True
        results["problems"] = got.problems[:20]
        results["problem_count"] = len(got.problems)
    return results


def analyse(run_dir: Path, *, interrupted: bool = False, render: bool = True):
    from checkers import exit_code, lacks_evidence

    from .run import RunResult

    config = _config(run_dir)
    got = read(run_dir / store.HISTORY)
    results = check_history(run_dir / store.HISTORY, config, got)
    if interrupted:
        results["interrupted"] = True
        lacks_evidence(results, "the run was interrupted before its time limit")
    store.write_json(run_dir / store.RESULTS, results)
    report = render_report(run_dir, got.ops) if render else None
    code = exit_code(results["valid"])
    return RunResult(run_dir, results["valid"], results, code, interrupted, report)


def render_report(run_dir: Path, ops: list | None = None) -> Path:
    from reports.render import render_run

    return render_run(run_dir, ops)


def _config(run_dir: Path) -> dict[str, Any]:
    p = run_dir / store.CONFIG
    return store.read_json(p) if p.exists() else {}
