"""A thin client for the Toxiproxy HTTP API (a real Toxiproxy or the embedded server).

Why not toxiproxy-python (installed; last release 2019): it keeps host and port in class
attributes shared by every instance (two servers cannot be driven at once), sets no timeouts (a
paused server hangs the harness), has no call to update a toxic, returns nothing from
``add_toxic``, and lets HTTP 500 through as a response whose JSON then fails with KeyError. So
this client uses the stdlib ``http.client`` with a timeout on every request and raises
``ToxiproxyError(status, message)`` on every non-2xx answer; it has no dependencies.
A new connection per request keeps it safe to share between threads.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote, urlsplit

from backends.errors import LockHarnessError


class ToxiproxyError(LockHarnessError):
    """A non-2xx answer (``status``) or no answer at all (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"toxiproxy: {message} (HTTP {status})" if status else message)
        self.status = status
        self.message = message


class ToxiproxyClient:
    def __init__(self, url: str = "http://127.0.0.1:8474", timeout: float = 5.0) -> None:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"toxiproxy URL must look like http://host:port, got {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 8474
        self.timeout = timeout

    # -- server ----------------------------------------------------------------------------

    def version(self) -> str:
        v = self._call("GET", "/version")
        return v["version"] if isinstance(v, dict) else str(v)

    def reset(self) -> None:
        self._call("POST", "/reset")

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("POST", "/populate", proxies)["proxies"] or []

    # -- proxies ---------------------------------------------------------------------------

    def proxies(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/proxies")

    def create_proxy(
        self, name: str, listen: str, upstream: str, enabled: bool = True
    ) -> dict[str, Any]:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return self._call("POST", "/proxies", body)

    def get_proxy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/proxies/{_q(name)}")

    def update_proxy(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", f"/proxies/{_q(name)}", fields)

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{_q(name)}")

    def enable(self, name: str) -> dict[str, Any]:
        return self.update_proxy(name, enabled=True)

    def disable(self, name: str) -> dict[str, Any]:
        return self.update_proxy(name, enabled=False)

    # -- toxics ----------------------------------------------------------------------------

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/proxies/{_q(proxy)}/toxics")

    def add_toxic(
        self,
        proxy: str,
        type: str,
        attributes: dict[str, Any] | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes or {},
        }
        if name is not None:
            body["name"] = name
        return self._call("POST", f"/proxies/{_q(proxy)}/toxics", body)

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: dict[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"attributes": attributes or {}}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return self._call("POST", f"/proxies/{_q(proxy)}/toxics/{_q(name)}", body)

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{_q(proxy)}/toxics/{_q(name)}")

    # -- transport -------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request; returns (status, decoded JSON or None). Raises only when unreachable."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ToxiproxyError(0, f"toxiproxy at {self.url} did not answer: {e}") from None
        finally:
            conn.close()
        try:
            decoded = json.loads(raw) if raw.strip() else None
        except ValueError:
            decoded = raw.decode(errors="replace").strip()
        return resp.status, decoded

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        status, decoded = self.request(method, path, body)
        if not 200 <= status < 300:
            if isinstance(decoded, dict) and "error" in decoded:
                message = str(decoded["error"])
            else:
                message = str(decoded or http.client.responses.get(status, "error"))
            raise ToxiproxyError(status, f"{method} {path}: {message}")
        return decoded


def _q(name: str) -> str:
    return quote(name, safe="")
