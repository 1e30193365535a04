"""Each nemesis observed to do what it says against real servers, and healed afterwards."""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest
import redis

from backends.registry import make
from harness.nemesis import NemesisEnv, nemesis_class
from harness.net import netns, topology
from harness.net.firewall import Firewall
from harness.net.proxies import ProxyLinks
from harness.run.config import run_config
from harness.runtime import LocalRuntime
from harness.runtime.toxiproxy_kind import url
from harness.toxiproxy.client import ToxiproxyClient

ROOT_ONLY = pytest.mark.skipif(
    not netns.available()[0], reason="needs root on Linux (private network namespace, iptables)"
)


def _env(cluster, **kw) -> NemesisEnv:
    cfg = run_config(backend="redis", nemesis_interval=1.0)
    kw.setdefault("lease_ms", 1000.0)
    return NemesisEnv(cfg, make("redis"), cluster, random.Random(1), **kw)


def _ping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        return redis.Redis(
            host=host,
            port=port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=None,  # redis-py 8 retries timeouts on fresh connections by default
        ).ping()
    except redis.RedisError:
        return False


def test_kill_refuses_then_recovers(redis_bin, tmp_path):
    with LocalRuntime(tmp_path) as rt:
        c = rt.start("redis", 1)
        n = c.nodes[0]
        nem = nemesis_class("kill")(_env(c), {})
        v = nem.start()
        assert v["node"] == "n1" and not n.alive()
        with pytest.raises(ConnectionRefusedError):
            import socket

            socket.create_connection((n.host, n.port), timeout=1).close()
        v = nem.stop()
        assert v["restarted"] and v["ready"] and _ping(n.host, n.port)


def test_pause_stalls_then_resumes(redis_bin, tmp_path):
    with LocalRuntime(tmp_path) as rt:
        c = rt.start("redis", 1)
        n = c.nodes[0]
        nem = nemesis_class("pause")(_env(c), {})
        nem.start()
        t = time.monotonic()
        assert not _ping(n.host, n.port, timeout=0.5)  # accepted by the kernel, never answered
        assert time.monotonic() - t >= 0.4
        nem.stop()
        assert _ping(n.host, n.port)


def test_clock_bump_expires_a_px_key_early(redis_bin, tmp_path):
    with LocalRuntime(tmp_path, clock=True) as rt:
        c = rt.start("redis", 1)
        n = c.nodes[0]
        r = redis.Redis(host=n.host, port=n.port)
        r.set("k", "v", px=10_000)
        nem = nemesis_class("clock")(_env(c), {"offset_ms": "20000"})
        nem.check()
        nem.start()
        assert r.get("k") is None  # 10 s of TTL gone in an instant
        r.set("k2", "v", px=10_000)
        nem.stop()
        assert r.pttl("k2") > 5000  # back to the real clock: a fresh key keeps its TTL


def test_clock_is_refused_for_go_servers(tmp_path):
    from harness.nemesis import NemesisError
    from harness.runtime.kinds import server_kind

    class FakeCluster:  # only the kind is consulted; no etcd is started for this check
        kind = server_kind("etcd")
        nodes = []

    with pytest.raises(NemesisError, match="Go"):
        nemesis_class("clock")(_env(FakeCluster()), {}).check()


def test_proxy_partition_blackholes_client_link_and_heals(redis_bin, tmp_path):
    with LocalRuntime(tmp_path) as rt:
        c = rt.start("redis", 1)
        px_node = rt.start("toxiproxy", 1, own_uids=False).nodes[0]
        links = ProxyLinks(ToxiproxyClient(url(px_node)), c.nodes, groups=2)
        ep0, ep1 = links.endpoints(0)[0], links.endpoints(1)[0]
        assert _ping(ep0.host, ep0.port) and _ping(ep1.host, ep1.port)
        env = _env(c, proxies=links)
        nem = nemesis_class("partition")(env, {"topology": "halves"})
        v = nem.start()
        assert v["client_cuts"] == ["c1-n1"]  # one node: group 1 is the minority side
        assert _ping(ep0.host, ep0.port)
        t = time.monotonic()
        assert not _ping(ep1.host, ep1.port, timeout=0.5)
        assert time.monotonic() - t >= 0.4  # a black hole, not a refusal
        nem.stop()
        assert _ping(ep1.host, ep1.port)


