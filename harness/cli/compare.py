"""``harness compare``: run a campaign (``harness.campaign``) and/or gather stored campaigns and
runs into one comparison page with its exports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..run import store
from .app import main
from .errors import UserError, check_writable_file, friendly
from .output import err, say


@main.command()
@click.argument("runs", nargs=-1, type=click.Path())
@click.option(
    "--spec",
    "spec_path",
    default=None,
    type=click.Path(),
    help="A campaign spec (TOML): backends, workloads and nemesis sets with their options.",
)
@click.option("--backends", default=None, help="Comma-separated backends (replaces the spec's).")
@click.option(
    "--workloads",
    default=None,
    help="Comma-separated workloads (default mutex; replaces the spec's).",
)
@click.option(
    "--nemeses",
    default=None,
    help="Comma-separated nemesis sets; use + inside a set (e.g. none,kill,partition+pause). "
    "Default: none.",
)
@click.option(
    "--repeat", type=click.IntRange(1, 10_000), default=None, help="Runs a cell (default 1)."
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 256),
    default=None,
    help="Runs at once on this machine (default: one a core).",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Run only the I-th (0 to N-1) of N slices of the campaign; env/N reads I from "
    "$JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or $HARNESS_SHARD_INDEX.",
)
@click.option("--time-limit", "-t", type=float, default=None, help="Seconds a run (default 20).")
@click.option("--concurrency", "-c", type=int, default=None, help="Clients a run (default 5).")
@click.option("--keys", type=int, default=None, help="Locks a run (default 2).")
@click.option(
    "--ttl",
    "ttl_ms",
    type=int,
    default=None,
    help="Workload option ttl_ms of every workload that takes it.",
)
@click.option(
    "--hold",
    "hold_ms",
    type=int,
    default=None,
    help="Workload option hold_ms of every workload that takes it.",
)
@click.option("--nemesis-interval", type=float, default=None, help="Seconds a fault (default 5).")
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Campaign seed, from which every run's seed is derived (default: derived from the "
    "campaign itself, so the same command resumes).",
)
@click.option("--store", "store_dir", default="store", show_default=True, type=click.Path())
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(),
    help="Where to write the page (default: STORE/comparison.html); its .json, .csv and .md "
    "go beside it, named after it (findings.html: findings.json ...). /dev/null: write no "
    "page and no exports (the verdicts and the exit code only).",
)
@click.option(
    "--junit-xml",
    "junit",
    type=click.Path(),
    default=None,
    help="Also write JUnit XML, one test case a cell.",
)
@click.option(
    "--publish-reports",
    "publish",
    type=click.Choice(["first-invalid", "all"]),
    default=None,
    help="Copy these runs' reports beside the page (into OUT-STEM-runs/) and link only them, "
    "so the page can be committed or moved without its store (default: link every run's "
    "report in the store).",
)
@click.option(
    "--model",
    type=click.Choice(["lease", "strict"]),
    default=None,
    help="Lock model the campaign's runs are judged under (default lease; see harness run).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check every cell and print the plan (cells, runs, seeds, commands); run nothing.",
)
@friendly
def compare(
    runs,
    spec_path,
    backends,
    workloads,
    nemeses,
    repeat,
    jobs,
    shard,
    time_limit,
    concurrency,
    keys,
    ttl_ms,
    hold_ms,
    nemesis_interval,
    seed,
    store_dir,
    out_path,
    junit,
    publish,
    dry_run,
    model,
) -> None:
    """Every backend under every fault, side by side: run a campaign (cells of backend x
    workload x nemesis set, each repeated with derived seeds, in parallel, resumable, in
    shards) and/or gather stored campaigns and runs into one comparison page with statistics.

    \b
    Examples:
      harness compare --backends redis,redlock,etcd --nemeses none,kill,partition -t 20
      harness compare --backends redis,redlock --nemeses none,kill --repeat 5 --jobs 2
      harness compare --spec docs/comparison/campaign.toml --store store/comparison
      harness compare --spec campaign.toml --shard 0/3 --store shard-0
      harness compare shard-0 shard-1 shard-2 --out site/comparison.html
      harness compare store/redis-mutex-none/*/ store/redlock-mutex-kill/*/
    Running the same campaign into the same store again skips the runs that finished and
    re-runs those that crashed or were interrupted. A cell that cannot be (e.g. clock x etcd) is
    refused before the first run and shown as "not applicable"; the other cells run.
    Exit code: the worst verdict among the runs (0 valid, 1 invalid, 2 unknown or error; 2 when
    a run ended without a verdict, a cell's server is missing here, or nothing ran).
    """

    from ..campaign import spec as cspec
    from ..campaign.document import PublishError, check_publish, write
    from ..campaign.execute import default_jobs
    from ..campaign.gather import gather

    discard = out_path is not None and _discards(out_path, publish)
    if out_path and not discard:
        check_writable_file(out_path, "--out", "comparison.html")
    if junit:
        check_writable_file(junit, "--junit-xml", "junit.xml")
    dest = Path(out_path) if out_path else Path(store_dir) / "comparison.html"
    if publish and not discard:
        try:
            check_publish(dest)
        except PublishError as e:
            raise UserError(str(e)) from None
    dirs = [Path(r) for r in runs]
    for d in dirs:
        if not (d / store.CONFIG).exists() and not (d / "campaign.json").exists():
            raise UserError(f"{d}: not a run directory (no {store.CONFIG}) nor a campaign store")

    store_path = Path(store_dir)
    interrupted = False
    if spec_path or backends or not dirs:
        raw = cspec.load(Path(spec_path)) if spec_path else None
        flags = {
            "backends": backends,
            "workloads": workloads,
            "nemeses": nemeses,
            "repeat": repeat,
            "seed": seed,
            "time_limit": time_limit,
            "concurrency": concurrency,
            "keys": keys,
            "nemesis_interval": nemesis_interval,
            "model": model,
            "workload_opts": {
                k: v for k, v in (("ttl_ms", ttl_ms), ("hold_ms", hold_ms)) if v is not None
            },
        }
        campaign = cspec.build(
            raw, flags, source=str(spec_path) if spec_path else "flags", takes=_workload_takes
        )
        if dry_run:
            _print_plan(campaign, store_path, shard)
            return
        interrupted = _run_campaign(
            campaign,
            store_path,
            jobs or default_jobs(),
            shard,
            Path(spec_path).read_text(encoding="utf-8") if spec_path else None,
        )
        dirs.insert(0, store_path)  # its manifest holds the wall time of every invocation
    cmp = gather(dirs)
    for refused in cmp.refused:  # each a run whose results.json its history contradicts
        say((refused, "yellow"), to=err, soft_wrap=True)
    try:
        if discard:  # the document for the verdicts and JUnit, no file beside /dev/null
            from reports.comparison import write_junit

            from ..campaign.document import document

            page, doc = os.devnull, document(cmp, Path(os.devnull))
            if junit:
                write_junit(doc, Path(junit))
        else:
            page, doc = write(cmp, dest, None, Path(junit) if junit else None, publish)
    except PublishError as e:
        raise UserError(str(e)) from None
    _print_cells(doc)
    say("comparison: ", str(page) if not discard else "not written (--out /dev/null)")
    if junit:
        say("junit:  ", junit)
    worst = doc["exit_code"]
    if interrupted and worst == 0:
        worst = 2  # the campaign did not finish: not everything it claims was shown
    sys.exit(worst)


def _discards(out_path: str, publish: str | None) -> bool:
    """``--out /dev/null`` writes nothing (the exports are named after the page: writing them
    beside /dev/null made /dev/null.json ...); any other path that is not a regular file or a
    new one (a pipe, a terminal) cannot have exports beside it: refused in one line."""
    p = Path(out_path)
    if p.exists() and os.path.realpath(p) == os.devnull:
        if publish:
            raise UserError("--publish-reports copies reports beside the page: --out /dev/null "
                            "writes none; give a page path")  # fmt: skip
        return True
    if p.exists() and not p.is_dir() and not p.is_file():
        raise UserError(
            f"--out {out_path} is not a regular file: the page's .json, .csv and .md are "
            "written beside it, named after it; give a file path (e.g. out/comparison.html), "
            "or /dev/null to write none"
        )
    return False


def _workload_takes(workload: str, option: str) -> bool:
    """Whether a workload declares an option (--ttl and --hold go to those that do); an
    unknown workload is refused later, with the list of workloads."""
    from workloads.registry import UnknownWorkload, workload_class

    try:
        return option in workload_class(workload).options
    except UnknownWorkload:
        return True


def _print_cells(doc: dict) -> None:
    """One line a cell: k invalid of n runs with a verdict (95% interval), its harm as the
    page shows it (glyph and name) and its flags. Lines read ``KEY: RATE, GLYPH HARM``."""
    from reports.comparison import harm_style, rate_text

    for c in doc["cells"]:
        if c["status"] != "runnable":
            continue
        glyph, name = harm_style(c)[:2]
        flags = "; ".join(c.get("flags") or [])
        line = f"  {c['key']}: {rate_text(c)}, {glyph} {name}"
        _say(line + (f"  [{flags}]" if flags else ""))


def _say(line: str) -> None:
    """One line of a campaign's progress, as is (option lists like [a=b], a server's error are
    not markup)."""
    say(line, soft_wrap=True)


def _print_plan(campaign, store_path: Path, shard: str | None) -> None:
    from ..campaign.execute import check_cells
    from ..campaign.plan import parse_shard, plan, run_argv, run_config, shown_command
    from ..campaign.plan import shard as slice_runs

    i, n = parse_shard(shard)
    checks = {c.cell.key: c for c in check_cells(campaign, store_path)}
    runs = slice_runs(plan(campaign), i, n)
    for c in checks.values():
        _say(f"{c.cell.key}: {c.status}{': ' + c.why if c.why else ''}")
    todo = [r for r in runs if checks[r.cell.key].status == "runnable"]
    for r in todo:
        cfg = run_config(r.cell, campaign.run, r.seed, r.store(store_path))
        _say(shown_command(run_argv(cfg)))
    say(
        f"campaign {campaign.fingerprint} (seed {campaign.campaign_seed}): {len(checks)} cells, "
        f"{len(todo)} runs to do in this shard ({i}/{n}); nothing was run"
    )


def _run_campaign(campaign, store_path: Path, jobs: int, shard: str | None, spec_text) -> bool:
    """Check every cell, write the manifest, run what has not finished; True if interrupted."""
    import shlex
    import time

    from ..campaign.execute import (
        PROGRESS_S,
        check_cells,
        execute,
        invocation_done,
        invocation_progress,
        invocation_started,
        write_manifest,
    )
    from ..campaign.plan import parse_shard, plan
    from ..campaign.plan import shard as slice_runs
    from ..campaign.versions import backend_servers, server_version

    i, n = parse_shard(shard)
    runs = slice_runs(plan(campaign), i, n)
    checks = check_cells(campaign, store_path)  # bad input fails here, before anything is stored
    for c in checks:
        if c.status != "runnable":
            _say(f"{c.cell.key}: {c.status}: {c.why}")
    kinds = {  # this machine's binaries: those of cells in containers are the images'
        backend_servers(c.cell.backend.name, {k: str(v) for k, v in c.cell.backend.opts})["kind"]
        for c in checks
        if c.status == "runnable" and c.cell.backend.runtime == "local"
    }
    extra = {
        "spec_text": spec_text,
        "command": shlex.join(["harness", *sys.argv[1:]]),
        "server_versions": {k: server_version(k) for k in sorted(kinds) if k != "?"},
    }
    manifest = write_manifest(store_path, campaign, checks, runs, (i, n), extra)
    inv = invocation_started(manifest, jobs)
    store.write_json(store_path / "campaign.json", manifest)
    ok_cells = {c.cell.key for c in checks if c.status == "runnable"}
    todo = [r for r in runs if r.cell.key in ok_cells]
    shard_text = f", shard {i}/{n}" if n > 1 else ""
    _say(
        f"campaign {campaign.fingerprint} (seed {campaign.campaign_seed}{shard_text}): "
        f"{len(todo)} runs of {len(ok_cells)} cells, {jobs} at once"
    )
    t0 = written = time.monotonic()

    def progress(ran: int) -> None:
        nonlocal written
        if time.monotonic() - written >= PROGRESS_S:  # a killed invocation keeps this much
            written = time.monotonic()
            invocation_progress(manifest, inv, written - t0, ran)
            store.write_json(store_path / "campaign.json", manifest)

    outcomes, interrupted = execute(campaign, store_path, todo, jobs, _say, progress)
    ran = sum(1 for o in outcomes if not o.skipped)
    invocation_done(manifest, inv, time.monotonic() - t0, ran, interrupted)
    store.write_json(store_path / "campaign.json", manifest)
    last = next((o.run_dir for o in reversed(outcomes) if o.run_dir and o.results), None)
    if last is not None:
        store.set_latest(store_path, last.resolve().relative_to(store_path.resolve()))
    return interrupted
