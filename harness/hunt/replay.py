"""``harness replay``: a run's configuration, seed and schedule re-run N times into a store of
their own, and the reproduction rate (k invalid of n decided runs, with a Wilson 95% interval).

On real servers a replay is a distribution, never a promise: the same faults at the same times
meet clients at other points of their work, so a schedule that broke a lock once breaks it at
some rate, which is what this measures."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..campaign.stats import wilson
from ..nemesis import schedule as schedules
from ..run.config import RunConfig
from . import runs

FILE = "replay.json"
PAGE = "replays.html"  # its exports are replays.json/.csv/.md, beside replay.json
DISCLAIMER = (
    "a replay on real servers is a distribution, not a promise: the same faults at the same "
    "times meet the clients at other points of their work"
)


class ReplayError(schedules.ScheduleError):
    """A run directory that cannot be replayed (one line for the user)."""


@dataclass
class Rate:
    runs: int  # decided runs (valid or invalid)
    invalid: int
    unknown: int = 0
    errors: int = 0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.invalid, self.runs) or (0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {
            "runs": self.runs,
            "invalid": self.invalid,
            "rate_low": round(lo, 4),
            "rate_high": round(hi, 4),
            "unknown": self.unknown,
            "errors": self.errors,
        }

    def words(self) -> str:
        lo, hi = self.interval
        extra = "".join(
            f", {n} {w}" for n, w in ((self.unknown, "unknown"), (self.errors, "failed")) if n
        )
        return f"{self.invalid} invalid of {self.runs} (95% interval {lo:.0%} to {hi:.0%}){extra}"


def rate_of(outcomes: Sequence[runs.Outcome]) -> Rate:
    decided = [o for o in outcomes if o.verdict in ("valid", "invalid")]
    return Rate(
        len(decided),
        sum(o.invalid for o in decided),
        sum(o.verdict == "unknown" for o in outcomes),
        sum(o.verdict == "error" for o in outcomes),
    )


def source(run_dir: Path) -> tuple[RunConfig, Path]:
    """The configuration and the schedule file of a stored run; ReplayError when it has none."""
    cfg_path, sched = run_dir / "config.json", run_dir / schedules.FILE
    if not cfg_path.is_file():
        raise ReplayError(f"{run_dir}: not a run directory (no config.json)")
    if not sched.is_file():
        raise ReplayError(
            f"{run_dir}: no {schedules.FILE} (a run stored before schedules were recorded)"
        )
    try:
        config = json.loads(cfg_path.read_text())
        cfg = runs.config_of(config)
    except (ValueError, TypeError) as e:
        raise ReplayError(f"{cfg_path}: cannot be read as a run's configuration ({e})") from None
    schedules.load(sched)  # a file that cannot be run is refused now
    return cfg, sched


def replay(
    argv: Sequence[str],
    schedule: Path,
    out: Path,
    repeat: int,
    jobs: int,
    time_limit: float,
    *,
    done: Callable[[runs.Outcome], None] = lambda o: None,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[Rate, list[runs.Outcome]]:
    """``repeat`` runs of ``argv`` with ``schedule`` into ``out``/runs; replay.json and its page.
    Ctrl-C stops the runs and still writes what finished (then raises KeyboardInterrupt)."""
    out.mkdir(parents=True, exist_ok=True)
    sched = out / schedules.FILE
    if schedule.resolve() != sched.resolve():
        shutil.copyfile(schedule, sched)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    stores = [out / "runs" / f"{stamp}-r{i}" for i in range(repeat)]
    outcomes: list[runs.Outcome] = []

    def one(o: runs.Outcome) -> None:
        outcomes.append(o)
        done(o)

    interrupted = False
    try:
        runs.run_many(argv, sched, stores, jobs, time_limit, stop=stop, done=one)
    except KeyboardInterrupt:
        interrupted = True
    rate = rate_of(outcomes)
    write(out, argv, rate, outcomes, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return rate, outcomes


def command(argv: Sequence[str], schedule: Path) -> str:
    import shlex

    return shlex.join(["harness", *argv, "--schedule", str(schedule)])


def write(
    out: Path, argv: Sequence[str], rate: Rate, outcomes: Sequence[runs.Outcome], stopped: bool
) -> Path | None:
    """replay.json and the comparison page of the replays (None when no run finished)."""
    doc = rate.to_dict() | {
        "command": command(argv, out / schedules.FILE),
        "run_dirs": [str(o.run_dir) for o in outcomes if o.run_dir is not None],
        "verdicts": [o.verdict for o in outcomes],
        "interrupted": stopped,
        "note": DISCLAIMER,
    }
    (out / FILE).write_text(json.dumps(doc, indent=1) + "\n")
    dirs = [o.run_dir for o in outcomes if o.run_dir is not None]
    if not dirs:
        return None
    from ..campaign import document
    from ..campaign.gather import gather

    try:
        page, _ = document.write(gather(dirs), out / PAGE)
    except Exception:  # the rate stands without its page  # noqa: BLE001
        return None
    return page
