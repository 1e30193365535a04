"""hunt.html: what a ``harness hunt`` tried over time, its near misses, the shrinking steps and
the minimal counterexample, from the hunt's document (``hunt.json``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .render import env

W, H, PAD = 760, 220, 36


def _chart(tried: list[dict[str, Any]]) -> dict[str, Any]:
    """Points of the near-miss chart: grant margin (ms) against time into the hunt; an
    INVALID candidate in red at the bottom (margin 0 or less)."""
    pts = [
        (t["t"], t["near"].get("grant_margin_ms"), t["phase"], "invalid" in t["verdicts"], t["n"])
        for t in tried
    ]
    margins = [m for _, m, *_ in pts if m is not None]
    hi = max([1.0, *margins])
    lo = min([0.0, *margins])
    tmax = max([1.0, *(t for t, *_ in pts)])

    def x(t: float) -> float:
        return PAD + (W - 2 * PAD) * t / tmax

    def y(m: float) -> float:
        return H - PAD - (H - 2 * PAD) * (m - lo) / ((hi - lo) or 1)

    dots = [
        {
            "x": round(x(t), 1),
            "y": round(y(m if m is not None else hi), 1),
            "bad": bad,
            "none": m is None,
            "title": f"candidate {n} ({phase}) at {t:g} s: "
            + (f"grant margin {m:g} ms" if m is not None else "no lapse measured")
            + (", INVALID" if bad else ""),
        }
        for t, m, phase, bad, n in pts
    ]
    return {"w": W, "h": H, "dots": dots, "zero": round(y(0.0), 1), "hi": hi, "lo": lo,
            "tmax": tmax, "pad": PAD}  # fmt: skip


def write_page(path: Path, doc: dict[str, Any]) -> Path:
    """Render hunt.html at ``path``; links are relative to it."""
    base = path.parent

    def rel(p: str | None) -> str | None:
        return None if not p else Path(os.path.relpath(p, base)).as_posix()

    tried = doc.get("tried") or []
    # a smaller schedule is kept only when every one of its runs failed (harness/hunt/search.py)
    shrink = [
        t | {"kept": bool(t["verdicts"]) and all(v == "invalid" for v in t["verdicts"])}
        for t in tried
        if t["phase"] != "search"
    ]
    page = (
        env()
        .get_template("hunt.html")
        .render(
            doc=doc,
            chart=_chart(tried),
            shrink=shrink,
            tried=tried,
            report=rel(doc.get("report")),
            replay_page=rel(str(base / "replay" / "replays.html"))
            if (base / "replay" / "replays.html").exists()
            else None,
        )
    )
    path.write_text(page)
    return path
