"""Commands that say what is there: ``harness backends``, ``workloads``, ``nemeses`` and
``doctor``."""

from __future__ import annotations

import shutil

import click
from rich.table import Table

from .app import main
from .errors import friendly
from .output import out


@main.command()
@friendly
def backends() -> None:
    """List every lock backend with its servers, fence type and availability here."""
    from backends.registry import backend_class, names

    from ..runtime.base import MissingBinary
    from ..runtime.kinds import server_kind

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
@click.option(
    "--clean",
    is_flag=True,
    help="Remove what a killed run left behind: private Docker engines (dockerd, containers, "
    "namespace, mounts) and labelled containers of dead runs.",
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
            t.add_row(name, f"[green]found[/] {path}", "")
        except MissingBinary as e:
            t.add_row(name, "[red]missing[/]", str(e))
        except Exception as e:
            t.add_row(name, "[red]unavailable[/]", str(e))
    from ..net import netns

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
    from ..containers import engine as docker_engine

    ok, why = docker_engine.available()
    t.add_row(
        "docker runtime (private engine)",
        "[green]yes[/]" if ok else f"[yellow]no[/]: {why}",
        "" if ok else "--runtime docker then needs an engine of yours (--docker-host URL)",
    )
    stale = docker_engine.stale_engines()
    if stale:
        t.add_row(
            "leftovers",
            f"[yellow]{len(stale)} private engine(s) of dead runs[/]",
            "harness doctor --clean",
        )
    out.print(t)


def _clean(docker_host: str | None) -> None:
    from ..containers import engine as docker_engine

    done = docker_engine.clean_stale()
    if docker_host:
        import docker

        client = docker.DockerClient(base_url=docker_host, timeout=60)
        try:
            done += [f"container {c}" for c in docker_engine.remove_leftovers(client)]
        finally:
            client.close()
    for line in done:
        out.print(f"removed {line}", highlight=False)
    out.print(f"clean: {len(done)} thing(s) removed" if done else "clean: nothing left behind")


@main.command()
def nemeses() -> None:
    """List every nemesis with a one-line description and its options (--nemesis-opt)."""
    from ..nemesis import NEMESES

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
