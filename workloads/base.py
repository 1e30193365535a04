"""What a workload is, and what its clients get.

A ``Workload`` is everything a test adds on top of a lock backend (Jepsen's test map, Porcupine's
model): its options, what each client does (``run_client``, in a thread of a forked worker), the
state its clients share (``shared_state``, made before the workers fork), the servers it needs
besides the lock's (``servers``: a data store cluster, started by the runtime and a target for
the nemeses like the lock's own nodes), a last phase once the faults are healed (``final``: the
final read), the checkers that judge its history (``checkers``: a checker map, composed), and
what the progress line counts (``progress``).

Every op a client makes goes through ``ClientContext.call`` (Jepsen's worker): it records the
invoke, flushes, calls, and records the outcome, so the history contract is written once.

Workloads are found through the ``harness.workloads`` entry point group (``workloads.registry``)
as backends are through ``harness.backends``. This package imports nothing from ``harness``:
the harness calls workloads, never the other way round.
"""

from __future__ import annotations

import contextlib
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import Any, ClassVar, Generic, Literal, NamedTuple, Protocol, TypeVar

from backends.base import (
    Backend,
    ClientParams,
    Endpoint,
    LockClient,
    LockFailed,
    NotAcquired,
    ServerNeed,
)
from backends.option_values import Option, parse_options
from checkers import CheckerMap

# Per-client slots in the shared status array, read by the client-pause nemesis.
STATUS_FIELDS = 3  # [process id, state, key index]
IDLE, ACQUIRING, HOLDING, RELEASING = 0, 1, 2, 3
SLEEP_SLICE = 0.1  # s: how often a sleeping client looks at the stop flag
#: ``--backoff`` default: the pause after a failure starts at 10 ms and doubles up to 1 s.
BACKOFF_MS = (10, 1000)
#: With backoff disabled (``--backoff 0``): the fixed pause after an unknown outcome or a failed
#: connect, before a fresh client tries again (the harness's only pause before backoff existed).
RETRY_PAUSE = 0.05  # s


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


class RunParams(Protocol):
    """The run-wide parameters a workload reads (``harness.run.config.RunConfig`` has them)."""

    concurrency: int
    keys: int
    rate: float
    seed: int | None
    time_limit: float
    backoff_ms: tuple[int, int]  # base, cap; (0, 0): no backoff


class StopSignal(Protocol):
    """Set by the harness when clients must stop (``harness.run.workers.StopFlag``)."""

    def is_set(self) -> bool: ...


class StatusArray(Protocol):
    """The shared status array: concurrency * STATUS_FIELDS int64 (a ctypes array in shared
    memory), written by the clients, read by the harness and the client-pause nemesis."""

    def __getitem__(self, i: int, /) -> int: ...
    def __setitem__(self, i: int, v: int, /) -> None: ...
    def __len__(self) -> int: ...


class OpRecorder(Protocol):
    """Where a client records its ops (``harness.run.recorder.Recorder``)."""

    def record(
        self,
        process: int | str,
        type_: str,
        f: str,
        key: Any = None,
        value: Any = None,
        error: str | None = None,
    ) -> None: ...

    def flush(self) -> None: ...

    def now(self) -> int:
        """The history's clock: ns since the run started, as in the ``time`` of its ops."""
        ...


T = TypeVar("T")


def error_text(e: BaseException) -> str:
    """An exception as an op's ``error``: its type, and its message when it has one."""
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """How one recorded call ended, as its completion op says: ``ok`` (took effect; ``result``
    is what the call returned), ``fail`` (certainly did not) or ``info`` (unknown)."""

    type: Literal["ok", "fail", "info"]
    result: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.type == "ok"

    @property
    def unknown(self) -> bool:
        return self.type == "info"


