"""The findings the README shows, reproduced on a real single-node redis-server.

- a forward jump of the server's wall clock past the TTL expires a held lock (Redis keeps
  expiries as absolute wall-clock ms): two clients hold it at once;
- a holder frozen past its TTL (a GC pause) wakes up still believing it holds the lock and
  writes: the fencing checker counts the stale writes a fencing resource would have rejected;
- partitions with a TTL longer than the holds raise no false alarm.
"""

from __future__ import annotations

from checkers.history import read
from harness.run import run_test
from harness.run.config import run_config

UNSAFE = {"overlap", "revoked-while-held"}
# A holder frozen for 2 x TTL while it holds the only key, once a second.
PAUSED_HOLDER = dict(
    nemesis=["client-pause"],
    nemesis_interval=1.0,
    time_limit=6,
    ttl_ms=500,
    hold_ms=100,
    wait_ms=1000,
)


def _run(tmp_path, **kw):
    base = dict(
        backend="redis", concurrency=3, keys=1, store=tmp_path, seed=11, render_report=False
    )
    return run_test(run_config(**(base | kw)))


def _violations(res) -> set[str]:
    return {v["kind"] for v in res.results["checkers"]["mutex"]["violations"]}


def test_clock_jump_breaks_single_redis(redis_bin, tmp_path):
    res = _run(
        tmp_path,
        nemesis=["clock"],
        nemesis_interval=1.0,
        time_limit=6,
        ttl_ms=1000,
        hold_ms=300,
        wait_ms=2000,
        nemesis_opts={"offset_ms": "5000"},
    )
    assert res.valid is False and res.exit_code == 1, res.results["summary"]
    assert _violations(res) & UNSAFE


def test_client_pause_breaks_redis_and_fencing_would_have_saved_it(redis_bin, tmp_path):
    res = _run(
        tmp_path,
        **PAUSED_HOLDER,
    )
    assert res.valid is False, res.results["summary"]
    assert _violations(res) & UNSAFE
    fencing = res.results["checkers"]["fencing"]
    assert fencing["stale_accepted"] >= 1, fencing["summary"]


def test_client_pause_with_fencing_enforced_rejects_the_stale_write(redis_bin, tmp_path):
    res = _run(
        tmp_path,
        **PAUSED_HOLDER,
        fencing=True,
    )
    fencing = res.results["checkers"]["fencing"]
    assert fencing["stale_rejected"] >= 1 and fencing["stale_accepted"] == 0, fencing["summary"]
    assert fencing["valid"] is True  # the resource held: fencing did its job
    assert res.valid is False  # the lock itself still failed


def test_partition_raises_no_false_alarm(redis_bin, tmp_path):
    res = _run(
        tmp_path,
        nemesis=["partition"],
        nemesis_interval=1.5,
        time_limit=8,
        ttl_ms=3000,
        hold_ms=10,
        concurrency=5,
        keys=2,
    )
    assert res.valid is True, res.results["summary"]
    ops = read(res.run_dir / "history.jsonl").ops
    cuts = [o for o in ops if o.f == "start-partition" and o.type == "info" and o.value]
    assert len(cuts) >= 2 and all(o.value["client_cuts"] for o in cuts)
    # the cuts bit: some client ops timed out (unknown outcome) during them
    assert any(o.type == "info" and o.process != "nemesis" for o in ops)


def test_checking_before_writing_avoids_the_stale_write_but_not_the_violation(redis_bin, tmp_path):
    """A holder that renews right before writing finds out its lock is gone, skips the write
    and releases: no stale write. Two clients still believed they held the lock at once."""
    res = _run(
        tmp_path,
        **PAUSED_HOLDER,
        check_before_write=True,
    )
    assert res.valid is False and _violations(res) & UNSAFE, res.results["summary"]
    assert res.results["checkers"]["fencing"]["stale_accepted"] == 0
    ops = read(res.run_dir / "history.jsonl").ops
    assert any(o.f == "renew" and o.type == "fail" for o in ops)  # the check caught it
    assert sum(o.f == "renew" and o.type == "ok" for o in ops) > 10  # and passed otherwise


def test_holds_longer_than_the_ttl_need_renewals(redis_bin, tmp_path):
    """Holding a lock longer than its TTL breaks it; renewing during the hold keeps it safe."""
    long_holds = dict(time_limit=4, ttl_ms=300, hold_ms=900, wait_ms=2000)
    res = _run(tmp_path, **long_holds)
    assert res.valid is False and _violations(res) & UNSAFE, res.results["summary"]
    res = _run(tmp_path, renew_ms=100, **long_holds)
    assert res.valid is True, res.results["summary"]
    ops = read(res.run_dir / "history.jsonl").ops
    assert sum(o.f == "renew" and o.type == "ok" for o in ops) >= 10
    assert res.results["checkers"]["mutex"]["hold_count"] >= 3


def test_restart_without_persistence_resets_the_fence_counter(redis_bin, tmp_path):
    res = _run(
        tmp_path,
        backend_opts={"persistence": "off"},  # a deliberate, non-durable choice
        nemesis=["kill"],
        nemesis_interval=1.5,
        time_limit=4,
        ttl_ms=1000,
        hold_ms=10,
        nemesis_opts={"down_ms": "200"},
    )
    fencing = res.results["checkers"]["fencing"]
    assert fencing["valid"] is False, fencing["summary"]
    assert fencing["non_increasing"] >= 1  # tokens went backwards after the restart
    assert fencing["stale_accepted"] >= 1  # every later write looks stale to a fencing store
