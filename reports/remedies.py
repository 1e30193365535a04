"""What to do about an INVALID run: the remedies that answer what happened in it, each with the
``harness run`` command that shows the remedy on the same backend, nemesis, seed and time.

Pure: ``remedies(results, config)`` reads results.json and config.json (as dicts) and returns
``Remedy``s; nothing is run. Each command is the run's own configuration with one change (a
longer TTL also pins the pause the run had, see ``_longer_ttl``), so a reader can see the
remedy work where the lock failed. The commands are ``harness run``'s real flags:
tests/test_remedies.py parses and validates every one with the real command line.

This module may not import the harness (tests/test_layering.py): what it needs to know of the
command line (its defaults) and of the lock-set stores (which can guard a write) is written
here, and the test checks it against the real ones.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkers.results import fencing_result, mutex_result, set_result

# ``harness run``'s defaults for the run fields a command leaves out when the run had them.
RUN_DEFAULTS: dict[str, Any] = {
    "nemesis_interval": 5.0,
    "keys": 2,
    "concurrency": 5,
    "rate": 0.0,
    "client_groups": 2,
    "model": "lease",
    "backoff_ms": [10, 1000],
    "runtime": "local",
    "compose_project": "lockharness",
}
# run field -> its flag, in the order a command gives them
FLAGS: tuple[tuple[str, str], ...] = (
    ("nemesis_interval", "--nemesis-interval"),
    ("concurrency", "--concurrency"),
    ("keys", "--keys"),
    ("time_limit", "--time-limit"),
    ("ops", "--ops"),
    ("rate", "--rate"),
    ("seed", "--seed"),
    ("backoff_ms", "--backoff"),
    ("client_groups", "--client-groups"),
    ("model", "--model"),
    ("runtime", "--runtime"),
    ("compose_project", "--compose-project"),
    ("docker_host", "--docker-host"),
    ("docker_netns", "--docker-netns"),
    ("toxiproxy", "--toxiproxy"),
)
# nemeses that freeze a holder, and the option that says how long (default: twice the TTL)
PAUSES = {"client-pause": "pause_ms", "client-stall": "stall_ms"}
# lock-set stores that can write only while the lock is held: on the lock's own cluster, with
# these locks (workloads/stores/*.py ``guards``)
GUARDED = frozenset({"redis", "etcd", "postgres-lease", "zookeeper"})
# a backend option that loses acknowledged writes -> the durable value
DURABLE = {
    "persistence": ("always", "appendonly yes, appendfsync always: every write fsynced"),
    "synchronous_commit": ("on", "a commit returns once its WAL is flushed"),
    "w": ("majority", "a write returns once a majority of the replica set has it"),
}
ATOMIC = {"unsafe-redis": "redis"}  # a lock that is broken by itself -> the sound one
NO_LEASE = "postgres"  # a session advisory lock: held while its connection lives, no TTL
LEASE_KINDS = ("revoked-while-held", "overlap")


@dataclass(frozen=True)
class Remedy:
    """One thing to do: ``title`` says it, ``why`` ties it to what happened in the run and
    says what it costs, ``change`` is the one change the command makes, ``argv`` is
    ``harness run``'s arguments (without the program name)."""

    title: str
    why: str
    change: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return shlex.join(["harness", *self.argv])


