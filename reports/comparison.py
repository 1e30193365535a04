"""The comparison page of a campaign and its exports, from gathered cells (never re-checked):

- ``comparison.html``: one self-contained page. First a compact matrix (rows: backend with its
  options; columns: workload x nemesis set), each cell one glyph and colour by its harm class
  (``harness.campaign.stats.harm``) with k/n, its figures, interval and runs on hover and on
  click; then a few sentences a backend, generated from the cells (what breaks it, what saved
  the data, what to use instead); the header holds what is needed to reproduce it. A page
  whose workloads differ in how they protect the data (fencing, fenced or guarded writes, a
  check before writing) marks the lock and the data apart in each cell;
- ``comparison.json`` (every figure, per cell and per run, and each cell's harm),
  ``comparison.csv`` (one row a cell) and ``comparison.md`` (a Markdown table a workload, to
  paste into a post);
- JUnit XML with one test case a cell.
"""

from __future__ import annotations

import csv
import io
import json
import re
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


def version_text(s: dict[str, Any], here: dict[str, str] | None = None) -> str:
    """A version a server reported, as shown: "redis 7.0.15 (lockharness/redis:bookworm)".
    Runs from before their servers were asked (ZooKeeper and MariaDB before their probes)
    recorded none: then the version of the binary the campaign found (``here``: the header's
    ``server_versions``), said to be that, else "(version not reported)"."""
    v = s.get("version")
    if not v and not s.get("image") and (here or {}).get(s["kind"]):
        line = str(here[s["kind"]])
        found = re.search(r"\d+\.\d+(\.\d+)?", line)
        v = f"{found.group(0) if found else line} (binary here; its runs did not record it)"
    text = f"{s['kind']} {v or '(version not reported)'}"
    return f"{text} ({s['image']})" if s.get("image") else text


def versions_of(records: list[dict[str, Any]], here: dict[str, str] | None = None) -> list[str]:
    """Every version the servers of these cells' runs reported, once each."""
    out: list[str] = []
    for c in records:
        for s in c.get("server_versions") or []:
            if version_text(s, here) not in out:
                out.append(version_text(s, here))
    return out


def _runnable(rec: dict[str, Any]) -> bool:
    return rec.get("status") == "runnable"


# --- The matrix: one glyph and colour a cell, by harm class -------------------------------

#: class -> (glyph, short name, what it means, background, text colour). Glyphs differ in
#: shape too, so the matrix reads without colour.
HARM_STYLE: dict[str, tuple[str, str, str, str, str]] = {
    "safe": ("✓", "safe", "no run invalid", "#c3ecc9", "#1b5e20"),
    "promise": (
        "!", "promise broken", "the lock broke its promise (a run was invalid: e.g. a revocation "
        "or an early grant) but no two clients acted as holder at once, and the data came through",
        "#ffec99", "#6b4f00",
    ),
    "at-once": (
        "‼", "two at once", "two clients acted as holder at the same time, but no update was "
        "lost and no stale write accepted", "#ffb870", "#6e2c00",
    ),
    "damage": (
        "✖", "data harmed", "an update was lost, a stale write accepted or a job run twice",
        "#d62828", "#ffffff",
    ),
    "unknown": (
        "?", "unknown", "no run invalid, but not every run proved valid (unknown, no verdict, or "
        "its faults never fired)", "#dee2e6", "#343a40",
    ),
    "not-applicable": ("–", "not applicable", "the fault cannot act on this backend", "#f8f9fa",
                       "#868e96"),
    "not-available": ("⊘", "not available here", "its server (or image) was missing on the "
                      "machine that ran the campaign", "#f8f9fa", "#868e96"),
}  # fmt: skip

