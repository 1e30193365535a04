"""The registry of server kinds the local runtime can start."""

from __future__ import annotations

from typing import Any

from .base import ServerKind


def _kinds() -> dict[str, type[ServerKind]]:
    from .redis import RedisServer

    kinds: list[type[ServerKind]] = [RedisServer]
    return {k.kind: k for k in kinds}


def server_kind(name: str, options: dict[str, Any] | None = None) -> ServerKind:
    kinds = _kinds()
    if name not in kinds:
        raise ValueError(f"unknown server kind {name!r}; known: {', '.join(sorted(kinds))}")
    return kinds[name](options)


def all_kinds() -> dict[str, type[ServerKind]]:
    return _kinds()
