"""report.html rendered from real runs on a real redis-server, read back for what a user needs:
the verdict in words, the figures, each violation's story with its times, the charts over time,
the faults in words; then a large run, an interrupted one, a partial history, and the page in
headless Chromium, with the serve index."""

from __future__ import annotations

import html
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.run import run_test
from harness.run.analyse import recheck
from harness.run.config import run_config
from reports.render import render_run
from reports.story import digits_for, secs

from .conftest import HARNESS

ROOT = Path(__file__).resolve().parent.parent
TOLD = re.compile(r'<p class="told">(.*?)</p>', re.S)
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
BASE = dict(backend="redis", concurrency=3, keys=1, seed=11)


def _run(store: Path, **kw) -> Path:
    res = run_test(run_config(**(BASE | {"store": store} | kw)))
    return res.run_dir


def _text(fragment: str) -> str:
    """Visible text: tags become spaces between words, inline code stays in its sentence."""
    fragment = re.sub(r"</?code>", "", fragment)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _results(d: Path) -> dict:
    return json.loads((d / "results.json").read_text())


def _self_contained(page: str) -> None:
    assert not REMOTE.search(page), REMOTE.search(page)
    assert "@import" not in page and "url(http" not in page


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shutil.which("redis-server") or pytest.skip("redis-server not installed (./setup.sh)")
    return tmp_path_factory.mktemp("report-runs")


@pytest.fixture(scope="module")
def valid_run(store: Path) -> Path:
    """Partitions with a TTL longer than the holds: valid, with faults in force."""
    return _run(
        store, nemesis=["partition"], nemesis_interval=1.0, time_limit=5, ttl_ms=3000, keys=2
    )


@pytest.fixture(scope="module")
def revoked_run(store: Path) -> Path:
    """A holder frozen past its TTL wakes up and writes: revoked-while-held, stale writes."""
    return _run(
        store,
        nemesis=["client-pause"],
        nemesis_interval=1.0,
        time_limit=5,
        ttl_ms=500,
        hold_ms=100,
        wait_ms=1000,
    )


@pytest.fixture(scope="module")
def overlap_run(store: Path) -> Path:
    """GET-then-SET without NX: overlapping holds, many of them."""
    return _run(store, backend="unsafe-redis", concurrency=8, hold_ms=2, time_limit=3, seed=3)


def test_valid_run_says_what_it_means_first(valid_run: Path) -> None:
    results = _results(valid_run)
    assert results["valid"] is True, results["summary"]
    page = (valid_run / "report.html").read_text()
    _self_contained(page)
    assert 'class="banner valid"' in page
    assert "No violation found under partition" in page
    holds = results["checkers"]["mutex"]["hold_count"]
    assert f"in {holds:,} holds, no two clients ever held the same lock at once" in page
    cards = _text(page[page.index('<div class="cards">') : page.index("<h2>Over time")])
    assert f"holds {holds:,}" in cards.lower()
    assert "violations 0" in cards.lower()
    assert "What went wrong" not in page
    # over time: throughput and quantiles with the partitions shaded, availability by window
    for css in ("chart throughput", "chart quantiles", "chart latency", "chart timeline"):
        assert f'class="{css}"' in page
    assert page.count('class="fault"') >= 3 * results["faults"]["partition"]["injected"]
    avail = page[page.index('class="availability"') :]
    assert ">outside faults<" in avail and ">during faults<" in avail
    assert re.search(r">partition at \d+\.\d\d s<", avail)
    # faults in words: the halves of each partition, not JSON
    faults = page[page.index("<h2>Faults</h2>") : page.index("<h2>Details</h2>")]
    assert re.search(r"partition [a-z-]+: \{[cn\d, ]+\}( \| \{[cn\d, ]+\})+", faults), faults
    assert "{&#34;" not in faults and '{"' not in faults
    # configuration last, folded
    assert page.index('<details class="fold" id="configuration">') > page.index("<h2>Faults</h2>")


