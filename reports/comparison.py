"""The comparison page of a campaign and its exports, from gathered cells (never re-checked):

- ``comparison.html``: one self-contained page, a matrix per workload (rows: backend with its
  options; columns: nemesis set), each cell the violation rate with its 95% interval, coloured
  by the rate, with damage and availability below it and its runs linked (invalid ones first);
  the header holds what is needed to reproduce it;
- ``comparison.json`` (every figure, per cell and per run), ``comparison.csv`` (one row a
  cell) and ``comparison.md`` (a Markdown table a workload, to paste into a post);
- JUnit XML with one test case a cell.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from .render import env


def pct(x: float | None) -> str:
    if x is None:
        return "—"
    v = 100 * x
    return f"{v:.0f}%" if v == 0 or v == 100 or v >= 10 else f"{v:.1f}%"


def rate_text(f: dict[str, Any]) -> str:
    """k invalid of n decided runs with the interval, "2/5 (12%–77%)"; unknown runs apart."""
    if not f.get("decided"):
        return f"0 decided of {f.get('runs', 0)} runs"
    return f"{f['invalid']}/{f['decided']} ({pct(f['rate_low'])}–{pct(f['rate_high'])})"


def colour(f: dict[str, Any]) -> str:
    """Green at 0%, red at 100% (by the rate); grey when nothing was decided."""
    if not f or not f.get("decided"):
        return "#e9ecef"
    hue = round(120 * (1 - f["rate"]))
    light = 88 if f["rate"] == 0 else 82 - round(14 * f["rate"])  # dark text stays readable
    return f"hsl({hue}, 60%, {light}%)"


def _num(v: Any, unit: str = "", nd: int = 3) -> str:
    if v is None:
        return "—"
    return f"{v:.{nd}g}{unit}" if isinstance(v, float) else f"{v}{unit}"


def cell_lines(f: dict[str, Any]) -> list[str]:
    """The figures shown below a cell's rate (and in its tooltip), from its record."""
    lines = []
    if f.get("unknown") or f.get("errors"):
        lines.append(f"{f['unknown']} unknown, {f['errors']} without verdict")
    if f.get("time_to_first_violation_s") is not None:
        lines.append(f"first violation after {f['time_to_first_violation_s']:.3g} s (median)")
    if f.get("violation_kinds"):
        lines.append("kinds: " + ", ".join(f"{k} {n}" for k, n in f["violation_kinds"].items()))
    at_once = f.get("acted_at_once")
    if f.get("invalid") and at_once:
        lines.append(at_once_text(at_once))
    laps = f.get("lapses")
    if isinstance(laps, int) and not isinstance(laps, bool) and laps > 0:
        lines.append(
            f"{laps} lease{'s' * (laps != 1)} lapsed (the holder had stopped, its release was "
            "refused, the lease ran out before the next grant): not violations"
        )
    for name, label in (
        ("lost_updates", "lost updates"),
        ("double_executions", "double executions"),
        ("stale_writes_accepted", "stale writes accepted"),
    ):
        d = (f.get("damage") or {}).get(name) or {}
        if d.get("runs"):
            lines.append(f"{label}/run: {_num(d['mean'])} (max {_num(d['max'])})")
    fi = f.get("faults_injected_per_run")
    if fi:
        lines.append(f"faults injected/run: {_num(fi['mean'])} (min {_num(fi.get('min'))})")
    av = f.get("availability") or {}
    i, o = av.get("inside") or {}, av.get("outside") or {}
    if i.get("attempts"):
        if i.get("available_share") is not None:  # in time: held or grantable
            lines.append(
                f"available in/out faults: {pct(i['available_share'])} / "
                f"{pct(o.get('available_share'))} of the time"
            )
        lines.append(
            f"acquire ok in/out faults: {pct(i['success_ratio'])} / {pct(o.get('success_ratio'))}"
            f" of {i['attempts']:,} / {o.get('attempts') or 0:,} attempts"
        )
        lines.append(f"grants/s in/out: {_num(i['ok_per_s'])} / {_num(o.get('ok_per_s'))}")
        heal = av.get("heal_to_grant_s") or {}
        if heal.get("heals"):
            lines.append(
                f"heal to grant: median {_num(heal.get('median'))} s, max {_num(heal.get('max'))} s"
                + (
                    f"; no grant after {heal['no_grant']} of {heal['heals']}"
                    if heal["no_grant"]
                    else ""
                )
            )
        li, lo = i.get("latency_ms") or {}, o.get("latency_ms") or {}
        lines.append(
            f"p50/p99 ms in: {_num(li.get('p50'))}/{_num(li.get('p99'))}, "
            f"out: {_num(lo.get('p50'))}/{_num(lo.get('p99'))}"
        )
    elif o.get("attempts"):
        lo = o.get("latency_ms") or {}
        if o.get("available_share") is not None:
            lines.append(f"available {pct(o['available_share'])} of the time")
        lines.append(
            f"acquire ok {pct(o['success_ratio'])}, {_num(o['ok_per_s'])} grants/s, "
            f"p50/p99 {_num(lo.get('p50'))}/{_num(lo.get('p99'))} ms"
        )
    return lines


