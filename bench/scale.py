"""Many clients: lock throughput and acquire p99 at 10 and at 1,000 concurrent clients on one
redis, side by side in one invocation.

    .venv/bin/python bench/scale.py [--clients 10,1000] [--seconds 20] [--rounds 3]

Each run is ``harness run --backend redis --hold 0 --keys C --concurrency C -t SECONDS`` through
the library (``run_test``): no fault, as many keys as clients (each client picks one at random,
so most acquires find their key free), the mutex workload's defaults otherwise, its history
checked as every run's is. Rounds alternate the client counts so the machine's noise hits all of
them; each row is the median over the rounds of acquires/s (the perf checker's ok acquires over
the history's span), of its ratio to the first count's (the 10-client figure), and of the p99
latency of ok acquires. Beside them: the verdicts, the CPU the run took per ok acquire
(getrusage of this process, which runs the harness and the check of the history, and of its
reaped children, the workers and the redis-server, over the run's ok acquires) and the machine's load average (1 min) before
each run, as its median and highest. The load and cores are printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import print_load  # noqa: E402
from checkers import verdict_word  # noqa: E402
from harness.run import run_test, workers  # noqa: E402
from harness.run.config import run_config  # noqa: E402
from harness.run.workers import MAX_CLIENTS, pool_size  # noqa: E402


@dataclass
class Row:
    clients: int
    rate: list[float] = field(default_factory=list)  # ok acquires/s
    p99: list[float] = field(default_factory=list)  # ms
    cpu_ms: list[float] = field(default_factory=list)  # CPU ms per ok acquire
    load: list[float] = field(default_factory=list)  # 1-min load average before the run
    verdicts: list[str] = field(default_factory=list)
    clients_as: str = "?"  # processes, threads or greenlets (config.json)


def cpu_s() -> float:
    """CPU time of this process and its reaped children (workers, servers), user + system."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def one_run(store: Path, clients: int, seconds: float, row: Row) -> None:
    cfg = run_config(
        backend="redis",
        concurrency=clients,
        keys=clients,
        time_limit=seconds,
        hold_ms=0,
        store=store,
        render_report=False,
    )
    row.load.append(os.getloadavg()[0])
    cpu0 = cpu_s()
    res = run_test(cfg)
    cpu = cpu_s() - cpu0
    perf = res.results["checkers"]["perf"]
    oks = perf["counts"]["acquire"].get("ok", 0)
    row.rate.append(perf["acquires_per_s"])
    row.p99.append(perf["acquire_latency_ms"]["ok"]["p99"])
    row.cpu_ms.append(1000 * cpu / oks if oks else float("nan"))
    row.verdicts.append(verdict_word(res.results["valid"]).upper())
    row.clients_as = res.config.get("clients_as", "?")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="10,1000", help="client counts, comma-separated")
    ap.add_argument("--seconds", type=float, default=20.0, help="each run's time limit")
    ap.add_argument("--rounds", type=int, default=3, help="runs per client count (medians)")
    ap.add_argument(
        "--processes-per-core",
        type=int,
        default=workers.PROCESSES_PER_CORE,
        help="worker processes a core for pooled clients (the harness's choice by default)",
    )
    ap.add_argument(
        "--switch-interval",
        type=float,
        default=workers.SWITCH_INTERVAL,
        help="s, a pool worker's GIL switch interval (the harness's choice by default)",
    )
    a = ap.parse_args()
    try:
        counts = [int(c) for c in a.clients.split(",")]
    except ValueError:
        counts = []
    if not counts or not all(1 <= c <= MAX_CLIENTS for c in counts):
        print(
            f"--clients: comma-separated whole numbers from 1 to {MAX_CLIENTS:,}", file=sys.stderr
        )
        return 2
    if (
        a.rounds < 1
        or not 0 < a.seconds <= 3600
        or not 1 <= a.processes_per_core <= 64
        or not 0.0001 <= a.switch_interval <= 10
    ):
        print(
            "--rounds must be >= 1, --seconds from 0 to 3600, --processes-per-core 1 to 64, "
            "--switch-interval 0.0001 to 10",
            file=sys.stderr,
        )
        return 2
    workers.PROCESSES_PER_CORE = a.processes_per_core
    workers.SWITCH_INTERVAL = a.switch_interval
    print_load("scale")
    print(
        f"redis, mutex --hold 0, keys = clients, {a.seconds:g} s a run, {a.rounds} round(s); "
        f"GIL switch interval {a.switch_interval:g} s, "
        f"clients pooled in worker processes ({a.processes_per_core} a core: "
        + ", ".join(f"{c} clients in {pool_size(c)}" for c in counts)
        + ")",
        flush=True,
    )
    rows = {c: Row(c) for c in counts}
    with tempfile.TemporaryDirectory(prefix="lh-scale-") as tmp:
        for r in range(a.rounds):
            for c in counts:
                one_run(Path(tmp), c, a.seconds, rows[c])
                row = rows[c]
                print(
                    f"  round {r + 1}: {c:>6} clients {row.rate[-1]:>9,.0f} acquires/s, "
                    f"p99 {row.p99[-1]:,.1f} ms, {row.verdicts[-1]}, load {row.load[-1]:.2f}",
                    flush=True,
                )
    base = statistics.median(rows[counts[0]].rate)
    print(
        f"\n{'clients':>8} {'acquires/s':>11} {'ratio':>7} {'p99 ms':>9} {'CPU ms/acq':>11} "
        f"{'load med/max':>13}  {'clients as':<10}  verdicts"
    )
    for c in counts:
        row = rows[c]
        print(
            f"{c:>8,} {statistics.median(row.rate):>11,.0f} {statistics.median(row.rate) / base:>6.0%} "
            f"{statistics.median(row.p99):>9,.1f} {statistics.median(row.cpu_ms):>11.3f} "
            f"{statistics.median(row.load):>6.2f}/{max(row.load):<6.2f}  {row.clients_as:<10}  "
            f"{', '.join(row.verdicts)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