def test_revoked_while_held_is_told_with_its_times(revoked_run: Path) -> None:
    results = _results(revoked_run)
    mutex = results["checkers"]["mutex"]
    assert results["valid"] is False and mutex["violation_kinds"].get("revoked-while-held")
    page = (revoked_run / "report.html").read_text()
    _self_contained(page)
    assert "This lock is unsafe under client-pause" in page
    v = next(x for x in mutex["violations"] if x["kind"] == "revoked-while-held")
    a, b = v["first"], v["second"]
    n = mutex["violations"].index(v) + 1
    story = page[page.index(f'id="violation-{n}"') :]
    told = _text(TOLD.search(story).group(1))
    pa, pb = a["process"], b["process"]
    assert told.startswith(
        f"Client {pa} acquired lock 0 at {secs(a['start'])} (fence {a['fence']})"
    )
    assert f"the nemesis paused client {pa}'s process at" in told
    # by the acquire's ok plus the TTL the lease had surely run out; when client pb got the
    # lock before that, from the acquire's invocation plus the TTL on it could have
    expired = secs(a["start"] + 500_000_000)
    if a["start"] + 500_000_000 <= b["start"]:
        assert f"client {pa}'s 500 ms lease expired by {expired}" in told
    else:
        assert re.search(
            rf"client {pa}'s 500 ms lease could run out from [\d.]+ s on \(its acquire was "
            r"sent at [\d.]+ s\)",
            told,
        ), told
    assert f"client {pb} acquired at {secs(b['start'])} (fence {b['fence']})" in told
    if a["fence"] is not None and results["checkers"]["fencing"]["stale_accepted"]:
        first_stale = results["checkers"]["fencing"]["stale_examples"][0]
        if first_stale["process"] == pa and first_stale["fence"] == a["fence"]:
            assert (
                f"still believed it held the lock and wrote with fence {a['fence']} at "
                f"{secs(first_stale['ops'][0]['time'])}: the store accepted the stale write"
            ) in told
    # its zoom beside it: both lanes, the violating holds, the stale write, the pause band
    zoom = story[: story.index("</svg>")]
    assert f">client {pa}</text>" in zoom and f">client {pb}</text>" in zoom
    assert 'class="zhold bad"' in zoom and 'class="fault"' in zoom
    assert ">lease expired</text>" in zoom or ">lease could run out</text>" in zoom
    cards = _text(page[page.index('<div class="cards">') :]).lower()
    assert f"violations {mutex['violation_count']}" in cards
    assert f"stale writes accepted {results['checkers']['fencing']['stale_accepted']}" in cards
    faults = page[page.index("<h2>Faults</h2>") :]
    assert re.search(
        r"pause client process \d+, holding lock <code>|pause client process \d+", faults
    )


def test_overlaps_are_told_and_the_rest_tabled(overlap_run: Path) -> None:
    results = _results(overlap_run)
    mutex = results["checkers"]["mutex"]
    assert results["valid"] is False and mutex["violation_kinds"].get("overlap")
    page = (overlap_run / "report.html").read_text()
    _self_contained(page)
    told = [_text(t) for t in TOLD.findall(page)]
    ov = next(
        i for i, x in enumerate(mutex["violations"]) if x["kind"] == "overlap" and x["first"]["end"]
    )
    v = mutex["violations"][ov]
    both = (v["first"]["end"] - v["second"]["start"]) / 1e6
    # a violation of a few ms is told to the 0.1 ms
    ends = [h["end"] for h in (v["first"], v["second"]) if h["end"] is not None]
    digits = digits_for(max(ends) - v["first"]["start"])
    assert (
        f"client {v['first']['process']} sent its release only at "
        f"{secs(v['first']['end'], digits)}: both acted as holder for {both:.1f} ms"
    ) in told[ov]
    assert len(mutex["violations"]) > 3, "the run should give more violations than told in full"
    table = page[page.index('<table class="violations">') :]
    assert '<a href="#violation-4">4</a>' in table
    assert '<details class="story-more" id="violation-4">' in page
    assert page.count('class="chart zoom"') == len(told)


