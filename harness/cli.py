"""The ``harness`` command line."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .run import store
from .run.config import RunConfig

out = Console()
err = Console(stderr=True)
STYLE = {"valid": "bold green", "invalid": "bold red"}


def verdict_text(valid) -> str:
    """A verdict in colour: the checkers' words (VALID, INVALID; anything else UNKNOWN)."""
    from checkers import verdict_word

    word = verdict_word(valid)
    word = word if word in STYLE else "unknown"
    return f"[{STYLE.get(word, 'bold yellow')}]{word.upper()}[/]"


class UserError(Exception):
    """One line for the user, exit 2."""


def _say_error(msg: str) -> None:
    line = escape(" ".join(msg.split()))  # one line; a path like /tmp/[x] is text, not markup
    err.print(f"[red]error:[/] {line}", highlight=False, soft_wrap=True)


def _fail(msg: str) -> NoReturn:
    """One line on stderr, exit 2 (exit 1 is kept for INVALID: "this lock is unsafe")."""
    _say_error(msg)
    sys.exit(2)


def _os_error(e: OSError) -> str:
    if e.filename is None:
        return str(e)
    return f"{e.strerror}: {e.filename}"


def _internal_error(e: BaseException) -> str:
    """Name an unexpected error in one line; the traceback goes to a file for a bug report."""
    where = ""
    try:
        fd, path = tempfile.mkstemp(prefix="lockharness-error-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(" ".join(sys.argv) + "\n\n" + traceback.format_exc())
        where = f" (traceback in {path})"
    except OSError:
        pass
    return f"internal error: {type(e).__name__}: {e}{where}"


def _expected() -> tuple[type[Exception], ...]:
    """Failures with a message meant for the user, printed as they are."""
    try:
        from backends.registry import UnknownBackend
        from checkers.history import HistoryError

        from .clock import ClockShimError
        from .net.firewall import FirewallError
        from .runtime import ServerStartError
        from .toxiproxy.client import ToxiproxyError
    except Exception:  # a broken install: its own errors are then internal errors
        return (UserError, ValueError)
    return (
        UserError,
        ValueError,
        UnknownBackend,
        ServerStartError,
        HistoryError,
        ToxiproxyError,
        FirewallError,
        ClockShimError,
    )


def friendly(fn):
    """Turn every failure into one line on stderr and exit 2, never a traceback: expected
    failures say what was wrong, anything else is an internal error (traceback saved)."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        expected = _expected()
        try:
            return fn(*a, **kw)
        except (click.exceptions.Exit, click.UsageError):
            raise  # --help, --version and Click's usage errors (exit 2) stay Click's
        except click.ClickException as e:
            _fail(e.format_message())
        except expected as e:
            _fail(str(e))
        except OSError as e:
            _fail(_os_error(e))
        except (KeyboardInterrupt, click.Abort):
            _fail("interrupted")
        except Exception as e:
            _fail(_internal_error(e))

    return wrapper


class _Harness(click.Group):
    """Every command, with or without @friendly, ends in one line and exit 2 on a failure."""

    def invoke(self, ctx: click.Context):
        return friendly(super().invoke)(ctx)


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


@click.group(cls=_Harness, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lockharness")
def main() -> None:
    """A Jepsen-style correctness and chaos harness for distributed locks.

    \b
    Examples:
      harness run --backend redis --time-limit 20
      harness run --backend unsafe-redis --concurrency 8 --time-limit 20
      harness check store/latest
      harness list
      harness doctor
    """


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
@click.option("--concurrency", "-c", default=5, show_default=True, help="Clients.")
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
    opts,
    wopts,
    nopts,
    toxiproxy,
    netns,
    client_groups,
    store_dir,
    no_report,
    keep_data,
    junit,
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
    Exit code: 0 valid, 1 invalid, 2 unknown or error.
    """
    from backends.option_values import parse_pairs

    from .run import prepare, run_test

    nem = [] if nemesis.strip() in ("", "none") else [x.strip() for x in nemesis.split(",")]
    given = {k[len(WFLAG) :]: v for k, v in wflags.items() if v is not None}
    cfg = RunConfig(
        backend=backend,
        workload=workload,
        workload_opts=given | parse_pairs(wopts, "--workload-opt"),
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
    )
    prepare(cfg)  # bad input fails before anything starts
    if junit:
        _check_writable_file(junit, "--junit-xml", "junit.xml")
    out.print(
        f"[bold]{backend}[/] / {workload} / nemesis {cfg.nemesis_label}: "
        f"{concurrency} clients, {keys} keys, {time_limit:g} s"
    )
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[ops]}"),
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

        result = run_test(cfg, progress)
        for sig in (signal.SIGINT, signal.SIGTERM):  # the verdict is stored: now only print it
            signal.signal(sig, signal.SIG_IGN)
        bar.update(task, completed=time_limit)
    _print_verdict(result.results)
    _print_non_durable(result.config)
    if result.interrupted:
        out.print("[yellow]interrupted: the history was checked as far as it was recorded[/]")
    out.print(f"run:    {result.run_dir}")
    if result.report:
        out.print(f"report: {result.report}")
    if junit:
        from .exports.junit import write_junit

        try:
            write_junit(Path(junit), result.config, result.results)
        except OSError as e:  # the verdict stands (and is stored): a violation still exits 1
            _say_error(f"--junit-xml: {_os_error(e)}")
            sys.exit(1 if result.exit_code == 1 else 2)
        out.print(f"junit:  {junit}")
    sys.exit(result.exit_code)