def option_text(v: Any) -> str:
    """An option's value as the command line takes it (``backends.option_values.option_text``,
    which reports may not import): true/false for a yes/no one."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _flag_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ",".join(_flag_value(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return option_text(v)


def run_argv(
    config: Mapping[str, Any],
    run_dir: Path | str | None = None,
    *,
    backend: str | None = None,
    backend_opts: Mapping[str, Any] | None = None,
    workload_opts: Mapping[str, Any] | None = None,
    nemesis_opts: Mapping[str, Any] | None = None,
) -> list[str]:
    """``harness run`` arguments that perform the run of ``config`` again, with the given
    parts replaced. A run made from a schedule file runs ``run_dir``'s schedule.json again;
    the workload's options are all given (the run recorded each one's value)."""
    argv = ["run", "--backend", str(backend or config.get("backend", "?"))]
    bopts = config.get("backend_opts") if backend_opts is None else backend_opts
    for k, v in (bopts or {}).items():
        argv += ["--opt", f"{k}={option_text(v)}"]
    argv += ["--workload", str(config.get("workload") or "mutex")]
    wopts = config.get("workload_opts") if workload_opts is None else workload_opts
    for k, v in (wopts or {}).items():
        argv += ["--workload-opt", f"{k}={option_text(v)}"]
    if config.get("schedule") and run_dir is not None:
        argv += ["--schedule", str(Path(run_dir) / "schedule.json")]
    else:
        nemesis = config.get("nemesis") or []
        argv += ["--nemesis", ",".join(map(str, nemesis)) or "none"]
        nopts = config.get("nemesis_opts") if nemesis_opts is None else nemesis_opts
        for k, v in (nopts or {}).items():
            argv += ["--nemesis-opt", f"{k}={_flag_value(v)}"]
    for field, flag in FLAGS:
        v = config.get(field)
        if v is None or (field in RUN_DEFAULTS and v == RUN_DEFAULTS[field]):
            continue
        if field == "compose_project" and config.get("runtime") != "compose":
            continue
        argv += [flag, _flag_value(v)]
    for k, v in (config.get("images") or {}).items():
        argv += ["--image", f"{k}={v}"]
    if config.get("netns") is False:  # recorded as it ran: off stays off (auto may not be)
        argv += ["--netns", "off"]
    if config.get("store"):
        argv += ["--store", str(config["store"])]
    return argv


@dataclass(frozen=True)
class _Run:
    """What happened in a run, as far as a remedy cares."""

    config: Mapping[str, Any]
    run_dir: Path | str | None
    backend: str
    workload: str
    wopts: dict[str, Any]
    fenced: bool  # the lock gives fence tokens
    expiry: str  # ttl, hidden, none, unknown
    ttl_ms: float | None
    stale: int  # stale writes the resource accepted
    enforced: bool  # the resource checked fences
    non_increasing: int
    kinds: dict[str, int]  # violations by kind
    lost_by_lock: int
    lost_by_store: int
    outlived_s: float  # longest first hold of a lease violation that outlived its TTL, s
    pause_ms: float | None  # how long a pause nemesis froze the holder (None: no such nemesis)
    pause_nemesis: str | None

    def argv(self, **replace: Any) -> tuple[str, ...]:
        return tuple(run_argv(self.config, self.run_dir, **replace))


def _facts(results: Mapping[str, Any], config: Mapping[str, Any], run_dir: Any) -> _Run:
    lock = config.get("lock") if isinstance(config.get("lock"), dict) else {}
    mutex = mutex_result(results) or {}
    fencing = fencing_result(results) or {}
    lost = set_result(results) or {}
    ttl = lock.get("ttl_ms")
    ttl = float(ttl) if _num(ttl) else None
    outlived = 0.0
    for v in mutex.get("violations") or []:
        first = v.get("first") if isinstance(v, dict) else None
        if v.get("kind") not in LEASE_KINDS or not isinstance(first, dict) or ttl is None:
            continue
        if _num(first.get("start")) and _num(first.get("end")):
            held = (first["end"] - first["start"]) / 1e9
            if held * 1000 > ttl:
                outlived = max(outlived, held)
    nemesis = [str(n) for n in config.get("nemesis") or []]
    pause = next((n for n in nemesis if n in PAUSES), None)
    pause_ms = None
    if pause is not None:
        given = (config.get("nemesis_opts") or {}).get(PAUSES[pause])
        pause_ms = float(given) if _num(given) else (2 * ttl if ttl is not None else None)
    wopts = config.get("workload_opts")
    return _Run(
        config=config,
        run_dir=run_dir,
        backend=str(config.get("backend", "?")),
        workload=str(config.get("workload") or "mutex"),
        wopts=dict(wopts) if isinstance(wopts, dict) else {},
        fenced=bool(lock.get("fenced")) or bool(fencing.get("fenced_holds")),
        expiry=str(lock.get("expiry") or "unknown"),
        ttl_ms=ttl,
        stale=int(fencing.get("stale_accepted") or 0),
        enforced=bool(fencing.get("enforced")),
        non_increasing=int(fencing.get("non_increasing") or 0),
        kinds={k: int(n) for k, n in (mutex.get("violation_kinds") or {}).items() if n},
        lost_by_lock=int(lost.get("lost_by_lock") or 0),
        lost_by_store=int(lost.get("lost_by_store") or 0),
        outlived_s=outlived,
        pause_ms=pause_ms,
        pause_nemesis=pause,
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _damage(r: _Run) -> str:
    """What the data suffered, in words, for the start of a remedy's why."""
    parts = []
    if r.stale:
        parts.append(f"{_plural(r.stale, 'stale write')} accepted")
    if r.lost_by_lock:
        parts.append(f"{_plural(r.lost_by_lock, 'update')} lost to two holders at once")
    return " and ".join(parts)


