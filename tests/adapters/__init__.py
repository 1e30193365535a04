"""Process adapters for the tests: a deliberately wrong one (``wrong_adapter.py``), a seeded-bug
one (``seeded_bug.js``), and the check that the shipped Node.js adapters are installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NODE_ADAPTERS = HERE.parent.parent / "adapters" / "node"


def need_node() -> None:
    """Skip, saying why, when node or the adapters' npm packages are missing."""
    if shutil.which("node") is None:
        pytest.skip("node not installed (Node.js 20); the node-* backends need it")
    if not (NODE_ADAPTERS / "node_modules" / "redlock").is_dir():
        pytest.skip("adapters/node's npm packages are not installed: run ./setup.sh")