def _call(
    rec: OpRecorder,
    process: int,
    f: str,
    key: str | None,
    fn: Callable[[], T],
    value: Any,
    ok_value: Callable[[T], Any] | None,
    certain: tuple[type[BaseException], ...],
    error: Callable[[BaseException], str],
) -> Outcome[T]:
    """The history contract, the one place it is written (see ``ClientContext.call``)."""
    rec.record(process, "invoke", f, key, value)
    rec.flush()  # before the call goes out: a SIGSTOP or a crash must not hide the invoke
    try:
        result = fn()
    except certain as e:
        rec.record(process, "fail", f, key, value, error=error(e))
        return Outcome("fail", error=e)
    except Exception as e:
        rec.record(process, "info", f, key, value, error=error(e))
        return Outcome("info", error=e)
    rec.record(process, "ok", f, key, value if ok_value is None else ok_value(result))
    return Outcome("ok", result)


def _close_quietly(close: Callable[[], object] | None) -> None:
    """Drop a connection after an unknown outcome; it may be broken, so its own errors are
    ignored."""
    if close is not None:
        try:
            close()
        except Exception:
            pass


class Backoff:
    """Bounded exponential backoff with equal jitter: how long a client waits before its next
    attempt after failures (AWS's "Exponential Backoff and Jitter"; etcd's and Curator's clients
    pace their retries the same way).

    The k-th failure in a row sets a pause drawn from [s/2, s], s = min(cap, base * 2^(k-1)),
    with the client's seeded RNG, so a run's pauses follow from its seed; a success resets it.
    Equal jitter rather than full: every pause is at least half its step, so a client that keeps
    failing is paced whatever it draws, and clients that failed together spread out. Disabled
    (base 0): a fixed ``RETRY_PAUSE`` after an unknown outcome or a failed connect, nothing after
    a refusal, as before backoff existed.

    The pause only delays the next attempt (taken before a turn, never during a hold), so it
    changes how often a lock is asked, never what a grant means: no verdict depends on it.
    """

    __slots__ = ("base_s", "cap_s", "rng", "failures", "until")

    def __init__(self, base_ms: float, cap_ms: float, rng: random.Random) -> None:
        self.base_s = base_ms / 1000
        self.cap_s = cap_ms / 1000
        self.rng = rng
        self.failures = 0  # in a row
        self.until = 0.0  # time.monotonic() before which the next attempt must not start

    def failed(self, now: float, *, unknown: bool) -> float:
        """A failure at ``now``: the pause it sets (s)."""
        if self.base_s <= 0:
            pause = RETRY_PAUSE if unknown else 0.0
        else:
            step = min(self.cap_s, self.base_s * 2 ** min(self.failures, 62))
            pause = step / 2 + self.rng.uniform(0, step / 2)
            self.failures += 1
        self.until = max(self.until, now + pause)
        return pause

    def succeeded(self) -> None:
        self.failures = 0
        self.until = 0.0

    def left(self, now: float) -> float:
        """How much of the pause is still to wait (s)."""
        return max(0.0, self.until - now)


def _backs_off(out: Outcome[Any], f: str) -> bool:
    """Does this outcome call for a pause? An unknown one (something may be broken) and an
    acquire refused for any reason but the lock being held (``NotAcquired``: the lock service
    answered, the client waited ``wait_ms`` already, and a scheduler that finds its job locked
    skips by design)."""
    if out.type == "info":
        return True
    return out.type == "fail" and f == "acquire" and not isinstance(out.error, NotAcquired)


class Progress(NamedTuple):
    """What the progress line counts while the run goes: ops of this ``type`` and ``f``."""

    label: str  # e.g. "grants"
    type: str  # e.g. "ok"
    f: str  # e.g. "acquire"


