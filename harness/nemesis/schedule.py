"""The fault schedule: which faults a run injects, when, for how long; every start and stop is an
op of process ``"nemesis"``, and every run writes what it injected to ``schedule.json``.

Two generators drive the same recording:

- ``Schedule`` (``--nemesis a,b``): heal for an interval, inject the next fault, keep it for its
  duration, heal, and so on in rotation;
- ``PlannedSchedule`` (``--schedule FILE``, ``harness replay``, ``harness hunt``): exactly the
  faults of a schedule file, one at a time in its order, each starting at an absolute time
  (``{"at_s": 4.0}``: seconds from the load's start) or relative to an observed event
  (``{"after": "acquire", "delay_ms": 350}``: once the previous fault healed, when a client next
  acquires any key, plus 350 ms), and lasting ``duration_s``.

No fault is cut short by the end of the run: a fault starts only when its planned duration
ends before the recovery window, the last ``RECOVERY_SHARE`` of the time limit, in which the
clients keep working on a healed cluster (Jepsen's final heal, then its recovery phase). The first
fault that would not fit ends the schedule, and ``not_started`` says why. A fault that the run's
end still stops early (Ctrl-C, every client at its op bound, a start that took long) is recorded
with ``"cut_short": true`` on its stop op, and is not counted as injected (``checkers.faults``).

The schedule file (docs/design.md, "Schedules"): ``{"format": FORMAT, "version": 1, "faults":
[{"kind", "options", "start", "duration_s", "target"}, ...]}`` (``target``, for a fault on a
lock holder: ``{"holder_of": KEY}`` or ``"trigger"``, the client whose acquire started an
event-relative delay); a run's own ``schedule.json`` adds, per fault,
what really happened (``targets``, ``started_s``, ``in_force_s``, ``healed_s``, ``injected``,
``cut_short``) and is accepted back as it is (those fields are ignored on input).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from checkers.history import NEMESIS
from workloads.base import HOLDING, STATUS_FIELDS, OpRecorder, StatusArray

from .base import Nemesis, NemesisError

#: The share of the time limit kept free of faults at the end of a run. A fault shows its
#: effects after its heal: a woken holder writes, a restarted node serves with or without its
#: data, a healed partition lets a deposed leader's clients act; and a heal itself takes time (a
#: killed node's restart waits until it is ready). A tenth of the run scales with the faults the
#: run can hold, like Jepsen's 10 s recovery after its usual runs of one or two minutes, and still
#: leaves short runs (5 s with a 1 s interval) room for a fault of several seconds.
RECOVERY_SHARE = 0.1

FORMAT = "lockharness-schedule"
VERSION = 1
FILE = "schedule.json"
EVENTS = ("acquire",)  # what an event-relative start may follow: a client's acquire returning ok
MAX_FAULTS = 1000
MAX_S = 7 * 24 * 3600.0
IDLE_S = 0.05  # the run loop's pause between steps when nothing is imminent
POLL_S = 0.0005  # how often the status array is read while an event is awaited
TRIGGER = "trigger"  # a fault's target: the client whose acquire started its delay
#: fields of a recorded fault that say what happened; ignored when a schedule is read back
OBSERVED = ("targets", "started_s", "in_force_s", "healed_s", "injected", "cut_short", "error")


def recovery_window(time_limit: float) -> float:
    """Seconds at the end of a run of ``time_limit`` s in which no fault is in force."""
    return RECOVERY_SHARE * time_limit


class ScheduleError(NemesisError):
    """A schedule file that cannot be run (one line for the user)."""


@dataclass(frozen=True)
class Start:
    """When a fault starts: ``at_s`` seconds into the load, or ``delay_ms`` after ``after``
    (an event) is next observed once the previous fault healed."""

    at_s: float | None = None
    after: str | None = None
    delay_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        if self.after is not None:
            return {"after": self.after, "delay_ms": round(self.delay_ms, 3)}
        return {"at_s": round(self.at_s or 0.0, 3)}

    def words(self) -> str:
        if self.after is not None:
            return f"{self.delay_ms:g} ms after a client's next {self.after}"
        return f"at {self.at_s:g} s"


@dataclass(frozen=True)
class Target:
    """Which client a fault that acts on a lock holder hits: ``holder_of`` a key (its name), or
    the ``trigger`` (the client whose acquire started an event-relative fault's delay). No
    Target: the nemesis's own choice (a random holder)."""

    holder_of: str | None = None
    trigger: bool = False

    def to_dict(self) -> str | dict[str, str]:
        return TRIGGER if self.trigger else {"holder_of": str(self.holder_of)}

    def words(self) -> str:
        return (
            "the client whose acquire triggered it"
            if self.trigger
            else (f"the holder of key {self.holder_of}")
        )


@dataclass(frozen=True)
class Fault:
    """One planned fault: a registered nemesis kind, its options (as text, the nemesis parses
    them), when it starts, how long it stays in force (None: the nemesis's own default) and,
    for a fault on a lock holder, which one (None: the nemesis's choice)."""

    kind: str
    options: tuple[tuple[str, str], ...] = ()
    start: Start = Start(0.0)
    duration_s: float | None = None
    target: Target | None = None

    @property
    def opts(self) -> dict[str, str]:
        return dict(self.options)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "options": self.opts, "start": self.start.to_dict()}
        if self.duration_s is not None:
            d["duration_s"] = round(self.duration_s, 3)
        if self.target is not None:
            d["target"] = self.target.to_dict()
        return d

    def words(self) -> str:
        opts = "".join(f" {k}={v}" for k, v in self.options)
        dur = f" for {self.duration_s:g} s" if self.duration_s is not None else ""
        on = f" on {self.target.words()}" if self.target is not None else ""
        return f"{self.kind}{opts}{on} {self.start.words()}{dur}"


