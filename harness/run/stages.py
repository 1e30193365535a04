"""One test run, in explicit stages that hand their data to each other in memory:

    prepare (validate, plan)  ->  execute (servers, clients, faults -> history)
        ->  analyse (checkers -> results)  ->  render (report)

No stage re-reads what the previous one wrote but the history: ``config.json`` and
``results.json`` are written for the user and for ``harness check``, not as the channel between
stages, while ``history.jsonl``, flushed as ops arrive, is read back by the analysis (a long
run's history never sits in the harness's memory). ``prepare`` starts nothing, so bad input
fails before any server runs.

Clients are threads in a few worker processes, or processes of their own where a nemesis must
freeze exactly one (``harness.run.workers``); all of them are ready, their lock clients made,
before the run's clock starts.

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
from collections.abc import Callable, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from backends import registry
from backends.base import Backend, Endpoint, ServerNeed
from checkers import exit_code
from checkers.columns import read_history
from checkers.history import ReadResult
from checkers.model import STRICT_MODEL, LockModel
from harness import __version__
from harness.nemesis import (
    Nemesis,
    NemesisEnv,
    NemesisError,
    NotApplicable,
    check_before_start,
    nemesis_class,
)
from harness.nemesis import schedule as schedules
from harness.nemesis.client_stall import install as install_client_stall
from harness.net import netns
from harness.runtime import Cluster, LocalRuntime, Runtime, ServerStartError
from harness.runtime.durability import Durability
from harness.runtime.kinds import server_kind
from harness.runtime.lifeline import die_with_parent
from workloads import registry as workload_registry
from workloads.base import (
    STATUS_FIELDS,
    ClientContext,
    FinalContext,
    SetupContext,
    StatusArray,
    Workload,
)

from . import lag, machine, store
from . import workers as pool
from .analyse import analyse, nothing_recorded
from .config import RunConfig, RunRecord, check_client_processes
from .lock_model import run_model
from .recorder import HistoryPump, HistoryWriter, Recorder, make_pipe
from .workers import (
    CLIENT_STACK,
    StartGate,
    StopFlag,
    StoppedAtGate,
    context,
    one_process_per_client,
    pool_size,
    spread,
    wait_ready,
)

if TYPE_CHECKING:
    from harness.net.firewall import Firewall
    from harness.net.proxies import ProxyLinks

MAX_OPS_PER_CLIENT = 1_000_000
STOP_GRACE = 5.0  # s for clients to finish their current op after the time limit
MAX_STOP_GRACE = 30.0  # s: a long --wait never keeps a run alive longer than this past its end
#: s for every client to make its lock client before the run's clock starts; past it the run
#: starts without the late ones (still connecting: they start when they are done)
READY_LIMIT = 60.0


@dataclass
class RunResult:
    run_dir: Path
    valid: Any
    results: dict[str, Any]
    exit_code: int
    interrupted: bool = False
    report: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)  # as written to config.json


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


def _worker(
    workload: Workload,
    make_ctx: Callable[[int], ClientContext],
    clients: range,
    gate: StartGate,
    read_fd: int,
    harness_pid: int,
    threaded: bool,
    green: bool = False,
) -> None:
    """One worker process: its clients as threads (``threaded``; greenlets with ``green``), or
    its one client on its main thread, where client-pause and client-stall freeze exactly that
    client."""
    die_with_parent(harness_pid)  # a SIGKILLed harness takes its clients with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides when clients stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    install_client_stall()  # the client-stall nemesis stalls a holder's main thread by signal
    os.close(read_fd)
    if green:  # decided only for pooled (threaded) workers
        pool.make_green()
    gate.in_worker(threaded)
    if not threaded:
        _client(workload, make_ctx(clients[0]), gate)
        return
    threading.stack_size(CLIENT_STACK)
    sys.setswitchinterval(pool.SWITCH_INTERVAL)  # fewer wake-ups of threads awaiting the GIL
    threads = [
        threading.Thread(
            target=_client, args=(workload, make_ctx(i), gate), name=f"client-{i}", daemon=True
        )
        for i in clients
    ]
    for t in threads:
        t.start()
    gate.wait_open()
    gate.release_threads()
    for t in threads:
        t.join()


def _client(workload: Workload, ctx: ClientContext, gate: StartGate) -> None:
    try:
        workload.run_client(ctx)
    except StoppedAtGate:
        pass  # nothing recorded: the run ended before this client's first op
    finally:
        if ctx.start is not None:  # ended without passing the gate: nothing to wait for
            gate.ready[ctx.index] = 1
        ctx.recorder.flush()


def stop_grace(workload: Workload) -> float:
    """How long clients get to finish their current op once the run stops: what the workload
    says one op may block (the mutex: its acquire wait), at least STOP_GRACE, never past the
    cap."""
    return min(max(STOP_GRACE, workload.stop_grace_s()), MAX_STOP_GRACE)


def _check_nemesis_opts(cfg: RunConfig, classes: list) -> None:
    known = {o for c in classes for o in c.options}
    unknown = sorted(set(cfg.nemesis_opts) - known)
    if unknown:
        raise NemesisError(
            f"no chosen nemesis takes option {', '.join(unknown)}; accepted: "
            + (", ".join(sorted(known)) or "none")
        )


# -- prepare ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """What ``prepare`` decided, before anything starts (Jepsen's test map): every later stage
    reads it, none changes it."""

    cfg: RunConfig
    backend: Backend
    workload: Workload
    nemeses: tuple[type[Nemesis], ...]
    use_ns: bool  # run inside a private network namespace
    need: ServerNeed  # the lock's servers
    extra_needs: Mapping[str, ServerNeed]  # the workload's own servers (a data store), by role
    model: LockModel = STRICT_MODEL  # what the history is judged under (checkers/model.py)

    @property
    def seed(self) -> int | None:
        return self.cfg.seed

    @property
    def clock(self) -> bool:
        return any(c.needs_clock for c in self.nemeses)


def prepare(cfg: RunConfig) -> RunPlan:
    """Every check of the configuration that needs no server; raises ValueError (one line)."""
    cfg.validate()
    backend = registry.make(cfg.backend, cfg.backend_opts)
    workload = workload_registry.make(cfg.workload, cfg.workload_opts)
    workload.prepare(cfg, backend)
    extra = dict(workload.servers())
    for role, xneed in extra.items():
        if xneed.nodes < 1:
            raise ValueError(f"workload {cfg.workload}: its {role} servers need at least one node")
    classes = [nemesis_class(n) for n in cfg.nemesis]
    _check_nemesis_opts(cfg, classes)
    need = backend.servers()
    # A front's nodes (a pooler, sentinels) are fault targets by name, as a workload's are.
    fronts = {need.front_role: need.front} if need.front is not None else {}
    cut = [c.name for c in classes if c.needs_proxies]
    if fronts and cut:  # clients reach the lock's nodes through the front, or by its word
        raise NotApplicable(
            f"nemesis {cut[0]} acts on the clients' links to the lock's nodes, but backend "
            f"{cfg.backend} reaches them through its {need.front_role} here: not supported yet"
        )
    if cfg.schedule is None:
        check_before_start(cfg, backend, classes, {**extra, **fronts})
    else:  # --schedule: each fault has its own kind, options and times
        classes = schedules.check_planned(cfg, backend, cfg.schedule, {**extra, **fronts})
    check_client_processes(cfg.concurrency, classes)

    def plan(use_ns: bool) -> RunPlan:
        model = run_model(cfg.model, backend, workload)
        return RunPlan(cfg, backend, workload, tuple(classes), use_ns, need, extra, model)

    if cfg.runtime in ("docker", "compose"):
        from . import container_runs

        container_runs.check(cfg, [need, *fronts.values(), *extra.values()])
        return plan(False)
    if need.nodes:  # a missing server binary is known before anything is stored
        server_kind(need.kind, need.options).find_binary()
    for xneed in [*fronts.values(), *extra.values()]:
        server_kind(xneed.kind, xneed.options).find_binary()
    can_ns, why_not = netns.available()
    if cfg.netns == "on" and not can_ns:
        raise NemesisError(f"--netns on: {why_not}")
    if cfg.toxiproxy and cfg.netns == "on":
        raise NemesisError(
            "--toxiproxy needs the host's network (a real Toxiproxy cannot reach servers in "
            "the run's private namespace): use --netns off or auto"
        )
    # A real Toxiproxy lives in the host's namespace: so must the run.
    return plan(can_ns and cfg.netns != "off" and not cfg.toxiproxy)


# -- execute ---------------------------------------------------------------------------------


@dataclass
class Execution:
    """What ``execute`` hands on: where the run is stored (its ``history.jsonl``, closed) and
    its record (``config.json``)."""

    run_dir: Path
    record: RunRecord
    interrupted: bool = False
    recorded: bool = False  # the history was opened: clients ran
    lag: dict[str, Any] | None = None  # the clients' measured stalls (lag.py), at the end
    problems: list[str] = field(default_factory=list)  # e.g. the final phase failed

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as ``config.json`` holds it."""
        return self.record.to_dict()

    def save(self) -> None:
        store.write_json(self.run_dir / store.CONFIG, self.config)


def _ended(record: RunRecord, t_start: float) -> None:
    """What a run learns of itself as it ends, failed or not: how long it took, the load then."""
    record.duration_s = round(time.monotonic() - t_start, 3)
    record.machine = {**(record.machine or {}), "load_end": machine.load()}


def execute(
    plan: RunPlan, intr: Interrupts, progress: Callable[[dict], None] | None = None
) -> Execution:
    """Start the servers, drive the clients and the faults, stop everything: the history. The
    first Ctrl-C (or SIGTERM) through ``intr`` stops the run; later ones are deferred."""
    cfg, backend = plan.cfg, plan.backend
    if plan.clock:
        from harness.clock import build_shim

        build_shim()  # fails early, with one line, when gcc is missing
    needs = [plan.need, *plan.extra_needs.values()]
    notices = [_durability(n).notice(n.kind) for n in needs if n.nodes]
    run_dir = store.new_run_dir(cfg.store, cfg.backend, cfg.workload, cfg.nemesis_label)
    record = RunRecord(
        cfg,
        workload_opts=plan.workload.opts,
        started_at=datetime.now(UTC).isoformat(),
        harness_version=__version__,
        backend_fence=backend.fence,
        lock={"fenced": backend.fenced, **plan.model.to_dict()},
        netns=plan.use_ns,
        non_durable=[x for x in notices if x],
        machine=machine.snapshot(),
    )
    ex = Execution(run_dir, record)
    ex.save()
    t_start = time.monotonic()
    try:
        _setup_and_drive(plan, ex, intr, progress)
    except Exception as e:  # the run dir says why: `harness list` shows a failed run
        _ended(record, t_start)
        record.failed = (str(e) or type(e).__name__).splitlines()[0][:500]
        ex.save()
        raise
    _ended(record, t_start)
    record.interrupted = ex.interrupted
    ex.save()
    if not ex.recorded:  # stopped while servers were starting
        store.write_json(run_dir / store.RESULTS, nothing_recorded(interrupted=True))
        raise ServerStartError(
            f"interrupted during start-up, before any client ran: nothing recorded in {run_dir}"
        )
    return ex


def _durability(need: ServerNeed) -> Durability:
    """What a cluster's servers keep across a process kill."""
    return server_kind(need.kind, need.options).durability()


@dataclass(frozen=True)
class RunEnv:
    """One run once its servers are up (Locust's Environment): built once by ``_start``, read
    by the drive loop and the final phase; what the nemeses and the workload get
    (``NemesisEnv``, ``SetupContext``, ``ClientContext``, ``FinalContext``) are views of it."""

    plan: RunPlan
    ex: Execution
    intr: Interrupts
    progress: Callable[[dict], None] | None
    stack: ExitStack  # undoes everything started, in reverse
    cluster: Cluster  # the lock's servers
    extra: dict[str, Cluster]  # the workload's own servers, by role
    direct: list[Endpoint]  # the lock's nodes, directly
    servers: dict[str, list[Endpoint]]  # the workload's servers' nodes, by role
    proxies: ProxyLinks | None  # client links, when a nemesis cuts them
    firewall: Firewall | None  # node<->node cuts, inside a private namespace
    mp: BaseContext  # the fork context the workers come from
    stop: StopFlag
    status: StatusArray  # concurrency * STATUS_FIELDS int64, shared with the workers
    worker_pids: list[int]  # the worker processes' pids, filled as they fork

    @property
    def cfg(self) -> RunConfig:
        return self.plan.cfg

    def nemesis_env(self) -> NemesisEnv:
        return NemesisEnv(
            self.cfg,
            self.plan.backend,
            self.cluster,
            random.Random(self.plan.seed),
            lease_ms=self.plan.workload.lease_ms(),
            extra=self.extra,
            proxies=self.proxies,
            firewall=self.firewall,
            worker_pids=self.worker_pids,
            status=self.status,
        )

    def setup_context(self) -> SetupContext:
        return SetupContext(self.mp, self.cfg, self.plan.backend, self.direct, self.servers)

    def client_context(
        self, i: int, shared: Any, recorder: Recorder, deadline: float, max_ops: int
    ) -> ClientContext:
        return ClientContext(
            index=i,
            cfg=self.cfg,
            backend=self.plan.backend,
            endpoints=self.proxies.endpoints(i) if self.proxies is not None else self.direct,
            recorder=recorder,
            shared=shared,
            stop=self.stop,
            status=self.status,
            deadline=deadline,
            max_ops=max_ops,
            servers=self.servers,
        )

    def final_context(self, shared: Any, recorder: Recorder) -> FinalContext:
        # A client's process id changes only through ClientContext.retire(), which writes it
        # into the status array; ids never used start above the highest one there.
        n = self.cfg.concurrency
        used = [self.status[i * STATUS_FIELDS] for i in range(n)] + [n - 1]
        return FinalContext(
            cfg=self.cfg,
            backend=self.plan.backend,
            endpoints=self.direct,
            servers=self.servers,
            recorder=recorder,
            shared=shared,
            process=max(used) + 1,
            deadline=time.monotonic() + FINAL_LIMIT,
        )


def _setup_and_drive(
    plan: RunPlan, ex: Execution, intr: Interrupts, progress: Callable[[dict], None] | None
) -> None:
    """Start everything, drive the load, tear down; ``ex.interrupted`` when stopped early."""
    with ExitStack() as stack:
        try:
            env = _start(plan, ex, intr, progress, stack)
            faults = env.nemesis_env()  # one for all the nemeses: one random sequence
            nemeses = (
                [c(faults, plan.cfg.nemesis_opts) for c in plan.nemeses]
                if plan.cfg.schedule is None
                else schedules.planned_nemeses(plan.cfg.schedule, faults)  # one a fault
            )
            for nem in nemeses:
                nem.check()
            try:
                plan.backend.setup(env.direct)
            except Exception as e:  # a driver's own error type: one line for the user
                raise ServerStartError(f"backend {plan.cfg.backend} setup failed: {e}") from e
            intr.check()
            _drive(env, nemeses)
        except KeyboardInterrupt:
            ex.interrupted = True
        finally:
            intr.disarm()  # from here on (teardown, check, results.json) signals are deferred


def _start(
    plan: RunPlan,
    ex: Execution,
    intr: Interrupts,
    progress: Callable[[dict], None] | None,
    stack: ExitStack,
) -> RunEnv:
    """Start the servers (and the proxies, the firewall): the run's environment."""
    cfg, classes, need, record = plan.cfg, plan.nemeses, plan.need, ex.record
    use_ns = plan.use_ns
    multi = need.nodes > 1 or bool(plan.extra_needs)
    if cfg.runtime in ("docker", "compose"):
        from . import container_runs

        runtime, use_ns = container_runs.open_runtime(cfg, plan.clock, ex.run_dir, record, stack)
    else:
        if use_ns:
            stack.enter_context(netns.private_netns())
        runtime = stack.enter_context(
            LocalRuntime(
                ex.run_dir,
                node_uids=use_ns and multi and any(c.needs_node_uids for c in classes),
                clock=plan.clock,
                keep_data=cfg.keep_data,
            )
        )
        runtime.syncfs = any(c.needs_syncfs(cfg.nemesis_opts) for c in classes)
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
    record.servers = _server_rows(need, cluster, "lock")
    extra: dict[str, Cluster] = {}
    front = None
    if need.front is not None:  # clients reach the lock through it: a pooler, sentinels
        fneed, role = need.front, need.front_role
        front = runtime.start(
            fneed.kind, fneed.nodes, {**fneed.options, "upstream": cluster.nodes}, prefix=role
        )
        extra[role] = front  # a fault target by node name, ended with the others
        record.servers += _server_rows(fneed, front, role)
        intr.check()
    for role, xneed in plan.extra_needs.items():
        extra[role] = runtime.start(xneed.kind, xneed.nodes, xneed.options, prefix=role)
        record.servers += _server_rows(xneed, extra[role], role)
        intr.check()
    proxies = None
    if any(c.needs_proxies for c in classes):
        proxies = _proxies(cfg, runtime, cluster, record)
        stack.callback(proxies.close)
    firewall = None
    if use_ns and any(c.needs_node_uids for c in classes) and len(cluster.nodes) > 1:
        from harness.net.firewall import Firewall

        firewall = Firewall()
        stack.callback(firewall.close)
    mp = context()
    return RunEnv(
        plan,
        ex,
        intr,
        progress,
        stack,
        cluster,
        extra,
        direct=_endpoints(front or cluster),
        servers={role: _endpoints(c) for role, c in extra.items()},
        proxies=proxies,
        firewall=firewall,
        mp=mp,
        stop=StopFlag(mp),
        status=mp.Array("q", cfg.concurrency * STATUS_FIELDS, lock=False),
        worker_pids=[],
    )


def _endpoints(cluster: Cluster) -> list[Endpoint]:
    return [Endpoint(n.name, n.host, n.port) for n in cluster.nodes]


def _server_rows(need: ServerNeed, cluster: Cluster, role: str) -> list[dict[str, Any]]:
    durability = _durability(need).settings if need.nodes else None
    return [
        {
            "kind": need.kind,
            "role": role,
            "name": n.name,
            "host": n.host,
            "port": n.port,
            "pid": n.pid,
            "durability": durability,
        }
        | cluster.facts(n)  # image, container and the version the server reports
        for n in cluster.nodes
    ]


def _proxies(cfg: RunConfig, runtime: Runtime, cluster: Cluster, record: RunRecord) -> ProxyLinks:
    import secrets

    from harness.net.proxies import ProxyLinks
    from harness.toxiproxy.client import ToxiproxyClient

    prefix = ""
    if cfg.toxiproxy:
        # A real Toxiproxy may be shared: this run's proxies get names no other run has.
        api = ToxiproxyClient(cfg.toxiproxy)
        prefix = f"lh{os.getpid()}-{secrets.token_hex(3)}-"
    else:
        from harness.runtime.toxiproxy_kind import url

        proxy = runtime.start("toxiproxy", 1, own_uids=False)
        api = ToxiproxyClient(url(proxy.nodes[0]))
        record.servers = (record.servers or []) + _server_rows(
            ServerNeed("toxiproxy"), proxy, "proxy"
        )
    groups = max(1, min(cfg.client_groups, cfg.concurrency))
    return ProxyLinks(api, cluster.nodes, groups, prefix)


FINAL_LIMIT = 30.0  # s for a workload's final phase


def _drive(env: RunEnv, nemeses: list[Nemesis]) -> None:
    cfg, workload, ex = env.cfg, env.plan.workload, env.ex
    shared = workload.shared_state(env.setup_context())
    read_fd, write_fd = make_pipe()
    writer = env.stack.enter_context(HistoryWriter(ex.run_dir / store.HISTORY))
    ex.recorded = True
    n = cfg.concurrency
    max_ops = math.ceil(cfg.ops / n) if cfg.ops else MAX_OPS_PER_CLIENT
    gate = StartGate(env.mp, n)
    threaded = not one_process_per_client(env.plan.nemeses)
    groups = spread(n, pool_size(n) if threaded else n)
    most = max(len(g) for g in groups)
    green = threaded and pool.green_clients(env.plan.backend, workload, most)
    ex.record.clients_as = "processes" if not threaded else "greenlets" if green else "threads"
    workers = []

    def start(ctx: ClientContext) -> None:  # in a worker: the client's pass through the gate
        gate.pass_through(ctx.index)
        if env.stop.is_set():  # the run stopped before it started (or this client came late)
            raise StoppedAtGate
        ctx.deadline = gate.deadline_ns / 1e9 + 1.0
        cast(Recorder, ctx.recorder).t0 = gate.t0_ns

    def make_ctx(i: int) -> ClientContext:  # in a worker, so 10,000 are not all made here
        rec = Recorder(write_fd, 0, buffered=True)
        ctx = env.client_context(i, shared, rec, math.inf, max_ops)
        ctx.start = start
        rec.before_first = ctx.begin  # an op recorded before any lock client was made
        return ctx

    def stop_workers() -> None:
        env.stop.set()
        now = time.monotonic_ns()
        gate.open(now, now)  # no-op once open: clients still waiting at the gate end at once
        end = time.monotonic() + stop_grace(workload)
        for w in workers:
            if w.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGCONT)  # a paused client must be able to stop
            w.join(max(0.0, end - time.monotonic()))
        for w in workers:
            if w.is_alive():  # stuck in a call to a dead server: its op stays an invoke
                w.kill()
                w.join(5)

    env.stack.callback(stop_workers)
    # Workers are forked before any thread of ours starts, so they inherit no thread state.
    for k, clients in enumerate(groups):
        w = env.mp.Process(
            target=_worker,
            args=(workload, make_ctx, clients, gate, read_fd, os.getpid(), threaded, green),
            daemon=True,
            name=f"clients-{k}" if threaded else f"client-{k}",
        )
        w.start()
        workers.append(w)
        env.worker_pids.append(w.pid)
    ex.record.worker_pids = env.worker_pids
    ex.save()  # every process of the run is known: a SIGKILLed harness leaves their pids
    pump = HistoryPump(read_fd, writer, workload.progress[1:])
    pump.start()
    # The run's clock starts once every client is ready at the gate (or the limit passed).
    try:
        wait_ready(gate, groups, workers, READY_LIMIT, env.intr.check)
    except BaseException:  # a stop or a crashed worker: what the clients wrote is kept
        stop_workers()
        os.close(write_fd)
        pump.finish(timeout=5.0)
        raise
    t0 = time.monotonic_ns()
    deadline = t0 / 1e9 + cfg.time_limit
    gate.open(t0, t0 + round(cfg.time_limit * 1e9))
    bound = cfg.time_limit + MAX_STOP_GRACE + FINAL_LIMIT  # the monitor's own time bound
    watched = (env.worker_pids, t0, groups, workload.lease_ms(), bound)
    ex.lag = env.stack.enter_context(lag.monitored(ex.run_dir, *watched))  # stalls
    # Faults are planned to be healed before the last RECOVERY_SHARE of the time limit: the run
    # ends with clients working on a healed cluster (see harness/nemesis/schedule.py).
    schedule = schedules.make(
        cfg, nemeses, Recorder(write_fd, t0), env.status, started=deadline - cfg.time_limit
    )
    completed = False
    try:
        while time.monotonic() < deadline:
            env.intr.check()
            if not any(w.is_alive() for w in workers):
                break  # every client reached its op bound
            schedule.step()
            time.sleep(schedule.sleep_s())  # shorter while a start is imminent
            if env.progress is not None:
                env.progress(
                    {
                        "elapsed": time.monotonic() - (deadline - cfg.time_limit),
                        "time_limit": cfg.time_limit,
                        "ops": pump.ops,
                        "progress": pump.progress,
                        "progress_label": workload.progress.label,
                        "fault": schedule.active.name if schedule.active else None,
                    }
                )
        completed = True
    finally:
        env.intr.disarm()
        # Heal first, recorded (also after Ctrl-C or a crash; a fault stopped before its planned
        # end is recorded as cut short), then undo anything left.
        with contextlib.suppress(Exception):
            schedule.heal()
        schedule.teardown()
        if nemeses:
            ex.record.recovery_s = round(schedule.recovery, 3)
        if schedule.not_started:  # why no more faults came (checkers.faults says it)
            ex.record.fault_not_started = schedule.not_started
        with contextlib.suppress(OSError):  # the faults as run: `harness run --schedule` takes it
            schedules.write(
                ex.run_dir / schedules.FILE,
                schedule.document(time_limit_s=cfg.time_limit, lease_ms=workload.lease_ms()),
            )
        stop_workers()
        if completed:  # the final phase (a final read) runs on a healed cluster only
            _final(env, env.final_context(shared, Recorder(write_fd, t0)))
        os.close(write_fd)
        pump.finish(timeout=5.0)


