"""Figures per run and per cell, computed from stored runs (config.json, results.json and
history.jsonl), never typed in.

Per cell: how often the lock failed (k of n decided runs invalid, with a 95% Wilson interval;
unknown runs and runs that ended in an error counted apart), how soon (median time to the first
violation over the invalid runs) and how badly (the kinds of violation, lost updates, double
executions and stale writes accepted per run; in how many runs two clients acted as holder at
once, which an invalid run need not show; lost updates and double executions that the store or
the scheduler caused with no two clients acting at once, apart: ``checkers.blame``), whether
the faults fired (injected per run; a faulted cell with none is flagged), and the lock's
availability inside fault windows versus outside (acquire success ratio, throughput, latency
p50/p99).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from checkers.results import (
    Verdict,
    checker_results,
    count,
    fencing_result,
    jobs_result,
    mutex_result,
    set_result,
)

from ..run import store
from .versions import reported

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of k successes in n trials (None when n is 0)."""
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n (got k={k}, n={n})")
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _read(path: Path) -> dict[str, Any]:
    try:
        d = store.read_json(path)
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _get(result: Mapping[str, Any] | None, field: str) -> Any:
    """A field of a checker's result (None when the run has no such checker)."""
    return None if result is None else result.get(field)


def _list(result: Mapping[str, Any] | None, field: str) -> list[Any]:
    """A list field of a checker's result: its examples (none when it holds no list)."""
    v = _get(result, field)
    return v if isinstance(v, list) else []


def verdict(valid: Any) -> str:
    """A run's verdict in a comparison: valid, invalid, or unknown (not applicable too: a run
    that judged nothing proved nothing)."""
    v = Verdict.from_json(valid)
    return v.word if v in (Verdict.VALID, Verdict.INVALID) else "unknown"


def violation_kinds(results: dict[str, Any]) -> Counter[str]:
    """What went wrong in a run, by kind, from every checker's counts."""
    kinds: Counter[str] = Counter()
    mutex, fencing = mutex_result(results), fencing_result(results)
    s, jobs = set_result(results), jobs_result(results)

    def add(result: Mapping[str, Any] | None, field: str, kind: str) -> None:
        v = _get(result, field)
        if _num(v) and v:  # a zero count is no kind of violation
            kinds[kind] += int(v)

    by_kind = _get(mutex, "violation_kinds")
    for k, n in (by_kind if isinstance(by_kind, dict) else {}).items():
        if _num(n):
            kinds[k] += int(n)
    add(fencing, "non_increasing", "fence-not-increasing")
    if _get(fencing, "enforced"):
        add(fencing, "stale_accepted", "stale-write-accepted")
    # Lost updates and double executions are the lock's only where the checker blamed it
    # (checkers.blame); the store's or the scheduler's are counted under kinds of their own.
    for field, kind in _blamed(s, "lost_count", "lost_by_lock", "lost_by_store", "lost-update"):
        add(s, field, kind)
    add(s, "unexpected_count", "unexpected-element")
    add(s, "duplicated_count", "duplicated-element")
    whose = _blamed(
        jobs, "double_executions", "double_by_lock", "double_by_scheduler", "double-execution"
    )
    for field, kind in whose:
        add(jobs, field, kind)
    if not kinds:  # a checker this module does not know found the violation: name it
        for name, r in checker_results(results).items():
            if Verdict.from_json(r.get("valid")) is Verdict.INVALID:
                kinds[f"{name}-invalid"] += 1
    return kinds


def _blamed(
    result: Mapping[str, Any] | None, total: str, by_lock: str, by_other: str, kind: str
) -> tuple[tuple[str, str], ...]:
    """(field, kind) pairs counting a checker's damage: ``by_lock`` as ``kind`` and ``by_other``
    as "``kind``-by-store" (or scheduler) once the checker assigned blame, else all of it as
    ``kind`` (results from before blame, or histories without lock ops)."""
    if result is None or result.get("blame") is None or count(result, by_lock) is None:
        return ((total, kind),)
    return ((by_lock, kind), (by_other, f"{kind}-by-{by_other.rsplit('_', 1)[1]}"))