def _number(v: Any, what: str, lo: float, hi: float = MAX_S) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise ScheduleError(f"{what} must be a number from {lo:g} to {hi:g} (got {v!r})")
    return float(v)


def _keys(d: dict[str, Any], allowed: Sequence[str], what: str) -> None:
    bad = sorted(set(d) - set(allowed))
    if bad:
        raise ScheduleError(f"{what}: unknown field {bad[0]!r}; accepted: {', '.join(allowed)}")


def _start(raw: Any, what: str) -> Start:
    if not isinstance(raw, dict):
        raise ScheduleError(
            f'{what}.start must be {{"at_s": S}} or {{"after": "acquire", "delay_ms": D}}'
        )
    if "after" in raw:
        _keys(raw, ("after", "delay_ms"), f"{what}.start")
        if raw["after"] not in EVENTS:
            raise ScheduleError(
                f"{what}.start.after must be one of {', '.join(EVENTS)} (got {raw['after']!r})"
            )
        return Start(
            after=raw["after"],
            delay_ms=_number(raw.get("delay_ms", 0), f"{what}.start.delay_ms", 0, MAX_S * 1000),
        )
    _keys(raw, ("at_s",), f"{what}.start")
    if "at_s" not in raw:
        raise ScheduleError(f'{what}.start needs "at_s" (seconds into the run) or "after"')
    return Start(at_s=_number(raw["at_s"], f"{what}.start.at_s", 0))


def _target(raw: Any, start: Start, what: str) -> Target | None:
    if raw is None:
        return None
    if raw == TRIGGER:
        if start.after is None:
            raise ScheduleError(
                f'{what}.target "trigger" needs a start after an event '
                '({"after": "acquire", "delay_ms": D}): the client whose acquire triggered it'
            )
        return Target(trigger=True)
    if isinstance(raw, dict) and set(raw) == {"holder_of"}:
        key = raw["holder_of"]
        if (
            isinstance(key, str)
            and key.isdigit()
            or isinstance(key, int)
            and not isinstance(key, bool)
            and key >= 0
        ):
            return Target(holder_of=str(int(key)))
        raise ScheduleError(f"{what}.target.holder_of must be a key name: 0, 1, ... (got {key!r})")
    raise ScheduleError(
        f'{what}.target must be "trigger" or {{"holder_of": KEY}} (got {json.dumps(raw)})'
    )


