"""report.html and the comparison page, rendered from run directories built by hand."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from checkers.history import Op, read
from harness.campaign.document import write
from harness.campaign.gather import gather
from harness.campaign.spec import SpecError
from reports.render import ReportError, render_html, render_run

MS = 1_000_000
EVIL_KEY = "<script>alert('k')</script>"
EVIL_ERROR = '<img src="http://evil.example/x.png">'
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def render_comparison(dirs: list[Path], out: Path) -> Path:
    """The comparison page of stored campaign stores and run directories, as `harness compare`
    writes it."""
    return write(gather(dirs), out)[0]


class Hist:
    """Builds a history.jsonl as a run loop would: index in order, times in ns."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def add(self, t_ms: float, process: int | str, type_: str, f: str, **kw: Any) -> None:
        d = {"index": len(self.ops), "time": int(t_ms * MS), "process": process, "type": type_}
        d["f"] = f
        d.update({k: v for k, v in kw.items() if v is not None})
        self.ops.append(d)

    def hold(
        self,
        p: int,
        key: str,
        t0: float,
        t1: float,
        fence: int,
        release: str = "ok",
        error: str | None = None,
    ) -> None:
        """acquire invoked at t0, ok 2 ms later; release invoked at t1, answered 1 ms later."""
        self.add(t0, p, "invoke", "acquire", key=key)
        self.add(t0 + 2, p, "ok", "acquire", key=key, value=fence)
        self.add(t1, p, "invoke", "release", key=key)
        err = error or ("not owner" if release == "fail" else None)
        self.add(t1 + 1, p, release, "release", key=key, error=err)

    def fault(self, name: str, t0: float, t1: float, target: Any) -> None:
        self.add(t0, "nemesis", "invoke", f"start-{name}", value=target)
        self.add(t0 + 1, "nemesis", "info", f"start-{name}", value=target)
        self.add(t1, "nemesis", "invoke", f"stop-{name}")
        self.add(t1 + 1, "nemesis", "info", f"stop-{name}")

    def sorted_ops(self) -> list[dict[str, Any]]:
        out = sorted(self.ops, key=lambda d: d["time"])
        for i, d in enumerate(out):
            d["index"] = i
        return out


def _series(ops: list[Op]) -> list[list[Any]]:
    """Acquire latencies as the perf checker reports them: [t_s, latency_ms, type]."""
    started: dict[Any, int] = {}
    out = []
    for op in ops:
        if op.f != "acquire":
            continue
        if op.type == "invoke":
            started[op.process] = op.time
        elif op.process in started:
            t0 = started.pop(op.process)
            out.append([t0 / 1e9, (op.time - t0) / 1e6, op.type])
    return out


def _results(ops: list[Op]) -> dict[str, Any]:
    from checkers import check_all

    return check_all(ops)


