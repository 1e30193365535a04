"""Stored campaigns (one store each, e.g. one per shard) and run directories -> the cells of one
comparison with their runs and figures.

Shard stores must hold the same campaign (its fingerprint: cells, repetitions, settings, seed);
their runs are joined by identity (cell, repetition, seed). A planned run with no finished
attempt in any store is "missing" (a shard not gathered, or a run interrupted or crashed).
A bare run directory joins the cell its config.json names.

No stored verdict is taken on trust: each run's history is judged again (as ``harness check``
would, nothing written), and a run whose ``results.json`` says otherwise is refused with one
line, as an error of its cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..run import store
from .execute import MANIFEST, attempts, finished_run
from .spec import Item, SpecError
from .stats import acted_at_once, cell_figures, damage, run_figures, verdict, violation_kinds


@dataclass
class CellResult:
    key: str
    backend: dict[str, Any]
    workload: dict[str, Any]
    nemesis: dict[str, Any]
    status: str = "runnable"  # "not applicable", "not available here", "not in this shard"
    why: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)  # run figures + identity
    planned: int = 0
    errors: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def faulted(self) -> bool:
        return self.nemesis.get("name", "none") not in ("", "none")


@dataclass
class Comparison:
    cells: list[CellResult]
    manifests: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # runs whose results.json was not trusted

    @property
    def campaign(self) -> dict[str, Any] | None:
        return self.manifests[0]["campaign"] if self.manifests else None


def _item_from(d: dict[str, Any]) -> dict[str, Any]:
    item = {"name": d["name"], "opts": d.get("opts", {}), "label": d["label"], "key": d["key"]}
    return item | {k: d[k] for k in ("runtime", "images", "docker_host") if k in d}


def _cell_from_config(config: dict[str, Any]) -> CellResult:
    runtime = str(config.get("runtime") or "local")
    images: dict[str, str] = {}
    if runtime != "local":  # the images the run was given, else those its servers ran
        images = dict(config.get("images") or {}) or {
            s["kind"]: s["image"]
            for s in config.get("servers") or []
            if isinstance(s, dict) and s.get("image") and s.get("role") != "proxy"
        }
    b = Item(
        str(config.get("backend", "?")),
        tuple(sorted((config.get("backend_opts") or {}).items())),
        runtime=runtime,
        images=tuple(sorted((str(k), str(v)) for k, v in images.items())),
        docker_host=config.get("docker_host"),
    )
    w = Item(
        str(config.get("workload", "mutex")),
        tuple(sorted((config.get("workload_opts") or {}).items())),
    )
    nem = "+".join(config.get("nemesis") or []) or "none"
    n = Item(nem, tuple(sorted((config.get("nemesis_opts") or {}).items())))
    key = f"{b.key} / {w.key} / {n.key}"
    return CellResult(key, b.as_dict(), w.as_dict(), n.as_dict())


def _load_manifest(d: Path) -> dict[str, Any]:
    try:
        m = store.read_json(d / MANIFEST)
    except (OSError, ValueError) as e:
        raise SpecError(f"{d / MANIFEST}: cannot be read ({e})") from None
    if not isinstance(m, dict) or "campaign" not in m or "cells" not in m:
        raise SpecError(f"{d / MANIFEST}: not a campaign manifest")
    return m


def gather(dirs: list[Path], samples: bool = True) -> Comparison:
    """One comparison from campaign stores and/or run directories (any mix, any order)."""
    cells: dict[str, CellResult] = {}
    manifests: list[dict[str, Any]] = []
    seen_runs: set[tuple[str, int, int]] = set()
    planned: dict[tuple[str, int, int], dict[str, Any]] = {}
    notes: list[str] = []
    refused: list[str] = []
    for d in map(Path, dirs):
        if (d / MANIFEST).exists():
            m = _load_manifest(d)
            if manifests and m["campaign"].get("fingerprint") != manifests[0]["campaign"].get(
                "fingerprint"
            ):
                raise SpecError(
                    f"{d} holds another campaign than {manifests[0]['_dir']} (different cells, "
                    "repetitions, settings or seed): gather the shards of one campaign"
                )
            m["_dir"] = str(d)
            manifests.append(m)
            for c in m["cells"]:
                cr = cells.get(c["key"])
                if cr is None:
                    cr = cells[c["key"]] = CellResult(
                        c["key"],
                        _item_from(c["backend"]),
                        _item_from(c["workload"]),
                        _item_from(c["nemesis"]),
                        c.get("status", "runnable"),
                        c.get("why", ""),
                    )
            for r in m["runs"]:
                ident = (r["cell"], r["repetition"], r["seed"])
                planned.setdefault(ident, r)
                if ident in seen_runs:
                    continue
                rs = d / "runs" / r["id"]
                done = finished_run(rs)
                if done is None:
                    continue
                seen_runs.add(ident)
                why = untrusted(done)
                if why:
                    cells[r["cell"]].errors.append(why)
                    refused.append(why)
                    continue
                fig = run_figures(done, samples=samples)
                cells[r["cell"]].runs.append(
                    fig | {"repetition": r["repetition"], "command": r.get("command", "")}
                )
        elif (d / store.CONFIG).exists():
            try:
                config = store.read_object(d / store.CONFIG)
            except (OSError, ValueError) as e:
                where = str(d / store.CONFIG)
                raise SpecError(str(e) if where in str(e) else f"{where}: {e}") from None
            cr = _cell_from_config(config)
            cr = cells.setdefault(cr.key, cr)
            why = untrusted(d) if (d / store.RESULTS).exists() else None
            if why:
                cr.errors.append(why)
                refused.append(why)
            elif (d / store.RESULTS).exists():
                cr.runs.append(
                    run_figures(d, samples=samples) | {"repetition": None, "command": ""}
                )
            else:
                cr.errors.append(f"{d}: no {store.RESULTS} (the run did not finish)")
        else:
            raise SpecError(
                f"{d}: not a run directory (no {store.CONFIG}) nor a campaign store (no {MANIFEST})"
            )
    for ident, r in planned.items():
        cr = cells[r["cell"]]
        cr.planned += 1
        if ident in seen_runs:
            continue
        tried = [a for m in manifests for a in attempts(Path(m["_dir"]) / "runs" / r["id"])]
        cr.errors.append(f"r{r['repetition']} (seed {r['seed']}): " + _why_not(tried))
    for cr in cells.values():
        if cr.status == "runnable" and manifests and not cr.planned and not cr.runs:
            cr.status = "not in this shard"
            cr.why = "its runs are planned in other shards: gather them all for this cell"
        cr.runs.sort(key=lambda x: (x["verdict"] != "invalid", x.get("repetition") or 0))
        cr.planned = max(cr.planned, len(cr.runs))
        if cr.status == "runnable":
            cr.figures = cell_figures(cr.runs, cr.faulted, len(cr.errors))
        for r in cr.runs:  # pooled into the cell's figures: not kept per run
            for side in ("inside", "outside"):
                (r.get("availability") or {}).get(side, {}).pop("samples", None)
    return Comparison(list(cells.values()), manifests, notes, refused)


def _figures(results: dict[str, Any]) -> dict[str, Any]:
    """What a comparison takes from a run's results."""
    return {
        "verdict": verdict(results.get("valid")) if results else "unknown",
        "violation_kinds": dict(violation_kinds(results)),
        "damage": damage(results),
        "acted_at_once": acted_at_once(results),
    }


