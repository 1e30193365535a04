"""Benchmark: what the embedded Toxiproxy-compatible proxy adds to a Redis round trip.

Starts a real redis-server and the embedded proxy (as the harness does, via LocalRuntime), then
measures side by side, with no toxics:

- PING round-trip latency, one client, p50/p99, direct vs through the proxy (the added latency
  is the difference of the medians);
- round trips per second with N client processes, each sending PINGs one after another.

    .venv/bin/python bench/proxy.py [--samples 5000] [--clients 4] [--seconds 2]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from harness.proxy import ToxiproxyClient
from harness.runtime import LocalRuntime
from harness.runtime.toxiproxy import url

PING = b"PING\r\n"
PONG = b"+PONG\r\n"


def _connect(addr: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(addr, timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _ping(s: socket.socket) -> None:
    s.sendall(PING)
    got = b""
    while len(got) < len(PONG):
        chunk = s.recv(64)
        if not chunk:
            raise ConnectionError("server closed the connection")
        got += chunk


def latencies(addr: tuple[str, int], n: int) -> list[float]:
    """n sequential PING round trips on one connection, in µs."""
    out = []
    with _connect(addr) as s:
        for _ in range(min(n, 200)):  # warm up
            _ping(s)
        for _ in range(n):
            t0 = time.perf_counter_ns()
            _ping(s)
            out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def worker(addr: tuple[str, int], seconds: float) -> int:
    """Round trips one client completes in ``seconds`` (bounded in count too)."""
    count = 0
    with _connect(addr) as s:
        deadline = time.monotonic() + seconds
        while count < 10_000_000 and time.monotonic() < deadline:
            _ping(s)
            count += 1
    return count


def throughput(addr: tuple[str, int], clients: int, seconds: float) -> float:
    with ProcessPoolExecutor(clients) as pool:
        futures = [pool.submit(worker, addr, seconds) for _ in range(clients)]
        return sum(f.result() for f in futures) / seconds


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[q - 1] if q != 50 else statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--samples", type=int, default=5000, help="latency samples per path")
    ap.add_argument("--clients", type=int, default=4, help="client processes for throughput")
    ap.add_argument("--seconds", type=float, default=2.0, help="throughput run length per path")
    args = ap.parse_args()
    if args.samples < 100 or args.clients < 1 or not 0 < args.seconds <= 60:
        print("error: need --samples >= 100, --clients >= 1, 0 < --seconds <= 60", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as d, LocalRuntime(d) as rt:
        redis = rt.start("redis", 1).nodes[0]
        proxy_node = rt.start("toxiproxy", 1).nodes[0]
        api = ToxiproxyClient(url(proxy_node))
        listen = api.create_proxy("redis", "127.0.0.1:0", f"{redis.host}:{redis.port}")["listen"]
        host, port = listen.rsplit(":", 1)
        paths = {"direct": (redis.host, redis.port), "proxied": (host, int(port))}

        lat: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(2):  # alternate halves so drift hits both paths alike
            for name, addr in paths.items():
                lat[name] += latencies(addr, args.samples // 2)
        rps = {name: throughput(addr, args.clients, args.seconds) for name, addr in paths.items()}

    print(
        f"PING via redis-server, {args.samples} samples, {args.clients} clients x {args.seconds} s"
    )
    print(f"{'path':<10}{'p50 µs':>10}{'p99 µs':>10}{'round trips/s':>16}")
    for name in paths:
        p50, p99 = pct(lat[name], 50), pct(lat[name], 99)
        print(f"{name:<10}{p50:>10.1f}{p99:>10.1f}{rps[name]:>16,.0f}")
    added = pct(lat["proxied"], 50) - pct(lat["direct"], 50)
    print(
        f"added p50 latency: {added:.1f} µs; proxied/direct throughput: "
        f"{rps['proxied'] / rps['direct']:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
