"""The ``harness`` command line: the group (``app``), how it fails (``errors``), what it prints
(``output``), and its commands (``run_commands``, ``run_dirs``, ``catalog``, ``images``)."""

from ..run import store
from . import catalog, images, run_commands, run_dirs  # noqa: F401 - registers the commands
from .app import main

__all__ = ["main", "store"]
