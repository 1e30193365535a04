"""``harness hunt``: a property-based search over fault schedules, judged by real runs.

Hypothesis draws each candidate so that its choice sequence *is* the schedule: how many faults,
then per fault its kind, its target (when the nemesis takes one), whether it starts at a gap
after the previous fault or a delay after a client's next acquire, which lock holder it hits
(for client-pause and its kin: any, the client whose acquire started the delay, or the holder
of a key), and its duration in quarters of the lock's TTL. Each candidate is judged by K ``harness run`` processes (``runs``); it fails
when one is INVALID. ``hypothesis.target`` steers the search towards near misses
(``near_miss``): grants that came close to the earlier lease's expiry or to the moment its
holder stopped, holders that acted long past their lease, writes that nearly came after a
higher fence's, fence tokens with little headroom. The example database lives in the
hunt's store, so a hunt started again tries the last failure first.

After a failure: Hypothesis's shrinker (each step a real run), then our own passes, each
smaller candidate judged over ``SHRINK_RUNS`` runs and kept only while every one fails: delta
debugging over the fault list, halving durations, coarsening start times. The winner is then
replayed (``replay``) for its reproduction rate. The budget bounds the wall time of it all.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..nemesis import schedule as schedules
from . import near_miss, runs

SHRINK_RUNS = 3
RUN_OVERHEAD_S = 3.0  # a run's wall time past its time limit: servers up, stop grace, check
MAX_FAULTS = 4
#: a fault lasts 1 to 12 quarters of the TTL; an event-relative start waits 0 to 2 TTLs
DURATION_STEPS = 12
DELAY_STEPS = 20  # tenths of the TTL
GAP_STEPS = 20  # a twentieth of the faulted part of the run each
KEY_TARGETS = 4  # a fault on a lock holder may name the holder of keys 0 .. 3


class OutOfBudget(BaseException):
    """The wall-time budget ran out (a BaseException: Hypothesis must not take it for a
    failing example and shrink it)."""


class HuntError(schedules.ScheduleError):
    """A candidate's runs could not be run at all (one line for the user)."""


class CandidateFailed(Exception):
    """A candidate schedule broke the lock (Hypothesis shrinks it)."""


@dataclass
class Tried:
    """One judged candidate, as hunt.json and hunt.html tell it."""

    n: int
    phase: str
    faults: list[dict[str, Any]]
    verdicts: list[str]
    near: dict[str, float | None]
    t: float  # seconds into the hunt
    run_dirs: list[str] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return self.verdicts.count("invalid")

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "phase": self.phase,
            "faults": self.faults,
            "verdicts": self.verdicts,
            "near": self.near,
            "t": round(self.t, 1),
            "run_dirs": self.run_dirs,
        }


@dataclass
class Space:
    """What a candidate may hold: the fault kinds, their node targets, the TTL and run length;
    the kinds that act on a lock holder (``client_target``) and the run's number of keys."""

    kinds: list[str]
    targets: dict[str, list[str]]  # kind -> the target values it may take ([] : none)
    ttl_ms: float
    time_limit: float
    clients: list[str] = field(default_factory=list)  # kinds that take a holder target
    keys: int = 1

    def holders(self, relative: bool) -> list[Any]:
        """A holder fault's targets, simplest first: the nemesis's own (random) holder, the
        client whose acquire started the delay (event-relative starts), the holder of a key."""
        trigger = [schedules.TRIGGER] if relative else []
        return [
            None,
            *trigger,
            *({"holder_of": str(k)} for k in range(min(self.keys, KEY_TARGETS))),
        ]

    @property
    def horizon(self) -> float:
        """Seconds into the run by which every fault must be healed."""
        return self.time_limit - schedules.recovery_window(self.time_limit)


