"""Running a campaign: check every cell before the first run, write the manifest, skip the runs
that already finished, and run the others, up to ``jobs`` at once.

Each run is its own ``harness run`` process (the very command recorded for re-running it alone):
a run forks clients, installs signal handlers, builds a clock shim and enters a private network
namespace, and a separate process keeps all of that, and any crash, to itself. Each process gets
its own store (``runs/<cell>/r<repetition>-s<seed>-<settings>/``), its own namespace and ports, so parallel
runs do not see each other, and a finished run is found again by its place on resume.

Runs start in their own session (a terminal's Ctrl-C reaches the campaign, which passes it on to
every running run and starts no more) and get SIGTERM if the campaign dies.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..run import store
from .plan import PlannedRun, run_argv, run_config, shown_command
from .spec import Campaign, Cell

MANIFEST = "campaign.json"
LOG = "harness-run.log"
FORMAT = 1
# A run ends by itself (its time limit, then bounded stop, check and report); past this it is
# stopped like a Ctrl-C, and killed if that does not end it.
RUN_OVERHEAD_S = 300.0
KILL_AFTER_S = 60.0

_PR_SET_PDEATHSIG = 1


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass
class CellCheck:
    cell: Cell
    status: str = "runnable"  # or "not applicable", "not available here"
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.cell.as_dict() | {"status": self.status, "why": self.why}


def check_cells(campaign: Campaign, campaign_dir: Path) -> list[CellCheck]:
    """Every cell checked before the first run: a cell that cannot be (clock x etcd) is "not
    applicable", one whose server (or engine, or image) is missing here "not available here";
    bad input raises."""
    from ..nemesis import NotApplicable
    from ..run import container_runs, prepare
    from ..runtime import MissingBinary

    checks = []
    for cell in campaign.cells():
        cfg = run_config(cell, campaign.run, 0, campaign_dir)
        lacking = container_runs.unavailable(cfg) if cfg.runtime == "docker" else None
        if lacking:
            checks.append(CellCheck(cell, "not available here", lacking))
            continue
        try:
            prepare(cfg)
            run_argv(cfg)  # every option has its flag
            checks.append(CellCheck(cell))
        except NotApplicable as e:
            checks.append(CellCheck(cell, "not applicable", str(e)))
        except MissingBinary as e:
            checks.append(CellCheck(cell, "not available here", str(e)))
    return checks


def finished_run(run_store: Path) -> Path | None:
    """The run directory of a finished attempt (results.json, not interrupted), newest first."""
    for d in sorted(
        run_store.glob(f"*/*/{store.CONFIG}"), key=lambda p: p.parent.name, reverse=True
    ):
        d = d.parent
        if not (d / store.RESULTS).exists():
            continue
        try:
            config = store.read_object(d / store.CONFIG)
        except (OSError, ValueError):  # unreadable: not a finished attempt
            continue
        if config.get("interrupted") or config.get("failed"):
            continue
        return d
    return None


def attempts(run_store: Path) -> list[Path]:
    return sorted((p.parent for p in run_store.glob(f"*/*/{store.CONFIG}")), key=lambda p: p.name)


def write_manifest(
    campaign_dir: Path,
    campaign: Campaign,
    checks: list[CellCheck],
    runs: list[PlannedRun],
    shard: tuple[int, int],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``campaign.json``: the campaign, its cells (with why a cell cannot run), this store's
    runs with their seeds and commands. A manifest of another campaign is kept aside."""
    campaign_dir.mkdir(parents=True, exist_ok=True)
    path = campaign_dir / MANIFEST
    invocations: list[dict[str, Any]] = []
    if path.exists():
        try:
            before = store.read_json(path)
            old = before.get("campaign", {}).get("fingerprint")
            invocations = previous_invocations(before)
        except (OSError, ValueError, AttributeError):
            old = "unreadable"
        if old != campaign.fingerprint:
            path.replace(campaign_dir / f"campaign-{old}.json")
    by_key = {c.cell.key: c for c in checks}
    manifest = {
        "format": FORMAT,
        "campaign": campaign.as_dict(),
        "cells": [c.as_dict() for c in checks],
        "shard": {"index": shard[0], "count": shard[1]},
        "runs": [
            r.as_dict() | {"command": shown_command(run_argv(_cfg(r, campaign, campaign_dir)))}
            for r in runs
            if by_key[r.cell.key].status == "runnable"
        ],
        "harness_version": __version__,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "written_at": datetime.now(UTC).isoformat(),
        # Every invocation into this store so far (a resumed or extended campaign reuses their
        # runs): the wall time it took is their sum (see ``invocation_done``).
        "invocations": invocations,
        **(extra or {}),
    }
    store.write_json(path, manifest)
    return manifest


