"""What moved between two comparisons (README, "The published comparison"): every cell whose
harm class, rate, runs with two holders at once, damage or faults a run changed, old and new
side by side, as Markdown tables (first those whose harm class or rate moved); and the cells
only one of them has. Both are comparison.json files (an older one may predate the
``harm`` field: its class is decided again from its figures, by the one rule the page uses).

    .venv/bin/python docs/comparison/moved.py OLD.json NEW.json
    git show REV:docs/comparison/comparison.json > /tmp/old.json  # the published one
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from harness.campaign.stats import harm


def cells(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    doc = json.loads(path.read_text())
    return {(c["backend"], c["workload"], c["nemesis"]): c for c in doc["cells"]}


DAMAGE = {"lost_updates": "lost", "stale_writes_accepted": "stale", "double_executions": "twice"}


def state(c: dict[str, Any]) -> tuple[str, ...]:
    """A cell as the page sums it up: harm class, k/n (invalid of decided runs, with the unknown
    ones), runs with two holders at once, the damage summed over runs, faults a run."""
    cls = (c.get("harm") or harm(c, c.get("status", "runnable")))["class"]
    if c.get("status", "runnable") != "runnable":
        return (cls,)
    unknown = f", {c['unknown']} unknown" if c.get("unknown") else ""
    rate = f"{c.get('invalid', 0)}/{c.get('decided', c.get('runs', 0))}{unknown}"
    once = c.get("acted_at_once") or {}
    at_once = f"at once {once.get('runs', 0)}/{once.get('of', 0)}" if c.get("invalid") else ""
    damage = " ".join(
        f"{word} {total}"
        for name, word in DAMAGE.items()
        if (total := ((c.get("damage") or {}).get(name) or {}).get("total")) is not None
    )
    faults = (c.get("faults_injected_per_run") or {}).get("mean")
    per_run = f"{faults:g} faults a run" if faults is not None else ""
    return (cls, rate, at_once, damage, per_run)


def text(st: tuple[str, ...]) -> str:
    return " · ".join(x for x in st if x)


def hints(c: dict[str, Any]) -> str:
    """What helps say why a cell moved, beside its figures: the leases that lapsed (the lease
    model counts them, the strict model would call each a revoked hold)."""
    lapses = c.get("lapses")
    return f" (lapses {lapses})" if isinstance(lapses, int) and lapses else ""


def moved(old: Path, new: Path) -> list[str]:
    """Two tables: the cells whose harm class or rate moved, then those where only the runs
    with two at once, the damage or the faults a run did; then the cells only one side has."""
    a, b = cells(old), cells(new)
    head = ["| backend | workload | fault | before | now |", "|---|---|---|---|---|"]
    verdict: list[str] = []
    figures: list[str] = []
    same = 0
    for key in sorted(a.keys() & b.keys()):
        was, now = state(a[key]), state(b[key])
        if was == now:
            same += 1
            continue
        row = f"| {' | '.join(key)} | {text(was)} | {text(now)}{hints(b[key])} |"
        (verdict if was[:2] != now[:2] else figures).append(row)
    only = [f"- only before: {' / '.join(k)}" for k in sorted(a.keys() - b.keys())]
    only += [f"- new: {' / '.join(k)} ({text(state(b[k]))})" for k in sorted(b.keys() - a.keys())]
    out = [f"{same} cells unchanged, {len(verdict) + len(figures)} moved", ""]
    out += [f"Harm class or rate moved ({len(verdict)}):", "", *head, *verdict, ""]
    out += [f"Only the figures moved ({len(figures)}):", "", *head, *figures, ""]
    return out + only


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(Path(p).is_file() for p in argv):
        print("usage: moved.py OLD.json NEW.json (two comparison.json files)", file=sys.stderr)
        return 2
    print("\n".join(moved(Path(argv[0]), Path(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
