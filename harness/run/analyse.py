"""The analyse stage: a history (in memory) and its workload's checker map -> results.

``harness check`` comes here too, from the files a run left: ``config.json`` names the workload
and its options, so a stored run is judged by the same checkers as when it ran. What was read
can prove a violation; it proves nothing valid when some lines could not be read, no op was read,
the ops' order is in doubt, or the run was interrupted, failed or never finished.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from checkers import (
    SCHEMA_VERSION,
    CheckerMap,
    availability,
    checker_map,
    checker_specs,
    checkers_for_op,
    compose,
    faults,
    lacks_evidence,
    relisted,
    select,
    starvation,
)
from checkers.columns import max_time, nemesis_ops, present_fs, read_history
from checkers.history import Op, ReadResult
from checkers.model import STRICT_MODEL, LockModel
from workloads import registry as workload_registry
from workloads.base import Workload

from . import store
from .config import backoff_of
from .durable_data import excusing_store
from .lock_model import stored_model

DEFAULT_WORKLOAD = "mutex"  # a stored run's config.json without a workload name
ACCEPTED = "a history is JSON Lines: one object per line with process, type and f"


def analyse(
    checkers: CheckerMap,
    got: ReadResult,
    *,
    config: Mapping[str, Any] | None = None,
    interrupted: bool = False,
    problems: list[str] | None = None,
    model: LockModel = STRICT_MODEL,
    lag: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a checker map (a workload's) over the history. ``config`` is the run's (nemesis,
    interval, time limit: a run that asked for faults and got none proves less); ``problems``
    are the run's own (a failed final phase); ``lag`` its clients' measured stalls
    (``lag.json``, ``checkers.starvation``)."""
    results = compose(excusing_store(checkers, config))(got.ops, model)
    results["schema_version"] = SCHEMA_VERSION  # checkers.results; changelog: docs/design.md
    results["ops_read"] = len(got.ops)
    results["faults"] = faults.count(nemesis_ops(got.ops))
    results["availability"] = time_availability(got.ops, config)
    load_s = max_time(got.ops) / 1e9
    for reason in faults.missing_evidence(results["faults"], dict(config or {}), load_s):
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
    if got.ops:
        name = str((config or {}).get("workload") or DEFAULT_WORKLOAD) if config else None
        for reason in disagreements(checkers, got.ops, name):
            lacks_evidence(results, reason)
    if interrupted:
        results["interrupted"] = True
        lacks_evidence(results, "the run was interrupted before its time limit")
    for p in problems or []:
        lacks_evidence(results, p)
    # last: it may turn INVALID into UNKNOWN (the clients' ops say whether a stall silenced one)
    starvation.assess(
        results,
        lag,
        got.ops,
        model,
        quiet_ms=_hold_ms(config),
        relist=lambda first, n: relisted(got.ops, model, first, n),
    )
    return results


def _hold_ms(config: Mapping[str, Any] | None) -> float:
    """How long a holder is silent by design (``hold_ms``: it sleeps through its critical
    section), which a stall's silence must exceed."""
    opts = (config or {}).get("workload_opts")
    hold = opts.get("hold_ms") if isinstance(opts, Mapping) else None
    return float(hold) if isinstance(hold, int | float) and not isinstance(hold, bool) else 0.0


def time_availability(ops: list[Op], config: Mapping[str, Any] | None) -> dict[str, Any]:
    """results.json's ``availability``: in time, per fault window and outside, with the clients'
    backoff beside it (config.json's; None for runs from before backoff, which retried at once).
    A figure, never a verdict: a crash here is recorded, and judges nothing."""
    try:
        got: dict[str, Any] = dict(availability.over_time(ops))
    except Exception as e:  # a figure must never cost the run its verdict
        return {"error": f"{type(e).__name__}: {e}"}
    got["backoff_ms"] = list(b) if (b := backoff_of(config or {})) else None
    return got


# The ops each verdict-giving checker judges; a workload with one of them and none of its ops in
# its history proved nothing there (fencing and perf judge the lock ops the mutex checker does).
JUDGES = {"mutex": ("acquire", "release"), "set": ("add", "read"), "jobs": ("exec",)}


def disagreements(checkers: CheckerMap, ops: list[Op], workload: str | None) -> list[str]:
    """Where a history and the checker map judging it disagree: a checker of the map finds none
    of its ops (config.json says mutex, the history is a jobs history), or ops that some checker
    judges are read by none of the map's (a lock-set history judged as mutex: its lost updates
    unseen). Either way the verdict would speak of a history it did not read."""
    present = present_fs(ops)
    whose = f"the {workload} workload's" if workload else "the"
    out = [
        f"{whose} {name} checker found none of its ops ({' or '.join(fs)}) in the history"
        for name, fs in JUDGES.items()
        if name in checkers and present.isdisjoint(fs)
    ]
    unread = sorted(
        f for f in present if checkers_for_op(f) and set(checkers).isdisjoint(checkers_for_op(f))
    )
    if unread:
        n = {f: sum(op.f == f for op in ops) for f in unread}
        what = " and ".join(f"{n[f]:,} {f}" for f in unread) + " ops"
        called = {c for f in unread for c in checkers_for_op(f)}
        wanted = [c for c in checker_specs() if c in called]  # in report order
        of = f"the {workload} workload" if workload else "these checkers"
        out.append(
            f"the history has ops that no checker of {of} reads ({what}; "
            f"{', '.join(wanted)} would judge them)"
        )
    return out