def _final(env: RunEnv, fctx: FinalContext) -> None:
    try:
        env.plan.workload.final(fctx)
    except Exception as e:  # the workload's own bug or a server still down: not a verdict
        env.ex.problems.append(f"the final phase failed: {type(e).__name__}: {e}"[:300])
    finally:
        fctx.recorder.flush()


# -- the whole run ---------------------------------------------------------------------------


def run_test(
    cfg: RunConfig,
    progress: Callable[[dict], None] | None = None,
    *,
    plan: RunPlan | None = None,
) -> RunResult:
    """Run one test and check it: prepare -> execute -> analyse -> render. ``progress`` is
    called about 10 times a second while clients run. ``plan``: what ``prepare(cfg)`` already
    decided (the CLI prepares first, to fail fast on bad input), so it is not decided twice."""
    if plan is None:
        plan = prepare(cfg)
    elif plan.cfg is not cfg:
        raise ValueError("run_test: the plan was prepared from another configuration")
    with _interrupts() as intr:  # a second Ctrl-C never cuts the check or results.json short
        ex = execute(plan, intr, progress)
        config = ex.config
        got = read_history(ex.run_dir / store.HISTORY)  # in columns when it can be read exactly
        results = analyse(
            plan.workload.checkers(),
            got,
            config=config,
            interrupted=ex.interrupted,
            problems=ex.problems,
            model=plan.model,
            lag=ex.lag,
        )
        store.write_json(ex.run_dir / store.RESULTS, results)
        report = render(ex.run_dir, config, results, got) if cfg.render_report else None
    code = exit_code(results["valid"])
    return RunResult(ex.run_dir, results["valid"], results, code, ex.interrupted, report, config)


def render(run_dir: Path, config: dict[str, Any], results: dict[str, Any], got: ReadResult) -> Path:
    from reports.render import write_report

    return write_report(run_dir, config, results, got.ops, notes=got.problems[:10])
