"""``harness adapter check -- CMD...``: a conformance run of a process adapter against real
servers (docs/adapter-protocol.md), telling its author exactly which message was wrong.

Two adapter processes (clients 0 and 1) are driven through a fixed script on a fresh server:
connect, mutual exclusion (the second client must be refused, ``fail``, while the first holds),
release and a grant after it, renew and still_held where declared, increasing fences where
declared, a lease that runs out where the expiry is ``ttl``, an unknown op, close. Each step
prints what was sent and, when wrong, the reply and the rule it broke. Exit 0: conforming;
1: something was wrong; 2: bad input (no command, a command that cannot start).
"""

from __future__ import annotations

import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from backends.base import Capabilities, Endpoint
from backends.process import (
    PROTOCOL,
    AdapterProcess,
    ProtocolError,
    check_reply,
    parse_adapter_opts,
    parse_capabilities,
    parse_servers,
)

from .app import main
from .errors import UserError, friendly
from .output import say

TTL_MS = 5000  # the holds of the script: longer than any step
SHORT_TTL_MS = 600  # the lease that must run out
REPLY_S = 5.0  # a reply's deadline beyond an acquire's wait


class Wrong(Exception):
    """A step's reply broke the protocol: the message says which and how."""


@dataclass
class Findings:
    steps: int = 0
    wrong: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Client:
    """One adapter process in the script, named for the messages it is told about."""

    def __init__(self, argv: list[str], n: int, f: Findings) -> None:
        self.n, self.f = n, f
        self.proc = AdapterProcess(argv, worker=False)
        self.caps: Capabilities | None = None

    def ask(self, msg: dict[str, Any], timeout_s: float = REPLY_S) -> dict[str, Any]:
        self.f.steps += 1
        where = f"step {self.f.steps} (client {self.n} sent {_line(msg)})"
        try:
            raw = self.proc.request(msg, timeout_s)
        except ProtocolError as e:
            raise Wrong(f"{where}: {e}") from None
        try:
            reply = check_reply(msg["op"], raw, self.caps)
        except ProtocolError as e:
            raise Wrong(f"{where}: got {_line(raw)}: {e}") from None
        if msg["op"] == "connect" and reply["type"] == "ok":
            self.caps = parse_capabilities(reply["capabilities"])
        self.last = where
        return reply

    def expect(self, msg: dict[str, Any], want: str, why: str, timeout_s: float = REPLY_S) -> dict:
        reply = self.ask(msg, timeout_s)
        if reply["type"] != want:
            raise Wrong(f"{self.last}: got {_line(reply)}: expected {want}: {why}")
        return reply

    def close(self) -> None:
        self.proc.stop(say_close=False)


def _line(v: object) -> str:
    import json

    text = json.dumps(v)
    return text if len(text) <= 160 else text[:157] + "..."


