"""A gathered comparison as one document: the header (everything needed to reproduce it), one
record a cell with its figures and its runs, and the exit code; then the page and exports
(``reports.comparison``) and JUnit XML are written from it."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import statistics
from pathlib import Path
from typing import Any

from backends.errors import LockHarnessError

from .execute import previous_invocations
from .gather import CellResult, Comparison
from .stats import harm
from .versions import seen


def header(cmp: Comparison, wall_s: float | None) -> dict[str, Any]:
    """Harness and server versions, each backend's servers and durability, kernel, campaign
    spec and seed, runs and wall time."""
    from .. import __version__
    from .versions import backend_servers, server_version

    ms = cmp.manifests
    versions: dict[str, str] = {}
    for m in ms:
        versions |= m.get("server_versions") or {}
    backends: dict[str, dict[str, Any]] = {}
    for c in cmp.cells:
        b = c.backend
        entry = backends.get(b["key"])
        if entry is None:
            entry = backends[b["key"]] = {
                "label": b["label"],
                **backend_servers(b["name"], {k: str(v) for k, v in b["opts"].items()}),
                "runtime": b.get("runtime", "local"),
                "images": dict(b.get("images") or {}),
                "non_durable": [],
            }
        for r in c.runs:
            for line in r.get("non_durable") or []:
                if line not in entry["non_durable"]:
                    entry["non_durable"].append(line)
            for s in r.get("server_versions") or []:
                if not s.get("image"):  # a local process: this machine's binary ran
                    versions.setdefault(s["kind"], "")
    for kind in list(versions):
        if not versions[kind]:  # stored runs gathered without a manifest: ask this machine
            versions[kind] = server_version(kind) + " (here, at gathering)"
    campaign = cmp.campaign or {}
    shard_walls = [m["wall_time_s"] for m in ms if m.get("wall_time_s") is not None]
    if wall_s is None and shard_walls:
        wall_s = max(shard_walls)  # shards run side by side: the longest is the wall time
    return {
        "title": campaign.get("title", "Lock comparison"),
        "harness_version": sorted({m.get("harness_version", "?") for m in ms}) or [__version__],
        "server_versions": dict(sorted(versions.items())),
        # What the servers themselves said, run by run (images too): the versions that ran.
        "reported_versions": seen([r for c in cmp.cells for r in c.runs]),
        "backends": list(backends.values()),
        "kernel": sorted({m.get("kernel", "?") for m in ms})
        or [f"{platform.system()} {platform.release()}"],
        "campaign": campaign,
        "spec_text": next((m.get("spec_text") for m in ms if m.get("spec_text")), None),
        "commands": [m["command"] for m in ms if m.get("command")],
        "seed": campaign.get("seed"),
        "shards": len(ms),
        "total_runs": sum(len(c.runs) for c in cmp.cells),
        "planned_runs": sum(c.planned for c in cmp.cells),
        "wall_time_s": round(wall_s, 1) if wall_s is not None else None,
        "shard_wall_times_s": shard_walls,
        "invocations": sum(len(previous_invocations(m)) for m in ms),
        # killed outright: recorded up to their last finished run (``invocation_progress``)
        "invocations_cut": sum(
            1 for m in ms for i in previous_invocations(m) if "ended_at" in i and not i["ended_at"]
        ),
        "run_time_s": round(sum(r.get("duration_s") or 0 for c in cmp.cells for r in c.runs), 1),
        "load": machine_load([r for c in cmp.cells for r in c.runs]),
    }


def machine_load(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The machine's 1-minute load average over the runs that recorded it (config.json's
    ``machine``, at each run's start and end): median and highest, and how many runs said; None
    when none did (runs from before it was recorded)."""
    told = [m for r in runs if isinstance(m := r.get("machine"), dict)]
    seen = [
        x[0]
        for m in told
        for k in ("load_start", "load_end")
        if isinstance(x := m.get(k), list) and x
    ]
    if not seen:
        return None
    return {
        "median": round(statistics.median(seen), 2),
        "max": round(max(seen), 2),
        "runs": len(told),
        "of": len(runs),
        "cores": sorted({c for m in told if isinstance(c := m.get("cores"), int)}),
    }


