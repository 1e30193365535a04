"""Nemeses: the faults a run injects, and the schedule that injects them.

Nemeses are found through the ``harness.nemeses`` entry point group, as backends and workloads
are through theirs; the built-in ones are registered there too (pyproject.toml), so a package
can ship its own: ``[project.entry-points."harness.nemeses"] mine = "pkg.mod:MyNemesis"``."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

from backends.base import Backend, ServerNeed

from ..runtime.base import node_names
from ..runtime.kinds import server_kind
from .base import FaultParams, Nemesis, NemesisEnv, NemesisError, NotApplicable, Plan
from .schedule import recovery_window

GROUP = "harness.nemeses"


def names() -> list[str]:
    """Every installed nemesis, in the order they are registered (the first of a name wins)."""
    return list(dict.fromkeys(ep.name for ep in entry_points(group=GROUP)))


def nemesis_class(name: str) -> type[Nemesis]:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    raise NemesisError(f"unknown nemesis {name!r}; valid: none, {', '.join(names())}")


def nemeses() -> dict[str, type[Nemesis]]:
    """Every installed nemesis class by name."""
    return {name: nemesis_class(name) for name in names()}


def check_before_start(
    cfg: FaultParams,
    backend: Backend,
    classes: list[type[Nemesis]],
    extra: Mapping[str, ServerNeed] | None = None,
) -> None:
    """Every nemesis check that needs no server: option values, targets, whether each nemesis
    can act on this backend's servers (NotApplicable), and whether any fault can fire at all
    (NotApplicable too: a campaign shows that cell as such and runs the others).
    ``extra``: the workload's own servers by role, whose nodes are targets too."""
    if not classes:
        return
    need = backend.servers()
    plan = Plan(cfg, server_kind(need.kind, need.options), node_names(need.nodes), need.nodes == 0)
    for role, xneed in (extra or {}).items():
        kind = server_kind(xneed.kind, xneed.options)
        plan.extra.update({name: kind for name in node_names(xneed.nodes, role)})
    for cls in classes:
        cls.validate(plan, cfg.nemesis_opts)
    if cfg.time_limit <= cfg.nemesis_interval:
        raise NotApplicable(  # in a campaign: this cell only
            f"no fault would be injected: --time-limit {cfg.time_limit:g} s is not longer than "
            f"--nemesis-interval {cfg.nemesis_interval:g} s (the first fault starts one interval "
            "into the run); give a longer --time-limit or a shorter --nemesis-interval"
        )
    recovery = recovery_window(cfg.time_limit)
    if cfg.time_limit - recovery <= cfg.nemesis_interval:
        raise NotApplicable(  # in a campaign: this cell only
            f"no fault would be injected: the first fault is due {cfg.nemesis_interval:g} s into "
            f"the run, inside its recovery window (the last {recovery:.3g} s of --time-limit "
            f"{cfg.time_limit:g} s, kept free of faults); give a longer --time-limit or a "
            "shorter --nemesis-interval"
        )


__all__ = [
    "GROUP",
    "Nemesis",
    "NemesisEnv",
    "NemesisError",
    "NotApplicable",
    "Plan",
    "check_before_start",
    "nemeses",
    "nemesis_class",
    "names",
]
