"""The set as a Redis key (``set:<key>``, a JSON list), on the lock's node or a separate server.

- fenced: one Lua script compares the token with ``setfence:<key>`` (the highest accepted) and
  writes both, or refuses: atomic on the server;
- guarded: one Lua script writes only while ``lock:<key>`` holds this writer's token (the format
  of ``backends.redis``), so an expired or taken-over lock refuses the write.
"""

from __future__ import annotations

import json

from backends.base import Lease
from backends.redis import connect

from .base import NotHeld, SetStore, StaleWrite

FENCED = """
local top = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[2]) < top then return {0, top} end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1])
return {1, top}
"""
GUARDED = """
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


class RedisStore(SetStore):
    name = "redis"
    guards = frozenset({"redis"})

    def _connect(self):  # type: ignore[no-untyped-def]
        r = connect(self.endpoints[0], self.timeout_ms)
        return r, r.register_script(FENCED), r.register_script(GUARDED)

    def _close(self, conn) -> None:  # type: ignore[no-untyped-def]
        conn[0].close()

    def setup(self, keys: list[str]) -> None:
        r = connect(self.endpoints[0], self.timeout_ms)
        try:
            for k in keys:
                r.set(f"set:{k}", "[]")
                r.delete(f"setfence:{k}")
        finally:
            r.close()

    def read(self, key: str) -> list[int]:
        raw = self.conn()[0].get(f"set:{key}")
        return json.loads(raw) if raw else []

    def write(self, key: str, elements: list[int], fence: int | None, lease: Lease | None) -> None:
        r, fenced, guarded = self.conn()
        value = json.dumps(elements, separators=(",", ":"))
        if self.mode == "plain":
            r.set(f"set:{key}", value)
        elif self.mode == "fenced":
            f = self._check_fence(fence)
            ok, top = fenced(keys=[f"set:{key}", f"setfence:{key}"], args=[value, f])
            if not ok:
                raise StaleWrite(f"stale fence token {f} < {top}")
        else:
            held = self._lease(lease)
            if not guarded(keys=[f"set:{key}", f"lock:{held.key}"], args=[value, held.token]):
                raise NotHeld(f"lock {held.key!r} no longer held by this writer at the store")
