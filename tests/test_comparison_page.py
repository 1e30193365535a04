"""The comparison page people read: its matrix fits a 1400 px screen (measured in headless
Chromium), each cell's glyph and colour follow its harm class (``stats.harm``), the findings in
words come from the cells, and the header counts runs and cells apart.

Pages are rendered from the committed comparison's document shape (docs/comparison/*.json,
every figure as a campaign gathered it), so no campaign runs here."""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.campaign.stats import harm
from reports.comparison import DATA_STYLE, HARM_STYLE, LOCK_STYLE, backend_findings, render

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "comparison"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1400

# Written into the page after it has laid out: how wide the document is against the window.
MEASURE = (
    "<script>document.body.insertAdjacentHTML('beforeend', '<pre id=\"measure\">' + "
    "JSON.stringify({scroll: document.documentElement.scrollWidth, client: "
    "document.documentElement.clientWidth, matrices: [...document.querySelectorAll("
    "'table.matrix')].map(t => Math.ceil(t.getBoundingClientRect().right)), cells: "
    "document.querySelectorAll('table.matrix td.cell').length}) + '</pre>');</script>"
)


def _doc(name: str) -> dict[str, Any]:
    """A committed document with each cell's harm decided as a campaign decides it now."""
    doc = json.loads((COMMITTED / name).read_text())
    for c in doc["cells"]:
        c["harm"] = harm(c, c["status"])
    return doc


def _measure(page: Path, extra: str = "") -> dict[str, Any]:
    """The page laid out by headless Chromium in a 1400 px wide window."""
    probe = page.with_name("measured.html")
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", extra + MEASURE + "</body>"), encoding="utf-8")
    p = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         f"--window-size={WIDTH},900", probe.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.search(r'<pre id="measure">(\{[^<]*)</pre>', p.stdout)  # not the script's own text
    assert found, f"chromium printed no measurement (exit {p.returncode}): {p.stderr[-500:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get install chromium")
def test_the_matrix_fits_a_1400_px_screen(tmp_path: Path) -> None:
    doc = _doc("comparison.json")
    page = render(doc, tmp_path / "comparison.html")
    got = _measure(page)
    # Every cell of the campaign is in the matrix, and nothing scrolls sideways.
    assert got["cells"] == len(doc["cells"]), got
    assert got["scroll"] <= got["client"] <= WIDTH, got
    assert max(got["matrices"]) <= got["client"], got
    # The measurement can fail: something 1600 px wide makes the page scroll.
    wide = _measure(page, '<div style="width:1600px">wide</div>')
    assert wide["scroll"] > wide["client"], wide
    findings = render(_doc("findings.json"), tmp_path / "findings.html")
    got = _measure(findings)
    assert got["scroll"] <= got["client"] <= WIDTH, got


def _cell(template: dict[str, Any], nemesis: str, **change: Any) -> dict[str, Any]:
    """A real cell record under another column (``nemesis``), changed in its figures (damage
    totals by name)."""
    c = copy.deepcopy(template)
    totals = change.pop("totals", {})
    for name, d in c["damage"].items():
        if d.get("runs"):
            d["total"] = totals.get(name, 0)
    c.update(change)
    c["nemesis"] = c["nemesis_item"]["label"] = c["nemesis_item"]["key"] = nemesis
    return c


def _cells(html_text: str) -> dict[str, tuple[str, str, str]]:
    """The matrix's cells by nemesis label, from the page: (harm class, glyph, style)."""
    nems = html_text.split('<tr class="nems">', 1)[1].split("</tr>", 1)[0]
    heads = re.findall(r"<th>([^<]*)</th>", nems)
    row = html_text.split('<tr class="b">', 1)[1].split("</tr>", 1)[0]
    tds = re.findall(
        r'<td class="cell harm-([a-z-]+)[^"]*"(?: style="([^"]*)")?[^>]*>.*?<span class="glyph">'
        r"([^<]*)</span>",
        row,
        re.S,
    )
    return {h: (cls, glyph, style) for h, (cls, style, glyph) in zip(heads, tds, strict=True)}


