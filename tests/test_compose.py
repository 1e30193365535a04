"""docker-compose.yml on a real engine, and ``--runtime compose`` targeting its project.

The file is validated with Debian's ``docker-compose config``; then the project is brought up
(``docker-compose up -d``) in a private dockerd that lives in a network namespace the test made
(host networking there: no bridge, no private-range address, no host iptables), with the
registry-free images ``harness images build`` makes (LH_REDIS_IMAGE, LH_ETCD_IMAGE, and
LH_TOXIPROXY_IMAGE: the real toxiproxy-server from ../shared), and real runs target it: a clean
run under kill and pause is VALID, a known-breaking fault is INVALID, partitions go through the
project's own Toxiproxy, and the project is left as found (same containers, all running, none
paused, no proxy left).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from harness.run import run_test
from harness.run.config import run_config

from .conftest import ROOT, harness

PROJECT = "lhcompose"
SERVICES = [
    "redis1",
    "redis2",
    "redis3",
    "redis4",
    "redis5",
    "etcd1",
    "etcd2",
    "etcd3",
    "toxiproxy",
]
TOXIPROXY = "http://127.0.0.1:8474"  # the project's real Toxiproxy, in the engine's namespace


def _compose() -> str:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose not installed (Debian package docker-compose; ./setup.sh)")
    return compose


def _config() -> subprocess.CompletedProcess:
    return subprocess.run(
        [_compose(), "-f", str(ROOT / "docker-compose.yml"), "config"],
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


def test_compose_listens_on_loopback_only_and_durably() -> None:
    text = _config().stdout
    services = re.split(r"^  (?=[a-z0-9]+:$)", text.split("services:\n", 1)[1], flags=re.M)[1:]
    assert len(services) >= 15
    for s in services:
        name = s.split(":", 1)[0]
        assert "network_mode: host" in s, name  # no bridge network, nothing published
        assert "ports:" not in s, name
        addresses = re.findall(r"\b(\d+\.\d+\.\d+\.\d+)\b", s)
        assert addresses and all(a.startswith("127.") for a in addresses), (name, addresses)
    assert "fsync=off" not in text and "appendfsync\n    - always" in text


@pytest.fixture(scope="module")
def project() -> Iterator[Any]:
    """A private engine with the compose project up (redis1-5, etcd1-3, toxiproxy), brought
    down after."""
    from harness.containers import engine as eng
    from harness.containers import images

    compose = _compose()
    ok, why = eng.available()
    if not ok:
        pytest.skip(f"no private Docker engine here: {why} (./setup.sh installs docker.io)")
    for k in ("redis", "etcd"):
        images.build(k)
    e = eng.PrivateEngine().start()
    env = {
        **os.environ,
        "DOCKER_HOST": e.url,
        "LH_REDIS_IMAGE": images.tag_for("redis"),
        "LH_ETCD_IMAGE": images.tag_for("etcd"),
    }
    argv = [compose, "-f", str(ROOT / "docker-compose.yml"), "-p", PROJECT]
    try:
        for k in ("redis", "etcd"):
            images.ensure(e.client, images.tag_for(k), pull=False)
        services = list(SERVICES)
        e.no_toxiproxy = None  # why the project has no real Toxiproxy (its test skips, saying so)
        try:
            env["LH_TOXIPROXY_IMAGE"] = images.toxiproxy_image(e.client)
        except images.ImageError as why:
            e.no_toxiproxy = str(why)
            services.remove("toxiproxy")
        up = subprocess.run(
            [*argv, "up", "-d", *services], env=env, capture_output=True, text=True, timeout=180
        )
        assert up.returncode == 0, up.stderr
        e.services = services
        yield e
    finally:
        subprocess.run(
            [*argv, "down", "-t", "5"], env=env, capture_output=True, text=True, timeout=180
        )
        e.close()


def _state(engine: Any) -> dict[str, tuple[str, str]]:
    """service -> (container id, status): what "left as found" compares."""
    return {
        c.labels["com.docker.compose.service"]: (c.id, c.status)
        for c in engine.client.containers.list(all=True)
    }


def _cfg(engine: Any, store, **kw: Any):
    base = dict(
        runtime="compose",
        compose_project=PROJECT,
        docker_host=engine.url,
        docker_netns=engine.netns,
        store=store,
        keys=1,
        concurrency=3,
        render_report=False,
        seed=5,
    )
    return run_config(**(base | kw))


def test_a_run_under_kill_and_pause_on_the_project_is_valid_and_leaves_it_as_found(
    project, tmp_path
) -> None:
    before = _state(project)
    assert sorted(before) == sorted(project.services)
    assert {status for _, status in before.values()} == {"running"}
    res = run_test(
        _cfg(
            project,
            tmp_path,
            backend="redlock",
            nemesis=["kill", "pause"],
            time_limit=6,
            nemesis_interval=1.0,
            ttl_ms=3000,
            hold_ms=50,
        )
    )
    assert res.valid is True and res.exit_code == 0, res.results["summary"]
    faults = res.results["faults"]
    assert faults["kill"]["injected"] >= 1 and faults["pause"]["injected"] >= 1, faults
    config = json.loads((res.run_dir / "config.json").read_text())
    rows = [s for s in config["servers"] if s["kind"] == "redis"]
    assert [s["compose_service"] for s in rows] == [
        "redis1",
        "redis2",
        "redis3",
        "redis4",
        "redis5",
    ]
    assert all(s["version"] and s["image"] == "lockharness/redis:bookworm" for s in rows), rows
    assert all("compose project" in s["durability"] for s in rows)
    assert config["docker"]["compose_project"] == PROJECT
    assert _state(project) == before  # same containers, running, none paused, none made


def test_a_known_breaking_fault_on_the_project_is_invalid(project, tmp_path) -> None:
    res = run_test(  # a holder frozen past its lease
        _cfg(
            project,
            tmp_path,
            backend="redis",
            nemesis=["client-pause"],
            time_limit=4,
            nemesis_interval=1.0,
            nemesis_opts={"pause_ms": "2200"},
            ttl_ms=1000,
            hold_ms=250,
            wait_ms=2000,
        )
    )
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    kinds = {v["kind"] for v in res.results["checkers"]["mutex"]["violations"]}
    assert kinds & {"overlap", "revoked-while-held"}, kinds


def _etcd_partitions(project: Any, tmp_path, **kw: Any) -> Any:
    """An etcd run under partitions on the project: VALID, with client<->node cuts only (its
    containers have no per-node uids), and the project left as found."""
    before = _state(project)
    res = run_test(
        _cfg(
            project,
            tmp_path,
            backend="etcd",
            nemesis=["partition"],
            time_limit=5,
            nemesis_interval=1.0,
            **kw,
        )
    )
    assert res.valid is True and res.exit_code == 0, res.results["summary"]
    assert res.results["faults"]["partition"]["injected"] >= 1
    lines = (res.run_dir / "history.jsonl").read_text().splitlines()
    cuts = [
        op["value"]
        for op in map(json.loads, lines)
        if op["f"] == "start-partition" and op["type"] == "info"
    ]
    assert cuts and all(c["node_cuts"] == [] for c in cuts), cuts
    assert any(c["client_cuts"] for c in cuts), cuts
    assert _state(project) == before
    return res


def test_etcd_partitions_cut_client_links_on_the_project(project, tmp_path) -> None:
    _etcd_partitions(project, tmp_path)


def test_partitions_through_the_projects_own_toxiproxy(project, tmp_path) -> None:
    from harness.net import netns
    from harness.toxiproxy.client import ToxiproxyClient

    if project.no_toxiproxy:
        pytest.skip(f"no real Toxiproxy for the project: {project.no_toxiproxy}")

    res = _etcd_partitions(project, tmp_path, toxiproxy=TOXIPROXY)
    config = json.loads((res.run_dir / "config.json").read_text())
    assert config["toxiproxy"] == TOXIPROXY
    with netns.joined(project.netns):
        client = ToxiproxyClient(TOXIPROXY)
        assert client.version().startswith("2.12")  # the real one, not the embedded
        assert client.proxies() == {}  # the run's proxies are gone


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--compose-project", "nosuch"], "no such project"),
        (["--nemesis", "clock"], "needs the clock shim"),
        (["--nemesis", "kill", "--nemesis-opt", "wipe=true"], "wipe=true"),
        (["--image", "redis=redis:7"], "--image needs --runtime docker"),
        (["--backend", "mysql-lease"], "server kind mariadb has no compose service"),
    ],
)
def test_what_a_compose_project_cannot_do_is_one_line_and_exit_2(
    project, tmp_path, args, said
) -> None:
    base = ["run", "--runtime", "compose", "--compose-project", PROJECT, "--backend", "redis"]
    base += [
        "--docker-host",
        project.url,
        "--docker-netns",
        project.netns,
        "-t",
        "2",
        "--nemesis-interval",
        "1",
    ]
    p = harness(*base, *args, "--store", str(tmp_path))
    assert p.returncode == 2, p.stdout + p.stderr
    assert said in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not list(tmp_path.iterdir())  # refused before anything was stored
