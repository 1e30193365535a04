"""Say only what is true (issue 16): run directories written by hand, judged by the real
``harness check``, read back from report.html, the terminal and the JUnit XML.

- a lock with no TTL (PostgreSQL's session and transaction locks) is never said to have a lease
  or a TTL, whatever ``--ttl`` the workload was given, in runs that record ``lock`` and in runs
  stored before it;
- a lapse is explained in plain words, with its times, and the run stays VALID;
- an early grant is called one, and not "two clients acted as holder at once"; a holder that
  woke past its lease and acted beside the next one is;
- a release is told as sent when it was sent, and as failed when its failure came back;
- the model that judged the run is named beside the verdict.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from harness.exports.junit import write_junit

from .conftest import harness
from .test_report import Hist

LEASE_WORDS = re.compile(r"\blease|\bTTL\b|\blaps", re.I)  # "release" is no lease word
NO_TTL = {"fenced": True, "model": "lease", "expiry": "none", "ttl_ms": None}
TTL_3000 = {"fenced": True, "model": "lease", "expiry": "ttl", "ttl_ms": 3000.0}


def _config(backend: str, nemesis: str, lock: dict[str, Any] | None, **opts: Any) -> dict:
    cfg: dict[str, Any] = {
        "backend": backend,
        "workload": "mutex",
        "workload_opts": {"ttl_ms": 2000, "hold_ms": 50, **opts},
        "nemesis": [nemesis],
        "nemesis_interval": 2,
        "concurrency": 2,
        "keys": 1,
        "time_limit": 7,
        "seed": 1,
        "backend_opts": {},
        "started_at": "2024-05-01T12:00:00+00:00",
        "duration_s": 7.0,
    }
    if lock is not None:
        cfg["lock"] = lock
    return cfg


def _kill(h: Hist, t0: float, t1: float, wiped: bool = False) -> None:
    h.add(t0, "nemesis", "invoke", "start-kill")
    h.add(t0 + 1, "nemesis", "info", "start-kill", value={"node": "n1", "signal": "SIGKILL"})
    h.add(t1, "nemesis", "invoke", "stop-kill")
    stop = {"node": "n1", "restarted": True, "wiped": wiped, "ready": True}
    h.add(t1 + 1, "nemesis", "info", "stop-kill", value=stop)


def _refused_release(h: Hist, p: int, t_sent: float, t_failed: float, error: str) -> None:
    """A holder that stops at ``t_sent``; its release comes back refused only at ``t_failed``."""
    h.add(t_sent, p, "invoke", "release", key="k")
    h.add(t_failed, p, "fail", "release", key="k", error=error)


def _acquire(h: Hist, p: int, t: float, fence: int) -> None:
    h.add(t, p, "invoke", "acquire", key="k")
    h.add(t + 2, p, "ok", "acquire", key="k", value=fence)


def _write_dir(d: Path, h: Hist, config: dict[str, Any]) -> Path:
    d.mkdir(parents=True)
    (d / "history.jsonl").write_text("".join(json.dumps(o) + "\n" for o in h.sorted_ops()))
    (d / "config.json").write_text(json.dumps(config))
    return d


class Judged:
    """A run directory after ``harness check``: its exit code, terminal text, page, results."""

    def __init__(self, d: Path) -> None:
        got = harness("check", str(d), env={"COLUMNS": "400"})
        assert got.returncode in (0, 1), got.stdout + got.stderr
        self.code = got.returncode
        self.terminal = got.stdout
        self.results = json.loads((d / "results.json").read_text())
        self.config = json.loads((d / "config.json").read_text())
        self.page = (d / "report.html").read_text()
        junit = write_junit(d / "junit.xml", self.config, self.results)
        cases = ET.parse(junit).getroot().findall("testcase")
        verdict = next(c for c in cases if c.get("name") == "verdict")
        self.junit = verdict.find("system-out").text or ""

    def visible(self, *, raw: bool = False) -> str:
        """The page's text as read; without the folds of raw fields (config, checkers) unless
        ``raw``."""
        page = self.page[self.page.index("<body>") :]
        page = re.sub(r"<script>.*?</script>|<title>.*?</title>", " ", page, flags=re.S)
        if not raw:
            page = re.sub(
                r'<details class="fold" id="(checkers|configuration)">.*?</details>',
                " ",
                page,
                flags=re.S,
            )
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())

    def meaning(self) -> str:
        m = re.search(r'<div class="meaning">(.*?)</div>', self.page, re.S)
        assert m, "no verdict sentence"
        return html.unescape(m.group(1))

    def model_line(self) -> str:
        m = re.search(r'<div class="model" id="model">(.*?)</div>', self.page, re.S)
        assert m, "no model line beside the verdict"
        return html.unescape(m.group(1))

    def told(self) -> list[str]:
        return [
            " ".join(html.unescape(re.sub(r"<[^>]+>", "", t)).split())
            for t in re.findall(r'<p class="told">(.*?)</p>', self.page, re.S)
        ]


def _postgres_early_grant(d: Path, backend: str, lock: dict[str, Any] | None) -> Judged:
    """Client 0 holds PostgreSQL's session lock; the server is killed, its release is refused
    when the connection breaks; the restarted server grants the lock to client 1."""
    h = Hist()
    h.hold(1, "k", 300, 400, 1)
    _acquire(h, 0, 1000, 2)
    _kill(h, 1020, 1300)
    _refused_release(h, 0, 1050, 1310, "server closed the connection unexpectedly")
    _acquire(h, 1, 1400, 3)
    h.add(1500, 1, "invoke", "release", key="k")
    h.add(1501, 1, "ok", "release", key="k")
    return Judged(_write_dir(d, h, _config(backend, "kill", lock)))


@pytest.mark.parametrize(
    ("backend", "lock"),
    [("postgres", NO_TTL), ("postgres-xact", NO_TTL), ("postgres-xact", None)],
    ids=["postgres", "postgres-xact", "postgres-xact-stored-before-lock"],
)
def test_a_lock_without_ttl_is_never_said_to_have_a_lease(
    tmp_path: Path, backend: str, lock: dict[str, Any] | None
) -> None:
    """--ttl 2000 given to a lock that has no TTL: no "2000 ms lease", no "TTL" anywhere the
    lock is spoken of (the subtitle, the story, the zoom, the headline, the terminal, JUnit);
    only the model's own name says "lease"."""
    run = _postgres_early_grant(tmp_path / "run", backend, lock)
    assert run.code == 1 and run.results["valid"] is False
    mutex = run.results["checkers"]["mutex"]
    assert mutex["violation_kinds"] == {"early-grant": 1}, mutex["summary"]
    assert run.model_line().startswith("lease model: this lock's grants never run out")
    assert "nothing can lapse" in run.model_line()
    text = run.visible().replace(run.model_line(), " ")
    assert not LEASE_WORDS.search(text), LEASE_WORDS.findall(text)
    assert "2000" not in text  # the workload's --ttl: only in the configuration fold
    assert "2000" in run.visible(raw=True)
    assert "lease expired" not in run.page  # no dashed expiry line in the zoom either
    (told,) = run.told()
    assert "this lock's grants never run out on their own" in told
    # the model line is the one place that names the lease model, and says nothing can lapse
    line = f"model    {run.model_line()}"
    assert line in run.terminal, run.terminal
    terminal = run.terminal.replace(line, "")
    assert "early-grant" in terminal and not LEASE_WORDS.search(terminal), run.terminal
    line = f"model: {run.model_line()}"
    assert line in run.junit, run.junit
    junit = run.junit.replace(line, "")
    assert "early-grant" in junit and not LEASE_WORDS.search(junit), run.junit