def draw_schedule(data: Any, space: Space) -> list[dict[str, Any]]:
    """One candidate from Hypothesis's ``data``: the draws are the schedule, in order."""
    from hypothesis import strategies as st

    ttl_s = space.ttl_ms / 1000
    gap_s = space.horizon / GAP_STEPS
    n = data.draw(st.integers(1, MAX_FAULTS), label="faults")
    out: list[dict[str, Any]] = []
    at = 0.0  # where the previous absolutely timed fault ended
    for _ in range(n):
        kind = data.draw(st.sampled_from(space.kinds), label="kind")
        options: dict[str, str] = {}
        if space.targets.get(kind):
            options["target"] = data.draw(st.sampled_from(space.targets[kind]), label="target")
        relative = data.draw(st.booleans(), label="after an acquire")
        if relative:
            steps = data.draw(st.integers(0, DELAY_STEPS), label="delay")
            start: dict[str, Any] = {"after": "acquire", "delay_ms": round(steps * ttl_s * 100, 3)}
        else:
            at += data.draw(st.integers(0, GAP_STEPS), label="gap") * gap_s
            start = {"at_s": round(at, 3)}
        who = None
        if kind in space.clients:
            who = data.draw(st.sampled_from(space.holders(relative)), label="holder")
        duration = data.draw(st.integers(1, DURATION_STEPS), label="duration") * ttl_s / 4
        fault = {"kind": kind, "options": options, "start": start, "duration_s": round(duration, 3)}
        if who is not None:
            fault["target"] = who
        if relative:  # it starts its delay after an acquire, at the earliest when the last ended
            at += steps * ttl_s / 10
        if at + duration > space.horizon:
            break  # it would not heal before the recovery window: the schedule ends here
        at += duration
        out.append(fault)
    return out


def size(faults: list[dict[str, Any]]) -> tuple[float, ...]:
    """Smaller is simpler: fewer faults, shorter in all."""
    return (len(faults), sum(f.get("duration_s") or 0 for f in faults))


