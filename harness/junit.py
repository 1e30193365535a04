"""JUnit XML for CI gates: one test suite a run, one test case a checker."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


def write_junit(path: Path, config: dict[str, Any], results: dict[str, Any]) -> Path:
    name = f"{config.get('backend', '?')}-{config.get('workload', '?')}-" + (
        "+".join(config.get("nemesis") or []) or "none"
    )
    checkers = results.get("checkers", {})
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
