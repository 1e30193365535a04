"""Commands that say what is there: ``harness backends``, ``workloads``, ``nemeses`` and
``doctor``."""

from __future__ import annotations

import shutil

import click
from rich.table import Table

from .app import main
from .errors import friendly
from .output import cell, line, option_json, out, print_json, say

JSON_HELP = "Print one JSON list instead of the table (shape: README, Scripting)."


@main.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@friendly
def backends(as_json: bool) -> None:
    """List every lock backend with its servers, fence type, how its grants expire (with its
    default options), availability here and its options (--opt)."""
    from backends.registry import backend_class, names

    from ..nemesis.options import accepted, described

    t = Table("backend", "servers", "fence", "expiry", "available here", "description")
    t.add_column(cell("options (--opt NAME: default: meaning)"))  # a header is markup too
    rows: list[dict] = []
    for name in names():
        try:
            cls = backend_class(name)
            backend = cls()
            need, expiry = backend.servers(), backend.expiry()
        except Exception as e:  # a third-party plugin that fails to load still gets a row
            t.add_row(cell(name), "?", "?", "?", line(("no", "red"), f": {e}"), "")
            rows.append({"name": name, "available": False, "why": f"cannot load: {e}"})
            continue
        front = need.front  # sentinels, a pooler: started in front of the lock's servers
        why = _missing(need.kind) or (_missing(front.kind) if front is not None else None)
        why = why or backend.missing()  # what the lock itself needs (a process adapter's node)
        servers = f"{need.kind} x{need.nodes}"
        if front is not None:
            servers += f" + {front.kind} x{front.nodes}"
        avail = cell("yes", "green") if why is None else line(("no", "red"), f": {why}")
        rows.append(
            {
                "name": name,
                "servers": {"kind": need.kind, "nodes": need.nodes}
                | ({"front": {"kind": front.kind, "nodes": front.nodes}} if front else {}),
                "fence": cls.fence if cls.fenced else None,
                "expiry": str(expiry),
                "available": why is None,
                "why": why,
                "description": cls.description,
                "options": [option_json(k, o) for k, o in cls.options.items()],
            }
        )
        opts = "\n".join(
            f"{k}: {o}" if isinstance(o, str)  # a plain text default
            else f"{k}: {described(o)}" + (f" ({accepted(o)})" if o.type is not str else "")
            for k, o in cls.options.items()
        )  # fmt: skip
        t.add_row(  # literal cells: a plugin's words or an error are not markup
            cell(name), cell(servers),
            cell(cls.fence if cls.fenced else "none"), cell(str(expiry)), avail,
            cell(cls.description), cell(opts or "-"),
        )  # fmt: skip
    print_json(rows) if as_json else out.print(t)


def _missing(kind: str) -> str | None:
    """Why this kind's server program is not here, or None when it is."""
    from ..runtime.kinds import server_kind

    try:
        server_kind(kind).find_binary()
    except Exception as e:  # MissingBinary, or a kind that cannot even say
        return str(e)
    return None


@main.command()
@click.option(
    "--clean",
    is_flag=True,
    help="Remove what a killed run left behind: its processes (stopped or not), SysV shared "
    "memory segments, data dirs and network namespaces, private Docker engines (dockerd, "
    "containers, namespace, mounts) and labelled containers of dead runs; each is listed.",
)
@click.option("--docker-host", default=None, metavar="URL", help="Also clean this engine.")
def doctor(clean, docker_host) -> None:
    """Say which server binaries, privileges and optional parts are present, and how to get
    the missing ones.

    \b
    Examples:
      harness doctor
      harness doctor --clean
    """
    if clean:
        _clean(docker_host)
        return
    from ..runtime.base import MissingBinary
    from ..runtime.kinds import KINDS, server_kind

    t = Table("part", "status", "how to get it")
    for name in KINDS:
        try:
            path = server_kind(name).find_binary()
            t.add_row(name, line(("found", "green"), f" {path}"), "")
        except MissingBinary as e:
            t.add_row(name, cell("missing", "red"), cell(e))
        except Exception as e:
            t.add_row(name, cell("unavailable", "red"), cell(e))
    from ..net import netns

    ns_ok, why = netns.available()
    t.add_row(
        "private network namespace",
        cell("yes", "green") if ns_ok else line(("no", "yellow"), f": {why}"),
        ""
        if ns_ok
        else "without it runs share the host's loopback, and partition cuts only "
        "client<->node links (proxies): node<->node cuts (iptables) are unavailable; every "
        "other nemesis works",
    )
    for tool in ("ip", "iptables"):
        try:
            t.add_row(tool, line(("found", "green"), f" {netns.tool(tool)}"), "")
        except OSError as e:
            t.add_row(tool, cell("missing", "red"), cell(e))
    t.add_row(
        "gcc (clock shim)",
        cell("found", "green") if shutil.which("gcc") else cell("missing", "red"),
        "" if shutil.which("gcc") else "apt-get install -y gcc",
    )
    from ..containers import engine as docker_engine

    ok, why = docker_engine.available()
    t.add_row(
        "docker runtime (private engine)",
        cell("yes", "green") if ok else line(("no", "yellow"), f": {why}"),
        "" if ok else "--runtime docker then needs an engine of yours (--docker-host URL)",
    )
    stale = docker_engine.stale_engines()
    if stale:
        t.add_row(
            "leftovers",
            cell(f"{len(stale)} private engine(s) of dead runs", "yellow"),
            "harness doctor --clean",
        )
    left = _left_by_dead_runs()
    if left:
        t.add_row(
            "leftovers",
            cell("\n".join(left), "yellow"),
            "harness doctor --clean",
        )
    out.print(t)


