"""A campaign's definition: backends (with options) x workloads (with options) x nemesis sets
(with options), how many repetitions, the campaign seed, and the settings every run shares.

It comes from a TOML spec file, from ``harness compare``'s flags, or both (a flag given on the
command line replaces the spec's value)::

    title = "Distributed locks under faults"
    seed = 20261122
    repeat = 5
    backends = ["redis", {name = "zookeeper", opts = {ignore_connection_state = true}}]
    workloads = ["mutex", {name = "lock-set"}]
    nemeses = ["none", "kill", {name = "partition+pause", label = "partition, then pause"}]

A backend entry can also run its servers in containers (``harness run --runtime docker``), so
two images of one server are two rows side by side::

    backends = [
      {name = "redis", label = "redis 7.0", runtime = "docker",
       images = {redis = "lockharness/redis:bookworm"}},
      {name = "redis", label = "redis 6.0", runtime = "docker",
       images = {redis = "lockharness/redis:bullseye"}},
    ]

    [run]
    time_limit = 10
    nemesis_interval = 2
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.errors import LockHarnessError

# The settings every run of a campaign shares (``harness run``'s flags of the same names).
RUN_DEFAULTS: dict[str, Any] = {
    "time_limit": 20.0,
    "concurrency": 5,
    "keys": 2,
    "nemesis_interval": 5.0,
    "client_groups": 2,
    "netns": "auto",
}
RUN_TYPES: dict[str, type] = {
    "time_limit": float,
    "concurrency": int,
    "keys": int,
    "nemesis_interval": float,
    "client_groups": int,
    "netns": str,
    "model": str,  # the lock model (lease, strict); absent: the run's default, lease
    "backoff": str,  # the clients' backoff, as --backoff takes it ("10,1000", "0": none)
}
TOP_KEYS = ("title", "seed", "repeat", "backends", "workloads", "nemeses", "run")
ITEM_KEYS = ("name", "opts", "label")
# Where a backend's servers run (``harness run``'s --runtime, --image, --docker-host).
RUNTIME_KEYS = ("runtime", "images", "docker_host")
RUNTIMES = ("local", "docker")
DEFAULT_DOCKER_HOST = "private"  # an engine of the harness's own: nothing shared is touched
MAX_REPEAT = 10_000


class SpecError(LockHarnessError, ValueError):
    """A campaign that cannot be: one line saying what was wrong and what is accepted."""


def option_text(v: Any) -> str:
    """An option value as ``harness run`` takes it on the command line (TOML true -> "true")."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass(frozen=True)
class Item:
    """A backend, workload or nemesis set, with its options."""

    name: str
    opts: tuple[tuple[str, Any], ...] = ()
    label: str = ""
    runtime: str = "local"  # a backend's: where its servers run
    images: tuple[tuple[str, str], ...] = ()  # server kind -> image (docker runtime)
    docker_host: str | None = None  # the engine (docker runtime; never part of the identity)

    @property
    def key(self) -> str:
        """Stable identity: the name, the sorted options and, in containers, the images
        (never the label nor the engine)."""
        key = self.name
        if self.opts:
            key += f"[{','.join(f'{k}={option_text(v)}' for k, v in self.opts)}]"
        if self.runtime != "local":
            key += f"@{self.runtime}[{','.join(f'{k}={v}' for k, v in self.images)}]"
        return key

    @property
    def shown(self) -> str:
        if self.label:
            return self.label
        text = self.name
        if self.opts:
            text += " " + " ".join(f"{k}={option_text(v)}" for k, v in self.opts)
        if self.runtime != "local":
            text += f" ({', '.join(v for _, v in self.images) or self.runtime})"
        return text

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.opts)

    def as_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "opts": self.options, "label": self.shown, "key": self.key}
        if self.runtime != "local":
            d |= {"runtime": self.runtime, "images": dict(self.images)}
            d["docker_host"] = self.docker_host
        return d

    @property
    def nemeses(self) -> list[str]:
        """A nemesis set's faults ("kill+pause" -> ["kill", "pause"]; "none" -> [])."""
        if self.name in ("", "none"):
            return []
        return [x.strip() for x in self.name.split("+")]


