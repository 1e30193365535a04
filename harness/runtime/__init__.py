"""Starting real servers: the local runtime (processes on loopback)."""

from .base import MissingBinary, Node, RuntimeError_, ServerKind
from .local import Cluster, LocalRuntime

__all__ = ["Cluster", "LocalRuntime", "MissingBinary", "Node", "RuntimeError_", "ServerKind"]