@dataclass
class ClientContext:
    index: int  # 0 .. concurrency-1
    cfg: RunParams
    backend: Backend
    endpoints: list[Endpoint]  # the lock's nodes (or their proxies) for this client
    recorder: OpRecorder
    shared: Any  # what the workload's shared_state() made before the fork
    stop: StopSignal  # set by the harness when clients must stop
    status: StatusArray  # shared array of concurrency * STATUS_FIELDS int64
    deadline: float  # time.monotonic() after which the client stops by itself
    max_ops: int
    servers: dict[str, list[Endpoint]] = field(default_factory=dict)  # extra servers, by role
    #: the harness's start gate: called once, when the client's lock client is made (or could
    #: not be), it waits until every client is ready and the run's clock starts (``begin``)
    start: Callable[[ClientContext], None] | None = None

    def __post_init__(self) -> None:
        seed = self.cfg.seed if self.cfg.seed is not None else time.time_ns()
        self.rng = random.Random(seed * 1000 + self.index)
        # A stream of its own for the pauses: backoff on or off, the keys drawn stay the same.
        base, cap = getattr(self.cfg, "backoff_ms", (0, 0))  # a RunParams of before backoff
        self.backoff = Backoff(base, cap, random.Random(f"backoff:{seed}:{self.index}"))
        self.process = self.index
        self.started_at = 0.0  # time.monotonic() when it passed the start gate

    def keys(self) -> Sequence[str]:
        return KeyNames(self.cfg.keys)

    def new_client(self, params: ClientParams | None = None) -> LockClient:
        """A fresh lock client, told the run's TTL and wait (``Backend.connect``). The first
        one is made before the run's clock starts: connected or not, the client then waits at
        the start gate (``begin``)."""
        try:
            client = self.backend.connect(self.endpoints, self.index, params or ClientParams())
            if self.start is not None:  # before the clock: connected now, not at the first op
                with contextlib.suppress(Exception):
                    client.warm()
            return client
        finally:
            self.begin()

    def begin(self) -> None:
        """Wait at the harness's start gate, once: it sets ``deadline`` and the recorder's clock.
        Called by the first ``new_client``, the first op recorded or the second turn, whichever
        comes first; without a gate, nothing."""
        start, self.start = self.start, None
        if start is not None:
            start(self)
            self.started_at = time.monotonic()

    def call(
        self,
        f: str,
        key: str | None,
        fn: Callable[[], T],
        *,
        value: Any = None,
        ok_value: Callable[[T], Any] | None = None,
        certain: tuple[type[BaseException], ...] = (LockFailed,),
        error: Callable[[BaseException], str] = error_text,
        close: Callable[[], object] | None = None,
        retire: bool = True,
    ) -> Outcome[T]:
        """One op: record its invoke (``value``), flush, call ``fn``, record the outcome.

        ``fn`` returning is ``ok``, with ``ok_value(result)`` as its value (default: the invoke's
        ``value``). An exception of ``certain`` (default ``LockFailed``: the system refused) is
        ``fail``; any other is ``info``: ``close`` drops the connection, which may be broken,
        and the process retires. Every completion carries the invoke's value, and ``error(e)``
        as its error text.

        ``retire=False`` while the client holds a lock: its release must be invoked under the
        holder's process id, or the checkers cannot end the hold; the caller invokes release,
        then calls ``retire()`` when this outcome was ``unknown``.
        """
        out = _call(self.recorder, self.process, f, key, fn, value, ok_value, certain, error)
        if _backs_off(out, f):
            self.backoff.failed(time.monotonic(), unknown=out.unknown)
        elif out.ok and f == "acquire":
            self.backoff.succeeded()
        if out.type == "info":
            _close_quietly(close)
            if retire:
                self.retire()
        return out

    def not_sent(self, f: str, key: str | None, error: str, value: Any = None) -> None:
        """An op that failed before any of it reached the system under test (no connection,
        the read an add is computed from): its invoke and its certain ``fail``, together."""
        self.recorder.record(self.process, "invoke", f, key, value)
        self.recorder.record(self.process, "fail", f, key, value, error=error)
        # nothing reached the server: it may be down, as after an unknown outcome
        self.backoff.failed(time.monotonic(), unknown=True)

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

    def turns(self) -> Iterator[int]:
        """A client loop's turns: at most ``max_ops``, while the run lasts, paced by ``--rate``
        (each client every concurrency/rate s on average, jittered 0.5-1.5x, so clients do not
        march in step) and by the backoff after failures (``Backoff``); the recorder is flushed
        before each wait."""
        interval = self.cfg.concurrency / self.cfg.rate if self.cfg.rate > 0 else 0.0
        entered = next_at = time.monotonic()
        for turn in range(self.max_ops):
            if turn == 1:
                self.begin()  # the first turn made no client: the client starts now
                # what it waited at the gate does not count: the pacing starts with the run
                next_at += max(0.0, self.started_at - entered)
            if not self.running():
                return
            if not self.back_off():
                return
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0:
                    self.recorder.flush()
                    if not self.sleep(delay):
                        return
                next_at += interval * self.rng.uniform(0.5, 1.5)
            yield turn

    def back_off(self) -> bool:
        """Wait out the pause the last failures set (``turns`` does before each turn; a loop of
        its own calls it before its next attempt). False when the run stopped meanwhile."""
        left = self.backoff.left(time.monotonic())
        if left <= 0:
            return True
        self.recorder.flush()
        return self.sleep(left)

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