def item(raw: Any, what: str) -> Item:
    """One entry of ``backends``/``workloads``/``nemeses``: a name, or {name, opts, label};
    a backend's also takes runtime, images and docker_host."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise SpecError(
            f"{what}: each entry is a name or {{name = ..., opts = {{...}}}} (got {raw!r})"
        )
    accepted = ITEM_KEYS + RUNTIME_KEYS if what == "backends" else ITEM_KEYS
    unknown = sorted(set(raw) - set(accepted))
    if unknown:
        only = " (runtime and images are a backend's)" if set(unknown) & set(RUNTIME_KEYS) else ""
        raise SpecError(
            f"{what}: unknown key {', '.join(unknown)} in {raw!r}; accepted: "
            f"{', '.join(accepted)}{only}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{what}: an entry has no name (got {raw!r})")
    opts = raw.get("opts", {})
    if not isinstance(opts, dict) or any(isinstance(v, dict | list) for v in opts.values()):
        raise SpecError(f"{what} {name}: opts is a table of NAME = value (got {opts!r})")
    label = raw.get("label", "")
    if not isinstance(label, str):
        raise SpecError(f"{what} {name}: label is a string (got {label!r})")
    return Item(name.strip(), tuple(sorted(opts.items())), label, *_runtime(raw, name))


def _runtime(raw: dict[str, Any], name: str) -> tuple[str, tuple[tuple[str, str], ...], Any]:
    """A backend entry's runtime, images and docker_host, checked."""
    runtime = raw.get("runtime", "local")
    if runtime not in RUNTIMES:
        raise SpecError(f"backends {name}: runtime is local or docker (got {runtime!r})")
    images = raw.get("images", {})
    if not isinstance(images, dict) or not all(
        isinstance(v, str) and v.strip() and k.strip() for k, v in images.items()
    ):
        raise SpecError(
            f'backends {name}: images is a table of KIND = "IMAGE", e.g. '
            f'{{redis = "lockharness/redis:bullseye"}} (got {images!r})'
        )
    host = raw.get("docker_host")
    if host is not None and (not isinstance(host, str) or not host.strip()):
        raise SpecError(f"backends {name}: docker_host is private or an engine URL (got {host!r})")
    if runtime == "local":
        if images or host is not None:
            raise SpecError(f'backends {name}: images and docker_host need runtime = "docker"')
        return "local", (), None
    pairs = tuple(sorted((k.strip(), v.strip()) for k, v in images.items()))
    return "docker", pairs, (host or DEFAULT_DOCKER_HOST).strip()


@dataclass(frozen=True)
class Cell:
    backend: Item
    workload: Item
    nemesis: Item

    @property
    def key(self) -> str:
        return f"{self.backend.key} / {self.workload.key} / {self.nemesis.key}"

    @property
    def slug(self) -> str:
        """A directory name for the cell's runs: readable, and unique by a hash of the key."""
        readable = "-".join((self.backend.name, self.workload.name, self.nemesis.name))
        readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in readable)
        return f"{readable}-{hashlib.sha256(self.key.encode()).hexdigest()[:8]}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "backend": self.backend.as_dict(),
            "workload": self.workload.as_dict(),
            "nemesis": self.nemesis.as_dict(),
        }