def _left_by_dead_runs() -> list[str]:
    """What the local runs whose harness died left (processes, segments, data dirs ...)."""
    from ..runtime import lifeline

    return [thing for st in lifeline.stale_runs() for thing in lifeline.leftovers(st)]


def _clean(docker_host: str | None) -> None:
    from ..containers import engine as docker_engine
    from ..runtime import lifeline

    failed: list[str] = []
    done: list[str] = []
    for st in lifeline.stale_runs():
        ok, bad = lifeline.clean(st)
        done += ok
        failed += bad
    try:
        done += [f"removed {thing}" for thing in docker_engine.clean_stale()]
    except docker_engine.EngineError as e:  # a later clean tries again: say what is left
        failed.append(str(e))
    if docker_host:
        import docker

        client = docker.DockerClient(base_url=docker_host, timeout=60)
        try:
            done += [f"removed container {c}" for c in docker_engine.remove_leftovers(client)]
        finally:
            client.close()
    for thing in done:
        say(thing)
    # Looked for again: "nothing left behind" is said only when nothing is found.
    failed += _left_by_dead_runs() + [
        f"private engine {e.name}" for e in docker_engine.stale_engines()
    ]
    for thing in dict.fromkeys(failed):
        say(f"left: {thing}")
    if failed:
        raise click.exceptions.Exit(2)
    say(f"clean: {len(done)} thing(s) removed or ended" if done else "clean: nothing left behind")


@main.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@friendly
def nemeses(as_json: bool) -> None:
    """List every nemesis with a one-line description and its options (--nemesis-opt)."""
    from ..nemesis import nemeses as installed
    from ..nemesis.options import accepted, described

    t = Table("nemesis", "what it does", "options (NAME: default: meaning)")
    rows = [
        {
            "name": name,
            "description": cls.description,
            "options": [option_json(k, o) for k, o in cls.options.items()],
        }
        for name, cls in installed().items()
    ]
    if as_json:
        print_json(rows)
        return
    for name, cls in installed().items():
        opts = (
            "\n".join(
                f"{k}: {described(v)}" + (f" ({accepted(v)})" if v.type is not str else "")
                for k, v in cls.options.items()
            )
            or "-"
        )
        t.add_row(cell(name), cell(cls.description), cell(opts))
    out.print(t)


@main.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@friendly
def workloads(as_json: bool) -> None:
    """List every workload with a description and its options (--workload-opt, or the flag)."""
    from workloads import registry as workload_registry

    # A header is markup too: "[flag]" would vanish as a tag.
    t = Table("workload", "what clients do")
    t.add_column(cell("options (NAME [flag]: default: meaning)"))
    rows: list[dict] = []
    for name in workload_registry.names():
        try:
            cls = workload_registry.workload_class(name)
        except Exception as e:  # a third-party plugin that fails to load still gets a row
            t.add_row(cell(name), line(("cannot load", "red"), f": {e}"), "")
            rows.append({"name": name, "error": f"cannot load: {e}"})
            continue
        rows.append(
            {
                "name": name,
                "description": cls.description,
                "options": [option_json(k, o) for k, o in cls.options.items()],
            }
        )
        opts = "\n".join(
            f"{k}{f' [{o.flag}]' if o.flag else ''}: {o.default}: {o.help}"
            for k, o in cls.options.items()
        )
        t.add_row(cell(name), cell(cls.description), cell(opts or "-"))
    print_json(rows) if as_json else out.print(t)
