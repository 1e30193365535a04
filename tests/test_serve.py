"""``harness serve``: the store browser over a store of run directories; read-only, and nothing
outside the store is ever served, whatever the path (``..``, encoded, absolute, symlinks)."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports.serve import ServeError, make_server

from .conftest import HARNESS, ROOT, harness
from .test_report import Hist, _config, _write_run, invalid_history, valid_history

SECRET = "secret outside the store"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    s = tmp_path / "store"
    _write_run(s / "redis-mutex-partition" / "20240101T000000.000001", valid_history(), _config())
    _write_run(
        s / "unsafe-redis-mutex-none" / "20240102T000000.000001",
        invalid_history(),
        _config("unsafe-redis", nemesis=[], started_at="2024-05-02T12:00:00+00:00"),
    )
    (s / "latest").symlink_to("unsafe-redis-mutex-none/20240102T000000.000001")
    (s / "comparison.html").write_text("<html><body>grid</body></html>")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (s / "escape").symlink_to(outside)  # a symlink out of the store
    (s / "escape.txt").symlink_to(outside / "secret.txt")
    run = s / "redis-mutex-partition" / "20240101T000000.000001"
    (run / "leak.txt").symlink_to(outside / "secret.txt")  # inside a run dir, for the zip
    return s


@pytest.fixture
def server(store: Path) -> Iterator[int]:
    srv = make_server(store, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path)  # sent as is: http.client does not normalise ".."
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body, dict(r.getheaders())


def test_index_lists_runs_and_pages_with_filters(server: int) -> None:
    status, body, headers = get(server, "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "redis-mutex-partition/20240101T000000.000001" in page
    assert "unsafe-redis-mutex-none/20240102T000000.000001" in page
    assert page.count('class="run-row"') == 2  # store/latest is not listed twice
    assert 'href="/files/comparison.html"' in page
    assert '<span class="badge invalid">invalid</span>' in page
    _, body, _ = get(server, "/?verdict=valid&backend=redis")
    page = body.decode()
    assert page.count('class="run-row"') == 1 and "unsafe-redis-mutex-none/" not in page
    _, body, _ = get(server, "/?nemesis=none")
    assert "unsafe-redis-mutex-none/" in body.decode() and body.decode().count("run-row") == 1


def test_reports_and_files_are_served(server: int, store: Path) -> None:
    status, body, _ = get(server, "/files/latest/report.html")
    assert status == 200 and b'class="banner invalid"' in body
    status, body, headers = get(server, "/files/comparison.html")
    assert status == 200 and b"grid" in body
    status, body, _ = get(
        server, "/files/redis-mutex-partition/20240101T000000.000001/results.json"
    )
    assert status == 200 and json.loads(body)["valid"] is True
    status, _, headers = get(server, "/files/latest/report.html", "HEAD")
    assert status == 200 and int(headers["Content-Length"]) > 1000


@pytest.mark.parametrize(
    "path",
    [
        "/files/../outside/secret.txt",
        "/files/%2e%2e/outside/secret.txt",
        "/files/latest/../../outside/secret.txt",
        "/files/latest/%2E%2E/%2E%2E/outside/secret.txt",
        "/files//etc/passwd",
        "/files/%2Fetc%2Fpasswd",
        "/files/..%5C..%5Coutside%5Csecret.txt",
        "/files/escape/secret.txt",  # a directory symlink out of the store
        "/files/escape.txt",  # a file symlink out of the store
        "/files/redis-mutex-partition/20240101T000000.000001/leak.txt",
        "/files/nope.html",
        "/files/latest%00/report.html",
        "/zip/..",
        "/zip/escape",
        "/zip/",
        "/../outside/secret.txt",
    ],
)
def test_nothing_outside_the_store(server: int, path: str) -> None:
    status, body, _ = get(server, path)
    assert status in (400, 404), (path, status)
    assert SECRET.encode() not in body


def test_zip_of_a_run_holds_its_files_but_no_symlink(server: int) -> None:
    run = "redis-mutex-partition/20240101T000000.000001"
    status, body, headers = get(server, f"/zip/{run}")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert (
        'filename="redis-mutex-partition_20240101T000000.000001.zip"'
        in headers["Content-Disposition"]
    )
    z = zipfile.ZipFile(io.BytesIO(body))
    names = set(z.namelist())
    base = "20240101T000000.000001/"
    assert {base + n for n in ("config.json", "history.jsonl", "results.json")} <= names
    assert base + "leak.txt" not in names
    assert all(SECRET.encode() not in z.read(n) for n in names)


def test_read_only(server: int, store: Path) -> None:
    before = sorted(p.name for p in store.rglob("*"))
    for method in ("POST", "PUT", "DELETE"):
        status, _, _ = get(server, "/files/comparison.html", method)
        assert status == 405
    assert sorted(p.name for p in store.rglob("*")) == before


def test_refuses_a_non_loopback_host_and_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(ServeError, match="not a loopback address"):
        make_server(tmp_path, "0.0.0.0", 0)
    with pytest.raises(ServeError, match="not a directory"):
        make_server(tmp_path / "nope", "127.0.0.1", 0)
    p = harness("serve", "--store", str(tmp_path), "--host", "10.1.2.3")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "loopback" in p.stderr
    busy = make_server(tmp_path, "127.0.0.1", 0)
    try:
        port = str(busy.server_address[1])
        p = harness("serve", "--store", str(tmp_path), "--port", port)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in p.stderr
    finally:
        busy.server_close()


def test_serve_command_starts_and_stops(tmp_path: Path) -> None:
    h = Hist()
    h.hold(0, "k", 10, 20, 1)
    _write_run(tmp_path / "redis-mutex-none" / "20240101T000000.000001", h, _config(nemesis=[]))
    proc = subprocess.Popen(
        [*HARNESS, "serve", "--store", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        line = proc.stdout.readline()  # "serving STORE on http://127.0.0.1:PORT/"
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        port = int(line.rsplit(":", 1)[1].strip(" /\n"))
        status, body, _ = get(port, "/")
        assert status == 200 and b"redis-mutex-none/20240101T000000.000001" in body
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0


def test_ctrl_c_stops_serve_even_when_its_parent_ignores_sigint(tmp_path: Path) -> None:
    """A background job of a non-interactive shell (``harness serve &`` in a script, CI) starts
    with SIGINT ignored, and Python then installs no KeyboardInterrupt handler: serve installs
    its own, so Ctrl-C (SIGINT) still stops it."""
    proc = subprocess.Popen(
        [*HARNESS, "serve", "--store", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},  # the first line unwrapped, however long the path
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    try:
        assert "http://127.0.0.1:" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)  # at once: Ctrl-C is handled from the URL on
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert out.strip() == "stopped" and "interrupted" not in err, (out, err)
