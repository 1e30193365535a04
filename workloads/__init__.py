"""What clients do. Each workload is a module with ``run_client(ctx)``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

WORKLOADS = {"mutex": "mutex"}


def run_client_for(name: str) -> Callable:
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; valid: {', '.join(sorted(WORKLOADS))}")
    return importlib.import_module(f"{__name__}.{WORKLOADS[name]}").run_client
