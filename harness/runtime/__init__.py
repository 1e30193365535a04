"""Starting real servers: server kinds, the one runtime interface, and the local runtime
(processes on loopback); the container runtimes are in ``harness/containers/``."""

from .base import Cluster, MissingBinary, Node, Runtime, ServerKind, ServerStartError
from .local import LocalRuntime, ProcessCluster

__all__ = [
    "Cluster",
    "LocalRuntime",
    "MissingBinary",
    "Node",
    "ProcessCluster",
    "Runtime",
    "ServerKind",
    "ServerStartError",
]
