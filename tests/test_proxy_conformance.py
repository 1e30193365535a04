"""Conformance of the Toxiproxy API: every test runs against the embedded server and against a
real Toxiproxy 2.12.0 (``real_toxiproxy``: ``$TOXIPROXY_URL``, or the toxiproxy-server binary
started for the session). Where the two differ on purpose, the test asserts each one's own
behaviour and says why (the README lists these differences). Real sockets throughout: an echo
server upstream, or redis-server."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.runtime import LocalRuntime
from harness.runtime.toxiproxy_kind import url as node_url
from harness.toxiproxy import ToxiproxyClient, ToxiproxyError

# -- upstream servers written for the tests ---------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        s: socket.socket = self.request
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(10)
        for _ in range(100_000):
            try:
                data = s.recv(65536)
                if not data:
                    return
                s.sendall(data)
            except OSError:
                return


class _Greeter(socketserver.BaseRequestHandler):
    """Says hi and closes at once: the close is what slow_close delays."""

    def handle(self) -> None:
        self.request.sendall(b"hi")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    servers = {
        "echo": _Server(("127.0.0.1", 0), _Echo),
        "greet": _Server(("127.0.0.1", 0), _Greeter),
    }
    threads = [
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
        for s in servers.values()
    ]
    for t in threads:
        t.start()
    yield {k: f"127.0.0.1:{s.server_address[1]}" for k, s in servers.items()}
    for s in servers.values():
        s.shutdown()
        s.server_close()


# -- the proxy server under test -----------------------------------------------------------


@pytest.fixture(scope="module", params=["embedded", "real"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ToxiproxyClient]:
    if request.param == "real":
        client = ToxiproxyClient(request.getfixturevalue("real_toxiproxy"))
        _clear(client)
        yield client
        _clear(client)
        return
    with LocalRuntime(tmp_path_factory.mktemp("proxy")) as rt:
        node = rt.start("toxiproxy", 1).nodes[0]
        yield ToxiproxyClient(node_url(node))


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "api" in request.fixturenames:
        _clear(request.getfixturevalue("api"))


def _clear(client: ToxiproxyClient) -> None:
    for name in client.proxies():
        client.delete_proxy(name)


def embedded(api: ToxiproxyClient) -> bool:
    return "lockharness" in api.version()


def make_proxy(api: ToxiproxyClient, upstream: str, name: str = "p") -> tuple[str, int]:
    listen = api.create_proxy(name, "127.0.0.1:0", upstream)["listen"]
    host, port = listen.rsplit(":", 1)
    assert int(port) > 0
    return host, int(port)


def connect(addr: tuple[str, int], timeout: float = 3.0) -> socket.socket:
    s = socket.create_connection(addr, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s: socket.socket, n: int) -> tuple[bytes, int]:
    """n bytes and the number of recv calls it took."""
    buf = bytearray()
    calls = 0
    while len(buf) < n and calls < 100_000:
        chunk = s.recv(n - len(buf))
        calls += 1
        if not chunk:
            break
        buf += chunk
    return bytes(buf), calls


def round_trip(s: socket.socket, payload: bytes = b"ping\n") -> float:
    t0 = time.monotonic()
    s.sendall(payload)
    got, _ = recv_exactly(s, len(payload))
    assert got == payload
    return time.monotonic() - t0


def closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True


# -- the API ---------------------------------------------------------------------------------


def test_version(api: ToxiproxyClient) -> None:
    status, body = api.request("GET", "/version")
    assert status == 200
    assert isinstance(api.version(), str) and api.version()


def test_proxy_crud_and_status_codes(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    body = {"name": "a", "listen": "127.0.0.1:0", "upstream": upstreams["echo"]}
    status, created = api.request("POST", "/proxies", body)
    assert status == 201
    assert created["name"] == "a" and created["enabled"] is True and created["toxics"] == []
    assert created["upstream"] == upstreams["echo"]
    assert int(created["listen"].rsplit(":", 1)[1]) > 0  # port 0 resolved to the real one

    assert api.request("POST", "/proxies", body)[0] == 409
    assert set(api.proxies()) == {"a"}
    assert api.get_proxy("a")["listen"] == created["listen"]

    status, err = api.request("GET", "/proxies/nope")
    assert status == 404 and err["status"] == 404 and "not found" in err["error"]

    assert api.request("DELETE", "/proxies/a") == (204, None)
    assert api.request("DELETE", "/proxies/a")[0] == 404
    assert api.request("GET", "/proxies/a")[0] == 404
    assert api.proxies() == {}


def test_proxy_bad_bodies(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    for body in ({"listen": "127.0.0.1:0", "upstream": upstreams["echo"]}, {"name": "x"}):
        status, err = api.request("POST", "/proxies", body)
        assert status == 400 and "missing required field" in err["error"]
    conn = http.client.HTTPConnection(api.host, api.port, timeout=5)
    try:
        conn.request("POST", "/proxies", body=b"{not json")
        assert conn.getresponse().status == 400
    finally:
        conn.close()
    assert api.proxies() == {}


def test_embedded_refuses_addresses_off_loopback(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    if not embedded(api):
        pytest.skip("a real Toxiproxy may listen anywhere; the loopback rule is the embedded one's")
    for listen, upstream in (
        ("0.0.0.0:0", upstreams["echo"]),
        ("127.0.0.1:0", "10.1.2.3:80"),
        ("127.0.0.1:0", "example.org:80"),
        ("127.0.0.1:99999", upstreams["echo"]),
    ):
        status, err = api.request(
            "POST", "/proxies", {"name": "x", "listen": listen, "upstream": upstream}
        )
        assert status == 400, (listen, upstream)
        assert "127.0.0.0/8" in err["error"] and err["status"] == 400
    assert api.proxies() == {}


def test_update_proxy(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["greet"])
    with connect(addr) as s:
        assert s.recv(16) == b"hi"
    for method in ("POST", "PATCH"):
        status, p = api.request(method, "/proxies/p", {"upstream": upstreams["echo"]})
        assert status == 200 and p["upstream"] == upstreams["echo"] and p["enabled"] is True
        with connect(addr) as s:
            round_trip(s)
        api.update_proxy("p", upstream=upstreams["greet"])
    assert api.request("PATCH", "/proxies/nope", {"enabled": False})[0] == 404


def test_toxic_crud_and_status_codes(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    make_proxy(api, upstreams["echo"])
    status, t = api.request(
        "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 10}}
    )
    assert status == 200
    assert t["name"] == "latency_downstream" and t["stream"] == "downstream" and t["toxicity"] == 1
    assert t["type"] == "latency" and t["attributes"]["latency"] == 10

    assert api.request("POST", "/proxies/p/toxics", {"type": "latency"})[0] == 409
    status, err = api.request("POST", "/proxies/p/toxics", {"type": "no_such_toxic"})
    assert status == 400 and err["status"] == 400
    assert (
        api.request(
            "POST", "/proxies/p/toxics", {"type": "latency", "name": "s", "stream": "sideways"}
        )[0]
        == 400
    )
    assert api.request("POST", "/proxies/nope/toxics", {"type": "latency"})[0] == 404

    up = api.add_toxic("p", "bandwidth", {"rate": 100}, stream="upstream", toxicity=0.5, name="bw")
    assert (up["name"], up["stream"], up["toxicity"]) == ("bw", "upstream", 0.5)
    assert {x["name"] for x in api.toxics("p")} == {"latency_downstream", "bw"}
    # As Toxiproxy lists them: the upstream chain first, then the downstream one.
    assert [x["name"] for x in api.get_proxy("p")["toxics"]] == ["bw", "latency_downstream"]

    status, shown = api.request("GET", "/proxies/p/toxics/bw")
    assert status == 200 and shown == up
    for method, rate in (("POST", 200), ("PATCH", 300)):
        status, changed = api.request(
            method, "/proxies/p/toxics/bw", {"attributes": {"rate": rate}}
        )
        assert status == 200 and changed["attributes"]["rate"] == rate
        assert (changed["stream"], changed["toxicity"], changed["type"]) == (
            "upstream",
            0.5,
            "bandwidth",
        )
    assert api.update_toxic("p", "bw", toxicity=1.0)["toxicity"] == 1
    assert api.request("PATCH", "/proxies/p/toxics/nope", {"attributes": {}})[0] == 404
    assert api.request("GET", "/proxies/p/toxics/nope")[0] == 404

    assert api.request("DELETE", "/proxies/p/toxics/bw") == (204, None)
    assert api.request("DELETE", "/proxies/p/toxics/bw")[0] == 404
    assert [x["name"] for x in api.toxics("p")] == ["latency_downstream"]


def test_reset_enables_and_clears(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "timeout", {"timeout": 0})
    api.disable("p")
    assert api.get_proxy("p")["enabled"] is False
    assert api.request("POST", "/reset") == (204, None)
    p = api.get_proxy("p")
    assert p["enabled"] is True and p["toxics"] == []
    with connect(addr) as s:
        assert round_trip(s) < 0.5  # healed: data flows again


def test_populate(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    wanted = [
        {"name": "a", "listen": "127.0.0.1:0", "upstream": upstreams["echo"]},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": upstreams["greet"], "enabled": False},
    ]
    status, body = api.request("POST", "/populate", wanted)
    assert status == 201
    assert [p["name"] for p in body["proxies"]] == ["a", "b"]
    assert api.get_proxy("a")["enabled"] is True and api.get_proxy("b")["enabled"] is False
    addr = api.get_proxy("a")["listen"].rsplit(":", 1)
    with connect((addr[0], int(addr[1]))) as s:
        round_trip(s)
    # a changed upstream replaces the proxy
    again = api.populate([{"name": "a", "listen": "127.0.0.1:0", "upstream": upstreams["greet"]}])
    assert again[0]["upstream"] == upstreams["greet"]
    assert api.request("POST", "/populate", {"name": "a"})[0] == 400
    assert api.request("POST", "/populate", [{"name": "c"}])[0] == 400
    assert "c" not in api.proxies()


def test_unknown_route_and_method(api: ToxiproxyClient) -> None:
    assert api.request("GET", "/nothing/here")[0] == 404
    assert api.request("DELETE", "/version")[0] == 405


def test_client_raises_on_error_status(api: ToxiproxyClient) -> None:
    with pytest.raises(ToxiproxyError) as e:
        api.get_proxy("absent")
    assert e.value.status == 404 and "proxy not found" in e.value.message


# -- toxics, observed on real connections ---------------------------------------------------


def test_latency_on_new_and_live_connections(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    addr = make_proxy(api, upstreams["echo"])
    with connect(addr) as live:
        assert round_trip(live) < 0.05
        api.add_toxic("p", "latency", {"latency": 100})
        assert 0.09 <= round_trip(live) < 0.3  # live connection got it
        with connect(addr) as new:
            assert 0.09 <= round_trip(new) < 0.3
        api.add_toxic("p", "latency", {"latency": 50}, stream="upstream")
        assert 0.14 <= round_trip(live) < 0.4  # both directions add up
        api.remove_toxic("p", "latency_downstream")
        api.remove_toxic("p", "latency_upstream")
        assert round_trip(live) < 0.05


def test_latency_jitter_bounds(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "latency", {"latency": 60, "jitter": 40})
    with connect(addr) as s:
        samples = [round_trip(s) for _ in range(10)]
    assert all(0.015 <= x < 0.2 for x in samples), samples
    assert max(samples) - min(samples) > 0.01, samples  # jitter does vary


def test_bandwidth_slows_transfer(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    payload = os.urandom(100_000)
    with connect(addr) as s:
        assert round_trip(s, payload) < 0.1
        api.add_toxic("p", "bandwidth", {"rate": 500})  # KB/s: 100 KB take 0.2 s
        assert 0.15 <= round_trip(s, payload) < 1.5


def test_slow_close_delays_close(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["greet"])
    for delay, lo, hi in ((0, 0.0, 0.1), (300, 0.28, 1.0)):
        if delay:
            api.add_toxic("p", "slow_close", {"delay": delay})
        with connect(addr) as s:
            t0 = time.monotonic()
            assert recv_exactly(s, 2)[0] == b"hi"
            assert s.recv(16) == b""
            assert lo <= time.monotonic() - t0 < hi


def test_timeout_zero_black_holes_until_removed(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    addr = make_proxy(api, upstreams["echo"])
    with connect(addr) as s:
        round_trip(s)
        api.add_toxic("p", "timeout", {"timeout": 0})
        s.sendall(b"lost\n")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(16)  # no data, and no close either
        api.remove_toxic("p", "timeout_downstream")
        s.settimeout(2)
        assert closed_by_peer(s)  # as Toxiproxy: a held stream lost data, so it is closed
    with connect(addr) as s:
        assert round_trip(s) < 0.1


def test_timeout_positive_closes(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "timeout", {"timeout": 200})
    with connect(addr) as s:
        t0 = time.monotonic()
        s.sendall(b"x")
        assert closed_by_peer(s)
        assert 0.15 <= time.monotonic() - t0 < 1.5


def test_reset_peer_sends_rst(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "reset_peer", {"timeout": 100})
    with connect(addr) as s:
        t0 = time.monotonic()
        s.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            for _ in range(10):
                if not s.recv(16):
                    break
        assert 0.08 <= time.monotonic() - t0 < 1.5


def test_slicer_delivers_everything_in_pieces(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "slicer", {"average_size": 100, "size_variation": 20, "delay": 2000})
    payload = os.urandom(5000)
    with connect(addr) as s:
        s.sendall(payload)
        got, calls = recv_exactly(s, len(payload))
    assert got == payload
    assert calls >= 10  # ~50 slices 2 ms apart cannot arrive in a few reads


def test_limit_data_closes_after_n_bytes(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "limit_data", {"bytes": 1000})
    with connect(addr) as s:
        s.sendall(b"a" * 600)
        assert recv_exactly(s, 600)[0] == b"a" * 600
        s.sendall(b"b" * 600)
        got, _ = recv_exactly(s, 600)
    assert got == b"b" * 400  # cut at 1000 bytes in all, then closed


def test_toxicity_zero_never_applies(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "latency", {"latency": 300}, toxicity=0.0)
    for _ in range(5):
        with connect(addr) as s:
            assert round_trip(s) < 0.1


def test_toxicity_is_decided_per_connection(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "latency", {"latency": 80}, toxicity=0.5)
    kinds = []
    for _ in range(16):
        with connect(addr) as s:
            slow = [round_trip(s) >= 0.07 for _ in range(2)]
        assert slow[0] == slow[1]  # one decision for the whole connection
        kinds.append(slow[0])
    assert any(kinds) and not all(kinds)  # all-alike has probability 2^-15


def test_disable_refuses_and_drops_then_enable_listens_again(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    addr = make_proxy(api, upstreams["echo"])
    with connect(addr) as live:
        round_trip(live)
        assert api.disable("p")["enabled"] is False
        assert closed_by_peer(live)
    with pytest.raises(ConnectionRefusedError):
        connect(addr).close()
    assert api.enable("p")["listen"] == f"{addr[0]}:{addr[1]}"
    with connect(addr) as s:
        round_trip(s)


def test_redis_ping_through_proxy(api: ToxiproxyClient, tmp_path: Path) -> None:
    import redis

    with LocalRuntime(tmp_path) as rt:
        node = rt.start("redis", 1).nodes[0]
        host, port = make_proxy(api, f"{node.host}:{node.port}", name="redis")
        client = redis.Redis(host=host, port=port, socket_timeout=2)
        try:
            assert client.ping() is True
            client.set("k", "v")
            assert client.get("k") == b"v"
            api.add_toxic("redis", "latency", {"latency": 100})
            t0 = time.monotonic()
            assert client.ping() is True
            assert time.monotonic() - t0 >= 0.09
        finally:
            client.close()


@contextlib.contextmanager
def toxiproxy_python_at(api: ToxiproxyClient) -> Iterator[None]:
    """toxiproxy-python keeps the server's address in class attributes: point them at ``api``
    for the block, then put them back."""
    from toxiproxy.api import APIConsumer

    saved = APIConsumer.host, APIConsumer.port
    APIConsumer.host, APIConsumer.port = api.host, api.port
    try:
        yield
    finally:
        APIConsumer.host, APIConsumer.port = saved


def test_toxiproxy_python_drives_it(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    """toxiproxy-python 0.1.1, a client nobody here wrote: proxy and toxic creation, listing,
    update and deletion, its error classes, enable/disable, reset and its populate."""
    from toxiproxy import Toxiproxy
    from toxiproxy.api import APIConsumer
    from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

    echo, greet = upstreams["echo"], upstreams["greet"]
    with toxiproxy_python_at(api):
        server = Toxiproxy()
        assert server.running() and b"2.12.0" in server.version()
        proxy = server.create(upstream=echo, name="tp", listen="127.0.0.1:0")
        assert proxy.enabled is True and proxy.upstream == echo
        host, port = proxy.listen.rsplit(":", 1)
        addr = (host, int(port))
        with pytest.raises(ProxyExists):  # the server's 409, not only the client's own check
            APIConsumer.post("/proxies", json={"name": "tp", "upstream": echo})

        assert proxy.add_toxic(type="latency", attributes={"latency": 120}) is None
        proxy.add_toxic(type="timeout", stream="upstream", name="hole", toxicity=0.0, attributes={})
        toxics = proxy.toxics()
        assert list(toxics) == ["hole", "latency_downstream"]
        assert toxics["latency_downstream"].attributes["latency"] == 120
        assert toxics["hole"].toxicity == 0 and toxics["hole"].stream == "upstream"
        with pytest.raises(InvalidToxic):
            proxy.add_toxic(type="no_such_toxic")
        with pytest.raises(ProxyExists):  # its name for any 409, a taken toxic name too
            proxy.add_toxic(type="latency")
        with connect(addr) as s:
            assert round_trip(s) >= 0.11  # the toxic it added acts on real traffic

        # No call of its own updates a toxic: its API consumer posts the update.
        APIConsumer.post(
            "/proxies/tp/toxics/latency_downstream", json={"attributes": {"latency": 5}}
        )
        assert proxy.get_toxic("latency_downstream").attributes["latency"] == 5
        assert proxy.destroy_toxic("hole") is True and proxy.get_toxic("hole") is None
        with pytest.raises(NotFound):
            proxy.destroy_toxic("hole")

        assert set(server.proxies()) == {"tp"}
        with proxy.down():
            assert api.get_proxy("tp")["enabled"] is False
            with pytest.raises(ConnectionRefusedError):
                connect(addr).close()
        assert api.get_proxy("tp")["enabled"] is True
        assert server.reset() is True and api.get_proxy("tp")["toxics"] == []

        # Its populate works client-side (no /populate): a changed upstream means re-create.
        server.populate([{"name": "tp", "upstream": greet, "listen": "127.0.0.1:0"}])
        assert api.get_proxy("tp")["upstream"] == greet
        assert server.destroy(server.get_proxy("tp")) is True
        assert server.proxies() == {}
        with pytest.raises(NotFound):
            APIConsumer.get("/proxies/tp")


def test_large_transfer_keeps_every_byte(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    payload = os.urandom(8 << 20)  # more than socket buffers hold: back-pressure must work
    with connect(addr, timeout=10) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
        sender.start()
        got, _ = recv_exactly(s, len(payload))
        sender.join(10)
    assert got == payload


def test_unreachable_upstream_closes_the_client(api: ToxiproxyClient) -> None:
    with socket.socket() as spare:  # a port nobody listens on
        spare.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{spare.getsockname()[1]}"
        addr = make_proxy(api, dead)
        with connect(addr) as s:
            assert closed_by_peer(s)


def test_half_close(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    """A deliberate difference: the embedded server passes a client's half-close on, so the
    answer to its last words still arrives; Toxiproxy closes both ways at the client's EOF, so
    the answer is (almost always) lost. Both end with the connection closed."""
    addr = make_proxy(api, upstreams["echo"])
    with connect(addr) as s:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)  # the echo server answers, then closes on EOF
        got, _ = recv_exactly(s, 10)
        if embedded(api):
            assert got == b"last words"
            assert s.recv(16) == b""
        else:
            assert len(got) < 10 or s.recv(16) == b""  # closed, not hanging


# -- details where the embedded server once differed from Toxiproxy 2.12.0 ---------------------


def raw_request(api: ToxiproxyClient, method: str, path: str, body: bytes, headers: dict) -> tuple:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_toxics_listed_upstream_chain_first(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    make_proxy(api, upstreams["echo"])
    for name, stream in (("d1", "downstream"), ("u1", "upstream"), ("d2", "downstream")):
        api.add_toxic("p", "latency", {"latency": 1}, stream=stream, name=name)
    api.add_toxic("p", "latency", {"latency": 1}, stream="upstream", name="u2")
    want = ["u1", "u2", "d1", "d2"]  # each chain in the order its toxics were added
    assert [t["name"] for t in api.toxics("p")] == want
    assert [t["name"] for t in api.get_proxy("p")["toxics"]] == want
    assert [t["name"] for t in api.proxies()["p"]["toxics"]] == want
    api.remove_toxic("p", "u1")
    assert [t["name"] for t in api.toxics("p")] == ["u2", "d1", "d2"]


def test_attributes_must_be_integers(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    make_proxy(api, upstreams["echo"])
    for value in (1.5, 100.0, "100", True):  # Toxiproxy decodes them into Go int64s
        status, err = api.request(
            "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": value}}
        )
        assert status == 400 and err["status"] == 400, value
    assert api.toxics("p") == []
    api.add_toxic("p", "latency", {"latency": 100}, name="l")
    status, _ = api.request("PATCH", "/proxies/p/toxics/l", {"attributes": {"latency": 2.5}})
    assert status == 400
    assert api.request("GET", "/proxies/p/toxics/l")[1]["attributes"]["latency"] == 100


def test_null_toxicity_keeps_the_default(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    make_proxy(api, upstreams["echo"])
    status, t = api.request("POST", "/proxies/p/toxics", {"type": "latency", "toxicity": None})
    assert status == 200 and t["toxicity"] == 1
    api.update_toxic("p", "latency_downstream", toxicity=0.25)
    status, t = api.request("PATCH", "/proxies/p/toxics/latency_downstream", {"toxicity": None})
    assert status == 200 and t["toxicity"] == 0.25  # null keeps the old value


def test_stream_names(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    addr = make_proxy(api, upstreams["echo"])
    # Case does not matter, and the name is shown as given (the default name uses it too).
    status, t = api.request(
        "POST", "/proxies/p/toxics", {"type": "latency", "stream": "UpStream", "attributes": {}}
    )
    assert status == 200 and t["stream"] == "UpStream" and t["name"] == "latency_UpStream"
    status, t = api.request("POST", "/proxies/p/toxics", {"type": "timeout", "stream": None})
    assert status == 200 and t["stream"] == "downstream"  # null keeps the default
    status, err = api.request("POST", "/proxies/p/toxics", {"type": "slicer", "stream": ""})
    assert status == 400 and "stream was invalid" in err["error"]
    assert [t["name"] for t in api.toxics("p")] == ["latency_UpStream", "timeout_downstream"]
    api.remove_toxic("p", "timeout_downstream")
    api.update_toxic("p", "latency_UpStream", {"latency": 150})
    with connect(addr) as s:
        assert round_trip(s) >= 0.14  # "UpStream" acts on the client -> server direction


def test_a_taken_name_conflicts_before_bad_attributes(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "latency", {"latency": 1}, name="x")
    body = {"type": "bandwidth", "name": "x", "stream": "upstream", "attributes": {"rate": "y"}}
    status, err = api.request("POST", "/proxies/p/toxics", body)
    assert status == 409 and err["error"] == "toxic already exists"


def test_limit_data_count_survives_an_update(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    addr = make_proxy(api, upstreams["echo"])
    api.add_toxic("p", "limit_data", {"bytes": 10})
    with connect(addr) as s:
        s.sendall(b"x" * 6)
        assert recv_exactly(s, 6)[0] == b"x" * 6
        api.update_toxic("p", "limit_data_downstream", {"bytes": 12})
        s.sendall(b"y" * 10)
        got, _ = recv_exactly(s, 10)
    assert got == b"y" * 6  # 6 + 6 = 12 bytes in all: the count was kept, not restarted


def test_proxy_list_is_sorted_by_name(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    for name in ("m", "b", "z", "a"):
        make_proxy(api, upstreams["echo"], name=name)
    assert list(api.proxies()) == ["a", "b", "m", "z"]  # a Go map, marshalled sorted


def test_paths_are_matched_exactly(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    make_proxy(api, upstreams["echo"])
    for path in ("/proxies/", "/proxies/p/", "/version/", "/proxies/p/toxics/"):
        assert api.request("GET", path)[0] == 404, path
    status, body = api.request("GET", "/no/such/route")
    # Toxiproxy answers "404 page not found" as text; the embedded server as JSON, same words.
    assert status == 404 and "404 page not found" in str(body)


def test_browsers_are_refused(api: ToxiproxyClient) -> None:
    status, body = raw_request(api, "GET", "/version", b"", {"User-Agent": "Mozilla/5.0 (X11)"})
    assert status == 403 and b"User agent not allowed" in body
    status, _ = raw_request(api, "GET", "/version", b"", {"User-Agent": "curl/8.0"})
    assert status == 200


def test_chunked_request_body(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    body = f'{{"name": "c", "listen": "127.0.0.1:0", "upstream": "{upstreams["echo"]}"}}'.encode()
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7)
    )
    headers = {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
    status, _ = raw_request(api, "POST", "/proxies", chunked + b"0\r\n\r\n", headers)
    assert status == 201 and api.get_proxy("c")["upstream"] == upstreams["echo"]


def test_populate_answers(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    assert api.request("POST", "/populate", []) == (201, {"proxies": None})
    status, err = api.request("POST", "/populate", [{"name": "x"}])
    assert status == 400 and err["error"] == "missing required field: upstream at proxy 1"
    assert "proxies" in err and err["proxies"] is None  # the error body lists what was done
    # An unchanged proxy is kept with its toxics; a name given twice: the second entry wins.
    listen = api.create_proxy("keep", "127.0.0.1:0", upstreams["echo"])["listen"]
    api.add_toxic("keep", "latency", {"latency": 1})
    twice = {"name": "dup", "listen": "127.0.0.1:0", "upstream": upstreams["echo"]}
    status, body = api.request(
        "POST",
        "/populate",
        [{"name": "keep", "listen": listen, "upstream": upstreams["echo"]}, twice, twice],
    )
    assert status == 201
    shown = [(p["name"], p["enabled"]) for p in body["proxies"]]
    assert shown == [("keep", True), ("dup", False), ("dup", True)]  # the first dup: replaced
    assert len(api.get_proxy("keep")["toxics"]) == 1
    assert api.get_proxy("dup")["listen"] == body["proxies"][2]["listen"]


def test_listen_on_a_busy_port_is_a_500(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        status, err = api.request(
            "POST", "/proxies", {"name": "b", "listen": taken, "upstream": upstreams["echo"]}
        )
        assert status == 500 and err["status"] == 500 and "address already in use" in err["error"]
        assert "b" not in api.proxies()  # not created half-way


def test_out_of_range_values(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    """A deliberate difference: Toxiproxy takes a negative latency or a toxicity of 2 without a
    word (and then behaves as if they were 0 and 1); the embedded server refuses them (400)."""
    make_proxy(api, upstreams["echo"])
    neg = {"type": "latency", "name": "neg", "attributes": {"latency": -5}}
    over = {"type": "latency", "name": "over", "toxicity": 2}
    statuses = [api.request("POST", "/proxies/p/toxics", b)[0] for b in (neg, over)]
    assert statuses == ([400, 400] if embedded(api) else [200, 200])


def test_reset_peer_on_live_connections(api: ToxiproxyClient, upstreams: dict[str, str]) -> None:
    """Connections opened after reset_peer was added get a TCP RST from both servers. Those
    already open when it is added: Toxiproxy sets SO_LINGER 0 only on connections opened while
    the toxic exists, so it closes them with a FIN; the embedded server resets them too, as the
    toxic (and the harness's reset nemesis) promises. Both close the connection."""
    addr = make_proxy(api, upstreams["echo"])
    with connect(addr) as live:
        round_trip(live)
        api.add_toxic("p", "reset_peer", {"timeout": 0}, stream="upstream")
        live.sendall(b"x")
        if embedded(api):
            with pytest.raises(ConnectionResetError):
                live.recv(16)
        else:
            assert closed_by_peer(live)
    with connect(addr) as new:
        new.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            for _ in range(10):
                if not new.recv(16):
                    break


def test_embedded_drops_idle_and_slow_api_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """As Toxiproxy's HTTP server (IdleTimeout 60 s, ReadTimeout 15 s, shortened here): a
    client that sits idle, or sends half a request, is dropped instead of held forever."""
    import asyncio

    from harness.toxiproxy import server as srv

    monkeypatch.setattr(srv, "IDLE_TIMEOUT", 0.3)
    monkeypatch.setattr(srv, "READ_TIMEOUT", 0.3)

    async def dropped_after(first: bytes) -> float:
        proxy_server = srv.ProxyServer()
        port = await proxy_server.listen("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()
            writer.write(first)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
            writer.close()
            return time.monotonic() - t0
        finally:
            proxy_server.close()

    assert 0.25 <= asyncio.run(dropped_after(b"")) < 3
    assert 0.25 <= asyncio.run(dropped_after(b"GET /version HTTP/1.1\r\nHost: x\r\n")) < 3


def test_created_disabled_keeps_its_toxics_until_enabled(
    api: ToxiproxyClient, upstreams: dict[str, str]
) -> None:
    body = {"name": "d", "listen": "127.0.0.1:0", "upstream": upstreams["echo"], "enabled": False}
    status, p = api.request("POST", "/proxies", body)
    assert status == 201 and p["enabled"] is False and p["listen"] == "127.0.0.1:0"
    api.add_toxic("d", "latency", {"latency": 100})  # a disabled proxy takes toxics
    listen = api.enable("d")["listen"]
    host, port = listen.rsplit(":", 1)
    assert int(port) > 0
    with connect((host, int(port))) as s:
        assert round_trip(s) >= 0.09
    p = api.disable("d")
    assert p["listen"] == listen and [t["name"] for t in p["toxics"]] == ["latency_downstream"]
    assert api.request("PATCH", "/proxies/d", {"enabled": False})[0] == 200  # already off: fine
