"""The run configuration (``RunConfig``: everything a run needs) and the run's record
(``RunRecord``: what ``config.json`` holds, the configuration plus what the run learned).

Only what every run has lives here; what a workload adds (the mutex's TTL, hold, fencing ...)
is in ``workload_opts``, declared and parsed by the workload itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from checkers.history import nemesis_label
from checkers.model import MODELS
from workloads.base import BACKOFF_MS

from .workers import MAX_CLIENT_PROCESSES, MAX_CLIENTS

# MAX_KEYS: the protected resource keeps 8 bytes a key in shared memory and clients name keys on
# demand; a million keys runs. (Bounds of a workload's own options are declared with them.)
MAX_KEYS = 1_000_000


MAX_TIME_LIMIT_S = 7 * 24 * 3600  # a week: a soak test, still a bounded loop
MAX_BACKOFF_MS = 60_000  # a client asks at least once a minute: a pause must not end a run's load
BACKOFF_ACCEPTED = f"BASE_MS,MAX_MS with 1 <= BASE_MS <= MAX_MS <= {MAX_BACKOFF_MS}, or 0 (none)"
MAX_SEED = 2**63 - 1  # a seed is a signed 64-bit number for every tool that reads config.json


@dataclass
class RunConfig:
    backend: str = "redis"
    workload: str = "mutex"
    workload_opts: dict[str, Any] = field(default_factory=dict)  # NAME -> value (or its text)
    nemesis: list[str] = field(default_factory=list)
    nemesis_interval: float = 5.0
    nemesis_opts: dict[str, str] = field(default_factory=dict)
    concurrency: int = 5
    keys: int = 2
    time_limit: float = 30.0
    ops: int | None = None  # bound on client loop turns (acquire attempts) over all clients
    rate: float = 0.0  # client loop turns/s over all clients; 0 = as fast as they go
    seed: int | None = None
    backend_opts: dict[str, str] = field(default_factory=dict)
    store: Path = Path("store")
    toxiproxy: str | None = None  # URL of a real Toxiproxy server
    netns: str = "auto"  # auto: a private network namespace when root; on; off
    client_groups: int = 2  # for partitions between clients and nodes
    render_report: bool = True
    keep_data: bool = False  # keep the servers' data dirs after the run (logs are always kept)
    runtime: str = "local"  # local: server processes; docker: containers (harness/containers)
    images: dict[str, str] = field(default_factory=dict)  # server kind -> image (docker runtime)
    docker_host: str | None = None  # private, a URL, or None: DOCKER_HOST / the default socket
    docker_netns: str | None = None  # a /run/netns name the engine's containers listen in
    compose_project: str = "lockharness"  # compose runtime: the project whose servers are used
    model: str = "lease"  # the lock model the history is judged under: lease or strict
    #: --schedule: exactly these faults (schedule.json's "faults"), instead of the rotation of
    #: ``nemesis`` (then the kinds it uses); checked by prepare (harness/nemesis/schedule.py)
    schedule: list[dict[str, Any]] | None = None
    # clients' pause after failures (workloads.base.Backoff): base, cap in ms; (0, 0): none
    backoff_ms: tuple[int, int] = BACKOFF_MS

    @property
    def nemesis_label(self) -> str:
        return nemesis_label(self.nemesis)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["store"] = str(self.store)
        d["backoff_ms"] = list(self.backoff_ms)  # as JSON gives it back: the record is its file
        return d

    def validate(self) -> None:
        """Raise ValueError with one line naming the bad value and what is accepted."""
        checks = [
            (self.concurrency >= 1, f"--concurrency must be >= 1 (got {self.concurrency})"),
            (1 <= self.keys <= MAX_KEYS, f"--keys must be 1 to {MAX_KEYS:,} (got {self.keys})"),
            (
                0 < self.time_limit <= MAX_TIME_LIMIT_S,  # also refuses inf and nan: every run ends
                f"--time-limit must be > 0 and <= {MAX_TIME_LIMIT_S} s (got {self.time_limit})",
            ),
            (  # nan and inf too: config.json is JSON, which has no word for them
                0 <= self.rate < math.inf,
                f"--rate must be a finite number >= 0 (got {self.rate})",
            ),
            (
                self.seed is None or 0 <= self.seed <= MAX_SEED,
                f"--seed must be a whole number from 0 to 2^63-1 (got {self.seed})",
            ),
            (self.ops is None or self.ops >= 1, f"--ops must be >= 1 (got {self.ops})"),
            (
                0 < self.nemesis_interval < math.inf,
                f"--nemesis-interval must be a finite number > 0 s (got {self.nemesis_interval})",
            ),
            (self.netns in ("auto", "on", "off"), f"--netns is auto, on or off (got {self.netns})"),
            (self.client_groups >= 1, "--client-groups must be >= 1"),
            (
                self.runtime in ("local", "docker", "compose"),
                f"--runtime is local, docker or compose (got {self.runtime})",
            ),
            (
                self.runtime == "docker" or not self.images,
                "--image needs --runtime docker (a compose project's images are its own)",
            ),
            (
                self.runtime != "local" or not (self.docker_host or self.docker_netns),
                "--docker-host and --docker-netns need --runtime docker or compose",
            ),
            (bool(self.compose_project.strip()), "--compose-project needs a project name"),
            (
                self.model in MODELS,
                f"--model is {' or '.join(MODELS)} (got {self.model})",
            ),
            (
                self.concurrency <= MAX_CLIENTS,
                f"--concurrency must be 1 to {MAX_CLIENTS:,} (got {self.concurrency})",
            ),
            (
                _backoff_ok(self.backoff_ms),
                f"--backoff is {BACKOFF_ACCEPTED} (got {self.backoff_ms})",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


def check_client_processes(concurrency: int, nemeses: list[Any]) -> None:
    """A nemesis that freezes one lock holder (client-pause, client-stall) needs each client in
    a process of its own (``harness.run.workers``): at most MAX_CLIENT_PROCESSES of them.
    ValueError, one line."""
    takers = [n.name for n in nemeses if getattr(n, "client_target", False)]
    if takers and concurrency > MAX_CLIENT_PROCESSES:
        raise ValueError(
            f"--concurrency must be <= {MAX_CLIENT_PROCESSES} with nemesis {takers[0]}, which "
            f"needs each client in a process of its own (got {concurrency}; without it up to "
            f"{MAX_CLIENTS:,} clients share a few processes)"
        )


def _backoff_ok(b: object) -> bool:
    if not isinstance(b, tuple | list) or len(b) != 2:
        return False
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in b):
        return False
    base, cap = b
    return base == cap == 0 or 1 <= base <= cap <= MAX_BACKOFF_MS


def parse_backoff(text: str) -> tuple[int, int]:
    """``--backoff``: "BASE_MS,MAX_MS" or "0" (no backoff); ValueError (one line) otherwise."""
    parts = [p.strip() for p in text.split(",")]
    try:
        got = tuple(int(p) for p in parts)
    except ValueError:
        got = ()
    if got == (0,):
        got = (0, 0)
    if len(got) != 2 or not _backoff_ok(got):
        raise ValueError(f"--backoff is {BACKOFF_ACCEPTED} (got {text!r})")
    return got  # type: ignore[return-value]


def backoff_of(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """The clients' backoff a stored run's config.json records; None when it records none (runs
    from before backoff retried at once) or what it records cannot be read."""
    b = config.get("backoff_ms")
    if not _backoff_ok(b) or b[0] == 0:  # type: ignore[index]
        return None
    return int(b[0]), int(b[1])  # type: ignore[index]


@dataclass
class RunRecord:
    """``config.json``: the configuration as run, then what the run learned (its servers, its
    clients' pids, how it ended). One record per run, turned into the file's object in one
    place (``to_dict``); a field not yet known is not written. The file is written when the run
    starts, once every process of the run is known (a SIGKILLed harness leaves their pids), and
    when it ends; it is for the user and ``harness check``, never read back by the run."""

    cfg: RunConfig
    workload_opts: dict[str, Any]  # as the workload parsed them
    started_at: str
    harness_version: str
    backend_fence: str  # what the fence token is, in words
    lock: dict[str, Any]  # fenced, and the lock model the history is judged under
    netns: bool
    non_durable: list[str]  # what a process kill can cost the servers (runtime/durability.py)
    docker: dict[str, Any] | None = None  # the engine (container runtimes)
    servers: list[dict[str, Any]] | None = None  # one row a server node, as started
    worker_pids: list[int] | None = None  # with the servers': every process of the run
    clients_as: str | None = None  # processes, threads or greenlets (run/workers.py)
    recovery_s: float | None = None  # with nemeses: the healed time at the end
    fault_not_started: str | None = None  # why no more faults came (checkers.faults says it)
    duration_s: float | None = None
    machine: dict[str, Any] | None = None  # cores, load averages at start and end (run/machine)
    failed: str | None = None  # the run failed: the first line of why
    interrupted: bool | None = None  # the run ended (not failed): stopped early or not

    LEARNED = (
        "docker",
        "servers",
        "worker_pids",
        "clients_as",
        "recovery_s",
        "fault_not_started",
        "duration_s",
        "machine",
        "failed",
        "interrupted",
    )

    def to_dict(self) -> dict[str, Any]:
        d = self.cfg.to_dict() | {
            "workload_opts": self.workload_opts,
            "started_at": self.started_at,
            "harness_version": self.harness_version,
            "backend_fence": self.backend_fence,
            "lock": self.lock,
            "netns": self.netns,
            "non_durable": self.non_durable,
        }
        return d | {k: v for k in self.LEARNED if (v := getattr(self, k)) is not None}


def run_config(**kw: Any) -> RunConfig:
    """A RunConfig from flat keywords, as Jepsen's test map is flat: names that are not run
    fields are the workload's options (``run_config(backend="redis", ttl_ms=500)``)."""
    names = {f.name for f in fields(RunConfig)}
    wopts = dict(kw.pop("workload_opts", None) or {})
    wopts.update({k: kw.pop(k) for k in list(kw) if k not in names})
    return RunConfig(**kw, workload_opts=wopts)