def _check_writable_file(path: str, flag: str, example: str) -> None:
    """Refuse, before a run, an output file that could not be written after it."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {path} is a directory: give a file path, e.g. {p / example}")
    parent = next((a for a in p.absolute().parents if a.exists()), Path("/"))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: cannot write under {parent}")


def _print_non_durable(config: dict) -> None:
    from reports.view import non_durable

    for line in non_durable(config):
        # Unwrapped: the line is meant to be found (grep) as one line.
        out.print(f"[yellow]{escape(line)}[/]", highlight=False, soft_wrap=True)


def _print_verdict(results: dict) -> None:
    v = results.get("valid")
    out.print(f"verdict: {verdict_text(v)}  {results.get('summary', '')}", highlight=False)
    for name, r in results.get("checkers", {}).items():
        out.print(f"  {name:8} {r.get('summary', '')}", highlight=False)
    if results.get("faults"):
        from checkers.faults import text

        out.print(f"  {'faults':8} {text(results['faults'])}", highlight=False)
    if v is False:  # the violation stands; the summary then leaves out what else was wrong
        for why in results.get("unknown_because", []):
            out.print(f"[yellow]also: {why}[/]", highlight=False)
    if results.get("partial"):
        out.print(
            f"[yellow]partial: {results['problem_count']} line(s) could not be read; "
            f"first: {results['problems'][0]}[/]",
            highlight=False,
        )
    for dup in results.get("duplicate_indexes", [])[:3]:
        out.print(f"[yellow]duplicate: {dup}[/]", highlight=False)


@main.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@friendly
def check(path, as_json) -> None:
    """Re-run the checkers on a stored run, or on a bare history.jsonl from any tool.

    \b
    Examples:
      harness check store/latest
      harness check path/to/history.jsonl
    A run directory gets a fresh results.json and report.html; a bare file is only printed.
    """
    from checkers import exit_code

    from .run.analyse import check_history, recheck

    p = Path(path)
    if not p.exists():
        raise UserError(
            f"{path}: no such file or directory (give a run directory or history.jsonl)"
        )
    if p.is_dir():
        if not (p / store.HISTORY).exists() and not (p / store.CONFIG).exists():
            raise UserError(
                f"{path}: neither {store.HISTORY} nor {store.CONFIG} here "
                "(give a run directory or history.jsonl)"
            )
        res = recheck(p.resolve())
    else:
        res = check_history(p)
    if as_json:
        click.echo(json.dumps(res, indent=2, default=str))
    else:
        _print_verdict(res)
    sys.exit(exit_code(res["valid"]))


@main.command()
@click.argument("run_dir", type=click.Path())
@friendly
def report(run_dir) -> None:
    """Re-render report.html of a stored run from its results.

    \b
    Example:
      harness report store/latest
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    if not (d / store.RESULTS).exists():
        raise UserError(f"{run_dir}: no {store.RESULTS} (run `harness check {run_dir}` first)")
    from reports.render import render_run

    out.print(f"report: {render_run(d.resolve())}")