def cell_record(c: CellResult) -> dict[str, Any]:
    """A cell as comparison.json holds it (the fields every reader needs first)."""
    f = c.figures
    return {
        "backend": c.backend["label"],
        "workload": c.workload["label"],
        "nemesis": c.nemesis["label"],
        "runs": f.get("runs", 0),
        "invalid": f.get("invalid", 0),
        "unknown": f.get("unknown", 0),
        "rate_low": f.get("rate_low"),
        "rate_high": f.get("rate_high"),
        "not_applicable": c.why if c.status == "not applicable" else None,
        "not_available_here": c.why if c.status == "not available here" else None,
        "server_versions": seen(c.runs),
        "images": dict(c.backend.get("images") or {}),
        "key": c.key,
        "status": c.status,
        "why": c.why,
        "backend_item": c.backend,
        "workload_item": c.workload,
        "nemesis_item": c.nemesis,
        "planned": c.planned,
        "without_verdict": c.errors,
        **{k: v for k, v in f.items() if k not in ("runs", "invalid", "unknown")},
        # safe / promise / at-once / damage (or why none): the page's glyph and colour
        "harm": harm(f, c.status),
        "per_run": c.runs,
    }


def worst_exit(cmp: Comparison) -> int:
    """1 when a run was invalid; else 2 when a run was unknown or had no verdict, a cell's
    faults never fired or its server is missing here, or nothing ran; else 0."""
    cells = cmp.cells
    if any(c.figures.get("invalid") for c in cells):
        return 1
    if not any(c.runs for c in cells):
        return 2
    if any(c.status == "not available here" for c in cells):
        return 2
    if any(c.figures.get("verdict") != "valid" for c in cells if c.status == "runnable"):
        return 2
    return 0


def _ensure_report(run_dir: Path) -> None:
    """A run without report.html gets one, so no link is dead."""
    if (run_dir / "report.html").exists():
        return
    from reports.render import ReportError, render_run

    try:
        render_run(run_dir)
    except (ReportError, OSError):
        pass


MARK = ".lockharness-reports"  # a directory of shipped reports, which a re-publish may empty


def reports_dir(out: Path) -> Path:
    """Where the shipped reports of the page at ``out`` go: findings.html: findings-runs/."""
    return out.parent / f"{out.stem}-runs"


def _slug(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._=-]+", "-", key).strip("-")[:80]
    return f"{readable}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _shipped(runs: list[dict[str, Any]], publish: str) -> list[dict[str, Any]]:
    """The runs whose reports ship (runs come invalid first)."""
    return runs if publish == "all" else [r for r in runs if r["verdict"] == "invalid"][:1]


def check_publish(out: Path) -> None:
    """Refuse, before anything runs, a reports directory the harness did not make."""
    dest = reports_dir(out)
    if dest.exists() and not (dest / MARK).exists():
        raise PublishError(
            f"{dest} exists and holds no {MARK}: it is not a directory of reports shipped "
            "with the page; move it away or give another --out"
        )


def _fresh_reports_dir(out: Path) -> Path:
    """The reports directory of the page at ``out``, emptied of reports shipped earlier (their
    cells may be gone) and marked as the harness's."""
    check_publish(out)
    dest = reports_dir(out)
    for old in dest.rglob("*.html"):
        old.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MARK).write_text("reports shipped with the page beside this directory\n")
    return dest


class PublishError(LockHarnessError, ValueError):
    """The shipped reports' directory cannot be written (a bad --out)."""


def document(
    cmp: Comparison, out: Path, wall_s: float | None = None, publish: str | None = None
) -> dict[str, Any]:
    """The comparison document; run links are relative to the page at ``out``. With
    ``publish`` ("first-invalid" or "all", as ``--publish-reports``) the reports of those runs
    are copied beside the page, so it can be moved or committed without its store, and only
    they are linked: no link is dead."""
    dest = _fresh_reports_dir(out) if publish else None
    for c in cmp.cells:
        for r in c.runs:
            r["href"] = None
        chosen = _shipped(c.runs, publish) if dest else c.runs
        for i, r in enumerate(chosen):
            d = Path(r["run_dir"])
            _ensure_report(d)
            if not (d / "report.html").exists():
                continue
            target = d / "report.html"
            if dest:
                rep = r.get("repetition")
                target = (
                    dest / _slug(c.key) / f"r{rep if rep is not None else i}-{r['verdict']}.html"
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(d / "report.html", target)
            r["href"] = Path(os.path.relpath(target, out.parent)).as_posix()
    head = header(cmp, wall_s)
    head["reports"] = publish or "store"
    return {
        "header": head,
        "exit_code": worst_exit(cmp),
        "notes": cmp.notes,
        "cells": [cell_record(c) for c in cmp.cells],
    }


def write(
    cmp: Comparison,
    out: Path,
    wall_s: float | None = None,
    junit: Path | None = None,
    publish: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write the page (and its exports, and JUnit XML when asked); (page path, document)."""
    from reports.comparison import render, write_junit

    out = Path(out)
    if out.is_dir():
        out = out / "comparison.html"
    doc = document(cmp, out, wall_s, publish)
    page = render(doc, out)
    if junit is not None:
        write_junit(doc, junit)
    return page, doc
