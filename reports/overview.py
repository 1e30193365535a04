"""The first screen of a report: what the verdict means in one plain sentence, and a few
figures as cards. Everything comes from results.json; nothing is re-checked here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from checkers.mutex import EARLY, acted_at_once


@dataclass
class Card:
    label: str
    value: str
    sub: str = ""
    tone: str = ""  # "bad" | "good" | "warn" | ""


def _checker(results: dict[str, Any], name: str) -> dict[str, Any]:
    c = (results.get("checkers") or {}).get(name)
    return c if isinstance(c, dict) else {}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _n(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def duration(ms: float) -> str:
    """0.404 ms, 3.93 ms, 435 ms, 1.75 s: three significant digits, seconds past 1000 ms."""
    return f"{ms / 1000:.3g} s" if ms >= 1000 else f"{ms:.3g} ms"


def fault_total(results: dict[str, Any]) -> tuple[int, int]:
    """(injected, failed) over every fault kind."""
    f = results.get("faults")
    if not isinstance(f, dict):
        return 0, 0
    counts = [c for c in f.values() if isinstance(c, dict)]
    return (
        sum(_int(c.get("injected")) or 0 for c in counts),
        sum(_int(c.get("failed")) or 0 for c in counts),
    )


def meaning(verdict: str, results: dict[str, Any], nemesis: str) -> str:
    """One plain sentence: what the verdict says about the lock."""
    mutex, fencing = _checker(results, "mutex"), _checker(results, "fencing")
    set_, jobs = _checker(results, "set"), _checker(results, "jobs")
    under = "without faults" if nemesis == "none" else f"under {nemesis}"
    others = not_the_locks(results)  # damage the lock did not cause: said first, apart
    if verdict == "invalid":
        harm = []
        kinds = (
            mutex.get("violation_kinds") if isinstance(mutex.get("violation_kinds"), dict) else {}
        )
        revoked = _int(kinds.get("revoked-while-held")) or 0
        overlap = _int(kinds.get("overlap")) or 0
        at_once = acted_at_once(mutex)  # None in results older than revoked_while_acting
        both = overlap if at_once is None else at_once
        acting = both - overlap  # revoked holds whose holder went on acting
        if both:  # only when they did: an overlap, or a revoked holder that went on acting
            harm.append(f"two clients acted as holder at once {_n(both, 'time')}")
        early = _int(kinds.get(EARLY)) or 0
        if early:
            harm.append(
                f"the lock gave a grant away early {_n(early, 'time')} (the earlier holder had "
                "stopped, but its grant could not yet have expired: a server that forgot it, a "
                "clock jump, a failover)"
            )
        if revoked - acting and at_once is None:  # results from before while_acting
            harm.append(
                f"a lock was given to another client before its holder's release took effect "
                f"{_n(revoked - acting, 'time')}"
            )
        elif revoked - acting:  # the lock left a holder that had let go, but never released it
            harm.append(
                f"a lock was given to another client after its holder stopped but before "
                f"any release took effect {_n(revoked - acting, 'time')} (its release failed)"
            )
        nonowner = _int(kinds.get("release-by-non-owner"))
        if nonowner:
            harm.append(f"a client released a lock it did not hold {_n(nonowner, 'time')}")
        if not kinds and _int(mutex.get("violation_count")):
            harm.append(f"{_n(mutex['violation_count'], 'mutual-exclusion violation')}")
        acc = _int(fencing.get("stale_accepted"))
        if acc:
            harm.append(f"{_n(acc, 'stale write')} reached the resource")
        lost = _by_lock(set_, "lost_by_lock", "lost_count")
        if lost:
            harm.append(f"{_n(lost, 'acknowledged update')} were lost")
        dbl = _by_lock(jobs, "double_by_lock", "double_executions")
        if dbl:
            harm.append(f"{_n(dbl, 'job slot')} ran more than once")
        back = _int(fencing.get("non_increasing"))
        if back:
            harm.append(f"fence tokens went backwards {_n(back, 'time')}")
        if others and not harm:  # the store lost them on its own, durable as declared
            return " ".join(others)
        said = "; ".join(harm) or "a checker found a violation"
        unsafe = f"This lock is unsafe {under}: {said}."
        if "both" in (set_.get("blame"), jobs.get("blame")):  # the lock's share comes first
            return " ".join([unsafe, *others])
        return " ".join([*others, unsafe])
    if verdict == "valid":
        holds = _int(mutex.get("hold_count"))
        what = (
            f"in {_n(holds, 'hold')}, no two clients ever held the same lock at once"
            if holds is not None
            else "no checker found a violation"
        )
        laps = _int(mutex.get("lapse_count"))
        lapsed = (
            f" {_n(laps, 'lease')} lapsed after {'its holder' if laps == 1 else 'their holders'}"
            " had stopped: the lease doing its job, not a violation."
            if laps
            else ""
        )
        return (
            f"No violation found {under}: {what}.{lapsed} This run found no evidence the lock "
            "is unsafe; it does not prove it safe."
        )
    why = results.get("unknown_because")
    if isinstance(why, list) and why:
        return " ".join(
            [*others, "This run proves neither safe nor unsafe: " + "; ".join(map(str, why)) + "."]
        )
    if others:
        return " ".join([*others, "This run proves nothing about the lock."])
    if not results:
        return "This run was not checked: there are no results."
    return "This run proves neither safe nor unsafe: no checker could vouch for it."


def _by_lock(result: dict[str, Any], by_lock: str, total: str) -> int | None:
    """The damage the lock caused: ``by_lock`` where the checker assigned blame, else all of it
    (results from before blame, or a history without lock ops)."""
    n = _int(result.get(by_lock))
    return n if n is not None and result.get("blame") is not None else _int(result.get(total))


def not_the_locks(results: dict[str, Any]) -> list[str]:
    """Sentences for the damage the checkers blamed on the store or the scheduler, not the lock
    (``checkers.blame``): lost updates with no two clients acting as holder at once, slots run
    again after a release. "other" when the lock caused the rest ("both")."""
    mutex = _checker(results, "mutex")
    kept = (
        "while the lock kept mutual exclusion"
        if mutex.get("valid") is True
        else "while no two clients acted as holder at once"
    )
    out = []
    set_, jobs = _checker(results, "set"), _checker(results, "jobs")
    lost = _int(set_.get("lost_by_store"))
    if lost and set_.get("blame") in ("store", "both"):
        setting = set_.get("non_durable")
        why = (
            f"its server ran {setting}, a setting the run declared non-durable: not the lock's "
            "fault"
            if setting
            else "the store itself lost acknowledged writes"
        )
        what = _n(lost, ("other " if set_["blame"] == "both" else "") + "acknowledged update")
        out.append(f"The store lost {what} {kept}: {why}.")
    dbl = _int(jobs.get("double_by_scheduler"))
    if dbl and jobs.get("blame") in ("scheduler", "both"):
        what = _n(dbl, ("other " if jobs["blame"] == "both" else "") + "job slot")
        out.append(
            f"The scheduler ran {what} more than once {kept}: each ran again after its lock "
            "was released (the schedule's timing, not the lock)."
        )
    return out


def cards(results: dict[str, Any]) -> list[Card]:
    mutex, fencing, perf = (_checker(results, n) for n in ("mutex", "fencing", "perf"))
    set_, jobs = _checker(results, "set"), _checker(results, "jobs")
    out: list[Card] = []
    holds = _int(mutex.get("hold_count"))
    if holds is not None:
        out.append(Card("holds", f"{holds:,}", f"on {_n(_int(mutex.get('keys')) or 0, 'key')}"))
    vc = _int(mutex.get("violation_count"))
    if vc is not None:
        kinds = (
            mutex.get("violation_kinds") if isinstance(mutex.get("violation_kinds"), dict) else {}
        )
        sub = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "mutual exclusion held"
        out.append(Card("violations", f"{vc:,}", sub, "bad" if vc else "good"))
    laps = _int(mutex.get("lapse_count"))
    if laps:
        out.append(Card("leases lapsed", f"{laps:,}", "not violations: each holder had stopped"))
    if _int(fencing.get("writes")):
        acc = _int(fencing.get("stale_accepted")) or 0
        rej = _int(fencing.get("stale_rejected")) or 0
        sub = f"of {fencing['writes']:,} writes" + (f"; {rej:,} rejected by fencing" if rej else "")
        out.append(Card("stale writes accepted", f"{acc:,}", sub, "bad" if acc else "good"))
    if set_ and _int(set_.get("lost_count")) is not None:
        lost = set_["lost_count"]
        sub = f"of {_int(set_.get('acknowledged_count')) or 0:,} acknowledged"
        sub += _blame_sub(set_, "lost_by_store", "the store's")
        tone = "bad" if _by_lock(set_, "lost_by_lock", "lost_count") else "warn" if lost else "good"
        out.append(Card("lost updates", f"{lost:,}", sub, tone))
    if jobs and _int(jobs.get("double_executions")) is not None:
        d = jobs["double_executions"]
        sub = f"of {_int(jobs.get('executed_slots')) or 0:,} slots run"
        sub += _blame_sub(jobs, "double_by_scheduler", "the scheduler's")
        tone = (
            "bad"
            if _by_lock(jobs, "double_by_lock", "double_executions")
            else "warn"
            if d
            else "good"
        )
        out.append(Card("double executions", f"{d:,}", sub, tone))
    ratio = _num(perf.get("success_ratio"))
    tried = _int(perf.get("attempted_acquires")) or 0
    avail = _available_in_time(results.get("availability"))
    if avail is not None:  # in time: a share of attempts says more about the retry loop
        share, during = avail
        sub = f"during faults {during:.1%}; " if during is not None else ""
        sub += f"{ratio:.1%} of {tried:,} acquires ok" if ratio is not None else ""
        out.append(Card("available", f"{share:.1%}", sub.rstrip("; ") or "of the run's time"))
    elif ratio is not None:
        out.append(Card("acquire success", f"{ratio:.1%}", f"of {tried:,} attempts"))
    lat = perf.get("acquire_latency_ms")
    lat = lat.get("ok") if isinstance(lat, dict) and isinstance(lat.get("ok"), dict) else lat
    if isinstance(lat, dict) and _num(lat.get("p50")) is not None:
        p99 = _num(lat.get("p99"))
        out.append(
            Card(
                "acquire latency",
                duration(lat["p50"]),
                f"p50; p99 {duration(p99)}" if p99 is not None else "p50",
            )
        )
    if isinstance(results.get("faults"), dict):
        inj, failed = fault_total(results)
        sub = ", ".join(
            f"{c.get('injected', 0)} {k}"
            for k, c in results["faults"].items()
            if isinstance(c, dict)
        )
        if failed:
            sub += f"; {failed} failed"
        cut = sum(
            _int(c.get("cut_short")) or 0 for c in results["faults"].values() if isinstance(c, dict)
        )
        if cut:  # healed early by the end of the run: not counted as injected
            sub += f"; {cut} cut short"
        out.append(
            Card("faults injected", f"{inj:,}", sub or "none", "warn" if failed or cut else "")
        )
    if isinstance(st := results.get("stalls"), dict) and _num(st.get("longest_s")) is not None:
        n, past = _int(st.get("count")) or 0, st.get("threshold_s")
        out.append(
            Card("harness stalls", f"{st['longest_s']:.2f} s", f"longest; {n} past {past} s")
        )
    return out


def _blame_sub(result: dict[str, Any], field: str, whose: str) -> str:
    """ "; all the store's", "; 3 the store's": the part not caused by the lock, on a card."""
    n = _int(result.get(field))
    if not n:
        return ""
    return f"; all {whose}" if result.get("blame") in ("store", "scheduler") else f"; {n:,} {whose}"


def _available_in_time(av: Any) -> tuple[float, float | None] | None:
    """The share of the run's time the lock was held or grantable (inside and outside faults
    weighted by their seconds), and the share during faults (None without faults)."""
    if not isinstance(av, dict):
        return None
    parts = [av.get("inside"), av.get("outside")]
    rows = [
        (_num(p.get("seconds")), _num(p.get("available_share")))
        for p in parts
        if isinstance(p, dict)
    ]
    rows = [(t, a) for t, a in rows if t and a is not None]
    total = sum(t for t, _ in rows)
    if not total:
        return None
    inside = av.get("inside") if isinstance(av.get("inside"), dict) else {}
    during = _num(inside.get("available_share")) if _num(inside.get("seconds")) else None
    return sum(t * a for t, a in rows) / total, during
