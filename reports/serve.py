"""``harness serve``: a small read-only web server over the store, like Jepsen's store browser.

The index lists stored runs (verdict, backend, workload, nemesis) with filters, and the other
pages found in the store (comparisons, campaigns); ``/files/PATH`` serves a file of the store,
``/zip/RUN`` a run directory as a zip. Nothing outside the store is ever served: a path with
``..``, an absolute path, or a symlink that leads out of the store is refused (404), and only
GET and HEAD are answered. Bound to 127.0.0.1 unless told otherwise (and only to a loopback
address).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from backends.errors import LockHarnessError

from .render import env
from .view import nemesis_label, verdict

RUN_FILES = ("config.json", "history.jsonl", "results.json")
MAX_PAGES = 500  # other pages listed on the index
MAX_WALK = 20_000  # directory entries looked at for them
FILTERS = ("backend", "workload", "nemesis", "verdict")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "text/plain; charset=utf-8",
    ".edn": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".css": "text/css",
}


class ServeError(LockHarnessError, ValueError):
    """A bad option for the server (one line for the user)."""


def check_host(host: str) -> str:
    """Only loopback addresses: the store's histories and server logs stay on this machine."""
    name = "127.0.0.1" if host == "localhost" else host
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        raise ServeError(f"--host {host!r} is not an IP address (use 127.0.0.1 or ::1)") from None
    if not ip.is_loopback:
        raise ServeError(
            f"--host {host} is not a loopback address: serve binds to 127.0.0.0/8 or ::1"
        )
    return name


@dataclass
class Run:
    rel: str  # path inside the store, with '/'
    name: str
    backend: str
    workload: str
    nemesis: str
    verdict: str
    summary: str
    started: str
    has_report: bool  # report.html exists; else the server renders one on request


# Where run directories lie in a store (harness.run.store.RUN_PATTERNS; reports do not import the
# harness): its own runs, and a campaign's under runs/<cell>/<repetition>/.
RUN_PATTERNS = ("*/*", "runs/*/*/*/*")


class Store:
    """The store's runs and pages, read on each request (results cached by mtime)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._cache: dict[Path, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def inside(self, rel: str) -> Path | None:
        """The real path of ``rel`` if it lies inside the store, else None (never raises)."""
        if "\x00" in rel or rel.startswith(("/", "\\")):
            return None
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if any(p == ".." or "\\" in p for p in parts):
            return None
        try:
            real = self.root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if real != self.root and not real.is_relative_to(self.root):
            return None  # a symlink that leads out of the store
        return real

    def _json(self, path: Path) -> dict[str, Any]:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return {}
        with self._lock:
            got = self._cache.get(path)
        if got is not None and got[0] == mtime:
            return got[1]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        # only what the index shows: a results.json can hold megabytes of holds
        small = {k: data.get(k) for k in ("valid", "summary", "backend", "workload", "nemesis")}
        small["started_at"] = data.get("started_at")
        with self._lock:
            self._cache[path] = (mtime, small)
        return small

    def report(self, rel: str) -> bytes | None:
        """The report of a run that has no report.html, rendered without writing it."""
        d = self.inside(rel)
        if d is None or not d.is_dir() or not any((d / n).is_file() for n in RUN_FILES):
            return None
        from checkers import history

        from .render import _read_json, render_html

        notes: list[str] = []
        config = _read_json(d / "config.json", notes)
        results = _read_json(d / "results.json", notes)
        ops = history.read(d / "history.jsonl").ops if (d / "history.jsonl").is_file() else []
        return render_html(config, results, ops, notes=notes, run_dir=d).encode()

    def runs(self) -> list[Run]:
        out = []
        for d in sorted(self._run_dirs(), reverse=True):
            cfg = self._json(d / "config.json")
            res = self._json(d / "results.json")
            rel = d.relative_to(self.root).as_posix()
            out.append(
                Run(
                    rel=rel,
                    name=rel,
                    backend=str(cfg.get("backend") or "?"),
                    workload=str(cfg.get("workload") or "?"),
                    nemesis=nemesis_label(cfg),
                    verdict=verdict(res) if res.get("summary") is not None else "unknown",
                    summary=str(res.get("summary") or "not checked (no results.json)")[:300],
                    started=str(cfg.get("started_at") or "")[:19].replace("T", " "),
                    has_report=(d / "report.html").is_file(),
                )
            )
        out.sort(key=lambda r: (r.started, r.rel), reverse=True)
        return out

    def _run_dirs(self) -> list[Path]:
        found = set()
        for name in RUN_FILES:
            for p in (q for pattern in RUN_PATTERNS for q in self.root.glob(f"{pattern}/{name}")):
                d = p.parent
                if not d.is_symlink() and not d.parent.is_symlink():  # store/latest is a link
                    found.add(d)
        return list(found)

    def pages(self) -> list[str]:
        """HTML pages of the store that are not run reports: comparisons, campaigns."""
        out: list[str] = []
        seen = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            seen += len(dirnames) + len(filenames)
            here = Path(dirpath)
            if any(n in filenames for n in RUN_FILES):
                dirnames[:] = []  # a run directory: its report is listed with the runs
                continue
            dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink())
            for f in sorted(filenames):
                if f.endswith(".html"):
                    out.append((here / f).relative_to(self.root).as_posix())
            if seen > MAX_WALK or len(out) >= MAX_PAGES:
                break
        return out[:MAX_PAGES]


def index_html(store: Store, query: dict[str, list[str]]) -> str:
    runs = store.runs()
    chosen = {k: (query.get(k) or [""])[0] for k in FILTERS}
    options = {k: sorted({getattr(r, k) for r in runs}) for k in FILTERS}
    shown = [r for r in runs if all(not v or getattr(r, k) == v for k, v in chosen.items())]
    counts = {v: sum(r.verdict == v for r in shown) for v in ("valid", "invalid", "unknown")}
    return (
        env()
        .get_template("store.html")
        .render(
            root=str(store.root),
            runs=shown,
            total=len(runs),
            counts=counts,
            chosen=chosen,
            options=options,
            pages=store.pages(),
            href=lambda rel: "/files/" + quote(rel),
            zip_href=lambda rel: "/zip/" + quote(rel),
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    )


def zip_run(run: Path, out: Any) -> None:
    """The regular files of a run directory; symlinks are not followed (one could lead out)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, _dirs, filenames in os.walk(run, followlinks=False):
            here = Path(dirpath)
            for f in sorted(filenames):
                p = here / f
                if p.is_symlink() or not p.is_file():
                    continue
                try:
                    z.write(p, Path(run.name) / p.relative_to(run))
                except OSError:
                    continue  # a server's socket or a file that vanished meanwhile