def at_once_text(a: dict[str, Any]) -> str:
    """In how many runs two clients acted as holder at once (0: the violations were of another
    kind, e.g. an early grant: a lock given away after its holder stopped, before its grant
    could have expired)."""
    if not a["runs"]:
        return f"two holders acting at once: in none of {a['of']} runs"
    return f"two holders acting at once: in {a['runs']} of {a['of']} runs ({a['total']} times)"


def version_text(s: dict[str, Any]) -> str:
    """A version a server reported, as shown: "redis 7.0.15 (lockharness/redis:bookworm)"."""
    text = f"{s['kind']} {s.get('version') or '(version not reported)'}"
    return f"{text} ({s['image']})" if s.get("image") else text


def versions_of(records: list[dict[str, Any]]) -> list[str]:
    """Every version the servers of these cells' runs reported, once each."""
    out: list[str] = []
    for c in records:
        for s in c.get("server_versions") or []:
            if version_text(s) not in out:
                out.append(version_text(s))
    return out


def _runnable(rec: dict[str, Any]) -> bool:
    return rec.get("status") == "runnable"


def render(doc: dict[str, Any], out: Path) -> Path:
    """Write the page at ``out`` and its .json/.csv/.md beside it (comparison.html:
    comparison.json ...), from a comparison
    document ({"header", "exit_code", "cells": [records]}); returns the page's path."""
    out = Path(out)
    if out.is_dir():
        out = out / "comparison.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    records = doc["cells"]
    workloads: list[dict[str, Any]] = []
    for c in records:
        wk = c["workload_item"]["key"]
        w = next((x for x in workloads if x["key"] == wk), None)
        if w is None:
            w = {"key": wk, "label": c["workload"], "rows": [], "cols": [], "cells": {}}
            w["versions"] = {}  # a row's reported server versions, shown under its label
            workloads.append(w)
        if c["backend_item"]["key"] not in [r["key"] for r in w["rows"]]:
            w["rows"].append(c["backend_item"])
        if c["nemesis_item"]["key"] not in [n["key"] for n in w["cols"]]:
            w["cols"].append(c["nemesis_item"])
        row = w["versions"].setdefault(c["backend_item"]["key"], [])
        row += [v for v in versions_of([c]) if v not in row]
        w["cells"][(c["backend_item"]["key"], c["nemesis_item"]["key"])] = {
            "c": c,
            "rate": rate_text(c) if _runnable(c) else "",
            "colour": colour(c) if _runnable(c) else "",
            "lines": cell_lines(c) if _runnable(c) else [],
        }
    counts = {v: 0 for v in ("valid", "invalid", "unknown")}
    for c in records:
        for r in c["per_run"]:
            counts[r["verdict"]] += 1
    page = (
        env()
        .get_template("comparison.html")
        .render(
            head=doc["header"],
            reported=[version_text(s) for s in doc["header"].get("reported_versions") or []],
            workloads=workloads,
            counts=counts,
            not_applicable=sum(c["status"] == "not applicable" for c in records),
            not_available=sum(c["status"] == "not available here" for c in records),
            notes=doc.get("notes", []),
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    )
    out.write_text(page, encoding="utf-8")
    # Named after the page, so two comparisons can share a directory (docs/comparison/).
    out.with_suffix(".json").write_text(
        json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8"
    )
    out.with_suffix(".csv").write_text(to_csv(records), encoding="utf-8")
    out.with_suffix(".md").write_text(to_markdown(doc), encoding="utf-8")
    return out


CSV_FIELDS = (
    "backend", "workload", "nemesis", "status", "why", "runs", "valid", "invalid", "unknown",
    "errors", "rate", "rate_low", "rate_high", "verdict", "flags", "time_to_first_violation_s",
    "violation_kinds", "acted_at_once_runs", "lost_updates_mean", "double_executions_mean",
    "stale_writes_accepted_mean", "faults_injected_mean", "inside_available_share",
    "outside_available_share", "inside_success_ratio",
    "outside_success_ratio", "inside_ok_per_s", "outside_ok_per_s", "inside_p50_ms",
    "inside_p99_ms", "outside_p50_ms", "outside_p99_ms", "server_versions", "images",
)  # fmt: skip


def to_csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in records:
        dmg = r.get("damage") or {}
        av = r.get("availability") or {}
        fi = r.get("faults_injected_per_run") or {}
        row = {
            "backend": r["backend"],
            "workload": r["workload"],
            "nemesis": r["nemesis"],
            "status": r["status"],
            "why": r["not_applicable"] or r["not_available_here"] or "",
            "runs": r["runs"],
            "valid": r.get("valid", 0),
            "invalid": r["invalid"],
            "unknown": r["unknown"],
            "errors": r.get("errors", 0),
            "rate": r.get("rate"),
            "rate_low": r["rate_low"],
            "rate_high": r["rate_high"],
            "verdict": r.get("verdict", r["status"]),
            "flags": "; ".join(r.get("flags") or []),
            "time_to_first_violation_s": r.get("time_to_first_violation_s"),
            "violation_kinds": "; ".join(
                f"{k}={n}" for k, n in (r.get("violation_kinds") or {}).items()
            ),
            "acted_at_once_runs": (r.get("acted_at_once") or {}).get("runs"),
            "lost_updates_mean": (dmg.get("lost_updates") or {}).get("mean"),
            "double_executions_mean": (dmg.get("double_executions") or {}).get("mean"),
            "stale_writes_accepted_mean": (dmg.get("stale_writes_accepted") or {}).get("mean"),
            "faults_injected_mean": fi.get("mean"),
            "server_versions": "; ".join(versions_of([r])),
            "images": "; ".join(f"{k}={v}" for k, v in (r.get("images") or {}).items()),
        }
        for side in ("inside", "outside"):
            a = av.get(side) or {}
            lat = a.get("latency_ms") or {}
            row[f"{side}_available_share"] = a.get("available_share")
            row[f"{side}_success_ratio"] = a.get("success_ratio")
            row[f"{side}_ok_per_s"] = a.get("ok_per_s")
            row[f"{side}_p50_ms"] = lat.get("p50")
            row[f"{side}_p99_ms"] = lat.get("p99")
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: dict[str, Any]) -> str:
    """One table a workload: invalid runs of decided runs, with the 95% interval."""
    head = doc["header"]
    lines = [
        f"## {_md(head['title'])}",
        "",
        "Invalid runs of runs with a verdict, with the 95% Wilson interval; then, in an invalid "
        "cell, at once = runs in which two clients acted as holder at the same time (0: they "
        "never did; the violations were of another kind, such as an early grant: a lock given "
        "away after its holder had stopped, before its grant could have expired (strict: before "
        "its release took effect), or fence tokens going backwards); "
        "then the damage summed over the runs: lost = acknowledged updates missing from the "
        "final read, "
        "stale = writes with an older fence token the resource accepted, twice = job slots "
        "run twice; n/a: the fault cannot act on this backend.",
        "",
    ]
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for c in doc["cells"]:
        by_workload.setdefault(c["workload_item"]["key"], []).append(c)
    short = {"not applicable": "n/a", "not available here": "not available"}
    for cells in by_workload.values():
        rows: list[dict] = []
        cols: list[dict] = []
        for c in cells:
            if c["backend_item"] not in rows:
                rows.append(c["backend_item"])
            if c["nemesis_item"] not in cols:
                cols.append(c["nemesis_item"])
        lines.append(f"### {_md(cells[0]['workload'])}")
        lines.append("")
        lines.append(
            "| backend | servers (reported) | " + " | ".join(_md(n["label"]) for n in cols) + " |"
        )
        lines.append("|---|---|" + "---|" * len(cols))
        for b in rows:
            row = []
            for n in cols:
                c = next(
                    (x for x in cells if x["backend_item"] == b and x["nemesis_item"] == n), None
                )
                if c is None:
                    row.append("")
                elif not _runnable(c):
                    row.append(short.get(c["status"], c["status"]))
                else:
                    text = rate_text(c) + damage_text(c)
                    if c.get("flags"):
                        text += " ⚠ " + "; ".join(c["flags"])
                    row.append(_md(text))
            shown = versions_of([x for x in cells if x["backend_item"] == b]) or ["—"]
            lines.append(
                f"| {_md(b['label'])} | {_md(', '.join(shown))} | " + " | ".join(row) + " |"
            )
        lines.append("")
    seeds = f"seed {head.get('seed')}" if head.get("seed") is not None else ""
    lines.append(
        f"{head['total_runs']} runs; harness {', '.join(head['harness_version'])}; "
        f"{', '.join(head['kernel'])}; {seeds}".rstrip("; ")
    )
    return "\n".join(lines) + "\n"


