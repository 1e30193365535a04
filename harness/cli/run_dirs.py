"""Commands on stored runs: ``harness check``, ``report``, ``list``, ``export`` and ``serve``."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click
from rich.table import Table

from ..run import store
from .app import main
from .errors import UserError, friendly
from .output import cell, echo, err, out, print_json, print_verdict, say, verdict_text


@main.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option(
    "--model",
    type=click.Choice(["lease", "strict"]),
    default=None,
    help="Lock model to judge under (default: the run's own; strict for a bare history).",
)
@friendly
def check(path, as_json, model) -> None:
    """Re-run the checkers on a stored run, or on a bare history.jsonl from any tool.

    \b
    Examples:
      harness check store/latest
      harness check path/to/history.jsonl
    A run directory gets a fresh results.json and report.html; a bare file is only printed.
    """
    from checkers import exit_code
    from checkers.columns import memory_note
    from checkers.history import to_json

    from ..run.analyse import check_history, recheck

    p = Path(path)
    if not p.exists():
        raise UserError(
            f"{path}: no such file or directory (give a run directory or history.jsonl)"
        )
    note = memory_note(p / store.HISTORY if p.is_dir() else p)
    if note:  # a large history: say what it will take before taking it
        say(note, to=err)
    if p.is_dir():
        if not (p / store.HISTORY).exists() and not (p / store.CONFIG).exists():
            raise UserError(
                f"{path}: neither {store.HISTORY} nor {store.CONFIG} here "
                "(give a run directory or history.jsonl)"
            )
        res = recheck(p.resolve(), model=model)
    else:
        res = check_history(p, model=model)
    if as_json:
        echo(json.dumps(res, indent=2, default=to_json))  # exact; a reader that leaves is no error
    else:
        print_verdict(res)
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

    say("report: ", str(render_run(d.resolve())))


@main.command("list")
@click.option("--store", "store_dir", default="store", show_default=True, type=click.Path())
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON list (shape: README, Scripting)."
)
@friendly
def list_runs(store_dir, as_json) -> None:
    """List stored runs with their verdicts (a campaign's too, under runs/).

    \b
    Example:
      harness list --store store
    """
    from checkers.history import nemesis_label

    rows = [_run_row(d) for d in store.runs(Path(store_dir))]
    if as_json:
        print_json(rows)
        return
    if not rows:
        say(f"no runs in {store_dir}")
        return
    t = Table("run", "backend", "nemesis", "verdict", "summary")
    for r in rows:
        verdict = r["verdict"]
        shown = (
            verdict_text(r["valid"])
            if verdict in ("valid", "invalid", "unknown")
            else cell(verdict, "red" if verdict == "failed" else "yellow")
        )
        t.add_row(  # literal cells: a run's summary or error may hold "[/]"
            cell(r["run"]),
            cell(r["backend"] or "?"),
            cell(nemesis_label(r["nemesis"])),
            shown,
            cell(r["summary"]),
        )
    out.print(t)


def _run_row(d: Path) -> dict:
    """A stored run as ``harness list`` shows it: verdict is valid, invalid or unknown (from
    results.json), or not checked, failed, unfinished (no duration_s in config.json)."""
    cfg = read_or_empty(d / store.CONFIG)
    res = read_or_empty(d / store.RESULTS)
    row = {
        "run": str(d),
        "backend": cfg.get("backend"),
        "workload": cfg.get("workload"),
        "nemesis": cfg.get("nemesis"),
        "seed": cfg.get("seed"),
        "started_at": cfg.get("started_at"),
        "valid": res.get("valid"),
        "verdict": "not checked",
        "summary": str(res.get("summary", "")),
    }
    if res:
        from checkers import verdict_word

        word = verdict_word(res.get("valid"))
        row["verdict"] = word if word in ("valid", "invalid") else "unknown"
    if cfg.get("failed"):
        row |= {"verdict": "failed", "summary": str(cfg["failed"])[:160]}
    elif not cfg:
        row["summary"] = f"{store.CONFIG} unreadable"
    elif not res and "duration_s" not in cfg:
        row["verdict"] = "unfinished"
        row["summary"] = f"no duration_s in {store.CONFIG}: still running, or killed"
    return row


def read_or_empty(p: Path) -> dict:
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

    from ..exports.edn import to_edn

    d = Path(run_dir)
    src = d / store.HISTORY if d.is_dir() else d
    if not src.exists():
        raise UserError(f"{src}: no such history file")
    got = read(src)
    dest = src.with_suffix(".edn")
    dest.write_text(to_edn(got.ops))
    say(f"wrote {dest} ({len(got.ops)} ops)")
    if got.partial:
        say(
            f"partial: {len(got.problems)} unreadable line(s); first: ",
            str(got.problems[0]),
            style="yellow",
            to=err,
        )


@main.command()
@click.option("--store", "store_dir", default="store", show_default=True, type=click.Path())
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address.")
@friendly
def serve(store_dir, port, host) -> None:
    """Browse the store in a web browser: runs with their verdicts and filters, each report,
    comparison pages, a run directory as a zip. Read-only; Ctrl-C stops it.

    \b
    Example:
      harness serve --store store --port 8080
    """
    from reports.serve import make_server

    # Ctrl-C stops it from here on, even when started by a parent that ignores SIGINT (ignored
    # signals are inherited, and Python then installs no KeyboardInterrupt handler of its own);
    # the URL is printed inside the try, so a Ctrl-C right after it is "stopped" too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    server = None
    try:
        server = make_server(Path(store_dir), host, port)
        h, p = server.server_address[:2]
        where = f"[{h}]" if ":" in h else h
        # Plain write: rich keeps a line in its buffer until written, so a Ctrl-C inside its
        # print would print it again with "stopped".
        echo(f"serving {Path(store_dir).resolve()} on http://{where}:{p}/")
        server.serve_forever()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut "stopped"
        echo("stopped")
    finally:
        if server is not None:
            server.server_close()
