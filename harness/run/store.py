"""The store: one directory a run, ``store/<backend>-<workload>-<nemesis>/<timestamp>/``."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from checkers.history import CONFIG, HISTORY, REPORT, RESULTS, to_json

__all__ = ["CONFIG", "HISTORY", "REPORT", "RESULTS", "new_run_dir", "read_json", "runs"]


def new_run_dir(store: Path, backend: str, workload: str, nemesis: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    d = Path(store) / f"{backend}-{workload}-{nemesis}" / stamp
    d.mkdir(parents=True, exist_ok=False)
    set_latest(store, d.relative_to(store))
    return d


def set_latest(store: Path, target: Path | None) -> None:
    """Point ``store/latest`` at ``target`` (relative to the store), or remove it (None)."""
    latest = Path(store) / "latest"
    if target is None:
        latest.unlink(missing_ok=True)
        return
    tmp = Path(store) / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(latest)  # atomic: a reader never sees no 'latest'


_ORJSON = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def write_json(path: Path, data: Any) -> None:
    """``data`` indented, written whole or not at all. orjson (a large run's results.json, with
    its holds, took 0.7 s through the json module: a sixth of checking 10^6 ops); the json
    module for what orjson cannot write (an integer past 64 bits, which a history may hold)."""
    try:
        text = orjson.dumps(data, default=to_json, option=_ORJSON) + b"\n"
    except TypeError:  # orjson.JSONEncodeError
        text = (json.dumps(data, indent=2, default=to_json) + "\n").encode()
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(text)
    tmp.replace(path)


def read_json(path: Path) -> Any:
    """A JSON file; a corrupt one raises ValueError naming the file."""
    try:
        return json.loads(Path(path).read_bytes())  # UTF-8 whatever the locale
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def read_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object (``config.json``, ``results.json``)."""
    d = read_json(path)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d


# Where run directories lie in a store: its own runs, and a campaign's (``harness compare``),
# each in a store of its own: runs/<cell>/<repetition>/<backend-workload-nemesis>/<timestamp>/.
RUN_PATTERNS = ("*/*", "runs/*/*/*/*")


def runs(store: Path) -> list[Path]:
    """Every stored run directory, a campaign's too, oldest first."""
    store = Path(store)
    if not store.is_dir():
        return []
    found = [p.parent for pattern in RUN_PATTERNS for p in store.glob(f"{pattern}/{CONFIG}")]
    return sorted(found, key=lambda p: p.name)