def _option_text(v: Any, what: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | str):
        return str(v)
    raise ScheduleError(f"{what} must be text, a number or true/false (got {v!r})")


def parse_faults(raw: Any, kinds: Callable[[str], Any] | None = None) -> list[Fault]:
    """The faults of a schedule (the file's object, or its bare list of faults). ``kinds``
    looks a kind up (raising NemesisError for an unknown one). ScheduleError, one line, on
    anything else."""
    if isinstance(raw, dict):
        _keys(
            raw,
            ("format", "version", "generator", "time_limit_s", "lease_ms", "faults", "not_started"),
            "schedule",
        )
        if raw.get("format", FORMAT) != FORMAT:
            raise ScheduleError(f"schedule: format is {raw.get('format')!r}, not {FORMAT!r}")
        if raw.get("version", VERSION) != VERSION:
            raise ScheduleError(
                f"schedule: version {raw.get('version')!r} (this harness reads {VERSION})"
            )
        raw = raw.get("faults")
    if not isinstance(raw, list):
        raise ScheduleError('schedule: expected {"faults": [...]} or a list of faults')
    if len(raw) > MAX_FAULTS:
        raise ScheduleError(f"schedule: {len(raw)} faults, at most {MAX_FAULTS}")
    out: list[Fault] = []
    for i, f in enumerate(raw, 1):
        what = f"schedule fault {i}"
        if not isinstance(f, dict):
            raise ScheduleError(f"{what} must be an object with kind, options, start, duration_s")
        _keys(f, ("kind", "options", "start", "duration_s", "target", *OBSERVED), what)
        kind = f.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ScheduleError(f"{what} needs a kind (a nemesis name, see harness nemeses)")
        if kinds is not None:
            kinds(kind)
        opts = f.get("options") or {}
        if not isinstance(opts, dict):
            raise ScheduleError(f"{what}.options must be an object of NAME: VALUE")
        options = tuple((str(k), _option_text(v, f"{what}.options.{k}")) for k, v in opts.items())
        dur = f.get("duration_s")
        duration = None if dur is None else _number(dur, f"{what}.duration_s", 0.001)
        start = _start(f.get("start", {"at_s": 0}), what)
        out.append(Fault(kind, options, start, duration, _target(f.get("target"), start, what)))
    last_end, last_i = 0.0, 0
    for i, f in enumerate(out, 1):  # one fault at a time, in the file's order
        if f.start.at_s is None:
            last_end = math.inf  # an event-relative start: later absolute ones are not checked
            continue
        if f.start.at_s < last_end and math.isfinite(last_end):
            raise ScheduleError(
                f"schedule fault {i} starts at {f.start.at_s:g} s, before fault {last_i} ends at "
                f"{last_end:g} s: faults run one at a time, in the file's order"
            )
        last_end, last_i = f.start.at_s + (f.duration_s or 0.0), i
    return out


