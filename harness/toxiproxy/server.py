"""An embedded, Toxiproxy-API-compatible TCP proxy server (asyncio, stdlib only).

The HTTP API follows Toxiproxy 2.x (``api.go``): the same routes, JSON shapes, status codes and
error body ``{"error": "...", "status": N}``. HTTP/1.1 is parsed by hand; connections are kept
alive unless the client asks to close. Every address (the API's, each proxy's listen address
and its upstream) must be on 127.0.0.0/8: this server never talks to anything else.

Differences from Toxiproxy, on purpose (the README lists them all): a missing ``listen`` means
``127.0.0.1:0`` (Toxiproxy would listen on all interfaces); negative attributes and toxicity
outside 0..1 are refused; every error, 404 and 405 included, has a JSON body.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any
from urllib.parse import unquote, urlsplit

from .links import Connection, client_protocol
from .toxics import STREAMS, Toxic, ToxicError, toxic_from_json, updated_toxic

VERSION = "2.12.0-lockharness"
MAX_BODY = 1 << 20
# Toxiproxy's HTTP server: ReadTimeout 15 s (a request's head and body), IdleTimeout 60 s.
READ_TIMEOUT = 15.0
IDLE_TIMEOUT = 60.0
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.IPv4Address(host) in ipaddress.IPv4Network("127.0.0.0/8")
    except ValueError:
        return False


def parse_addr(value: Any, what: str, allow_zero: bool) -> tuple[str, int]:
    """``host:port`` on 127.0.0.0/8, or ApiError 400 saying what is accepted."""
    accepted = f"{what} must be 'host:port' with host on 127.0.0.0/8 or localhost"
    if not isinstance(value, str) or ":" not in value:
        raise ApiError(400, f"{accepted}, got {value!r}")
    host, _, port_s = value.rpartition(":")
    if not loopback_host(host):
        raise ApiError(400, f"{accepted}, got {value!r}")
    try:
        port = int(port_s)
    except ValueError:
        raise ApiError(400, f"{accepted}, got {value!r} (bad port)") from None
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ApiError(400, f"{accepted}, got {value!r} (port out of range)")
    return ("127.0.0.1" if host == "localhost" else host), port


class Proxy:
    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.conns: set[Connection] = set()
        self.server: asyncio.Server | None = None

    def upstream_addr(self) -> tuple[str, int]:
        return parse_addr(self.upstream, "upstream", allow_zero=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxic_list()],
        }

    def toxic_list(self) -> list[Toxic]:
        """As Toxiproxy lists them: the upstream chain, then the downstream one."""
        return [t for d in STREAMS for t in self.toxics.values() if t.direction == d]

    async def start(self) -> None:
        if self.server is not None:
            return
        host, port = parse_addr(self.listen, "listen", allow_zero=True)
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(
                lambda: client_protocol(self), host, port, reuse_address=True
            )
        except OSError as e:
            raise ApiError(500, f"listen {self.listen}: {e.strerror or e}") from None
        real_port = self.server.sockets[0].getsockname()[1]
        self.listen = f"{host}:{real_port}"  # port 0 resolved, as Toxiproxy shows it
        self.enabled = True

    def stop(self) -> None:
        """Stop listening and close every live connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for conn in list(self.conns):
            conn.close()
        self.enabled = False

    # -- toxics, applied to live connections too ---------------------------------------------

    def add_toxic(self, toxic: Toxic) -> None:
        self.toxics[toxic.name] = toxic
        for conn in list(self.conns):
            if conn.up is not None and toxic.applies():
                conn.link(toxic.direction).install(toxic)

    def remove_toxic(self, name: str) -> None:
        toxic = self.toxics.pop(name)
        for conn in list(self.conns):
            if conn.up is not None:
                conn.link(toxic.direction).uninstall(name)

    def update_toxic(self, toxic: Toxic) -> None:
        self.toxics[toxic.name] = toxic
        for conn in list(self.conns):
            if conn.up is None:
                continue
            link = conn.link(toxic.direction)
            had = any(i.toxic.name == toxic.name for i in link.toxics)
            if had and toxic.applies():
                link.replace(toxic)
            elif had:
                link.uninstall(toxic.name, hook=False)
            elif toxic.applies():
                link.install(toxic)