def _start(hold: Any) -> float | None:
    """A hold's start (ns), as a result shows it; None when it shows none."""
    return hold["start"] if isinstance(hold, dict) and _num(hold.get("start")) else None


def first_violation_s(results: dict[str, Any]) -> float | None:
    """Seconds from the run's start to its first violation, as far as the checkers place it."""
    times: list[float] = []
    for v in _list(mutex_result(results), "violations"):
        for side in ("second", "first"):  # the intruder's start, else the broken hold's
            t = _start(v.get(side)) if isinstance(v, dict) else None
            if t is not None:
                times.append(t)
                break
    fencing = fencing_result(results)
    for ex in _list(fencing, "non_increasing_examples"):
        t = _start(ex.get("hold")) if isinstance(ex, dict) else None
        if t is not None:
            times.append(t)
    for st in _list(fencing, "stale_examples") if _get(fencing, "enforced") else []:
        if isinstance(st, dict) and st.get("outcome") == "accepted":
            ops = st.get("ops") or []
            if ops and isinstance(ops[0], dict) and _num(ops[0].get("time")):
                times.append(ops[0]["time"])
    for lost in _list(set_result(results), "lost"):  # the store's are no violation
        if isinstance(lost, dict) and _num(lost.get("ok_time")) and lost.get("blame") != "store":
            times.append(lost["ok_time"])
    jobs = jobs_result(results)
    period = _get(jobs, "period_ms")
    for d in _list(jobs, "double_slots"):
        if (
            isinstance(d, dict)
            and _num(d.get("slot"))
            and _num(period)
            and d.get("blame") != "scheduler"
        ):
            times.append(d["slot"] * period * 1e6)
    return round(min(times) / 1e9, 3) if times else None


def damage(results: dict[str, Any]) -> dict[str, int | None]:
    """What the workloads' checkers counted (None: this run's workload cannot show it)."""
    s, jobs = set_result(results), jobs_result(results)
    return {
        "lost_updates": count(s, "lost_count"),
        # of them, those no lock failure explains (checkers.blame); None before blame existed
        "lost_updates_by_store": count(s, "lost_by_store"),
        "double_executions": count(jobs, "double_executions"),
        "double_executions_by_scheduler": count(jobs, "double_by_scheduler"),
        # an excused run's (checkers.starvation: the harness starved its clients) are the
        # harness's doing, not the lock's: not counted, as a run that cannot show them
        "stale_writes_accepted": (
            None if _excused(results) else count(fencing_result(results), "stale_accepted")
        ),
    }


def _excused(results: dict[str, Any]) -> bool:
    stalls = results.get("stalls")
    return isinstance(stalls, dict) and stalls.get("excused") is True


def _lapses(results: dict[str, Any]) -> int:
    """Leases that ran out after their holder stopped (lease model): counted, not violations."""
    n = _get(mutex_result(results), "lapse_count")
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def acted_at_once(results: dict[str, Any]) -> int | None:
    """How often two clients acted as holder at the same time in a run (``checkers.mutex``);
    None when the run has no mutex figures to tell."""
    from checkers.mutex import acted_at_once as of_mutex

    mutex = mutex_result(results)
    return of_mutex(mutex) if mutex is not None and not _excused(results) else None


