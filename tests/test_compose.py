"""docker-compose.yml is valid for Debian's docker-compose, and publishes on loopback only."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .conftest import ROOT


def _config() -> subprocess.CompletedProcess:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose not installed (Debian package docker-compose; ./setup.sh)")
    return subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_compose_file_is_valid() -> None:
    p = _config()
    assert p.returncode == 0, p.stderr
    services = set(re.findall(r"^  ([a-z0-9]+):$", p.stdout.split("services:\n", 1)[1], re.M))
    assert {"redis1", "etcd1", "etcd2", "etcd3", "postgres", "toxiproxy"} <= services, services


def test_compose_publishes_on_loopback_only() -> None:
    p = _config()
    ports = re.findall(r"^    - (\S+/tcp)$", p.stdout, re.M)
    assert ports and all(x.startswith("127.0.0.1:") for x in ports), ports
