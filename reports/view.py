"""What report.html shows, computed from config, results and ops (never re-checking anything).

Each function turns run data into plain values for the templates; limits keep a page of a
10^6-op history to a few MB, and every limit that bites is reported so the page can say so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from checkers import history, verdict_word
from checkers.history import NEMESIS, Op
from checkers.mutex import EARLY

from .svg import Bar, Fault, strip

MAX_LANES = 48  # timeline lanes (processes)
MAX_COUNTEREXAMPLES = 20  # violations shown in full
MAX_CONTEXT_OPS = 30  # ops around one violation
MAX_GENERIC_ROWS = 10  # rows of a generic list-of-dicts table

# What each violation kind means, beside its counterexample (checkers.mutex's kinds).
EXPLAIN = {
    "overlap": (
        "The second holder's acquire returned before the first holder invoked its release: "
        "both processes certainly held the lock at the same time."
    ),
    "revoked-while-held": (
        "The first holder's release failed (or never came) and another process's acquire "
        "returned before the first holder sent its release: two clients acted as holder at "
        "once (a holder paused past its lease that woke and went on)."
    ),
    "early-grant": (
        "The first holder had stopped acting (it sent its release) and its release was refused, "
        "but its grant could not yet have expired: {why}. The lock gave the grant away early: a "
        "server that forgot it, a clock jump, a failover. No two clients acted at once, but the "
        "lock broke its promise."
    ),
    "release-by-non-owner": (
        "A release returned ok for a process that held nothing: someone who did not own the "
        "lock was able to free it."
    ),
}
# A revoked-while-held violation whose first holder had already stopped (strict model only).
REVOKED_AFTER_STOP = (
    "The first holder's release failed (or never came) and another process acquired the lock "
    "after the first holder had sent its release but before any release took effect: no two "
    "clients acted at once, but the lock was taken from its holder (strict model)."
)
REVOKED_UNSURE = (
    "The first holder's release failed (or never came) and another process acquired the "
    "lock: the lock was taken from its holder before any release took effect."
)
CONFIG_ORDER = (
    "backend",
    "workload",
    "workload_opts",
    "nemesis",
    "nemesis_interval",
    "concurrency",
    "keys",
    "time_limit",
    "rate",
    "ttl_ms",  # runs stored before workloads had their own options
    "hold_ms",
    "wait_ms",
    "seed",
    "fencing",
    "backend_opts",
    "servers",
    "started_at",
    "duration_s",
    "harness_version",
)


def verdict(results: dict[str, Any]) -> str:
    """A run's verdict word; a run is never "not applicable": that shows as unknown."""
    word = verdict_word(results.get("valid"))
    return word if word in ("valid", "invalid") else "unknown"


def checker_verdict(v: Any) -> str:
    return "n/a" if v is None else verdict_word(v)


def show(v: Any, limit: int = 200) -> str:
    """One value as short text: scalars as is, small dicts as k=v, lists by their length."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        if not v:
            text = "none"
        elif all(not isinstance(x, dict | list) for x in v.values()):
            text = ", ".join(f"{k}={show(x)}" for k, x in v.items())
        elif all(isinstance(x, dict) for x in v.values()):  # e.g. latency per outcome
            text = "; ".join(f"{k}: {show(x, limit)}" for k, x in v.items())
        else:
            text = f"{len(v)} fields"
    elif isinstance(v, list):
        if len(v) <= 8 and all(not isinstance(x, dict | list) for x in v):
            text = ", ".join(show(x) for x in v) or "none"
        else:
            text = f"list of {len(v)}"
    else:
        text = str(v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ms(ns: Any) -> str:
    return f"{ns / 1e6:.3f}" if isinstance(ns, int | float) and not isinstance(ns, bool) else "—"


def config_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The run config, known fields first in a fixed order, then whatever else is there."""
    rows: list[tuple[str, str]] = []
    keys = [k for k in CONFIG_ORDER if k in config] + [k for k in config if k not in CONFIG_ORDER]
    for k in keys:
        v = config[k]
        if k == "nemesis":
            text = ", ".join(map(str, v)) if isinstance(v, list) and v else show(v or "none")
        elif k == "servers" and isinstance(v, list):
            text = "; ".join(
                f"{s.get('name', '?')} ({s.get('kind', '?')}) {s.get('host', '?')}:"
                f"{s.get('port', '?')}"
                if isinstance(s, dict)
                else show(s)
                for s in v
            )
        elif k == "backend_opts" and isinstance(v, dict) and not v:
            text = "none"
        else:
            text = show(v, 400)
        rows.append((k, text))
    return rows