def test_each_cell_takes_the_glyph_and_colour_of_its_harm_class(tmp_path: Path) -> None:
    doc = _doc("comparison.json")
    template = next(
        c
        for c in doc["cells"]
        if c["status"] == "runnable"
        and c["damage"]["lost_updates"]["runs"]
        and c["damage"]["stale_writes_accepted"]["runs"]
    )
    n = template["decided"]
    at_once = {"runs": 2, "of": n, "total": 3}
    nobody = {"runs": 0, "of": n, "total": 0}
    broken = {"invalid": n, "valid": 0, "verdict": "invalid"}
    cells = [
        _cell(template, "safe", invalid=0, valid=n, verdict="valid", acted_at_once=nobody),
        # a revocation under the lease model, nobody acting on it: invalid, data untouched
        _cell(template, "promise", acted_at_once=nobody, **broken),
        _cell(template, "at-once", acted_at_once=at_once, **broken),
        _cell(template, "damage", acted_at_once=at_once, totals={"lost_updates": 4}, **broken),
        # stale writes accepted with nobody acting at once: the data suffered all the same
        _cell(
            template,
            "stale",
            acted_at_once=nobody,
            totals={"stale_writes_accepted": 1},
            **broken,
        ),  # fmt: skip
        _cell(template, "unknown", invalid=0, verdict="unknown", acted_at_once=nobody),
        _cell(template, "n-a", status="not applicable"),
        _cell(template, "missing", status="not available here"),
    ]
    expected = {
        "safe": "safe", "promise": "promise", "at-once": "at-once", "damage": "damage",
        "stale": "damage", "unknown": "unknown", "n-a": "not-applicable",
        "missing": "not-available",
    }  # fmt: skip
    for c in cells:
        c["harm"] = harm(c, c["status"])
        assert c["harm"]["class"] == expected[c["nemesis"]], (c["nemesis"], c["harm"])
    assert cells[3]["harm"]["damage"]["lost_updates"] == 4
    assert (cells[2]["harm"]["lock"], cells[2]["harm"]["data"]) == ("at-once", "kept")
    page = render({**doc, "cells": cells}, tmp_path / "comparison.html").read_text()
    shown = _cells(page)
    assert set(shown) == set(expected), shown
    for nemesis, cls in expected.items():
        got_cls, glyph, style = shown[nemesis]
        want_glyph, _, _, bg, fg = HARM_STYLE[cls]
        assert (got_cls, glyph) == (cls, want_glyph), nemesis
        assert style == f"background:{bg};color:{fg}", nemesis
    # Four harm classes, four glyphs and four colours: no two read alike.
    four = [HARM_STYLE[k] for k in ("safe", "promise", "at-once", "damage")]
    assert len({g for g, *_ in four}) == 4 and len({s[3] for s in four}) == 4
    # The export names the class too.
    rows = (tmp_path / "comparison.csv").read_text().splitlines()
    assert rows[0].split(",")[-3:] == ["harm", "harm_lock", "harm_data"]
    assert [r.split(",")[-3] for r in rows[1:]] == [expected[c["nemesis"]] for c in cells]


def test_the_findings_page_marks_the_lock_red_and_the_data_green_where_fencing_saved_it(
    tmp_path: Path,
) -> None:
    doc = _doc("findings.json")
    fenced = next(c for c in doc["cells"] if c["workload_item"]["opts"].get("write") == "fenced")
    plain = next(c for c in doc["cells"] if c["workload"] == "lock-set, plain writes")
    assert fenced["invalid"] and fenced["harm"]["data"] == "kept"
    assert plain["harm"]["data"] == "lost"
    page = render(doc, tmp_path / "findings.html").read_text()

    def marks(label: str) -> list[tuple[str, str, str]]:
        heads = re.findall(r'<th class="group" colspan="1">([^<]*)</th>', page)
        row = page.split('<tr class="b">', 1)[1].split("</tr>", 1)[0]
        tds = row.split('<td class="cell')[1:]
        td = tds[heads.index(label)]
        return re.findall(
            r'<span class="mark mark-(lock|data)" style="([^"]*)".*?<span class="glyph">([^<]*)<',
            td,
        )

    red = "background:{};color:{}".format(*HARM_STYLE["damage"][3:])
    green = "background:{};color:{}".format(*HARM_STYLE["safe"][3:])
    lock, data = marks("lock-set, fenced writes")
    assert lock == ("lock", red, LOCK_STYLE[fenced["harm"]["lock"]][0])
    assert data == ("data", green, DATA_STYLE["kept"][0])
    assert marks("lock-set, plain writes")[1] == ("data", red, DATA_STYLE["lost"][0])
    # The words say what saved the data, from the same cells.
    said = " ".join(s for f in backend_findings(doc) for s in f["sentences"])
    assert "What saved the data" in said and "fenced writes" in said


