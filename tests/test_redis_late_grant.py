"""A grant whose reply comes after its lease ran out is no hold (backends.redis).

A server stopped after it granted a lock and before it answered (SIGSTOP between the two: the
``pause`` nemesis does it now and then) delivers the grant late; by then the lease may have
lapsed and another client may hold the lock. With a socket timeout shorter than the delay the
client gives up (an unknown outcome); with a longer one the grant arrives, and acting on it
would be two holders at once. So the verdict would hang on the timeout, a knob. The client
measures the grant against the TTL less Redlock's drift, as Redlock does: a late grant is deleted
and not returned. Here the reply is delayed by a real latency toxic on the link (the harness's
own Toxiproxy-API server) to a real redis-server.
"""

from __future__ import annotations

import time

import pytest
import redis

from backends.base import Endpoint, NotAcquired, drift_ms
from backends.redis import RedisBackend
from harness.net.proxies import ProxyLinks
from harness.runtime import LocalRuntime
from harness.runtime.toxiproxy_kind import url
from harness.toxiproxy.client import ToxiproxyClient

TTL_MS = 1000


@pytest.mark.parametrize("delay_ms", [200, 1300])
def test_a_grant_answered_after_its_ttl_is_void(redis_bin, tmp_path, delay_ms: int) -> None:
    with LocalRuntime(tmp_path) as rt:
        node = rt.start("redis", 1).nodes[0]
        px = ToxiproxyClient(url(rt.start("toxiproxy", 1, own_uids=False).nodes[0]))
        links = ProxyLinks(px, [node], groups=1)
        ep = links.endpoints(0)[0]
        client = RedisBackend({"timeout_ms": "5000"}).client(
            [Endpoint(node.name, ep.host, ep.port)], 0
        )
        direct = redis.Redis(host=node.host, port=node.port)
        try:
            client.release(client.acquire("warm", TTL_MS, 0))  # scripts loaded, link open
            px.add_toxic(links.all()[0], "latency", {"latency": delay_ms, "jitter": 0})
            start = time.monotonic()
            if delay_ms < TTL_MS:
                lease = client.acquire("k", TTL_MS, 0)
                took = (time.monotonic() - start) * 1000
                assert lease.validity_ms is not None
                # the validity left is the TTL less the time the grant took, less the drift
                assert TTL_MS - drift_ms(TTL_MS) - took <= lease.validity_ms
                assert lease.validity_ms <= TTL_MS - drift_ms(TTL_MS) - delay_ms
                assert direct.get("lock:k") == lease.token.encode()
            else:
                with pytest.raises(NotAcquired, match="after their lease ran out"):
                    client.acquire("k", TTL_MS, 500)
                # the void grant was deleted, not left to lapse: another client gets it now
                assert not direct.exists("lock:k")
                assert direct.set("lock:k", "other", nx=True, px=TTL_MS)
        finally:
            client.close()
            links.close()