def unreadable_reason(got: ReadResult) -> str:
    """'3 of 10 lines could not be read (lines 2, 5, 9)': how many, and the first ones."""
    n = len(got.problems)
    first = ", ".join(map(str, got.bad_lines[:5])) + (", ..." if n > 5 else "")
    return f"{n} of {got.lines} lines could not be read ({'line' if n == 1 else 'lines'} {first})"


def nothing_recorded(interrupted: bool) -> dict[str, Any]:
    """The results of a run that recorded no op at all (stopped while servers started)."""
    results: dict[str, Any] = {
        "valid": None,
        "summary": "not applicable",
        "checkers": {},
        "schema_version": SCHEMA_VERSION,
        "ops_read": 0,
    }
    if interrupted:
        results["interrupted"] = True
        lacks_evidence(results, "interrupted during start-up: no op was recorded")
    else:
        lacks_evidence(results, f"no {store.HISTORY} was recorded")
    return results


def run_outcome(results: dict[str, Any], config: Mapping[str, Any], *, stored: bool = True) -> None:
    """What the stored config says about how the run ended: failed, or never finished.
    ``stored``: the run directory has a ``config.json`` (a directory holding only a history is
    judged as a bare history)."""
    if not stored:
        return
    duration = config.get("duration_s")
    if not config:
        lacks_evidence(
            results,
            f"{store.CONFIG} is empty: which workload ran, and whether the run finished, is unknown",
        )
    elif config.get("failed"):
        lacks_evidence(results, f"the run failed: {config['failed']}")
    elif "duration_s" not in config:
        lacks_evidence(
            results, f"the run never finished (no duration_s in {store.CONFIG}: killed?)"
        )
    elif not isinstance(duration, int | float) or isinstance(duration, bool) or duration < 0:
        lacks_evidence(
            results,
            f"the run never finished as far as {store.CONFIG} tells (duration_s is "
            f"{json.dumps(duration)[:40]}, not a number of seconds)",
        )


def workload_of(config: Mapping[str, Any]) -> Workload:
    """The workload a stored run ran, with its options, from its ``config.json``. Runs stored
    before workloads had their own options kept them at the top level (``fencing``...)."""
    name = str(config.get("workload") or DEFAULT_WORKLOAD)
    cls = workload_registry.workload_class(name)
    opts = config.get("workload_opts")
    if not isinstance(opts, dict):
        opts = {k: config[k] for k in cls.options if k in config}
    return cls(opts)


def checkers_for(config: Mapping[str, Any] | None, got: ReadResult) -> CheckerMap:
    """A stored run's workload's checkers; for a bare history from any tool (no config), the
    checkers its ops call for (``checkers.select``)."""
    if config:
        return workload_of(config).checkers()
    return checker_map(select(got.ops))


def check_history(
    path: Path, config: Mapping[str, Any] | None = None, model: str | None = None
) -> dict[str, Any]:
    """Check one history file (a run's, or a bare one from any tool)."""
    got = read_history(path)
    return analyse(checkers_for(config, got), got, config=config, model=stored_model(config, model))


def recheck(run_dir: Path, *, render: bool = True, model: str | None = None) -> dict[str, Any]:
    """``harness check`` of a stored run: judge its history again, rewrite ``results.json``
    (and ``report.html``)."""
    results, config, got = judge(run_dir, model=model)
    store.write_json(run_dir / store.RESULTS, results)
    if render:
        from reports.render import write_report

        write_report(run_dir, config, results, got.ops, problems=got.problems)
    return results


def judge(
    run_dir: Path, *, model: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], ReadResult]:
    """A stored run judged again from its files, nothing written: its results, its config and
    the history read."""
    p = run_dir / store.CONFIG
    config = store.read_object(p) if p.exists() else {}
    interrupted = bool(config.get("interrupted"))
    history = run_dir / store.HISTORY
    got = read_history(history) if history.exists() else ReadResult()
    if not got.ops and not got.problems and (interrupted or not history.exists()):
        results = nothing_recorded(interrupted)
    else:
        results = analyse(
            checkers_for(config, got),
            got,
            config=config,
            interrupted=interrupted,
            model=stored_model(config, model),
            lag=stored_lag(run_dir),
        )
    run_outcome(results, config, stored=p.exists())
    return results, config, got


def stored_lag(run_dir: Path) -> dict[str, Any] | None:
    """The run's measured stalls (``lag.json``); None for runs from before they were measured,
    judged as they were."""
    p = run_dir / starvation.LAG
    if not p.exists():
        return None
    try:
        return store.read_object(p)
    except (OSError, ValueError) as e:
        return {"measured": False, "error": f"{starvation.LAG} could not be read: {e}"[:300]}
