"""The fault schedule: heal for an interval, inject the next fault, keep it for its duration,
heal, and so on in rotation; every start and stop is an op of process ``"nemesis"``.

No fault is cut short by the end of the run: a fault starts only when its planned duration
ends before the recovery window, the last ``RECOVERY_SHARE`` of the time limit, in which the
clients keep working on a healed cluster (Jepsen's final heal, then its recovery phase). The first
fault that would not fit ends the schedule, and ``not_started`` says why. A fault that the run's
end still stops early (Ctrl-C, every client at its op bound, a start that took long) is recorded
with ``"cut_short": true`` on its stop op, and is not counted as injected (``checkers.faults``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from checkers.history import NEMESIS
from workloads.base import OpRecorder

from .base import Nemesis

#: The share of the time limit kept free of faults at the end of a run. A fault shows its
#: effects after its heal: a woken holder writes, a restarted node serves with or without its
#: data, a healed partition lets a deposed leader's clients act; and a heal itself takes time (a
#: killed node's restart waits until it is ready). A tenth of the run scales with the faults the
#: run can hold, like Jepsen's 10 s recovery after its usual runs of one or two minutes, and still
#: leaves short runs (5 s with a 1 s interval) room for a fault of several seconds.
RECOVERY_SHARE = 0.1


def recovery_window(time_limit: float) -> float:
    """Seconds at the end of a run of ``time_limit`` s in which no fault is in force."""
    return RECOVERY_SHARE * time_limit


class Schedule:
    def __init__(
        self,
        nemeses: list[Nemesis],
        recorder: OpRecorder,
        interval: float,
        time_limit: float = math.inf,
        *,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``time_limit``: the run's, from ``started`` (the load's start on ``clock``, by
        default now)."""
        self.nemeses = nemeses
        self.rec = recorder
        self.interval = interval
        self.clock = clock
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
            self._op(nem, "start", nem.start)
            self.active = nem
            # The fault is in force from when its start returned (a client-pause may look for a
            # holder for a while first).
            self.planned = planned
            self.planned_end = self.next_at = self.clock() + planned
        else:
            nem, self.active = self.active, None
            self._op(nem, "stop", nem.stop)
            self.next_at = self.clock() + self.interval

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

    def heal(self) -> None:
        """End of the run: stop the fault in force, recorded (cut short when it was due to last
        longer), then undo anything left."""
        if self.active is not None:
            nem, self.active = self.active, None
            self._op(nem, "stop", nem.stop, cut_short=self.clock() < self.planned_end)
        self.teardown()

    def teardown(self) -> None:
        """Best effort and silent: also runs after Ctrl-C or a crash."""
        for nem in self.nemeses:
            try:
                nem.teardown()
            except Exception:
                pass