class Hunt:
    """One hunt's state: the judge (real runs), what was tried, the deadline."""

    def __init__(
        self,
        argv: list[str],
        space: Space,
        out: Path,
        budget_s: float,
        runs_per_candidate: int,
        jobs: int,
        progress: Callable[[str], None],
        db_dir: Path | None = None,
    ) -> None:
        self.argv = argv
        #: Hypothesis's example database: shared by hunts of one lock and fault set, so a hunt
        #: started again tries the last failure first
        self.db_dir = db_dir or out / ".hypothesis"
        self.space = space
        self.out = out
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget_s
        self.k = runs_per_candidate
        self.jobs = jobs
        self.progress = progress
        self.tried: list[Tried] = []
        self.runs = 0
        self.found: Tried | None = None  # the smallest failing candidate so far
        self.best_margin: float | None = None
        self.best_past: float | None = None
        self.best_fences: dict[str, float | None] = {}  # stale_write_margin_ms, fence_gap
        self.cache: dict[str, Tried] = {}
        self.fatal: HuntError | None = None  # why the search had to stop
        self.shrink_until: float | None = None  # when Hypothesis's shrinking must end

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def room(self) -> bool:
        """Whether a run started now would end within the budget (its time limit, start-up and
        check): the budget bounds the hunt's wall time."""
        return self.left() >= self.space.time_limit + RUN_OVERHEAD_S

    def judge(self, faults: list[dict[str, Any]], phase: str, k: int, need: int = 1) -> Tried:
        """Run ``faults`` up to ``k`` times; stop once ``need`` runs were INVALID or can no
        longer be. OutOfBudget when the budget is spent before a run starts."""
        if not self.room():
            raise OutOfBudget
        n = len(self.tried) + 1
        cdir = self.out / "candidates" / f"c{n:04d}"
        cdir.mkdir(parents=True, exist_ok=True)
        sched = cdir / schedules.FILE
        schedules.write(sched, schedules.document(faults, "hunt", lease_ms=self.space.ttl_ms))
        outcomes: list[runs.Outcome] = []
        interrupted = False
        for i in range(k):
            if not self.room():
                break
            try:
                runs.run_many(
                    self.argv, sched, [cdir / f"r{i}"], 1, self.space.time_limit,
                    stop=lambda: not self.room(), done=outcomes.append,
                )  # fmt: skip
            except KeyboardInterrupt:  # the run stopped and checked what it recorded: keep it
                interrupted = True
                break
            bad = sum(o.invalid for o in outcomes)
            if bad >= need or (k - i - 1) + bad < need:
                break
        self.runs += len(outcomes)
        near = _nearest([o.near for o in outcomes])
        t = Tried(
            n,
            phase,
            faults,
            [o.verdict for o in outcomes],
            near,
            time.monotonic() - self.t0,
            [str(o.run_dir) for o in outcomes if o.run_dir is not None],
        )
        self.tried.append(t)
        if near.get("grant_margin_ms") is not None:
            m = near["grant_margin_ms"]
            self.best_margin = m if self.best_margin is None else min(self.best_margin, m)
        if near.get("acted_past_lease_ms") is not None:
            p = near["acted_past_lease_ms"]
            self.best_past = p if self.best_past is None else max(self.best_past, p)
        for name in ("stale_write_margin_ms", "fence_gap"):
            v, old = near.get(name), self.best_fences.get(name)
            if v is not None:
                self.best_fences[name] = v if old is None else min(old, v)
        if t.invalid >= need and (self.found is None or size(faults) <= size(self.found.faults)):
            self.found = t
        self.progress(self.line())
        if interrupted:
            raise KeyboardInterrupt
        if not outcomes:
            raise OutOfBudget
        if all(o.verdict == "error" for o in outcomes):
            # The harness could not run it: a setup that cannot work stops the hunt at once (the
            # first candidate, or two in a row); a lone failure on a loaded machine does not.
            before = self.tried[-2].verdicts if len(self.tried) > 1 else ["error"]
            if all(v == "error" for v in before):
                raise HuntError(f"a run of candidate {n} failed: {outcomes[0].error}")
        return t

    def line(self) -> str:
        cands = len(self.tried)
        near = "none yet" if self.best_margin is None else f"grant margin {self.best_margin:g} ms"
        if self.best_past is not None and self.best_past > 0:
            near += f", a holder acted {self.best_past:g} ms past its lease"
        stale = self.best_fences.get("stale_write_margin_ms")
        if stale is not None:
            near += f", a write {stale:g} ms before a higher fence's"
        found = f", FOUND ({len(self.found.faults)} faults)" if self.found else ""
        return (
            f"hunt: {cands} candidates, {self.runs} runs, best near miss: {near}{found}, "
            f"{max(0, self.left()):.0f} s left"
        )

    # -- the search ---------------------------------------------------------------------

    def search(self, seed: int | None, phase_end: float) -> None:
        """Hypothesis's search, then its shrinker, until a failure is shrunk, the phase ends or
        the budget does."""
        from hypothesis import HealthCheck, Phase, Verbosity, given, settings, target
        from hypothesis import seed as hseed
        from hypothesis import strategies as st
        from hypothesis.database import DirectoryBasedExampleDatabase

        db = DirectoryBasedExampleDatabase(str(self.db_dir))

        @settings(
            database=db,
            max_examples=100_000,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
            report_multiple_bugs=False,
            verbosity=Verbosity.quiet,
            print_blob=False,
        )
        @given(st.data())
        def candidate(data: Any) -> None:
            if time.monotonic() > phase_end:
                raise OutOfBudget
            if self.found is not None and self.shrink_until is None:
                # Hypothesis's shrinker gets half of what is left: our passes need the rest
                self.shrink_until = time.monotonic() + (phase_end - time.monotonic()) / 2
            if self.shrink_until is not None and time.monotonic() > self.shrink_until:
                raise OutOfBudget
            faults = draw_schedule(data, self.space)
            key = json.dumps(faults, sort_keys=True)
            t = self.cache.get(key)
            # while searching one INVALID run fails a candidate; while shrinking, every one of
            # SHRINK_RUNS must be: a minimal schedule that fails only now and then is no help
            k, need = (self.k, 1) if self.found is None else (SHRINK_RUNS, SHRINK_RUNS)
            if t is None:
                phase = "search" if self.found is None else "hypothesis shrink"
                try:
                    t = self.cache[key] = self.judge(faults, phase, k, need)
                except HuntError as e:  # not a failing example: stop the search, say why
                    self.fatal = e
                    raise OutOfBudget from None
            if t.near.get("grant_margin_ms") is not None:
                target(-t.near["grant_margin_ms"], label="grant margin, ms (negated)")
            if t.near.get("acted_past_lease_ms") is not None:
                target(t.near["acted_past_lease_ms"], label="acted past lease, ms")
            if t.near.get("stale_write_margin_ms") is not None:
                target(-t.near["stale_write_margin_ms"], label="stale write margin, ms (negated)")
            if t.near.get("fence_gap") is not None:
                target(-t.near["fence_gap"], label="fence gap (negated)")
            if t.invalid >= min(need, len(t.verdicts)) and t.invalid:
                raise CandidateFailed(key)

        # each shrink step costs a real run: bound the shrinker by the phase's end
        if seed is not None:
            candidate = hseed(seed)(candidate)
        try:
            candidate()
        except OutOfBudget:
            pass
        except CandidateFailed:
            pass
        except Exception:  # noqa: BLE001 - e.g. Flaky: a real run's verdict is a distribution
            pass
        if self.fatal is not None:
            raise self.fatal

    # -- our shrinking passes -----------------------------------------------------------

    def fails(self, faults: list[dict[str, Any]], phase: str) -> bool:
        return self.judge(faults, phase, SHRINK_RUNS, need=SHRINK_RUNS).invalid >= SHRINK_RUNS

    def shrink(self, faults: list[dict[str, Any]], until: float) -> list[dict[str, Any]]:
        """Delta debugging over the fault list, then shorter durations, then coarser starts;
        each step kept only while the smaller schedule still fails."""
        cur = list(faults)
        try:
            cur = self._ddmin(cur, until)
            cur = self._shorten(cur, until)
            cur = self._coarsen(cur, until)
        except OutOfBudget:
            pass
        return cur

    def _check(self, until: float) -> None:
        if time.monotonic() > until:
            raise OutOfBudget

    def _ddmin(self, cur: list[dict[str, Any]], until: float) -> list[dict[str, Any]]:
        n = 2
        while cur:
            chunk = max(1, math.ceil(len(cur) / n))
            pieces = [cur[i : i + chunk] for i in range(0, len(cur), chunk)]
            reduced = False
            for i in range(len(pieces)):
                self._check(until)
                rest = [f for j, p in enumerate(pieces) if j != i for f in p]
                if self.fails(rest, "fault list"):
                    cur, n, reduced = rest, max(n - 1, 2), True
                    break
            if not reduced:
                if chunk == 1:
                    break
                n = min(len(cur), n * 2)
        return cur

    def _shorten(self, cur: list[dict[str, Any]], until: float) -> list[dict[str, Any]]:
        floor = self.space.ttl_ms / 4000
        for i in range(len(cur)):
            while (cur[i].get("duration_s") or 0) / 2 >= floor:
                self._check(until)
                shorter = [dict(f) for f in cur]
                shorter[i]["duration_s"] = round(cur[i]["duration_s"] / 2, 3)
                if not self.fails(shorter, "durations"):
                    break
                cur = shorter
        return cur

    def _coarsen(self, cur: list[dict[str, Any]], until: float) -> list[dict[str, Any]]:
        for i in range(len(cur)):
            start = cur[i]["start"]
            field_, grains = (
                ("delay_ms", (1000.0, 100.0, 10.0))
                if "after" in start
                else ("at_s", (1.0, 0.5, 0.1))
            )
            for g in grains:
                v = start[field_]
                coarse = round(round(v / g) * g, 3)
                if coarse == v:
                    break  # already this coarse: coarser grains were tried first
                self._check(until)
                cand = [dict(f) for f in cur]
                cand[i] = dict(cand[i], start={**start, field_: coarse})
                try:
                    schedules.parse_faults(cand)
                    schedules.check_fit(schedules.parse_faults(cand), self.space.time_limit)
                except schedules.ScheduleError:
                    continue
                if self.fails(cand, "start times"):
                    cur = cand
                    break
        return cur


def _nearest(nears: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The nearest miss of a candidate's runs, figure by figure (the largest time acted past a
    lease, the smallest of the others)."""
    out: dict[str, float | None] = {}
    for name in near_miss.FIGURES:
        vals = [v for n in nears if (v := n.get(name)) is not None]
        pick = max if name == "acted_past_lease_ms" else min
        out[name] = pick(vals) if vals else None
    return out
