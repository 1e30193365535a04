"""A tiny client for etcd's v3 JSON gateway (grpc-gateway over HTTP/1.1), stdlib only.

One kept-alive connection per client; a connection that timed out or broke is dropped, because
a late answer to the old request could otherwise be read as the answer to the next one.
"""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any

NOT_FOUND = 5  # gRPC status code etcd uses for "requested lease not found"


class EtcdError(Exception):
    """The server answered with an error status (its gRPC code and message)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"etcd error {code}: {message}")
        self.code = code
        self.message = message


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class Gateway:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._conn: http.client.HTTPConnection | None = None

    def call(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """POST ``body`` to ``path``; return the decoded answer or raise EtcdError.

        Socket errors and timeouts propagate (outcome unknown) after dropping the connection.
        """
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn = self._conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        except BaseException:
            self.reset()
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
                raise EtcdError(err.get("grpc_code"), str(err.get("message")))
            raise EtcdError(data.get("code"), str(data.get("message") or err or resp.reason))
        return data

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
