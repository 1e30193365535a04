"""One test run: servers up -> clients (and nemesis) write the history -> checkers -> report.

Teardown is guaranteed on a normal end, an exception, Ctrl-C (SIGINT) and SIGTERM: faults are
healed, workers are stopped (then killed by pid), servers are stopped by the runtime, and the
private network namespace (with its iptables rules) goes with the last of them. A crashed run
keeps every op recorded up to the crash.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backends import registry
from backends.base import Endpoint, ServerNeed
from workloads import run_client_for
from workloads.base import STATUS_FIELDS, ClientContext

from . import __version__, store
from .config import RunConfig
from .history import HistoryWriter
from .lifeline import die_with_parent
from .nemesis import NemesisEnv, NemesisError, check_before_start, nemesis_class
from .nemesis.schedule import Schedule
from .net import netns
from .recorder import HistoryPump, Recorder, make_pipe
from .runtime import Cluster, LocalRuntime, RuntimeError_
from .runtime.durability import Durability
from .runtime.kinds import server_kind
from .witness import StopFlag, Witness, context

MAX_OPS_PER_CLIENT = 1_000_000
STOP_GRACE = 5.0  # s for clients to finish their current op after the time limit
MAX_STOP_GRACE = 30.0  # s: a long --wait never keeps a run alive longer than this past its end


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


DEFERRED = (
    "interrupt deferred: stopping, then checking and saving the verdict of what was recorded "
    "(results.json); kill -9 to abandon it\n"
)


class Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM during a run. The first one, while servers start or clients
    run, raises Interrupted: the run stops and tears down. Any later one, or one arriving after
    the load ended, is deferred with one line: the teardown, the check of what was recorded and
    results.json are never cut short, so a second Ctrl-C still leaves a verdict."""

    def __init__(self) -> None:
        self.armed = True
        self.said = False
        self.fired: int | None = None  # the signal that stopped the run
        self.old_unraisable = sys.unraisablehook

    def disarm(self) -> None:
        self.armed = False

    def handler(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            self.fired = signum
            raise Interrupted(f"signal {signum}")
        if not self.said:
            self.said = True
            os.write(2, DEFERRED.encode())

    def check(self) -> None:
        """Raise again a stop whose exception was lost: raised inside an at-fork hook (every
        Popen with preexec_fn, every worker fork), it is printed and dropped by Python."""
        if self.fired is not None:
            raise Interrupted(f"signal {self.fired}")

    def unraisable(self, u: Any) -> None:
        if not (isinstance(u.exc_value, Interrupted) and self.fired is not None):
            self.old_unraisable(u)  # only the lost stop, re-raised by check(), is kept quiet


@contextmanager
def _interrupts():
    intr = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield intr  # signals reach the main thread only: nothing to install
        return
    old = {s: signal.signal(s, intr.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    intr.old_unraisable, sys.unraisablehook = sys.unraisablehook, intr.unraisable
    try:
        yield intr
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        sys.unraisablehook = intr.old_unraisable


def _worker(run_client: Callable, ctx: ClientContext, read_fd: int, harness_pid: int) -> None:
    die_with_parent(harness_pid)  # a SIGKILLed harness takes its clients with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when clients stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.close(read_fd)
    try:
        run_client(ctx)
    finally:
        ctx.recorder.flush()


def stop_grace(cfg: RunConfig) -> float:
    """How long clients get to finish their current op once the run stops: a hold wakes at
    once (it watches the stop flag), an acquire may wait up to --wait, but never past the cap."""
    return min(max(STOP_GRACE, cfg.wait_ms / 1000 + 2), MAX_STOP_GRACE)


def _check_nemesis_opts(cfg: RunConfig, classes: list) -> None:
    known = {o for c in classes for o in c.options}
    unknown = sorted(set(cfg.nemesis_opts) - known)
    if unknown:
        raise NemesisError(
            f"no chosen nemesis takes option {', '.join(unknown)}; accepted: "
            + (", ".join(sorted(known)) or "none")
        )


def preflight(cfg: RunConfig):
    """Every check of the configuration that needs no server; raises ValueError (one line)."""
    cfg.validate()
    backend = registry.make(cfg.backend, cfg.backend_opts)
    run_client = run_client_for(cfg.workload)
    classes = [nemesis_class(n) for n in cfg.nemesis]
    _check_nemesis_opts(cfg, classes)
    check_before_start(cfg, backend, classes)
    need = backend.servers()
    if need.nodes:  # a missing server binary is known before anything is stored
        server_kind(need.kind, need.options).find_binary()
    can_ns, why_not = netns.available()
    if cfg.netns == "on" and not can_ns:
        raise NemesisError(f"--netns on: {why_not}")
    if cfg.toxiproxy and cfg.netns == "on":
        raise NemesisError(
            "--toxiproxy needs the host's network (a real Toxiproxy cannot reach servers in "
            "the run's private namespace): use --netns off or auto"
        )
    # A real Toxiproxy lives in the host's namespace: so must the run.
    return backend, run_client, classes, can_ns and cfg.netns != "off" and not cfg.toxiproxy


def run_test(cfg: RunConfig, progress: Callable[[dict], None] | None = None) -> RunResult:
    """Run one test and check it. ``progress`` is called about 10 times a second."""
    backend, run_client, classes, use_ns = preflight(cfg)
    if any(c.needs_clock for c in classes):
        from .clock import build_shim

        build_shim()  # fails early, with one line, when gcc is missing
    need = backend.servers()
    durability = _durability(need)
    notice = durability.notice(need.kind) if durability else None
    run_dir = store.new_run_dir(cfg.store, cfg.backend, cfg.workload, cfg.nemesis_label)
    config = cfg.to_dict() | {
        "started_at": datetime.now(UTC).isoformat(),
        "harness_version": __version__,
        "backend_fence": backend.fence,
        "netns": use_ns,
        # What a process kill can cost the servers (see harness/runtime/durability.py).
        "non_durable": [notice] if notice else [],
    }
    store.write_json(run_dir / store.CONFIG, config)
    t_start = time.monotonic()
    with _interrupts() as intr:
        try:
            interrupted = _setup_and_drive(
                cfg, backend, run_client, classes, use_ns, run_dir, config, intr, progress
            )
        except Exception as e:  # the run dir says why: `harness list` shows a failed run
            config["duration_s"] = round(time.monotonic() - t_start, 3)
            config["failed"] = (str(e) or type(e).__name__).splitlines()[0][:500]
            store.write_json(run_dir / store.CONFIG, config)
            raise
        config["duration_s"] = round(time.monotonic() - t_start, 3)
        config["interrupted"] = interrupted
        store.write_json(run_dir / store.CONFIG, config)
        from .analysis import analyse

        if not (run_dir / store.HISTORY).exists():  # stopped while servers were starting
            analyse(run_dir, interrupted=True, render=False)  # results.json: unknown, and why
            raise RuntimeError_(
                f"interrupted during start-up, before any client ran: nothing recorded in {run_dir}"
            )
        return analyse(run_dir, interrupted=interrupted, render=cfg.render_report)


def _durability(need: ServerNeed) -> Durability | None:
    """What the servers keep across a process kill (None: an external server)."""
    return server_kind(need.kind, need.options).durability() if need.nodes else None


def _setup_and_drive(
    cfg, backend, run_client, classes, use_ns, run_dir, config, intr, progress
) -> bool:
    """Start everything, drive the load, tear down; True when interrupted."""
    interrupted = False
    need = backend.servers()
    durability = _durability(need)
    with ExitStack() as stack:
        try:
            if use_ns:
                stack.enter_context(netns.private_netns())
            runtime = stack.enter_context(
                LocalRuntime(
                    run_dir,
                    node_uids=use_ns and need.nodes > 1 and any(c.needs_node_uids for c in classes),
                    clock=any(c.needs_clock for c in classes),
                    keep_data=cfg.keep_data,
                )
            )
            if need.nodes == 0:  # an external server (e.g. --opt uri=...): nothing to start
                if classes:
                    raise NemesisError(
                        f"backend {cfg.backend} uses an external server here: nemeses need "
                        "servers that the harness started itself"
                    )
                cluster = Cluster(server_kind(need.kind, need.options), [])
            else:
                cluster = runtime.start(need.kind, need.nodes, need.options)
            intr.check()
            direct = [Endpoint(n.name, n.host, n.port) for n in cluster.nodes]
            config["servers"] = [
                {
                    "kind": need.kind,
                    "name": n.name,
                    "host": n.host,
                    "port": n.port,
                    "pid": n.pid,
                    "durability": durability.settings if durability else None,
                }
                for n in cluster.nodes
            ]
            env = NemesisEnv(cfg, backend, cluster, random.Random(cfg.seed))
            if any(c.needs_proxies for c in classes):
                env.proxies = _proxies(cfg, runtime, cluster, config)
                stack.callback(env.proxies.close)
            if use_ns and any(c.needs_node_uids for c in classes) and len(cluster.nodes) > 1:
                from .net.firewall import Firewall

                env.firewall = Firewall()
                stack.callback(env.firewall.heal)
            store.write_json(run_dir / store.CONFIG, config)
            nemeses = [c(env, cfg.nemesis_opts) for c in classes]
            for nem in nemeses:
                nem.check()
            try:
                backend.setup(direct)
            except Exception as e:  # a driver's own error type: one line for the user
                raise RuntimeError_(f"backend {cfg.backend} setup failed: {e}") from e
            intr.check()
            _drive(
                cfg,
                backend,
                env,
                direct,
                run_client,
                run_dir,
                progress,
                stack,
                nemeses,
                intr,
                config,
            )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            intr.disarm()  # from here on (teardown, check, results.json) signals are deferred
    return interrupted


def _proxies(cfg: RunConfig, runtime: LocalRuntime, cluster, config: dict):
    import secrets

    from .net.proxies import ProxyLinks
    from .proxy.client import ToxiproxyClient

    prefix = ""
    if cfg.toxiproxy:
        # A real Toxiproxy may be shared: this run's proxies get names no other run has.
        api = ToxiproxyClient(cfg.toxiproxy)
        prefix = f"lh{os.getpid()}-{secrets.token_hex(3)}-"
    else:
        from .runtime.toxiproxy import url

        node = runtime.start("toxiproxy", 1, own_uids=False).nodes[0]
        api = ToxiproxyClient(url(node))
        config["servers"].append(
            {
                "kind": "toxiproxy",
                "name": node.name,
                "host": node.host,
                "port": node.port,
                "pid": node.pid,
            }
        )
    groups = max(1, min(cfg.client_groups, cfg.concurrency))
    return ProxyLinks(api, cluster.nodes, groups, prefix)


def _drive(
    cfg, backend, env, direct, run_client, run_dir, progress, stack, nemeses, intr, config
) -> None:
    ctx_mp = context()
    witness = Witness(ctx_mp, cfg.keys, cfg.fencing)
    stop = StopFlag(ctx_mp)
    status = ctx_mp.Array("q", cfg.concurrency * STATUS_FIELDS, lock=False)
    read_fd, write_fd = make_pipe()
    writer = stack.enter_context(HistoryWriter(run_dir / store.HISTORY))
    t0 = time.monotonic_ns()
    deadline = time.monotonic() + cfg.time_limit
    max_ops = math.ceil(cfg.ops / cfg.concurrency) if cfg.ops else MAX_OPS_PER_CLIENT
    workers = []

    def stop_workers() -> None:
        stop.set()
        end = time.monotonic() + stop_grace(cfg)
        for w in workers:
            if w.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGCONT)  # a paused client must be able to stop
            w.join(max(0.0, end - time.monotonic()))
        for w in workers:
            if w.is_alive():  # stuck in a call to a dead server: its op stays an invoke
                w.kill()
                w.join(5)

    stack.callback(stop_workers)
    # Workers are forked before any thread of ours starts, so they inherit no thread state.
    for i in range(cfg.concurrency):
        endpoints = env.proxies.endpoints(i) if env.proxies is not None else direct
        ctx = ClientContext(
            index=i,
            cfg=cfg,
            backend=backend,
            endpoints=endpoints,
            recorder=Recorder(write_fd, t0, buffered=True),
            witness=witness,
            stop=stop,
            status=status,
            deadline=deadline + 1.0,
            max_ops=max_ops,
        )
        w = ctx_mp.Process(
            target=_worker,
            args=(run_client, ctx, read_fd, os.getpid()),
            daemon=True,
            name=f"client-{i}",
        )
        w.start()
        workers.append(w)
    env.worker_pids = [w.pid for w in workers]
    config["worker_pids"] = env.worker_pids  # with the servers' pids: every process of the run
    store.write_json(run_dir / store.CONFIG, config)
    env.status = status
    pump = HistoryPump(read_fd, writer)
    pump.start()
    schedule = Schedule(nemeses, Recorder(write_fd, t0), cfg.nemesis_interval)
    try:
        while time.monotonic() < deadline:
            intr.check()
            if not any(w.is_alive() for w in workers):
                break  # every client reached its op bound
            schedule.step()
            time.sleep(0.05)
            if progress is not None:
                progress(
                    {
                        "elapsed": time.monotonic() - (deadline - cfg.time_limit),
                        "time_limit": cfg.time_limit,
                        "ops": pump.ops,
                        "ok_acquires": pump.ok_acquires,
                        "fault": schedule.active.name if schedule.active else None,
                    }
                )
    finally:
        intr.disarm()
        # Heal first, recorded (also after Ctrl-C or a crash), then undo anything left.
        with contextlib.suppress(Exception):
            schedule.heal()
        schedule.teardown()
        stop_workers()
        os.close(write_fd)
        pump.finish(timeout=5.0)
