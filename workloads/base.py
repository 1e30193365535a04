"""What a workload's client gets: its identity, its lock client, and where to record ops."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.base import Backend, Endpoint, LockClient
from harness.config import RunConfig
from harness.recorder import Recorder
from harness.witness import Witness

# Per-client slots in the shared status array, read by the client-pause nemesis.
STATUS_FIELDS = 3  # [process id, state, key index]
IDLE, ACQUIRING, HOLDING, RELEASING = 0, 1, 2, 3
SLEEP_SLICE = 0.1  # s: how often a sleeping client looks at the stop flag


class KeyNames(Sequence[str]):
    """The names of the run's keys, "0" .. "n-1", made on demand: a list of a million names in
    every client would cost each one tens of MB."""

    def __init__(self, n: int) -> None:
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [str(k) for k in range(self._n)[i]]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return str(i % self._n)


@dataclass
class ClientContext:
    index: int  # 0 .. concurrency-1
    cfg: RunConfig
    backend: Backend
    endpoints: list[Endpoint]
    recorder: Recorder
    witness: Witness
    stop: Any  # multiprocessing Event
    status: Any  # shared array of concurrency * STATUS_FIELDS int64
    deadline: float  # time.monotonic() after which the client stops by itself
    max_ops: int

    def __post_init__(self) -> None:
        seed = self.cfg.seed if self.cfg.seed is not None else time.time_ns()
        self.rng = random.Random(seed * 1000 + self.index)
        self.process = self.index

    def keys(self) -> Sequence[str]:
        return KeyNames(self.cfg.keys)

    def new_client(self) -> LockClient:
        return self.backend.client(self.endpoints, self.index)

    def retire(self) -> None:
        """After an ``info`` the process id is retired; the client goes on as a new one."""
        self.process += self.cfg.concurrency
        self.set_status(IDLE)

    def set_status(self, state: int, key_index: int = -1) -> None:
        base = self.index * STATUS_FIELDS
        self.status[base] = self.process
        self.status[base + 1] = state
        self.status[base + 2] = key_index

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def sleep(self, seconds: float) -> bool:
        """Sleep, waking early when the run stops (a hold of hours must not outlive the run).
        Returns False when it woke early."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return True
            if not self.running():
                return False
            time.sleep(min(left, SLEEP_SLICE))
