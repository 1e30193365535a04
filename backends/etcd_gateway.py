"""A tiny client for etcd's v3 JSON gateway (grpc-gateway over HTTP/1.1), stdlib only.

One kept-alive connection per client; a connection that timed out or broke is dropped, because
a late answer to the old request could otherwise be read as the answer to the next one.

Failover, as etcd's own clients do (clientv3's balancer): a client knows every member's endpoint
and sends to one (its first, so clients spread over the members) until that one fails, then to
the next. A request whose connection could not be made never went out, so it is tried at once
on the next endpoint (each endpoint once a call). A request that failed after it went out (a
timeout, a broken connection) has an unknown outcome and is never repeated here: the error goes
to the caller, which decides what it means, and the next request goes to the next endpoint. So
is one the member answered "unavailable" (no leader, a request timed out in raft): it cannot
serve now. Which member serves a request changes nothing of what etcd promises: every member
forwards writes to the leader and serves linearizable reads.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Sequence
from typing import Any

NOT_FOUND = 5  # gRPC status code etcd uses for "requested lease not found"
UNAVAILABLE = 14  # gRPC status code of "etcdserver: no leader", "request timed out"


class EtcdError(Exception):
    """The server answered with an error status (its gRPC code and message)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"etcd error {code}: {message}")
        self.code = code
        self.message = message


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class Gateway:
    def __init__(self, host: str, port: int, *, fallbacks: Sequence[tuple[str, int]] = ()) -> None:
        """A client of the member at ``host:port``, failing over to ``fallbacks`` in turn."""
        self.endpoints: list[tuple[str, int]] = [(host, port), *fallbacks]
        self.current = 0  # index in endpoints of the member requests go to
        self._conn: http.client.HTTPConnection | None = None

    @property
    def host(self) -> str:
        return self.endpoints[self.current][0]

    @property
    def port(self) -> int:
        return self.endpoints[self.current][1]

    def call(
        self, path: str, body: dict[str, Any], timeout: float, *, waits: bool = False
    ) -> dict[str, Any]:
        """POST ``body`` to ``path``; return the decoded answer or raise EtcdError.

        A connection that cannot be made moves on to the next endpoint at once (nothing was
        sent); when none can be made, the last error propagates. Socket errors and timeouts
        after the request went out propagate (outcome unknown) after dropping the connection
        and moving on for the next request; ``waits``: the request blocks by design (a lock
        call waiting for its turn), so its timeout says nothing against the member.
        """
        for tried in range(len(self.endpoints)):
            try:
                conn = self._connection(timeout)
            except OSError:
                self.fail_over()
                if tried == len(self.endpoints) - 1:
                    raise
                continue
            return self._request(conn, path, body, waits)
        raise AssertionError("unreachable: the last endpoint's error is raised")

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        """The open connection to the current endpoint, made now if there is none (an
        ``OSError`` from here means nothing was sent)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn = self._conn
        conn.timeout = timeout
        if conn.sock is None:
            try:
                conn.connect()
            except BaseException:
                self.reset()
                raise
        else:
            conn.sock.settimeout(timeout)
        return conn

    def _request(
        self, conn: http.client.HTTPConnection, path: str, body: dict[str, Any], waits: bool
    ) -> dict[str, Any]:
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        except BaseException as e:
            self.reset()
            # not Ctrl-C, nor the end of a wait: this member failed us
            if isinstance(e, Exception) and not (waits and isinstance(e, TimeoutError)):
                self.fail_over()
            raise
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            self.reset()
            raise EtcdError(None, f"unreadable answer from {path}: {raw[:200]!r}") from e
        if "result" in data and isinstance(data["result"], dict):  # streaming endpoints
            data = data["result"]
        err = data.get("error")
        if resp.status != 200 or err:
            if isinstance(err, dict):  # stream error shape: {"error": {"grpc_code": ...}}
                e = EtcdError(err.get("grpc_code"), str(err.get("message")))
            else:
                e = EtcdError(data.get("code"), str(data.get("message") or err or resp.reason))
            if e.code == UNAVAILABLE:
                self.fail_over()
            raise e
        return data

    def fail_over(self) -> None:
        """Send the next request to the next endpoint (a single one stays where it is)."""
        if len(self.endpoints) > 1:
            self.reset()
            self.current = (self.current + 1) % len(self.endpoints)

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
