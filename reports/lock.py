"""What the report may say about the lock's leases, and the lapses told in words.

A word about a lease or a TTL is said only of a lock that has one: PostgreSQL's session,
transaction and row locks have none, whatever ``--ttl`` the workload was given. Where the facts
come from, best first: config.json's ``lock`` (the backend's declaration when the run started),
the mutex result's ``lock`` (what judged it), and, for runs stored before either existed, the
backend's name and options as ``backends/*.py`` declare them (reports import no backend: see
tests/test_layering.py). When nothing says, nothing about a lease is said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checkers.history import Op
from checkers.model import (
    EXPIRES_HIDDEN,
    EXPIRES_NEVER,
    EXPIRES_TTL,
    EXPIRES_UNKNOWN,
    EXPIRIES,
    LEASE,
    STRICT,
)

# Backends stored runs may name, and their expiry (Backend.expiry() with the options given).
_TTL_OPTION = {"postgres": "session_ttl", "postgres-xact": "xact_ttl", "postgres-row": "xact_ttl"}
_HIDDEN = ("zookeeper", "zookeeper-ephemeral")
_TTL = (
    "redis",
    "redis-py",
    "unsafe-redis",
    "redlock",
    "pottery",
    "etcd",
    "postgres-lease",
    "mysql-lease",
    "mongodb",
)
MAX_LAPSES_TOLD = 5


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _true(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("true", "1", "yes", "on")


def _opt(config: dict[str, Any], name: str) -> Any:
    if name in config:
        return config[name]
    wopts = config.get("workload_opts")
    return wopts.get(name) if isinstance(wopts, dict) else None


def backend_expiry(config: dict[str, Any]) -> str:
    """The expiry a stored run's backend declares, from its name and options."""
    name = config.get("backend")
    opts = config.get("backend_opts") if isinstance(config.get("backend_opts"), dict) else {}
    if name in _TTL_OPTION:
        return EXPIRES_TTL if _true(opts.get(_TTL_OPTION[name], False)) else EXPIRES_NEVER
    if name in _HIDDEN:
        return EXPIRES_HIDDEN
    if name == "python-redis-lock":
        return EXPIRES_HIDDEN if _true(opts.get("auto_renewal", False)) else EXPIRES_TTL
    return EXPIRES_TTL if name in _TTL else EXPIRES_UNKNOWN


@dataclass(frozen=True)
class Lock:
    """What is known of the lock that was judged, and under which model."""

    model: str | None  # "lease" | "strict"; None: no mutex checker judged the run
    expiry: str  # checkers.model.EXPIRIES
    ttl_ms: float | None  # the TTL, when the grants run out on their own after it
    renews: bool = False  # renewed by ops the history records (renew_ms): expiry moves on

    @property
    def has_ttl(self) -> bool:
        """Is "a N ms lease", "the TTL" true of this lock?"""
        return self.expiry == EXPIRES_TTL and self.ttl_ms is not None

    @property
    def timed(self) -> bool:
        """Can a story say when a holder's lease ran out (a TTL, no renewal moving it)?"""
        return self.has_ttl and not self.renews


def _mutex(results: dict[str, Any]) -> dict[str, Any]:
    m = (results.get("checkers") or {}).get("mutex") if isinstance(results, dict) else None
    return m if isinstance(m, dict) else {}


def facts(config: dict[str, Any], results: dict[str, Any]) -> Lock:
    config = config if isinstance(config, dict) else {}
    mutex = _mutex(results)
    model = mutex.get("model") or (results.get("model") if mutex else None)
    model = model if model in (LEASE, STRICT) else None
    expiry, ttl = EXPIRES_UNKNOWN, None
    for lock in (config.get("lock"), mutex.get("lock")):
        if isinstance(lock, dict) and lock.get("expiry") in EXPIRIES:
            if lock["expiry"] != EXPIRES_UNKNOWN:
                expiry, ttl = lock["expiry"], lock.get("ttl_ms")
                break
    else:
        if "lock" not in config:  # stored before runs wrote it
            expiry = backend_expiry(config)
    if expiry == EXPIRES_TTL and not _num(ttl):
        ttl = _opt(config, "ttl_ms")
    ttl_ms = float(ttl) if expiry == EXPIRES_TTL and _num(ttl) and ttl > 0 else None
    renew = _opt(config, "renew_ms")
    return Lock(model, expiry, ttl_ms, _num(renew) and renew > 0)


def ms_text(v: float) -> str:
    return f"{v:g} ms"


def expiry_words(lock: Lock) -> str:
    """How the lock's grants end on their own, in words."""
    if lock.expiry == EXPIRES_TTL:
        if lock.ttl_ms is None:
            return "the lock's grants run out after a TTL, but none is known for this run"
        renewed = ", unless renewed" if lock.renews else ""
        return f"the lock's grants run out {ms_text(lock.ttl_ms)} after their acquire{renewed}"
    if lock.expiry == EXPIRES_NEVER:
        return "this lock's grants never run out on their own: a grant lasts until it is released"
    if lock.expiry == EXPIRES_HIDDEN:
        return "this lock renews its grants in the background, where the history cannot see it"
    return "nothing is known of how this lock's grants end on their own"