def load(path: Path | str) -> list[Fault]:
    """A schedule file's faults; ScheduleError (one line) for a file that cannot be read."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as e:
        raise ScheduleError(f"--schedule {path}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ScheduleError(f"--schedule {path}: not JSON ({e})") from None
    return parse_faults(raw)


def read(path: Path | str) -> list[dict[str, Any]]:
    """A schedule file as ``RunConfig.schedule`` holds it: its faults, without what a run
    observed of them."""
    return [f.to_dict() for f in load(path)]


def kinds(raw: list[dict[str, Any]]) -> list[str]:
    """The nemesis kinds a schedule uses, in order of first use (the run's nemesis label)."""
    return list(dict.fromkeys(str(f.get("kind")) for f in raw))


def check_fit(faults: Sequence[Fault], time_limit: float) -> None:
    """Every absolutely timed fault must end before the recovery window (a fault the run could
    not heal in time would not be run: refused before anything starts)."""
    horizon = time_limit - recovery_window(time_limit)
    for i, f in enumerate(faults, 1):
        if (
            f.start.at_s is not None and f.start.at_s + (f.duration_s or 0.0) > horizon + 0.002
        ):  # at_s as recorded: ms
            raise ScheduleError(
                f"schedule fault {i} ({f.words()}) would still be in force in the recovery "
                f"window (the last {recovery_window(time_limit):.3g} s of the {time_limit:g} s "
                "run, kept free of faults): give a longer --time-limit or an earlier start"
            )


def document(faults: Sequence[dict[str, Any]], generator: str, **meta: Any) -> dict[str, Any]:
    """The object ``schedule.json`` holds."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "generator": generator,
        **meta,
        "faults": list(faults),
    }


def _targets(value: Any) -> dict[str, Any]:
    """What a fault acted on, from its start op's value (a node, a client, a cut)."""
    if not isinstance(value, dict):
        return {}
    keys = ("node", "client", "process", "key", "topology", "reach", "nodes", "target")
    return {k: value[k] for k in keys if k in value}


def pinned_options(nem: Nemesis, opts: dict[str, str], value: Any) -> dict[str, str]:
    """The options that make a replay hit what this fault hit: a random node target becomes
    the node it chose, a random topology the one it drew (when the nemesis takes the option)."""
    out = dict(opts)
    if isinstance(value, dict):
        for opt, key in (("target", "node"), ("topology", "topology")):
            if opt in getattr(nem, "options", {}) and isinstance(value.get(key), str):
                if out.get(opt) in (None, "random"):
                    out[opt] = value[key]
    return out


class _Recorded:
    """What every schedule shares: start and stop ops in the history, and the log of faults
    as ``schedule.json`` writes them."""

    clock: Callable[[], float]
    started: float
    rec: OpRecorder
    planned: float
    nemeses: list[Nemesis]
    generator = "rotation"

    def _init_log(self) -> None:
        self.log: list[dict[str, Any]] = []
        self._entry: dict[str, Any] | None = None

    def _rel(self, t: float | None = None) -> float:
        return round((self.clock() if t is None else t) - self.started, 3)

    def _begin(
        self, nem: Nemesis, opts: dict[str, str], start: Start, target: Target | None = None
    ) -> Any:
        t0 = self.clock()
        value = self._op(nem, "start", nem.start)
        injected = isinstance(value, dict) and value.get("injected") is False
        entry: dict[str, Any] = {
            "kind": nem.name,
            "options": pinned_options(nem, opts, value),
            "start": start.to_dict(),
            "duration_s": round(self.planned, 3),
            **({"target": target.to_dict()} if target is not None else {}),
            "targets": _targets(value),
            "started_s": self._rel(t0),
            "in_force_s": None if value is None or injected else self._rel(),
            "healed_s": None,
            "injected": value is not None and not injected,
        }
        if value is None:
            entry["error"] = "its start failed (see the history)"
        self.log.append(entry)
        self._entry = entry
        return value

    def _end(self, nem: Nemesis, cut_short: bool = False) -> None:
        value = self._op(nem, "stop", nem.stop, cut_short=cut_short)
        if self._entry is not None:
            self._entry["healed_s"] = self._rel() if value is not None else None
            if cut_short:
                self._entry["cut_short"] = True
            self._entry = None

    def _op(self, nem: Nemesis, what: str, fn, cut_short: bool = False) -> Any:
        f = f"{what}-{nem.name}"
        self.rec.record(NEMESIS, "invoke", f)
        short = {"cut_short": True, "planned_s": round(self.planned, 3)} if cut_short else {}
        try:
            value = fn()
        except Exception as e:
            self.rec.record(
                NEMESIS, "info", f, value=short or None, error=f"{type(e).__name__}: {e}"
            )
            return None
        if short and value is not None:  # None: nothing was in force, nothing was cut short
            value = (value if isinstance(value, dict) else {"value": value}) | short
        self.rec.record(NEMESIS, "info", f, value=value)
        return value

    def sleep_s(self) -> float:
        """How long the run loop may sleep before the next step."""
        return IDLE_S

    def document(self, **meta: Any) -> dict[str, Any]:
        """``schedule.json``: the faults as run."""
        why = getattr(self, "not_started", None)
        return document(self.log, self.generator, **meta, **({"not_started": why} if why else {}))

    def teardown(self) -> None:
        """Best effort and silent: also runs after Ctrl-C or a crash."""
        for nem in self.nemeses:
            try:
                nem.teardown()
            except Exception:
                pass


class Schedule(_Recorded):
    """The rotation (``--nemesis``): one generator of schedules; its runs record theirs."""

    def __init__(
        self,
        nemeses: list[Nemesis],
        recorder: OpRecorder,
        interval: float,
        time_limit: float = math.inf,
        *,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        options: dict[str, str] | None = None,
    ) -> None:
        """``time_limit``: the run's, from ``started`` (the load's start on ``clock``, by
        default now). ``options``: the nemesis options given (recorded per fault)."""
        self._init_log()
        self.nemeses = nemeses
        self.rec = recorder
        self.interval = interval
        self.clock = clock
        self.options = options or {}
        self.started = clock() if started is None else started
        self.time_limit = time_limit
        self.recovery = recovery_window(time_limit) if math.isfinite(time_limit) else 0.0
        #: no fault may still be in force past this moment
        self.horizon = self.started + time_limit - self.recovery
        self.active: Nemesis | None = None
        self.planned_end = math.inf  # when the active fault is due to be healed
        self.planned = 0.0  # the active fault's planned duration, s
        self.turn = 0
        self.next_at = clock() + interval  # the run starts healthy
        self.done = False  # a fault did not fit before the recovery window: no more faults
        #: why the schedule stopped before the run's end, in words (None: it did not)
        self.not_started: str | None = None

    def step(self) -> None:
        """Called from the run loop: does whatever is due now."""
        now = self.clock()
        if not self.nemeses or self.done or now < self.next_at:
            return
        if self.active is None:
            nem = self.nemeses[self.turn % len(self.nemeses)]
            planned = nem.duration()
            if now + planned > self.horizon:
                self.done = True
                due = round(now - self.started, 2)
                self.not_started = (
                    f"a {nem.name} of {planned:.3g} s, due {due:g} s into the run, could not be "
                    f"healed before the recovery window (the last {self.recovery:.3g} s of the "
                    f"{self.time_limit:g} s run)"
                )
                return
            self.turn += 1
            self.planned = planned
            opts = {k: v for k, v in self.options.items() if k in nem.options}
            self._begin(nem, opts, Start(at_s=self._rel(now)))
            self.active = nem
            # The fault is in force from when its start returned (a client-pause may look for a
            # holder for a while first).
            self.planned_end = self.next_at = self.clock() + planned
        else:
            nem, self.active = self.active, None
            self._end(nem)
            self.next_at = self.clock() + self.interval

    def heal(self) -> None:
        """End of the run: stop the fault in force, recorded (cut short when it was due to last
        longer), then undo anything left."""
        if self.active is not None:
            nem, self.active = self.active, None
            self._end(nem, cut_short=self.clock() < self.planned_end)
        self.teardown()


class AcquireWatch:
    """Sees a client's acquire return ok in the shared status array: a client whose slot says
    HOLDING under a (process, key) it did not hold at the last look."""

    def __init__(self, status: StatusArray | None) -> None:
        self.status = status
        self.seen = self._holding()

    def _holding(self) -> set[tuple[int, int, int]]:
        st = self.status
        if st is None:
            return set()
        n = len(st) // STATUS_FIELDS
        out = set()
        for i in range(n):
            b = i * STATUS_FIELDS
            if st[b + 1] == HOLDING:
                out.add((i, st[b], st[b + 2]))
        return out

    def poll(self) -> tuple[int, int, int] | None:
        """A new hold (client index, process, key index) since the last look, or None."""
        now = self._holding()
        new = now - self.seen
        self.seen = now
        return min(new) if new else None


class PlannedSchedule(_Recorded):
    """Exactly the faults of a schedule, one at a time, in order."""

    generator = "file"

    def __init__(
        self,
        faults: Sequence[Fault],
        nemeses: list[Nemesis],
        recorder: OpRecorder,
        time_limit: float,
        *,
        status: StatusArray | None = None,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        floors: Sequence[float] | None = None,
    ) -> None:
        """``nemeses``: one instance per fault (its own options). ``floors``: per fault, the
        shortest time it may stay in force (a backend's minimum down time for a kill)."""
        self._init_log()
        self.faults = list(faults)
        self.nemeses = nemeses
        self.rec = recorder
        self.clock = clock
        self.status = status
        self.started = clock() if started is None else started
        self.time_limit = time_limit
        self.recovery = recovery_window(time_limit)
        self.horizon = self.started + time_limit - self.recovery
        self.floors = list(floors or [0.0] * len(faults))
        self.i = 0  # the next fault
        self.active: Nemesis | None = None
        self.planned = 0.0
        self.planned_end = math.inf
        self.due: float | None = None  # when the next fault starts (None: awaiting its event)
        self.watch: AcquireWatch | None = None
        self.trigger: tuple[int, int, int] | None = None  # the acquire that started the delay
        self.done = not faults
        self.not_started: str | None = None
        self._arm()

    def _planned(self, i: int) -> float:
        f, nem = self.faults[i], self.nemeses[i]
        d = f.duration_s if f.duration_s is not None else nem.duration()
        return max(d, self.floors[i])

    def _arm(self) -> None:
        """Set up the wait for the next fault's start."""
        if self.i >= len(self.faults):
            self.done = True
            return
        start = self.faults[self.i].start
        if start.at_s is not None:
            self.due, self.watch = self.started + start.at_s, None
        else:
            self.due, self.watch = None, AcquireWatch(self.status)

    def sleep_s(self) -> float:
        if self.done and self.active is None:
            return IDLE_S
        if self.watch is not None:
            return 0.0  # step() itself polls the status array while an event is awaited
        nxt = self.planned_end if self.active is not None else (self.due or math.inf)
        return max(0.0, min(IDLE_S, nxt - self.clock()))

    def step(self) -> None:
        """Called from the run loop: does whatever is due now (waiting up to IDLE_S for it, so
        an event-relative start is timed to the millisecond)."""
        if self.active is not None:
            if self.clock() >= self.planned_end:
                nem, self.active = self.active, None
                self._end(nem)
                self.i += 1
                self._arm()
            return
        if self.done:
            return
        if self.watch is not None:
            until = time.monotonic() + IDLE_S  # real time: bounded whatever the clock
            while time.monotonic() < until:
                self.trigger = self.watch.poll()
                if self.trigger is not None:
                    self.due = self.clock() + self.faults[self.i].start.delay_ms / 1000
                    self.watch = None
                    break
                time.sleep(POLL_S)
            else:
                return
        assert self.due is not None
        wait = self.due - self.clock()
        if wait > IDLE_S:
            return
        if wait > 0:
            time.sleep(wait)
        self._fire()

    def _fire(self) -> None:
        f, nem = self.faults[self.i], self.nemeses[self.i]
        planned = self._planned(self.i)
        now = self.clock()
        if now + planned > self.horizon:
            self.done = True
            self.not_started = (
                f"fault {self.i + 1} of the schedule ({f.kind} of {planned:.3g} s, due "
                f"{now - self.started:.2f} s into the run) could not be healed before the "
                f"recovery window (the last {self.recovery:.3g} s of the {self.time_limit:g} s run)"
            )
            return
        self.planned = planned
        if f.target is not None:  # a nemesis on a lock holder (check_planned): which one
            nem.want = (  # type: ignore[attr-defined]
                ("key", int(f.target.holder_of))
                if f.target.holder_of is not None
                else ("client", self.trigger[0])
                if self.trigger is not None
                else None
            )
        self._begin(nem, f.opts, f.start, f.target)
        self.active = nem
        self.planned_end = self.clock() + planned

    def heal(self) -> None:
        if self.active is not None:
            nem, self.active = self.active, None
            self._end(nem, cut_short=self.clock() < self.planned_end)
        self.teardown()


def check_planned(cfg: Any, backend: Any, raw: Any, extra: dict[str, Any]) -> list[type[Nemesis]]:
    """Everything about a schedule that needs no server (its shape, each fault's kind and
    options against this run's servers, absolute starts that fit): the nemesis classes it uses.
    ``extra``: the workload's (and front's) servers by role, whose nodes are targets too."""
    from ..runtime.base import node_names
    from ..runtime.kinds import server_kind
    from . import nemesis_class
    from .base import Plan

    faults = parse_faults(raw, nemesis_class)
    if cfg.nemesis_opts:
        raise ScheduleError("--nemesis-opt does not go with a schedule: each fault has its options")
    check_fit(faults, cfg.time_limit)
    need = backend.servers()
    plan = Plan(cfg, server_kind(need.kind, need.options), node_names(need.nodes), need.nodes == 0)
    for role, xneed in extra.items():
        kind = server_kind(xneed.kind, xneed.options)
        plan.extra.update({name: kind for name in node_names(xneed.nodes, role)})
    classes: dict[str, type[Nemesis]] = {}
    for i, f in enumerate(faults, 1):
        cls = classes.setdefault(f.kind, nemesis_class(f.kind))
        if f.target is not None:
            _check_target(i, f, cls, cfg)
        unknown = sorted(set(f.opts) - set(cls.options))
        if unknown:
            raise ScheduleError(
                f"schedule fault {i}: nemesis {f.kind} takes no option {unknown[0]}; accepted: "
                + (", ".join(sorted(cls.options)) or "none")
            )
        cls.validate(plan, f.opts)
    return list(classes.values())


def _check_target(i: int, f: Fault, cls: type[Nemesis], cfg: Any) -> None:
    """A client target needs a nemesis that acts on a lock holder, and a key of this run."""
    from . import nemeses

    if not getattr(cls, "client_target", False):
        takers = [n for n, c in sorted(nemeses().items()) if getattr(c, "client_target", False)]
        raise ScheduleError(
            f"schedule fault {i}: nemesis {f.kind} takes no target (a lock holder's: "
            + ", ".join(takers)
            + "); give its node in options.target"
        )
    keys = getattr(cfg, "keys", None)
    if f.target.holder_of is not None and keys is not None and int(f.target.holder_of) >= keys:
        raise ScheduleError(
            f"schedule fault {i}: target holder_of key {f.target.holder_of!r} is not a key of "
            f"this run (--keys {keys}: 0 to {keys - 1})"
        )


class _FaultParams:
    """A run's parameters as one fault of a schedule sees them: its planned duration is the
    nemesis's default length (``Nemesis.duration()`` reads ``nemesis_interval``)."""

    def __init__(self, cfg: Any, duration_s: float | None) -> None:
        self._cfg = cfg
        self.nemesis_interval = duration_s if duration_s is not None else cfg.nemesis_interval

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cfg, name)