def _fence_at_resource(r: _Run) -> list[Remedy]:
    damage = _damage(r)
    # fences answer two holders at once; writes taken after the store forgot its tokens
    # (a non-durable restart) are the durable setting's to answer
    if not damage or not r.fenced or r.enforced or not (r.kinds or r.lost_by_lock):
        return []
    tokens = r.config.get("backend_fence")
    token_words = f" (this lock's token: {tokens})" if tokens else ""
    caveat = (
        f" This lock's tokens did not always increase here ({_plural(r.non_increasing, 'time')}):"
        " a resource that checks them still takes some stale writes."
        if r.non_increasing
        else ""
    )
    if r.workload == "mutex" and r.wopts.get("fencing") is False:
        change = {"fencing": True}
    elif r.workload == "lock-set" and r.wopts.get("write", "plain") == "plain":
        change = {"write": "fenced"}
    else:
        return []
    ((name, value),) = change.items()
    return [
        Remedy(
            "Enforce fence tokens at the resource",
            f"Here {damage}: the resource took writes from a holder whose lock had already "
            f"passed to another. A resource that refuses a token lower than the highest it has "
            f"seen{token_words} rejects them, however long the holder was paused. The lock still "
            f"gives a key to two clients (the run stays INVALID), but the stale writes are "
            f"refused.{caveat}",
            f"--workload-opt {name}={option_text(value)}",
            r.argv(workload_opts=r.wopts | change),
        )
    ]


def _guarded(r: _Run) -> list[Remedy]:
    damage = _damage(r)
    if not damage or r.workload != "lock-set" or r.wopts.get("write", "plain") == "guarded":
        return []
    if not (r.kinds or r.lost_by_lock):  # no two holders: the durable setting's to answer
        return []
    if r.backend not in GUARDED or r.wopts.get("store") != "lock":
        return []
    return [
        Remedy(
            "Write only while the lock is held, at the store",
            f"Here {damage}. With write=guarded the store checks, in the same transaction as "
            "the write, that the writer still holds the lock, and refuses the write otherwise: "
            "the store and the lock are one system, so a holder past its lease cannot write. The "
            "run stays INVALID for the lock; no update is lost.",
            "--workload-opt write=guarded",
            r.argv(workload_opts=r.wopts | {"write": "guarded"}),
        )
    ]