@main.command("list")
@click.option("--store", "store_dir", default="store", show_default=True, type=click.Path())
@friendly
def list_runs(store_dir) -> None:
    """List stored runs with their verdicts.

    \b
    Example:
      harness list --store store
    """
    from checkers.history import nemesis_label

    runs = store.runs(Path(store_dir))
    if not runs:
        out.print(f"no runs in {store_dir}")
        return
    t = Table("run", "backend", "nemesis", "verdict", "summary")
    for d in runs:
        cfg = _read_or_empty(d / store.CONFIG)
        res = _read_or_empty(d / store.RESULTS)
        verdict = verdict_text(res.get("valid")) if res else "[yellow]not checked[/]"
        summary = res.get("summary", "")
        if cfg.get("failed"):
            verdict, summary = "[red]failed[/]", str(cfg["failed"])[:160]
        elif not cfg:
            summary = f"{store.CONFIG} unreadable"
        elif not res and "duration_s" not in cfg:
            verdict = "[yellow]unfinished[/]"
            summary = f"no duration in {store.CONFIG}: still running, or killed"
        t.add_row(
            str(d),
            cfg.get("backend", "?"),
            nemesis_label(cfg.get("nemesis")),
            verdict,
            summary,
        )
    out.print(t)


def _read_or_empty(p: Path) -> dict:
    try:
        return store.read_object(p)
    except (OSError, ValueError):
        return {}


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["edn"]), default="edn", show_default=True)
@friendly
def export(run_dir, fmt) -> None:
    """Export a run's history for Jepsen tools (writes history.edn beside it).

    \b
    Example:
      harness export --format edn store/latest
    """
    from checkers.history import read

    from .exports.edn import to_edn

    d = Path(run_dir)
    src = d / store.HISTORY if d.is_dir() else d
    if not src.exists():
        raise UserError(f"{src}: no such history file")
    got = read(src)
    dest = src.with_suffix(".edn")
    dest.write_text(to_edn(got.ops))
    out.print(f"wrote {dest} ({len(got.ops)} ops)")
    if got.partial:
        err.print(
            f"[yellow]partial: {len(got.problems)} unreadable line(s); first: {got.problems[0]}[/]",
            highlight=False,
        )


@main.command()
@friendly
def backends() -> None:
    """List every lock backend with its servers, fence type and availability here."""
    from backends.registry import backend_class, names

    from .runtime.base import MissingBinary
    from .runtime.kinds import server_kind

    t = Table("backend", "servers", "fence", "available here", "description")
    for name in names():
        try:
            cls = backend_class(name)
            need = cls().servers()
        except Exception as e:  # a third-party plugin that fails to load still gets a row
            t.add_row(name, "?", "?", f"[red]no[/]: {e}", "")
            continue
        try:
            server_kind(need.kind).find_binary()
            avail = "[green]yes[/]"
        except MissingBinary as e:
            avail = f"[red]no[/]: {e}"
        except Exception as e:
            avail = f"[red]no[/]: {e}"
        t.add_row(name, f"{need.kind} x{need.nodes}", cls.fence, avail, cls.description)
    out.print(t)


