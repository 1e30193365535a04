"""What the report draws around its remedies: zoom labels that never overprint (measured in
headless Chromium, the text's real boxes), a log axis whose lowest tick is labelled where its
value is, retired process ids explained, and the remedies section of an INVALID page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reports import svg, view
from reports.render import render_html
from reports.story import Lane, Mark, Story


def _dense_story() -> Story:
    """Client 0's writes 12 ms apart (as in a redis client-pause run: w275...w293), a failed
    release right beside client 1's stale write and its next writes, a lease line."""
    ms = 1_000_000
    t0 = 4_000 * ms
    first = Lane("client 1", [(t0, t0 + 1_020 * ms, True, True, "client 1 holds")])
    first.marks = [
        Mark(t0 + 1_020 * ms, "w256", "stale"),
        Mark(t0 + 1_022 * ms, "release failed", "release-fail"),
        Mark(t0 + 1_040 * ms, "w298", "write"),
        Mark(t0 + 1_060 * ms, "w300", "write"),
    ]
    second = Lane("client 66", [(t0 + 500 * ms, t0 + 510 * ms, True, False, "client 66 holds")])
    second.marks = [Mark(t0 + (700 + 12 * i) * ms, f"w{275 + i}", "write") for i in range(19)]
    second.marks.append(Mark(t0 + 505 * ms, "w257", "write"))
    return Story(1, "revoked-while-held", "1", "", t0 - 50 * ms, t0 + 1_200 * ms,
                 [first, second], [], [(t0 + 500 * ms, "lease expired")],
                 "client 1 / client 66", t0 + 500 * ms)  # fmt: skip


def _overlaps(boxes: list[dict]) -> list[tuple[str, str]]:
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if (a["x"] < b["x"] + b["w"] - 0.5 and b["x"] < a["x"] + a["w"] - 0.5
                    and a["y"] < b["y"] + b["h"] - 0.5 and b["y"] < a["y"] + a["h"] - 0.5):  # fmt: skip
                out.append((a["t"], b["t"]))
    return out


def _drawn(tmp_path: Path, story: Story) -> tuple[list[dict], list[float]]:
    """The zoom of ``story`` as headless Chromium lays it out: every text's box, and the left
    edge of every hold bar."""
    from .browser import CHROMIUM, Browser

    if not CHROMIUM:
        pytest.skip("chromium is not installed (Debian package chromium; ./setup.sh)")
    page = tmp_path / "zoom.html"
    page.write_text(f"<html><body>{svg.zoom(story)}</body></html>")
    b = Browser()
    try:
        b.open(page.as_uri())
        boxes = b.eval(
            "Array.from(document.querySelectorAll('svg.zoom text')).map(t => {"
            "const r = t.getBBox(); return {t: t.textContent, x: r.x, y: r.y, w: r.width,"
            " h: r.height}; })"
        )
        bars = b.eval(
            "Array.from(document.querySelectorAll('svg.zoom rect.zhold')).map(r => r.getBBox().x)"
        )
    finally:
        b.close()
    return boxes, bars


def test_zoom_labels_do_not_overprint_in_chromium(tmp_path: Path) -> None:
    boxes, _ = _drawn(tmp_path, _dense_story())
    texts = [x["t"] for x in boxes]
    assert _overlaps(boxes) == [], texts
    # what the story turns on is labelled: the stale write, the failed release, the lease
    assert any(t.startswith("w256") for t in texts)
    assert any(t.startswith("release failed") for t in texts)
    assert any(t.startswith("lease expired") for t in texts)
    # the dense writes share labels rather than vanish
    assert any(re.match(r"w27\d…w2\d\d \(\d+\)", t) for t in texts), texts


def test_long_client_names_fit_beside_their_lanes_in_chromium(tmp_path: Path) -> None:
    """Process ids grow with retired ones and with thousands of clients: "client 100014" was
    cut to "ent 100014" at the zoom's left edge."""
    story = _dense_story()
    story.lanes[0].label, story.lanes[1].label = "client 100014", "client 9"
    boxes, bars = _drawn(tmp_path, story)
    lanes = [x for x in boxes if x["t"].startswith("client ")]
    assert len(lanes) == 2, boxes
    plot = min(bars)
    for label in lanes:  # inside the picture, and clear of the plot
        assert label["x"] >= 0 and label["x"] + label["w"] <= plot, (label, plot)
    assert 'width="850"' in svg.zoom(_dense_story())  # short names keep the usual margin


def test_log_axis_labels_its_lowest_tick_where_it_is() -> None:
    points = [[i * 0.01, v, "ok"] for i, v in enumerate([0.15, 0.3, 2, 40, 400] * 20)]
    chart, facts = svg.scatter(points, [], 1.0)
    assert facts["log"] is True
    grid = r'<line x1="86" y1="([\d.]+)" x2="1086"[^>]*/><text [^>]*>([\d.]+)</text>'
    labels = re.findall(grid, chart)
    ticks = {float(text): float(y) for y, text in labels}
    assert min(ticks) == 0.1  # the decade below the fastest acquire
    top, plot_h = 30, 240
    assert ticks[0.1] == pytest.approx(top + plot_h)  # at the bottom: where 0.1 is
    # one decade is the same height everywhere: 0.1 -> 1 as 1 -> 10
    assert ticks[0.1] - ticks[1.0] == pytest.approx(ticks[1.0] - ticks[10.0], abs=0.2)
    over = svg.lines(
        [("p50", "#000", [0.15, 3.0, 400.0])], 1.0, [], 3.0, "ms", css="q", log_ok=True
    )
    low = re.findall(r'y1="([\d.]+)" x2="1086" y2="[\d.]+" stroke="#eef0f3"/><text[^>]*>0.1<', over)
    assert low and float(low[0]) == pytest.approx(26 + 170)


def test_retired_process_ids_are_explained() -> None:
    line = view.retired_line(["0", "1", "66", "7"], 5)
    assert line is not None
    assert "client 66 = client 1 after 13 unknown outcomes" in line
    assert "client 7 = client 2 after 1 unknown outcome;" in line
    assert view.retired_line(["0", "4"], 5) is None  # no retired id: nothing to explain
    assert view.retired_line(["66"], None) is None  # concurrency unknown: no guess


def test_an_invalid_page_ends_with_its_remedies() -> None:
    from .test_remedies import CASES

    config, results, expected = CASES["redis mutex, paused holder"]
    page = render_html(config, results, [])
    section = page[page.index('id="remedies"') : page.index("<h2>Details</h2>")]
    for title in expected:
        assert title in section
    assert "harness run --backend postgres" in section
    valid = render_html(config, results | {"valid": True}, [])
    assert 'id="remedies"' not in valid
