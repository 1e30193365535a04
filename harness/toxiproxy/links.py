"""Proxied connections: a client socket, its upstream socket, and a ``Link`` per direction.

Hot path: with no toxic on a link, bytes read from one socket are written straight to the other
in the same event-loop callback (asyncio protocols, TCP_NODELAY on both sockets), so a proxied
round trip costs two extra loop iterations and no task switches. With toxics, chunks go through
a queue drained by one task per link, which runs each chunk through the toxics in the order they
were added. Back-pressure: a source socket stops being read while its destination's send buffer
is full or its toxic queue holds more than ``HIGH_WATER`` bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING

from .toxics import Installed, Toxic

if TYPE_CHECKING:
    from .server import Proxy

HIGH_WATER = 1 << 20
CONNECT_TIMEOUT = 5.0


class Link:
    """One direction of a connection: ``upstream`` (client -> server) or ``downstream``."""

    def __init__(
        self,
        conn: Connection,
        stream: str,
        src: asyncio.Transport,
        dst: asyncio.Transport,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.loop = conn.loop
        self.src = src
        self.dst = dst
        self.toxics: list[Installed] = []
        self.queue: deque[tuple[float, bytes | None]] = deque()
        self.queued = 0
        self.task: asyncio.Task[None] | None = None
        self.fast = True  # no toxics and nothing queued: write through
        self.dst_full = False
        self.src_paused = False
        self.done = False  # EOF passed on

    # -- data from the source ------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.fast:
            self.dst.write(data)
            return
        self.queue.append((self.loop.time(), data))
        self.queued += len(data)
        if self.queued > HIGH_WATER:
            self._update_reading()
        self._kick()

    def feed_eof(self) -> None:
        if self.fast:
            self._finish()
        else:
            self.queue.append((self.loop.time(), None))
            self._kick()

    # -- toxics --------------------------------------------------------------------------

    def install(self, toxic: Toxic) -> None:
        inst = Installed(toxic)
        self.toxics.append(inst)
        self.fast = False
        toxic.install(self, inst)

    def uninstall(self, name: str, *, hook: bool = True) -> Toxic | None:
        for inst in self.toxics:
            if inst.toxic.name == name:
                self.toxics.remove(inst)
                inst.cancel()
                if hook:
                    inst.toxic.uninstall(self, inst)
                self._maybe_fast()
                return inst.toxic
        return None

    def replace(self, toxic: Toxic) -> None:
        """An updated toxic takes the place of the old one (same position in the chain)."""
        for i, inst in enumerate(self.toxics):
            if inst.toxic.name == toxic.name:
                inst.cancel()
                new = Installed(toxic)
                new.count = inst.count  # Toxiproxy keeps limit_data's state across an update
                self.toxics[i] = new
                toxic.install(self, new)
                return

    def close(self) -> None:
        for inst in self.toxics:
            inst.cancel()
        if self.task is not None:
            self.task.cancel()
            self.task = None

    # -- flow control --------------------------------------------------------------------

    def set_dst_full(self, full: bool) -> None:
        self.dst_full = full
        self._update_reading()

    def _update_reading(self) -> None:
        pause = self.dst_full or self.queued > HIGH_WATER
        if pause == self.src_paused or self.conn.closed:
            return
        self.src_paused = pause
        if pause:
            self.src.pause_reading()
        else:
            self.src.resume_reading()

    # -- the slow path -------------------------------------------------------------------

    def _maybe_fast(self) -> None:
        if not self.toxics and not self.queue and self.task is None:
            self.fast = True

    def _kick(self) -> None:
        if self.task is None and not self.conn.closed:
            self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self.queue and not self.conn.closed:
                ts, data = self.queue.popleft()
                if data is None:
                    for inst in list(self.toxics):
                        if not inst.removed.is_set():
                            await inst.toxic.on_eof(self, inst)
                    self._finish()
                    return
                self.queued -= len(data)
                if self.src_paused:
                    self._update_reading()
                await self._through(list(self.toxics), 0, ts, data)
        except asyncio.CancelledError:
            raise
        except Exception:  # a socket error mid-write: the connection is gone
            self.conn.close()
        finally:
            if self.task is asyncio.current_task():
                self.task = None
            self._maybe_fast()
            if self.queue and not self.conn.closed:  # fed while we were finishing
                self._kick()

    async def _through(self, chain: list[Installed], i: int, ts: float, data: bytes) -> None:
        while i < len(chain) and chain[i].removed.is_set():
            i += 1
        if i == len(chain):
            if not self.conn.closed and data:
                self.dst.write(data)
            return
        inst = chain[i]

        async def emit(piece: bytes) -> None:
            await self._through(chain, i + 1, ts, piece)

        await inst.toxic.pipe(self, inst, ts, data, emit)

    def _finish(self) -> None:
        """The source closed: pass the half-close on; close both sides once both are done."""
        if self.done:
            return
        self.done = True
        other = self.conn.other(self)
        if other is not None and other.done:
            self.conn.close()
        elif self.dst.can_write_eof() and not self.dst.is_closing():
            self.dst.write_eof()
        else:
            self.conn.close()


class Connection:
    """A client connection and its upstream connection."""

    def __init__(self, proxy: Proxy, client: asyncio.Transport) -> None:
        self.proxy = proxy
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.upstream: asyncio.Transport | None = None
        self.up: Link | None = None  # client -> upstream
        self.down: Link | None = None  # upstream -> client
        self.closed = False
        self._connecting: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.client.pause_reading()
        self._connecting = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        host, port = self.proxy.upstream_addr()
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: _Side(self, "upstream"), host, port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError):
            self.close()  # as Toxiproxy: the client sees its connection closed

    def attach_upstream(self, transport: asyncio.Transport) -> None:
        """Called from the upstream socket's connection_made, before it can deliver data."""
        if self.closed:
            transport.abort()
            return
        self.upstream = transport
        self.up = Link(self, "upstream", self.client, transport)
        self.down = Link(self, "downstream", transport, self.client)
        for toxic in self.proxy.toxics.values():
            if toxic.applies():
                self.link(toxic.direction).install(toxic)
        self.client.resume_reading()

    def link(self, stream: str) -> Link:
        link = self.up if stream == "upstream" else self.down
        assert link is not None
        return link

    def links(self) -> list[Link]:
        return [lk for lk in (self.up, self.down) if lk is not None]

    def other(self, link: Link) -> Link | None:
        return self.down if link is self.up else self.up

    def close(self) -> None:
        """Close both sockets (buffered data is still sent). Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.proxy.conns.discard(self)
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        for lk in self.links():
            lk.close()
        for t in (self.client, self.upstream):
            if t is not None:
                t.close()

    def reset(self) -> None:
        """Close both sockets with a TCP RST (SO_LINGER 0), as Toxiproxy's reset_peer."""
        for t in (self.client, self.upstream):
            if t is None:
                continue
            sock = t.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t.abort()
        self.close()


