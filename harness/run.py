"""One test run: servers up -> clients (and nemesis) write the history -> checkers -> report.

Teardown is guaranteed on a normal end, an exception, Ctrl-C (SIGINT) and SIGTERM: workers are
stopped, then killed by pid if they do not stop; servers are stopped by the runtime; faults are
healed. A crashed run keeps every op recorded up to the crash.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backends import registry
from backends.base import Endpoint
from workloads import run_client_for
from workloads.base import STATUS_FIELDS, ClientContext

from . import __version__, store
from .config import RunConfig
from .history import HistoryWriter
from .recorder import HistoryPump, Recorder
from .runtime import LocalRuntime
from .witness import Witness, context

MAX_OPS_PER_CLIENT = 1_000_000
STOP_GRACE = 5.0  # s for clients to finish their current op after the time limit


@dataclass
class RunResult:
    run_dir: Path
    valid: Any
    results: dict[str, Any]
    exit_code: int
    interrupted: bool = False
    report: Path | None = None


class Interrupted(KeyboardInterrupt):
    pass


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM ends a run like Ctrl-C does: through the same teardown."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _worker(run_client: Callable, ctx: ClientContext, read_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when clients stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.close(read_fd)
    run_client(ctx)


def run_test(cfg: RunConfig, progress: Callable[[dict], None] | None = None) -> RunResult:
    """Run one test and check it. ``progress`` is called about 10 times a second."""
    cfg.validate()
    backend = registry.make(cfg.backend, cfg.backend_opts)
    run_client = run_client_for(cfg.workload)
    run_dir = store.new_run_dir(cfg.store, cfg.backend, cfg.workload, cfg.nemesis_label)
    config = cfg.to_dict() | {
        "started_at": datetime.now(UTC).isoformat(),
        "harness_version": __version__,
        "backend_fence": backend.fence,
    }
    store.write_json(run_dir / store.CONFIG, config)
    interrupted = False
    t_start = time.monotonic()
    with ExitStack() as stack, _sigterm_as_interrupt():
        try:
            runtime = stack.enter_context(LocalRuntime(run_dir))
            need = backend.servers()
            cluster = runtime.start(need.kind, need.nodes, need.options)
            endpoints = [Endpoint(n.name, n.host, n.port) for n in cluster.nodes]
            config["servers"] = [
                {"kind": need.kind, "name": n.name, "host": n.host, "port": n.port}
                for n in cluster.nodes
            ]
            store.write_json(run_dir / store.CONFIG, config)
            backend.setup(endpoints)
            _drive(cfg, backend, endpoints, run_client, run_dir, progress, stack)
        except KeyboardInterrupt:
            interrupted = True
    config["duration_s"] = round(time.monotonic() - t_start, 3)
    config["interrupted"] = interrupted
    store.write_json(run_dir / store.CONFIG, config)
    from .analysis import analyse

    return analyse(run_dir, interrupted=interrupted, render=cfg.render_report)


def _drive(cfg, backend, endpoints, run_client, run_dir, progress, stack) -> None:
    ctx_mp = context()
    witness = Witness(ctx_mp, cfg.keys, cfg.fencing)
    stop = ctx_mp.Event()
    status = ctx_mp.Array("q", cfg.concurrency * STATUS_FIELDS, lock=False)
    read_fd, write_fd = os.pipe()
    writer = stack.enter_context(HistoryWriter(run_dir / store.HISTORY))
    t0 = time.monotonic_ns()
    deadline = time.monotonic() + cfg.time_limit
    max_ops = math.ceil(cfg.ops / cfg.concurrency) if cfg.ops else MAX_OPS_PER_CLIENT
    workers = []

    def stop_workers() -> None:
        stop.set()
        end = time.monotonic() + max(STOP_GRACE, (cfg.wait_ms + cfg.hold_ms) / 1000 + 2)
        for w in workers:
            w.join(max(0.0, end - time.monotonic()))
        for w in workers:
            if w.is_alive():  # stuck in a call to a dead server: its op stays an invoke
                os.kill(w.pid, signal.SIGCONT)
                w.kill()
                w.join(5)

    stack.callback(stop_workers)
    # Workers are forked before any thread of ours starts, so they inherit no thread state.
    for i in range(cfg.concurrency):
        ctx = ClientContext(
            index=i,
            cfg=cfg,
            backend=backend,
            endpoints=endpoints,
            recorder=Recorder(write_fd, t0),
            witness=witness,
            stop=stop,
            status=status,
            deadline=deadline + 1.0,
            max_ops=max_ops,
        )
        w = ctx_mp.Process(
            target=_worker, args=(run_client, ctx, read_fd), daemon=True, name=f"client-{i}"
        )
        w.start()
        workers.append(w)
    pump = HistoryPump(read_fd, writer)
    pump.start()
    try:
        while time.monotonic() < deadline:
            if not any(w.is_alive() for w in workers):
                break  # every client reached its op bound
            time.sleep(0.1)
            if progress is not None:
                progress(
                    {
                        "elapsed": time.monotonic() - (deadline - cfg.time_limit),
                        "time_limit": cfg.time_limit,
                        "ops": pump.ops,
                        "ok_acquires": pump.ok_acquires,
                    }
                )
    finally:
        stop_workers()
        os.close(write_fd)
        pump.finish(timeout=5.0)
