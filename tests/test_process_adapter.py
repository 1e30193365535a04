"""The process backend's own promises: a hung adapter is an unknown outcome, never a hung run;
every adapter process is ended by its pid; what an adapter declares at connect must agree with
what the backend declared; bad input is one line and exit 2."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest

from backends.base import ClientParams, Endpoint
from backends.process import AdapterSetupError, ProcessBackend, ProtocolError

from .adapters import HERE, NODE_ADAPTERS, need_node
from .conftest import harness, need_server, pid_alive

WRONG = f"{shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'wrong_adapter.py'))}"
NOWHERE = [Endpoint("n1", "127.0.0.1", 9)]  # the wrong adapter connects to nothing


def test_a_silent_adapter_is_unknown_within_its_deadline_and_ended_by_pid():
    backend = ProcessBackend({"cmd": f"{WRONG} silent", "reply_timeout_ms": "300"})
    client = backend.connect(NOWHERE, 0, ClientParams(1000, 200))
    pid = client.adapter.pid
    t = time.monotonic()
    with pytest.raises(ProtocolError, match="acquire: no reply within 500 ms"):
        client.acquire("k", 1000, 200)  # the wait plus the reply timeout
    assert time.monotonic() - t < 3
    client.close()  # broken: no close message, straight to its pid
    assert not pid_alive(pid)


def test_a_malformed_reply_is_a_protocol_error_naming_the_field():
    client = ProcessBackend({"cmd": f"{WRONG} malformed"}).connect(NOWHERE, 0, ClientParams())
    with pytest.raises(ProtocolError, match='\'type\' must be "ok", "fail" or "info"'):
        client.acquire("k", 1000, 0)
    client.close()
    assert not pid_alive(client.adapter.pid)


def test_connect_is_told_the_ttl_and_wait(tmp_path: Path):
    """An adapter that echoes its connect message back as its error: TTL and wait arrive."""
    echo = tmp_path / "echo.py"
    echo.write_text(
        "import json, sys\n"
        "msg = json.loads(sys.stdin.readline())\n"
        "print(json.dumps({'type': 'fail', 'error': json.dumps(msg)}), flush=True)\n"
    )
    backend = ProcessBackend({"cmd": f"{sys.executable} {echo}", "opts": "a=1"})
    with pytest.raises(ConnectionError) as e:
        backend.connect(NOWHERE, 4, ClientParams(ttl_ms=1234, wait_ms=56))
    sent = json.loads(str(e.value).split(": ", 1)[1])
    assert sent["op"] == "connect" and sent["client"] == 4 and sent["protocol"] == 1
    assert (sent["ttl_ms"], sent["wait_ms"], sent["opts"]) == (1234, 56, {"a": "1"})
    assert sent["endpoints"] == [{"name": "n1", "host": "127.0.0.1", "port": 9}]


def test_a_declaration_the_adapter_contradicts_is_refused_in_setup():
    """The lock model was fixed from the backend's declaration: an adapter saying otherwise
    at connect is refused before any client runs."""
    backend = ProcessBackend({"cmd": f"{WRONG} grant-all", "fenced": "true", "expiry": "ttl"})
    with pytest.raises(AdapterSetupError, match="declares fenced=false .* give --opt fenced=false"):
        backend.setup(NOWHERE)


def test_a_hung_adapter_makes_an_unknown_run_not_a_hung_one(store: Path):
    need_server("redis")
    t = time.monotonic()
    r = harness(
        "run", "--backend", "process", "--opt", f"cmd={WRONG} silent", "--opt", "expiry=ttl",
        "--opt", "reply_timeout_ms=300", "-t", "3", "-c", "2", "--store", str(store),
        "--no-report",
    )  # fmt: skip
    assert time.monotonic() - t < 60
    assert r.returncode == 2 and "verdict: UNKNOWN" in r.stdout, r.stdout + r.stderr
    run = Path(next(x for x in r.stdout.splitlines() if x.startswith("run:")).split()[1])
    ops = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    acquires = [o for o in ops if o["f"] == "acquire" and o["type"] != "invoke"]
    assert acquires and all(o["type"] == "info" for o in acquires)
    assert "no reply within" in acquires[0]["error"]


def test_the_generic_backend_runs_a_node_adapter(store: Path):
    need_server("redis")
    need_node()
    cmd = f"cmd=node {NODE_ADAPTERS / 'redlock.js'}"
    r = harness(
        "run", "--backend", "process", "--opt", cmd, "--opt", "servers=redis:3",
        "--opt", "expiry=ttl", "-t", "4", "--store", str(store), "--no-report",
    )  # fmt: skip
    assert r.returncode == 0 and "verdict: VALID" in r.stdout, r.stdout + r.stderr
    r = harness(
        "run", "--backend", "process", "--opt", cmd, "--opt", "fenced=true", "-t", "2",
        "--store", str(store), "--no-report",
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "declares fenced=false in its connect reply" in r.stderr and "Traceback" not in r.stderr


def test_bad_input_is_one_line_and_exit_2(store: Path):
    for opts, says in [
        ([], "backend process needs --opt cmd="),
        (["--opt", "cmd=x", "--opt", "servers=redis:lots"], "expected KIND:COUNT"),
        (["--opt", "cmd=x", "--opt", "opts=novalue"], "expected NAME=VALUE"),
        (["--opt", "cmd='unclosed"], "option cmd="),
        (["--opt", "cmd=no-such-program x.js"], "no-such-program not found"),
    ]:
        r = harness("run", "--backend", "process", *opts, "-t", "1", "--store", str(store))
        assert r.returncode == 2 and says in r.stderr, (opts, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
