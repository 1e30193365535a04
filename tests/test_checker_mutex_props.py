"""Property tests: the fast mutex checker agrees with exhaustive searches, under both models.

Strict: (a) checkers.wgl with the owner-aware mutex model; (b) a plain brute force written here:
try every order of the ops that respects real time, taking each info op as happened or not.
Lease: a brute force of its own, the strict one plus an ``expire`` step per grant that may run
only after its holder invoked release and once the TTL has passed since its acquire's
invocation (checkers/model.py).
Histories come from a simulated lock with leases that can expire (mostly valid) and from random
outcomes (mostly invalid); both verdicts must actually occur.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from checkers import mutex, wgl
from checkers.history import Op
from checkers.model import LEASE, LockModel

Event = tuple[int, str, str, Any, Any]  # (process, type, f, key, value)


def stamp(events: list[Event], data: st.DataObject) -> list[Op]:
    """Give events times (with ties) and indexes whose order disagrees with time, then shuffle.

    Sorting by (time, index) must give back the generated order, so within a run of equal
    times the indexes are kept ascending.
    """
    n = len(events)
    gaps = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    idx = data.draw(st.permutations(range(n)))
    times, t = [], 0
    for g in gaps:
        t += g
        times.append(t)
    start = 0
    for i in range(1, n + 1):
        if i == n or times[i] != times[start]:
            idx[start:i] = sorted(idx[start:i])
            start = i
    ops = [
        Op(idx[i], times[i], p, ty, f, key, value)
        for i, (p, ty, f, key, value) in enumerate(events)
    ]
    return data.draw(st.permutations(ops))


@st.composite
def random_history(draw: st.DrawFn) -> list[Event]:
    """Random invocations and random outcomes; a process is retired after info."""
    nproc = draw(st.integers(1, 3))
    keys = draw(st.sampled_from([["a"], ["a", 2]]))
    procs = list(range(nproc))
    nxt = nproc
    pending: dict[int, tuple[str, Any]] = {}
    events: list[Event] = []
    for _ in range(draw(st.integers(1, 12))):
        slot = draw(st.integers(0, nproc - 1))
        p = procs[slot]
        if p not in pending:
            f = draw(st.sampled_from(["acquire", "acquire", "release"]))
            key = draw(st.sampled_from(keys))
            pending[p] = (f, key)
            events.append((p, "invoke", f, key, None))
            continue
        f, key = pending.pop(p)
        ty = draw(st.sampled_from(["ok", "ok", "fail", "info"]))
        events.append((p, ty, f, key, None))
        if ty == "info":
            procs[slot] = nxt
            nxt += 1
    return events


@st.composite
def simulated_history(draw: st.DrawFn) -> list[Event]:
    """A real lock with leases: grants when free or expired, refuses non-owners.

    An op takes effect at its completion; an info op takes effect or not, at random. Leases
    can expire before their holder releases, which yields revoked-while-held histories.
    """
    nproc = draw(st.integers(2, 3))
    keys = draw(st.sampled_from([["a"], ["a", 2]]))
    ttl = draw(st.sampled_from([3, 6, 1000]))
    owner: dict[Any, tuple[int, int]] = {}  # key -> (process, expiry step)
    procs = list(range(nproc))
    nxt = nproc
    holding: dict[int, Any] = {}
    pending: dict[int, tuple[str, Any]] = {}
    events: list[Event] = []
    for step in range(draw(st.integers(2, 14))):
        slot = draw(st.integers(0, nproc - 1))
        p = procs[slot]
        if p not in pending:
            if p in holding:
                f, key = "release", holding[p]
            else:  # idle clients sometimes release a lock they do not hold
                f = draw(st.sampled_from(["acquire", "acquire", "acquire", "release"]))
                key = draw(st.sampled_from(keys))
            pending[p] = (f, key)
            events.append((p, "invoke", f, key, None))
            continue
        f, key = pending.pop(p)
        cur = owner.get(key)
        if cur is not None and cur[1] <= step:
            cur = None  # expired
        if f == "acquire":
            effect = cur is None
        else:
            effect = cur is not None and cur[0] == p
        info = draw(st.integers(0, 9)) == 0
        if info:
            effect = effect and draw(st.booleans())
        if effect:
            if f == "acquire":
                owner[key] = (p, step + ttl)
            else:
                owner.pop(key, None)
        if info:
            events.append((p, "info", f, key, None))
            holding.pop(p, None)
            procs[slot] = nxt
            nxt += 1
            continue
        events.append((p, "ok" if effect else "fail", f, key, None))
        if f == "acquire" and effect:
            holding[p] = key
        elif f == "release":
            holding.pop(p, None)
    return events


def brute_force(ops: list[Op]) -> bool:
    """Some order of the ops respects real time and the owner-aware mutex: exhaustive."""
    srt = sorted(ops, key=lambda o: (o.time, o.index))
    calls = []  # [process, f, key, invoke position, return position or None, required]
    open_: dict[Any, list[Any]] = {}
    for pos, o in enumerate(srt):
        if o.type == "invoke":
            open_[o.process] = [o.process, o.f, o.key, pos, None, False]
            calls.append(open_[o.process])
            continue
        c = open_.pop(o.process)
        if o.type == "fail":
            calls.remove(c)
        elif o.type == "ok":
            c[4], c[5] = pos, True

    def go(done: frozenset[int], owners: dict[Any, Any]) -> bool:
        if all(c[5] is False or i in done for i, c in enumerate(calls)):
            return True
        for i, c in enumerate(calls):
            if i in done:
                continue
            # c may come next only if every op that returned before c began is done
            if any(d[4] is not None and d[4] < c[3] and j not in done for j, d in enumerate(calls)):
                continue
            p, f, key = c[0], c[1], c[2]
            if f == "acquire" and owners.get(key) in (None, p):  # its own again: one owner
                if go(done | {i}, {**owners, key: p}):
                    return True
            elif f == "release" and owners.get(key) == p:
                if go(done | {i}, {**owners, key: None}):
                    return True
        return False

    # info ops may also never happen: the success test above already allows leaving them out
    return go(frozenset(), {})


def brute_force_lease(ops: list[Op], ttl: int | None) -> bool:
    """Some order of the ops and of grant expiries respects real time and the lease model.

    A grant (an ok acquire) may expire once its holder has invoked the release that follows it
    and ``ttl`` has passed since the acquire's invocation; a call that returned before both of
    those moments must come before the expiry. With ``ttl`` None nothing expires."""
    srt = sorted(ops, key=lambda o: (o.time, o.index))
    calls: list[list[Any]] = []  # [process, f, key, inv pos, ret pos, required, inv time, ret time]
    open_: dict[Any, list[Any]] = {}
    for pos, o in enumerate(srt):
        if o.type == "invoke":
            open_[o.process] = [o.process, o.f, o.key, pos, None, False, o.time, None]
            calls.append(open_[o.process])
            continue
        c = open_.pop(o.process)
        if o.type == "fail":
            calls.remove(c)
        elif o.type == "ok":
            c[4], c[5], c[7] = pos, True, o.time
    n = len(calls)
    # expire of grant i: (i, the position its holder stopped at, the time its lease may end)
    expiries: dict[int, tuple[int, int]] = {}
    for i, c in enumerate(calls):
        if ttl is None or c[1] != "acquire" or not c[5]:
            continue
        rel = next(  # whatever that release's outcome
            (
                pos
                for pos, o in enumerate(srt)
                if pos > c[4]
                and (o.process, o.type, o.f, o.key) == (c[0], "invoke", "release", c[2])
            ),
            None,
        )
        if rel is not None:
            expiries[i] = (rel, c[6] + ttl)

    def may_go(done: frozenset[int], before) -> bool:
        return not any(
            d[4] is not None and before(d) and j not in done for j, d in enumerate(calls)
        )

    def go(done: frozenset[int], owners: dict[Any, Any]) -> bool:
        if all(c[5] is False or i in done for i, c in enumerate(calls)):
            return True
        for i, c in enumerate(calls):
            if i in done:
                continue
            if not may_go(done, lambda d, c=c: d[4] < c[3]):
                continue
            p, f, key = c[0], c[1], c[2]
            owner = owners.get(key)
            if f == "acquire" and (owner is None or owner[0] == p):
                if go(done | {i}, {**owners, key: (p, i)}):
                    return True
            elif f == "release" and owner is not None and owner[0] == p:
                if go(done | {i}, {**owners, key: None}):
                    return True
        for key, owner in owners.items():
            if owner is None or owner[1] not in expiries or n + owner[1] in done:
                continue
            stop, at = expiries[owner[1]]
            if may_go(done, lambda d, stop=stop, at=at: d[4] < stop or d[7] < at):
                if go(done | {n + owner[1]}, {**owners, key: None}):
                    return True
        return False

    return go(frozenset(), {})


def agree_lease(ops: list[Op], ttl: int | None, seen: Counter[str], source: str) -> None:
    r = mutex.check(ops, model=LockModel(LEASE, "ttl" if ttl else "none", ttl and ttl / 1e6))
    brute = brute_force_lease(ops, ttl)
    assert r["valid"] == brute, (ttl, r["summary"], brute, [o.to_dict() for o in ops])
    if r["valid"] and r["lapse_count"]:
        event(f"lease {source}: valid with lapses")
        seen[f"{source} lapses"] += 1
    if not r["valid"]:
        event(f"lease {source}: " + " ".join(sorted(r["violation_kinds"])))
    seen[f"{source} {r['valid']}"] += 1


def agree(ops: list[Op], seen: Counter[str], source: str) -> None:
    r = mutex.check(ops)
    oracle = wgl.check(ops)["valid"]
    brute = brute_force(ops)
    assert r["valid"] == oracle == brute, (r["summary"], oracle, brute, [o.to_dict() for o in ops])
    if not r["valid"]:
        assert r["violation_count"] >= 1
        event(f"{source}: " + " ".join(sorted(r["violation_kinds"])))
    seen[f"{source} {r['valid']}"] += 1


SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def test_random_outcomes_match_oracles() -> None:
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(random_history(), st.data())
    def run(events: list[Event], data: st.DataObject) -> None:
        agree(stamp(events, data), seen, "random")

    run()
    assert seen["random True"] >= 20 and seen["random False"] >= 20, seen


def test_simulated_lock_matches_oracles() -> None:
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(simulated_history(), st.data())
    def run(events: list[Event], data: st.DataObject) -> None:
        agree(stamp(events, data), seen, "simulated")

    run()
    # the simulated lock breaks in 9 to 58 of 400 examples (30 runs counted): 10 failed 1 run
    # in 40; 3 still shows that the oracles were compared on broken histories
    assert seen["simulated True"] >= 20 and seen["simulated False"] >= 3, seen


TTLS = st.sampled_from([None, 1, 2, 4, 8])
# short leases, so that the simulated lock's refused releases are followed by lapses often
SHORT_TTLS = st.sampled_from([None, 1, 1, 2, 3])


def test_lease_model_random_outcomes_match_brute_force() -> None:
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(random_history(), TTLS, st.data())
    def run(events: list[Event], ttl: int | None, data: st.DataObject) -> None:
        agree_lease(stamp(events, data), ttl, seen, "random")

    run()
    assert seen["random True"] >= 20 and seen["random False"] >= 20, seen


def test_lease_model_simulated_lock_matches_brute_force() -> None:
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(simulated_history(), SHORT_TTLS, st.data())
    def run(events: list[Event], ttl: int | None, data: st.DataObject) -> None:
        agree_lease(stamp(events, data), ttl, seen, "simulated")

    run()
    # the simulated lock is a correct lease lock: under the lease model it is valid but for the
    # rare history its unknown outcomes make ambiguous (the random test covers invalid ones)
    assert seen["simulated True"] >= 20, seen
    # how often lapses occur varies a lot from run to run (hypothesis's draws); the lapse
    # stories themselves are pinned by tests/test_lock_model.py
