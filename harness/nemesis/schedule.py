"""The fault schedule: heal for an interval, inject the next fault, keep it for its duration,
heal, and so on in rotation; every start and stop is an op of process ``"nemesis"``."""

from __future__ import annotations

import time
from typing import Any

from checkers.history import NEMESIS
from workloads.base import OpRecorder

from .base import Nemesis


class Schedule:
    def __init__(self, nemeses: list[Nemesis], recorder: OpRecorder, interval: float) -> None:
        self.nemeses = nemeses
        self.rec = recorder
        self.interval = interval
        self.active: Nemesis | None = None
        self.turn = 0
        self.next_at = time.monotonic() + interval  # the run starts healthy

    def step(self) -> None:
        """Called from the run loop: does whatever is due now."""
        if not self.nemeses or time.monotonic() < self.next_at:
            return
        if self.active is None:
            nem = self.nemeses[self.turn % len(self.nemeses)]
            self.turn += 1
            self._op(nem, "start", nem.start)
            self.active = nem
            self.next_at = time.monotonic() + nem.duration()
        else:
            nem, self.active = self.active, None
            self._op(nem, "stop", nem.stop)
            self.next_at = time.monotonic() + self.interval

    def _op(self, nem: Nemesis, what: str, fn) -> Any:
        f = f"{what}-{nem.name}"
        self.rec.record(NEMESIS, "invoke", f)
        try:
            value = fn()
        except Exception as e:
            self.rec.record(NEMESIS, "info", f, error=f"{type(e).__name__}: {e}")
            return None
        self.rec.record(NEMESIS, "info", f, value=value)
        return value

    def heal(self) -> None:
        """End of the run: stop the fault in force, recorded, then undo anything left."""
        if self.active is not None:
            nem, self.active = self.active, None
            self._op(nem, "stop", nem.stop)
        self.teardown()

    def teardown(self) -> None:
        """Best effort and silent: also runs after Ctrl-C or a crash."""
        for nem in self.nemeses:
            try:
                nem.teardown()
            except Exception:
                pass