def non_durable(config: dict[str, Any]) -> list[str]:
    """The non-durable settings a stored run's config.json names (see
    harness/runtime/durability.py; none for older runs), one line each."""
    return [str(x) for x in config.get("non_durable", [])]


def nemesis_label(config: dict[str, Any]) -> str:
    return history.nemesis_label(config.get("nemesis"))


def holds_from_ops(ops: Sequence[Op]) -> list[dict[str, Any]]:
    """Holds for drawing only, when results.json has none (e.g. a run that crashed).

    An ok acquire starts a hold; the owner's next release invocation ends it unless that release
    failed, as docs/design.md defines. No verdict is drawn from these.
    """
    holding: dict[int | str, dict[str, Any]] = {}
    releasing: dict[int | str, tuple[dict[str, Any], int]] = {}
    out: list[dict[str, Any]] = []
    for op in ops:
        p = op.process
        if p == NEMESIS:
            continue
        if op.f == "acquire" and op.type == "ok":
            fence = op.value if isinstance(op.value, int) else None
            h = {"key": op.key, "process": p, "start": op.time, "end": None, "fence": fence}
            h.update(release=None, acquire_index=op.index, release_index=None)
            holding[p] = h
            out.append(h)
        elif op.f == "release" and op.type == "invoke" and p in holding:
            releasing[p] = (holding.pop(p), op.time)
        elif op.f == "release" and p in releasing:
            h, t = releasing.pop(p)
            h["release"] = op.type
            h["release_index"] = op.index
            if op.type != "fail":
                h["end"] = t
    return out


def _hold_id(h: dict[str, Any]) -> tuple[Any, ...]:
    if h.get("acquire_index") is not None:
        return ("i", h["acquire_index"])
    return ("h", str(h.get("key")), str(h.get("process")), h.get("start"))


def hold_title(h: dict[str, Any]) -> str:
    end = "never released" if h.get("end") is None else f"{ms(h.get('end'))} ms"
    fence = "" if h.get("fence") is None else f", fence {h['fence']}"
    rel = "" if h.get("release") is None else f", release {h['release']}"
    return (
        f"process {h.get('process')} holds {h.get('key')}: {ms(h.get('start'))} ms → "
        f"{end}{fence}{rel}"
    )