def planned_nemeses(raw: Any, env: Any) -> list[Nemesis]:
    """One nemesis a fault of the schedule (already checked), each with its own options."""
    from . import nemesis_class

    out = []
    for f in parse_faults(raw):
        view = replace(env, cfg=_FaultParams(env.cfg, f.duration_s))
        out.append(nemesis_class(f.kind)(view, f.opts))
    return out


def make(
    cfg: Any,
    nemeses: list[Nemesis],
    recorder: OpRecorder,
    status: StatusArray | None,
    started: float,
) -> Schedule | PlannedSchedule:
    """The run's schedule: the file's (``cfg.schedule``), else the rotation of ``--nemesis``."""
    if cfg.schedule is None:
        return Schedule(
            nemeses,
            recorder,
            cfg.nemesis_interval,
            cfg.time_limit,
            started=started,
            options=cfg.nemesis_opts,
        )
    floors = [  # a fault that takes a server down keeps it down as long as the lock needs
        nem.env.backend.min_down_ms(nem.env.lease_ms) / 1000 if "down_ms" in nem.options else 0.0
        for nem in nemeses
    ]
    return PlannedSchedule(
        parse_faults(cfg.schedule),
        nemeses,
        recorder,
        cfg.time_limit,
        status=status,
        started=started,
        floors=floors,
    )


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")


__all__ = [
    "FILE",
    "Fault",
    "PlannedSchedule",
    "Schedule",
    "ScheduleError",
    "Start",
    "Target",
    "check_fit",
    "load",
    "parse_faults",
    "recovery_window",
]
