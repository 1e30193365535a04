"""The proxy server's command line and the client's handling of bad input and dead servers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.runtime.base import free_port
from harness.toxiproxy import ToxiproxyClient, ToxiproxyError


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.org"])
def test_refuses_to_listen_off_loopback(host: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "harness.toxiproxy", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.0/8" in lines[0] and host in lines[0]
    assert "Traceback" not in r.stderr


def test_client_reports_an_unreachable_server() -> None:
    client = ToxiproxyClient(f"http://127.0.0.1:{free_port('127.0.0.1')}", timeout=1.0)
    with pytest.raises(ToxiproxyError) as e:
        client.version()
    assert e.value.status == 0 and "did not answer" in str(e.value)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8474", "http://"])
def test_client_rejects_a_bad_url(url: str) -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        ToxiproxyClient(url)