def run_figures(run_dir: Path, samples: bool = False) -> dict[str, Any]:
    """Everything the comparison shows of one stored run."""
    from checkers import availability
    from checkers.columns import read_history  # the reader the run's own analysis used

    config = _read(run_dir / store.CONFIG)
    results = _read(run_dir / store.RESULTS)
    faults = results.get("faults")
    faults = faults if isinstance(faults, dict) else {}
    injected = {k: int(c.get("injected", 0)) for k, c in faults.items() if isinstance(c, dict)}
    requested = list(config.get("nemesis") or [])
    avail: dict[str, Any] = {}
    hist = run_dir / store.HISTORY
    if hist.exists():
        avail = availability.measure(read_history(hist).ops, samples=samples)
    return {
        "run_dir": str(run_dir),
        "seed": config.get("seed"),
        "verdict": verdict(results.get("valid")) if results else "unknown",
        "summary": results.get("summary", "no results.json"),
        "unknown_because": list(results.get("unknown_because") or []),
        "interrupted": bool(config.get("interrupted")),
        "duration_s": config.get("duration_s"),
        "machine": config.get("machine"),  # cores, load at start and end (None: older runs)
        "time_to_first_violation_s": first_violation_s(results),
        "violation_kinds": dict(violation_kinds(results)),
        "damage": damage(results),
        "acted_at_once": acted_at_once(results),
        # the lock model the run was judged under (results written before models: strict)
        "model": str(results.get("model") or "strict") if results else None,
        "lapses": _lapses(results),
        "faults_requested": requested,
        "faults_injected": sum(injected.values()),
        "faults_by_kind": injected,
        "faults_never_fired": bool(requested) and sum(injected.values()) == 0,
        "availability": avail,
        "non_durable": list(config.get("non_durable") or []),
        "servers": [s.get("kind") for s in config.get("servers") or [] if isinstance(s, dict)],
        "server_versions": reported(config),
    }


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"mean": None, "min": None, "max": None, "total": None, "runs": 0}
    return {
        "mean": round(statistics.fmean(values), 3),
        "min": min(values),
        "max": max(values),
        "total": sum(values),
        "runs": len(values),
    }


def _pooled(runs: list[dict[str, Any]], side: str) -> dict[str, Any]:
    from checkers.perf import percentiles

    attempts = ok = 0
    seconds = key_seconds = lost = 0.0
    lat: list[float] = []
    for r in runs:
        av = r.get("availability") or {}
        a = av.get(side)
        if not isinstance(a, dict):
            continue
        attempts += a.get("attempts") or 0
        ok += a.get("ok") or 0
        seconds += a.get("seconds") or 0.0
        if a.get("available_share") is not None:  # in time: pooled over every key-second
            key_seconds += (a.get("seconds") or 0.0) * (av.get("keys") or 0)
            lost += a.get("unavailable_s") or 0.0
        lat += a.get("samples") or []
    p = percentiles(lat)
    return {
        "available_share": round(1 - lost / key_seconds, 4) if key_seconds > 0 else None,
        "seconds": round(seconds, 3),
        "attempts": attempts,
        "ok": ok,
        "success_ratio": round(ok / attempts, 4) if attempts else None,
        "ok_per_s": round(ok / seconds, 2) if seconds > 0 else None,
        "latency_ms": {"p50": p["p50"], "p99": p["p99"]},
    }


