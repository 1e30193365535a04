"""A lock library in any language, as a process speaking JSON lines (docs/adapter-protocol.md).

Maelstrom's shape: each client worker starts the adapter command as its own child and sends it
one JSON object per line on stdin, reading one back on stdout per request: ``connect`` (the
endpoints, the run's TTL and wait, the adapter's options), then ``acquire``, ``release``, and
where the adapter declares them ``renew`` and ``still_held``, and ``close``. A reply is
``{"type": "ok" | "fail" | "info", ...}``: ``ok`` took effect, ``fail`` certainly did not
(``LockFailed``), ``info`` unknown. The harness keeps its side honest the same way: a reply that
does not come within its timeout, a malformed one, or an adapter that exits is ``info`` (the
client is dropped, its process retired, and the child ended by pid), never a hung run.

The adapter declares its capabilities (``fenced``, ``expiry``, ``renew``, ``still_held``) in its
connect reply. The lock model is fixed before any server starts, so the backend declares them
too (a thin entry point such as ``node-redlock`` on its class, the generic ``process`` backend
by ``--opt expiry=... --opt fenced=...``); ``setup`` connects once when the servers are up and
refuses, in one line, an adapter whose declaration contradicts the backend's.

Fence token: whatever the adapter returns as ``fence`` (an int where it declares ``fenced``).
Guarantees claimed and faults known to break it: the library's own.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from .base import (
    MAX_MS,
    Backend,
    Capabilities,
    ClientParams,
    Endpoint,
    Expiry,
    Lease,
    LockClient,
    NotAcquired,
    NotOwner,
    ServerNeed,
)
from .errors import LockHarnessError
from .option_values import Option

PROTOCOL = 1
EXPIRIES: tuple[Expiry, ...] = ("ttl", "none", "hidden", "unknown")
MAX_LINE = 1 << 20  # bytes: a reply longer than this is a broken adapter, not a big answer
CLOSE_GRACE_S = 1.0  # how long a closed adapter gets to exit before it is killed
# The TTL and wait of setup's one probing connect (no client acquires through it).
PROBE = ClientParams(ttl_ms=10_000, wait_ms=0)
ADAPTERS = Path(__file__).resolve().parent.parent / "adapters"  # the adapters this repo ships

_PR_SET_PDEATHSIG = 1


class ProtocolError(Exception):
    """The adapter broke the protocol (no reply in time, a malformed one, it exited): the
    outcome of what was asked is unknown."""


class OutcomeUnknown(Exception):
    """The adapter answered ``info``: it cannot tell whether the operation took effect."""


class AdapterSetupError(LockHarnessError):
    """The adapter cannot serve this run (its command, its declaration): one line, exit 2."""


# -- the messages ---------------------------------------------------------------------------


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_capabilities(raw: object) -> Capabilities:
    """The ``capabilities`` of a connect reply, typed; ProtocolError naming the wrong field."""
    if not isinstance(raw, dict):
        raise ProtocolError(f"connect reply: 'capabilities' must be an object, got {_show(raw)}")
    for k in ("fenced", "renew", "still_held"):
        if not isinstance(raw.get(k), bool):
            raise ProtocolError(
                f"connect reply: capabilities.{k} must be true or false, got {_show(raw.get(k))}"
            )
    expiry = raw.get("expiry")
    if expiry not in EXPIRIES:
        raise ProtocolError(
            f"connect reply: capabilities.expiry must be one of {', '.join(EXPIRIES)}, "
            f"got {_show(expiry)}"
        )
    return Capabilities(
        fenced=raw["fenced"], expiry=expiry, renew=raw["renew"], still_held=raw["still_held"]
    )


def check_reply(op: str, reply: object, caps: Capabilities | None = None) -> dict[str, Any]:
    """A reply as the protocol says it must be, or ProtocolError saying exactly what is wrong
    (shared with ``harness adapter check``)."""
    if not isinstance(reply, dict):
        raise ProtocolError(f"{op} reply: must be a JSON object, got {_show(reply)}")
    t = reply.get("type")
    if t not in ("ok", "fail", "info"):
        raise ProtocolError(f'{op} reply: \'type\' must be "ok", "fail" or "info", got {_show(t)}')
    if t != "ok":
        if not isinstance(reply.get("error"), str) or not reply["error"]:
            raise ProtocolError(f"{op} reply: a {t} reply must carry 'error', a non-empty string")
        return reply
    if op == "connect":
        parse_capabilities(reply.get("capabilities"))
    elif op == "acquire":
        if "fence" not in reply:
            raise ProtocolError("acquire reply: an ok reply must carry 'fence' (null when none)")
        fence = reply["fence"]
        if caps is not None and caps.fenced and not _is_int(fence):
            raise ProtocolError(
                f"acquire reply: 'fence' must be an integer (the adapter declared fenced), "
                f"got {_show(fence)}"
            )
        if caps is not None and not caps.fenced and fence is not None:
            raise ProtocolError(
                f"acquire reply: 'fence' must be null (the adapter declared fenced false), "
                f"got {_show(fence)}"
            )
    elif op == "still_held":
        if not isinstance(reply.get("held"), bool):
            raise ProtocolError(
                f"still_held reply: 'held' must be true or false, got {_show(reply.get('held'))}"
            )
    return reply


def _show(v: object) -> str:
    text = json.dumps(v) if not isinstance(v, bytes) else repr(v)
    return text if len(text) <= 120 else text[:117] + "..."


# -- one adapter process --------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the worker dies, however it dies (SIGKILL
    included), so no adapter outlives its client. (harness/runtime/lifeline.py does the same
    for servers; backends import nothing of the harness.)"""
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class AdapterProcess:
    """The adapter command as a child of this process: one request, one reply, each with a
    deadline. Ended by its pid on every path (``stop``)."""

    def __init__(self, argv: list[str], cwd: str | None = None, worker: bool = True) -> None:
        """``worker``: started from a single-threaded client worker, so a ``preexec_fn`` (the
        parent-death signal) is safe; from the harness process (threads), none: the adapter
        then ends at EOF on its stdin when its parent dies."""
        self.argv = argv
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # read back to explain a failure
        parent = os.getpid()

        def pre() -> None:
            _die_with_parent()
            if os.getppid() != parent:  # the worker died before the prctl took effect
                os._exit(1)

        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                cwd=cwd,
                preexec_fn=pre if worker else None,  # noqa: PLW1509 - single-threaded
            )
        except OSError as e:
            self.stderr.close()
            raise AdapterSetupError(f"cannot start adapter {shlex.join(argv)}: {e}") from e
        self.pid = self.proc.pid
        self._buf = b""
        self.broken = False

    def request(self, msg: Mapping[str, Any], timeout_s: float) -> object:
        """Send one message and read one line back, parsed; ProtocolError when no complete line
        came within ``timeout_s``, it was not JSON, or the adapter exited."""
        op = msg.get("op")
        if self.broken:
            raise ProtocolError(f"{op}: the adapter is no longer usable")
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(msg).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError) as e:
            self.broken = True
            raise ProtocolError(
                f"{op}: the adapter stopped reading ({e}){self._exit_note()}"
            ) from None
        line = self._read_line(str(op), timeout_s)
        try:
            return json.loads(line)
        except ValueError:
            self.broken = True
            raise ProtocolError(
                f"{op} reply: not a JSON line: {_show(line.decode(errors='replace'))}"
            ) from None

    def _read_line(self, op: str, timeout_s: float) -> bytes:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout_s
        late = False
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                if late:
                    self.broken = True
                    raise ProtocolError(f"{op}: no reply within {timeout_s * 1000:.0f} ms")
                # One last short look: after a pause (SIGSTOP of the client and its adapter)
                # the deadline passed while both were stopped, and the reply may be on its way.
                late, left = True, 0.2
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.broken = True
                raise ProtocolError(f"{op}: the adapter closed its stdout{self._exit_note()}")
            self._buf += chunk
            if len(self._buf) > MAX_LINE and b"\n" not in self._buf:
                self.broken = True
                raise ProtocolError(f"{op} reply: longer than {MAX_LINE} bytes")
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _exit_note(self) -> str:
        try:
            code = self.proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            return ""
        tail = self.stderr_tail()
        return f"; it exited with code {code}" + (f": {tail}" if tail else "")

    def stderr_tail(self, limit: int = 300) -> str:
        """The end of what the adapter wrote on stderr, on one line."""
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - limit))
            text = self.stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""
        return " | ".join(s.strip() for s in text.strip().splitlines()[-3:] if s.strip())

    def stop(self, say_close: bool = True) -> None:
        """Ask it to close (unless broken), give it a moment, then end it by its pid."""
        if self.proc.poll() is None and say_close and not self.broken:
            try:
                self.request({"op": "close"}, CLOSE_GRACE_S)
            except ProtocolError:
                pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=CLOSE_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # by its pid; SIGKILL also ends a stopped child
            self.proc.wait()
        self.stderr.close()


