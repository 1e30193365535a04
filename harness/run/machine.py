"""The machine a run ran on, as config.json records it: load averages and cores at its start and
at its end. A verdict or a rate measured on a loaded machine must say so (a campaign's cells
are compared across runs, and a busy machine moves timing-bound rates)."""

from __future__ import annotations

import os
from typing import Any


def cores() -> dict[str, int | None]:
    """The machine's cores and how many this process may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"cores": os.cpu_count(), "usable": usable}


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to hundredths."""
    return [round(x, 2) for x in os.getloadavg()]


def snapshot() -> dict[str, Any]:
    """What config.json's ``machine`` holds at a run's start (``load_end`` is added at its end)."""
    return {**cores(), "load_start": load()}
