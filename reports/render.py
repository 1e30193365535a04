"""Render a run directory (config.json, history.jsonl, results.json) into report.html, and
several runs into one comparison page. Pages are self-contained: they open from disk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape

from backends.errors import LockHarnessError
from checkers import history
from checkers.columns import nemesis_ops
from checkers.history import CONFIG, HISTORY, NEMESIS, REPORT, RESULTS, Op

from . import lock as lock_words
from . import overview, series, story, svg, view
from .faults import periods as fault_periods
from .remedies import remedies

TEMPLATES = Path(__file__).parent / "templates"


class ReportError(LockHarnessError, ValueError):
    """A run directory that cannot be rendered; the message is one line for the user."""


_env: Environment | None = None


def env() -> Environment:
    global _env
    if _env is None:
        _env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,  # every value from a run is untrusted text
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _env.filters["ticks"] = ticks
    return _env


def ticks(text: str) -> Markup:
    """Escape ``text`` and show its `quoted` parts as code (lock names in the stories)."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: plain text
        return Markup(escape(text))
    return Markup("").join(
        Markup("<code>{}</code>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts)
    )


def _read_json(path: Path, notes: list[str]) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or unreadable file becomes a note and ``{}``."""
    if not path.exists():
        notes.append(f"{path.name} is missing")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        notes.append(f"{path.name} could not be read: {e}")
        return {}
    if not isinstance(data, dict):
        notes.append(f"{path.name} is not a JSON object")
        return {}
    return data


def _check_dir(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(
            f"{run_dir} is not a run directory (expected a directory holding {CONFIG}, "
            f"{HISTORY} and {RESULTS})"
        )
    if not any((run_dir / n).exists() for n in (CONFIG, HISTORY, RESULTS)):
        raise ReportError(
            f"{run_dir} holds none of {CONFIG}, {HISTORY}, {RESULTS}: not a run directory"
        )
    return run_dir


def render_run(run_dir: Path, ops: list[Op] | None = None) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    ``ops`` may pass the history already read (reading 10^6 ops costs seconds).
    """
    run_dir = _check_dir(run_dir)
    notes: list[str] = []
    config = _read_json(run_dir / CONFIG, notes)
    results = _read_json(run_dir / RESULTS, notes)
    hist = run_dir / HISTORY
    problems: list[str] = []
    if ops is None and hist.exists():
        read = history.read(hist)
        ops = read.ops
        problems = read.problems
    elif ops is None:
        ops = []
        notes.append(f"{HISTORY} is missing")
    return write_report(run_dir, config, results, ops, notes=notes, problems=problems)


def write_report(
    run_dir: Path,
    config: dict[str, Any],
    results: dict[str, Any],
    ops: list[Op],
    *,
    notes: Sequence[str] = (),
    problems: Sequence[str] = (),
) -> Path:
    """Write ``run_dir/report.html`` from what the run holds in memory; ``problems`` are the
    history's unreadable lines."""
    notes = list(notes)
    for p in problems[:10]:
        notes.append(f"{HISTORY} {p}")
    if len(problems) > 10:
        notes.append(f"{HISTORY}: {len(problems) - 10} more unreadable lines")
    out = Path(run_dir) / REPORT
    page = render_html(config, results, ops, notes=notes, run_dir=Path(run_dir))
    out.write_text(page, encoding="utf-8")
    return out


MAX_STORIES = 3  # violations told in full; the rest in a table, each with its zoom folded


def render_html(
    config: dict[str, Any],
    results: dict[str, Any],
    ops: list[Op],
    *,
    notes: Sequence[str] = (),
    run_dir: Path | None = None,
) -> str:
    """The report page as a string. ``notes`` are problems met reading the run (shown);
    ``run_dir`` (when known) lets a remedy's command name the run's schedule.json."""
    config = config if isinstance(config, dict) else {}
    results = results if isinstance(results, dict) else {}
    verdict = view.verdict(results)
    summary = results.get("summary")
    if not results:
        summary = "No results: the run did not finish checking (no results.json)."
    nemesis = view.nemesis_label(config)
    if nemesis == "none" and "nemesis" not in config:  # a bare history: its nemesis ops say
        kinds = {o.f for o in ops if o.process == NEMESIS}
        # Jepsen's nemeses record bare start/stop: name the faults only where the ops do
        nemesis = "+".join(sorted(kinds - {"start", "stop"})) or ("faults" if kinds else "none")

    dur = config.get("duration_s")
    t_run = int(dur * 1e9) if isinstance(dur, int | float) and not isinstance(dur, bool) else 0
    over = series.compute(ops, t_run)
    t_end = over.t_end
    periods = fault_periods(nemesis_ops(ops))  # periods read the nemesis's ops only
    # only faults that went into force are shaded; failed injections are listed in the table
    faults = [svg.Fault(p.name, p.start, p.end, p.text()) for p in periods if p.injected]

    violations = view.mutex_violations(results)
    holds, holds_truncated, hold_total = view.mutex_holds(results)
    holds_derived = False
    if holds is None and ops:
        holds, holds_derived = view.holds_from_ops(ops), True
    timeline = None
    if holds:
        hold_end = max(
            (
                int(h[f])
                for h in holds
                if isinstance(h, dict)
                for f in ("start", "end")
                if isinstance(h.get(f), int | float)
            ),
            default=0,
        )
        t_end = max(t_end, hold_end)
        # holds cut short by the checker: zoom on the span they cover rather than leave it empty
        t_view = hold_end if holds_truncated and hold_end > 0 else t_end
        lanes = view.lanes_from(holds, violations)
        chart, merged, capped = svg.timeline(lanes.lanes, faults, t_view, lanes.keys)
        timeline = {
            "svg": chart,
            "merged": merged,
            "capped": capped,
            "lanes": len(lanes.lanes),
            "hidden": lanes.hidden_processes,
            "holds": lanes.hold_count,
            "shown": sum(len(bars) for _, bars in lanes.lanes),
            "view_s": t_view / 1e9,
            "run_s": t_end / 1e9,
            "bad": lanes.bad_count,
            "legend": [(k, svg.key_colour(k, svg.key_colours(lanes.keys))) for k in lanes.keys[:8]],
            "more_keys": max(len(lanes.keys) - 8, 0),
            "truncated": holds_truncated,
            "total": hold_total,
            "derived": holds_derived,
            "retired": view.retired_line(
                [label.removeprefix("client ") for label, _ in lanes.lanes],
                config.get("concurrency"),
            ),
        }

    latency = None
    found = view.perf_series(results, ops, over.first_client)
    if found and found[0]:
        chart, facts = svg.scatter(found[0], faults, t_end / 1e9, found[1])
        latency = {"svg": chart, **facts}

    over_time = None
    if over.acquires:
        t_s = t_end / 1e9
        over_time = {
            "width": over.width_s,
            "rate": svg.lines(
                [
                    ("ok acquires/s", svg.TYPE_COLOURS["ok"], over.rate["ok"]),
                    ("failed/s", svg.TYPE_COLOURS["fail"], over.rate["fail"]),
                    ("unknown/s", svg.TYPE_COLOURS["info"], over.rate["info"]),
                ],
                over.width_s,
                faults,
                t_s,
                "acquires per second",
                css="throughput",
            ),
            "quantiles": svg.lines(
                [("p50", "#3b7dd8", over.p50), ("p99", "#c92a2a", over.p99)],
                over.width_s,
                faults,
                t_s,
                "ok acquire latency (ms)",
                css="quantiles",
                log_ok=True,
            ),
            **series.availability_view(results, ops),
        }

    lock = lock_words.facts(config, results)
    told = story.stories(violations, ops, periods, config, lock) if verdict != "valid" else []
    for st in told:
        st.svg = svg.zoom(st)  # type: ignore[attr-defined]
    workload = view.workload_views(results, faults, t_end)

    page = (
        env()
        .get_template("report.html")
        .render(
            title=f"{config.get('backend', '?')} / {config.get('workload') or '?'} / {nemesis}",
            subtitle=view.subtitle(config, over, lock.ttl_ms if lock.has_ttl else None),
            model_line=lock_words.model_line(lock),
            lapses=lock_words.lapse_view(results, ops, lock),
            lease_lines=any(st.lines for st in told),
            verdict=verdict,
            meaning=overview.meaning(verdict, results, nemesis),
            summary=summary,
            cards=overview.cards(results),
            faults_line=view.faults_line(results),
            non_durable=view.non_durable(config),
            result_rows=view.result_rows(results),
            config_rows=view.config_rows(config),
            checkers=view.checker_sections(results),
            timeline=timeline,
            latency=latency,
            over_time=over_time,
            stories=told[:MAX_STORIES],
            remedies=remedies(results, config, run_dir) if verdict == "invalid" else [],
            stories_retired=view.retired_line(
                [p for st in told for p in st.who.replace("client ", "").split(" / ")],
                config.get("concurrency"),
            ),
            more_stories=told[MAX_STORIES:],
            violation_total=view.violation_total(results, violations),
            workload=workload,
            faults=[
                {
                    "name": p.name,
                    "start": f"{p.start / 1e9:.2f}",
                    "end": f"{p.end / 1e9:.2f}" if p.end is not None else "never healed",
                    "what": p.text(),
                    "failed": not p.injected,
                }
                for p in periods[: view.MAX_GENERIC_ROWS * 5]
            ],
            more_faults=max(len(periods) - view.MAX_GENERIC_ROWS * 5, 0),
            counterexamples=view.counterexamples(violations, ops, lock.expiry)
            if verdict != "valid"
            else [],
            max_bars=svg.MAX_BARS,
            op_total=len(ops),
            op_counts=series.op_counts(over),
            notes=list(notes),
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    )
    return page
