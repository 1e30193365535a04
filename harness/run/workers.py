"""What the worker processes share with the harness: the stop flag every client reads on every
loop, and the multiprocessing context the workers are forked from."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.context import BaseContext


class StopFlag:
    """Set once by the harness, read by every client on every loop: a plain shared byte, so
    reading it takes no lock (a multiprocessing Event takes a shared lock on every read)."""

    def __init__(self, ctx: BaseContext) -> None:
        self._v = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._v.value = 1

    def is_set(self) -> bool:
        return self._v.value == 1


def context() -> BaseContext:
    # fork: workers start in milliseconds and inherit the pipe; they never touch the harness's
    # threads (workers are forked before any thread starts).
    return mp.get_context("fork")