def test_interrupted_and_partial_runs(revoked_run: Path, tmp_path: Path) -> None:
    # interrupted: a real run stopped by Ctrl-C once it has recorded some ops
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [*HARNESS, "run", "--backend", "redis", "-t", "60", "--store", str(store)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        hist = store / "latest" / "history.jsonl"
        while not (hist.exists() and hist.stat().st_size > 5000):
            assert time.monotonic() < deadline and proc.poll() is None, "the run never recorded"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 2, out + err
    cut = hist.resolve().parent
    page = (cut / "report.html").read_text()
    assert 'class="banner unknown"' in page
    assert "proves neither safe nor unsafe: the run was interrupted before its time limit" in page
    assert 'class="chart throughput"' in page  # what was recorded is still shown
    # partial: the history cut in the middle of a line after the first violation
    part = tmp_path / "partial"
    shutil.copytree(revoked_run, part, ignore=shutil.ignore_patterns("servers", "report.html"))
    v = _results(revoked_run)["checkers"]["mutex"]["violations"][0]
    lines = (part / "history.jsonl").read_bytes().splitlines(keepends=True)
    keep = v["second"]["release_index"] + 40
    (part / "history.jsonl").write_bytes(b"".join(lines[:keep]) + lines[keep][:25])
    recheck(part)
    results = _results(part)
    assert results["valid"] is False and results["partial"] is True
    page = (part / "report.html").read_text()
    assert "truncated (no newline at end of file)" in page
    told = _text(TOLD.search(page).group(1))
    assert told.startswith(f"Client {v['first']['process']} acquired lock 0 at ")


@pytest.mark.slow
def test_large_run_is_bounded(tmp_path: Path) -> None:
    """A run of ~2 x 10^5 ops (bench/report.py's history): page small, views all there."""
    sys.path.insert(0, str(ROOT))
    from bench.report import build

    n = build(tmp_path, 200_000, inject=30)
    t = time.perf_counter()
    results = recheck(tmp_path)
    took = time.perf_counter() - t
    page = (tmp_path / "report.html").read_text()
    print(f"{n} ops checked and rendered in {took:.2f} s, {len(page) / 1e6:.2f} MB")
    assert len(page) < 2_000_000
    assert results["valid"] is False
    mutex = results["checkers"]["mutex"]
    assert f"({mutex['violation_count']} violations)" in page
    assert page.count('<p class="told">') == min(len(mutex["violations"]), 100)
    assert 'class="chart throughput"' in page and 'class="chart quantiles"' in page
    # the fault table, in words
    assert "partition halves: {n1, n2, c0} | {n3, n4, n5, c1} (healed after 10.0 s)" in page


def test_report_and_index_in_chromium(revoked_run: Path, valid_run: Path, store: Path) -> None:
    from reports.serve import make_server

    from .browser import CHROMIUM, Browser, squash, top

    assert CHROMIUM, "chromium is not installed (Debian package chromium; ./setup.sh installs it)"
    render_run(revoked_run)
    mutex = _results(revoked_run)["checkers"]["mutex"]
    b = Browser()
    server = make_server(store, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        b.open((revoked_run / "report.html").as_uri())
        assert b.errors() == []
        verdict = b.visible_text("#verdict")
        assert verdict and verdict.startswith("INVALID")
        assert top(b, "#verdict") < 400  # on the first screen
        told = squash(b.visible_text(".story .told") or "")
        a = mutex["violations"][0]["first"]
        assert told.startswith(f"Client {a['process']} acquired lock 0 at {secs(a['start'])}")
        assert not b.visible_text("#configuration table")  # folded
        port = server.server_address[1]
        b.open(f"http://127.0.0.1:{port}/?verdict=invalid")
        assert b.errors() == []
        index = squash(b.visible_text("table.runs") or "")
        rel = revoked_run.relative_to(store).as_posix()
        assert rel in index and "INVALID" in index
        assert valid_run.relative_to(store).as_posix() not in index  # filtered out
        b.open(f"http://127.0.0.1:{port}/files/{rel}/report.html")
        assert b.errors() == []
        assert (b.visible_text("#verdict") or "").startswith("INVALID")
    finally:
        b.close()
        server.shutdown()
        server.server_close()
