"""The registry of server kinds: each kind is one class in its own module here, which holds
all its facts (package, argv, readiness, image recipe, official image, compose names)."""

from __future__ import annotations

from typing import Any

from .base import ServerKind
from .etcd import EtcdServer
from .mariadb import MariadbServer
from .mongodb import MongodServer
from .pgbouncer import PgBouncerServer
from .postgres import PostgresServer
from .redis import RedisServer
from .sentinel import SentinelServer
from .toxiproxy_kind import EmbeddedToxiproxy, RealToxiproxy
from .zookeeper import ZooKeeperServer

KINDS: dict[str, type[ServerKind]] = {
    k.kind: k
    for k in (
        RedisServer,
        SentinelServer,
        EtcdServer,
        ZooKeeperServer,
        PostgresServer,
        MariadbServer,
        MongodServer,
        PgBouncerServer,
        EmbeddedToxiproxy,
        RealToxiproxy,
    )
}


def kind_class(name: str) -> type[ServerKind]:
    if name not in KINDS:
        raise ValueError(f"unknown server kind {name!r}; known: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def server_kind(name: str, options: dict[str, Any] | None = None) -> ServerKind:
    return kind_class(name)(options)


def with_image_recipe() -> list[str]:
    """The kinds ``harness images build`` can make an image of."""
    return [name for name, k in KINDS.items() if k.image_recipe is not None]


def with_compose_service() -> list[str]:
    """The kinds a compose project can hold."""
    return [name for name, k in KINDS.items() if k.compose_names]


def kind_of_service(prefix: str) -> str | None:
    """The kind whose compose services are named ``prefix`` and a number (redis1, zk2 ...)."""
    return next((name for name, k in KINDS.items() if prefix in k.compose_names), None)
