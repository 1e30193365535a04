"""The run configuration: everything a run needs, written to ``config.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Bounds that every part takes. MAX_KEYS: the protected resource keeps 8 bytes a key in shared
# memory and clients name keys on demand; a million keys runs. MAX_MS: the largest TTL and wait
# every backend accepts: PostgreSQL's lock_timeout and idle_session_timeout are 32-bit counts of
# ms (etcd takes up to 9e9 s; Redis PX a signed 64-bit count, past which every acquire failed).
MAX_KEYS = 1_000_000
MAX_MS = 2**31 - 1  # about 24.8 days


MAX_TIME_LIMIT_S = 7 * 24 * 3600  # a week: a soak test, still a bounded loop


@dataclass
class RunConfig:
    backend: str = "redis"
    workload: str = "mutex"
    nemesis: list[str] = field(default_factory=list)
    nemesis_interval: float = 5.0
    nemesis_opts: dict[str, str] = field(default_factory=dict)
    concurrency: int = 5
    keys: int = 2
    time_limit: float = 30.0
    ops: int | None = None  # bound on acquire attempts over all clients
    rate: float = 0.0  # acquire attempts/s over all clients; 0 = as fast as they go
    ttl_ms: int = 3000
    hold_ms: int = 10
    wait_ms: int = 500
    seed: int | None = None
    fencing: bool = False  # the protected resource rejects stale fence tokens
    check_before_write: bool = False  # holders renew (check) their lease right before writing
    renew_ms: int = 0  # holders renew their lease this often while holding; 0 = never
    backend_opts: dict[str, str] = field(default_factory=dict)
    store: Path = Path("store")
    toxiproxy: str | None = None  # URL of a real Toxiproxy server
    netns: str = "auto"  # auto: a private network namespace when root; on; off
    client_groups: int = 2  # for partitions between clients and nodes
    render_report: bool = True
    keep_data: bool = False  # keep the servers' data dirs after the run (logs are always kept)

    @property
    def nemesis_label(self) -> str:
        return "+".join(self.nemesis) if self.nemesis else "none"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["store"] = str(self.store)
        return d

    def validate(self) -> None:
        """Raise ValueError with one line naming the bad value and what is accepted."""
        checks = [
            (self.concurrency >= 1, f"--concurrency must be >= 1 (got {self.concurrency})"),
            (1 <= self.keys <= MAX_KEYS, f"--keys must be 1 to {MAX_KEYS:,} (got {self.keys})"),
            (
                0 < self.time_limit <= MAX_TIME_LIMIT_S,  # also refuses inf and nan: every run ends
                f"--time-limit must be > 0 and <= {MAX_TIME_LIMIT_S} s (got {self.time_limit})",
            ),
            (1 <= self.ttl_ms <= MAX_MS, f"--ttl must be 1 to {MAX_MS} ms (got {self.ttl_ms})"),
            (0 <= self.hold_ms <= MAX_MS, f"--hold must be 0 to {MAX_MS} ms (got {self.hold_ms})"),
            (0 <= self.wait_ms <= MAX_MS, f"--wait must be 0 to {MAX_MS} ms (got {self.wait_ms})"),
            (self.rate >= 0, f"--rate must be >= 0 (got {self.rate})"),
            (
                0 <= self.renew_ms <= MAX_MS,
                f"--renew-every must be 0 to {MAX_MS} ms (got {self.renew_ms})",
            ),
            (self.ops is None or self.ops >= 1, f"--ops must be >= 1 (got {self.ops})"),
            (self.nemesis_interval > 0, "--nemesis-interval must be > 0 s"),
            (self.netns in ("auto", "on", "off"), f"--netns is auto, on or off (got {self.netns})"),
            (self.client_groups >= 1, "--client-groups must be >= 1"),
            (self.concurrency <= 256, f"--concurrency must be <= 256 (got {self.concurrency})"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