def test_an_early_grant_is_named_and_not_called_two_holders(tmp_path: Path) -> None:
    """Redis restarted with its data wiped forgets client 0's grant: client 1 gets the lock
    0.5 s later, long before the 3000 ms lease could run out. Nobody acted at once."""
    h = Hist()
    _acquire(h, 0, 1000, 1)
    _kill(h, 1020, 1300, wiped=True)
    _refused_release(h, 0, 1050, 1051, "ConnectionError: connection refused")
    _acquire(h, 1, 1500, 1)  # the counter went with the data
    h.add(1600, 1, "invoke", "release", key="k")
    h.add(1601, 1, "ok", "release", key="k")
    cfg = _config("redis", "kill", TTL_3000, ttl_ms=3000)
    run = Judged(_write_dir(tmp_path / "run", h, cfg))
    assert run.code == 1
    assert run.results["checkers"]["mutex"]["violation_kinds"] == {"early-grant": 1}
    meaning = run.meaning()
    assert meaning.startswith("This lock is unsafe under kill: the lock gave a grant away early")
    assert "could not yet have expired: a server that forgot it, a clock jump, a failover" in (
        meaning
    )
    assert "acted as holder at once" not in meaning and "held the same lock" not in meaning
    (told,) = run.told()
    assert told.endswith(
        "Client 0 had stopped acting at 1.05 s, but its 3000 ms lease could not run out before "
        "4.00 s (its acquire was sent at 1.00 s): the lock gave the grant away early, to client "
        "1 (a server that forgot it, a clock jump, a failover)."
    ), told
    assert "lease expired" not in told
    # its kind explained beside its counterexample
    ce = run.page[run.page.index('id="counterexamples"') :]
    assert "its grant could not yet have expired" in html.unescape(ce)
    assert run.model_line() == (
        "lease model: a grant may lapse 3000 ms after its acquire, when its holder has stopped"
    )