def test_latency_nemesis_slows_requests(redis_bin, tmp_path):
    with LocalRuntime(tmp_path) as rt:
        c = rt.start("redis", 1)
        px_node = rt.start("toxiproxy", 1, own_uids=False).nodes[0]
        links = ProxyLinks(ToxiproxyClient(url(px_node)), c.nodes, groups=1)
        ep = links.endpoints(0)[0]
        r = redis.Redis(host=ep.host, port=ep.port, socket_timeout=2)
        r.ping()
        nem = nemesis_class("latency")(
            _env(c, proxies=links), {"latency_ms": "150", "jitter_ms": "0"}
        )
        nem.start()
        t = time.monotonic()
        r.ping()
        assert time.monotonic() - t >= 0.14
        nem.stop()
        t = time.monotonic()
        r.ping()
        assert time.monotonic() - t < 0.1


@ROOT_ONLY
def test_iptables_partition_cuts_node_to_node_and_leaves_nothing(redis_bin, tmp_path):
    def reach(uid: int, host: str, port: int) -> bool:
        # a probe running as node A's uid stands for A talking to B
        p = subprocess.run(
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "timeout",
                "0.5",
                "bash",
                "-c",
                f"exec 3<>/dev/tcp/{host}/{port}",
            ],
            capture_output=True,
            timeout=10,
        )
        return p.returncode == 0

    home = netns.current_id()
    with netns.private_netns():
        assert netns.current_id() != home
        with LocalRuntime(tmp_path, node_uids=True) as rt:
            c = rt.start("redis", 3)
            a, b, d = c.nodes
            assert a.uid and b.uid and a.uid != b.uid
            fw = Firewall()
            env = _env(c, firewall=fw, proxies=None)
            reach_map = topology.make(
                "isolate-one", [n.name for n in c.nodes], [], random.Random(0)
            )
            assert topology.cuts(reach_map)
            for x, y in [(a, b), (a, d), (b, d)]:
                assert reach(x.uid, y.host, y.port)
            fw.cut_both(a, b)
            assert not reach(a.uid, b.host, b.port)
            assert not reach(b.uid, a.host, a.port)
            assert reach(a.uid, d.host, d.port) and reach(d.uid, a.host, a.port)
            assert "DROP" in fw.rules()
            fw.heal()
            assert reach(a.uid, b.host, b.port)
            del env
    assert netns.current_id() == home
    host_rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    assert "LOCKHARNESS" not in host_rules


def test_client_pause_freezes_the_holder(redis_bin, tmp_path):
    """In a real run: the paused worker is the one whose status said it held a lock."""
    cfg = run_config(
        backend="redis",
        nemesis=["client-pause"],
        nemesis_interval=1.0,
        time_limit=4,
        ttl_ms=400,
        hold_ms=100,
        concurrency=3,
        keys=1,
        store=tmp_path,
        seed=5,
        render_report=False,
    )
    from checkers.history import read
    from harness.run import run_test

    res = run_test(cfg)
    ops = read(res.run_dir / "history.jsonl").ops
    starts = [o for o in ops if o.f == "start-client-pause" and o.type == "info"]
    assert starts and starts[0].value["signal"] == "SIGSTOP"
    v = starts[0].value
    t0 = starts[0].time
    # SIGCONT is sent between the stop's invoke and its info: the invoke bounds the freeze
    stop = next(o for o in ops if o.f == "stop-client-pause" and o.type == "invoke" and o.time > t0)
    # the frozen process recorded nothing while it was stopped
    frozen = [o for o in ops if o.process == v["process"] and t0 < o.time < stop.time]
    assert frozen == []
    assert stop.time - t0 >= 0.8e9  # 2 x TTL
    assert os.path.exists(res.run_dir / "results.json")


def _proxied(tmp_path, rt, groups=1):
    c = rt.start("redis", 1)
    px_node = rt.start("toxiproxy", 1, own_uids=False).nodes[0]
    links = ProxyLinks(ToxiproxyClient(url(px_node)), c.nodes, groups=groups)
    return c, links, links.endpoints(0)[0]


