"""What a nemesis is and what it may touch.

A nemesis injects one kind of fault (``start``) and heals it (``stop``); ``teardown`` undoes
anything still in force and must be safe to call at any moment, twice, after a crash. Each
``start``/``stop`` returns a JSON-able value describing what was done to which target; the
schedule records it in the history as an op of process ``"nemesis"``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from backends.base import Backend

from ..config import RunConfig
from ..runtime import Cluster


class NemesisError(ValueError):
    """A nemesis cannot run here or with these options (one line for the user)."""


@dataclass
class NemesisEnv:
    cfg: RunConfig
    backend: Backend
    cluster: Cluster
    rng: random.Random
    proxies: Any = None  # net.proxies.ProxyLinks, when client links are proxied
    firewall: Any = None  # net.firewall.Firewall, inside a private namespace
    worker_pids: list[int] = field(default_factory=list)
    status: Any = None  # shared client status array (workloads.base.STATUS_FIELDS per client)


class Nemesis:
    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[dict[str, str]] = {}  # name -> "default: meaning"
    needs_proxies: ClassVar[bool] = False
    needs_clock: ClassVar[bool] = False
    needs_node_uids: ClassVar[bool] = False

    def __init__(self, env: NemesisEnv, opts: dict[str, str]) -> None:
        self.env = env
        self.opts = opts

    def opt(self, name: str, default: Any) -> Any:
        raw = self.opts.get(name)
        if raw is None:
            return default
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return raw.lower() in ("true", "1", "yes")
            return type(default)(raw)
        except ValueError:
            raise NemesisError(
                f"nemesis option {name}={raw!r} is not a {type(default).__name__}"
            ) from None

    def check(self) -> None:
        """Raise NemesisError when this nemesis cannot run against this cluster."""

    def duration(self) -> float:
        """Seconds the fault stays in force."""
        return self.env.cfg.nemesis_interval

    def start(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def stop(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Undo whatever is still in force. Idempotent; never raises for 'already healed'."""