def test_a_holder_that_woke_past_its_lease_acted_at_once(tmp_path: Path) -> None:
    """client-pause freezes client 0 past its 3000 ms lease; client 1 acquires; client 0 wakes,
    writes and only then sends its release: two clients acted as holder at once."""
    h = Hist()
    _acquire(h, 0, 1000, 1)
    h.add(1100, "nemesis", "invoke", "start-client-pause")
    h.add(1101, "nemesis", "info", "start-client-pause", value={"process": 0, "key": "k"})
    _acquire(h, 1, 4500, 2)
    h.add(4510, 1, "invoke", "write", key="k", value=2)
    h.add(4511, 1, "ok", "write", key="k", value=2)
    h.add(4600, "nemesis", "invoke", "stop-client-pause")
    h.add(4601, "nemesis", "info", "stop-client-pause", value={"process": 0})
    h.add(4610, 0, "invoke", "write", key="k", value=1)
    h.add(4611, 0, "ok", "write", key="k", value=1)
    _refused_release(h, 0, 4620, 4621, "not owner")
    h.add(4700, 1, "invoke", "release", key="k")
    h.add(4701, 1, "ok", "release", key="k")
    cfg = _config("redis", "client-pause", TTL_3000, ttl_ms=3000)
    run = Judged(_write_dir(tmp_path / "run", h, cfg))
    assert run.code == 1
    mutex = run.results["checkers"]["mutex"]
    assert mutex["violation_kinds"] == {"revoked-while-held": 1}
    assert mutex["violations"][0]["while_acting"] is True
    assert "two clients acted as holder at once 1 time" in run.meaning()
    assert "gave a grant away early" not in run.meaning()
    (told,) = run.told()
    assert "client 0's 3000 ms lease expired by 4.00 s" in told  # the lock has a TTL
    assert told.endswith(
        "Client 1's acquire returned before client 0 sent its release (at 4.62 s): two clients "
        "acted as holder at once."
    ), told