class _Side(asyncio.Protocol):
    """One socket of a connection; ``side`` is "client" or "upstream"."""

    def __init__(self, conn: Connection | None, side: str, proxy: Proxy | None = None) -> None:
        self.conn = conn
        self.side = side
        self.proxy = proxy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.side == "client":
            assert self.proxy is not None
            self.conn = Connection(self.proxy, transport)  # type: ignore[arg-type]
            self.proxy.conns.add(self.conn)
            self.conn.start()
        elif self.conn is not None:
            self.conn.attach_upstream(transport)  # type: ignore[arg-type]

    def _src_link(self) -> Link | None:
        c = self.conn
        return None if c is None else (c.up if self.side == "client" else c.down)

    def _dst_link(self) -> Link | None:
        c = self.conn
        return None if c is None else (c.down if self.side == "client" else c.up)

    def data_received(self, data: bytes) -> None:
        link = self._src_link()
        if link is not None and not link.conn.closed:
            link.feed(data)

    def eof_received(self) -> bool:
        link = self._src_link()
        if link is not None:
            link.feed_eof()
        return True  # keep the socket half-open: the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.close()

    def pause_writing(self) -> None:
        link = self._dst_link()
        if link is not None:
            link.set_dst_full(True)

    def resume_writing(self) -> None:
        link = self._dst_link()
        if link is not None:
            link.set_dst_full(False)


def client_protocol(proxy: Proxy) -> asyncio.Protocol:
    return _Side(None, "client", proxy)
