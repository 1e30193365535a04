"""What each server kind a campaign uses says its version is, and each backend's servers and
durability-related options, for the comparison page's header (a result is only reproducible
with the versions and settings that produced it)."""

from __future__ import annotations

import subprocess
from typing import Any

VERSION_TIMEOUT_S = 20.0


def server_version(kind: str) -> str:
    """The server's own version line (``redis-server --version`` ...), or why there is none."""
    from ..runtime.base import MissingBinary
    from ..runtime.kinds import server_kind

    try:
        k = server_kind(kind)
        binary = k.find_binary()
    except MissingBinary as e:
        return f"not available here: {e}"
    except Exception as e:  # a kind that cannot be loaded: say so, the page is still written
        return f"unknown ({e})"
    if kind == "zookeeper":
        from ..runtime.zookeeper import JARS

        argv = [binary, "-cp", ":".join(JARS), "org.apache.zookeeper.version.VersionInfoMain"]
    elif kind == "toxiproxy":
        from .. import __version__

        return f"embedded in lockharness {__version__}"
    else:
        argv = [binary, "--version"]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=VERSION_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    lines = [ln.strip() for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    return lines[0] if lines else f"unknown ({binary} printed nothing)"


def backend_servers(name: str, opts: dict[str, str]) -> dict[str, Any]:
    """The servers a backend with these options runs on, and their options."""
    from backends import registry

    try:
        need = registry.make(name, opts).servers()
    except Exception as e:
        return {"kind": "?", "nodes": 0, "options": {}, "error": str(e)}
    out: dict[str, Any] = {
        "kind": need.kind,
        "nodes": need.nodes,
        "options": {k: str(v) for k, v in (need.options or {}).items()},
        "durability": "external server" if not need.nodes else "",
        "loses_on_kill": None,
    }
    if need.nodes:
        from ..runtime.kinds import server_kind

        try:
            d = server_kind(need.kind, need.options).durability()
            out["durability"], out["loses_on_kill"] = d.settings, d.loses_on_kill
        except Exception as e:  # a kind without the hook: say so, the page is still written
            out["durability"] = f"unknown ({e})"
    return out


def reported(config: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's servers as its config.json records them: each (kind, role, version the server
    reported, image) once; image None for a local process, version None when it did not say."""
    out: list[dict[str, Any]] = []
    for s in config.get("servers") or []:
        if not isinstance(s, dict) or not s.get("kind"):
            continue
        row = {
            "kind": str(s["kind"]),
            "role": s.get("role"),
            "version": s.get("version"),
            "image": s.get("image"),
        }
        if row not in out:
            out.append(row)
    return out


def seen(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (kind, version, image) the servers of these runs reported, with how many runs
    reported it. The proxies are the harness's own fault injectors, not servers under test."""
    counts: dict[tuple[str, Any, Any], int] = {}
    for r in runs:
        for key in {
            (s["kind"], s["version"], s["image"])
            for s in r.get("server_versions") or []
            if s.get("role") != "proxy"
        }:
            counts[key] = counts.get(key, 0) + 1
    return [
        {"kind": k, "version": v, "image": i, "runs": n}
        for (k, v, i), n in sorted(counts.items(), key=lambda x: tuple(map(str, x[0])))
    ]