def test_a_lapse_is_explained_and_the_run_stays_valid(tmp_path: Path) -> None:
    """postgres-lease killed for less than its TTL (the issue's run): client 0's release is
    refused while the server is down, its lease runs out, client 1 acquires after it."""
    h = Hist()
    h.hold(1, "k", 500, 550, 1)
    _acquire(h, 0, 2000, 2)
    _kill(h, 2010, 2310)
    _refused_release(h, 0, 2050, 2060, "connection refused")
    _acquire(h, 1, 5062, 3)
    h.add(5100, 1, "invoke", "release", key="k")
    h.add(5101, 1, "ok", "release", key="k")
    cfg = _config("postgres-lease", "kill", TTL_3000, ttl_ms=3000)
    run = Judged(_write_dir(tmp_path / "run", h, cfg))
    assert run.code == 0 and run.results["valid"] is True, run.terminal
    assert run.results["checkers"]["mutex"]["lapse_count"] == 1
    explained = (
        "1 lease lapsed: the holder had stopped, its release was refused, and the lease ran "
        "out before the next client got the lock: the lease did its job; not a violation."
    )
    text = run.visible()
    assert f"Leases that lapsed {explained}" in text
    assert (
        "Client 0 acquired lock k at 2.002 s; it stopped acting at 2.050 s, when it sent its "
        "release; the release was refused at 2.060 s (connection refused); its 3000 ms lease "
        "could run out from 5.000 s on (its acquire was sent at 2.000 s); client 1 acquired "
        "the lock at 5.064 s."
    ) in text
    assert "1 lease lapsed after its holder had stopped: the lease doing its job" in run.meaning()
    assert "leases lapsed 1 not violations" in text.lower()
    assert "What went wrong" not in text
    # the terminal's verdict block and the JUnit verdict say it too, in the same words
    terminal = " ".join(run.terminal.split())
    assert f"lapses {explained}" in terminal, run.terminal
    assert "model lease model: a grant may lapse 3000 ms after its acquire" in terminal
    assert f"lapses: {explained}" in run.junit


def test_the_strict_model_is_named_and_a_release_fails_when_it_came_back(
    tmp_path: Path,
) -> None:
    """The same PostgreSQL run judged under --model strict: the model line says so; the release
    sent at 1.05 s is told as failed at 1.31 s, when its failure came back."""
    d = tmp_path / "run"
    _postgres_early_grant(d, "postgres", NO_TTL)  # judged under its own model first
    got = harness("check", "--model", "strict", str(d), env={"COLUMNS": "400"})
    assert got.returncode == 1, got.stdout + got.stderr
    assert "model strict model: a grant lasts until a release takes effect" in " ".join(
        got.stdout.split()
    )
    page = (d / "report.html").read_text()
    assert '<div class="model" id="model">strict model: a grant lasts until a release takes ' in (
        page
    )
    ops = [json.loads(x) for x in (d / "history.jsonl").read_text().splitlines()]
    sent = next(o for o in ops if o["f"] == "release" and o["process"] == 0)
    done = next(o for o in ops if o["f"] == "release" and o["process"] == 0 and o is not sent)
    assert (sent["time"], done["time"]) == (1_050_000_000, 1_310_000_000)
    told = " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())
    m = re.search(
        r"client 0 sent its release at ([\d.]+) s; it failed at ([\d.]+) s \(server", told
    )
    assert m, told
    # told to the ms: sent at its invocation, failed at its completion
    assert float(m.group(1)) == pytest.approx(sent["time"] / 1e9, abs=5e-4)
    assert float(m.group(2)) == pytest.approx(done["time"] / 1e9, abs=5e-4)
    assert "no two clients acted at once, yet the lock was taken from its holder" in told
    assert "acted as holder at once" not in page[: page.index("What went wrong")]


def test_a_comparison_cell_says_its_lapses_are_no_violations() -> None:
    from reports.comparison import cell_lines

    lines = cell_lines({"lapses": 3, "invalid": 0})
    assert (
        "3 leases lapsed (the holder had stopped, its release was refused, the lease ran out "
        "before the next grant): not violations"
    ) in lines
    assert not any("lapse" in x for x in cell_lines({"lapses": 0}))
