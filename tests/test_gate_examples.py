"""The worked gates of docs/adapter-protocol.md, run as a maintainer runs them (pytest in their
repository, the lock_harness fixture): green on the real library, red on a seeded bug, through
a process adapter and through a Python plug-in (real redis-server, real libraries)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .adapters import NODE_ADAPTERS, need_node
from .conftest import ROOT, need_server

EXAMPLES = ROOT / "docs" / "examples"


def _gate(example: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    repo = tmp_path / example  # the maintainer's repository: the example's files alone
    shutil.copytree(EXAMPLES / example, repo)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_lock_gate.py"],
        cwd=repo, capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip


@pytest.mark.parametrize("seeded", [False, True], ids=["real-library", "seeded-bug"])
def test_the_process_adapter_gate(tmp_path: Path, seeded: bool):
    need_server("redis")
    need_node()
    adapter = EXAMPLES / "gate-process" / "seeded_bug.js" if seeded else (
        NODE_ADAPTERS / "redis-semaphore.js"
    )  # fmt: skip
    p = _gate("gate-process", tmp_path, {"LOCK_ADAPTER": f"node {adapter}"})
    _red_or_green(p, seeded)


@pytest.mark.parametrize("seeded", [False, True], ids=["real-library", "seeded-bug"])
def test_the_python_plugin_gate(tmp_path: Path, seeded: bool):
    need_server("redis")
    p = _gate("gate-plugin", tmp_path, {"SEEDED_BUG": "1"} if seeded else {})
    _red_or_green(p, seeded)


def _red_or_green(p: subprocess.CompletedProcess, seeded: bool) -> None:
    out = p.stdout + p.stderr
    if not seeded:
        assert p.returncode == 0 and "1 passed" in out, out
        return
    assert p.returncode == 1 and "1 failed" in out, out
    # red for the lock's reason: the verdict, with the violations named
    assert "Verdict.INVALID" in out and "violations on 1 key" in out, out