@dataclass
class SetupContext:
    """What ``Workload.shared_state`` gets: the servers are up, no worker has forked yet."""

    mp: BaseContext  # the multiprocessing (fork) context, for shared memory and locks
    cfg: RunParams
    backend: Backend
    endpoints: list[Endpoint]  # the lock's nodes, directly
    servers: dict[str, list[Endpoint]]  # extra servers, by role


@dataclass
class FinalContext:
    """The last phase, in the harness process, after faults are healed and clients stopped."""

    cfg: RunParams
    backend: Backend
    endpoints: list[Endpoint]  # the lock's nodes, directly
    servers: dict[str, list[Endpoint]]  # extra servers, by role
    recorder: OpRecorder
    shared: Any
    process: int  # a process id no client used
    deadline: float  # time.monotonic() by which the phase must end

    def call(
        self,
        f: str,
        key: str | None,
        fn: Callable[[], T],
        *,
        value: Any = None,
        ok_value: Callable[[T], Any] | None = None,
        certain: tuple[type[BaseException], ...] = (LockFailed,),
        error: Callable[[BaseException], str] = error_text,
    ) -> Outcome[T]:
        """One op, as ``ClientContext.call`` records it; the final phase's process is the
        history's last, so an ``info`` retires nothing."""
        return _call(self.recorder, self.process, f, key, fn, value, ok_value, certain, error)


class Workload(ABC):
    """One kind of test. Subclasses declare the class attributes and ``run_client``/``checkers``;
    the other hooks are optional."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: Options (``--workload-opt NAME=VALUE``; an ``Option.flag`` is also a ``harness run`` flag).
    options: ClassVar[dict[str, Option]] = {}
    progress: ClassVar[Progress] = Progress("ops ok", "ok", "")

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        """Parse and validate the options; raises ValueError (one line) before any server
        starts."""
        self.opts: dict[str, Any] = parse_options(
            self.options, opts or {}, f"workload {self.name!r}"
        )

    def prepare(self, cfg: RunParams, backend: Backend) -> None:  # noqa: B027 - optional hook
        """Called in the prepare stage, before anything starts: check the options against the
        run and the lock backend (raise ValueError, one line), decide what ``servers`` needs."""

    def servers(self) -> dict[str, ServerNeed]:
        """Servers needed besides the lock's, by role (e.g. {"store": ServerNeed("redis")}).
        Their nodes are named <role>1, <role>2 ... and clients get their endpoints."""
        return {}

    def shared_state(self, ctx: SetupContext) -> Any:
        """State every client shares (``ClientContext.shared``), made in the harness process
        once the servers are up and before the workers fork (e.g. a data store's tables)."""
        return None

    @abstractmethod
    def run_client(self, ctx: ClientContext) -> None:
        """One client's loop, in a thread of a worker process (its own process, on its main
        thread, when a nemesis freezes one client): ``for _ in ctx.turns()``, each op through
        ``ctx.call``. Whatever it makes is its own: clients share only ``ctx.shared``."""

    def final(self, ctx: FinalContext) -> None:  # noqa: B027 - optional hook
        """After the faults are healed and the clients stopped: e.g. a final read, recorded."""

    @abstractmethod
    def checkers(self) -> CheckerMap:
        """The checker map (``checkers.compose``) that judges this workload's history."""

    def lease_ms(self) -> float:
        """How long a client's claim lasts untended; nemeses scale their default fault lengths
        to it (a pause of twice the lease)."""
        return 3000.0

    def stop_grace_s(self) -> float:
        """How long one client op may block: the time clients get to finish after the run."""
        return 0.0

    def cooperative(self) -> bool:
        """Does a client of this workload wait only in Python besides its lock client (see
        ``Backend.cooperative``)? A store reached through a C driver does not."""
        return False
