"""pytest plugin: gate a lock library's CI on the harness.

    def test_my_lock_is_safe(lock_harness):
        result = lock_harness(backend="redis", nemesis="client-pause", time_limit=20)
        assert result.valid is True, result.results["summary"]

The ``lock_harness`` fixture runs one test per call (real servers, started and torn down by the
run) and returns a typed ``LockHarnessResult`` (the verdict, the violations with their two holds,
counts per kind, the faults injected; results.json's schema is in docs/adapter-protocol.md).
``backend=`` also takes a ``Backend`` class, registered for the call only: a test-only
seeded-bug subclass needs no entry point (``backends.registry.registered``). Keywords are the run's fields (``harness run``'s options:
backend, workload, nemesis as a list or "a,b" text, time_limit, seed ...) and the workload's
options (ttl_ms=..., fencing=...); any other name is refused with every accepted one listed.

Where runs land: ``pytest --lock-harness-store DIR`` (or the ini option ``lock_harness_store``,
relative to the rootdir) keeps them under DIR/<test name>/, e.g. a directory a CI job uploads;
without it, under the test's tmp_path, which pytest rotates away after three sessions; ``store=``
in a call wins over both. Each run directory is also a user property of its test
(``lockharness_run``), with its seed, report and the command that runs it again
(``lockharness_seed``, ``lockharness_report``, ``lockharness_rerun``), so pytest's --junitxml
names them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the plugin loads with every pytest session: the harness only when used
    from checkers.results import Verdict


@dataclass(frozen=True)
class GateHold:
    """One hold of a violation: who held ``key`` from ``start_ns`` to ``end_ns`` (ns since the
    run started; None: never ended), its fence, and its release's outcome."""

    key: Any
    process: Any
    start_ns: int
    end_ns: int | None
    fence: Any
    release: str | None  # "ok", "fail", "info"; None: no release came

    @classmethod
    def of(cls, h: Any) -> GateHold | None:
        if not isinstance(h, dict):
            return None
        return cls(h.get("key"), h.get("process"), h.get("start", 0), h.get("end"),
                   h.get("fence"), h.get("release"))  # fmt: skip


@dataclass(frozen=True)
class GateViolation:
    """A violation the mutex checker found: its kind (overlap, revoked-while-held, early-grant,
    release-by-non-owner), its key and its two holds."""

    kind: str
    key: Any
    first: GateHold | None
    second: GateHold | None


@dataclass(frozen=True)
class LockHarnessResult:
    """What a gate asserts on, typed, from the run's results.json (schema ``schema_version``)."""

    verdict: Verdict
    valid: Any  # results.json's value: True, False, "unknown" or None
    summary: str
    hold_count: int  # grants the mutex checker saw held: the evidence behind a VALID
    violation_kinds: dict[str, int]  # every violation, counted by kind
    violations: tuple[GateViolation, ...]  # examples, as results.json keeps them (capped)
    faults: dict[str, dict[str, int]]  # fault kind -> injected, healed, cut_short ...
    schema_version: int
    exit_code: int
    run_dir: Path
    report: Path | None
    results: dict[str, Any]  # results.json itself
    config: dict[str, Any]  # config.json itself

    @property
    def violation_count(self) -> int:
        return sum(self.violation_kinds.values())

    def injected(self, fault: str) -> int:
        """How many ``fault``s ran their course."""
        return int(self.faults.get(fault, {}).get("injected", 0))

    @classmethod
    def of(cls, run: Any) -> LockHarnessResult:
        from checkers.results import Verdict, mutex_result

        res = run.results
        mutex = mutex_result(res) or {}
        found = [v for v in mutex.get("violations") or [] if isinstance(v, dict)]
        return cls(
            verdict=Verdict.from_json(res.get("valid")),
            valid=res.get("valid"),
            summary=str(res.get("summary", "")),
            hold_count=int(mutex.get("hold_count") or 0),
            violation_kinds=dict(mutex.get("violation_kinds") or {}),
            violations=tuple(
                GateViolation(
                    v.get("kind", ""),
                    v.get("key"),
                    GateHold.of(v.get("first")),
                    GateHold.of(v.get("second")),
                )  # fmt: skip
                for v in found
            ),
            faults=dict(res.get("faults") or {}),
            schema_version=int(res.get("schema_version", 0)),
            exit_code=run.exit_code,
            run_dir=run.run_dir,
            report=run.report,
            results=res,
            config=run.config,
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    where = (
        "keep the lock_harness fixture's runs under DIR/<test name>/ (e.g. a directory CI "
        "uploads); default: the test's tmp_path, rotated away by pytest"
    )
    parser.getgroup("lockharness").addoption(
        "--lock-harness-store", dest="lock_harness_store", metavar="DIR", default=None, help=where
    )
    parser.addini("lock_harness_store", where + " (relative to the rootdir)", default="")


def _store(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    config = request.config
    given = config.getoption("lock_harness_store")
    base = Path(given) if given else None
    if base is None and config.getini("lock_harness_store"):
        base = config.rootpath / config.getini("lock_harness_store")
    if base is None:
        return tmp_path / "store"
    return base / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:120]


def _nemeses(value: Any) -> Any:
    """ "client-pause" or "kill,pause" as harness run's --nemesis takes them ("none": none)."""
    if not isinstance(value, str):
        return value
    return [] if value.strip() in ("", "none") else [x.strip() for x in value.split(",")]


def _check_names(kwargs: dict[str, Any]) -> None:
    """Refuse a misspelt keyword, listing the run's fields and the workload's options."""
    from harness.run.config import RunConfig
    from workloads.registry import UnknownWorkload, workload_class

    run_fields = sorted(f.name for f in fields(RunConfig))
    workload = kwargs.get("workload", RunConfig.workload)
    try:
        options = sorted(workload_class(workload).options)
    except UnknownWorkload:
        return  # the run refuses it, with the list of workloads
    unknown = sorted(set(kwargs) - set(run_fields) - set(options))
    if unknown:
        raise TypeError(
            f"lock_harness() got unknown keyword {', '.join(unknown)}; accepted: the run's "
            f"fields {', '.join(run_fields)}; workload {workload}'s options {', '.join(options)}"
        )


@pytest.fixture
def lock_harness(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[..., LockHarnessResult]:
    from backends.registry import registered
    from harness.run import run_test
    from harness.run.config import run_config

    def run(**kwargs: Any) -> LockHarnessResult:
        """Flat keywords: run fields, and the workload's options (ttl_ms=..., fencing=...)."""
        if "nemesis" in kwargs:
            kwargs["nemesis"] = _nemeses(kwargs["nemesis"])
        _check_names(kwargs)
        kwargs.setdefault("store", _store(request, tmp_path))
        test_only = kwargs.get("backend")
        classes = (test_only,) if isinstance(test_only, type) else ()
        if classes:
            kwargs["backend"] = test_only.name  # type: ignore[union-attr]
        with registered(*classes):
            result = run_test(run_config(**kwargs))
        from .junit import follow_up

        # pytest's --junitxml writes these as the test's properties: where to look, how to rerun
        request.node.user_properties.append(("lockharness_run", str(result.run_dir)))
        for k, v in follow_up(result.config, result.run_dir, result.report).items():
            if k != "run":
                request.node.user_properties.append((f"lockharness_{k}", v))
        return LockHarnessResult.of(result)

    return run
