"""JUnit XML for CI gates: one test suite a run, one test case a checker, and one for the run's
verdict. Every test case can be followed up: its properties and its system-out carry the seed,
the run directory, the report and the ``harness run`` command that runs it again, and its
``time`` is the run's duration (each case judged the whole run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from checkers.history import nemesis_label
from reports.lock import lock_lines
from reports.remedies import remedies, remedy_lines, rerun_command


def write_junit(
    path: Path,
    config: dict[str, Any],
    results: dict[str, Any],
    run_dir: Path | str | None = None,
    report: Path | str | None = None,
) -> Path:
    name = f"{config.get('backend', '?')}-{config.get('workload', '?')}-" + nemesis_label(
        config.get("nemesis")
    )
    follow = follow_up(config, run_dir, report)
    why = _why(results)
    found = remedies(results, config, run_dir)
    if found:
        why += "".join(f"\n{line}" for line in remedy_lines(found))
    # The run's own verdict is a test case too: every checker can pass while the run proves
    # nothing (no fault injected, cut short), and that must not read as a pass.
    checkers = {
        **results.get("checkers", {}),
        "verdict": {"valid": _verdict(results.get("valid")), "summary": why},
    }
    failures = sum(1 for r in checkers.values() if r.get("valid") is False)
    errors = sum(1 for r in checkers.values() if r.get("valid") == "unknown")
    time = _seconds(config.get("duration_s"))
    suite = ET.Element(
        "testsuite",
        name=f"lockharness.{name}",
        tests=str(len(checkers)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(sum(1 for r in checkers.values() if r.get("valid") is None)),
        time=time,
    )
    _properties(suite, follow)
    for cname, r in checkers.items():
        case = ET.SubElement(
            suite, "testcase", classname=f"lockharness.{name}", name=cname, time=time
        )
        _properties(case, follow)
        summary = str(r.get("summary", ""))
        if cname == "fencing":
            summary += fencing_note(config, r)
        if r.get("valid") is False:
            ET.SubElement(case, "failure", message=summary, type="invalid").text = summary
        elif r.get("valid") == "unknown":
            ET.SubElement(case, "error", message=summary, type="unknown").text = summary
        elif r.get("valid") is None:
            ET.SubElement(case, "skipped", message=summary)
        ET.SubElement(case, "system-out").text = "\n".join(
            [summary, *(f"{k}: {v}" for k, v in follow.items())]
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path


def follow_up(
    config: dict[str, Any], run_dir: Path | str | None, report: Path | str | None
) -> dict[str, str]:
    """What a CI reader needs to follow a test case up: the seed, where the run is, its
    report, and the command that runs it again (as properties and in system-out)."""
    seed = config.get("seed")
    out = {
        "seed": str(seed) if seed is not None else "none (the run drew its own: a rerun differs)"
    }
    if run_dir is not None:
        out["run"] = str(run_dir)
    if report is not None:
        out["report"] = str(report)
    out["rerun"] = rerun_command(config, run_dir)
    return out


def fencing_note(config: dict[str, Any], r: dict[str, Any]) -> str:
    """Why stale writes accepted do not fail the fencing case, said plainly: the fencing
    checker fails only what the resource was told to refuse (it checks fences) or tokens that
    did not increase; the lock's own failure is the mutex and verdict cases'."""
    accepted = r.get("stale_accepted")
    if not isinstance(accepted, int) or accepted <= 0 or r.get("valid") is False:
        return ""
    wopts = config.get("workload_opts") if isinstance(config.get("workload_opts"), dict) else {}
    if r.get("valid") is None:
        how = "this lock gives no fence tokens, so no resource can check them"
    elif "write" in wopts:
        how = f"write={wopts['write']}: the resource does not check fences"
    elif "fencing" in wopts:
        how = "fencing=false: the resource does not check fences"
    else:
        how = "the resource does not check fences"
    return (
        f"\n{how}; {accepted} stale write{'s' * (accepted != 1)} accepted are counted, not "
        "failed here (the mutex and verdict cases judge the lock)"
    )


def _properties(parent: ET.Element, values: dict[str, str]) -> None:
    props = ET.SubElement(parent, "properties")
    for k, v in values.items():
        ET.SubElement(props, "property", name=f"lockharness.{k}", value=v)


def _seconds(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) and not isinstance(v, bool) else "0"


def _verdict(valid: Any) -> Any:
    """The run's verdict as a test outcome: anything but VALID or INVALID is an error."""
    return valid if valid is True or valid is False else "unknown"


def _why(results: dict[str, Any]) -> str:
    reasons = results.get("unknown_because") or []
    summary = str(results.get("summary", ""))
    text = summary + "".join(f"\nunknown because: {r}" for r in reasons if r not in summary)
    text += "".join(f"\n{line}" for line in blame_lines(results))
    text += "".join(f"\n{label}: {words}" for label, words in lock_lines(results))
    if results.get("faults"):
        from checkers.faults import text as faults_text

        text += f"\nfaults: {faults_text(results['faults'])}"
    return text


def blame_lines(results: dict[str, Any]) -> list[str]:
    """Whose fault the data damage is (``checkers.blame``): a CI reader must not take a store's
    lost writes, or a slot its scheduler ran again, for the lock's failure."""
    ch = results.get("checkers")
    ch = ch if isinstance(ch, dict) else {}
    out = []
    for name, what, by_lock, by_other, other in (
        ("set", "lost updates", "lost_by_lock", "lost_by_store", "the store's"),
        (
            "jobs",
            "slots run more than once",
            "double_by_lock",
            "double_by_scheduler",
            "the scheduler's",
        ),
    ):
        r = ch.get(name)
        if not isinstance(r, dict) or r.get("blame") is None:
            continue
        n_lock, n_other = r.get(by_lock), r.get(by_other)
        out.append(
            f"blame: {what}: {n_lock} the lock's (two clients acting as holder at once), "
            f"{n_other} {other}"
        )
    return out