# -- the lock client over it -----------------------------------------------------------------


@dataclass
class Timeouts:
    connect_ms: int  # a connect's reply
    reply_ms: int  # any other reply, beyond an acquire's wait


class ProcessClient(LockClient):
    """One logical client: its adapter process, connected."""

    def __init__(
        self,
        argv: list[str],
        endpoints: list[Endpoint],
        client_id: int,
        params: ClientParams,
        opts: Mapping[str, Any],
        timeouts: Timeouts,
        declared: Capabilities | None,
        worker: bool = True,
    ) -> None:
        self.timeouts = timeouts
        self.adapter = AdapterProcess(argv, worker=worker)
        try:
            reply = self._ask(
                {
                    "op": "connect",
                    "protocol": PROTOCOL,
                    "client": client_id,
                    "endpoints": [
                        {"name": e.name, "host": e.host, "port": e.port} for e in endpoints
                    ],
                    "ttl_ms": params.ttl_ms,
                    "wait_ms": params.wait_ms,
                    "opts": dict(opts),
                },
                timeouts.connect_ms,
            )
            if reply["type"] != "ok":  # nothing held yet: a refused connect is a failed one
                raise ConnectionError(f"adapter connect {reply['type']}: {reply['error']}")
            self.caps = parse_capabilities(reply["capabilities"])
            self.library = reply.get("library")
            if declared is not None:
                contradiction(declared, self.caps)  # raises
        except BaseException:
            self.adapter.stop(say_close=False)
            raise

    def _ask(self, msg: dict[str, Any], timeout_ms: float) -> dict[str, Any]:
        op = msg["op"]
        caps = getattr(self, "caps", None)
        try:
            return check_reply(op, self.adapter.request(msg, timeout_ms / 1000), caps)
        except ProtocolError:
            self.adapter.broken = True
            raise

    def _outcome(self, reply: dict[str, Any], refused: type[Exception]) -> dict[str, Any]:
        if reply["type"] == "fail":
            raise refused(reply["error"])
        if reply["type"] == "info":
            raise OutcomeUnknown(reply["error"])
        return reply

    def acquire(self, key: str, ttl_ms: int, wait_ms: int) -> Lease:
        msg = {"op": "acquire", "key": key, "ttl_ms": ttl_ms, "wait_ms": wait_ms}
        reply = self._outcome(self._ask(msg, wait_ms + self.timeouts.reply_ms), NotAcquired)
        fence = reply.get("fence")
        return Lease(key, key, fence if _is_int(fence) else None, validity_ms=ttl_ms)

    def release(self, lease: Lease) -> None:
        msg = {"op": "release", "key": lease.key}
        self._outcome(self._ask(msg, self.timeouts.reply_ms), NotOwner)

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        if not self.caps.renew:
            raise NotImplementedError("the adapter declares no renew")
        msg = {"op": "renew", "key": lease.key, "ttl_ms": ttl_ms}
        self._outcome(self._ask(msg, self.timeouts.reply_ms), NotOwner)

    def still_held(self, lease: Lease) -> bool:
        """Does the library say it still holds ``lease``? (``still_held`` capability.)"""
        if not self.caps.still_held:
            raise NotImplementedError("the adapter declares no still_held")
        reply = self._ask({"op": "still_held", "key": lease.key}, self.timeouts.reply_ms)
        return bool(self._outcome(reply, NotOwner)["held"])

    def close(self) -> None:
        self.adapter.stop()


