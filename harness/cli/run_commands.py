"""Commands that run tests: ``harness run`` (``harness compare`` is in ``compare``)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from workloads.base import BACKOFF_MS

from ..run.config import RunConfig, parse_backoff
from .app import main
from .errors import (
    UserError,
    check_writable_file,
    friendly,
    os_error_text,
    say_error,
)
from .output import err, print_json, print_non_durable, print_remedies, print_verdict, say


def _workload_flags(fn):
    """The flags workloads declare for their options (``Option.flag``: the mutex's --ttl,
    --hold, --fencing ...) as options of ``harness run``; given ones go to the chosen workload
    as its options (one it does not take is an error). A flag two workloads declare must mean
    the same option name in both; the first declaration gives its help."""
    from backends.option_values import number_text
    from workloads import registry as workload_registry

    seen: dict[str, tuple[str, Any]] = {}
    for name in workload_registry.names():
        try:
            cls = workload_registry.workload_class(name)
        except Exception:  # a broken third-party plugin must not break the command line
            continue
        for oname, o in cls.options.items():
            if o.flag and o.flag not in seen:
                seen[o.flag] = (oname, o)
    for flag, (oname, o) in sorted(seen.items(), reverse=True):
        FLAG_OF[oname] = flag.split("/")[0]
        span = f"{number_text(o.lo)} to {number_text(o.hi)}" if o.hi is not None else ""
        bounds = ", ".join(x for x in (o.unit, span) if x)
        what = f"{o.help[:1].upper()}{o.help[1:]}" + (f", {bounds}" if bounds else "")
        help_ = f"{what} (workload option {oname}; default {o.default})."
        dest = f"{WFLAG}{oname}"
        if isinstance(o.default, bool):
            flags = {} if "/" in flag else {"is_flag": True}  # --x/--no-x is a flag already
            fn = click.option(flag, dest, default=None, help=help_, **flags)(fn)
        else:
            kind = type(o.default) if o.default is not None else str
            fn = click.option(flag, dest, type=kind, default=None, help=help_)(fn)
    return fn


WFLAG = "wflag_"
FLAG_OF: dict[str, str] = {}  # workload option -> the flag that also sets it (--ttl: ttl_ms)


def _workload_opts(given: dict[str, Any], wopts: tuple[str, ...]) -> dict[str, Any]:
    """The workload's options from its flags and --workload-opt; one option set both ways is
    refused, whatever the values: neither is silently dropped."""
    from backends.option_values import parse_pairs

    pairs = parse_pairs(wopts, "--workload-opt")
    for name in sorted(set(given) & set(pairs)):
        raise UserError(
            f"{FLAG_OF.get(name, name)} and --workload-opt {name}={pairs[name]} both set "
            f"workload option {name}: give it once"
        )
    return given | pairs


@main.command()
@click.option("--backend", "-b", required=True, help="Lock backend (see `harness backends`).")
@click.option(
    "--workload",
    "-w",
    default="mutex",
    show_default=True,
    help="What clients do (see `harness workloads`).",
)
@click.option(
    "--nemesis",
    "-n",
    default="none",
    show_default=True,
    help="Comma-separated faults (see `harness nemeses`), or none.",
)
@click.option("--nemesis-interval", default=5.0, show_default=True, help="Seconds per fault/heal.")
@click.option(
    "--keys", default=2, show_default=True, help="Number of distinct locks, 1 to 1,000,000."
)
@click.option(
    "--concurrency",
    "-c",
    default=5,
    show_default=True,
    help="Concurrent clients, 1 to 10,000: threads pooled in a few worker processes (four a "
    "core; greenlets from 8 a worker where the lock client waits in Python: redis-py), all "
    "ready before the clock starts; with client-pause or client-stall each client is a process "
    "of its own (the fault freezes one), and then at most 256.",
)
@click.option("--time-limit", "-t", default=30.0, show_default=True, help="Seconds of load.")
@click.option(
    "--ops",
    type=int,
    default=None,
    help="Stop after this many client loop turns (mutex: acquire attempts).",
)
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    help="Client loop turns/s over all clients (mutex: acquire attempts); 0 = as fast as they go.",
)
@click.option("--seed", type=int, default=None, help="Random seed (keys, jitter, faults).")
@click.option(
    "--backoff",
    default=",".join(map(str, BACKOFF_MS)),
    show_default=True,
    metavar="BASE_MS,MAX_MS",
    help="Clients' pause after a failed or unknown acquire or connect: BASE_MS, doubling to "
    "MAX_MS, jittered, reset by a grant; 0: retry at once.",
)
@_workload_flags
@click.option("--opt", "opts", multiple=True, metavar="NAME=VALUE", help="Backend option.")
@click.option(
    "--workload-opt",
    "wopts",
    multiple=True,
    metavar="NAME=VALUE",
    help="Workload option (see `harness workloads`).",
)
@click.option("--nemesis-opt", "nopts", multiple=True, metavar="NAME=VALUE", help="Nemesis option.")
@click.option(
    "--schedule",
    "schedule_file",
    type=click.Path(),
    default=None,
    help="Run exactly the faults of this schedule file (a run's schedule.json, or a hunt's), "
    "instead of --nemesis.",
)
@click.option("--toxiproxy", default=None, metavar="URL", help="Use a real Toxiproxy server.")
@click.option(
    "--netns",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Run inside a private network namespace (needs root).",
)
@click.option(
    "--client-groups",
    default=2,
    show_default=True,
    help="Client groups, for partitions between clients and nodes.",
)
@click.option(
    "--store",
    "store_dir",
    default="store",
    show_default=True,
    type=click.Path(),
    help="Where runs are stored.",
)
@click.option("--no-report", is_flag=True, help="Skip report.html.")
@click.option(
    "--runtime",
    type=click.Choice(["local", "docker", "compose"]),
    default="local",
    show_default=True,
    help="Start servers as local processes, or as containers through the Docker SDK; "
    "compose: use the servers of a running compose project (--compose-project).",
)
@click.option(
    "--compose-project",
    default="lockharness",
    show_default=True,
    metavar="NAME",
    help="Compose runtime: the project (docker-compose -p NAME up -d) whose servers the run "
    "uses; it is left running as found.",
)
@click.option(
    "--image",
    "image_opts",
    multiple=True,
    metavar="KIND=IMAGE",
    help="Docker runtime: the image of a server kind (default: lockharness/KIND:bookworm when "
    "`harness images build` made it here, else the official one), e.g. redis=redis:7.0.",
)
@click.option(
    "--docker-host",
    default=None,
    metavar="URL|private",
    help="Docker or compose runtime: the engine (default: DOCKER_HOST); private starts one of the "
    "harness's own in a network namespace it makes (root, Linux).",
)
@click.option(
    "--docker-netns",
    default=None,
    metavar="NAME",
    help="Docker or compose runtime: the /run/netns namespace the engine's containers listen in.",
)
@click.option(
    "--model",
    type=click.Choice(["lease", "strict"]),
    default="lease",
    show_default=True,
    help="Lock model: lease (a lease that ran out after its holder stopped is a lapse, not a "
    "violation) or strict (any grant before a release took effect is one).",
)
@click.option(
    "--keep-data",
    is_flag=True,
    help="Keep the servers' data dirs after the run (removed by default; logs are kept).",
)
@click.option(
    "--junit-xml",
    "junit",
    type=click.Path(),
    default=None,
    help="Also write JUnit XML (one test case a checker) for CI.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object at the end (verdict, run, report; shape: README, Scripting) "
    "and nothing else on stdout.",
)
@friendly
def run(
    backend,
    workload,
    nemesis,
    nemesis_interval,
    keys,
    concurrency,
    time_limit,
    ops,
    rate,
    seed,
    backoff,
    opts,
    wopts,
    nopts,
    toxiproxy,
    netns,
    client_groups,
    store_dir,
    no_report,
    runtime,
    compose_project,
    image_opts,
    docker_host,
    docker_netns,
    keep_data,
    model,
    junit,
    as_json,
    schedule_file,
    **wflags,
) -> None:
    """Run one test: start servers, drive clients (and faults), check, report.

    \b
    Examples:
      harness run --backend redis --time-limit 20
      harness run --backend redlock --nemesis partition
      harness run --backend unsafe-redis --concurrency 8 --time-limit 20
      harness run --backend redis --ttl 500 --hold 50 --fencing --seed 7
      harness run --backend redis --nemesis kill,pause --nemesis-interval 3
      harness run --backend redis --nemesis client-pause --ttl 1000 --hold 200
      harness run --backend redis --runtime docker --docker-host private \
          --image redis=lockharness/redis:bookworm --nemesis kill,pause
      harness run --backend redlock --runtime compose --compose-project lockharness \
          --nemesis kill,pause
    Exit code: 0 valid, 1 invalid, 2 unknown or error.
    """
    from backends.option_values import parse_pairs

    from ..run import container_runs, prepare, run_test

    nem = [] if nemesis.strip() in ("", "none") else [x.strip() for x in nemesis.split(",")]
    planned = None
    if schedule_file is not None:  # exactly these faults (harness/nemesis/schedule.py)
        from ..nemesis import schedule as schedules

        if nem:
            raise schedules.ScheduleError(
                "--schedule and --nemesis both choose the faults: give one"
            )
        planned = schedules.read(schedule_file)
        nem = schedules.kinds(planned)
    given = {k[len(WFLAG) :]: v for k, v in wflags.items() if v is not None}
    cfg = RunConfig(
        backend=backend,
        workload=workload,
        workload_opts=_workload_opts(given, wopts),
        nemesis=nem,
        nemesis_interval=nemesis_interval,
        nemesis_opts=parse_pairs(nopts, "--nemesis-opt"),
        concurrency=concurrency,
        keys=keys,
        time_limit=time_limit,
        ops=ops,
        rate=rate,
        seed=seed,
        backend_opts=parse_pairs(opts, "--opt"),
        store=Path(store_dir),
        toxiproxy=toxiproxy,
        render_report=not no_report,
        keep_data=keep_data,
        netns=netns,
        client_groups=client_groups,
        runtime=runtime,
        compose_project=compose_project,
        images=parse_pairs(image_opts, "--image"),
        docker_host=docker_host,
        docker_netns=docker_netns,
        model=model,
        schedule=planned,
        backoff_ms=parse_backoff(backoff),
    )
    plan = prepare(cfg)  # bad input fails before anything starts
    for line in container_runs.notices(cfg):
        say(line, style="yellow", to=err, soft_wrap=True)
    if junit:
        check_writable_file(junit, "--junit-xml", "junit.xml")
    say(
        (backend, "bold"),
        f" / {workload} / nemesis {cfg.nemesis_label}: "
        f"{concurrency} clients, {keys} keys, {time_limit:g} s",
        to=err if as_json else None,  # with --json, stdout holds the JSON only
    )
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[ops]}", markup=False),  # a workload's label is text
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )
    with bar:
        task = bar.add_task("running", total=time_limit, ops="")

        def progress(p: dict) -> None:
            bar.update(
                task,
                completed=min(p["elapsed"], time_limit),
                ops=f"{p['ops']} ops, {p['progress']} {p['progress_label']}",
            )

        result = run_test(cfg, progress, plan=plan)
        for sig in (signal.SIGINT, signal.SIGTERM):  # the verdict is stored: now only print it
            signal.signal(sig, signal.SIG_IGN)
        bar.update(task, completed=time_limit)
    junit_error = None
    if junit:
        from ..exports.junit import write_junit

        try:
            write_junit(Path(junit), result.config, result.results, result.run_dir, result.report)
        except OSError as e:  # the verdict stands (and is stored): a violation still exits 1
            junit_error = f"--junit-xml: {os_error_text(e)}"
    code = result.exit_code if junit_error is None else (1 if result.exit_code == 1 else 2)
    if as_json:
        print_json(run_json(result, junit if junit and not junit_error else None, code))
    else:
        print_verdict(result.results)
        print_non_durable(result.config)
        print_remedies(result.results, result.config, result.run_dir)
        if result.interrupted:
            say("interrupted: the history was checked as far as it was recorded", style="yellow")
        # soft_wrap: one line each however long, for a terminal's copy and paste too
        say("run:    ", str(result.run_dir), soft_wrap=True)
        if result.report:
            say("report: ", str(result.report), soft_wrap=True)
        if junit and not junit_error:
            say("junit:  ", junit, soft_wrap=True)
    if junit_error:
        say_error(junit_error)
    sys.exit(code)


def run_json(result: Any, junit: str | None, exit_code: int) -> dict[str, Any]:
    """``harness run --json``: the verdict and where everything is; the whole results are in
    results.json (``harness check --json``), which can be megabytes."""
    from checkers import verdict_word

    from ..run import store

    res = result.results
    word = verdict_word(res.get("valid"))
    return {
        "verdict": word if word in ("valid", "invalid") else "unknown",
        "exit_code": exit_code,
        "summary": res.get("summary", ""),
        "checkers": {
            name: {"valid": r.get("valid"), "summary": r.get("summary", "")}
            for name, r in res.get("checkers", {}).items()
        },
        "interrupted": bool(result.interrupted),
        "run": str(result.run_dir),
        "results": str(result.run_dir / store.RESULTS),
        "report": str(result.report) if result.report else None,
        "junit": junit,
        "non_durable": list(result.config.get("non_durable") or []),
    }