@dataclass
class Campaign:
    backends: list[Item]
    workloads: list[Item]
    nemeses: list[Item]
    repeat: int = 1
    seed: int | None = None  # None: derived from the definition (so the same command resumes)
    run: dict[str, Any] = field(default_factory=lambda: dict(RUN_DEFAULTS))
    title: str = "Lock comparison"
    source: str = "flags"

    def cells(self) -> list[Cell]:
        """Every cell, in the spec's order: backend, then workload, then nemesis."""
        return [Cell(b, w, n) for b in self.backends for w in self.workloads for n in self.nemeses]

    def definition(self) -> dict[str, Any]:
        """What makes two campaigns the same (the seed aside): cells, repetitions, settings."""
        return {
            "cells": [c.key for c in self.cells()],
            "repeat": self.repeat,
            "run": {k: self.run[k] for k in sorted(self.run)},
        }

    @property
    def campaign_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        blob = json.dumps(self.definition(), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big")

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(self.definition() | {"seed": self.campaign_seed}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "source": self.source,
            "seed": self.campaign_seed,
            "seed_given": self.seed is not None,
            "repeat": self.repeat,
            "run": dict(self.run),
            "backends": [b.as_dict() for b in self.backends],
            "workloads": [w.as_dict() for w in self.workloads],
            "nemeses": [n.as_dict() for n in self.nemeses],
            "fingerprint": self.fingerprint,
        }


def _items(raw: Any, what: str) -> list[Item]:
    if isinstance(raw, str):  # the flags' form: "a,b,c"
        raw = [x.strip() for x in raw.split(",") if x.strip()]
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{what}: give a non-empty list of names or {{name, opts}} tables")
    items = [item(r, what) for r in raw]
    seen: set[str] = set()
    labels: set[str] = set()
    for it in items:
        if it.key in seen:
            raise SpecError(f"{what}: {it.key} is listed twice")
        if it.label and it.label in labels:  # two rows one could not tell apart
            raise SpecError(f"{what}: label {it.label!r} is given to two entries")
        seen.add(it.key)
        labels.add(it.label)
    return items


def _run_settings(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SpecError(f"[run] is a table of settings (got {raw!r})")
    unknown = sorted(set(raw) - set(RUN_TYPES))
    if unknown:
        raise SpecError(
            f"[run]: unknown setting {', '.join(unknown)}; accepted: {', '.join(RUN_TYPES)} "
            "(workload options such as ttl_ms go in a workload's opts)"
        )
    out = {}
    for k, v in raw.items():
        want = RUN_TYPES[k]
        ok = isinstance(v, str) if want is str else isinstance(v, int | float)
        if not ok or isinstance(v, bool) or (want is int and isinstance(v, float)):
            raise SpecError(f"[run] {k} must be {want.__name__} (got {v!r})")
        out[k] = want(v)
    if "backoff" in out:
        from ..run.config import parse_backoff

        try:
            parse_backoff(out["backoff"])
        except ValueError as e:
            raise SpecError(f"[run] {e}") from None
    return out


def _repeat(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_REPEAT:
        raise SpecError(f"repeat must be a whole number from 1 to {MAX_REPEAT:,} (got {v!r})")
    return v


def _seed(v: Any) -> int | None:
    from ..run.config import MAX_SEED  # one range for a campaign's seed and a run's

    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEED:
        raise SpecError(f"seed must be a whole number from 0 to 2^63-1 (got {v!r})")
    return v


def load(path: Path) -> dict[str, Any]:
    """The raw table of a spec file; a missing or malformed file is one line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"--spec {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"--spec {path}: cannot read it ({e})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"--spec {path}: not valid TOML ({e})") from None
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise SpecError(
            f"--spec {path}: unknown key {', '.join(unknown)}; accepted: {', '.join(TOP_KEYS)}"
        )
    return raw


def build(
    spec: dict[str, Any] | None,
    flags: dict[str, Any],
    source: str = "flags",
    takes: Callable[[str, str], bool] | None = None,
) -> Campaign:
    """A campaign from a spec's raw table and the flags given on the command line (only those
    the user gave: each replaces the spec's value). ``flags`` keys: backends, workloads,
    nemeses (comma-separated text), repeat, seed, and any ``[run]`` setting; ``workload_opts``
    (e.g. ttl_ms from --ttl) is added to the options of every workload that ``takes`` it
    (workload name, option name; default: every workload)."""
    raw = dict(spec or {})
    for k in ("backends", "workloads", "nemeses", "repeat", "seed"):
        if flags.get(k) is not None:
            raw[k] = flags[k]
    if "backends" not in raw:
        raise SpecError(
            "nothing to compare: give --backends (and --nemeses), --spec FILE, or run directories"
        )
    run = dict(RUN_DEFAULTS) | _run_settings(raw.get("run", {}))
    run |= _run_settings({k: v for k, v in flags.items() if k in RUN_TYPES and v is not None})
    workloads = _items(raw.get("workloads", ["mutex"]), "workloads")
    extra = flags.get("workload_opts") or {}
    takes = takes or (lambda workload, option: True)
    for k in extra:
        if not any(takes(w.name, k) for w in workloads):
            names = ", ".join(w.name for w in workloads)
            raise SpecError(f"no workload of the campaign ({names}) takes option {k}")
    workloads = [
        Item(
            w.name,
            tuple(
                sorted((w.options | {k: v for k, v in extra.items() if takes(w.name, k)}).items())
            ),
            w.label,
        )
        for w in workloads
    ]
    title = raw.get("title", "Lock comparison")
    if not isinstance(title, str):
        raise SpecError(f"title is a string (got {title!r})")
    return Campaign(
        backends=_items(raw["backends"], "backends"),
        workloads=workloads,
        nemeses=_items(raw.get("nemeses", ["none"]), "nemeses"),
        repeat=_repeat(raw.get("repeat", 1)),
        seed=_seed(raw.get("seed")),
        run=run,
        title=title,
        source=source,
    )
