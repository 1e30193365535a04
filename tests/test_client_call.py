"""The history contract, ``ClientContext.call``: one place records an op's invoke, flushes it to
the pipe before the call goes out, and turns the call's outcome into ``ok``, ``fail`` (a refusal)
or ``info`` (unknown: the connection closed, the process retired). Lines read back from a real
recorder's pipe."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import pytest

from backends.base import LockFailed
from harness.run.recorder import Recorder
from workloads.base import HOLDING, IDLE, STATUS_FIELDS, ClientContext, error_text
from workloads.lockset import _add_error
from workloads.stores import NotHeld, StaleWrite


@dataclass
class Params:
    concurrency: int = 3
    keys: int = 2
    rate: float = 0.0
    seed: int | None = 1
    time_limit: float = 10.0


class Never:
    def is_set(self) -> bool:
        return False


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r, w
    os.close(r)
    os.close(w)


def _ctx(w: int) -> ClientContext:
    status = [0] * (3 * STATUS_FIELDS)
    return ClientContext(
        index=1, cfg=Params(), backend=None, endpoints=[],  # type: ignore[arg-type]
        recorder=Recorder(w, time.monotonic_ns(), buffered=True), shared=None, stop=Never(),
        status=status, deadline=time.monotonic() + 60, max_ops=10,
    )  # fmt: skip


def _lines(r: int) -> list[dict]:
    try:
        data = os.read(r, 1 << 16)
    except BlockingIOError:
        return []
    return [json.loads(line) for line in data.decode().splitlines()]


def _shape(ops: list[dict]) -> list[tuple]:
    return [
        (o["process"], o["type"], o["f"], o.get("key"), o.get("value"), o.get("error")) for o in ops
    ]


def test_ok_is_recorded_with_its_value_and_the_invoke_is_out_before_the_call(pipe):
    r, w = pipe
    ctx = _ctx(w)
    seen_during_call: list[dict] = []

    def call() -> list[int]:
        seen_during_call.extend(_lines(r))  # what a SIGSTOP here would leave in the history
        return [3, 1]

    out = ctx.call("read", "k", call, ok_value=sorted)
    ctx.recorder.flush()
    assert out.ok and not out.unknown and out.result == [3, 1] and out.error is None
    assert _shape(seen_during_call) == [(1, "invoke", "read", "k", None, None)]
    assert _shape(_lines(r)) == [(1, "ok", "read", "k", [1, 3], None)]
    # with no ok_value the ok repeats the invoke's value
    ctx.call("release", "k", lambda: None, value=7)
    ctx.recorder.flush()
    assert [o["value"] for o in _lines(r)] == [7, 7]


def test_a_refusal_is_a_fail_and_the_process_goes_on(pipe):
    r, w = pipe
    ctx = _ctx(w)
    closed: list[bool] = []

    def refuse() -> None:
        raise LockFailed("held by another client")

    out = ctx.call("acquire", "k", refuse, close=lambda: closed.append(True))
    ctx.recorder.flush()
    assert out.type == "fail" and isinstance(out.error, LockFailed)
    assert _shape(_lines(r)) == [
        (1, "invoke", "acquire", "k", None, None),
        (1, "fail", "acquire", "k", None, "LockFailed: held by another client"),
    ]
    assert ctx.process == 1 and not closed


def test_any_other_error_is_info_closes_and_retires(pipe):
    r, w = pipe
    ctx = _ctx(w)
    ctx.set_status(HOLDING, 0)
    closed: list[bool] = []

    def broken_close() -> None:
        closed.append(True)
        raise OSError("the connection was broken anyway")  # ignored

    def lost() -> None:
        raise TimeoutError()

    out = ctx.call("release", "k", lost, value=5, close=broken_close)
    ctx.recorder.flush()
    assert out.unknown and closed
    assert _shape(_lines(r)) == [
        (1, "invoke", "release", "k", 5, None),
        (1, "info", "release", "k", 5, "TimeoutError"),
    ]
    # a new process id (index + concurrency), idle, for the nemesis that looks for holders
    assert ctx.process == 4 and ctx.status[STATUS_FIELDS : 2 * STATUS_FIELDS] == [4, IDLE, -1]
    # the next op is the new process's
    ctx.call("acquire", "k", lambda: None)
    ctx.recorder.flush()
    assert {o["process"] for o in _lines(r)} == {4}


def test_a_holder_retires_only_after_its_release(pipe):
    r, w = pipe
    ctx = _ctx(w)

    def lost() -> None:
        raise ConnectionError("reset")

    out = ctx.call("add", "k", lost, value=9, retire=False)
    assert out.unknown and ctx.process == 1  # the release must still carry process 1
    ctx.call("release", "k", lambda: None, value=5)
    ctx.retire()
    ctx.recorder.flush()
    assert [(o["process"], o["type"], o["f"]) for o in _lines(r)] == [
        (1, "invoke", "add"), (1, "info", "add"), (1, "invoke", "release"), (1, "ok", "release"),
    ]  # fmt: skip
    assert ctx.process == 4


def test_errors_keep_the_text_the_checkers_read(pipe):
    r, w = pipe
    ctx = _ctx(w)

    def stale() -> None:
        raise StaleWrite("stale fence token 3 < 5")

    def gone() -> None:
        raise NotHeld("lock 'k' no longer held")

    ctx.call("add", "k", stale, value=1, error=_add_error)
    ctx.call("add", "k", gone, value=2, error=_add_error)
    ctx.not_sent("add", "k", f"read failed: {error_text(ConnectionError('x'))}", 3)
    ctx.recorder.flush()
    # "stale fence" first: checkers/fencing.py counts such a fail as rejected
    assert [(o["type"], o.get("error")) for o in _lines(r)] == [
        ("invoke", None), ("fail", "stale fence token 3 < 5"),
        ("invoke", None), ("fail", "NotHeld: lock 'k' no longer held"),
        ("invoke", None), ("fail", "read failed: ConnectionError: x"),
    ]  # fmt: skip