def _check_before_write(r: _Run) -> list[Remedy]:
    if r.workload != "mutex" or r.wopts.get("check_before_write") is not False:
        return []
    if r.expiry != "ttl" or not r.outlived_s:  # a check finds a lease gone: one that was
        return []
    return [
        Remedy(
            "Check the lock before writing",
            "The holder renews its lease right before each write and skips the write when the "
            "lease is gone. It narrows the window, it does not close it: a pause between the "
            "check and the write still lets a stale write through. Only a resource that checks "
            "fence tokens closes it.",
            "--workload-opt check_before_write=true",
            r.argv(workload_opts=r.wopts | {"check_before_write": True}),
        )
    ]


def _longer_ttl(r: _Run) -> list[Remedy]:
    """A TTL past the longest time a holder outlived its lease here. A pause nemesis pauses
    for twice the TTL by default, so the command pins the pause this run had: the fault stays
    the same, the lease outlasts it."""
    if r.expiry != "ttl" or r.ttl_ms is None or "ttl_ms" not in r.wopts or not r.outlived_s:
        return []
    longest_ms = max(r.outlived_s * 1000, r.pause_ms or 0.0)
    ttl = float(max(math.ceil(2 * longest_ms / 500) * 500, 2 * r.ttl_ms))
    ttl_v: Any = int(ttl) if isinstance(r.wopts["ttl_ms"], int) else ttl
    nopts = dict(r.config.get("nemesis_opts") or {})
    pinned = ""
    if r.pause_nemesis is not None and r.pause_ms is not None and not r.config.get("schedule"):
        opt = PAUSES[r.pause_nemesis]
        if opt not in nopts:  # its default follows the TTL: keep this run's pause
            nopts[opt] = int(r.pause_ms) if float(r.pause_ms).is_integer() else r.pause_ms
            pinned = (
                f" The command keeps this run's {r.pause_nemesis} of {r.pause_ms:g} ms "
                f"(--nemesis-opt {opt}=...; by default it lasts twice the TTL)."
            )
    return [
        Remedy(
            "A longer TTL",
            f"A holder held the lock {r.outlived_s:.2f} s here, past its {r.ttl_ms:g} ms lease, "
            f"and the lock went to another client meanwhile. With a TTL of {ttl:g} ms the lease "
            "outlasts it. The cost: a holder that dies keeps the lock for the whole TTL; and a "
            f"longer pause than the TTL still breaks the lock.{pinned}",
            f"--workload-opt ttl_ms={_flag_value(ttl_v)}",
            r.argv(workload_opts=r.wopts | {"ttl_ms": ttl_v}, nemesis_opts=nopts),
        )
    ]