def previous_invocations(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The invocations a store's manifest records (one made of its wall time when it predates
    the list)."""
    got = manifest.get("invocations")
    if isinstance(got, list):
        return [i for i in got if isinstance(i, dict)]
    if isinstance(manifest.get("wall_time_s"), (int, float)):
        return [
            {"wall_time_s": manifest["wall_time_s"], "interrupted": manifest.get("interrupted")}
        ]
    return []


#: how often a running invocation rewrites its record (``invocation_progress``)
PROGRESS_S = 2.0


def invocation_started(manifest: dict[str, Any], jobs: int) -> dict[str, Any]:
    """Record this invocation as it starts, open (``ended_at`` None, ``interrupted`` until it
    ends): an invocation killed outright (the machine's session ending, SIGKILL) keeps the
    wall time of its last ``invocation_progress``, where it once left no record at all and the
    store's wall time missed it."""
    inv: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "ended_at": None,
        "wall_time_s": 0.0,
        "runs_run": 0,
        "jobs": jobs,
        "interrupted": True,
    }
    manifest.setdefault("invocations", []).append(inv)
    invocation_progress(manifest, inv, 0.0, 0)
    return inv


def invocation_progress(
    manifest: dict[str, Any], inv: dict[str, Any], wall_s: float, ran: int
) -> None:
    """This invocation's wall time and runs so far; the store's wall time their sum."""
    inv["wall_time_s"] = round(wall_s, 1)
    inv["runs_run"] = ran
    invs = manifest.setdefault("invocations", [])
    manifest["wall_time_s"] = round(sum(i.get("wall_time_s") or 0 for i in invs), 1)


def invocation_done(
    manifest: dict[str, Any], inv: dict[str, Any], wall_s: float, ran: int, interrupted: bool
) -> None:
    """Close this invocation's record; the store's wall time is the sum over its invocations."""
    invocation_progress(manifest, inv, wall_s, ran)
    inv["ended_at"] = datetime.now(UTC).isoformat()
    inv["interrupted"] = interrupted
    manifest["interrupted"] = interrupted


def _cfg(r: PlannedRun, campaign: Campaign, campaign_dir: Path):
    return run_config(r.cell, campaign.run, r.seed, r.store(campaign_dir))


@dataclass
class Outcome:
    run: PlannedRun
    run_dir: Path | None
    skipped: bool = False  # finished before this invocation
    error: str = ""  # the run ended without a verdict
    exit_code: int = 2
    results: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Running:
    run: PlannedRun
    proc: subprocess.Popen
    log: Any
    started: float
    stopping: float | None = None


def _die_with_parent() -> None:
    # In the child between fork and exec: a dead campaign stops its runs like a Ctrl-C would.
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or [""])[-1].strip()


