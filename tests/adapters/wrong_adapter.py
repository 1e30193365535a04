"""A deliberately wrong process adapter, for ``harness adapter check``'s tests.

``python wrong_adapter.py MODE``: ``malformed`` answers acquire ``{"type": "OK"}``;
``grant-all`` grants every acquire (no lock at all: two holders at once); ``silent`` never
answers an acquire; ``bad-caps`` declares an expiry the protocol does not know. Every other
message is answered as the protocol says.
"""

from __future__ import annotations

import json
import sys

MODE = sys.argv[1]
CAPS = {"fenced": False, "expiry": "ttl", "renew": False, "still_held": False}


def answer(msg: dict) -> dict | None:
    op = msg.get("op")
    if op == "connect":
        caps = {**CAPS, "expiry": "forever"} if MODE == "bad-caps" else CAPS
        return {"type": "ok", "capabilities": caps}
    if op == "acquire":
        if MODE == "malformed":
            return {"type": "OK", "fence": None}
        if MODE == "silent":
            return None
        return {"type": "ok", "fence": None}
    if op in ("release", "close"):
        return {"type": "ok"}
    return {"type": "fail", "error": f"unknown op {op!r}"}


for line in sys.stdin:
    msg = json.loads(line)
    reply = answer(msg)
    if reply is not None:
        print(json.dumps(reply), flush=True)
    if msg.get("op") == "close":
        break