def contradiction(declared: Capabilities, said: Capabilities) -> None:
    """AdapterSetupError when the adapter's connect reply contradicts what the backend declared
    (the lock model was fixed from the declaration). An ``unknown`` expiry declared is judged
    as strictly as any, so it accepts what the adapter says."""
    wrong = []
    if said.fenced != declared.fenced:
        wrong.append(f"fenced={str(said.fenced).lower()}")
    if declared.expiry != "unknown" and said.expiry != declared.expiry:
        wrong.append(f"expiry={said.expiry}")
    if wrong:
        raise AdapterSetupError(
            f"the adapter declares {', '.join(wrong)} in its connect reply, but the backend "
            f"declared fenced={str(declared.fenced).lower()}, expiry={declared.expiry}: "
            f"give --opt {' --opt '.join(wrong)}"
        )


def parse_servers(text: str) -> ServerNeed:
    """``redis:5`` -> ServerNeed("redis", 5); ValueError in one line."""
    kind, _, count = text.partition(":")
    try:
        nodes = int(count) if count else 1
    except ValueError:
        nodes = -1
    if not kind or not 1 <= nodes <= 15:
        raise ValueError(f"option servers={text!r}: expected KIND:COUNT, e.g. redis:5 (1-15)")
    return ServerNeed(kind, nodes)


