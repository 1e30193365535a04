"""The set as an etcd key (``sets/<key>``, a JSON list), over the JSON gateway.

- fenced: one transaction compares ``setfences/<key>`` (the highest accepted token, zero-padded
  so that etcd's byte-wise comparison orders numbers) with the writer's token and puts both, or
  does nothing;
- guarded: one transaction puts only while the writer's lock key (``backends.etcd``: the key the
  lock call returned, attached to the holder's lease) still exists with the create revision the
  writer's fence was read from (Jepsen's ``lock-etcd-set``). An expired lease deletes the key, so
  the write is refused.

Reads are linearizable ranges (etcd's default). Every call has the gateway's timeout.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from backends.base import Lease
from backends.etcd_gateway import Gateway, b64

from .base import NotHeld, SetStore, StaleWrite

WIDTH = 20  # digits of a zero-padded fence: a non-negative int64 fits


def pad(fence: int) -> str:
    return str(fence).zfill(WIDTH)


class EtcdStore(SetStore):
    name = "etcd"
    guards = frozenset({"etcd"})

    def _connect(self) -> Gateway:
        # every member, failing over as the lock's clients do (backends/etcd_gateway.py)
        ep, *rest = self.endpoints
        return Gateway(ep.host, ep.port, fallbacks=[(e.host, e.port) for e in rest])

    def _close(self, conn: Gateway) -> None:
        conn.reset()

    def _call(self, path: str, body: dict[str, Any], gw: Gateway | None = None) -> dict[str, Any]:
        return (gw or self.conn()).call(path, body, self.timeout_ms / 1000)

    def setup(self, keys: list[str]) -> None:
        gw = self._connect()
        try:
            for k in keys:
                self._call("/v3/kv/put", {"key": b64(f"sets/{k}"), "value": b64("[]")}, gw)
                self._call("/v3/kv/put", {"key": b64(f"setfences/{k}"), "value": b64(pad(0))}, gw)
        finally:
            gw.reset()

    def read(self, key: str) -> list[int]:
        kvs = self._call("/v3/kv/range", {"key": b64(f"sets/{key}")}).get("kvs") or []
        return json.loads(base64.b64decode(kvs[0].get("value", ""))) if kvs else []

    def write(self, key: str, elements: list[int], fence: int | None, lease: Lease | None) -> None:
        put = {"key": b64(f"sets/{key}"), "value": b64(json.dumps(elements, separators=(",", ":")))}
        if self.mode == "plain":
            self._call("/v3/kv/put", put)
            return
        if self.mode == "fenced":
            f = self._check_fence(fence)
            if f < 0:
                raise ValueError(f"write=fenced needs a non-negative fence token, got {f}")
            fkey = b64(f"setfences/{key}")
            txn = {
                # stored < f + 1, i.e. stored <= f: an equal token (the same hold) may write again
                "compare": [
                    {"key": fkey, "target": "VALUE", "result": "LESS", "value": b64(pad(f + 1))}
                ],
                "success": [
                    {"request_put": put},
                    {"request_put": {"key": fkey, "value": b64(pad(f))}},
                ],
            }
            if not self._call("/v3/kv/txn", txn).get("succeeded"):
                raise StaleWrite(f"stale fence token {f}: the store accepted a newer one")
            return
        held = self._lease(lease)
        lock_key = (held.data or {}).get("lock_key") if isinstance(held.data, dict) else None
        if lock_key is None or held.fence is None:
            raise ValueError("write=guarded needs an etcd lock lease (its lock key and revision)")
        txn = {
            "compare": [
                {
                    "key": lock_key,
                    "target": "CREATE",
                    "result": "EQUAL",
                    "create_revision": str(held.fence),
                }
            ],
            "success": [{"request_put": put}],
        }
        if not self._call("/v3/kv/txn", txn).get("succeeded"):
            raise NotHeld(f"lock key of {held.key!r} is gone: its lease expired or was revoked")
