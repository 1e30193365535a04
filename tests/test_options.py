"""One option parser for backend, workload and nemesis options: the same words everywhere."""

from __future__ import annotations

import random

import pytest

from backends.option_values import TRUE_WORDS, boolean, parse_options
from backends.registry import make
from harness.nemesis import NemesisEnv, nemesis_class
from harness.run.config import RunConfig
from harness.runtime import Cluster
from harness.runtime.kinds import server_kind
from workloads.mutex import MutexWorkload


@pytest.mark.parametrize("word", TRUE_WORDS + ("TRUE", " Yes "))
def test_true_is_the_same_word_for_backends_workloads_and_nemeses(word: str) -> None:
    assert boolean({"x": word}, "x") is True
    assert MutexWorkload({"fencing": word}).opts["fencing"] is True
    env = NemesisEnv(RunConfig(), make("redis"), Cluster(server_kind("redis"), []), random.Random())
    assert nemesis_class("partition")(env, {"one_way": word}).opt("one_way", False) is True


def test_a_bad_word_is_refused_alike_everywhere() -> None:
    with pytest.raises(ValueError, match="x='maybe' is not accepted: give true or false"):
        boolean({"x": "maybe"}, "x")
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
