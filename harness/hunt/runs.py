"""Runs as ordinary ``harness run`` processes: a base command (backend, workload, options, time
limit, seed), a schedule file, a store of their own each; their verdicts and near misses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..run.config import RunConfig
from . import near_miss

#: a run that outlives its time limit by this much (servers that never stop) is ended by pid
OVERRUN_S = 120.0


@dataclass
class Outcome:
    """One finished run: its directory, verdict (``"invalid"``, ``"valid"``, ``"unknown"``, or
    ``"error"`` when it left no verdict), and near misses."""

    run_dir: Path | None
    verdict: str
    exit_code: int
    near: dict[str, float | None] = field(default_factory=dict)
    error: str = ""

    @property
    def invalid(self) -> bool:
        return self.verdict == "invalid"


def config_of(config: dict[str, Any]) -> RunConfig:
    """A run's configuration from its config.json (the fields ``RunConfig`` has)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(RunConfig)}
    # config.json's netns says whether the run used a namespace, not what was asked for
    kw = {k: v for k, v in config.items() if k in names and k != "netns"}
    defaults = RunConfig()
    for k, v in kw.items():  # JSON has no tuples: a tuple field comes back as a list
        if isinstance(v, list) and isinstance(getattr(defaults, k), tuple):
            kw[k] = tuple(v)
    kw["store"] = Path(kw.get("store", "store"))
    return RunConfig(**kw)


def base_argv(cfg: RunConfig) -> list[str]:
    """``harness run`` arguments for ``cfg``'s backend, workload, options, load and seed: the
    faults come from a schedule file, the store from the caller (both added by ``launch``)."""
    from ..campaign.plan import run_argv

    argv = run_argv(replace(cfg, nemesis=[], nemesis_opts={}, schedule=None, store=Path(".")))
    cut = argv.index("--nemesis")
    argv = argv[:cut] + argv[cut + 2 :]  # --schedule gives the faults
    cut = argv.index("--store")
    return argv[:cut] + argv[cut + 2 :]


def launch(argv: Sequence[str], schedule: Path, store: Path, log: Path) -> subprocess.Popen:
    store.mkdir(parents=True, exist_ok=True)
    out = open(log, "wb")  # noqa: SIM115 - closed when the process is collected
    cmd = [sys.executable, "-m", "harness", *argv, "--schedule", str(schedule)]
    return subprocess.Popen(
        [*cmd, "--store", str(store)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C is ours to pass on, once, as SIGINT
    )


def collect(proc: subprocess.Popen, store: Path, log: Path) -> Outcome:
    """The verdict of a finished run process, from what it stored."""
    code = proc.returncode
    latest = store / "latest"
    run_dir = latest.resolve() if latest.exists() else None
    results: dict[str, Any] = {}
    if run_dir is not None:
        with contextlib.suppress(OSError, ValueError):
            results = json.loads((run_dir / "results.json").read_text())
    valid = results.get("valid", "missing")
    verdict = {True: "valid", False: "invalid"}.get(valid, "unknown") if results else "error"
    error = ""
    if verdict == "error":
        with contextlib.suppress(OSError):
            lines = log.read_text(errors="replace").strip().splitlines()
            error = lines[-1][:300] if lines else f"exit {code}"
    near = near_miss.of_run(run_dir) if run_dir is not None else {}
    return Outcome(run_dir, verdict, code if code is not None else -1, near, error)


def run_many(
    argv: Sequence[str],
    schedule: Path,
    stores: Sequence[Path],
    jobs: int,
    time_limit: float,
    *,
    stop: Callable[[], bool] = lambda: False,
    done: Callable[[Outcome], None] = lambda o: None,
) -> list[Outcome]:
    """One run into each of ``stores``, ``jobs`` at once. ``stop()`` true: no new run starts and
    the running ones get SIGINT (each stops and checks what it recorded). Ctrl-C does the same,
    then is raised again once every run has ended."""
    todo = list(stores)
    running: list[tuple[subprocess.Popen, Path, Path, float]] = []
    out: list[Outcome] = []
    interrupted = False
    try:
        while todo or running:
            try:
                while todo and len(running) < jobs and not stop() and not interrupted:
                    s = todo.pop(0)
                    log = s.with_suffix(".log")
                    s.parent.mkdir(parents=True, exist_ok=True)
                    running.append((launch(argv, schedule, s, log), s, log, time.monotonic()))
                if (stop() or interrupted) and todo:
                    todo.clear()
                for item in list(running):
                    p, s, log, t0 = item
                    if p.poll() is None:
                        if time.monotonic() - t0 > time_limit + OVERRUN_S:
                            p.kill()  # our own child, by pid
                            p.wait()
                        else:
                            continue
                    running.remove(item)
                    o = collect(p, s, log)
                    out.append(o)
                    done(o)
                time.sleep(0.05)
            except KeyboardInterrupt:
                interrupted = True
                for p, *_ in running:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGINT)
    finally:
        for p, *_ in running:  # only on an error of ours: never leave a run behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(60)
    if interrupted:
        raise KeyboardInterrupt
    return out
