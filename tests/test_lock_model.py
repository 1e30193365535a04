"""The lease-aware lock model (checkers/model.py) on hand-written histories: one story per class
(two holders at once, early grant, lapse), renewals, the boundary, and which model a stored run
or a bare history is judged under."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from checkers import check_all, mutex
from checkers.history import Op, read
from checkers.model import LEASE, STRICT, STRICT_MODEL, LockModel
from harness.cli.app import main
from harness.run.lock_model import stored_model

MS = 1_000_000
TTL = LockModel(LEASE, "ttl", 1000.0)  # a 1 s lease
NO_TTL = LockModel(LEASE, "none")
HIDDEN = LockModel(LEASE, "hidden")
ETCD = Path(__file__).resolve().parents[2] / "shared" / "data" / "jepsen-etcd-3.4.3-mutex.jsonl"


def history(*events: tuple[int, int, str, str, Any]) -> list[Op]:
    """(ms, process, type, f, value) on key "k", indexes in order."""
    return [Op(i, ms * MS, p, t, f, "k", v) for i, (ms, p, t, f, v) in enumerate(events)]


def stopped_holder(b_ms: int, renew_ms: int | None = None) -> list[Op]:
    """Client 0 acquires at 0 ms and stops at 100 ms (its release refused); client 1 is granted
    the lock at ``b_ms``."""
    ev: list[tuple[int, int, str, str, Any]] = [
        (0, 0, "invoke", "acquire", None),
        (1, 0, "ok", "acquire", 1),
    ]
    if renew_ms is not None:
        ev += [(renew_ms, 0, "invoke", "renew", None), (renew_ms + 1, 0, "ok", "renew", None)]
    last = max(100, (renew_ms or 0) + 2)
    ev += [
        (last, 0, "invoke", "release", None),
        (last + 1, 0, "fail", "release", None),
        (b_ms - 1, 1, "invoke", "acquire", None),
        (b_ms, 1, "ok", "acquire", 2),
        (b_ms + 1, 1, "invoke", "release", None),
        (b_ms + 2, 1, "ok", "release", None),
    ]
    return history(*ev)


def test_two_holders_at_once_is_invalid_in_both_models() -> None:
    # a paused holder: client 1 is granted the lock long after the lease ran out, but client 0
    # has not invoked its release yet: it wakes and acts as holder beside client 1
    ops = history(
        (0, 0, "invoke", "acquire", None),
        (1, 0, "ok", "acquire", 1),
        (1999, 1, "invoke", "acquire", None),
        (2000, 1, "ok", "acquire", 2),
        (2500, 0, "invoke", "release", None),
        (2501, 0, "fail", "release", None),
    )
    for model in (TTL, STRICT_MODEL):
        r = mutex.check(ops, model=model)
        assert r["valid"] is False
        assert r["violation_kinds"] == {"revoked-while-held": 1}
        assert r["violations"][0]["while_acting"] is True
        assert mutex.acted_at_once(r) == 1


def test_early_grant_is_invalid() -> None:
    # the lease could not have run out before 1000 ms: the lock gave the grant away early
    r = mutex.check(stopped_holder(500), model=TTL)
    assert r["valid"] is False and r["violation_kinds"] == {"early-grant": 1}
    assert r["lapse_count"] == 0 and mutex.acted_at_once(r) == 0
    # a lock with no TTL, or one renewed where the history cannot see, never lapses
    for model in (NO_TTL, HIDDEN):
        late = mutex.check(stopped_holder(5000), model=model)
        assert late["valid"] is False and late["violation_kinds"] == {"early-grant": 1}
        assert late["no_lapse_because"]


def test_lapse_is_counted_not_a_violation() -> None:
    ops = stopped_holder(1200)
    r = mutex.check(ops, model=TTL)
    assert r["valid"] is True and r["violation_count"] == 0
    assert r["lapse_count"] == 1 and r["lapses"][0]["first"]["process"] == 0
    assert "1 lease lapsed" in r["summary"] and r["model"] == LEASE
    strict = mutex.check(ops, model=STRICT_MODEL)
    assert strict["valid"] is False and strict["violation_kinds"] == {"revoked-while-held": 1}
    assert strict["model"] == STRICT and strict["lapse_count"] == 0


def test_boundary_is_the_acquire_invocation_plus_the_ttl() -> None:
    assert mutex.check(stopped_holder(1000), model=TTL)["lapse_count"] == 1
    ops = stopped_holder(1000)
    ops[5] = Op(5, 1000 * MS - 1, 1, "ok", "acquire", "k", 2)  # 1 ns before it could expire
    r = mutex.check(ops, model=TTL)
    assert r["valid"] is False and r["violation_kinds"] == {"early-grant": 1}


def test_recorded_renewal_extends_the_lease() -> None:
    # renewed at 800 ms: the lease cannot run out before 1800 ms
    r = mutex.check(stopped_holder(1200, renew_ms=800), model=TTL)
    assert r["valid"] is False and r["violation_kinds"] == {"early-grant": 1}
    r = mutex.check(stopped_holder(1900, renew_ms=800), model=TTL)
    assert r["valid"] is True and r["lapse_count"] == 1


def test_overlap_with_a_released_holder_is_invalid_in_both_models() -> None:
    ops = history(
        (0, 0, "invoke", "acquire", None),
        (1, 0, "ok", "acquire", 1),
        (2, 1, "invoke", "acquire", None),
        (3, 1, "ok", "acquire", 2),
        (4, 0, "invoke", "release", None),
        (5, 0, "ok", "release", None),
    )
    for model in (TTL, STRICT_MODEL):
        assert mutex.check(ops, model=model)["violation_kinds"] == {"overlap": 1}


def test_bare_history_is_judged_strictly() -> None:
    r = check_all(stopped_holder(1200))
    assert r["valid"] is False and r["model"] == STRICT
    assert stored_model(None) == STRICT_MODEL
    assert stored_model(None, LEASE).lease_ns is None  # no TTL known: nothing can lapse


def test_stored_model_reads_the_run_or_its_backend() -> None:
    lock = {"model": LEASE, "expiry": "ttl", "ttl_ms": 2000}
    m = stored_model({"backend": "redis", "model": LEASE, "lock": lock})
    assert m == LockModel(LEASE, "ttl", 2000.0)
    assert stored_model({"backend": "redis", "lock": lock}, STRICT).name == STRICT
    # stored before runs wrote "lock": the backend's declaration and the workload's TTL
    old = {"backend": "postgres-lease", "workload_opts": {"ttl_ms": 3000}}
    assert stored_model(old) == LockModel(LEASE, "ttl", 3000.0)
    assert stored_model({**old, "backend": "postgres"}).expiry == "none"
    assert stored_model({**old, "backend": "zookeeper"}).expiry == "hidden"
    zk_opts = {"backend": "python-redis-lock", "backend_opts": {"auto_renewal": "true"}}
    assert stored_model({**old, **zk_opts}).expiry == "hidden"
    # an unknown backend or a bad TTL proves no lapse
    assert stored_model({**old, "backend": "nope"}).lease_ns is None
    bad = {"backend": "redis", "lock": {**lock, "ttl_ms": "2000"}}
    assert stored_model(bad).lease_ns is None


def _run_dir(tmp_path: Path, ops: list[Op]) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    config = {
        "backend": "redis",
        "workload": "mutex",
        "workload_opts": {"ttl_ms": 1000},
        "nemesis": [],
        "time_limit": 2.0,
        "duration_s": 2.5,
        "model": LEASE,
        "lock": {"fenced": True, "model": LEASE, "expiry": "ttl", "ttl_ms": 1000},
    }
    (d / "config.json").write_text(json.dumps(config))
    (d / "history.jsonl").write_text("".join(json.dumps(o.to_dict()) + "\n" for o in ops))
    return d


def test_check_judges_a_stored_run_under_its_model_or_the_one_asked(tmp_path: Path) -> None:
    d = _run_dir(tmp_path, stopped_holder(1200))
    runner = CliRunner()
    lease = runner.invoke(main, ["check", "--json", str(d)])
    res = json.loads(lease.output)
    assert lease.exit_code == 0, lease.output
    assert res["model"] == LEASE and res["checkers"]["mutex"]["lapse_count"] == 1
    strict = runner.invoke(main, ["check", "--model", "strict", str(d)])
    assert strict.exit_code == 1, strict.output
    bad = runner.invoke(main, ["check", "--model", "loose", str(d)])
    assert bad.exit_code == 2 and "loose" in bad.output


def test_jepsen_etcd_history_stays_invalid() -> None:
    if not ETCD.exists():
        pytest.skip(f"shared data absent: {ETCD}")
    ops = read(ETCD).ops
    assert mutex.check(ops, model=STRICT_MODEL)["valid"] is False
    # no TTL known for it: its two revoked holds are grants given away early
    r = mutex.check(ops, model=LockModel(LEASE))
    assert r["valid"] is False and r["violation_kinds"] == {"early-grant": 2}


def test_a_holder_stops_at_its_first_release_whatever_comes_after() -> None:
    # client 0's release is refused at 100 ms; it sends another, whose outcome is unknown, at
    # 1500 ms: it stopped acting at 100 ms, so client 1's grant at 1200 ms is a lapse, not an
    # overlap with a holder that released later
    ops = stopped_holder(1200)
    ops += [
        Op(8, 1500 * MS, 0, "invoke", "release", "k"),
        Op(9, 1501 * MS, 0, "info", "release", "k"),
    ]
    r = mutex.check(ops, model=TTL)
    assert r["valid"] is True and r["lapse_count"] == 1, r["summary"]
    early = stopped_holder(500) + ops[-2:]
    r = mutex.check(early, model=TTL)
    assert r["violation_kinds"] == {"early-grant": 1}, r["summary"]
