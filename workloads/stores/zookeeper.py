"""The set as a ZooKeeper znode's data (``/sets/<key>``: JSON ``{"elements": [...], "fence": n}``).

- fenced: read data and version, refuse when the stored fence is newer, else ``set_data`` at
  that version: a compare-and-set, retried (a bounded number of times) when another writer got
  in between, so a write lands only on the state it checked;
- guarded: one multi-op transaction: ``check`` the writer's lock znode (``backends.zookeeper``:
  the ephemeral sequential node of its hold) and ``set_data``; the node dies with the holder's
  session (or its release), and then the transaction fails as a whole.

Every call is asynchronous with a timeout. Every read ``sync``s first, so it is linearizable
whichever node answers: the store has a session of its own, which may sit on a follower that
has not yet applied the previous holder's write (the lock orders only what its own session
sees); an unsynced read there is stale, and writing it back loses an update the lock did
protect: the harness's fault, not the lock's.
"""

from __future__ import annotations

import json
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from backends.base import Lease

from .base import NotHeld, SetStore, StaleWrite

_CAS_TRIES = 100


class ZooKeeperStore(SetStore):
    name = "zookeeper"
    guards = frozenset({"zookeeper"})

    @property
    def _t(self) -> float:
        return self.timeout_ms / 1000

    def _connect(self) -> KazooClient:
        hosts = ",".join(f"{e.host}:{e.port}" for e in self.endpoints)
        zk = KazooClient(hosts=hosts, timeout=max(self._t, 2.0))
        try:
            zk.start(timeout=self._t)
        except Exception:
            zk.stop()
            zk.close()
            raise
        return zk

    def _close(self, conn: KazooClient) -> None:
        try:
            conn.stop()
        finally:
            conn.close()

    def setup(self, keys: list[str]) -> None:
        zk = self._connect()
        try:
            zk.ensure_path("/sets")
            empty = _encode([], -1)
            for k in keys:
                try:
                    zk.create_async(f"/sets/{k}", empty).get(timeout=self._t)
                except NodeExistsError:
                    zk.set_async(f"/sets/{k}", empty).get(timeout=self._t)
        finally:
            self._close(zk)

    def _get(self, key: str) -> tuple[dict[str, Any], int]:
        data, stat = self.conn().get_async(f"/sets/{key}").get(timeout=self._t)
        return json.loads(data), stat.version

    def read(self, key: str) -> list[int]:
        self.conn().sync_async(f"/sets/{key}").get(timeout=self._t)
        return list(self._get(key)[0]["elements"])

    def write(self, key: str, elements: list[int], fence: int | None, lease: Lease | None) -> None:
        zk = self.conn()
        path = f"/sets/{key}"
        if self.mode == "plain":
            zk.set_async(path, _encode(elements, fence)).get(timeout=self._t)
            return
        if self.mode == "fenced":
            f = self._check_fence(fence)
            for _ in range(_CAS_TRIES):
                stored, version = self._get(key)
                top = stored.get("fence", -1)
                if f < top:
                    raise StaleWrite(f"stale fence token {f} < {top}")
                try:
                    zk.set_async(path, _encode(elements, f), version).get(timeout=self._t)
                    return
                except BadVersionError:
                    continue  # another writer got in between: check again
            raise TimeoutError(f"fenced write of {key!r} kept racing for {_CAS_TRIES} tries")
        held = self._lease(lease)
        lock_path = getattr(held.data, "path", None)
        if lock_path is None:
            raise ValueError("write=guarded needs a ZooKeeper lock lease (its lock node)")
        t = zk.transaction()
        t.check(lock_path, 0)  # the lock node is never modified: version 0 while it exists
        t.set_data(path, _encode(elements, fence))
        results = t.commit_async().get(timeout=self._t)
        if any(isinstance(r, NoNodeError | BadVersionError) for r in results):
            raise NotHeld(f"lock node of {held.key!r} is gone: the hold ended")
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]


def _encode(elements: list[int], fence: int | None) -> bytes:
    return json.dumps({"elements": elements, "fence": -1 if fence is None else fence}).encode()
