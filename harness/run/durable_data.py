"""Was the data a run judges kept by servers it declared non-durable?

A lost update that the set checker blames on the store alone (no two clients acted as holder at
once around it: ``checkers.blame``) proves nothing about the lock when the servers holding the
set ran with a setting the run itself declared non-durable (config.json's ``non_durable``, from
``harness/runtime/durability.py``): the harness's setup lost the writes. ``excusing_store`` then
lets the set checker say unknown (``checkers.set.excuse``); a loss on a durable store stays
invalid, blamed on the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checkers import CheckerMap
from checkers import set as set_checker
from harness.runtime.durability import NOTICE
from workloads.lockset import LockSetWorkload, set_role


def set_store_setting(config: Mapping[str, Any] | None) -> str | None:
    """The non-durable setting ("redis persistence=off (...)") of the servers that held a
    lock-set run's set, or None: durable, in memory, not a lock-set run, or not recorded."""
    if not config or config.get("workload") != LockSetWorkload.name:
        return None
    opts = config.get("workload_opts")
    store = opts.get("store") if isinstance(opts, dict) else None
    role = set_role(store) if isinstance(store, str) else None
    notices = [str(x) for x in config.get("non_durable") or []]
    if role is None or not notices:
        return None
    for row in config.get("servers") or []:
        if isinstance(row, dict) and row.get("role") == role:
            # the notice is Durability.notice(kind): NOTICE, then "<kind> <settings>: <why>"
            setting = f"{row.get('kind')} {row.get('durability')}"
            if any(n.startswith(f"{NOTICE}{setting}: ") for n in notices):
                return setting
    return None


def excusing_store(checkers: CheckerMap, config: Mapping[str, Any] | None) -> CheckerMap:
    """The checker map, its set checker told the non-durable setting of the set's servers."""
    setting = set_store_setting(config)
    inner = checkers.get("set")
    if setting is None or inner is None:
        return checkers
    return {**checkers, "set": lambda h: set_checker.excuse(inner(h), setting)}
