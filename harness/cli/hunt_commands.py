"""``harness replay`` (a run's schedule re-run N times: its reproduction rate) and ``harness
hunt`` (search for a failing fault schedule, shrink it, replay it): ``harness.hunt``."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .app import main
from .errors import UserError, friendly
from .output import err, say

REPLAY_NOTE = "note: a replay on real servers is a distribution, not a promise"


def _print_rate(rate: Any, out: Path, page: bool) -> None:
    say("reproduced: ", (rate.words(), "bold"))
    say(REPLAY_NOTE, style="yellow")
    say("replay: ", str(out / "replay.json"))
    if page and (out / "replays.html").exists():
        say("page:   ", str(out / "replays.html"))


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--repeat", "-n", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option(
    "--store",
    "store_dir",
    type=click.Path(),
    default=None,
    help="Where the replays are stored (default: replays/<run> beside the run's store).",
)
@friendly
def replay(run_dir: str, repeat: int, jobs: int, store_dir: str | None) -> None:
    """Re-run a stored run (its backend, options, workload, seed and schedule.json) N times and
    print how often it was INVALID: k of n, with a Wilson 95% interval (replay.json and a
    comparison page of the replays).

    \b
    Examples:
      harness replay store/latest --repeat 10 --jobs 2
    Exit code: 1 when some replay was INVALID, 0 when none was, 2 on bad input.
    """
    from ..hunt import replay as rp
    from ..hunt import runs

    src = Path(run_dir).resolve()
    cfg, sched = rp.source(src)
    argv = runs.base_argv(cfg)
    out = Path(store_dir) if store_dir else src.parent.parent / "replays" / src.name
    say(f"replaying {src} {repeat} times ({jobs} at once) into {out}")
    n = [0]

    def done(o: Any) -> None:
        n[0] += 1
        say(f"  {n[0]}/{repeat} {o.verdict}  {o.run_dir or o.error}", to=err)

    try:
        rate, _ = rp.replay(argv, sched, out, repeat, jobs, cfg.time_limit, done=done)
    except KeyboardInterrupt:
        doc = json.loads((out / rp.FILE).read_text())
        say("interrupted: ", f"{doc['invalid']} invalid of {doc['runs']} finished", style="yellow")
        sys.exit(2)
    _print_rate(rate, out, True)
    if not rate.runs:
        raise UserError(f"no replay gave a verdict (see the logs in {out / 'runs'})")
    sys.exit(1 if rate.invalid else 0)


@main.command()
@click.option("--backend", "-b", required=True, help="Lock backend (see `harness backends`).")
@click.option("--workload", "-w", default="mutex", show_default=True)
@click.option("--opt", "opts", multiple=True, metavar="NAME=VALUE", help="Backend option.")
@click.option("--workload-opt", "wopts", multiple=True, metavar="NAME=VALUE")
@click.option(
    "--faults",
    default="client-pause,kill,pause,partition",
    show_default=True,
    help="Comma-separated nemesis kinds a schedule may use (see `harness nemeses`).",
)
@click.option("--budget", type=click.FloatRange(1, 7 * 24 * 3600), required=True,
              help="Seconds of wall time for the whole hunt (search, shrinking, replay).")  # fmt: skip
@click.option("--runs-per-candidate", "-k", type=click.IntRange(1, 100), default=1,
              show_default=True, help="Runs judging each candidate while searching.")  # fmt: skip
@click.option("--replay", "replays", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="Runs measuring the minimal schedule's reproduction rate.")  # fmt: skip
@click.option("--time-limit", "-t", type=float, default=6.0, show_default=True,
              help="Seconds a run.")  # fmt: skip
@click.option("--concurrency", "-c", type=int, default=5, show_default=True)
@click.option("--keys", type=int, default=2, show_default=True)
@click.option("--ttl", "ttl_ms", type=int, default=None, help="Workload option ttl_ms.")
@click.option("--seed", type=int, default=None, help="The search's seed (and every run's).")
@click.option("--store", "store_dir", default="hunts", show_default=True, type=click.Path(),
              help="Where the hunt is stored (a directory a hunt, under it).")  # fmt: skip
@friendly
def hunt(
    backend: str,
    workload: str,
    opts: tuple[str, ...],
    wopts: tuple[str, ...],
    faults: str,
    budget: float,
    runs_per_candidate: int,
    replays: int,
    time_limit: float,
    concurrency: int,
    keys: int,
    ttl_ms: int | None,
    seed: int | None,
    store_dir: str,
) -> None:
    """Search for a fault schedule that breaks the lock, shrink it, and measure how often it
    does: a Hypothesis search over schedules (fault kinds, targets, absolute or acquire-relative
    starts, durations in quarters of the TTL), each candidate judged by real runs, steered by
    near misses; then shrinking and a replay of the winner.

    \b
    Examples:
      harness hunt --backend redis --faults client-pause,partition,kill,clock --budget 600 -t 8
      harness hunt --backend redlock --faults kill --budget 120
    Exit code: 1 a failing schedule was found, 0 none within the budget (never "safe"), 2 bad
    input.
    """
    from backends.option_values import parse_pairs

    from ..hunt import replay as rp
    from ..hunt import runs
    from ..hunt.search import RUN_OVERHEAD_S, Hunt, OutOfBudget, Space
    from ..nemesis import nemesis_class
    from ..nemesis import schedule as schedules
    from ..run import prepare
    from ..run.config import RunConfig
    from ..runtime.base import node_names

    kinds = [k.strip() for k in faults.split(",") if k.strip()]
    if not kinds:
        raise UserError("--faults needs at least one nemesis kind")
    wo = parse_pairs(wopts, "--workload-opt")
    if ttl_ms is not None:
        wo["ttl_ms"] = ttl_ms
    cfg = RunConfig(
        backend=backend,
        workload=workload,
        workload_opts=wo,
        backend_opts=parse_pairs(opts, "--opt"),
        time_limit=time_limit,
        concurrency=concurrency,
        keys=keys,
        seed=seed,
    )
    # Every kind must be able to act here: a one-fault schedule of each is checked as a run
    # would check it, before anything starts.
    plan = prepare(cfg)
    nodes = node_names(plan.need.nodes)
    targets = {}
    for k in kinds:
        cls = nemesis_class(k)
        targets[k] = ["random", *nodes] if "target" in cls.options else []
        probe = RunConfig(**{**cfg.__dict__, "nemesis": [k], "schedule": [{"kind": k}]})
        prepare(probe)
    lease = plan.workload.lease_ms()
    clients = [k for k in kinds if getattr(nemesis_class(k), "client_target", False)]
    space = Space(kinds, targets, lease, time_limit, clients, keys)
    argv = runs.base_argv(cfg)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    label = "+".join(kinds)
    out = Path(store_dir) / f"{backend}-{workload}-{label}" / stamp
    out.mkdir(parents=True, exist_ok=True)
    db = Path(store_dir) / f"{backend}-{workload}-{label}" / ".hypothesis"
    say(
        (backend, "bold"),
        f" / {workload} / faults {', '.join(kinds)}: budget {budget:g} s, runs of "
        f"{time_limit:g} s, TTL {lease:g} ms",
    )
    say(f"hunt: {out}", to=err)
    h = Hunt(argv, space, out, budget, runs_per_candidate, 1, lambda s: say(s, to=err), db)
    run_s = time_limit + RUN_OVERHEAD_S  # a run's wall time, start-up and check included
    reserve = min(replays * run_s, budget / 3)
    interrupted = False
    minimal: list[dict[str, Any]] | None = None
    rate = None
    try:
        h.search(seed, h.deadline - reserve)
        if h.found is None and h.left() > run_s:  # the replay's reserve is not needed: go on
            h.search(None if seed is None else seed + 1, h.deadline)
        if h.found is not None:
            minimal = h.shrink(h.found.faults, h.deadline - reserve)
    except KeyboardInterrupt:
        interrupted = True
    except OutOfBudget:
        pass
    if minimal is None and h.found is not None:
        minimal = h.found.faults
    min_path = out / "minimal-schedule.json"
    command = None
    report = None
    if minimal is not None:
        schedules.write(min_path, schedules.document(minimal, "hunt", lease_ms=lease))
        command = rp.command(argv, min_path)
        last = next((t for t in reversed(h.tried) if t.faults == minimal and t.invalid), h.found)
        for d, v in zip(last.run_dirs, last.verdicts, strict=False):
            if v == "invalid" and (Path(d) / "report.html").exists():
                report = str(Path(d) / "report.html")
                break
        if replays and not interrupted:
            say(f"replaying the minimal schedule {replays} times", to=err)
            try:
                rate, _ = rp.replay(
                    argv, min_path, out / "replay", replays, 1, time_limit,
                    stop=lambda: not h.room(),
                )  # fmt: skip
            except KeyboardInterrupt:
                interrupted = True
            if rate is not None and not (rate.runs or rate.unknown or rate.errors):
                rate = None  # the budget left no time for a replay: hunt.json says none was made
    doc = {
        "found": minimal is not None,
        "candidates": len(h.tried),
        "runs": h.runs + (rate.runs + rate.unknown + rate.errors if rate else 0),
        "schedule": (
            schedules.document(minimal, "hunt", lease_ms=lease) if minimal is not None else None
        ),
        "reproduction": rate.to_dict() if rate else None,
        "command": command,
        "report": report,
        "backend": backend,
        "workload": workload,
        "faults": kinds,
        "budget_s": budget,
        "time_limit_s": time_limit,
        "ttl_ms": lease,
        "seed": seed,
        "interrupted": interrupted,
        "wall_s": round(time.monotonic() - h.t0, 1),
        "best_near_miss": {
            "grant_margin_ms": h.best_margin,
            "acted_past_lease_ms": h.best_past,
            **h.best_fences,
        },
        "tried": [t.to_dict() for t in h.tried],
    }
    (out / "hunt.json").write_text(json.dumps(doc, indent=1) + "\n")
    from reports.hunt import write_page

    page = write_page(out / "hunt.html", doc)
    if minimal is None:
        word = "interrupted: " if interrupted else ""
        say(
            f"{word}no failing schedule in {doc['candidates']} candidates, {doc['runs']} runs",
            style="bold",
        )
        say("hunt:   ", str(out / "hunt.json"))
        say("page:   ", str(page))
        sys.exit(2 if interrupted else 0)
    what = "; ".join(schedules.parse_faults(minimal)[i].words() for i in range(len(minimal)))
    say(("FOUND", "bold red"), f" a failing schedule: {what or 'no fault at all'}")
    if rate is not None:
        _print_rate(rate, out / "replay", True)
    say("schedule: ", str(min_path))
    if report:
        say("report:   ", report)
    say("hunt:     ", str(out / "hunt.json"))
    say("page:     ", str(page))
    say("replay with: ", command or "", soft_wrap=True)
    sys.exit(1)


__all__ = ["hunt", "replay"]
