"""Campaigns without servers: the spec (TOML and flags), derived seeds, shards, the recorded
command of a run, the Wilson interval, availability inside fault windows, the committed
published-comparison spec, and not-applicable cells decided before anything is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkers.history import Op
from harness.campaign import plan as cplan
from harness.campaign import spec as cspec
from harness.campaign.stats import cell_figures, wilson

from .conftest import ROOT, harness

SPEC = """
title = "t"
seed = 7
repeat = 3
backends = ["redis", {name = "zookeeper", opts = {ignore_connection_state = true}}]
workloads = [{name = "mutex", opts = {ttl_ms = 1000, hold_ms = 50}}]
nemeses = ["none", "kill+pause"]
[run]
time_limit = 4
nemesis_interval = 1
"""


def _campaign(text: str = SPEC, **flags) -> cspec.Campaign:
    import tomllib

    return cspec.build(tomllib.loads(text), flags, source="test")


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3
# (Wilson score without continuity correction), and the closed forms for 0/n and n/n.
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
    ],
)
def test_wilson_interval_matches_published_values(k, n, low, high):
    got = wilson(k, n)
    assert got is not None
    assert got[0] == pytest.approx(low, abs=5e-5) and got[1] == pytest.approx(high, abs=5e-5)


def test_wilson_of_nothing_and_of_nonsense():
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(3, 2)


def _run(verdict: str, ttfv=None, injected=1, kinds=None, lost=None):
    return {
        "verdict": verdict,
        "time_to_first_violation_s": ttfv,
        "violation_kinds": kinds or {},
        "damage": {"lost_updates": lost, "double_executions": None, "stale_writes_accepted": 0},
        "faults_injected": injected,
        "faults_never_fired": injected == 0,
        "availability": {},
    }


def test_acted_at_once_splits_the_mutex_violations_by_what_the_holders_did():
    from harness.campaign.stats import acted_at_once

    def mutex(kinds: dict, acting: int) -> dict:
        return {"checkers": {"mutex": {"violation_kinds": kinds, "revoked_while_acting": acting}}}

    # a lock taken after its holder stopped, before the release took effect: nobody acted twice
    assert acted_at_once(mutex({"revoked-while-held": 3}, 0)) == 0
    assert acted_at_once(mutex({"revoked-while-held": 3, "overlap": 2}, 1)) == 3
    assert acted_at_once(mutex({}, 0)) == 0  # a valid run
    runs = [_run("invalid") | {"acted_at_once": n} for n in (0, 2, 0)] + [
        _run("valid") | {"acted_at_once": 0},
        _run("unknown") | {"acted_at_once": None},  # not measured: not counted either way
    ]
    assert cell_figures(runs, faulted=True)["acted_at_once"] == {"runs": 1, "of": 4, "total": 2}
    assert cell_figures([_run("valid")], faulted=True)["acted_at_once"] is None


def test_cell_figures_count_unknown_apart_and_flag_faults_that_never_fired():
    runs = [
        _run("invalid", 2.0, kinds={"overlap": 2}, lost=3),
        _run("invalid", 4.0, kinds={"overlap": 1}, lost=1),
        _run("invalid", 9.0, lost=0),
        _run("valid", lost=0),
        _run("unknown", lost=0),
    ]
    f = cell_figures(runs, faulted=True)
    assert (f["runs"], f["invalid"], f["valid"], f["unknown"], f["decided"]) == (5, 3, 1, 1, 4)
    assert f["rate"] == 0.75
    low, high = wilson(3, 4)
    assert (f["rate_low"], f["rate_high"]) == (round(low, 6), round(high, 6))
    assert f["time_to_first_violation_s"] == 4.0  # the median over the invalid runs
    assert f["violation_kinds"] == {"overlap": 3}
    assert f["damage"]["lost_updates"]["mean"] == 0.8 and f["damage"]["lost_updates"]["max"] == 3
    assert f["verdict"] == "invalid"
    quiet = cell_figures([_run("unknown", injected=0), _run("unknown", injected=0)], faulted=True)
    assert quiet["flags"] == ["faults never fired"] and quiet["verdict"] == "unknown"
    assert quiet["rate"] is None and quiet["rate_low"] is None


def test_spec_cells_keys_and_flags_that_replace_the_spec():
    c = _campaign()
    cells = c.cells()
    assert [x.key for x in cells] == [
        "redis / mutex[hold_ms=50,ttl_ms=1000] / none",
        "redis / mutex[hold_ms=50,ttl_ms=1000] / kill+pause",
        "zookeeper[ignore_connection_state=true] / mutex[hold_ms=50,ttl_ms=1000] / none",
        "zookeeper[ignore_connection_state=true] / mutex[hold_ms=50,ttl_ms=1000] / kill+pause",
    ]
    assert cells[1].nemesis.nemeses == ["kill", "pause"]
    assert c.run["time_limit"] == 4.0 and c.run["concurrency"] == 5  # spec, then default
    over = _campaign(backends="etcd", repeat=2, time_limit=6.0, seed=9)
    assert [b.key for b in over.backends] == ["etcd"] and over.repeat == 2
    assert over.run["time_limit"] == 6.0 and over.campaign_seed == 9
    assert over.fingerprint != c.fingerprint
    # Option order never changes a cell's identity.
    a = cspec.item({"name": "x", "opts": {"b": 1, "a": True}}, "backends")
    b = cspec.item({"name": "x", "opts": {"a": True, "b": 1}}, "backends")
    assert a.key == b.key == "x[a=true,b=1]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backends = ['redis']\nrepeats = 2", "unknown key repeats"),
        ("backends = ['redis']\nrepeat = 0", "repeat must be"),
        ("backends = []", "non-empty list"),
        ("backends = ['redis', 'redis']", "listed twice"),
        ("backends = [{name = 'redis', opt = {}}]", "unknown key opt"),
        ("backends = ['redis']\n[run]\nttl_ms = 5", "workload options such as ttl_ms"),
        ("backends = ['redis']\n[run]\nconcurrency = 'x'", "concurrency must be int"),
        ("nemeses = ['none']", "nothing to compare"),
    ],
)
def test_bad_specs_say_what_is_accepted(tmp_path, text, message):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(cspec.SpecError, match=message):
        cspec.build(cspec.load(f), {})


def test_bad_spec_file_is_one_line_and_exit_2(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("backends = [")
    p = harness("compare", "--spec", str(f), "--store", str(tmp_path / "s"))
    assert p.returncode == 2 and "not valid TOML" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = harness("compare", "--spec", str(tmp_path / "nope.toml"))
    assert p.returncode == 2 and "no such file" in p.stderr
    p = harness("compare", "--backends", "redis", "--shard", "3/3", "--store", str(tmp_path / "s"))
    assert p.returncode == 2 and "--shard takes I/N" in p.stderr
    assert not (tmp_path / "s").exists()


def test_repetitions_get_distinct_seeds_derived_from_the_campaign_seed():
    c = _campaign()
    runs = cplan.plan(c)
    assert len(runs) == 4 * 3
    assert len({r.seed for r in runs}) == len(runs)  # distinct
    assert len({r.id for r in runs}) == len(runs)
    assert [r.seed for r in cplan.plan(_campaign())] == [r.seed for r in runs]  # deterministic
    r = runs[4]
    assert r.seed == cplan.derive_seed(7, r.cell.key, r.repetition)
    # A run's seed depends on the campaign seed, its cell and repetition only: adding a cell
    # or more repetitions leaves every other run's seed alone.
    bigger = cplan.plan(_campaign(SPEC.replace('"none",', '"none", "clock",'), repeat=5))
    by_id = {(x.cell.key, x.repetition): x.seed for x in bigger}
    assert all(by_id[(x.cell.key, x.repetition)] == x.seed for x in runs)
    other = cplan.plan(_campaign(seed=8))
    assert not {x.seed for x in other} & {x.seed for x in runs}
    # No seed given: one derived from the campaign itself, so the same command resumes.
    unseeded = _campaign(SPEC.replace("seed = 7\n", ""))
    assert (
        unseeded.seed is None
        and unseeded.campaign_seed == _campaign(SPEC.replace("seed = 7\n", "")).campaign_seed
    )


def test_shards_partition_the_campaign_deterministically():
    runs = cplan.plan(_campaign())
    parts = [cplan.shard(runs, i, 3) for i in range(3)]
    ids = [r.id for p in parts for r in p]
    assert sorted(ids) == sorted(r.id for r in runs) and len(set(ids)) == len(ids)
    assert all(abs(len(p) - len(runs) / 3) < 1 for p in parts)
    assert cplan.parse_shard("1/3") == (1, 3)
    assert cplan.parse_shard("env/3", {"JOB_COMPLETION_INDEX": "2"}) == (2, 3)
    assert cplan.parse_shard("env/4", {"HARNESS_SHARD_INDEX": "0"}) == (0, 4)
    assert cplan.parse_shard(None) == (0, 1)
    for bad in ("3/3", "-1/3", "1", "a/b", "env/3"):
        with pytest.raises(cspec.SpecError):
            cplan.parse_shard(bad, {})


def test_the_recorded_command_of_a_run_rebuilds_its_configuration(tmp_path):
    """Re-running one run alone: its command, parsed by `harness run`, is the same run."""
    from harness.cli import main

    c = _campaign()
    for r in cplan.plan(c)[:6]:
        cfg = cplan.run_config(r.cell, c.run, r.seed, r.store(tmp_path))
        argv = cplan.run_argv(cfg)
        assert cplan.shown_command(argv).startswith("harness run --backend ")
        ctx = main.commands["run"].make_context("run", argv[1:])
        p = ctx.params
        assert p["backend"] == cfg.backend and p["seed"] == r.seed
        assert p["store_dir"] == str(r.store(tmp_path))
        assert p["time_limit"] == 4.0 and p["nemesis_interval"] == 1.0
        assert p["nemesis"].split(",") == (cfg.nemesis or ["none"])
        assert dict(x.split("=", 1) for x in p["opts"]) == cfg.backend_opts
        for name, value in r.cell.workload.opts:  # ttl_ms, hold_ms: the workload's options
            given = p.get(name)
            if given is None:  # workload options passed as --workload-opt NAME=VALUE
                given = dict(x.split("=", 1) for x in p["wopts"])[name]
            assert str(given) == str(value)


def test_published_spec_covers_every_backend_variant_fault_and_workload():
    path = ROOT / "docs" / "comparison" / "campaign.toml"
    c = cspec.build(cspec.load(path), {}, source=str(path))
    from backends.registry import names

    # `process` is the generic adapter backend: it needs a command, its node-* entry points stand
    # for it in the spec.
    assert set(names()) - {"process"} <= {b.name for b in c.backends}, "add the new backend"
    keys = {b.key for b in c.backends}
    assert {"zookeeper", "zookeeper[ignore_connection_state=true]"} <= keys
    assert {"redlock", "redlock[delayed_restart=true]"} <= keys
    assert {
        "postgres-lease[failover=true]",
        "postgres-lease[failover=true,synchronous=true]",
    } <= keys
    assert [n.name for n in c.nemeses] == [
        "none",
        "partition",
        "kill",
        "pause",
        "client-pause",
        "clock",
    ]
    assert {w.name for w in c.workloads} == {"mutex", "lock-set"}
    assert c.repeat == 5 and c.run["time_limit"] == 10 and c.seed is not None
    readme = (ROOT / "README.md").read_text()
    assert "harness compare --spec docs/comparison/campaign.toml" in readme


def test_not_applicable_cells_are_decided_before_anything_runs(tmp_path):
    store = tmp_path / "s"
    p = harness("compare", "--backends", "etcd", "--nemeses", "clock", "--repeat", "3",
                "--store", str(store), "--junit-xml", str(tmp_path / "j.xml"))  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stdout + p.stderr
    manifest = json.loads((store / "campaign.json").read_text())
    assert manifest["cells"][0]["status"] == "not applicable"
    assert manifest["runs"] == []  # no run of that cell was planned
    assert not (store / "runs").exists()
    cell = json.loads((store / "comparison.json").read_text())["cells"][0]
    assert "cannot move etcd" in cell["not_applicable"] and cell["runs"] == 0
    assert cell["rate_low"] is None and cell["rate_high"] is None
    assert "<skipped" in (tmp_path / "j.xml").read_text()


def _op(i, t_ms, p, type_, f, value=None, error=None):
    return Op(i, int(t_ms * 1e6), p, type_, f, None, value, error)


def test_availability_inside_and_outside_fault_windows():
    from checkers.availability import measure, windows

    ops = [
        _op(0, 0, 0, "invoke", "acquire"),
        _op(1, 10, 0, "ok", "acquire"),  # outside, 10 ms
        _op(2, 100, "nemesis", "invoke", "start-kill"),
        _op(3, 101, "nemesis", "ok", "start-kill", {"node": "n1"}),
        _op(4, 150, 1, "invoke", "acquire"),
        _op(5, 450, 1, "ok", "acquire"),  # inside, 300 ms
        _op(6, 200, 2, "invoke", "acquire"),
        _op(7, 260, 2, "fail", "acquire"),  # inside, failed
        _op(8, 300, "nemesis", "invoke", "start-pause"),
        _op(9, 301, "nemesis", "fail", "start-pause", error="no such node"),  # never in force
        _op(10, 500, "nemesis", "invoke", "stop-kill"),
        _op(11, 600, "nemesis", "ok", "stop-kill", {"ready": True}),
        _op(12, 700, 0, "invoke", "acquire"),
        _op(13, 702, 0, "ok", "acquire"),  # outside, 2 ms
        _op(14, 1100, 0, "invoke", "release"),
        _op(15, 1100, 0, "ok", "release"),
    ]
    assert windows(ops) == [(100_000_000, 600_000_000)]
    m = measure(ops)
    assert m["windows"] == 1
    assert (m["inside"]["attempts"], m["inside"]["ok"], m["inside"]["success_ratio"]) == (2, 1, 0.5)
    assert (m["outside"]["attempts"], m["outside"]["ok"]) == (2, 2)
    assert m["inside"]["seconds"] == 0.5 and m["outside"]["seconds"] == 0.6
    assert m["inside"]["ok_per_s"] == 2.0
    assert m["inside"]["latency_ms"]["p50"] == 300.0 and m["outside"]["latency_ms"]["p99"] == 10.0
    unhealed = measure(ops[:10])  # a fault never healed lasts to the end of the history
    assert unhealed["inside"]["seconds"] == pytest.approx(0.35, abs=1e-3)  # to op 5, at 450 ms


def test_only_a_finished_attempt_counts_on_resume(tmp_path):
    """Resume identity: a run's own store; finished = results.json and not interrupted or
    failed. A crashed attempt (no results.json) or an interrupted one is run again."""
    from harness.campaign.execute import finished_run

    rs = tmp_path / "runs" / "cell" / "r0-s1"

    def attempt(stamp: str, config: dict, results: bool) -> Path:
        d = rs / "redis-mutex-none" / stamp
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(config))
        if results:
            (d / "results.json").write_text(json.dumps({"valid": True}))
        return d

    assert finished_run(rs) is None
    attempt("20260101T000001.000000", {"interrupted": True}, True)  # Ctrl-C
    attempt("20260101T000002.000000", {}, False)  # SIGKILLed: no results.json
    attempt("20260101T000003.000000", {"failed": "server did not start"}, False)
    assert finished_run(rs) is None
    done = attempt("20260101T000004.000000", {"interrupted": False}, True)
    assert finished_run(rs) == done
    attempt("20260101T000005.000000", {}, False)  # a later crashed attempt changes nothing
    assert finished_run(rs) == done


def test_a_run_is_only_reused_by_a_campaign_with_the_same_settings(tmp_path):
    a = cplan.plan(_campaign())
    b = cplan.plan(_campaign(time_limit=9.0))
    assert [r.seed for r in a] == [r.seed for r in b]  # same seed, cells and repetitions
    assert not {r.id for r in a} & {r.id for r in b}  # but other runs: other stores
    assert {r.store(tmp_path) for r in a}.isdisjoint(r.store(tmp_path) for r in b)


def test_violation_kinds_and_first_violation_from_every_checker():
    from harness.campaign.stats import acted_at_once, damage, first_violation_s, violation_kinds

    results = {
        "checkers": {
            "mutex": {
                "violation_kinds": {"overlap": 2},
                "violations": [{"first": {"start": 5e9}, "second": {"start": 7e9}}],
            },
            "fencing": {
                "enforced": False,
                "non_increasing": 1,
                "stale_accepted": 4,
                "non_increasing_examples": [{"hold": {"start": 3e9}}],
            },  # fmt: skip
            "set": {"lost_count": 3, "lost": [{"ok_time": 2.5e9}]},
            "jobs": {"double_executions": 1, "period_ms": 100, "double_slots": [{"slot": 12}]},
        }
    }
    assert violation_kinds(results) == {
        "overlap": 2,
        "fence-not-increasing": 1,
        "lost-update": 3,
        "double-execution": 1,
    }  # stale writes are damage, a violation only where fencing is enforced
    assert first_violation_s(results) == 1.2  # the jobs slot 12 x 100 ms
    assert damage(results) == {
        "lost_updates": 3,
        "lost_updates_by_store": None,  # results without blame (checkers.blame)
        "double_executions": 1,
        "double_executions_by_scheduler": None,
        "stale_writes_accepted": 4,
    }
    assert acted_at_once(results) is None  # no revoked_while_acting: cannot tell
    other = {"checkers": {"counter": {"valid": False}, "perf": {"valid": True}}}
    assert violation_kinds(other) == {"counter-invalid": 1}
    assert first_violation_s(other) is None


def test_ttl_and_hold_flags_go_to_the_workloads_that_take_them():
    takes = {("mutex", "ttl_ms"), ("mutex", "hold_ms"), ("jobs", "ttl_ms")}.__contains__
    c = cspec.build(
        {"backends": ["redis"], "workloads": ["mutex", "jobs"]},
        {"workload_opts": {"ttl_ms": 500, "hold_ms": 100}},
        takes=lambda w, o: (
            (w, o) in {("mutex", "ttl_ms"), ("mutex", "hold_ms"), ("jobs", "ttl_ms")}
        ),
    )
    assert [w.key for w in c.workloads] == ["mutex[hold_ms=100,ttl_ms=500]", "jobs[ttl_ms=500]"]
    with pytest.raises(
        cspec.SpecError, match="no workload of the campaign .jobs. takes option hold_ms"
    ):
        cspec.build(
            {"backends": ["redis"], "workloads": ["jobs"]},
            {"workload_opts": {"hold_ms": 100}},
            takes=lambda w, o: takes((w, o)),
        )


def test_a_cell_whose_fault_cannot_fire_is_not_applicable_and_the_others_run(tmp_path):
    """-t 5 with faults every 5 s: no kill would be injected. That cell is "not applicable",
    as --help says, and the none cell is still planned (the real run: test_cli_scripting)."""
    p = harness("compare", "--backends", "redis", "--nemeses", "none,kill", "-t", "5",
                "--repeat", "1", "--store", str(tmp_path / "s"), "--dry-run")  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert "redis / mutex / kill: not applicable: no fault would be injected" in p.stdout
    assert "redis / mutex / none: runnable" in p.stdout or "not available here" in p.stdout


def test_a_spec_sets_the_clients_backoff_and_its_runs_commands_carry_it(tmp_path):
    """[run] backoff, as --backoff takes it: each run's configuration and its recorded command
    have it (re-running one run alone is the same run); a bad one is refused in one line."""
    from harness.cli import main

    c = _campaign(SPEC + 'backoff = "20,500"\n')
    r = cplan.plan(c)[0]
    cfg = cplan.run_config(r.cell, c.run, r.seed, r.store(tmp_path))
    assert cfg.backoff_ms == (20, 500)
    argv = cplan.run_argv(cfg)
    assert argv[argv.index("--backoff") + 1] == "20,500"
    ctx = main.commands["run"].make_context("run", argv[1:])
    assert ctx.params["backoff"] == "20,500"
    plain = cplan.run_config(r.cell, _campaign().run, r.seed, r.store(tmp_path))
    assert "--backoff" not in cplan.run_argv(plain)  # the run's default: not written
    for bad in ('"fast"', '"5,1"', "10"):
        with pytest.raises(cspec.SpecError, match=r"\[run\]"):
            _campaign(SPEC + f"backoff = {bad}\n")
