"""The harness with Shopify's real Toxiproxy (``real_toxiproxy``, see conftest): a whole run
through it with partition and latency faults, and runs sharing one server without a trace."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import redis

from harness.net.proxies import ProxyLinks
from harness.runtime import LocalRuntime
from harness.toxiproxy import ToxiproxyClient, ToxiproxyError

from .conftest import harness, pid_alive


def _ping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        r = redis.Redis(
            host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout, retry=None
        )
        return r.ping()
    except redis.RedisError:
        return False


def test_runs_share_a_real_toxiproxy_without_a_trace(
    redis_bin: None, real_toxiproxy: str, tmp_path: Path
) -> None:
    api = ToxiproxyClient(real_toxiproxy)
    with LocalRuntime(tmp_path) as rt:
        node = rt.start("redis", 1).nodes[0]
        theirs = "someone-else"
        api.create_proxy(theirs, "127.0.0.1:0", f"{node.host}:{node.port}")
        api.add_toxic(theirs, "latency", {"latency": 1}, name="their-toxic")
        try:
            a = ProxyLinks(api, [node], 2, prefix="lhA-")
            b = ProxyLinks(api, [node], 2, prefix="lhB-")  # same nodes, same groups: no 409
            for links in (a, b):
                for i in (0, 1):
                    ep = links.endpoints(i)[0]
                    assert _ping(ep.host, ep.port), (links.prefix, i)
            a.cut(1, node)
            cut = a.endpoints(1)[0]
            assert not _ping(cut.host, cut.port)  # the real server black-holes it
            ok = b.endpoints(1)[0]
            assert _ping(ok.host, ok.port)  # the other run's link is untouched
            a.remove_all("")  # every toxic of this run's proxies only: no global /reset
            assert _ping(cut.host, cut.port)
            assert [t["name"] for t in api.toxics(theirs)] == ["their-toxic"]
            a.close()
            assert set(api.proxies()) == {theirs, *b.all()}
            b.close()
            assert set(api.proxies()) == {theirs}

            # A setup that fails half-way (a name taken) removes what it had made.
            api.create_proxy("lhC-g1-n1", "127.0.0.1:0", f"{node.host}:{node.port}")
            with pytest.raises(ToxiproxyError) as e:
                ProxyLinks(api, [node], 2, prefix="lhC-")
            assert e.value.status == 409
            assert set(api.proxies()) == {theirs, "lhC-g1-n1"}
        finally:
            for name in set(api.proxies()) & {theirs, "lhC-g1-n1"}:
                api.delete_proxy(name)


def _windows(ops: list[dict], name: str) -> tuple[int, int]:
    """(ns) from the fault's start being recorded to its stop being invoked."""
    start = next(o["time"] for o in ops if o["f"] == f"start-{name}" and o["type"] == "info")
    stop = next(o["time"] for o in ops if o["f"] == f"stop-{name}" and o["type"] == "invoke")
    return start, stop


def _completed(ops: list[dict]) -> list[tuple[dict, dict]]:
    """(invoke, completion) pairs of the clients' calls to the lock service (a ``write`` goes to
    the protected resource, in-process, not through the proxies)."""
    open_: dict = {}
    pairs = []
    for o in ops:
        if o["process"] == "nemesis" or o["f"] == "write":
            continue
        if o["type"] == "invoke":
            open_[o["process"]] = o
        elif o["process"] in open_:
            pairs.append((open_.pop(o["process"]), o))
    return pairs


@pytest.mark.slow
def test_run_with_partition_and_latency_through_the_real_toxiproxy(
    redis_bin: None, real_toxiproxy: str, tmp_path: Path
) -> None:
    api = ToxiproxyClient(real_toxiproxy)
    before = set(api.proxies())
    # One redis node, two client groups; "halves" cuts group 1 off it and leaves group 0.
    p = harness(
        *("run", "--backend", "redis", "--nemesis", "partition,latency"),
        *("--toxiproxy", real_toxiproxy, "--time-limit", "10", "--nemesis-interval", "2"),
        *("--nemesis-opt", "topology=halves", "--nemesis-opt", "latency_ms=150"),
        *("--nemesis-opt", "jitter_ms=0", "--seed", "1", "--no-report"),
        *("--store", str(tmp_path)),
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "VALID" in p.stdout and "Traceback" not in p.stderr
    run_dir = (tmp_path / "latest").resolve()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["toxiproxy"] == real_toxiproxy and config["netns"] is False
    ops = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    pairs = _completed(ops)

    # The partition, through the real server: a black hole (requests in flight hang until the
    # client's own timeout; nothing is refused), while group 0's clients still get answers.
    p0, p1 = _windows(ops, "partition")
    hung = [
        c["time"] - i["time"]
        for i, c in pairs
        if i["time"] < p1 and c["time"] > p0 and "Timeout" in (c.get("error") or "")
    ]
    assert hung and min(hung) >= 0.4e9, hung
    answered = [c for i, c in pairs if p0 < i["time"] and c["time"] < p1 and c["type"] != "info"]
    assert answered, "no client got an answer during the partition"
    assert not any("refused" in (o.get("error") or "").lower() for o in ops)

    # The latency (150 ms on every reply): every call answered in its window took as long.
    l0, l1 = _windows(ops, "latency")
    slow = [c["time"] - i["time"] for i, c in pairs if l0 <= i["time"] and c["time"] <= l1]
    fast = [c["time"] - i["time"] for i, c in pairs if c["type"] == "ok" and c["time"] < p0]
    assert len(slow) >= 3 and min(slow) >= 0.14e9, slow
    assert statistics.median(fast) < 0.14e9  # before any fault, requests were quicker

    # Nothing left behind: the run's proxies are gone from the real server, its redis is dead.
    assert set(api.proxies()) == before
    assert not any(pid_alive(s["pid"]) for s in config["servers"])