def _hand_results(ops: list[Op]) -> dict[str, Any]:
    """results.json written by hand to the documented schema, plus a checker nobody knows."""
    series = _series(ops)
    lat = sorted(s[1] for s in series)
    return {
        "valid": "unknown",
        "summary": "hand-written",
        "checkers": {
            "perf": {
                "checker": "perf",
                "valid": True,
                "summary": f"{len(lat)} acquires",
                "acquire_latency_ms": {"p50": lat[len(lat) // 2], "p99": lat[-1], "max": lat[-1]},
                "throughput": {"acquire_ok_per_s": 12.5},
                "success_ratio": 1.0,
                "series": series,
            },
            "fencing": {"checker": "fencing", "valid": None, "summary": "no fences"},
            "liveness": {
                "checker": "liveness",
                "valid": "unknown",
                "summary": "a long wait",
                "longest_wait_s": 4.25,
                "stalls": [{"from_s": 1.5, "to_s": 5.75, "key": "k0"}],
            },
        },
    }


def _config(backend: str = "redis", nemesis: list[str] | None = None, **kw: Any) -> dict:
    cfg = {
        "backend": backend,
        "workload": "mutex",
        "nemesis": ["partition"] if nemesis is None else nemesis,
        "nemesis_interval": 5,
        "concurrency": 3,
        "keys": 2,
        "time_limit": 1,
        "ttl_ms": 3000,
        "seed": 1,
        "fencing": False,
        "backend_opts": {},
        "started_at": "2024-05-01T12:00:00+00:00",
        "harness_version": "0.1.0",
        "servers": [{"kind": "redis", "name": "n1", "host": "127.0.0.11", "port": 6379}],
        "duration_s": 1.0,
    }
    cfg.update(kw)
    return cfg


def _write_run(d: Path, h: Hist, config: dict[str, Any]) -> Path:
    d.mkdir(parents=True)
    lines = [json.dumps(op) for op in h.sorted_ops()]
    (d / "history.jsonl").write_text("\n".join(lines) + "\n")
    (d / "config.json").write_text(json.dumps(config))
    ops = read(d / "history.jsonl").ops
    (d / "results.json").write_text(json.dumps(_results(ops)))
    return d


def valid_history() -> Hist:
    h = Hist()
    fence = 0
    for i, (p, key) in enumerate([(0, "k0"), (1, "k1"), (2, "k0"), (0, "k1"), (1, "k0")]):
        fence += 1
        h.hold(p, key, 100 + i * 120, 100 + i * 120 + 80, fence)
    h.fault("partition", 250, 520, {"groups": [["n1"], ["clients"]]})
    return h


def invalid_history() -> Hist:
    h = valid_history()
    # process 7 acquires k0 while process 3 still holds it: an overlap
    h.hold(3, "k0", 700, 850, 10)
    # escaping probes: a release that timed out with HTML in its error, a key made of HTML
    h.hold(7, "k0", 760, 900, 11, release="info", error=EVIL_ERROR)
    h.hold(4, EVIL_KEY, 905, 950, 1)
    return h


@pytest.fixture
def valid_run(tmp_path: Path) -> Path:
    return _write_run(tmp_path / "valid", valid_history(), _config())


@pytest.fixture
def invalid_run(tmp_path: Path) -> Path:
    return _write_run(tmp_path / "invalid", invalid_history(), _config("unsafe-redis"))


def _no_remote(page: str) -> None:
    assert not REMOTE.search(page), REMOTE.search(page)
    assert "@import" not in page
    assert "url(http" not in page


def test_valid_run_report(valid_run: Path) -> None:
    out = render_run(valid_run)
    assert out == valid_run / "report.html"
    page = out.read_text()
    assert 'class="banner valid"' in page
    assert "no violation" in page
    assert "<svg" in page and 'class="chart timeline"' in page
    assert page.count('class="hold violation"') == 0
    assert 'class="fault"' in page and ">partition</text>" in page
    assert 'class="chart latency"' in page
    assert "Counterexample" not in page
    assert "127.0.0.11:6379" in page  # the config table
    _no_remote(page)


def test_invalid_run_report(invalid_run: Path) -> None:
    page = render_run(invalid_run).read_text()
    assert 'class="banner invalid"' in page
    assert "Counterexample" in page
    assert "overlap" in page and "both processes certainly held the lock" in page
    # both holders of the violation, red in the timeline and named in the counterexample
    assert page.count('class="hold violation"') == 2
    assert ">client 3</text>" in page and ">client 7</text>" in page
    cx = page[page.index("Counterexample") :]
    # holds start when the acquire returns (702 ms, not 700) and end at the release invocation
    first = '<th>first holder</th><td>3</td><td>k0</td><td class="num">702.000</td>'
    second = '<th>second holder</th><td>7</td><td>k0</td><td class="num">762.000</td>'
    assert first + '<td class="num">850.000</td><td>10</td><td>ok</td>' in cx
    assert second + '<td class="num">900.000</td><td>11</td><td>info</td>' in cx
    assert 'class="involved"' in cx
    _no_remote(page)


def test_html_in_keys_and_errors_is_escaped(invalid_run: Path) -> None:
    page = render_run(invalid_run).read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;img src=&#34;http://evil.example/x.png&#34;&gt;" in page
    assert "<img" not in page
    _no_remote(page)


def test_html_in_results_and_config_is_escaped(tmp_path: Path) -> None:
    ops = read_ops(invalid_history())
    results = _results(ops)
    results["summary"] = "<b>bold</b> summary"
    results["checkers"]["<i>odd</i>"] = {"valid": None, "summary": "<u>x</u>", "n": "<br>"}
    page = render_html(_config(backend="<em>b</em>"), results, ops)
    for raw in ("<b>bold", "<i>odd", "<u>x", "<em>b", "<br>"):
        assert raw not in page
    assert "&lt;b&gt;bold&lt;/b&gt; summary" in page
    # a checker the page does not know shows up with its scalar fields
    assert "&lt;i&gt;odd&lt;/i&gt;" in page and "n/a" in page


def read_ops(h: Hist) -> list[Op]:
    from checkers.history import op_from_dict

    return [op_from_dict(d) for d in h.sorted_ops()]


def test_open_ended_hold_and_unhealed_fault(tmp_path: Path) -> None:
    h = Hist()
    h.hold(0, "k", 10, 50, 1)
    h.hold(1, "k", 60, 120, 2, release="fail")  # lease gone: never released
    h.hold(2, "k", 300, 400, 3)  # took the lock away: revoked while held
    h.add(200, "nemesis", "invoke", "start-clock", value={"node": "n1", "offset_s": 20})
    h.add(201, "nemesis", "info", "start-clock", value={"node": "n1", "offset_s": 20})
    d = _write_run(tmp_path / "r", h, _config(nemesis=["clock"]))
    page = render_run(d).read_text()
    assert 'class="banner invalid"' in page
    assert "revoked-while-held" in page
    assert "url(#hatch-bad)" in page  # the stale holder, drawn to the end, hatched and red
    assert "never healed" in page
    assert "offset_s" in page


def test_missing_results_and_bad_lines(tmp_path: Path) -> None:
    d = tmp_path / "crashed"
    d.mkdir()
    h = valid_history()
    lines = [json.dumps(op) for op in h.sorted_ops()]
    (d / "history.jsonl").write_text("\n".join(lines) + '\nnot json\n{"index": 9')
    page = render_run(d).read_text()
    assert 'class="banner unknown"' in page
    assert "results.json is missing" in page and "config.json is missing" in page
    assert "truncated" in page  # the last line, cut short
    assert "derived from the history" in page
    assert page.count("<rect x=") >= 5  # the holds, drawn from the history


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not a run directory"):
        render_run(tmp_path / "nope")
    with pytest.raises(ReportError, match="not a run directory"):
        render_run(tmp_path)


def test_comparison(tmp_path: Path, valid_run: Path, invalid_run: Path) -> None:
    other = _write_run(tmp_path / "etcd-none", valid_history(), _config("etcd", nemesis=[]))
    out = tmp_path / "site" / "index.html"
    got = render_comparison([valid_run, invalid_run, other], out)
    assert got == out
    page = out.read_text()
    for b in ("redis", "unsafe-redis", "etcd"):
        assert f"<th>{b}</th>" in page
    assert "<th>partition</th>" in page and "<th>none</th>" in page
    assert 'href="../valid/report.html"' in page and 'href="../invalid/report.html"' in page
    assert (invalid_run / "report.html").exists()  # rendered so the link is not dead
    assert "1/1 (21%–100%)" in page and "0/1 (0%–79%)" in page  # k/n with the Wilson interval
    assert "kinds: overlap 1" in page
    assert "not in the campaign" in page  # etcd under partition
    cells = {
        (c["backend"], c["nemesis"]): c
        for c in json.loads(out.with_suffix(".json").read_text())["cells"]
    }
    bad = cells[("unsafe-redis", "partition")]
    assert (bad["runs"], bad["invalid"], bad["unknown"], bad["not_applicable"]) == (1, 1, 0, None)
    assert bad["per_run"][0]["violation_kinds"] == {"overlap": 1}
    assert out.with_suffix(".csv").exists() and out.with_suffix(".md").exists()
    assert not (out.parent / "comparison.json").exists()  # exports are named after the page
    _no_remote(page)
    with pytest.raises(SpecError, match="not a run directory"):
        render_comparison([tmp_path / "missing"], out)


def test_hand_written_results_and_passed_ops(tmp_path: Path) -> None:
    """The documented schema renders too; a checker the page does not know gets its fields."""
    h = valid_history()
    d = tmp_path / "hand"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(_config(backend="zk")))
    ops = read_ops(h)
    (d / "results.json").write_text(json.dumps(_hand_results(ops)))
    page = render_run(d, ops=ops).read_text()  # no history.jsonl: the ops were passed
    assert 'class="banner unknown"' in page and "history.jsonl is missing" not in page
    assert "liveness" in page and "longest_wait_s" in page and "4.25" in page
    assert "from_s" in page and "5.75" in page  # a list of dicts becomes a table
    assert 'class="chart latency"' in page and "derived from the history" in page
    assert "n/a" in page  # fencing not applicable
    out = render_comparison([d], tmp_path / "cmp.html")
    cmp = out.read_text()
    assert "0 decided of 1 runs" in cmp and 'href="hand/report.html"' in cmp


def test_large_history_is_bounded(tmp_path: Path) -> None:
    """60k ops, 100 processes, 2 keys: bars merge and the page stays small."""
    h = Hist()
    t = 0.0
    for i in range(15_000):
        p, key = i % 10 + (i // 1500) * 10, f"k{i % 2}"
        h.hold(p, key, t, t + 3, i + 1)
        t += 2.5
    h.fault("partition", 1000, 2000, {"groups": [["n1"], ["n2"]]})
    d = _write_run(tmp_path / "big", h, _config())
    page = render_run(d).read_text()
    assert len(page) < 3_000_000
    assert "merged into one bar" in page
    assert "processes shown" in page  # 100 processes, at most 48 lanes
    assert 'class="banner valid"' in page


ETCD = Path(__file__).resolve().parents[2] / "shared" / "data" / "jepsen-etcd-3.4.3-mutex.jsonl"


@pytest.mark.skipif(not ETCD.exists(), reason=f"{ETCD} is absent")
def test_jepsen_etcd_history(tmp_path: Path) -> None:
    """Jepsen's etcd 3.4.3 lock history: two revoked-while-held, bare start/stop faults."""
    d = tmp_path / "etcd"
    d.mkdir()
    (d / "history.jsonl").write_bytes(ETCD.read_bytes())
    (d / "results.json").write_text(json.dumps(_results(read(d / "history.jsonl").ops)))
    page = render_run(d).read_text()
    assert 'class="banner invalid"' in page
    # No config.json: the faults are the history's own nemesis ops, not "without faults".
    assert "unsafe under faults:" in page and "without faults" not in page
    # Revoked, not overlapping: the page must not claim two clients held the lock at once.
    assert "given to another client after its holder stopped but before any release" in page
    assert "held the same lock at once" not in page
    told = re.sub(r"<[^>]+>", "", page[page.index("What went wrong (2 violations)") :])
    assert told.count("revoked-while-held") >= 2
    assert "Client 3 acquired lock lock at 29.42 s" in told
    # sent at 29.59 s, refused only at 32.09 s (the moment client 0 got the lock)
    assert "sent its release at 29.59 s; it failed at 32.09 s" in told
    assert "lease not found" in told and "no two clients acted at once" in told
    assert "client 0 acquired at 32.09 s" in told and "never released" in told
    assert page.count('class="fault"') >= 3 and ">nemesis</text>" in page
    assert "url(#hatch-bad)" in page
    _no_remote(page)


def _page(h: Hist, **cfg: Any) -> str:
    ops = read_ops(h)
    return render_html(_config(**cfg), _results(ops), ops)


def _told(page: str) -> list[str]:
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", "", t)).split())
        for t in re.findall(r'<p class="told">(.*?)</p>', page, re.S)
    ]


def test_lost_updates_on_the_page() -> None:
    """A set workload's history: the lost elements on a strip over the run and in a table."""
    h = Hist()
    for el in range(6):
        h.add(100 + el * 50, el % 2, "invoke", "add", key="s", value=el)
        h.add(110 + el * 50, el % 2, "ok", "add", key="s", value=el)
    h.fault("partition", 150, 300, {"topology": "halves", "reach": [["n1", "c0"], ["n2", "c1"]]})
    h.add(500, 9, "invoke", "read", key="s")
    h.add(510, 9, "ok", "read", key="s", value=[0, 1, 2, 5])  # 3 and 4 were lost
    page = _page(h, nemesis=["partition"])
    assert 'class="banner invalid"' in page
    assert "2 acknowledged updates were lost" in page
    lost = page[page.index("<h2>Lost updates</h2>") : page.index("<h2>Over time</h2>")]
    assert lost.count('class="tick"') == 2 and 'class="chart strip"' in lost
    assert '<td>s</td><td>3</td><td>1</td><td class="num">0.260 s</td>' in lost
    cards = page[page.index('<div class="cards">') : page.index("<h2>")]
    assert "lost updates" in cards and "of 6 acknowledged" in cards


def test_double_executions_on_the_page() -> None:
    h = Hist()
    for p, t in ((0, 1000), (1, 1010), (0, 2000)):  # slot 1 runs twice
        h.add(t, p, "invoke", "exec", value={"slot": t // 1000, "period": 1000})
        h.add(t + 50, p, "ok", "exec", value={"slot": t // 1000, "period": 1000})
    page = _page(h, nemesis=[])
    assert 'class="banner invalid"' in page and "1 job slot ran more than once" in page
    jobs = page[page.index("<h2>Jobs run more than once</h2>") : page.index("<h2>Over time</h2>")]
    assert "<td>1</td><td>client 0 1.000 s → 1.050 s; client 1 1.010 s → 1.060 s</td>" in jobs
    assert "double executions" in page[page.index('<div class="cards">') :]


def test_release_by_a_non_owner_is_told() -> None:
    h = Hist()
    h.hold(0, "k", 100, 900, 1)
    h.add(400, 5, "invoke", "release", key="k")
    h.add(401, 5, "ok", "release", key="k")
    page = _page(h, nemesis=[])
    told = _told(page)
    assert told == [
        "Client 5 released lock k at 0.40 s although it did not hold it; the latest holder "
        "was client 0, which acquired at 0.10 s (fence 1)."
    ]
    assert "a client released a lock it did not hold 1 time" in page


def test_a_partition_in_force_is_part_of_the_story() -> None:
    h = Hist()
    h.hold(0, "k", 100, 1500, 1, release="fail")
    h.fault("partition", 50, 2000, {"topology": "halves", "reach": [["n1", "c0"], ["n2", "c1"]]})
    h.hold(1, "k", 1200, 1300, 2)
    page = _page(h, ttl_ms=1000)
    (told,) = _told(page)
    assert told == (
        "Client 0 acquired lock k at 0.10 s (fence 1); a fault was in force: partition halves: "
        "{n1, c0} | {n2, c1} (healed after 1.9 s); client 0's 1000 ms lease expired by 1.10 s; "
        "client 1 acquired at 1.20 s (fence 2); client 0 sent its release at 1.50 s; it failed "
        "at 1.50 s (not owner). Client 1's acquire returned before client 0 sent its release "
        "(at 1.50 s): two clients acted as holder at once."
    )


def test_faults_in_words() -> None:
    from reports.faults import periods

    h = Hist()
    h.add(10, "nemesis", "invoke", "start-kill")
    h.add(11, "nemesis", "info", "start-kill", value={"node": "n3", "pid": 9, "signal": "SIGKILL"})
    h.add(2011, "nemesis", "invoke", "stop-kill")
    stop = {"node": "n3", "restarted": True, "wiped": False, "ready": True}
    h.add(2012, "nemesis", "info", "stop-kill", value=stop)
    h.add(3000, "nemesis", "invoke", "start-partition")
    h.add(3001, "nemesis", "info", "start-partition", error="RuntimeError: boom")
    h.add(3500, "nemesis", "invoke", "stop-partition")
    h.add(3501, "nemesis", "info", "stop-partition")
    lat = {"toxic": "latency", "attributes": {"latency": 100, "jitter": 50}, "nodes": ["n1"]}
    h.add(4000, "nemesis", "invoke", "start-latency")
    h.add(4001, "nemesis", "info", "start-latency", value=lat)
    h.add(4500, "nemesis", "invoke", "stop-latency")
    h.add(4501, "nemesis", "info", "stop-latency", value={"healed": True})
    h.add(5000, "nemesis", "invoke", "start-client-pause")
    h.add(5001, "nemesis", "info", "start-client-pause", value={"injected": False, "why": "idle"})
    ps = periods(read_ops(h))
    MS = 10**6  # Hist times are ms
    # in force once its start returned (a client-pause may search seconds for a holder first)
    assert [(p.start, p.in_force) for p in ps[:2]] == [(10 * MS, 11 * MS), (3000 * MS, 3001 * MS)]
    assert [p.text() for p in ps] == [
        "kill n3 (restarted after 2.0 s, data kept)",
        "partition: the injection failed (RuntimeError: boom)",
        "add 100 ± 50 ms latency on client links to n1 for 0.5 s",
        "client-pause: nothing injected (idle)",
    ]
    page = _page(h, nemesis=["kill"])
    faults = page[page.index("<h2>Faults</h2>") :]
    assert "kill n3 (restarted after 2.0 s, data kept)" in faults
    assert '<tr class="failed"><td>partition</td>' in faults
    # a failed or empty injection is listed but not shaded as a fault in force
    assert page.count("<title>partition: the injection failed") == 0


def test_a_stale_set_add_is_told_with_its_element() -> None:
    """The lock-set workload writes by adding an element: the story names it and the fence."""
    h = Hist()
    h.add(100, 0, "invoke", "acquire", key="k")
    h.add(102, 0, "ok", "acquire", key="k", value=1)
    h.hold(1, "k", 600, 700, 2)  # the lease of process 0 ran out: process 1 took the lock
    h.add(900, 0, "invoke", "add", key="k", value=7)
    h.add(901, 0, "ok", "add", key="k", value=7)
    h.add(902, 0, "invoke", "release", key="k")
    h.add(903, 0, "fail", "release", key="k", error="not owner")
    (told,) = _told(_page(h, nemesis=[], ttl_ms=400))
    assert (
        "client 0 still believed it held the lock and added element 7 with fence 1 at 0.90 s: "
        "the store accepted the stale write"
    ) in told


def test_a_violation_without_its_history_is_still_told_and_drawn() -> None:
    """results.json from another tool, no history: the story and zoom come from the holds."""
    first = {"process": 1, "key": "k", "start": 10**9, "end": 2 * 10**9, "fence": 3}
    second = {"process": 2, "key": "k", "start": 15 * 10**8, "end": 3 * 10**9, "fence": 4}
    v = {"kind": "overlap", "key": "k", "first": first, "second": second}
    mutex = {"valid": False, "violations": [v], "violation_count": 1}
    page = render_html({}, {"valid": False, "summary": "x", "checkers": {"mutex": mutex}}, [])
    assert _told(page) == [
        "Client 1 acquired lock k at 1.00 s (fence 3); client 2 acquired at 1.50 s (fence 4)."
    ]
    assert page.count('class="zhold bad"') == 2


def test_the_ttl_among_the_workload_options_gives_the_lease_expiry() -> None:
    """config.json keeps a workload's own options (the mutex's ttl_ms) under workload_opts."""
    h = Hist()
    h.hold(0, "k", 100, 1500, 1, release="fail")
    h.hold(1, "k", 1200, 1300, 2)
    ops = read_ops(h)
    config = _config(nemesis=[], workload_opts={"ttl_ms": 1000, "hold_ms": 7})
    del config["ttl_ms"]
    page = render_html(config, _results(ops), ops)
    assert "client 0's 1000 ms lease expired by 1.10 s" in _told(page)[0]
    assert "1000 ms TTL · 7 ms hold" in page


def test_a_bridge_partition_in_words() -> None:
    from reports.faults import Period

    reach = [["c0", "n1", "n2", "n3"], ["c1", "n3", "n4", "n5"], ["c0", "c1"] + NODES]
    p = Period("partition", 0, 3 * 10**9, {"topology": "bridge", "reach": reach}, {"healed": True})
    assert p.text() == (
        "partition bridge: {n1, n2, n3, c0} | {n3, n4, n5, c1} (n3 on every side; "
        "healed after 3.0 s)"
    )


NODES = ["n1", "n2", "n3", "n4", "n5"]


def test_markdown_cells_carry_the_damage_their_workload_measures() -> None:
    from reports.comparison import damage_text

    def dmg(total: int | None, runs: int) -> dict:
        return {"total": total, "runs": runs}

    lockset = {"damage": {"lost_updates": dmg(17, 5), "stale_writes_accepted": dmg(0, 5),
                          "double_executions": dmg(None, 0)}}  # fmt: skip
    assert damage_text(lockset) == " · lost 17 · stale 0"  # a zero stays: measured, none lost
    jobs = {"damage": {"double_executions": dmg(10, 5), "lost_updates": dmg(None, 0)}}
    assert damage_text(jobs) == " · twice 10"
    assert damage_text({}) == ""  # nothing measured: nothing claimed
    released = {"invalid": 4, "acted_at_once": {"runs": 0, "of": 5, "total": 0}} | lockset
    assert damage_text(released) == " · at once 0/5 · lost 17 · stale 0"
    valid = {"invalid": 0, "acted_at_once": {"runs": 0, "of": 5, "total": 0}}
    assert damage_text(valid) == ""  # a valid cell has nothing to split
