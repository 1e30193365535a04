"""``python -m harness.toxiproxy --host 127.0.0.1 --port 8474``: run the embedded proxy server."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .server import ProxyServer, loopback_host


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m harness.toxiproxy",
        description="Toxiproxy-API-compatible TCP proxy for loopback addresses.",
        epilog="example: python -m harness.toxiproxy --host 127.0.0.1 --port 8474",
    )
    ap.add_argument("--host", default="127.0.0.1", help="API address, on 127.0.0.0/8")
    ap.add_argument("--port", type=int, default=8474, help="API port (default 8474)")
    args = ap.parse_args(argv)
    if not loopback_host(args.host):
        print(
            f"error: --host must be on 127.0.0.0/8 or localhost, got {args.host!r}", file=sys.stderr
        )
        return 2
    if not 0 <= args.port <= 65535:
        print(f"error: --port must be 0..65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args.host, args.port))
    except OSError as e:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr
        )
        return 2
    return 0


async def _serve(host: str, port: int) -> None:
    server = ProxyServer()
    real = await server.listen(host, port)
    print(f"toxiproxy API listening on {host}:{real}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    sys.exit(main())