@dataclass
class Lanes:
    lanes: list[tuple[str, list[Bar]]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    hidden_processes: int = 0
    hold_count: int = 0
    bad_count: int = 0


def lanes_from(holds: Sequence[dict[str, Any]], violations: Sequence[dict[str, Any]]) -> Lanes:
    """One lane per process; when there are too many, processes in violations come first."""
    bad = set()
    for v in violations:
        for part in ("first", "second"):
            h = v.get(part)
            if isinstance(h, dict):
                bad.add(_hold_id(h))
    by_proc: dict[str, list[Bar]] = {}
    keys: Counter[str] = Counter()
    bad_procs: set[str] = set()
    res = Lanes()
    for h in holds:
        if not isinstance(h, dict) or not isinstance(h.get("start"), int | float):
            continue
        proc = str(h.get("process"))
        key = str(h.get("key"))
        keys[key] += 1
        is_bad = _hold_id(h) in bad
        end = h.get("end")
        bar = Bar(
            start=int(h["start"]),
            end=int(end) if isinstance(end, int | float) else None,
            key=key,
            bad=is_bad,
            # titles only where they help: bad and open bars (merged bars get a count)
            title=hold_title(h) if is_bad or end is None or len(holds) < 5000 else "",
        )
        by_proc.setdefault(proc, []).append(bar)
        res.hold_count += 1
        if is_bad:
            res.bad_count += 1
            bad_procs.add(proc)
    procs = sorted(by_proc, key=_proc_order)
    if len(procs) > MAX_LANES:
        busiest = sorted(procs, key=lambda p: -len(by_proc[p]))
        keep = set(sorted(bad_procs, key=_proc_order)[:MAX_LANES])
        for p in busiest:
            if len(keep) >= MAX_LANES:
                break
            keep.add(p)
        res.hidden_processes = len(procs) - len(keep)
        procs = [p for p in procs if p in keep]
    res.lanes = [(f"client {p}", by_proc[p]) for p in procs]
    res.keys = [k for k, _ in keys.most_common()]
    return res


def retired_line(processes: Sequence[Any], concurrency: Any, most: int = 6) -> str | None:
    """One line saying who a retired process id is: a client whose operation's outcome was
    unknown goes on as a new process, its id plus the concurrency (Jepsen's convention,
    ``workloads.base.ClientContext.retire``), so "client 66" of a 5-client run is client 1
    after 13 unknown outcomes. None when no such id is shown."""
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        return None
    ids = sorted({int(p) for p in processes if str(p).isdigit() and int(p) >= concurrency}, key=int)
    if not ids:
        return None
    c = concurrency
    told = [
        f"client {p} = client {p % c} after {p // c} unknown outcome{'s' * (p // c != 1)}"
        for p in ids[:most]
    ]
    more = f"; {len(ids) - most} more" if len(ids) > most else ""
    return (
        f"Clients {c} and up are retired process ids: a client whose operation's outcome was "
        f"unknown goes on as a new process, its id plus {c} (the run's clients), as Jepsen "
        f"numbers them: {'; '.join(told)}{more}."
    )


def _proc_order(p: str) -> tuple[int, int | str]:
    return (0, int(p)) if p.lstrip("-").isdigit() else (1, p)


# Why an early grant's grant could not yet have expired, by the lock's expiry (reports.lock).
EARLY_WHY = {
    "ttl": (
        "the second acquire returned before the first acquire was sent plus the TTL (or its "
        "latest renewal plus the TTL)"
    ),
    "none": "this lock's grants never run out on their own",
    "hidden": "the lock renews its grants in the background, where the history cannot see it",
    "unknown": "no TTL is known for this history",
}


def explain(kind: str, while_acting: Any = True, expiry: str = "unknown") -> str:
    """A violation kind in words; a revoked hold by whether its holder went on acting (results
    from before ``while_acting`` cannot say); an early grant by how the lock's grants end."""
    if kind == "revoked-while-held" and while_acting is False:
        return REVOKED_AFTER_STOP
    if kind == "revoked-while-held" and while_acting is None:
        return REVOKED_UNSURE
    text = EXPLAIN.get(kind, f"The checker reported a violation of kind {kind}.")
    return text.format(why=EARLY_WHY.get(expiry, EARLY_WHY["unknown"])) if kind == EARLY else text


def counterexamples(
    violations: Sequence[dict[str, Any]], ops: Sequence[Op], expiry: str = "unknown"
) -> list[dict[str, Any]]:
    """Each violation for the page: its kind explained (``expiry``: how the lock's grants end,
    ``reports.lock``), both holds, the ops around it."""
    by_index: dict[int, Op] | None = None
    out = []
    for v in violations[:MAX_COUNTEREXAMPLES]:
        kind = str(v.get("kind", "unknown"))
        holds = [v[p] for p in ("first", "second") if isinstance(v.get(p), dict)]
        rows = [o for o in v.get("ops") or [] if isinstance(o, dict)][:MAX_CONTEXT_OPS]
        source = "checker"
        if not rows and ops:
            if by_index is None:
                by_index = {op.index: op for op in ops}
            rows = [o.to_dict() for o in _context(holds, by_index)]
            source = "history"
        out.append(
            {
                "kind": kind,
                "explain": explain(kind, v.get("while_acting"), expiry),
                "key": v.get("key"),
                "holds": [
                    {
                        "role": role,
                        "process": h.get("process"),
                        "key": h.get("key"),
                        "start": ms(h.get("start")),
                        "end": "never released" if h.get("end") is None else ms(h.get("end")),
                        "fence": show(h.get("fence")),
                        "release": show(h.get("release")),
                    }
                    for role, h in zip(("first holder", "second holder"), holds, strict=False)
                ],
                "ops": [_op_row(o, holds) for o in rows],
                "ops_source": source,
            }
        )
    return out


def _context(holds: list[dict[str, Any]], by_index: dict[int, Op]) -> list[Op]:
    """Ops at and near the acquires and releases of the holds."""
    marks = [
        h.get(f) for h in holds for f in ("acquire_index", "release_index") if h.get(f) is not None
    ]
    wanted: set[int] = set()
    for m in marks:
        if isinstance(m, int):
            wanted.update(range(m - 3, m + 4))
    return [by_index[i] for i in sorted(wanted) if i in by_index][:MAX_CONTEXT_OPS]


def _op_row(o: dict[str, Any], holds: list[dict[str, Any]]) -> dict[str, Any]:
    procs = {str(h.get("process")) for h in holds}
    return {
        "index": show(o.get("index")),
        "time": ms(o.get("time")),
        "process": show(o.get("process")),
        "type": show(o.get("type")),
        "f": show(o.get("f")),
        "key": show(o.get("key")),
        "value": show(o.get("value")),
        "error": show(o.get("error")) if o.get("error") is not None else "",
        "involved": str(o.get("process")) in procs,
    }


def checker_sections(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every checker generically: scalar fields as rows, lists of dicts as small tables."""
    checkers = results.get("checkers")
    if not isinstance(checkers, dict):
        return []
    out = []
    for name, data in checkers.items():
        if not isinstance(data, dict):
            out.append({"name": str(name), "verdict": "unknown", "summary": show(data), "rows": []})
            continue
        rows, tables = [], []
        for k, v in data.items():
            if k in ("checker", "valid", "summary", "series"):
                continue
            if k == "holds" and isinstance(v, list):
                rows.append((k, f"{len(v)} (see the timeline)"))
            elif k == "violations" and isinstance(v, list) and any("first" in x for x in v):
                rows.append((k, f"{len(v)} (see the counterexample)"))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                tables.append(_generic_table(k, v))
                rows.append((k, f"{len(v)} (table below)"))
            else:
                rows.append((k, show(v)))
        out.append(
            {
                "name": str(name),
                "verdict": checker_verdict(data.get("valid")),
                "summary": show(data.get("summary") or "", 2000),
                "rows": rows,
                "tables": tables,
            }
        )
    return out


def _generic_table(name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    cols: list[str] = []
    for it in items[:MAX_GENERIC_ROWS]:
        cols += [k for k in it if k not in cols]
    return {
        "name": name,
        "cols": cols,
        "rows": [[show(it.get(c), 120) for c in cols] for it in items[:MAX_GENERIC_ROWS]],
        "more": max(len(items) - MAX_GENERIC_ROWS, 0),
    }


def faults_line(results: dict[str, Any]) -> str | None:
    """Faults injected and healed per kind, one line (None when the run had no nemesis op)."""
    from checkers.faults import text

    f = results.get("faults")
    if not isinstance(f, dict) or not f or not all(isinstance(c, dict) for c in f.values()):
        return None
    try:
        return text(f)
    except (KeyError, TypeError):  # a results.json from another version: shown as a row instead
        return None


def result_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Top-level fields of results.json beyond the verdict (partial reads, interruptions)."""
    # the summary says why; the banner's model line names the model
    skip = ("valid", "summary", "checkers", "unknown_because", "model")
    if faults_line(results) is not None:  # shown in the verdict area
        skip += ("faults",)
    return [(str(k), show(v, 400)) for k, v in results.items() if k not in skip]


def mutex_violations(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Violations shaped as holds (first/second), from whichever checker reports them."""
    out: list[dict[str, Any]] = []
    for data in (results.get("checkers") or {}).values():
        if isinstance(data, dict) and isinstance(data.get("violations"), list):
            out += [v for v in data["violations"] if isinstance(v, dict) and "first" in v]
    return out


def mutex_holds(results: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, bool, Any]:
    """(holds or None, truncated, total) from the checker that reports holds."""
    for data in (results.get("checkers") or {}).values():
        if isinstance(data, dict) and isinstance(data.get("holds"), list):
            return data["holds"], bool(data.get("holds_truncated")), data.get("hold_count")
    return None, False, None


def perf_series(
    results: dict[str, Any], ops: Sequence[Op], first_client: int | None = None
) -> tuple[list[Any], float] | None:
    """The latency series and the offset (s) that puts its times on the run's clock.

    The perf checker counts series times from the first client op, not from run start; a
    ``series_origin_ns`` field, where a checker gives one, says so explicitly.
    """
    for data in (results.get("checkers") or {}).values():
        if isinstance(data, dict) and isinstance(data.get("series"), list):
            origin = data.get("series_origin_ns")
            if not isinstance(origin, int | float):
                origin = first_client
            if origin is None:
                origin = min((op.time for op in ops if op.process != NEMESIS), default=0)
            return data["series"], origin / 1e9
    return None


def run_opt(config: dict[str, Any], name: str) -> Any:
    """A run option wherever config.json keeps it: at the top, or among the workload's options
    (``workload_opts``: the mutex's ttl_ms, hold_ms, renew_ms, fencing)."""
    if name in config:
        return config[name]
    wopts = config.get("workload_opts")
    return wopts.get(name) if isinstance(wopts, dict) else None


def subtitle(config: dict[str, Any], over: Any, ttl_ms: float | None = None) -> str:
    """One line under the title: when, how long, how many clients and keys, how many ops;
    ``ttl_ms`` only for a lock whose grants run out after it (``reports.lock``)."""
    parts = []
    if config.get("started_at"):
        parts.append(str(config["started_at"])[:19].replace("T", " "))
    dur = config.get("duration_s")
    if isinstance(dur, int | float) and not isinstance(dur, bool):
        parts.append(f"{dur:.1f} s")
    for k, word in (("concurrency", "client"), ("keys", "key")):
        n = config.get(k)
        if isinstance(n, int) and not isinstance(n, bool):
            parts.append(f"{n:,} {word}{'s' * (n != 1)}")
    if ttl_ms is not None:
        parts.append(f"{ttl_ms:g} ms TTL")
    hold = run_opt(config, "hold_ms")
    if isinstance(hold, int | float) and not isinstance(hold, bool):
        parts.append(f"{hold:g} ms hold")
    if run_opt(config, "fencing") is True:
        parts.append("fencing enforced")
    parts.append(f"{sum(over.counts.values()):,} ops")
    return " · ".join(parts)


def violation_total(results: dict[str, Any], violations: Sequence[dict[str, Any]]) -> int:
    """All violations the checkers counted (they keep only the first ones in full)."""
    n = 0
    for data in (results.get("checkers") or {}).values():
        if isinstance(data, dict) and isinstance(data.get("violation_count"), int):
            if any("first" in v for v in data.get("violations") or [] if isinstance(v, dict)):
                n += data["violation_count"]
    return max(n, len(violations))


MAX_WORKLOAD_ROWS = 20


def workload_views(results: dict[str, Any], faults: Sequence[Fault], t_end: int) -> dict[str, Any]:
    """Lost updates (set) on a strip over the run, and double-executed job slots (jobs)."""
    out: dict[str, Any] = {}
    checkers = results.get("checkers") or {}
    st = checkers.get("set") if isinstance(checkers, dict) else None
    if isinstance(st, dict) and isinstance(st.get("lost"), list) and st["lost"]:
        lost = [x for x in st["lost"] if isinstance(x, dict)]
        ticks = [
            (int(x["ok_time"]), f"{x.get('element')} added to {x.get('key')}, acknowledged, lost")
            for x in lost
            if isinstance(x.get("ok_time"), int | float)
        ]
        out["lost"] = {
            "count": st.get("lost_count", len(lost)),
            "svg": strip(ticks, faults, t_end, "lost") if ticks else None,
            "rows": [
                {
                    "key": show(x.get("key")),
                    "element": show(x.get("element")),
                    "process": show(x.get("process")),
                    "ok": secs(x.get("ok_time")),
                    "blame": WHOSE.get(x.get("blame"), "—"),
                }
                for x in lost[:MAX_WORKLOAD_ROWS]
            ],
            "listed": len(lost),
            "blame": blame_text(st, "lost_by_lock", "lost_by_store", "the store lost them"),
        }
    jb = checkers.get("jobs") if isinstance(checkers, dict) else None
    if isinstance(jb, dict) and isinstance(jb.get("double_slots"), list) and jb["double_slots"]:
        rows, ticks = [], []
        for d in jb["double_slots"]:
            if not isinstance(d, dict):
                continue
            ex = [e for e in d.get("executions") or [] if isinstance(e, dict)]
            for e in ex:
                if isinstance(e.get("start"), int | float):
                    ticks.append(
                        (int(e["start"]), f"slot {d.get('slot')}: client {e.get('process')}")
                    )
            rows.append(
                {
                    "blame": WHOSE.get(d.get("blame"), "—"),
                    "slot": show(d.get("slot")),
                    "runs": "; ".join(
                        f"client {e.get('process')} {secs(e.get('start'))} → "
                        + (secs(e.get("end")) if e.get("end") is not None else "unknown end")
                        for e in ex
                    ),
                }
            )
        out["jobs"] = {
            "count": jb.get("double_executions", len(rows)),
            "svg": strip(ticks, faults, t_end, "run twice") if ticks else None,
            "rows": rows[:MAX_WORKLOAD_ROWS],
            "listed": len(rows),
            "blame": blame_text(
                jb, "double_by_lock", "double_by_scheduler", "the scheduler ran them again"
            ),
        }
    return out


# Whose fault one lost update or double-executed slot is (checkers.blame), in a table cell.
WHOSE = {
    "lock": "the lock's: two clients acted as holder at once",
    "store": "the store's",
    "scheduler": "the scheduler's",
}


def blame_text(result: dict[str, Any], by_lock: str, by_other: str, other: str) -> str | None:
    """One sentence on whose fault a checker's damage is, or None when it did not say."""
    blame, n_lock, n_other = result.get("blame"), result.get(by_lock), result.get(by_other)
    if blame == "lock":
        return "Two clients acted as holder at once around each of them: the lock's fault."
    if blame in ("store", "scheduler"):
        return f"No two clients acted as holder at once around any of them: {other}, not the lock."
    if blame == "both" and isinstance(n_lock, int) and isinstance(n_other, int):
        return (
            f"{n_lock:,} with two clients acting as holder at once around them (the lock's "
            f"fault); {n_other:,} with none ({other}, not the lock)."
        )
    return None


def secs(ns: Any) -> str:
    return f"{ns / 1e9:.3f} s" if isinstance(ns, int | float) and not isinstance(ns, bool) else "—"
