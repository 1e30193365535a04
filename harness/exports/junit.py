"""JUnit XML for CI gates: one test suite a run, one test case a checker."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from checkers.history import nemesis_label
from reports.lock import lock_lines


def write_junit(path: Path, config: dict[str, Any], results: dict[str, Any]) -> Path:
    name = f"{config.get('backend', '?')}-{config.get('workload', '?')}-" + nemesis_label(
        config.get("nemesis")
    )
    # The run's own verdict is a test case too: every checker can pass while the run proves
    # nothing (no fault injected, cut short), and that must not read as a pass.
    checkers = {
        **results.get("checkers", {}),
        "verdict": {"valid": _verdict(results.get("valid")), "summary": _why(results)},
    }
    failures = sum(1 for r in checkers.values() if r.get("valid") is False)
    errors = sum(1 for r in checkers.values() if r.get("valid") == "unknown")
    suite = ET.Element(
        "testsuite",
        name=f"lockharness.{name}",
        tests=str(len(checkers)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(sum(1 for r in checkers.values() if r.get("valid") is None)),
        time=str(config.get("duration_s", 0)),
    )
    for cname, r in checkers.items():
        case = ET.SubElement(suite, "testcase", classname=f"lockharness.{name}", name=cname)
        summary = str(r.get("summary", ""))
        if r.get("valid") is False:
            ET.SubElement(case, "failure", message=summary, type="invalid").text = summary
        elif r.get("valid") == "unknown":
            ET.SubElement(case, "error", message=summary, type="unknown").text = summary
        elif r.get("valid") is None:
            ET.SubElement(case, "skipped", message=summary)
        ET.SubElement(case, "system-out").text = summary
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path


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
