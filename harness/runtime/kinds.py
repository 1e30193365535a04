"""The registry of server kinds the local runtime can start.

Each kind lives in its own module here; the table maps a kind name to ``module:Class`` so a
module is only imported when its kind is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import ServerKind

KINDS: dict[str, str] = {
    "redis": "redis:RedisServer",
    "etcd": "etcd:EtcdServer",
    "zookeeper": "zookeeper:ZooKeeperServer",
    "postgres": "postgres:PostgresServer",
    "mariadb": "mariadb:MariadbServer",
    "mongodb": "mongodb:MongodServer",
    "toxiproxy": "toxiproxy:EmbeddedToxiproxy",
    "toxiproxy-server": "toxiproxy:RealToxiproxy",
}


def kind_class(name: str) -> type[ServerKind]:
    if name not in KINDS:
        raise ValueError(f"unknown server kind {name!r}; known: {', '.join(sorted(KINDS))}")
    module, cls = KINDS[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def server_kind(name: str, options: dict[str, Any] | None = None) -> ServerKind:
    return kind_class(name)(options)