class ProxyServer:
    """The proxies and the HTTP API that manages them."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()
        self.http: asyncio.Server | None = None

    async def listen(self, host: str, port: int) -> int:
        self.http = await asyncio.start_server(self._serve_http, host, port, reuse_address=True)
        return self.http.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        for p in self.proxies.values():
            p.stop()

    # -- HTTP ------------------------------------------------------------------------------

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
                if not line.strip():
                    break
                request = await asyncio.wait_for(_read_request(line, reader), READ_TIMEOUT)
                if isinstance(request, ApiError):
                    await _respond(writer, request.status, _error_body(request))
                    break
                method, target, headers, body, keep = request
                if headers.get("user-agent", "").startswith("Mozilla/"):
                    # As Toxiproxy: a web page must not drive the proxies through a browser.
                    status, payload = 403, {"error": "User agent not allowed", "status": 403}
                else:
                    status, payload = await self.dispatch(method, target, body)
                await _respond(writer, status, payload, keep)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, TimeoutError):
            pass  # client went away, sent an over-long line, or sat idle: drop the connection
        finally:
            writer.close()

    async def dispatch(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        try:
            async with self.lock:
                return await self._route(method, split_path(target), body)
        except ApiError as e:
            return e.status, _error_body(e)
        except ToxicError as e:
            return e.status, {"error": str(e), "status": e.status}
        except Exception as e:  # a bug here must not take the whole proxy down
            return 500, {"error": f"{type(e).__name__}: {e}", "status": 500}

    async def _route(self, method: str, parts: list[str], body: bytes) -> tuple[int, Any]:
        n = len(parts)
        if parts == ["version"]:
            _allow(method, "GET")
            return 200, {"version": VERSION}
        if parts == ["reset"]:
            _allow(method, "POST")
            return await self.reset()
        if parts == ["populate"]:
            _allow(method, "POST")
            return await self.populate(_json(body))
        if parts == ["proxies"]:
            _allow(method, "GET", "POST")
            if method == "GET":
                # Toxiproxy marshals a Go map: the names come sorted.
                return 200, {name: self.proxies[name].to_json() for name in sorted(self.proxies)}
            return await self.create_proxy(_json(body))
        if n >= 2 and parts[0] == "proxies":
            proxy = self.proxies.get(parts[1])
            if n == 2:
                _allow(method, "GET", "POST", "PATCH", "DELETE")
                proxy = _found(proxy, "proxy not found")
                if method == "GET":
                    return 200, proxy.to_json()
                if method == "DELETE":
                    proxy.stop()
                    del self.proxies[proxy.name]
                    return 204, None
                return await self.update_proxy(proxy, _json(body))
            if n == 3 and parts[2] == "toxics":
                _allow(method, "GET", "POST")
                proxy = _found(proxy, "proxy not found")
                if method == "GET":
                    return 200, [t.to_json() for t in proxy.toxic_list()]
                toxic = toxic_from_json(_json(body), proxy.toxics)
                proxy.add_toxic(toxic)
                return 200, toxic.to_json()
            if n == 4 and parts[2] == "toxics":
                _allow(method, "GET", "POST", "PATCH", "DELETE")
                proxy = _found(proxy, "proxy not found")
                toxic = _found(proxy.toxics.get(parts[3]), "toxic not found")
                if method == "GET":
                    return 200, toxic.to_json()
                if method == "DELETE":
                    proxy.remove_toxic(toxic.name)
                    return 204, None
                new = updated_toxic(toxic, _json(body))
                proxy.update_toxic(new)
                return 200, new.to_json()
        raise ApiError(404, "404 page not found")

    # -- operations --------------------------------------------------------------------------

    async def create_proxy(self, body: Any) -> tuple[int, Any]:
        name, listen, upstream, enabled = _proxy_fields(body)
        if name in self.proxies:
            raise ApiError(409, "proxy already exists")
        proxy = Proxy(name, listen, upstream)
        if enabled:
            await proxy.start()
        self.proxies[name] = proxy
        return 201, proxy.to_json()

    async def update_proxy(self, proxy: Proxy, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "bad request body: expected a JSON object")
        listen = body.get("listen", proxy.listen)
        upstream = body.get("upstream", proxy.upstream)
        enabled = body.get("enabled", proxy.enabled)
        host, port = parse_addr(listen, "listen", allow_zero=True)
        parse_addr(upstream, "upstream", allow_zero=False)
        if not isinstance(enabled, bool):
            raise ApiError(400, "bad request body: enabled must be true or false")
        # As Toxiproxy: the listen address is compared resolved ("localhost:N" = "127.0.0.1:N").
        if f"{host}:{port}" != proxy.listen or upstream != proxy.upstream:
            proxy.stop()
            proxy.listen, proxy.upstream = listen, upstream
        if enabled:
            await proxy.start()
        else:
            proxy.stop()
        return 200, proxy.to_json()

    async def reset(self) -> tuple[int, Any]:
        for proxy in self.proxies.values():
            for name in list(proxy.toxics):
                proxy.remove_toxic(name)
            await proxy.start()
        return 204, None

    async def populate(self, body: Any) -> tuple[int, Any]:
        """Create or replace the proxies listed, in order, as Toxiproxy does: a proxy whose
        listen and upstream are unchanged is kept (with its toxics and connections); a name
        listed twice is replaced by its second entry. Every answer carries ``proxies`` (the
        ones done so far; ``null`` when none, as Toxiproxy's Go nil slice)."""
        if not isinstance(body, list):
            raise _PopulateError(400, "bad request body: expected a JSON list of proxies", [])
        try:
            wanted = [_proxy_fields(item, f" at proxy {i + 1}") for i, item in enumerate(body)]
        except ApiError as e:
            raise _PopulateError(e.status, e.message, []) from None
        done: list[Proxy] = []
        for name, listen, upstream, enabled in wanted:
            old = self.proxies.get(name)
            host, port = parse_addr(listen, "listen", allow_zero=True)
            if old is not None and old.listen == f"{host}:{port}" and old.upstream == upstream:
                done.append(old)
                continue
            if old is not None:
                old.stop()
                del self.proxies[name]
            proxy = Proxy(name, listen, upstream)
            try:
                if enabled:
                    await proxy.start()
            except ApiError as e:
                raise _PopulateError(e.status, e.message, done) from None
            self.proxies[name] = proxy
            done.append(proxy)
        return 201, {"proxies": [p.to_json() for p in done] or None}


class _PopulateError(ApiError):
    """A failed /populate: the error body also lists the proxies done before it."""

    def __init__(self, status: int, message: str, done: list[Proxy]) -> None:
        super().__init__(status, message)
        self.proxies = [p.to_json() for p in done] or None


def _proxy_fields(body: Any, where: str = "") -> tuple[str, str, str, bool]:
    if not isinstance(body, dict):
        raise ApiError(400, f"bad request body{where}: expected a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, f"missing required field: name{where}")
    upstream = body.get("upstream")
    if not isinstance(upstream, str) or not upstream:
        raise ApiError(400, f"missing required field: upstream{where}")
    listen = body.get("listen") or "127.0.0.1:0"
    enabled = body.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise ApiError(400, f"bad request body{where}: enabled must be true or false")
    parse_addr(listen, "listen", allow_zero=True)
    parse_addr(upstream, "upstream", allow_zero=False)
    return name, listen, upstream, enabled


def split_path(target: str) -> list[str]:
    """The path's segments, decoded. A trailing slash or an empty segment matches no route
    (["", ...]), as in Toxiproxy's router: "/proxies/" is a 404, not the list."""
    path = urlsplit(target).path
    raw = path.split("/")[1:] if path.startswith("/") else [""]
    return [unquote(p) for p in raw] if all(raw) else ["", *raw]


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(405, f"method {method} not allowed; use {' or '.join(allowed)}")


def _found(obj: Any, message: str) -> Any:
    if obj is None:
        raise ApiError(404, message)
    return obj


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"bad request body: {e}") from None


def _error_body(e: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": e.message, "status": e.status}
    if isinstance(e, _PopulateError):
        body["proxies"] = e.proxies
    return body


async def _read_request(
    line: bytes, reader: asyncio.StreamReader
) -> tuple[str, str, dict[str, str], bytes, bool] | ApiError:
    """The rest of one request after its request line: method, target, headers, body and
    whether to keep the connection; or the ApiError to answer before closing it."""
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        return ApiError(400, "bad request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for _ in range(100):
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
        if body is None:
            return ApiError(413, f"request body must be at most {MAX_BODY} bytes")
        return method, target, headers, body, keep
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        length = -1
    if not 0 <= length <= MAX_BODY:
        return ApiError(413, f"Content-Length must be 0..{MAX_BODY}")
    body = await reader.readexactly(length) if length else b""
    return method, target, headers, body, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes | None:
    """A chunked body (RFC 9112 7.1), or None when it grows past MAX_BODY."""
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"x", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields, ignored
            return bytes(body)
        if len(body) + size > MAX_BODY:
            return None
        body += await reader.readexactly(size)
        await reader.readline()  # the CRLF after each chunk


async def _respond(
    writer: asyncio.StreamWriter, status: int, payload: Any, keep: bool = False
) -> None:
    body = b"" if status == 204 else json.dumps(payload).encode() + b"\n"
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    if status != 204:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    head.append("Connection: keep-alive" if keep else "Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
