"""From a stored history to a verdict: read, check, write ``results.json``, render the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import store
from .history import ReadResult, read

ACCEPTED = "a history is JSON Lines: one object per line with process, type and f"


def check_history(
    path: Path, config: dict[str, Any] | None = None, got: ReadResult | None = None
) -> dict[str, Any]:
    """Check one history file. What was read can prove a violation; it proves nothing valid
    when some lines could not be read, no op was read or the ops' order is in doubt."""
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
        results["problem_lines"] = got.bad_lines[:20]
        lacks_evidence(results, unreadable_reason(got))
    if not got.ops:
        what = "the history is empty" if not got.lines else "no op could be read"
        lacks_evidence(results, f"{what} ({ACCEPTED})")
    if got.duplicates:
        results["duplicate_indexes"] = got.duplicates
        lacks_evidence(
            results,
            f"{got.duplicate_count} index value(s) used more than once, so the ops' order is "
            f"in doubt ({got.duplicates[0]})",
        )
    return results


def unreadable_reason(got: ReadResult) -> str:
    """'3 of 10 lines could not be read (lines 2, 5, 9)': how many, and the first ones."""
    n = len(got.problems)
    first = ", ".join(map(str, got.bad_lines[:5])) + (", ..." if n > 5 else "")
    return f"{n} of {got.lines} lines could not be read ({'line' if n == 1 else 'lines'} {first})"


def analyse(run_dir: Path, *, interrupted: bool = False, render: bool = True):
    from checkers import exit_code, lacks_evidence

    from .run import RunResult

    config = _config(run_dir)
    interrupted = interrupted or bool(config.get("interrupted"))
    history = run_dir / store.HISTORY
    got = read(history) if history.exists() else ReadResult()
    if not got.ops and not got.problems and (interrupted or not history.exists()):
        results = {"valid": None, "summary": "not applicable", "checkers": {}, "ops_read": 0}
        if interrupted:
            results["interrupted"] = True
            lacks_evidence(results, "interrupted during start-up: no op was recorded")
        else:
            lacks_evidence(results, f"no {store.HISTORY} was recorded")
    else:
        results = check_history(history, config, got)
        if interrupted:
            results["interrupted"] = True
            lacks_evidence(results, "the run was interrupted before its time limit")
    if config.get("failed"):
        lacks_evidence(results, f"the run failed: {config['failed']}")
    elif config and "duration_s" not in config:
        lacks_evidence(results, f"the run never finished (no duration in {store.CONFIG}: killed?)")
    store.write_json(run_dir / store.RESULTS, results)
    report = render_report(run_dir, got.ops) if render else None
    code = exit_code(results["valid"])
    return RunResult(run_dir, results["valid"], results, code, interrupted, report)


def render_report(run_dir: Path, ops: list | None = None) -> Path:
    from reports.render import render_run

    return render_run(run_dir, ops)


def _config(run_dir: Path) -> dict[str, Any]:
    p = run_dir / store.CONFIG
    return store.read_object(p) if p.exists() else {}