def execute(
    campaign: Campaign,
    campaign_dir: Path,
    runs: list[PlannedRun],
    jobs: int,
    say: Callable[[str], None],
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Outcome], bool]:
    """Run what has not finished, up to ``jobs`` at once; (outcomes in plan order, interrupted).
    ``progress(n)``: called as each run finishes, with how many this call has run.

    A Ctrl-C or SIGTERM is passed on to every running run (each stops, checks what it recorded
    and stores its verdict, marked interrupted) and no further run starts."""
    from checkers import exit_code

    outcomes: dict[int, Outcome] = {}
    todo: list[PlannedRun] = []
    for r in runs:
        d = finished_run(r.store(campaign_dir))
        if d is not None:
            res = _results(d)
            outcomes[r.index] = Outcome(r, d, True, "", exit_code(res.get("valid")), res)
        else:
            todo.append(r)
    if len(todo) < len(runs):
        say(
            f"resuming: {len(runs) - len(todo)} of {len(runs)} runs finished before, {len(todo)} to run"
        )
    stop = {"signal": 0}
    running: list[_Running] = []

    def on_signal(signum: int, frame: Any) -> None:
        if not stop["signal"]:
            say(
                "interrupted: stopping the running runs (each keeps its verdict); no new run starts"
            )
        stop["signal"] = signum
        for rn in running:
            _signal(rn, signal.SIGINT)

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    total, done = len(runs), len(runs) - len(todo)
    limit = campaign.run["time_limit"] + RUN_OVERHEAD_S
    try:
        queue = list(todo)
        while queue or running:
            while queue and len(running) < jobs and not stop["signal"]:
                running.append(_start(queue.pop(0), campaign, campaign_dir))
            time.sleep(0.1)
            for rn in list(running):
                now = time.monotonic()
                if rn.proc.poll() is None:
                    if rn.stopping is None and now - rn.started > limit:
                        say(f"{rn.run.id}: still running after {limit:g} s: stopping it")
                        _signal(rn, signal.SIGINT)
                        rn.stopping = now
                    elif rn.stopping is not None and now - rn.stopping > KILL_AFTER_S:
                        _signal(rn, signal.SIGKILL)
                    continue
                running.remove(rn)
                rn.log.close()
                done += 1
                o = _finish(rn)
                outcomes[rn.run.index] = o
                say(_line(o, done, total))
                if progress is not None:
                    progress(done - (total - len(todo)))
            if stop["signal"] and not running:
                break
    finally:
        for rn in running:  # an error of our own: leave no run behind
            _signal(rn, signal.SIGKILL)
            rn.proc.wait()
            rn.log.close()
        for s, h in old.items():
            signal.signal(s, h)
    return [outcomes[r.index] for r in runs if r.index in outcomes], bool(stop["signal"])


def _signal(rn: _Running, sig: int) -> None:
    try:
        os.kill(rn.proc.pid, sig)  # by pid: the run passes it on to what it started
    except ProcessLookupError:
        pass


def _start(r: PlannedRun, campaign: Campaign, campaign_dir: Path) -> _Running:
    cfg = _cfg(r, campaign, campaign_dir)
    d = r.store(campaign_dir)
    d.mkdir(parents=True, exist_ok=True)
    log = open(d / LOG, "a", encoding="utf-8")  # noqa: SIM115 (closed when the run ends)
    argv = run_argv(cfg)
    log.write(f"$ {shown_command(argv)}\n")
    log.flush()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *argv],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
        env={**os.environ, "COLUMNS": "200"},
    )
    return _Running(r, proc, log, time.monotonic())


def _results(d: Path) -> dict[str, Any]:
    try:
        res = store.read_json(d / store.RESULTS)
        return res if isinstance(res, dict) else {}
    except (OSError, ValueError):
        return {}


def _finish(rn: _Running) -> Outcome:
    from checkers import exit_code

    tried = attempts(Path(rn.log.name).parent)
    d = tried[-1] if tried else None
    if d is None or not (d / store.RESULTS).exists():
        why = _last_line(Path(rn.log.name)) or f"harness run exited {rn.proc.returncode}"
        return Outcome(rn.run, d, error=why.removeprefix("error:").strip())
    res = _results(d)
    return Outcome(rn.run, d, False, "", exit_code(res.get("valid")), res)


def _line(o: Outcome, done: int, total: int) -> str:
    from checkers import verdict_word

    head = f"[{done}/{total}] {o.run.cell.key} r{o.run.repetition} (seed {o.run.seed}):"
    if o.error:
        return f"{head} error: {o.error}"
    word = verdict_word(o.results.get("valid")).upper()
    return f"{head} {word}  {o.results.get('summary', '')}"
