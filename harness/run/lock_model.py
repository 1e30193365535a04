"""Which lock model judges a history (checkers/model.py), from the run or its stored config.

A run knows its backend's declared expiry (``Backend.expiry``) and its workload's TTL; it writes
both to ``config.json`` under ``lock`` so that ``harness check`` judges the stored run the same
way. A run stored before that is read from its backend's name and options; a bare history with
no config has no TTL known and is judged strictly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from backends import registry
from backends.base import Backend
from checkers.model import EXPIRES_UNKNOWN, EXPIRIES, LEASE, STRICT, STRICT_MODEL, LockModel
from workloads.base import Workload


def _ttl(v: Any) -> float | None:
    """A usable TTL in ms, or None (bad or absent values prove no lapse)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) and v > 0 else None


def run_model(name: str, backend: Backend, workload: Workload) -> LockModel:
    """The model of a run about to start: its backend's expiry, its workload's TTL."""
    return _model(name, backend.expiry(), workload.opts.get("ttl_ms"))


def _model(name: str, expiry: str, ttl_ms: Any) -> LockModel:
    ttl = _ttl(ttl_ms) if expiry == "ttl" else None
    return LockModel(name, expiry if expiry in EXPIRIES else EXPIRES_UNKNOWN, ttl)


def stored_model(config: Mapping[str, Any] | None, requested: str | None = None) -> LockModel:
    """The model of a stored run (``requested`` overrides the one it ran under)."""
    if not config:
        return STRICT_MODEL if requested in (None, STRICT) else LockModel(LEASE)
    name = requested or config.get("model")
    if name not in (LEASE, STRICT):
        name = LEASE
    lock = config.get("lock")
    if isinstance(lock, Mapping) and lock.get("expiry") in EXPIRIES:
        return _model(name, str(lock["expiry"]), lock.get("ttl_ms"))
    # Stored before runs wrote ``lock``: the backend's declaration, the workload's TTL.
    wopts = config.get("workload_opts")
    ttl = wopts.get("ttl_ms") if isinstance(wopts, Mapping) else config.get("ttl_ms")
    try:
        opts = config.get("backend_opts")
        backend = registry.make(str(config.get("backend")), dict(opts or {}))
        expiry = backend.expiry()
    except Exception:  # an unknown or plug-in backend: it cannot vouch for its leases
        expiry = EXPIRES_UNKNOWN
    return _model(name, expiry, ttl)