def conformance(argv: list[str], endpoints: list[Endpoint], opts: dict[str, Any]) -> Findings:
    """Drive two adapter processes through the script; what was wrong, and notes."""
    f = Findings()
    a = b = None
    eps = [{"name": e.name, "host": e.host, "port": e.port} for e in endpoints]

    def connect(c: Client, n: int) -> None:
        msg = {"op": "connect", "protocol": PROTOCOL, "client": n, "endpoints": eps,
               "ttl_ms": TTL_MS, "wait_ms": 0, "opts": opts}  # fmt: skip
        c.expect(msg, "ok", "the servers are up and reachable", timeout_s=15.0)

    try:
        a, b = Client(argv, 0, f), Client(argv, 1, f)
        connect(a, 0)
        connect(b, 1)
        caps = a.caps
        assert caps is not None and b.caps is not None
        if b.caps != caps:
            raise Wrong(f"{b.last}: capabilities differ between two connects: {caps} / {b.caps}")
        say(f"capabilities: {_line(caps.to_json())}")

        def acq(c: Client, key: str, ttl: int, wait: int, want: str, why: str) -> dict:
            msg = {"op": "acquire", "key": key, "ttl_ms": ttl, "wait_ms": wait}
            return c.expect(msg, want, why, timeout_s=wait / 1000 + REPLY_S)

        def rel(c: Client, key: str, want: str, why: str) -> dict:
            return c.expect({"op": "release", "key": key}, want, why)

        k = "adapter-check-1"
        acq(a, k, TTL_MS, 0, "ok", "the key is free")
        t = time.monotonic()
        acq(b, k, TTL_MS, 300, "fail",
            "client 0 holds the key on healthy servers: the lock must refuse, and a refusal "
            "the servers gave is certain (fail, not info)")  # fmt: skip
        if time.monotonic() - t < 0.25:
            f.notes.append(f"{b.last}: refused before its 300 ms wait ran out (did it wait?)")
        if caps.renew:
            a.expect({"op": "renew", "key": k, "ttl_ms": TTL_MS}, "ok", "client 0 holds it")
        if caps.still_held:
            r = a.expect({"op": "still_held", "key": k}, "ok", "a question has an answer")
            if r["held"] is not True:
                raise Wrong(f"{a.last}: got {_line(r)}: client 0 still holds the key")
        rel(a, k, "ok", "client 0 holds the key")
        acq(b, k, TTL_MS, 2000, "ok", "client 0 released the key")
        rel(b, k, "ok", "client 1 holds the key")

        if caps.fenced:
            k2 = "adapter-check-2"
            f1 = acq(a, k2, TTL_MS, 0, "ok", "the key is free")["fence"]
            rel(a, k2, "ok", "client 0 holds the key")
            f2 = acq(b, k2, TTL_MS, 2000, "ok", "client 0 released the key")["fence"]
            if not f2 > f1:
                raise Wrong(f"{b.last}: fence {f2} after {f1}: fences must increase per key")
            rel(b, k2, "ok", "client 1 holds the key")

        if caps.expiry == "ttl":
            k3 = "adapter-check-3"
            acq(a, k3, SHORT_TTL_MS, 0, "ok", "the key is free")
            time.sleep(SHORT_TTL_MS / 1000 * 1.5)
            acq(b, k3, TTL_MS, 3000, "ok",
                f"client 0's {SHORT_TTL_MS} ms lease ran out (declared expiry ttl)")  # fmt: skip
            r = a.ask({"op": "release", "key": k3})
            if r["type"] == "ok":
                f.notes.append(
                    f"{a.last}: a release of a lease that ran out and went to client 1 "
                    "answered ok: allowed where the library cannot tell, but fail lets the "
                    "report say the holder learnt it had lost the lock"
                )
            rel(b, k3, "ok", "client 1 holds the key")

        r = a.ask({"op": "no-such-op"})
        if r["type"] == "ok":
            raise Wrong(f"{a.last}: got {_line(r)}: an unknown op must be answered fail")
        for c in (a, b):
            c.expect({"op": "close"}, "ok", "close is always answered ok")
            try:
                c.proc.proc.wait(timeout=3)
            except Exception:
                raise Wrong(f"{c.last}: the adapter did not exit within 3 s of close") from None
    except Wrong as e:
        f.wrong.append(str(e))
    finally:
        for c in (a, b):
            if c is not None:
                c.close()
    return f


@main.group()
def adapter() -> None:
    """Process adapters: a lock library in any language (docs/adapter-protocol.md)."""


@adapter.command("check", context_settings={"ignore_unknown_options": True})
@click.option(
    "--servers",
    default="redis:1",
    show_default=True,
    metavar="KIND:COUNT",
    help="The servers the adapter needs, started fresh for the check.",
)
@click.option(
    "--opt",
    "opts",
    multiple=True,
    metavar="NAME=VALUE",
    help="An option sent to the adapter in connect's opts (repeatable).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly
def adapter_check(servers: str, opts: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Run the adapter protocol's conformance script against real servers: two adapter
    processes, mutual exclusion, release, renew and still_held where declared, fences, a
    lease that runs out, close. Says which message was wrong.

    \b
    Examples:
      harness adapter check -- node adapters/node/redis-semaphore.js
      harness adapter check --servers redis:5 -- node adapters/node/redlock.js
    """  # fmt: skip
    from ..runtime.kinds import server_kind
    from ..runtime.local import LocalRuntime

    argv = list(command)
    need = parse_servers(servers)
    adapter_opts = parse_adapter_opts(",".join(opts))
    server_kind(need.kind, need.options)  # an unknown kind: one line before anything starts
    try:
        AdapterProcess(argv, worker=False).stop(
            say_close=False
        )  # a command that cannot start: exit 2
    except Exception as e:
        raise UserError(str(e)) from e
    with tempfile.TemporaryDirectory(prefix="lockharness-adapter-check-") as d:
        with LocalRuntime(Path(d)) as rt:
            cluster = rt.start(need.kind, need.nodes, need.options)
            eps = [Endpoint(n.name, n.host, n.port) for n in cluster.nodes]
            say(f"adapter {shlex.join(argv)} against {need.kind} x{need.nodes}")
            f = conformance(argv, eps, adapter_opts)
    for note in f.notes:
        say(("note:", "yellow"), f" {note}")
    if f.wrong:
        for w in f.wrong:
            say(("WRONG:", "red"), f" {w}")
        raise SystemExit(1)
    say(("conforms:", "green"), f" {f.steps} messages answered as the protocol says")