@main.command()
def doctor() -> None:
    """Say which server binaries, privileges and optional parts are present, and how to get
    the missing ones."""
    from .runtime.base import MissingBinary
    from .runtime.kinds import KINDS, server_kind

    t = Table("part", "status", "how to get it")
    for name in KINDS:
        try:
            path = server_kind(name).find_binary()
            t.add_row(name, f"[green]found[/] {path}", "")
        except MissingBinary as e:
            t.add_row(name, "[red]missing[/]", str(e))
        except Exception as e:
            t.add_row(name, "[red]unavailable[/]", str(e))
    from .net import netns

    ns_ok, why = netns.available()
    t.add_row(
        "private network namespace",
        "[green]yes[/]" if ns_ok else f"[yellow]no[/]: {why}",
        ""
        if ns_ok
        else "without it runs share the host's loopback, and partition cuts only "
        "client<->node links (proxies): node<->node cuts (iptables) are unavailable; every "
        "other nemesis works",
    )
    for tool in ("ip", "iptables"):
        try:
            t.add_row(tool, f"[green]found[/] {netns.tool(tool)}", "")
        except OSError as e:
            t.add_row(tool, "[red]missing[/]", str(e))
    t.add_row(
        "gcc (clock shim)",
        "[green]found[/]" if shutil.which("gcc") else "[red]missing[/]",
        "" if shutil.which("gcc") else "apt-get install -y gcc",
    )
    t.add_row("docker engine", "[yellow]not used[/]", "the local runtime needs none")
    out.print(t)


@main.command()
def nemeses() -> None:
    """List every nemesis with a one-line description and its options (--nemesis-opt)."""
    from .nemesis import NEMESES

    t = Table("nemesis", "what it does", "options (NAME: default: meaning)")
    for name, cls in NEMESES.items():
        opts = (
            "\n".join(
                f"{k}: {v}" + (f" ({v.accepted()})" if v.kind is not str else "")
                for k, v in cls.options.items()
            )
            or "-"
        )
        t.add_row(name, cls.description, opts)
    out.print(t)


@main.command()
@friendly
def workloads() -> None:
    """List every workload with a description and its options (--workload-opt, or the flag)."""
    from workloads import registry as workload_registry

    t = Table("workload", "what clients do", "options (NAME [flag]: default: meaning)")
    for name in workload_registry.names():
        try:
            cls = workload_registry.workload_class(name)
        except Exception as e:  # a third-party plugin that fails to load still gets a row
            t.add_row(name, f"[red]cannot load[/]: {e}", "")
            continue
        opts = "\n".join(
            f"{k}{f' [{o.flag}]' if o.flag else ''}: {o.default}: {o.help}"
            for k, o in cls.options.items()
        )
        t.add_row(name, cls.description, opts or "-")
    out.print(t)