class Handler(BaseHTTPRequestHandler):
    store: Store  # set on the subclass made by make_server
    server_version = "lockharness"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: the terminal shows the URL only

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)

    def _refuse(self) -> None:
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def _answer(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path in ("/", "/index.html"):
            body = index_html(self.store, parse_qs(url.query)).encode()
            return self._send(body, "text/html; charset=utf-8", head)
        if path.startswith("/files/"):
            rel = path[len("/files/") :]
            real = self.store.inside(rel)
            if real is None and rel.endswith("/report.html"):
                body = self.store.report(rel[: -len("/report.html")])
                if body is not None:  # rendered in memory: the store is never written
                    return self._send(body, "text/html; charset=utf-8", head)
            if real is None or not real.is_file():
                return self.send_error(HTTPStatus.NOT_FOUND, "no such file in the store")
            ctype = TYPES.get(real.suffix, "application/octet-stream")
            try:
                body = real.read_bytes()
            except OSError:
                return self.send_error(HTTPStatus.NOT_FOUND, "unreadable")
            return self._send(body, ctype, head)
        if path.startswith("/zip/"):
            real = self.store.inside(path[len("/zip/") :].rstrip("/"))
            if real is None or not real.is_dir() or real == self.store.root:
                return self.send_error(HTTPStatus.NOT_FOUND, "no such run directory in the store")
            if not any((real / n).is_file() for n in RUN_FILES):
                return self.send_error(HTTPStatus.NOT_FOUND, "not a run directory")
            with tempfile.SpooledTemporaryFile(max_size=32 << 20) as tmp:
                zip_run(real, tmp)
                size = tmp.tell()
                tmp.seek(0)
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(size))
                name = real.relative_to(self.store.root).as_posix().replace("/", "_")
                self.send_header("Content-Disposition", f'attachment; filename="{name}.zip"')
                self.end_headers()
                if not head:
                    while chunk := tmp.read(1 << 20):
                        self.wfile.write(chunk)
            return None
        self.send_error(HTTPStatus.NOT_FOUND, "no such page")

    def _send(self, body: bytes, ctype: str, head: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    import socket

    address_family = socket.AF_INET6


def make_server(store: Path, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """A server over ``store`` (not started: call serve_forever). Port 0 picks a free port."""
    root = Path(store)
    if not root.is_dir():
        raise ServeError(f"{store} is not a directory (give the store with --store DIR)")
    host = check_host(host)
    handler = type("StoreHandler", (Handler,), {"store": Store(root)})
    cls = _Server6 if ":" in host else _Server
    try:
        return cls((host, port), handler)
    except OSError as e:
        raise ServeError(
            f"cannot listen on {host} port {port}: {e.strerror or e} (give another --port; "
            "0 picks a free one)"
        ) from None