#: The two marks of a cell on a page that compares ways to protect the data.
LOCK_STYLE = {
    "kept": ("✓", "lock kept its promise", "safe"),
    "broken": ("!", "lock broke its promise, nobody acted at once", "promise"),
    "at-once": ("‼", "lock let two clients act at once", "damage"),  # the worst a lock does
    "unknown": ("?", "lock: unknown", "unknown"),
}
DATA_STYLE = {
    "kept": ("✓", "data kept: nothing lost, no stale write accepted", "safe"),
    "lost": ("✖", "data harmed", "damage"),
    "not-measured": ("·", "data not measured by this workload", "unknown"),
}
#: Workload options that protect the data from a holder who lost its lock, in words.
PROTECTIONS = (
    ("fencing", True, "fence tokens enforced at the resource"),
    ("write", "fenced", "fenced writes"),
    ("write", "guarded", "guarded writes"),
    ("check_before_write", True, "a check before each write"),
)
MAX_COLUMNS = 14  # more than this, and the matrix splits by workload to fit 1400 px


def harm_of(rec: dict[str, Any]) -> dict[str, Any]:
    """A record's harm as the campaign computed it (``harness.campaign.stats.harm``)."""
    return rec.get("harm") or {"class": "unknown", "lock": None, "data": None, "damage": {}}


