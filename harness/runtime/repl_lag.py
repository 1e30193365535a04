"""A Redis replica whose replication stream arrives ``--lag-ms`` late: ``python -m
harness.runtime.repl_lag --listen H:P --upstream H:P --lag-ms N -- redis-server ...``.

The process binds the listening socket, forks a proxy child (``H:P`` to the master at
``--upstream``) and becomes the replica (exec), so the node's pid is redis-server's and the
proxy, in its process group and killed with it (PDEATHSIG), lives and dies with the replica:
the nemesis's kill, pause and the runtime's stop reach both.

What the lag stands for: a replication backlog the master holds (a slow or distant replica
link) - bytes the master has acknowledged to its clients but not yet delivered. So when the
master's side of the link ends (the master was killed), what is still inside the lag window is
dropped, not delivered: it died with the master. (Toxiproxy's latency toxic models a wire and
would still deliver it; on one machine a killed process's written bytes always arrive, which
is why this window never opened without the lag.) The replica-to-master direction (REPLCONF
ACK, so WAIT's answer) passes at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from collections import deque

from .lifeline import die_with_parent

CONNECT_TIMEOUT = 5.0


def _addr(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Replica to master, at once."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
    writer.close()


async def _lagged(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lag: float) -> None:
    """Master to replica, each chunk ``lag`` s after it was read; when the master's side ends,
    the chunks still held are dropped and the replica's connection reset."""
    loop = asyncio.get_running_loop()
    held: deque[tuple[float, bytes]] = deque()
    more = asyncio.Event()

    async def deliver() -> None:
        while True:
            while not held:
                more.clear()
                await more.wait()
            due, data = held[0]
            await asyncio.sleep(max(0.0, due - loop.time()))
            held.popleft()
            writer.write(data)

    task = loop.create_task(deliver())
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            held.append((loop.time() + lag, data))
            more.set()
    task.cancel()
    held.clear()
    writer.transport.abort()


async def _serve(listen: socket.socket, upstream: tuple[str, int], lag: float) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.wait_for(asyncio.open_connection(*upstream), CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            w.transport.abort()  # the replica retries, as with a master that is down
            return
        for s in (w, uw):
            sock = s.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up = asyncio.ensure_future(_pipe(r, uw))
        await _lagged(ur, w, lag)
        up.cancel()
        uw.transport.abort()

    server = await asyncio.start_server(handle, sock=listen)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        print("error: give the replica's command after --", file=sys.stderr)
        return 2
    cut = args.index("--")
    ap = argparse.ArgumentParser(prog="python -m harness.runtime.repl_lag")
    ap.add_argument("--listen", required=True, help="the proxy's address, host:port")
    ap.add_argument("--upstream", required=True, help="the master's address, host:port")
    ap.add_argument("--lag-ms", type=int, required=True)
    opts = ap.parse_args(args[:cut])
    command = args[cut + 1 :]
    if opts.lag_ms < 0 or not command:
        print("error: --lag-ms must be >= 0 and a command given", file=sys.stderr)
        return 2
    listen = socket.create_server(_addr(opts.listen))  # bound before the replica connects
    parent = os.getpid()
    if os.fork() == 0:
        die_with_parent(parent)
        try:
            asyncio.run(_serve(listen, _addr(opts.upstream), opts.lag_ms / 1000))
        finally:
            os._exit(0)
    listen.close()
    os.execv(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
