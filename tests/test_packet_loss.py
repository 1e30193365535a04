"""The packet-loss nemesis against a real redis-server in a private namespace: it drops what it
says (all of it at probability 1, in the direction asked), its rules go on stop and on teardown,
the host never sees them, and bad options are one line with exit 2."""

from __future__ import annotations

import random
import subprocess

import pytest
import redis

from backends.registry import make
from harness.nemesis import NemesisEnv, nemesis_class
from harness.nemesis.packet_loss import CHAIN
from harness.net import netns
from harness.run.config import run_config
from harness.runtime import LocalRuntime

from .conftest import harness

ROOT_ONLY = pytest.mark.skipif(
    not netns.available()[0], reason="needs root on Linux (private network namespace, iptables)"
)


def _ping(host: str, port: int) -> bool:
    try:
        return redis.Redis(
            host=host, port=port, socket_timeout=1, socket_connect_timeout=1, retry=None
        ).ping()
    except redis.RedisError:
        return False


def _chain_exists() -> bool:
    p = subprocess.run(["iptables", "-w", "5", "-S", CHAIN], capture_output=True, timeout=15)
    return p.returncode == 0


@ROOT_ONLY
def test_drops_in_the_direction_asked_and_removes_its_rules(redis_bin, tmp_path):
    with netns.private_netns():
        with LocalRuntime(tmp_path) as rt:
            c = rt.start("redis", 1)
            n = c.nodes[0]
            env = NemesisEnv(
                run_config(backend="redis", nemesis_interval=1.0),
                make("redis"),
                c,
                random.Random(1),
            )
            assert _ping(n.host, n.port)
            for direction in ("in", "out", "both"):
                nem = nemesis_class("packet-loss")(
                    env, {"probability": "1", "direction": direction, "link": "clients"}
                )
                v = nem.start()
                assert v["nodes"] == ["n1"] and v["direction"] == direction
                assert _chain_exists()
                assert not _ping(n.host, n.port), direction  # every packet that way is lost
                assert nem.stop() == {"healed": True}
                assert not _chain_exists()
                assert _ping(n.host, n.port)
            # teardown on any exit path: mid-fault, then again (idempotent)
            nem = nemesis_class("packet-loss")(env, {"probability": "1"})
            nem.start()
            nem.teardown()
            nem.teardown()
            assert not _chain_exists() and _ping(n.host, n.port)
            assert nem.stop() is None
    host_rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    assert CHAIN not in host_rules


@pytest.mark.parametrize(
    "opt, says",
    [
        ("direction=sideways", "direction='sideways' is not accepted: give both, in, out"),
        ("probability=0", "probability='0' is not accepted"),
        ("link=peers", "link='peers' is not accepted: give all, clients"),
        ("target=n9", "target 'n9' is not a node of this run"),
    ],
)
def test_bad_options_are_one_line(opt, says):
    p = harness(
        "run", "-b", "redis", "-n", "packet-loss", "--nemesis-opt", opt, "--time-limit", "1"
    )
    assert p.returncode == 2, p.stderr
    assert says in p.stderr and "Traceback" not in p.stderr


def test_refused_outside_the_private_namespace():
    """Its rules would land on the host's loopback: refused before anything starts."""
    p = harness("run", "-b", "redis", "-n", "packet-loss", "--netns", "off", "--time-limit", "10")
    assert p.returncode == 2 and "needs the run's private network namespace" in p.stderr
    assert "Traceback" not in p.stderr