def test_reset_nemesis_resets_connections(redis_bin, tmp_path):
    with LocalRuntime(tmp_path) as rt:
        c, links, ep = _proxied(tmp_path, rt)
        nem = nemesis_class("reset")(_env(c, proxies=links), {})
        nem.start()
        r = redis.Redis(host=ep.host, port=ep.port, socket_timeout=2, retry=None)
        with pytest.raises(redis.ConnectionError):
            r.ping()
        nem.stop()
        assert _ping(ep.host, ep.port)


def test_slow_nemesis_limits_bandwidth(redis_bin, tmp_path):
    with LocalRuntime(tmp_path) as rt:
        c, links, ep = _proxied(tmp_path, rt)
        r = redis.Redis(host=ep.host, port=ep.port, socket_timeout=10)
        r.set("big", b"x" * 20_000)
        nem = nemesis_class("slow")(_env(c, proxies=links), {"rate_kbs": "20"})
        nem.start()
        t = time.monotonic()
        assert len(r.get("big")) == 20_000
        assert time.monotonic() - t >= 0.5  # 20 KB at 20 KB/s
        nem.stop()


def test_flaky_nemesis_blackholes_a_share_of_connections(redis_bin, tmp_path):
    with LocalRuntime(tmp_path) as rt:
        c, links, ep = _proxied(tmp_path, rt)
        nem = nemesis_class("flaky")(_env(c, proxies=links), {"share": "0.5"})
        nem.start()
        ok = sum(_ping(ep.host, ep.port, timeout=0.2) for _ in range(30))
        nem.stop()
        assert 3 <= ok <= 27, ok  # some connections got through, some were black-holed
        assert _ping(ep.host, ep.port)


def test_one_way_keeps_one_direction_of_each_cut():
    reach = topology.make("isolate-one", ["n1", "n2", "n3"], [], random.Random(3))
    cuts = topology.cuts(reach)
    kept = topology.one_way(cuts, random.Random(3))
    assert len(kept) == len(cuts) // 2
    assert {tuple(sorted(c)) for c in kept} == {tuple(sorted(c)) for c in cuts}


def test_one_way_client_partition_loses_replies_not_requests(redis_bin, tmp_path):
    with LocalRuntime(tmp_path) as rt:
        c = rt.start("redis", 1)
        n = c.nodes[0]
        px_node = rt.start("toxiproxy", 1, own_uids=False).nodes[0]
        links = ProxyLinks(ToxiproxyClient(url(px_node)), c.nodes, groups=2)
        cut = links.endpoints(1)[0]
        nem = nemesis_class("partition")(
            _env(c, proxies=links), {"topology": "halves", "one_way": "true"}
        )
        v = nem.start()
        assert v["client_cuts"] == ["c1-n1 (replies lost)"]
        # RESP2 and no CLIENT SETINFO: the SET is the first thing sent (no handshake to lose)
        r = redis.Redis(
            host=cut.host,
            port=cut.port,
            socket_timeout=0.5,
            retry=None,
            protocol=2,
            driver_info=None,
        )
        with pytest.raises(redis.TimeoutError):
            r.set("sent", "1")  # the request arrives; its reply never comes back
        assert redis.Redis(host=n.host, port=n.port).get("sent") == b"1"
        nem.stop()
        assert _ping(cut.host, cut.port)


def test_clock_strobe_flips_the_offset_and_heals(redis_bin, tmp_path):
    from harness.clock import get_offset

    with LocalRuntime(tmp_path, clock=True) as rt:
        c = rt.start("redis", 1)
        n = c.nodes[0]
        nem = nemesis_class("clock")(_env(c), {"offset_ms": "7000", "strobe_ms": "20"})
        nem.check()
        v = nem.start()
        assert v["strobe_ms"] == 20
        seen = set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and len(seen) < 2:
            seen.add(round(get_offset(n.dir)))
            time.sleep(0.005)
        assert seen == {0, 7}
        r = redis.Redis(host=n.host, port=n.port)
        times: set[int] = set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not {0, 7} <= times:
            sec, usec = r.time()
            times.add(round(sec + usec / 1e6 - time.time()))
        assert {0, 7} <= times  # the server itself saw both clocks
        nem.stop()
        assert get_offset(n.dir) == 0
