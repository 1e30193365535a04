"""What each server keeps of its acknowledged writes when its process is killed.

The harness injects process kills, not power loss: a server may leave its writes in the kernel
(fsync off) but must have handed every acknowledged write to the kernel before answering. A
setting that can lose acknowledged writes on a process kill is only used when a backend option
asks for it, and then the run says so (config.json, the terminal summary and the report), so a
lost write is never blamed on the lock by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

NOTICE = "non-durable setting in effect: "


@dataclass(frozen=True)
class Durability:
    settings: str  # what the server runs with, e.g. "synchronous_commit=on, fsync=off"
    loses_on_kill: str | None = None  # why a process kill can lose acknowledged writes

    def notice(self, kind: str) -> str | None:
        """The run's one-line warning, or None when a kill loses no acknowledged write."""
        if self.loses_on_kill is None:
            return None
        return f"{NOTICE}{kind} {self.settings}: {self.loses_on_kill}"
