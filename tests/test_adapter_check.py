"""``harness adapter check``: a conforming adapter passes, and a deliberately wrong one is told
exactly which message was wrong (real redis-server, real adapter processes)."""

from __future__ import annotations

import sys

import pytest

from .adapters import HERE, NODE_ADAPTERS, need_node
from .conftest import harness, need_server

WRONG = [sys.executable, str(HERE / "wrong_adapter.py")]


@pytest.mark.parametrize(
    ("mode", "step", "says"),
    [
        ("malformed", 3, 'acquire reply: \'type\' must be "ok", "fail" or "info", got "OK"'),
        ("grant-all", 4, "expected fail: client 0 holds the key"),
        ("bad-caps", 1, "capabilities.expiry must be one of ttl, none, hidden, unknown"),
    ],
)
def test_a_wrong_adapter_is_told_which_message_was_wrong(mode: str, step: int, says: str):
    need_server("redis")
    r = harness("adapter", "check", "--", *WRONG, mode, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    wrong = [line for line in r.stdout.splitlines() if line.startswith("WRONG:")]
    assert len(wrong) == 1, r.stdout
    assert f"step {step} (client" in wrong[0] and says in wrong[0], wrong[0]
    assert "conforms" not in r.stdout


def test_the_shipped_node_adapter_conforms():
    need_server("redis")
    need_node()
    r = harness("adapter", "check", "--", "node", str(NODE_ADAPTERS / "redis-semaphore.js"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"expiry": "hidden"' in r.stdout and "conforms:" in r.stdout, r.stdout


def test_bad_input_is_one_line_and_exit_2():
    r = harness("adapter", "check", "--", "/nonexistent/adapter")
    assert r.returncode == 2 and r.stderr.startswith("error: cannot start adapter"), r.stderr
    assert "Traceback" not in r.stderr
    r = harness("adapter", "check", "--servers", "redis:x", "--", "true")
    assert r.returncode == 2 and "expected KIND:COUNT" in r.stderr, r.stderr
