"""mongod, when one is on PATH: a replica set of N nodes (a single node is a one-member set, so
majority writes and ``$$NOW`` behave as in production).

No Debian package ships mongod; install MongoDB Community (mongodb-org) or point the backend at
an existing server with ``--opt uri=mongodb://...``.
"""

from __future__ import annotations

import shutil

from .base import MissingBinary, Node, ServerKind
from .durability import Durability

REPLICA_SET = "lockharness"


class MongodServer(ServerKind):
    kind = "mongodb"
    package = "mongodb-org"
    binary = "mongod"
    ready_timeout = 60.0
    in_containers = True  # the code path is there (--image mongodb=mongo:7); not verified here
    official_image = "mongo:7"
    compose_names = ("mongo", "mongodb")
    client_port = 27017

    def find_binary(self) -> str:
        if self.container:
            return self.binary
        path = shutil.which(self.binary)
        if path is None:
            raise MissingBinary(
                "mongod not found: no Debian package ships it; install MongoDB Community "
                "(mongodb-org) so mongod is on PATH, or use an existing server with "
                "--opt uri=mongodb://HOST:PORT/"
            )
        return path

    def durability(self) -> Durability:
        """mongod journals by default; what a lock write waits for is the backend's write
        concern (option ``w``, passed here so the run can say so)."""
        if str(self.options.get("w", "majority")) == "1":
            return Durability(
                "journaled, lock writes with w=1",
                "w=1 acknowledges a write before it is journaled or replicated: a kill of the "
                "primary can lose it",
            )
        return Durability("journaled, lock writes with w=majority (journaled on a majority)")

    def prepare(self, node: Node, cluster: list[Node], fresh: bool) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self, node: Node, cluster: list[Node]) -> list[str]:
        return [
            self.find_binary(),
            "--bind_ip", node.host,
            "--port", str(node.port),
            "--dbpath", str(node.data_dir),
            "--replSet", REPLICA_SET,
            "--nounixsocket",
            "--oplogSize", "64",
            "--wiredTigerCacheSizeGB", "0.25",
            "--setParameter", "diagnosticDataCollectionEnabled=false",
            "--quiet",
        ]  # fmt: skip

    def ready(self, node: Node) -> bool:
        return _ping(node)

    def version(self, node: Node) -> str | None:
        """From ``buildInfo`` (any member answers it, primary or not)."""
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        client = MongoClient(
            node.host, node.port, directConnection=True, serverSelectionTimeoutMS=1000
        )
        try:
            return str(client.admin.command("buildInfo").get("version") or "") or None
        except PyMongoError:
            return None
        finally:
            client.close()

    def cluster_ready(self, cluster: list[Node]) -> bool:
        """Every node answers, the set is initiated (once, from the first node) and has a
        primary with all members healthy."""
        if not all(_ping(n) for n in cluster):
            return False
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure, PyMongoError

        first = cluster[0]
        client = MongoClient(
            first.host, first.port, directConnection=True, serverSelectionTimeoutMS=1000
        )
        try:
            try:
                status = client.admin.command("replSetGetStatus")
            except OperationFailure as e:
                if e.code != 94:  # NotYetInitialized
                    return False
                members = [{"_id": i, "host": f"{n.host}:{n.port}"} for i, n in enumerate(cluster)]
                client.admin.command("replSetInitiate", {"_id": REPLICA_SET, "members": members})
                return False
            states = [m.get("stateStr") for m in status.get("members", [])]
            return (
                "PRIMARY" in states
                and all(s in ("PRIMARY", "SECONDARY") for s in states)
                and len(states) == len(cluster)
            )
        except PyMongoError:
            return False
        finally:
            client.close()


def _ping(node: Node) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client = MongoClient(
        node.host, node.port, directConnection=True, serverSelectionTimeoutMS=300,
        connectTimeoutMS=300,
    )  # fmt: skip
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()
