"""Toxics: the faults a proxy applies to one direction of its connections.

Names, attributes and defaults follow Toxiproxy 2.x (``toxics/*.go``). A ``Toxic`` is the spec the
API shows; each connection direction (a ``Link``, see ``links.py``) that the toxic applies to
gets its own ``Installed`` record (per-link state: counters, timers, a "removed" event).

Behaviour on live connections (every type): adding a toxic installs it on every live link of its
stream (toxicity drawn once per link), removing uninstalls it at once (a chunk sleeping in a
latency/bandwidth/slicer delay is released early), updating re-installs it in place with the new
attributes (toxicity drawn again; limit_data's count of bytes passed is kept, as Toxiproxy keeps
a stateful toxic's state across an update).

As in Toxiproxy, ``timeout`` drops the data it receives (0 = never close, >0 = close that many
ms after it was installed) and, when removed, closes the connections it was holding: their
streams lost data, so they cannot be resumed. ``reset_peer`` drops data and sends a TCP RST
``timeout`` ms after the first chunk.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Container
from typing import TYPE_CHECKING, Any, ClassVar

from backends.errors import LockHarnessError

if TYPE_CHECKING:
    from .links import Link

STREAMS = ("upstream", "downstream")
Emit = Callable[[bytes], Awaitable[None]]


class ToxicError(LockHarnessError, ValueError):
    """Bad toxic JSON (or a taken name: ``status`` 409); the message is shown to the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Installed:
    """One toxic on one link: its per-link state."""

    __slots__ = ("toxic", "removed", "handle", "count", "armed")

    def __init__(self, toxic: Toxic) -> None:
        self.toxic = toxic
        self.removed = asyncio.Event()
        self.handle: asyncio.TimerHandle | None = None
        self.count = 0  # bytes passed (limit_data)
        self.armed = False  # reset_peer: first data seen

    def cancel(self) -> None:
        self.removed.set()
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class Toxic:
    type: ClassVar[str] = ""
    #: attribute name -> default; every attribute is a non-negative integer
    defaults: ClassVar[dict[str, int]] = {}

    def __init__(self, name: str, stream: str, toxicity: float, attributes: dict[str, Any]) -> None:
        self.name = name
        self.stream = stream  # as the client spelt it (Toxiproxy shows "UPSTREAM" as given)
        self.direction = stream.lower()  # "upstream" or "downstream"
        self.toxicity = toxicity
        self.attributes = self.check_attributes(attributes)

    @classmethod
    def check_attributes(cls, given: dict[str, Any]) -> dict[str, int]:
        attrs = dict(cls.defaults)
        for key, value in given.items():
            if key not in cls.defaults:
                continue  # Toxiproxy ignores unknown attributes too
            # Toxiproxy decodes attributes into Go integers: 1.5 and even 100.0 are refused.
            if isinstance(value, bool) or not isinstance(value, int):
                raise ToxicError(f"attribute {key} must be an integer, got {value!r}")
            if value < 0:
                raise ToxicError(f"attribute {key} must not be negative, got {value}")
            attrs[key] = value
        return attrs

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    def applies(self) -> bool:
        """Toxicity draw, made once per connection direction."""
        return self.toxicity >= 1.0 or random.random() < self.toxicity

    # -- hooks, called by the link -------------------------------------------------------

    def install(self, link: Link, inst: Installed) -> None:
        """The toxic starts acting on ``link`` (timers start here)."""

    async def pipe(self, link: Link, inst: Installed, ts: float, data: bytes, emit: Emit) -> None:
        """Pass one chunk (received at monotonic time ``ts``) on to ``emit``."""
        await emit(data)

    async def on_eof(self, link: Link, inst: Installed) -> None:
        """The source closed; runs before the close is passed on."""

    def uninstall(self, link: Link, inst: Installed) -> None:
        """The toxic was removed from ``link`` (not called when it is only updated)."""


def _ms(value: int) -> float:
    return value / 1000.0


class Latency(Toxic):
    type = "latency"
    defaults = {"latency": 0, "jitter": 0}

    async def pipe(self, link: Link, inst: Installed, ts: float, data: bytes, emit: Emit) -> None:
        delay = self.attributes["latency"]
        jitter = self.attributes["jitter"]
        if jitter:
            delay += random.uniform(-jitter, jitter)
        # From arrival, as Toxiproxy: back-to-back chunks are delayed together, not in series.
        wait = ts + _ms(max(0.0, delay)) - link.loop.time()
        if wait > 0:
            await _sleep_or_removed(inst, wait)
        await emit(data)


