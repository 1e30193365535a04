"""Nemeses: the faults a run injects, and the schedule that injects them."""

from __future__ import annotations

from .base import Nemesis, NemesisEnv, NemesisError
from .clock import Clock
from .network import Flaky, Latency, Partition, Reset, Slow
from .process import ClientPause, Kill, Pause

NEMESES: dict[str, type[Nemesis]] = {
    n.name: n for n in (Partition, Latency, Reset, Slow, Flaky, Kill, Pause, ClientPause, Clock)
}


def nemesis_class(name: str) -> type[Nemesis]:
    if name not in NEMESES:
        raise NemesisError(f"unknown nemesis {name!r}; valid: none, {', '.join(NEMESES)}")
    return NEMESES[name]


__all__ = ["NEMESES", "Nemesis", "NemesisEnv", "NemesisError", "nemesis_class"]
