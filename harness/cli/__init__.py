"""The ``harness`` command line: the group (``app``), how it fails (``errors``), what it prints
(``output``), and its commands (``run_commands``, ``compare``, ``run_dirs``, ``catalog``,
``images``)."""

from ..run import store
from . import adapter, catalog, compare, hunt_commands, images, run_commands, run_dirs  # noqa: F401
from .app import main

__all__ = ["main", "store"]
