"""The lock model a history is judged under: what one grant of a lock promises.

Two models (docs/design.md, "The lock model"):

- ``strict`` (Knossos's mutex, owner-aware): a grant lasts until a release takes effect; any
  grant to another client before that is a violation, even one that came after the earlier
  holder had stopped acting and its lease had run out.
- ``lease`` (the default for runs): a holder acts from its acquire's ``ok`` to its release's
  invocation. A grant to another client while an earlier grant was not certainly released is
  *two holders at once* when it returned before the earlier holder invoked its release, an
  *early grant* when the earlier lease could not yet have run out (no TTL, or the new grant
  returned before the earlier acquire's invocation plus the TTL, extended by recorded
  successful renewals), and otherwise a *lapse*: the lease ran out after its holder stopped
  acting without a successful release. Lapses are counted, never violations.

A lapse can only be proven when the TTL is known and every renewal is in the history: a lock
that renews in the background (ZooKeeper's session heartbeats, a renewal thread) or a history
with no known TTL gets no lapses, so the lease model then judges exactly as the strict one
(only its names for the violations differ).
"""

from __future__ import annotations

from dataclasses import dataclass

from .results import LockDict

STRICT = "strict"
LEASE = "lease"
MODELS = (LEASE, STRICT)

# How a lock's grants end on their own (the backend declares it; see backends.base.Expiry).
EXPIRES_NEVER = "none"  # no TTL: a grant lasts until released (or its session dies)
EXPIRES_TTL = "ttl"  # ttl_ms after the acquire, extended only by renewals the history records
EXPIRES_HIDDEN = "hidden"  # kept alive in the background, where the history cannot see it
EXPIRES_UNKNOWN = "unknown"  # a bare history, or a backend that does not say
EXPIRIES = (EXPIRES_NEVER, EXPIRES_TTL, EXPIRES_HIDDEN, EXPIRES_UNKNOWN)


@dataclass(frozen=True)
class LockModel:
    """The model, and what it knows of the lock's leases."""

    name: str = STRICT
    expiry: str = EXPIRES_UNKNOWN
    ttl_ms: float | None = None

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"model {self.name!r} is not one of {', '.join(MODELS)}")
        if self.expiry not in EXPIRIES:
            raise ValueError(f"expiry {self.expiry!r} is not one of {', '.join(EXPIRIES)}")

    @property
    def lease_ns(self) -> int | None:
        """The TTL in ns when a lapse can be proven, else None (every late grant is early)."""
        if self.name != LEASE or self.expiry != EXPIRES_TTL or not self.ttl_ms:
            return None
        return int(self.ttl_ms * 1_000_000)

    def to_dict(self) -> LockDict:
        return {"model": self.name, "expiry": self.expiry, "ttl_ms": self.ttl_ms}

    def why_no_lapse(self) -> str | None:
        """Why this model can prove no lapse (None when it can)."""
        if self.name == STRICT:
            return "strict model: a grant lasts until a release takes effect"
        if self.expiry == EXPIRES_NEVER:
            return "the lock has no TTL: a grant lasts until released"
        if self.expiry == EXPIRES_HIDDEN:
            return "the lock renews in the background, where the history cannot see it"
        if self.lease_ns is None:
            return "no TTL is known for this history"
        return None


#: A bare history with no TTL known is judged strictly.
STRICT_MODEL = LockModel(STRICT)