def untrusted(run_dir: Path) -> str | None:
    """Why a stored run's ``results.json`` cannot be trusted (one line), or None: its history,
    judged again under the model it names, gives other figures (a results.json edited, or
    written by an older checker: ``harness check`` judges the run again and rewrites it)."""
    from ..run.analyse import judge

    try:
        stored = store.read_json(run_dir / store.RESULTS)
    except (OSError, ValueError):
        stored = {}
    stored = stored if isinstance(stored, dict) else {}
    model = stored.get("model")  # judged again as it says it was judged (harness check --model)
    try:
        fresh = _figures(judge(run_dir, model=model if model in ("lease", "strict") else None)[0])
    except (OSError, ValueError) as e:  # an unreadable config.json, an unknown workload
        return f"{run_dir}: cannot be judged again ({e}): refused"
    said = _figures(stored)
    if said == fresh:
        return None
    differs = [k for k in fresh if said[k] != fresh[k]]
    if differs == ["verdict"] and (said["verdict"], fresh["verdict"]) == ("unknown", "valid"):
        return None  # what the run knew and its files do not keep (a failed final phase)
    what = (
        f"says {said['verdict'].upper()}, its history {fresh['verdict'].upper()}"
        if "verdict" in differs
        else f"and its history disagree on {' and '.join(d.replace('_', ' ') for d in differs)}"
    )
    return f"{run_dir}: {store.RESULTS} {what}: refused (`harness check {run_dir}` judges it again)"


def _why_not(tried: list[Path]) -> str:
    """Why a planned run has no verdict, from its last attempt."""
    if not tried:
        return "not run"
    try:
        config = store.read_json(tried[-1] / store.CONFIG)
    except (OSError, ValueError):
        config = {}
    if isinstance(config, dict) and config.get("failed"):
        return f"failed: {config['failed']}"
    return "interrupted or crashed; run the campaign again to resume it"
