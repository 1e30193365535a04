"""One option parser for backend, workload and nemesis options: the same words everywhere."""

from __future__ import annotations

import random

import pytest

from backends.base import Backend, ServerNeed
from backends.option_values import TRUE_WORDS, Option, parse_options
from backends.registry import make
from harness.nemesis import NemesisEnv, nemesis_class
from harness.run.config import RunConfig
from harness.runtime import Cluster
from harness.runtime.kinds import server_kind
from workloads.mutex import MutexWorkload


@pytest.mark.parametrize("word", TRUE_WORDS + ("TRUE", " Yes "))
def test_true_is_the_same_word_for_backends_workloads_and_nemeses(word: str) -> None:
    assert make("redlock", {"delayed_restart": word}).values["delayed_restart"] is True
    assert MutexWorkload({"fencing": word}).opts["fencing"] is True
    env = NemesisEnv(RunConfig(), make("redis"), Cluster(server_kind("redis"), []), random.Random())
    assert nemesis_class("partition")(env, {"one_way": word}).opt("one_way", False) is True


def test_a_bad_word_is_refused_alike_everywhere() -> None:
    with pytest.raises(
        ValueError, match="delayed_restart='maybe' is not accepted: give true or false"
    ):
        make("redlock", {"delayed_restart": "maybe"})
    with pytest.raises(ValueError, match="fencing='maybe' is not accepted: give true or false"):
        MutexWorkload({"fencing": "maybe"})
    env = NemesisEnv(RunConfig(), make("redis"), Cluster(server_kind("redis"), []), random.Random())
    with pytest.raises(ValueError, match="one_way='maybe' is not accepted: give true or false"):
        nemesis_class("partition")(env, {"one_way": "maybe"}).opt("one_way", False)


def test_typed_values_pass_and_bounds_hold() -> None:
    spec = MutexWorkload.options
    got = parse_options(spec, {"ttl_ms": 250, "hold_ms": "0", "fencing": True}, "w")
    assert (got["ttl_ms"], got["hold_ms"], got["fencing"], got["wait_ms"]) == (250, 0, True, 500)
    with pytest.raises(
        ValueError, match=r"w \(--hold\): option hold_ms=-1 .* integer from 0 to 2147483647 ms"
    ):
        parse_options(spec, {"hold_ms": -1}, "w")
    with pytest.raises(ValueError, match="give an integer"):
        parse_options(spec, {"ttl_ms": True}, "w")  # a bool is not a number


def test_redis_backends_reject_a_bad_timeout_before_any_server_starts() -> None:
    for name in ("redis", "redis-py", "unsafe-redis"):
        with pytest.raises(ValueError, match="timeout_ms='soon' is not accepted"):
            make(name, {"timeout_ms": "soon"})


class _Declared(Backend):
    name = "declared"
    description = "a backend declaring one option of each kind, and one as plain text"
    options = {
        "n": Option(3, "nodes", lo=1, hi=9),
        "sync": Option(False, "wait for a replica"),
        "mode": Option("fast", "how", choices=("fast", "safe")),
        "db": "postgres",  # a plain text default (a plug-in written before Option)
    }

    def servers(self) -> ServerNeed:
        return ServerNeed("redis")

    def client(self, endpoints, client_id):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_a_backend_gets_its_options_parsed_once_and_keeps_their_text() -> None:
    b = _Declared({"n": " 7", "sync": "Yes", "mode": "SAFE", "db": "x"})
    assert b.values == {"n": 7, "sync": True, "mode": "safe", "db": "x"}
    assert b.opts == {"n": " 7", "sync": "true", "mode": "SAFE", "db": "x"}  # as given
    d = _Declared()
    assert d.values == {"n": 3, "sync": False, "mode": "fast", "db": "postgres"}
    assert d.opts == {"n": "3", "sync": "false", "mode": "fast", "db": "postgres"}
    with pytest.raises(
        ValueError, match="^option n='0' is not accepted: give an integer from 1 to 9$"
    ):
        _Declared({"n": "0"})
    with pytest.raises(
        ValueError, match="^option mode='slow' is not accepted: give one of fast, safe$"
    ):
        _Declared({"mode": "slow"})
    with pytest.raises(
        ValueError, match="^backend 'declared' has no option x; accepted: db, mode, n, sync$"
    ):
        _Declared({"x": "1"})


def test_a_nemesis_option_is_the_same_type_with_its_own_refusal() -> None:
    from harness.nemesis.options import number, parse

    share = number("0.3: share of connections black-holed", hi=1, lo_open=True)
    assert isinstance(share, Option) and (share.default, share.type) == ("0.3", float)
    assert parse(share, "flaky", "share", "0.5") == 0.5
    with pytest.raises(ValueError, match=r"^nemesis flaky option share='0' .* in \(0, 1\]$"):
        parse(share, "flaky", "share", "0")
    with pytest.raises(ValueError, match="^option share='0' is not accepted: give a number > 0$"):
        share.parse("share", "0")  # the generic parser honours lo_open too