#: Damage a workload's checkers measure, as the Markdown table names it (totals over runs).
DAMAGE_SHORT = (
    ("lost_updates", "lost"),
    ("stale_writes_accepted", "stale"),
    ("double_executions", "twice"),
)


def damage_text(f: dict[str, Any]) -> str:
    """What the data suffered, summed over the cell's runs: " · at once 2/5 · lost 17 · stale 15"
    (only what its workload measures, zeros included, so "lost 0" and "not measured" stay
    apart; "at once" only where a run was invalid)."""
    parts = []
    at_once = f.get("acted_at_once")
    if f.get("invalid") and at_once:
        parts.append(f"at once {at_once['runs']}/{at_once['of']}")
    for name, short in DAMAGE_SHORT:
        d = (f.get("damage") or {}).get(name) or {}
        if d.get("runs"):
            parts.append(f"{short} {_num(d['total'])}")
    return "".join(f" · {p}" for p in parts)


def write_junit(doc: dict[str, Any], path: Path) -> Path:
    """One test case a cell: invalid -> failure; unknown, no verdict or missing server ->
    error; not applicable (or not in the shards gathered) -> skipped."""
    suite = ET.Element("testsuite", name="lockharness.comparison")
    failures = errors = skipped = 0
    for c in doc["cells"]:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"lockharness.comparison.{c['workload']}",
            name=f"{c['backend']} / {c['nemesis']}",
        )
        why = c.get("not_applicable") or c.get("not_available_here") or c.get("why") or ""
        if c["status"] in ("not applicable", "not in this shard"):
            skipped += 1
            ET.SubElement(case, "skipped", message=f"{c['status']}: {why}")
            ET.SubElement(case, "system-out").text = why
            continue
        if not _runnable(c):
            errors += 1
            ET.SubElement(case, "error", message=f"{c['status']}: {why}", type="unavailable")
            ET.SubElement(case, "system-out").text = why
            continue
        text = "; ".join([rate_text(c), *c.get("flags", []), *cell_lines(c)])
        if c.get("invalid"):
            failures += 1
            ET.SubElement(case, "failure", message=text, type="invalid").text = text
        elif c.get("verdict") != "valid":
            errors += 1
            ET.SubElement(case, "error", message=text, type="unknown").text = text
        ET.SubElement(case, "system-out").text = text
    suite.set("tests", str(len(doc["cells"])))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path
