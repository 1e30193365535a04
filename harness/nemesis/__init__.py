"""Nemeses: the faults a run injects, and the schedule that injects them."""

from __future__ import annotations

from collections.abc import Mapping

from backends.base import Backend, ServerNeed

from ..runtime.base import node_names
from ..runtime.kinds import server_kind
from .base import FaultParams, Nemesis, NemesisEnv, NemesisError, NotApplicable, Plan
from .clock_faults import Clock
from .network import Flaky, Latency, Partition, Reset, Slow
from .process import ClientPause, Kill, Pause
from .schedule import recovery_window

NEMESES: dict[str, type[Nemesis]] = {
    n.name: n for n in (Partition, Latency, Reset, Slow, Flaky, Kill, Pause, ClientPause, Clock)
}


def nemesis_class(name: str) -> type[Nemesis]:
    if name not in NEMESES:
        raise NemesisError(f"unknown nemesis {name!r}; valid: none, {', '.join(NEMESES)}")
    return NEMESES[name]


def check_before_start(
    cfg: FaultParams,
    backend: Backend,
    classes: list[type[Nemesis]],
    extra: Mapping[str, ServerNeed] | None = None,
) -> None:
    """Every nemesis check that needs no server: option values, targets, whether each nemesis
    can act on this backend's servers (NotApplicable), and whether any fault can fire at all.
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
        raise NemesisError(
            f"no fault would be injected: --time-limit {cfg.time_limit:g} s is not longer than "
            f"--nemesis-interval {cfg.nemesis_interval:g} s (the first fault starts one interval "
            "into the run); give a longer --time-limit or a shorter --nemesis-interval"
        )
    recovery = recovery_window(cfg.time_limit)
    if cfg.time_limit - recovery <= cfg.nemesis_interval:
        raise NemesisError(
            f"no fault would be injected: the first fault is due {cfg.nemesis_interval:g} s into "
            f"the run, inside its recovery window (the last {recovery:.3g} s of --time-limit "
            f"{cfg.time_limit:g} s, kept free of faults); give a longer --time-limit or a "
            "shorter --nemesis-interval"
        )


__all__ = [
    "NEMESES",
    "Nemesis",
    "NemesisEnv",
    "NemesisError",
    "NotApplicable",
    "Plan",
    "check_before_start",
    "nemesis_class",
]