def test_findings_in_words_come_from_the_cells(tmp_path: Path) -> None:
    doc = _doc("comparison.json")
    found = backend_findings(doc)
    assert found == backend_findings(copy.deepcopy(doc))  # deterministic
    ran = {c["backend"] for c in doc["cells"] if c["status"] == "runnable" and c["decided"]}
    for f in found:
        text = " ".join(f["sentences"])
        assert 1 <= len(f["sentences"]) <= 4, f
        if f["label"] not in ran:
            assert text.startswith("Not run"), f
            continue
        mine = [c for c in doc["cells"] if c["backend"] == f["label"] and c["status"] == "runnable"]
        broke = [c for c in mine if c["invalid"]]
        if not broke:
            assert text.startswith("No run was invalid"), f
            continue
        for c in broke:  # each broken cell's fault and k/n is named
            assert c["nemesis"] in text and f"{c['invalid']}/{c['decided']}" in text, (f, c)


def test_the_header_counts_runs_and_cells_apart_and_every_server_has_a_version(
    tmp_path: Path,
) -> None:
    doc = _doc("comparison.json")
    # A run recorded before its server was asked (ZooKeeper and MariaDB in the committed
    # runs): the campaign's binary says which version ran, marked as such.
    doc["header"]["server_versions"]["zookeeper"] = "Apache ZooKeeper, version 3.8.0 2024-12-29"
    for c in doc["cells"]:
        for s in c["server_versions"]:
            if s["kind"] == "zookeeper":
                s["version"] = None
    page = render(doc, tmp_path / "comparison.html").read_text()
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page)))
    cells = [c for c in doc["cells"] if c["status"] == "runnable"]
    runs = sum(len(c["per_run"]) for c in doc["cells"])
    missing = [c for c in doc["cells"] if c["status"] == "not available here"]
    head = f"{runs:,} runs in {len(cells):,} cells"
    assert head in text
    if missing:
        who = ", ".join(dict.fromkeys(c["backend"] for c in missing))
        assert f"{len(missing)} cells not available here ({who})" in text
    assert "version not reported" not in page
    assert "zookeeper 3.8.0 (binary here; its runs did not record it)" in text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get install chromium")
def test_a_real_campaign_page_shows_each_cell_by_its_harm_and_fits(
    redis_bin, tmp_path: Path
) -> None:
    """A small campaign run here (redis holds; unsafe-redis lets two clients in at once and
    loses updates): its document names each cell's harm and the page shows it."""
    from .conftest import harness

    store = tmp_path / "s"
    p = harness(
        "compare", "--backends", "redis,unsafe-redis", "--workloads", "lock-set", "--nemeses",
        "none", "-t", "2", "--jobs", "2", "--store", str(store), timeout=180,
    )  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr  # unsafe-redis is unsafe
    doc = json.loads((store / "comparison.json").read_text())
    got = {c["backend"]: c["harm"] for c in doc["cells"]}
    assert got["redis"]["class"] == "safe" and got["redis"]["data"] == "kept", got
    assert got["unsafe-redis"]["class"] == "damage", got
    assert got["unsafe-redis"]["damage"]["lost_updates"] > 0, got
    page = (store / "comparison.html").read_text()
    for c in doc["cells"]:
        glyph, _, _, bg, fg = HARM_STYLE[c["harm"]["class"]]
        row = page.split(f"<th>{c['backend']}</th>", 1)[1].split("</tr>", 1)[0]
        assert f'style="background:{bg};color:{fg}"' in row and f">{glyph}<" in row, row[:300]
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "2 runs in 2 cells." in re.sub(r"\s+", " ", text)
    assert all(s["version"] for s in doc["header"]["reported_versions"])  # each server said
    measured = _measure(store / "comparison.html")
    assert measured["cells"] == 2 and measured["scroll"] <= measured["client"] <= WIDTH
