"""The first screen of a report: what the verdict means in one plain sentence, and a few
figures as cards. Everything comes from results.json; nothing is re-checked here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from checkers.mutex import acted_at_once


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
        if both:
            harm.append(f"two clients held the same lock at once {_n(both, 'time')}")
        if revoked - acting:  # the lock left a holder that had let go, but never released it
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
        lost = _int(set_.get("lost_count"))
        if lost:
            harm.append(f"{_n(lost, 'acknowledged update')} were lost")
        dbl = _int(jobs.get("double_executions"))
        if dbl:
            harm.append(f"{_n(dbl, 'job slot')} ran more than once")
        back = _int(fencing.get("non_increasing"))
        if back:
            harm.append(f"fence tokens went backwards {_n(back, 'time')}")
        said = "; ".join(harm) or "a checker found a violation"
        return f"This lock is unsafe {under}: {said}."
    if verdict == "valid":
        holds = _int(mutex.get("hold_count"))
        what = (
            f"in {_n(holds, 'hold')}, no two clients ever held the same lock at once"
            if holds is not None
            else "no checker found a violation"
        )
        return (
            f"No violation found {under}: {what}. This run found no evidence the lock is "
            "unsafe; it does not prove it safe."
        )
    why = results.get("unknown_because")
    if isinstance(why, list) and why:
        return "This run proves neither safe nor unsafe: " + "; ".join(map(str, why)) + "."
    if not results:
        return "This run was not checked: there are no results."
    return "This run proves neither safe nor unsafe: no checker could vouch for it."


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
    if _int(fencing.get("writes")):
        acc = _int(fencing.get("stale_accepted")) or 0
        rej = _int(fencing.get("stale_rejected")) or 0
        sub = f"of {fencing['writes']:,} writes" + (f"; {rej:,} rejected by fencing" if rej else "")
        out.append(Card("stale writes accepted", f"{acc:,}", sub, "bad" if acc else "good"))
    if set_ and _int(set_.get("lost_count")) is not None:
        lost = set_["lost_count"]
        sub = f"of {_int(set_.get('acknowledged_count')) or 0:,} acknowledged"
        out.append(Card("lost updates", f"{lost:,}", sub, "bad" if lost else "good"))
    if jobs and _int(jobs.get("double_executions")) is not None:
        d = jobs["double_executions"]
        sub = f"of {_int(jobs.get('executed_slots')) or 0:,} slots run"
        out.append(Card("double executions", f"{d:,}", sub, "bad" if d else "good"))
    ratio = _num(perf.get("success_ratio"))
    if ratio is not None:
        tried = _int(perf.get("attempted_acquires")) or 0
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
    return out