def _renewal(r: _Run) -> list[Remedy]:
    """Renewing keeps a running holder's lease alive; a frozen holder's renewals stop with it,
    so it is offered only when no nemesis froze the holder."""
    if r.expiry != "ttl" or r.ttl_ms is None or r.pause_nemesis is not None:
        return []
    if r.workload != "mutex" or r.wopts.get("renew_ms") != 0 or not r.outlived_s:
        return []
    every = max(int(r.ttl_ms // 3), 1)
    return [
        Remedy(
            "Renew the lease while holding",
            f"A holder held the lock {r.outlived_s:.2f} s here, past its {r.ttl_ms:g} ms lease. "
            f"Renewing every {every} ms keeps a running holder's lease alive for as long as it "
            "holds; a holder that is frozen (a GC pause) stops renewing too.",
            f"--workload-opt renew_ms={every}",
            r.argv(workload_opts=r.wopts | {"renew_ms": every}),
        )
    ]


def _durable(r: _Run) -> list[Remedy]:
    prefix = "non-durable setting in effect: "
    non_durable = [str(x).removeprefix(prefix) for x in r.config.get("non_durable") or []]
    if not non_durable or not (r.lost_by_store or r.kinds or r.stale):
        return []
    bopts = dict(r.config.get("backend_opts") or {})
    change = {k: DURABLE[k][0] for k, v in bopts.items() if k in DURABLE and v != DURABLE[k][0]}
    what = [DURABLE[k][1] for k in change]
    if bopts.get("failover") is True and bopts.get("synchronous") is not True:
        change["synchronous"] = True
        what.append("commits wait for the replica")
    if not change:
        return []
    lost = (
        f"the store lost {_plural(r.lost_by_store, 'acknowledged update')}; "
        if r.lost_by_store
        else ""
    )
    return [
        Remedy(
            "A durable server setting",
            f"Here {lost}a setting in effect can lose acknowledged writes "
            f"({'; '.join(non_durable)}). With {', '.join(f'{k}={option_text(v)}' for k, v in change.items())} "
            f"({'; '.join(what)}) an acknowledged write survives the fault; the cost is latency.",
            " ".join(f"--opt {k}={option_text(v)}" for k, v in change.items()),
            r.argv(backend_opts=bopts | change),
        )
    ]


def _no_lease(r: _Run) -> list[Remedy]:
    """A lock without a lease, for a holder that lost its lease while frozen: PostgreSQL's
    session advisory lock is held as long as its connection, so a frozen holder keeps it."""
    if r.pause_nemesis is None or r.expiry not in ("ttl", "hidden") or r.backend == NO_LEASE:
        return []
    if not r.outlived_s or r.config.get("schedule"):
        return []
    wopts = dict(r.wopts)
    if r.workload == "lock-set":
        wopts["store"] = "lock"
        if wopts.get("write") == "guarded":  # PostgreSQL's store guards only a lease table
            wopts["write"] = "plain"
    return [
        Remedy(
            "A lock without a lease",
            f"The lock took its grant back from a holder that was frozen ({r.pause_nemesis}) "
            "and gave it to another client. A PostgreSQL session advisory lock has no lease: it "
            "is held as long as its holder's connection, so a frozen holder keeps it and nobody "
            "else is granted it meanwhile. The cost: a holder that hangs holds the lock until "
            "its connection is closed (a partition or a dead client: the server's TCP timeout).",
            f"--backend {NO_LEASE}",
            r.argv(backend=NO_LEASE, backend_opts={}, workload_opts=wopts),
        )
    ]


def _atomic_grant(r: _Run) -> list[Remedy]:
    """Two holders at once with no holder past its lease: the lock granted twice by itself,
    and no setting of it helps; the same servers' atomic lock does."""
    safer = ATOMIC.get(r.backend)
    if safer is None or r.outlived_s or not r.kinds.get("overlap"):
        return []
    return [
        Remedy(
            "A lock whose grant is atomic",
            f"Here {_plural(r.kinds['overlap'], 'overlap')}: the lock granted a key to two "
            f"clients while neither had outlived its lease, so no TTL or check saves it. "
            f"{safer} takes the lock and its fence token in one atomic step on the same "
            "servers.",
            f"--backend {safer}",
            r.argv(backend=safer),
        )
    ]


RULES = (  # the most decisive first: a broken lock or a forgetting store before any setting
    _atomic_grant,
    _durable,
    _fence_at_resource,
    _guarded,
    _check_before_write,
    _longer_ttl,
    _renewal,
    _no_lease,
)


def remedies(
    results: Mapping[str, Any], config: Mapping[str, Any], run_dir: Path | str | None = None
) -> list[Remedy]:
    """The remedies for what happened in an INVALID run, most decisive first; none for a run
    that is not INVALID or whose configuration is unknown."""
    if results.get("valid") is not False or not config.get("backend"):
        return []
    r = _facts(results, config, run_dir)
    return [remedy for rule in RULES for remedy in rule(r)]


def rerun_command(config: Mapping[str, Any], run_dir: Path | str | None = None) -> str:
    """The ``harness run`` command that performs the run of ``config`` again."""
    return shlex.join(["harness", *run_argv(config, run_dir)])


def remedy_lines(remedies_: Sequence[Remedy]) -> list[str]:
    """The remedies as text lines (the terminal, JUnit): the title, then the command."""
    return [f"remedy: {m.title} ({m.change}): {m.command}" for m in remedies_]
