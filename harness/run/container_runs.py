"""The run's side of ``--runtime docker`` and ``--runtime compose``: what is refused before
anything starts, what is said before the run, and the engine and runtime a run opens."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from backends.base import ServerNeed
from backends.option_values import to_bool
from harness.nemesis import nemesis_class
from harness.net import netns
from harness.runtime import Runtime
from harness.runtime.kinds import KINDS, server_kind, with_compose_service

from .config import RunConfig, RunRecord


def check(cfg: RunConfig, needs: list[ServerNeed]) -> None:
    """Raise ValueError (one line) for anything the Docker runtime would refuse: before any
    engine or container starts, and before anything is stored."""
    if cfg.runtime == "compose":
        return check_compose(cfg, needs)
    bad = sorted(k for k in cfg.images if k not in KINDS)
    if bad:
        raise ValueError(
            f"--image {bad[0]}=...: no server kind {bad[0]!r}; valid: {', '.join(sorted(KINDS))}"
        )
    if any(not v.strip() for v in cfg.images.values()):
        raise ValueError("--image takes KIND=IMAGE with a non-empty image (e.g. redis=redis:7.0)")
    if needs[0].nodes == 0:
        raise ValueError(
            f"--runtime docker: backend {cfg.backend} uses an external server here; nothing "
            "to start in containers"
        )
    for need in needs:
        problem = server_kind(need.kind, need.options).container_problem()
        if problem:
            raise ValueError(f"--runtime docker: {problem}")
    if cfg.toxiproxy:
        raise ValueError("--toxiproxy is not supported with --runtime docker")
    from harness.containers.engine import PRIVATE, available, open_engine
    from harness.containers.images import default_image

    for need in needs:  # recorded in config.json and said (notices): the run's images
        if need.kind not in cfg.images and (image := default_image(need.kind)):
            cfg.images[need.kind] = image

    if cfg.docker_host == PRIVATE:
        ok, why = available()
        if not ok:
            raise ValueError(f"--docker-host private: {why}")
    elif cfg.docker_netns is not None and not Path("/run/netns", cfg.docker_netns).exists():
        raise ValueError(f"--docker-netns {cfg.docker_netns}: no such namespace in /run/netns")
    else:
        with open_engine(cfg.docker_host, cfg.docker_netns, tidy=False):
            pass  # an engine that does not answer is known before anything is stored


#: What a compose project cannot give a run: servers the harness itself must configure.
_COMPOSE_REFUSED_OPTIONS = {
    "failover": "a replica the harness sets up and promotes",
}


def check_compose(cfg: RunConfig, needs: list[ServerNeed]) -> None:
    """Refuse (one line) what cannot work on a compose project's own containers, then look the
    project up: an engine that does not answer or a project with no servers is known before
    anything is stored."""
    from harness.containers.compose import project_services
    from harness.containers.engine import PRIVATE, open_engine

    where = f"--runtime compose (project {cfg.compose_project})"
    if cfg.docker_host == PRIVATE:
        raise ValueError(
            f"{where}: --docker-host private starts an empty engine of the run's own; give the "
            "engine the project runs in (default: DOCKER_HOST)"
        )
    if needs[0].nodes == 0:
        raise ValueError(f"{where}: backend {cfg.backend} uses an external server here")
    for need in needs:
        if need.kind not in with_compose_service():
            raise ValueError(
                f"{where}: server kind {need.kind} has no compose service; kinds: "
                + ", ".join(with_compose_service())
            )
        for opt, what in _COMPOSE_REFUSED_OPTIONS.items():
            if need.options.get(opt):
                raise ValueError(
                    f"{where}: {need.kind} with {opt} needs {what}; use --runtime local"
                )
    for name in cfg.nemesis:
        if nemesis_class(name).needs_clock:
            raise ValueError(
                f"{where}: nemesis {name} needs the clock shim in the server's environment, "
                "which only a runtime that starts the servers can give; use --runtime docker"
            )
    if "wipe" in cfg.nemesis_opts and to_bool("wipe", cfg.nemesis_opts["wipe"]):
        raise ValueError(f"{where}: wipe=true would empty the project's own data; not done")
    with open_engine(cfg.docker_host, cfg.docker_netns, tidy=False) as engine:
        found = project_services(engine.client, cfg.compose_project)
    if not found:
        raise ValueError(
            f"{where}: no such project in the engine {engine.url}, or it has no server "
            f"services (docker-compose -p {cfg.compose_project} up -d)"
        )
    for need in needs:
        if len(found.get(need.kind, [])) < need.nodes:
            raise ValueError(
                f"{where}: {len(found.get(need.kind, []))} {need.kind} service(s), backend "
                f"{cfg.backend} needs {need.nodes}"
            )


def unavailable(cfg: RunConfig) -> str | None:
    """What this machine lacks for a run in containers (no private engine possible, an image
    of ours not built yet), said without starting anything; None when nothing is missing."""
    from harness.containers.engine import PRIVATE, available
    from harness.containers.images import not_built

    if cfg.docker_host != PRIVATE:
        return None  # a user's engine may hold any image: known when the run starts
    ok, why = available()
    if not ok:
        return f"--docker-host private: {why}"
    return next(filter(None, (not_built(tag) for tag in cfg.images.values())), None)


def notices(cfg: RunConfig) -> list[str]:
    """What a chosen nemesis cannot do with this runtime, said before the run starts."""
    if cfg.runtime == "compose":
        said = [
            f"--runtime compose: the servers' durability is compose project "
            f"{cfg.compose_project}'s own setting, not the harness's (see its compose file)"
        ]
        if any(nemesis_class(n).needs_node_uids for n in cfg.nemesis):
            said.append(
                "--runtime compose: a project's containers do not run under per-node uids, so "
                "partitions cut client<->node links only"
            )
        return said
    if cfg.runtime != "docker":
        return []
    from harness.containers.images import parse_tag

    said = [
        f"--runtime docker: {kind} from image {image}"
        + (" (built here by harness images build)" if parse_tag(image) else "")
        for kind, image in sorted(cfg.images.items())
    ]
    if cfg.docker_host == "private" or cfg.docker_netns:
        return said
    if any(nemesis_class(n).needs_node_uids for n in cfg.nemesis):
        said.append(
            "--runtime docker without --docker-netns: the containers share the host's network, "
            "where the harness changes no iptables rule, so partitions cut client<->node links "
            "only (use --docker-host private, or --docker-netns NAME)"
        )
    return said


def open_runtime(
    cfg: RunConfig, clock: bool, run_dir: Path, record: RunRecord, stack: ExitStack
) -> tuple[Runtime, bool]:
    """Open the engine (a private one is started here), join the namespace its containers
    listen in, and make the Docker runtime; ``stack`` undoes all of it. Returns the runtime and
    whether the run is in a namespace of its own (node<->node cuts possible)."""
    from harness.containers.compose import ComposeRuntime
    from harness.containers.docker_runtime import DockerRuntime
    from harness.containers.engine import open_engine

    engine = stack.enter_context(open_engine(cfg.docker_host, cfg.docker_netns))
    record.docker = {"engine": engine.url, "netns": engine.netns}
    if engine.netns is not None:
        stack.enter_context(netns.joined(engine.netns))
    if cfg.runtime == "compose":
        record.docker["compose_project"] = cfg.compose_project
        runtime = stack.enter_context(ComposeRuntime(run_dir, engine, cfg.compose_project))
        return runtime, False  # no per-node uids: client<->node cuts only
    runtime = stack.enter_context(
        DockerRuntime(run_dir, engine, images=cfg.images, clock=clock, keep_data=cfg.keep_data)
    )
    return runtime, engine.netns is not None