def harm_style(rec: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """A record's harm as every view shows it: (glyph, name, meaning, background, text colour);
    a class this page does not know reads as unknown."""
    return HARM_STYLE.get(harm_of(rec)["class"], HARM_STYLE["unknown"])


def protection(workload_item: dict[str, Any]) -> str | None:
    """How a workload protects the data from a stale holder, in words (None: it does not)."""
    opts = workload_item.get("opts") or {}
    for name, value, words in PROTECTIONS:
        if opts.get(name) == value or (value is True and str(opts.get(name)).lower() == "true"):
            return words
    return None


def two_marks(records: list[dict[str, Any]]) -> bool:
    """Mark lock and data apart: the page compares ways to protect the data."""
    return any(protection(r["workload_item"]) for r in records)


def kn(rec: dict[str, Any]) -> str:
    """k/n: invalid runs of decided runs ("" for a cell that did not run)."""
    if rec.get("status") != "runnable":
        return ""
    return f"{rec.get('invalid', 0)}/{rec.get('decided', 0)}"


def harm_words(rec: dict[str, Any]) -> str:
    """The data's side of a cell in figures: "17 lost updates, 15 stale writes accepted"."""
    dmg = harm_of(rec).get("damage") or {}
    names = {
        "lost_updates": ("lost update", "lost updates"),
        "stale_writes_accepted": ("stale write accepted", "stale writes accepted"),
        "double_executions": ("job run twice", "jobs run twice"),
    }
    parts = [f"{n} {names[k][n != 1]}" for k, n in dmg.items() if n and k in names]
    return ", ".join(parts)


def _entry(rec: dict[str, Any], marks: bool) -> dict[str, Any]:
    h = harm_of(rec)
    glyph, name, meaning, bg, fg = harm_style(rec)
    e: dict[str, Any] = {
        "c": rec, "cls": h["class"], "glyph": glyph, "name": name, "meaning": meaning,
        "style": f"background:{bg};color:{fg}", "kn": kn(rec), "lines": [], "rate": "",
        "marks": [],
    }  # fmt: skip
    if rec.get("status") != "runnable":
        e["title"] = f"{name}: {rec.get('why') or ''}"
        return e
    e["rate"] = rate_text(rec)
    e["lines"] = cell_lines(rec)
    said = harm_words(rec)
    top = [f"{name}: {meaning}", f"invalid {e['rate']}"]
    if said:
        top.append(said)
    e["title"] = "\n".join(top + list(rec.get("flags") or []) + e["lines"])
    if marks and h.get("lock"):
        for style, key, side in ((LOCK_STYLE, h["lock"], "lock"), (DATA_STYLE, h["data"], "data")):
            g, words, cls = style[key]
            _, _, _, mbg, mfg = HARM_STYLE[cls]
            e["marks"].append(
                {"side": side, "glyph": g, "words": words, "style": f"background:{mbg};color:{mfg}"}
            )
    return e


def matrices(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The compact matrices: rows backends, columns (workload, nemesis); one matrix, or one a
    workload when the columns would not fit 1400 px."""
    marks = two_marks(records)
    workloads: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for c in records:
        w = next((x for x in workloads if x["key"] == c["workload_item"]["key"]), None)
        if w is None:
            w = {"key": c["workload_item"]["key"], "label": c["workload"], "cols": []}
            workloads.append(w)
        if c["nemesis_item"]["key"] not in [n["key"] for n in w["cols"]]:
            w["cols"].append(c["nemesis_item"])
        if c["backend_item"]["key"] not in [r["key"] for r in rows]:
            rows.append(c["backend_item"])
    cells = {
        (c["backend_item"]["key"], c["workload_item"]["key"], c["nemesis_item"]["key"]): c
        for c in records
    }
    total = sum(len(w["cols"]) for w in workloads)
    groups = [workloads] if total <= MAX_COLUMNS else [[w] for w in workloads]
    out = []
    for group in groups:
        cols = [(w, n) for w in group for n in w["cols"]]
        table_rows = []
        for b in rows:
            entries = []
            for i, (w, n) in enumerate(cols):
                rec = cells.get((b["key"], w["key"], n["key"]))
                e = _entry(rec, marks) if rec else None
                if e is not None:
                    e["right"] = i >= len(cols) / 2  # its card opens leftwards
                entries.append(e)
            if any(entries):
                table_rows.append({"b": b, "cells": entries})
        out.append({"workloads": group, "cols": cols, "rows": table_rows, "marks": marks})
    return out


def counts_line(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs and cells counted apart, for the header."""
    runs = {v: 0 for v in ("valid", "invalid", "unknown")}
    for c in records:
        for r in c.get("per_run") or []:
            runs[r["verdict"]] = runs.get(r["verdict"], 0) + 1
    ran = [c for c in records if c.get("status") == "runnable"]
    classes = {k: 0 for k in HARM_STYLE}
    for c in records:
        classes[harm_of(c)["class"]] += 1

    def who(status: str) -> tuple[int, list[str]]:
        these = [c for c in records if c.get("status") == status]
        return len(these), list(dict.fromkeys(c["backend"] for c in these))

    return {
        "runs": sum(runs.values()),
        "by_verdict": runs,
        "cells": len(ran),
        "classes": classes,
        "not_available": who("not available here"),
        "not_applicable": who("not applicable"),
        "not_in_shard": who("not in this shard"),
    }


# --- Findings in words, a backend at a time -----------------------------------------------

_RANK = {"safe": 0, "unknown": 0, "promise": 1, "at-once": 2, "damage": 3}


def _score(recs: list[dict[str, Any]]) -> tuple[int, int, int, float]:
    """Worse is larger: cells with data harmed, then two at once, then promises broken, then
    the share of invalid runs."""
    cls = [harm_of(r)["class"] for r in recs]
    runs = sum(r.get("decided") or 0 for r in recs)
    bad = sum(r.get("invalid") or 0 for r in recs)
    return (
        cls.count("damage"),
        cls.count("at-once"),
        cls.count("promise"),
        bad / runs if runs else 0,
    )


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _short_workloads(records: list[dict[str, Any]]) -> dict[str, str]:
    """A workload's name as the sentences say it: its bare name when that tells it apart
    ("mutex"), else its label ("lock-set, fenced writes")."""
    items = {r["workload_item"]["key"]: r for r in records}
    names = [r["workload_item"]["name"] for r in items.values()]
    return {
        k: r["workload_item"]["name"]
        if names.count(r["workload_item"]["name"]) == 1
        else r["workload"]
        for k, r in items.items()
    }


def _totals(recs: list[dict[str, Any]]) -> str:
    """The damage of these cells summed, in words: "23 updates lost, 42 stale writes accepted"."""
    words = (
        ("lost_updates", "update lost", "updates lost"),
        ("stale_writes_accepted", "stale write accepted", "stale writes accepted"),
        ("double_executions", "job run twice", "jobs run twice"),
    )
    sums = {k: sum((harm_of(r).get("damage") or {}).get(k) or 0 for r in recs) for k, _, _ in words}
    return ", ".join(
        f"{sums[k]} {many if sums[k] != 1 else one}" for k, one, many in words if sums[k]
    )


def _under(
    nemesis: str, these: list[dict[str, Any]], mine: list[dict[str, Any]], wname: dict[str, str]
) -> str:
    """A fault and the cells it broke: "pause (lock-set 1/5)", "client-pause (all 8 workloads,
    5/5 each)"."""
    kns = [f"{r['invalid']}/{r['decided']}" for r in these]
    if len(wname) == 1:
        return f"{nemesis} ({kns[0]})"
    ran = sum(r["nemesis"] == nemesis for r in mine)
    if len(these) > 2 and len(set(kns)) == 1 and len(these) == ran:
        return f"{nemesis} (all {ran} workloads, {kns[0]} each)"
    sep = "; " if any("," in w for w in wname.values()) else ", "
    names = [wname[r["workload_item"]["key"]] for r in these]
    return f"{nemesis} ({sep.join(f'{w} {k}' for w, k in zip(names, kns, strict=True))})"


def backend_findings(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Two or three sentences a backend, from its cells only: what breaks it (faults and
    workloads, k/n), what the data suffered or what saved it, and which backend did better in
    the same cells (the same servers first, then any)."""
    records = doc["cells"]
    kinds = {b["label"]: b.get("kind") for b in doc["header"].get("backends") or []}
    wname = _short_workloads(records)
    by: dict[str, list[dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    for r in records:
        by.setdefault(r["backend_item"]["key"], []).append(r)
        labels[r["backend_item"]["key"]] = r["backend"]
    ran = {
        k: [r for r in v if r.get("status") == "runnable" and r.get("decided")]
        for k, v in by.items()
    }
    out = []
    for key, recs in by.items():
        label, mine = labels[key], ran[key]
        if not mine:
            why = next((r.get("why") for r in recs if r.get("why")), "no run had a verdict")
            out.append(
                {"label": label, "cls": harm_of(recs[0])["class"] if recs else "unknown",
                 "sentences": [f"Not run: {why.split(';')[0].rstrip('.')}."]}
            )  # fmt: skip
            continue
        cls = {id(r): harm_of(r)["class"] for r in mine}
        broke = [r for r in mine if r.get("invalid")]
        harmed = [r for r in mine if cls[id(r)] == "damage"]  # a store's loss: none invalid
        worst = max(mine, key=lambda r: _RANK[cls[id(r)]])
        said = []
        if broke:
            nem: dict[str, list[dict[str, Any]]] = {}
            for r in broke:
                nem.setdefault(r["nemesis"], []).append(r)
            held = [n for n in dict.fromkeys(r["nemesis"] for r in mine) if n not in nem]
            s = "It broke under " + _join([_under(n, v, mine, wname) for n, v in nem.items()])
            said.append(s + (f"; it held under {_join(held)}." if held else "."))
        else:
            # cells whose runs proved less than valid, those with no decided run included
            unsure = sum(
                harm_of(r)["class"] == "unknown" for r in recs if r.get("status") == "runnable"
            )
            said.append(
                f"No run was invalid: {_plural(len(mine), 'cell')} with a verdict, "
                f"{sum(r['decided'] for r in mine)} runs"
                + (f"; {unsure} of its cells unknown." if unsure else ".")
            )
        at_once = sum(cls[id(r)] == "at-once" for r in mine)
        promise = sum(cls[id(r)] == "promise" for r in mine)
        parts = []
        if harmed:
            under = list(dict.fromkeys(r["nemesis"] for r in harmed))
            parts.append(
                f"the data suffered in {_plural(len(harmed), 'cell')} ({_join(under)}): "
                f"{_totals(harmed)} over their runs"
            )
        more = " more" if harmed else ""
        if at_once:
            parts.append(
                f"in {at_once}{more} cell{'s' * (at_once != 1)} two clients acted at once, "
                "the data unharmed"
            )
            more = " more" if harmed else " other"
        if promise:
            parts.append(
                f"in {promise}{more} cell{'s' * (promise != 1)} the promise broke with nobody "
                "acting at once"
            )
        if parts:
            text = "; ".join(parts)
            said.append(text[0].upper() + text[1:] + ".")
        if not broke and not harmed:
            out.append({"label": label, "cls": harm_of(worst)["class"], "sentences": said})
            continue
        guarded = [
            r for r in broke if harm_of(r)["data"] == "kept" and protection(r["workload_item"])
        ]
        if guarded:
            kns = {f"{r['invalid']}/{r['decided']}" for r in guarded}
            each = f", with the lock broken in {kns.pop()} runs each" if len(kns) == 1 else ""
            said.append(
                f"What saved the data{each}: "
                + _join(
                    [
                        f"{protection(r['workload_item'])} ({r['workload']}"
                        + ("" if each else f", {r['invalid']}/{r['decided']}")
                        + ")"
                        for r in guarded
                    ]
                )
                + ": nothing lost, no stale write accepted."
            )
        said.append(
            _better(key, mine, ran, kinds, labels)
            or "No backend here did better in the same cells."
        )
        out.append({"label": label, "cls": harm_of(worst)["class"], "sentences": said})
    return out


def _better(
    key: str,
    mine: list[dict[str, Any]],
    ran: dict[str, list[dict[str, Any]]],
    kinds: dict[str, Any],
    labels: dict[str, str],
) -> str | None:
    """Which backend did better in every cell this one ran, in words: the best of the same
    servers, and the best overall when that one did better still; None: none did."""
    cells = {(r["workload_item"]["key"], r["nemesis_item"]["key"]) for r in mine}
    own = _score(mine)
    better: list[tuple[tuple[int, int, int, float], str, list[dict[str, Any]]]] = []
    for other, recs in ran.items():
        theirs = [r for r in recs if (r["workload_item"]["key"], r["nemesis_item"]["key"]) in cells]
        if other == key or len(theirs) < len(cells):
            continue  # only a backend tested under the same faults and workloads
        if _score(theirs) < own:
            better.append((_score(theirs), labels[other], theirs))
    if not better:
        return None
    better.sort(key=lambda x: (x[0], x[1]))
    kind = kinds.get(labels[key])
    family = [b for b in better if kind and kinds.get(b[1]) == kind]

    def how(b: tuple[tuple[int, int, int, float], str, list[dict[str, Any]]]) -> str:
        if not any(r.get("invalid") for r in b[2]):
            return f"{b[1]} (no run invalid)"
        c = [harm_of(r)["class"] for r in b[2]]
        shown = [f"{c.count(k)} {HARM_STYLE[k][1]}" for k in ("damage", "at-once", "promise")]
        return f"{b[1]} ({', '.join(x for x in shown if not x.startswith('0 '))})"

    parts = []
    if family:
        parts.append(f"{how(family[0])} of the {kind} backends")
    if not family or better[0][0] < family[0][0]:
        parts.append(f"{how(better[0])}{' overall' if family else ''}")
    return f"Better in the same {len(cells)} cells: " + "; ".join(parts) + "."


def render(doc: dict[str, Any], out: Path) -> Path:
    """Write the page at ``out`` and its .json/.csv/.md beside it (comparison.html:
    comparison.json ...), from a comparison
    document ({"header", "exit_code", "cells": [records]}); returns the page's path."""
    out = Path(out)
    if out.is_dir():
        out = out / "comparison.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    records = doc["cells"]
    head = doc["header"]
    here = head.get("server_versions") or {}
    shown: dict[str, list[str]] = {}  # a backend's reported server versions, by its label
    for c in records:
        row = shown.setdefault(c["backend"], [])
        row += [v for v in versions_of([c], here) if v not in row]
    page = (
        env()
        .get_template("comparison.html")
        .render(
            head=head,
            reported=[version_text(s, here) for s in head.get("reported_versions") or []],
            matrices=matrices(records),
            findings=backend_findings(doc),
            counts=counts_line(records),
            harm_style=HARM_STYLE,
            lock_style=LOCK_STYLE,
            data_style=DATA_STYLE,
            marks=two_marks(records),
            shown=shown,
            notes=doc.get("notes", []),
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    )
    out.write_text(page, encoding="utf-8")
    # Named after the page, so two comparisons can share a directory (docs/comparison/).
    out.with_suffix(".json").write_text(
        json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8"
    )
    out.with_suffix(".csv").write_text(to_csv(records, here), encoding="utf-8")
    out.with_suffix(".md").write_text(to_markdown(doc), encoding="utf-8")
    return out


CSV_FIELDS = (
    "backend", "workload", "nemesis", "status", "why", "runs", "valid", "invalid", "unknown",
    "errors", "rate", "rate_low", "rate_high", "verdict", "flags", "time_to_first_violation_s",
    "violation_kinds", "acted_at_once_runs", "lost_updates_mean", "double_executions_mean",
    "stale_writes_accepted_mean", "faults_injected_mean", "inside_available_share",
    "outside_available_share", "inside_success_ratio",
    "outside_success_ratio", "inside_ok_per_s", "outside_ok_per_s", "inside_p50_ms",
    "inside_p99_ms", "outside_p50_ms", "outside_p99_ms", "server_versions", "images", "harm",
    "harm_lock", "harm_data",
)  # fmt: skip


def to_csv(records: list[dict[str, Any]], here: dict[str, str] | None = None) -> str:
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
            "server_versions": "; ".join(versions_of([r], here)),
            "harm": harm_of(r)["class"],
            "harm_lock": harm_of(r)["lock"],
            "harm_data": harm_of(r)["data"],
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
        "run twice; n/a: the fault cannot act on this backend. First in a cell, its harm: "
        + "; ".join(
            f"{HARM_STYLE[k][0]} {HARM_STYLE[k][1]}"
            for k in ("safe", "promise", "at-once", "damage", "unknown")
        )
        + ".",
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
                    text = f"{harm_style(c)[0]} " + rate_text(c) + damage_text(c)
                    if c.get("flags"):
                        text += " ⚠ " + "; ".join(c["flags"])
                    row.append(_md(text))
            here = head.get("server_versions") or {}
            shown = versions_of([x for x in cells if x["backend_item"] == b], here) or ["—"]
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


def _follow_up(c: dict[str, Any]) -> dict[str, str]:
    """What a CI reader needs to follow a cell up: its harm class, its runs' seeds, and the
    first invalid run (else the first run): its directory, report and the command that re-runs
    it alone."""
    runs = c.get("per_run") or []
    first = next((r for r in runs if r.get("verdict") == "invalid"), runs[0] if runs else None)
    out = {"harm": str(c.get("harm") or ""), "seeds": ",".join(str(r.get("seed")) for r in runs)}
    if first is not None:
        out["run"] = str(first.get("run_dir") or "")
        out["report"] = str(
            first.get("href") or Path(str(first.get("run_dir") or ".")) / "report.html"
        )
        out["rerun"] = str(first.get("command") or "")
    return {k: v for k, v in out.items() if v}


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
        follow = _follow_up(c)
        case.set("time", f"{sum(r.get('duration_s') or 0 for r in c.get('per_run', [])):.3f}")
        props = ET.SubElement(case, "properties")
        for name, value in follow.items():
            ET.SubElement(props, "property", name=f"lockharness.{name}", value=value)
        text = "\n".join([text, *(f"{k}: {v}" for k, v in follow.items())])
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