@main.command()
@click.argument("runs", nargs=-1, type=click.Path())
@click.option("--backends", default=None, help="Comma-separated backends to run (a matrix).")
@click.option(
    "--nemeses",
    default="none",
    show_default=True,
    help="Comma-separated nemesis sets; use + inside a set (e.g. none,kill,partition+pause).",
)
@click.option("--time-limit", "-t", default=20.0, show_default=True, help="Seconds per run.")
@click.option("--concurrency", "-c", default=5, show_default=True)
@click.option("--keys", default=2, show_default=True)
@click.option("--ttl", "ttl_ms", default=3000, show_default=True)
@click.option("--hold", "hold_ms", default=10, show_default=True)
@click.option("--nemesis-interval", default=5.0, show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--store", "store_dir", default="store", show_default=True, type=click.Path())
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(),
    help="Where to write the page (default: STORE/comparison.html).",
)
@friendly
def compare(
    runs,
    backends,
    nemeses,
    time_limit,
    concurrency,
    keys,
    ttl_ms,
    hold_ms,
    nemesis_interval,
    seed,
    store_dir,
    out_path,
) -> None:
    """Every backend under every fault, side by side: run a matrix and/or gather stored runs
    into one comparison page.

    \b
    Examples:
      harness compare --backends redis,redlock,etcd --nemeses none,kill,partition -t 20
      harness compare store/redis-mutex-none/*/ store/redlock-mutex-kill/*/
    A cell that cannot be (e.g. clock x etcd) is refused before the first cell runs and shown
    as "not applicable" on the page; the other cells run.
    Exit code: the worst verdict among the runs (0 valid, 1 invalid, 2 unknown or error; 2 when
    a cell failed or no cell could run).
    """
    from checkers import exit_code
    from reports.render import render_comparison

    from .nemesis import NotApplicable
    from .run import prepare, run_test
    from .runtime import MissingBinary

    if out_path:
        _check_writable_file(out_path, "--out", "comparison.html")
    dirs = [Path(r) for r in runs]
    for d in dirs:
        if not (d / store.CONFIG).exists():
            raise UserError(f"{d}: not a run directory (no {store.CONFIG})")
    configs = []
    not_run: list[dict[str, str]] = []  # cells that could not run, and why
    worst = 0
    for b in backends.split(",") if backends else []:
        for n in nemeses.split(","):
            nem = [] if n.strip() in ("", "none") else [x.strip() for x in n.split("+")]
            cfg = RunConfig(
                backend=b.strip(),
                nemesis=nem,
                time_limit=time_limit,
                concurrency=concurrency,
                keys=keys,
                workload_opts={"ttl_ms": ttl_ms, "hold_ms": hold_ms},
                nemesis_interval=nemesis_interval,
                seed=seed,
                store=Path(store_dir),
            )
            try:
                prepare(cfg)  # every cell is checked before the first one runs
            except NotApplicable as e:  # this backend x nemesis cannot be: the others run
                not_run.append(_not_run(cfg, "not applicable", e))
                out.print(f"{cfg.backend} / {cfg.nemesis_label}: not applicable: {e}")
                continue
            except MissingBinary as e:  # could run, but not on this machine: an error
                worst = 2
                not_run.append(_not_run(cfg, "not available here", e))
                out.print(f"{cfg.backend} / {cfg.nemesis_label}: not available here: {e}")
                continue
            configs.append(cfg)
    if not dirs and not configs and not not_run:
        raise UserError("nothing to compare: give --backends (and --nemeses) or run directories")
    for i, cfg in enumerate(configs, 1):
        latest = Path(store_dir) / "latest"
        before = latest.readlink() if latest.is_symlink() else None
        try:
            res = run_test(cfg)
        except _expected() as e:  # one cell failed while running: the matrix goes on
            worst = 2
            not_run.append(_not_run(cfg, "error", e))
            out.print(f"[{i}/{len(configs)}] {cfg.backend} / {cfg.nemesis_label}: error: {e}")
            store.set_latest(Path(store_dir), before)  # never left on a run without results
            continue
        worst = max(worst, res.exit_code)
        verdict = verdict_text(res.valid)
        out.print(
            f"[{i}/{len(configs)}] {cfg.backend} / {cfg.nemesis_label}: {verdict}  "
            f"{res.results.get('summary', '')}",
            highlight=False,
        )
        _print_non_durable(res.config)
        dirs.append(res.run_dir)
        if res.interrupted:  # Ctrl-C stops the matrix; what ran is still compared
            break
    for d in dirs[: len(runs)]:
        res = _read_or_empty(d / store.RESULTS)
        worst = max(worst, exit_code(res.get("valid", "unknown")))
    dest = Path(out_path) if out_path else Path(store_dir) / "comparison.html"
    out.print(f"comparison: {render_comparison(dirs, dest, not_run)}")
    if not dirs:  # every cell was refused or failed: nothing was shown to be valid
        worst = 2
    sys.exit(worst)


def _not_run(cfg: RunConfig, status: str, e: Exception) -> dict[str, str]:
    return {"backend": cfg.backend, "nemesis": cfg.nemesis_label, "status": status, "why": str(e)}