def _heals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """From each heal to the next grant, over every healed fault of the runs: median and max
    (s), and how many heals no grant followed."""
    got: list[float] = []
    never = 0
    for r in runs:
        for h in (r.get("availability") or {}).get("heal_to_grant_s") or []:
            if isinstance(h, int | float):
                got.append(float(h))
            else:
                never += 1
    got.sort()
    return {
        "median": got[(len(got) - 1) // 2] if got else None,
        "max": got[-1] if got else None,
        "heals": len(got) + never,
        "no_grant": never,
    }


def cell_figures(runs: list[dict[str, Any]], faulted: bool, errors: int = 0) -> dict[str, Any]:
    """A cell's figures from its runs' figures (``run_figures``); ``errors``: runs of the cell
    that ended without a verdict."""
    by = Counter(r["verdict"] for r in runs)
    k, u, v = by["invalid"], by["unknown"], by["valid"]
    decided = k + v
    interval = wilson(k, decided)
    ttfv = [r["time_to_first_violation_s"] for r in runs if r["verdict"] == "invalid"]
    ttfv = [t for t in ttfv if t is not None]
    kinds: Counter[str] = Counter()
    for r in runs:
        kinds.update(r["violation_kinds"])
    dmg = {
        name: _summary([r["damage"][name] for r in runs if r["damage"].get(name) is not None])
        for name in (
            "lost_updates",
            "lost_updates_by_store",
            "double_executions",
            "double_executions_by_scheduler",
            "stale_writes_accepted",
        )
    }
    at_once = [r["acted_at_once"] for r in runs if r.get("acted_at_once") is not None]
    injected = [r["faults_injected"] for r in runs]
    never = sum(1 for r in runs if r["faults_never_fired"])
    flags = []
    if faulted and runs and sum(injected) == 0:
        flags.append("faults never fired")
    elif never:
        flags.append(f"faults never fired in {never} of {len(runs)} runs")
    if errors:
        flags.append(f"{errors} run(s) without a verdict")
    if k:
        word = "invalid"
    elif not runs or u or flags:
        word = "unknown"
    else:
        word = "valid"
    return {
        "runs": len(runs),
        "valid": v,
        "invalid": k,
        "unknown": u,
        "errors": errors,
        "decided": decided,
        "rate": round(k / decided, 6) if decided else None,
        "rate_low": round(interval[0], 6) if interval else None,
        "rate_high": round(interval[1], 6) if interval else None,
        "verdict": word,
        "flags": flags,
        "time_to_first_violation_s": round(statistics.median(ttfv), 3) if ttfv else None,
        "violation_kinds": dict(kinds.most_common()),
        "models": sorted({str(r["model"]) for r in runs if r.get("model")}),
        "lapses": sum(int(r.get("lapses") or 0) for r in runs),
        "damage": dmg,
        # runs (of those the mutex checker measured) in which two clients acted as holder at once
        "acted_at_once": (
            {"runs": sum(1 for n in at_once if n), "of": len(at_once), "total": sum(at_once)}
            if at_once
            else None
        ),
        "faults_injected_per_run": _summary([float(x) for x in injected]) if faulted else None,
        "availability": {
            **{side: _pooled(runs, side) for side in ("inside", "outside")},
            "heal_to_grant_s": _heals(runs),
        },
    }


#: A cell's harm classes, worst last; the page gives each a glyph and a colour
#: (``reports.comparison.HARM_STYLE``), comparison.json and .csv name them.
HARM_CLASSES = ("safe", "promise", "at-once", "damage")
#: Cells that say nothing of harm: runs without a verdict, a fault that cannot act on the
#: backend, a server missing on the machine that ran the campaign.
NO_HARM_CLASSES = ("unknown", "not-applicable", "not-available")
#: The damage fields that mean the data suffered (summed over a cell's runs).
DAMAGE_FIELDS = ("lost_updates", "stale_writes_accepted", "double_executions")


def _total(f: Mapping[str, Any], name: str) -> tuple[int | None, int]:
    """(total over the runs that measured it, how many runs did); total None: none did."""
    d = (f.get("damage") or {}).get(name) or {}
    runs = int(d.get("runs") or 0)
    return (int(d.get("total") or 0) if runs else None), runs


def harm(f: Mapping[str, Any], status: str = "runnable") -> dict[str, Any]:
    """A cell's harm from its figures (``cell_figures`` or a comparison.json record), the one
    place it is decided. ``class``: damage (an update lost, a stale write accepted or a job run
    twice, in any run) before at-once (two clients acted as holder together in a run) before
    promise (a run was invalid with neither: the lock broke its promise, nobody acted on it)
    before safe (every run valid); unknown when no run was invalid and not every run proved
    valid; not-applicable / not-available for cells that did not run. ``lock`` and ``data``
    judge the two apart (the findings page marks both): lock kept / broken / at-once /
    unknown; data kept (measured and untouched) / lost / not-measured."""
    if status != "runnable":
        cls = "not-applicable" if status == "not applicable" else "not-available"
        return {"class": cls, "lock": None, "data": None, "damage": {}}
    dmg = {}
    measured = False
    for name in DAMAGE_FIELDS:
        total, runs = _total(f, name)
        measured = measured or runs > 0
        if total is not None:
            dmg[name] = total
    at_once = f.get("acted_at_once") or {}
    if f.get("invalid"):
        lock = "at-once" if at_once.get("runs") else "broken"
    else:
        lock = "kept" if f.get("verdict") == "valid" else "unknown"
    data = "lost" if any(dmg.values()) else "kept" if measured else "not-measured"
    if data == "lost":
        cls = "damage"
    elif lock == "at-once":
        cls = "at-once"
    elif lock == "broken":
        cls = "promise"
    else:
        cls = "safe" if lock == "kept" else "unknown"
    return {"class": cls, "lock": lock, "data": data, "damage": dmg}