class Bandwidth(Toxic):
    type = "bandwidth"
    defaults = {"rate": 0}  # KB/s (1 KB = 1000 bytes); 0 = no limit

    async def pipe(self, link: Link, inst: Installed, ts: float, data: bytes, emit: Emit) -> None:
        rate = self.attributes["rate"] * 1000
        if rate <= 0:
            await emit(data)
            return
        step = max(1, rate // 10)  # pieces of 100 ms worth, so data trickles rather than bursts
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            if not inst.removed.is_set():
                await _sleep_or_removed(inst, len(piece) / rate)
            await emit(piece)


class SlowClose(Toxic):
    type = "slow_close"
    defaults = {"delay": 0}

    async def on_eof(self, link: Link, inst: Installed) -> None:
        await _sleep_or_removed(inst, _ms(self.attributes["delay"]))


class Timeout(Toxic):
    type = "timeout"
    defaults = {"timeout": 0}  # ms; 0 = black hole until the toxic is removed

    def install(self, link: Link, inst: Installed) -> None:
        t = self.attributes["timeout"]
        if t > 0:
            inst.handle = link.loop.call_later(_ms(t), link.conn.close)

    async def pipe(self, link: Link, inst: Installed, ts: float, data: bytes, emit: Emit) -> None:
        pass  # dropped on the ground, as Toxiproxy does

    def uninstall(self, link: Link, inst: Installed) -> None:
        link.conn.close()


class ResetPeer(Toxic):
    type = "reset_peer"
    defaults = {"timeout": 0}  # ms after the first data

    async def pipe(self, link: Link, inst: Installed, ts: float, data: bytes, emit: Emit) -> None:
        # As Toxiproxy: data is dropped; the first chunk arms the reset.
        if not inst.armed:
            inst.armed = True
            inst.handle = link.loop.call_later(_ms(self.attributes["timeout"]), link.conn.reset)


class Slicer(Toxic):
    type = "slicer"
    defaults = {"average_size": 0, "size_variation": 0, "delay": 0}  # bytes, bytes, µs

    async def pipe(self, link: Link, inst: Installed, ts: float, data: bytes, emit: Emit) -> None:
        avg = self.attributes["average_size"]
        var = min(self.attributes["size_variation"], max(0, avg - 1))
        if avg <= 0:
            await emit(data)
            return
        delay = self.attributes["delay"] / 1e6
        i = 0
        while i < len(data):
            size = avg + (random.randint(-var, var) if var else 0)
            await emit(data[i : i + size])
            i += size
            if delay and i < len(data) and not inst.removed.is_set():
                await _sleep_or_removed(inst, delay)


class LimitData(Toxic):
    type = "limit_data"
    defaults = {"bytes": 0}

    async def pipe(self, link: Link, inst: Installed, ts: float, data: bytes, emit: Emit) -> None:
        left = self.attributes["bytes"] - inst.count
        if left > 0:
            piece = data[:left]
            inst.count += len(piece)
            await emit(piece)
        if self.attributes["bytes"] - inst.count <= 0:
            link.conn.close()


async def _sleep_or_removed(inst: Installed, seconds: float) -> None:
    """Sleep, but stop early when the toxic is removed (its effect ends at once)."""
    if seconds <= 0 or inst.removed.is_set():
        return
    try:
        await asyncio.wait_for(inst.removed.wait(), seconds)
    except TimeoutError:
        pass


TYPES: dict[str, type[Toxic]] = {
    t.type: t for t in (Latency, Bandwidth, SlowClose, Timeout, ResetPeer, Slicer, LimitData)
}


def toxic_from_json(body: Any, taken: Container[str] = ()) -> Toxic:
    """A new toxic from the API's JSON; raises ToxicError naming what is wrong. The checks come
    in Toxiproxy's order: body, stream, type, name taken (409), then attributes."""
    if not isinstance(body, dict):
        raise ToxicError("bad request body: expected a JSON object")
    stream = body.get("stream")
    stream = "downstream" if stream is None else stream  # null keeps the default, "" does not
    if not isinstance(stream, str) or stream.lower() not in STREAMS:
        raise ToxicError("stream was invalid, can be either upstream or downstream")
    ttype = body.get("type")
    name = body.get("name") or f"{ttype if isinstance(ttype, str) else ''}_{stream}"
    if not isinstance(name, str):
        raise ToxicError("bad request body: name must be a string")
    if ttype not in TYPES:
        raise ToxicError(f"invalid toxic type {ttype!r}; known: {', '.join(sorted(TYPES))}")
    if name in taken:
        raise ToxicError("toxic already exists", 409)
    toxicity = _toxicity(body.get("toxicity"), 1.0)
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ToxicError("bad request body: attributes must be an object")
    return TYPES[ttype](name, stream, toxicity, attributes)


def updated_toxic(old: Toxic, body: Any) -> Toxic:
    """``old`` with the attributes and toxicity of an update body (others are kept)."""
    if not isinstance(body, dict):
        raise ToxicError("bad request body: expected a JSON object")
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ToxicError("bad request body: attributes must be an object")
    toxicity = _toxicity(body.get("toxicity"), old.toxicity)
    return type(old)(old.name, old.stream, toxicity, {**old.attributes, **attributes})


def _toxicity(value: Any, default: float) -> float:
    if value is None:  # absent or null: Toxiproxy keeps the default (or the old value)
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ToxicError(f"bad request body: toxicity must be a number in 0..1, got {value!r}")
    return float(value)