def model_line(lock: Lock) -> str | None:
    """The model that judged the run, and what it made of the lock's expiry; one line."""
    if lock.model == STRICT:
        line = "strict model: a grant lasts until a release takes effect"
        if lock.has_ttl:
            line += f" (the lock's {ms_text(lock.ttl_ms or 0)} TTL is not taken into account)"
        return line
    if lock.model != LEASE:
        return None
    if lock.has_ttl:
        renewed = " or its latest renewal" if lock.renews else ""
        return (
            f"lease model: a grant may lapse {ms_text(lock.ttl_ms or 0)} after its "
            f"acquire{renewed}, when its holder has stopped"
        )
    if lock.expiry == EXPIRES_NEVER:
        return (
            "lease model: this lock's grants never run out on their own, so nothing can lapse: "
            "a grant lasts until it is released"
        )
    if lock.expiry == EXPIRES_HIDDEN:
        return (
            "lease model: this lock renews its grants in the background, where the history "
            "cannot see it, so no lapse can be proven (judged as strictly as the strict model)"
        )
    return (
        "lease model: no TTL is known for this lock, so no lapse can be proven (judged as "
        "strictly as the strict model)"
    )


def lapse_intro(n: int) -> str:
    """What a lapse is, in plain words (the report's lapse section, the JUnit message)."""
    leases = "lease" + "s" * (n != 1)
    return (
        f"{n:,} {leases} lapsed: the holder had stopped, its release was refused, and the "
        "lease ran out before the next client got the lock: the lease did its job; not a "
        "violation."
    )


def _secs(ns: float) -> str:
    return f"{ns / 1e9:.3f} s"


def _find(ops: Sequence[Op], index: Any) -> int | None:
    if not isinstance(index, int):
        return None
    if 0 <= index < len(ops) and ops[index].index == index:
        return index
    for i, op in enumerate(ops):
        if op.index == index:
            return i
    return None


def began(ops: Sequence[Op], a: dict[str, Any], until: float) -> tuple[int, str] | None:
    """When hold ``a``'s lease began its last term, and by what: its acquire's invocation, or
    its latest ok renewal's invocation before ``until`` (as checkers.mutex times a lapse). None
    when the history does not show it."""
    pos = _find(ops, a.get("acquire_index"))
    if pos is None:
        return None
    p, key = a.get("process"), a.get("key")
    start = None
    for op in reversed(ops[max(0, pos - 500) : pos]):
        if op.process == p:
            if op.f == "acquire" and op.type == "invoke":
                start = (op.time, "its acquire")
            break
    pending = None
    for op in ops[pos + 1 : pos + 20_000]:
        if op.time > until:
            break
        if op.process != p or op.key != key or op.f != "renew":
            continue
        if op.type == "invoke":
            pending = op.time
        elif op.type == "ok" and pending is not None:
            start = (pending, "its latest renewal")
    return start


def _release(ops: Sequence[Op], a: dict[str, Any]) -> tuple[Op | None, Op | None]:
    """The release invocation of hold ``a`` and its completion (None when not in the ops)."""
    pos = _find(ops, a.get("release_index"))
    if pos is None:
        return None, None
    inv = ops[pos]
    for op in ops[pos + 1 : pos + 20_000]:
        if op.process == inv.process:
            return inv, (op if op.type != "invoke" else None)
    return inv, None


def lapse_story(lap: dict[str, Any], ops: Sequence[Op], lock: Lock) -> str | None:
    """One lapse as it happened, with the times: "client 0 acquired lock `k` at 2.004 s ..."."""
    a, b = lap.get("first"), lap.get("second")
    if not isinstance(a, dict) or not isinstance(b, dict) or not _num(a.get("start")):
        return None
    if not _num(b.get("start")):
        return None
    pa, pb, key = a.get("process"), b.get("process"), lap.get("key", a.get("key"))
    parts = [f"Client {pa} acquired lock `{key}` at {_secs(a['start'])}"]
    inv, done = _release(ops, a)
    if inv is not None:
        parts.append(f"it stopped acting at {_secs(inv.time)}, when it sent its release")
        if done is not None and done.type == "fail":
            why = f" ({done.error})" if done.error else ""
            parts.append(f"the release was refused at {_secs(done.time)}{why}")
        elif done is None:
            parts.append("the release was never answered")
    term = began(ops, a, b["start"]) if lock.ttl_ms is not None else None
    if term is not None and lock.ttl_ms is not None:
        t, what = term
        parts.append(
            f"its {ms_text(lock.ttl_ms)} lease could run out from {_secs(t + lock.ttl_ms * 1e6)} "
            f"on ({what} was sent at {_secs(t)})"
        )
    parts.append(f"client {pb} acquired the lock at {_secs(b['start'])}")
    return "; ".join(parts) + "."


def lapse_view(results: dict[str, Any], ops: Sequence[Op], lock: Lock) -> dict[str, Any] | None:
    """The report's lapse section: what a lapse is, how many, a few told in full."""
    mutex = _mutex(results)
    n = mutex.get("lapse_count")
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return None
    laps = [x for x in mutex.get("lapses") or [] if isinstance(x, dict)]
    told = [t for t in (lapse_story(x, ops, lock) for x in laps[:MAX_LAPSES_TOLD]) if t]
    return {"count": n, "intro": lapse_intro(n), "told": told, "listed": len(laps)}


def lock_lines(
    results: dict[str, Any], config: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    """(label, words) for a terminal verdict block or a JUnit message: the model that judged
    the run, and its lapses explained (none when no mutex checker judged it)."""
    lock = facts(config or {}, results)
    out: list[tuple[str, str]] = []
    line = model_line(lock)
    if line is not None:
        out.append(("model", line))
    n = _mutex(results).get("lapse_count")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        out.append(("lapses", lapse_intro(n)))
    return out
