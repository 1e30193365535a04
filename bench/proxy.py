"""Benchmark: what a Toxiproxy adds to a Redis round trip, the embedded one beside the real one.

Starts a real redis-server, the embedded proxy and Shopify's toxiproxy-server (as the harness
and its tests do, via LocalRuntime; ``$TOXIPROXY_SERVER`` or ``../shared/tools/toxiproxy/``),
then measures side by side, with no toxics, in ``--repeats`` rounds (the paths' order rotating
each round so drift hits them alike) and prints the medians over the rounds:

- PING round-trip latency, one client, p50/p99, direct and through each proxy (the added
  latency is the difference of the p50s);
- round trips per second with N client processes, each sending PINGs one after another.

    .venv/bin/python bench/proxy.py [--samples 5000] [--clients 4] [--seconds 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from harness.runtime import LocalRuntime
from harness.runtime.base import MissingBinary
from harness.runtime.toxiproxy_kind import url
from harness.toxiproxy import ToxiproxyClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import print_load  # noqa: E402

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
    ap.add_argument("--samples", type=int, default=5000, help="latency samples per path and round")
    ap.add_argument("--clients", type=int, default=4, help="client processes for throughput")
    ap.add_argument("--seconds", type=float, default=2.0, help="throughput run length per path")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    args = ap.parse_args()
    if args.samples < 100 or args.clients < 1 or not 0 < args.seconds <= 60:
        print("error: need --samples >= 100, --clients >= 1, 0 < --seconds <= 60", file=sys.stderr)
        return 2
    if not 1 <= args.repeats <= 20:
        print("error: need 1 <= --repeats <= 20", file=sys.stderr)
        return 2
    print_load("proxy")

    p50: dict[str, list[float]] = {}
    p99: dict[str, list[float]] = {}
    rps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d, LocalRuntime(d) as rt:
        redis = rt.start("redis", 1).nodes[0]
        target = f"{redis.host}:{redis.port}"
        paths = {"direct": (redis.host, redis.port)}
        for label, kind in (("embedded", "toxiproxy"), ("toxiproxy", "toxiproxy-server")):
            try:
                node = rt.start(kind, 1, own_uids=False).nodes[0]
            except MissingBinary as e:
                print(f"note: {label} left out: {e}", file=sys.stderr)
                continue
            listen = ToxiproxyClient(url(node)).create_proxy("redis", "127.0.0.1:0", target)
            host, port = listen["listen"].rsplit(":", 1)
            paths[label] = (host, int(port))
        names = list(paths)
        for r in range(args.repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                lat = latencies(paths[name], args.samples)
                p50.setdefault(name, []).append(pct(lat, 50))
                p99.setdefault(name, []).append(pct(lat, 99))
            for name in order:
                rps.setdefault(name, []).append(throughput(paths[name], args.clients, args.seconds))

    med = statistics.median
    print(
        f"PING via redis-server: {args.samples} samples, {args.clients} clients x {args.seconds} s"
        f"; medians of {args.repeats} rounds"
    )
    print(f"{'path':<11}{'p50 µs':>10}{'p99 µs':>10}{'round trips/s':>16}{'added p50 µs':>15}")
    for name in names:
        added = "" if name == "direct" else f"{med(p50[name]) - med(p50['direct']):.1f}"
        print(
            f"{name:<11}{med(p50[name]):>10.1f}{med(p99[name]):>10.1f}"
            f"{med(rps[name]):>16,.0f}{added:>15}"
        )
    for name in names[1:]:
        print(f"{name}: throughput {med(rps[name]) / med(rps['direct']):.0%} of direct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
