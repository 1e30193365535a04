"""Starting real servers: the local runtime (processes on loopback)."""

from .base import MissingBinary, Node, ServerKind, ServerStartError
from .local import Cluster, LocalRuntime

__all__ = ["Cluster", "LocalRuntime", "MissingBinary", "Node", "ServerStartError", "ServerKind"]
