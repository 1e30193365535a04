"""The mongodb backend against a real mongod (started from PATH) or LOCKHARNESS_MONGODB_URI.

No Debian package ships mongod and no emulator stands in for it: without either, every test
here skips and says why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from backends.base import Endpoint, LockClient
from backends.mongodb import MongoBackend
from harness.runtime import LocalRuntime

from .backend_contract import (
    check_double_release,
    check_expiry,
    check_fences_increase,
    check_mutual_exclusion,
    check_renew,
    check_short_run,
    check_teardown,
    endpoints,
    make_clients,
)

URI = os.environ.get("LOCKHARNESS_MONGODB_URI", "")
NO_SERVER = (
    "no mongod on PATH and LOCKHARNESS_MONGODB_URI unset: install MongoDB Community "
    "(mongodb-org) or point LOCKHARNESS_MONGODB_URI at a server"
)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime | None]:
    if URI:
        yield None
        return
    if shutil.which("mongod") is None:
        pytest.skip(NO_SERVER)
    rt = LocalRuntime(tmp_path_factory.mktemp("mongo"))
    try:
        rt.start("mongodb", 1)
        yield rt
    finally:
        rt.close()


@pytest.fixture(params=["majority", "1"])
def backend(request: pytest.FixtureRequest, runtime: LocalRuntime | None) -> MongoBackend:
    opts = {"w": request.param, "nodes": "1"}
    if URI:
        opts["uri"] = URI
    b = MongoBackend(opts)
    b.setup(_eps(runtime))
    return b


def _eps(runtime: LocalRuntime | None) -> list[Endpoint]:
    return [] if runtime is None else endpoints(runtime.clusters[0])


@pytest.fixture
def clients(backend: MongoBackend, runtime: LocalRuntime | None) -> Iterator[list[LockClient]]:
    cs = make_clients(backend, _eps(runtime), 3)
    yield cs
    for c in cs:
        c.close()


def test_mutual_exclusion(clients: list[LockClient]) -> None:
    check_mutual_exclusion(clients[0], clients[1])


def test_fences_increase(clients: list[LockClient]) -> None:
    check_fences_increase(clients[0], clients[1])


def test_double_release_is_not_owner(clients: list[LockClient]) -> None:
    check_double_release(clients[0])


def test_expiry(clients: list[LockClient]) -> None:
    check_expiry(clients[0], clients[2], ttl_ms=500, wait_ms=3000)


def test_renew(clients: list[LockClient]) -> None:
    check_renew(clients[0], clients[1], ttl_ms=600, span_s=1.2)


def test_uri_option_is_checked() -> None:
    with pytest.raises(ValueError, match="uri='localhost' is not accepted"):
        MongoBackend({"uri": "localhost"})
    assert MongoBackend({"uri": "mongodb://127.0.0.1:1/"}).servers().nodes == 0


def test_short_run_is_valid(tmp_path) -> None:
    if shutil.which("mongod") is None:
        pytest.skip(NO_SERVER if not URI else "the run loop starts its own mongod: none on PATH")
    check_short_run(tmp_path, "mongodb", nodes="1")


def test_teardown_leaves_no_process(runtime: LocalRuntime | None) -> None:
    if runtime is None:
        pytest.skip("external server from LOCKHARNESS_MONGODB_URI: nothing was started")
    check_teardown(runtime)