def parse_adapter_opts(text: str) -> dict[str, str]:
    """``a=1,b=x`` -> {"a": "1", "b": "x"}: the options sent to the adapter in ``connect``."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, eq, v = part.partition("=")
        if not eq or not k:
            raise ValueError(f"option opts={text!r}: expected NAME=VALUE,NAME=VALUE")
        out[k] = v
    return out


class ProcessBackend(Backend):
    """A lock library behind a process adapter: ``--opt cmd="node adapters/node/redlock.js"``."""

    name = "process"
    description = "any language's lock library through a process adapter (JSON lines)"
    fence = "the adapter's"
    options: ClassVar[Mapping[str, Option | str]] = {
        "cmd": Option("", "the adapter command, e.g. node adapters/node/redlock.js"),
        "servers": Option("redis:1", "the servers it needs, KIND:COUNT"),
        "opts": Option("", "options sent to the adapter at connect, NAME=VALUE,..."),
        "expiry": Option("unknown", "how a grant ends on its own", choices=EXPIRIES),
        "fenced": Option(False, "the adapter returns fence tokens"),
        "reply_timeout_ms": Option(
            5000, "how long a reply may take (past an acquire's wait)", lo=1, hi=MAX_MS
        ),
        "connect_timeout_ms": Option(10_000, "how long a connect may take", lo=1, hi=MAX_MS),
        "persistence": Option(
            "always", "redis servers' fsync policy", choices=("off", "everysec", "always")
        ),
    }
    #: A thin entry point's adapter script under adapters/ (None: the ``cmd`` option).
    script: ClassVar[str | None] = None

    def __init__(self, opts: Mapping[str, Any] | None = None) -> None:
        super().__init__(opts)
        # Listing backends makes one with no options at all (None): only a run needs a command.
        self.argv = self._argv(required=opts is not None)
        self.need = self._need()
        self.fenced = self._fenced()  # the instance's declaration (generic code reads it)
        self.timeouts = Timeouts(
            self.values.get("connect_timeout_ms", 10_000), self.values.get("reply_timeout_ms", 5000)
        )
        self.adapter_opts()  # a malformed opts= is refused here, before anything starts
        if opts is not None and (why := self.missing()):  # a run: refused before servers start
            raise ValueError(f"backend {self.name}: {why}")

    def _argv(self, required: bool) -> list[str]:
        if self.script is not None:
            return ["node", str(ADAPTERS / self.script)]
        cmd = self.values["cmd"]
        try:
            argv = shlex.split(cmd)
        except ValueError as e:
            raise ValueError(f"option cmd={cmd!r}: {e}") from e
        if not argv and required:
            raise ValueError('backend process needs --opt cmd="COMMAND ARGS..." (the adapter)')
        return argv

    def _need(self) -> ServerNeed:
        need = parse_servers(self.values["servers"])
        if need.kind == "redis":
            need.options["persistence"] = self.values["persistence"]
        return need

    def _fenced(self) -> bool:
        return bool(self.values["fenced"])

    def missing(self) -> str | None:
        if not self.argv:
            return None
        if shutil.which(self.argv[0]) is None:
            return f"{self.argv[0]} not found (the adapter's command)"
        if self.script is not None and not (ADAPTERS / "node" / "node_modules").is_dir():
            return "adapters/node's npm packages are not installed: run ./setup.sh"
        return None

    def adapter_opts(self) -> dict[str, Any]:
        """What ``connect`` sends as ``opts``."""
        return parse_adapter_opts(self.values["opts"])

    def expiry(self) -> Expiry:
        return self.values["expiry"]

    def capabilities(self) -> Capabilities:
        return Capabilities(fenced=self.fenced, expiry=self.expiry(), renew=self.renews)

    def servers(self) -> ServerNeed:
        return self.need

    def setup(self, endpoints: list[Endpoint]) -> None:
        """Connect once, in the harness, before any client: refuse an adapter that cannot start,
        cannot connect, or declares other capabilities than the backend (one line)."""
        try:
            c = ProcessClient(
                self.argv,
                endpoints,
                -1,
                PROBE,
                self.adapter_opts(),
                self.timeouts,
                self.capabilities(),
                worker=False,
            )
        except (ProtocolError, ConnectionError) as e:
            raise AdapterSetupError(f"adapter {shlex.join(self.argv)}: {e}") from e
        c.close()

    def client(self, endpoints: list[Endpoint], client_id: int) -> LockClient:
        return self.connect(endpoints, client_id, ClientParams())

    def connect(
        self, endpoints: list[Endpoint], client_id: int, params: ClientParams
    ) -> LockClient:
        return ProcessClient(
            self.argv,
            endpoints,
            client_id,
            params,
            self.adapter_opts(),
            self.timeouts,
            self.capabilities(),
        )
