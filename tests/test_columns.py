"""The history in columns (checkers.columns, checkers.colcheck) judges exactly as the objects do.

Property tests: generated lock histories (random outcomes, a simulated lock with leases,
renewals, writes with fences, info outcomes, faults) are written as history.jsonl and checked
both ways: the mutex, fencing and perf results and the availability figures must be equal, and
the verdict must be the brute-force oracle's (tests/test_checker_mutex_props.py). Histories the
columns cannot read exactly must be read by the object reader instead.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers import History, availability, colcheck, compose, lock_checkers
from checkers.columns import OpsView, read_columns, read_history
from checkers.history import Op, read
from checkers.model import LEASE, STRICT_MODEL, LockModel
from reports import series
from reports.story import stories
from tests.test_checker_mutex_props import (
    brute_force,
    brute_force_lease,
    random_history,
    simulated_history,
    stamp,
)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    derandomize=True,  # the same histories every run: the counts asserted below are stable
)
CHECK = compose(lock_checkers(fencing_enforced=True))


def write(path: Path, ops: list[Op], in_time_order: bool) -> list[Op]:
    """Write ``ops`` as history.jsonl: in (time, index) order with indexes renumbered (as the
    recorder writes them), or in index order as given. Returns the ops as written."""
    if in_time_order:
        srt = sorted(ops, key=lambda o: (o.time, o.index))
        ops = [
            Op(i, o.time, o.process, o.type, o.f, o.key, o.value, o.error)
            for i, o in enumerate(srt)
        ]
    else:
        ops = sorted(ops, key=lambda o: o.index)
    path.write_text("".join(json.dumps(o.to_dict(), separators=(",", ":")) + "\n" for o in ops))
    return ops


def same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def both_ways(path: Path, model: LockModel, seen: Counter[str]) -> dict[str, Any]:
    """Check the file as objects and as columns; they must agree. Returns the results."""
    objects = read(path).ops
    cols = read_columns(path)
    a = CHECK(objects, model)
    if cols is None:
        seen["objects only"] += 1
        return a
    view = OpsView(cols)
    seen["columns" if History(view).columns is not None else "columns read, objects judged"] += 1
    assert [o.to_dict() for o in view] == [o.to_dict() for o in objects]
    b = CHECK(view, model)
    for name in a["checkers"]:
        assert same(a["checkers"][name], b["checkers"][name]), (name, a, b)
    assert same(a, b)
    assert same(availability.over_time(objects), availability.over_time(view))
    # the report's series over time (the columns leave ``done`` empty: nothing reads it)
    sa, sb = series.compute(objects), series.compute(view)
    sa.done = []
    assert dataclasses.asdict(sa) == dataclasses.asdict(sb)
    seen["series points"] += sum(x is not None for x in sb.p99)
    # the report's stories: from columns, only the holders' ops of a window are built
    vs = a["checkers"]["mutex"]["violations"]
    told = stories(vs, objects, [], {})
    assert same(told, stories(vs, view, [], {}))
    seen["stories"] += len(told)
    return a


@pytest.mark.parametrize("per_range", [None, 3])
def test_random_and_simulated_histories_agree_with_objects_and_oracle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_range: int | None
) -> None:
    seen: Counter[str] = Counter()
    path = tmp_path / "history.jsonl"
    if per_range:  # sweeps over a few keys or spans, and sorts of a few tied times, at a time
        monkeypatch.setattr(availability, "KEYS_AT_ONCE", per_range)
        monkeypatch.setattr(colcheck, "TIED_AT_ONCE", per_range)
        monkeypatch.setattr(availability, "SWEEP_AT_ONCE", 1)
        ranges = availability._key_ranges

        def counted(*a: Any) -> list[tuple[int, int]]:
            got = ranges(*a)
            seen["split"] += len(got) > 1
            return got

        monkeypatch.setattr(availability, "_key_ranges", counted)
        uncovered = availability._uncovered

        def windowed(lo: Any, *a: Any) -> Any:
            seen["windows"] += len(lo) > 1
            return uncovered(lo, *a)

        monkeypatch.setattr(availability, "_uncovered", windowed)

    @SETTINGS
    @given(
        st.one_of(random_history(), simulated_history()),
        st.booleans(),
        st.sampled_from([None, 1, 4]),
        st.data(),
    )
    def run(events: Any, in_time: bool, ttl: int | None, data: st.DataObject) -> None:
        write(path, stamp(events, data), in_time)
        ops = read(path).ops  # as read: a line whose key disagrees with its invocation's is not
        r = both_ways(path, STRICT_MODEL, seen)
        shown = [o.to_dict() for o in ops]
        assert r["checkers"]["mutex"]["valid"] == brute_force(ops), (r["summary"], shown)
        lease = LockModel(LEASE, "ttl" if ttl else "none", ttl and ttl / 1e6)
        r = both_ways(path, lease, seen)
        assert r["checkers"]["mutex"]["valid"] == brute_force_lease(ops, ttl), (r["summary"], shown)
        seen[f"valid {r['checkers']['mutex']['valid']}"] += 1

    run()
    # the columns judged most histories, and both verdicts occurred
    assert seen["columns"] >= 100 and seen["valid True"] >= 10 and seen["valid False"] >= 10, seen
    assert seen["stories"] >= 10, seen  # and the two told the same stories
    assert not per_range or (seen["split"] >= 20 and seen["windows"] >= 20), seen
    assert seen["series points"] >= 100, seen  # and drew the same series


@st.composite
def lock_history(draw: st.DrawFn) -> list[Op]:
    """Sequential clients taking, renewing and releasing locks and writing under them with
    fences (some refused as stale), info outcomes (the client retired), and a nemesis."""
    nproc = draw(st.integers(1, 4))
    procs = list(range(nproc))
    nxt = nproc
    ops: list[Op] = []
    t = 0
    fence = 0
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.integers(0, 3))
        if draw(st.integers(0, 9)) == 0:
            f = draw(st.sampled_from(["start-kill", "stop-kill", "start-pause"]))
            ty = draw(st.sampled_from(["invoke", "info"]))
            value = {"node": "n1"} if ty == "info" and draw(st.booleans()) else None
            ops.append(Op(len(ops), t, "nemesis", ty, f, None, value))
            continue
        slot = draw(st.integers(0, nproc - 1))
        p = procs[slot]
        f = draw(st.sampled_from(["acquire", "acquire", "release", "renew", "write", "add"]))
        key = draw(st.sampled_from(["a", "a", 2]))
        value = (
            draw(st.sampled_from([None, fence, fence + 1, 0]))
            if f in ("write", "release")
            else None
        )
        ops.append(Op(len(ops), t, p, "invoke", f, key, value))
        if draw(st.integers(0, 5)) == 0:
            continue  # still in flight (``_sequential`` drops the process's later ops)
        t += draw(st.integers(0, 3))
        ty = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
        err = None
        if ty == "fail":
            err = draw(st.sampled_from(["stale fence 3 < 4", "not owner", "timeout"]))
        elif ty == "ok" and f == "acquire":
            fence = draw(st.sampled_from([fence + 1, fence + 1, fence, max(0, fence - 1)]))
            value = fence
        ops.append(Op(len(ops), t, p, ty, f, key, value, err))
        if ty == "info" or draw(st.integers(0, 7)) == 0:
            procs[slot] = nxt  # retired after an unknown outcome (or, rarely, at once)
            nxt += 1
    return ops


def test_lock_histories_with_renewals_writes_and_faults_agree(tmp_path: Path) -> None:
    seen: Counter[str] = Counter()
    path = tmp_path / "history.jsonl"

    @SETTINGS
    @given(lock_history(), st.sampled_from([None, 0.000001, 0.000003]))
    def run(ops: list[Op], ttl_ms: float | None) -> None:
        write(path, _sequential(ops), True)
        both_ways(path, STRICT_MODEL, seen)
        r = both_ways(path, LockModel(LEASE, "ttl" if ttl_ms else "none", ttl_ms), seen)
        m = r["checkers"]["mutex"]
        seen[f"valid {m['valid']}"] += 1
        seen["lapses"] += bool(m["lapse_count"])
        seen["stale writes"] += bool(r["checkers"]["fencing"]["stale_accepted"])

    run()
    assert seen["columns"] >= 150 and seen["valid False"] >= 10 and seen["valid True"] >= 10, seen
    assert seen["lapses"] >= 1 and seen["stale writes"] >= 3, seen


def _sequential(ops: list[Op]) -> list[Op]:
    """Drop the ops of a process after its invocation that never completed (the generator
    reuses the slot's process): each process stays sequential."""
    out: list[Op] = []
    stuck: set[Any] = set()
    pending: dict[Any, Op] = {}
    for o in ops:
        if o.process in stuck:
            continue
        if o.type == "invoke":
            if o.process in pending:
                stuck.add(o.process)
                continue
            pending[o.process] = o
        elif o.process != "nemesis":
            pending.pop(o.process, None)
        out.append(o)
    return out


GOOD = '{"index":%d,"time":%d,"process":1,"type":"%s","f":"acquire","key":"k"%s}\n'


@pytest.mark.parametrize(
    "line",
    [
        '{"index":2,"time":5,"process":1,"type":"invoke","f":"acquire","key":"k","extra":1}\n',
        '{"index":2,"time":5,"process":true,"type":"invoke","f":"acquire","key":"k"}\n',
        '{"index":2,"time":5.0,"process":1,"type":"invoke","f":"acquire","key":"k"}\n',
        '{"index":2,"time":5,"process":"x","type":"invoke","f":"acquire","key":"k"}\n',
        '{"index":2,"time":5,"process":1,"type":"invoke","f":"acquire","key":[1]}\n',
        '{"index":2,"time":5,"process":1,"type":"invoke","f":"acquire","key":true}\n',
        '{"index":2,"time":5,"process":1,"type":"begin","f":"acquire","key":"k"}\n',
        '{"index":0,"time":5,"process":1,"type":"invoke","f":"acquire","key":"k"}\n',
        '{"index":2,"time":5,"process":1,"type":"invoke","f":"acquire","key":"\\ud800"}\n',
        '{"index":2,"time":99999999999999999999,"process":1,"type":"invoke","f":"acquire"}\n',
        '{"index":2,"time":5,"process":1,"type":"ok","f":"acquire","key":"k","value":1e400}\n',
        "\n",
        "not json\n",
        '{"index":2,"time":5,"process":1,"type":"ok","f":"acquire","key":"other","value":3}\n',
        '{"index":2,"time":5,"process":2,"type":"invoke","f":"acquire","key":"k"},'
        '{"index":4,"time":6,"process":3,"type":"invoke","f":"acquire","key":"k"}\n',
    ],
)
def test_unusual_lines_are_read_by_the_object_reader(tmp_path: Path, line: str) -> None:
    path = tmp_path / "history.jsonl"
    head = GOOD % (0, 1, "invoke", "") + GOOD % (1, 2, "ok", ',"value":1')
    path.write_text(head + GOOD % (3, 3, "invoke", "") + line)
    expected = read(path)
    got = read_history(path)
    assert [o.to_dict() for o in got.ops] == [o.to_dict() for o in expected.ops]
    assert got.problems == expected.problems and got.lines == expected.lines
    assert read_columns(path) is None


def test_a_plain_history_is_read_in_columns(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(GOOD % (0, 1, "invoke", "") + GOOD % (1, 2, "ok", ',"value":1'))
    cols = read_columns(path)
    assert cols is not None and cols.lines == 2
    assert [o.to_dict() for o in read_history(path).ops] == [o.to_dict() for o in read(path).ops]


def _fields(c: Any) -> dict[str, Any]:
    arrays = ("time", "process", "type", "f", "key", "vkind", "vint", "error")
    return {
        "index": c.index_of(np.arange(len(c))).tolist(),
        **{k: getattr(c, k).tolist() for k in arrays},
        **{k: getattr(c, k) for k in ("fs", "keys", "errors", "others", "lines")},
    }


@pytest.fixture
def two_readers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every file read by two readers (the threshold down to one byte); the list counts the
    reads that really were."""
    import checkers.columns as columns

    calls: list[int] = []
    inner = columns._read_parallel

    def counted(path: Any, size: int) -> Any:
        calls.append(size)
        return inner(path, size)

    monkeypatch.setattr(columns, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(columns, "_read_parallel", counted)
    # a thread an earlier test left behind would keep the reads to one reader here
    monkeypatch.setattr(columns, "_two_readers_possible", lambda: True)
    return calls


def test_a_second_reader_is_forked_only_from_a_process_with_one_thread() -> None:
    import threading

    import checkers.columns as columns

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert columns._two_readers_possible() is False
    finally:
        stop.set()
        t.join()


def test_two_readers_make_the_columns_one_would(tmp_path: Path, two_readers: list[int]) -> None:
    """A forked reader decodes the second half into shared columns and its codes are mapped onto
    the first half's: the same arrays, interned tables (in the same order), values kept aside and
    line count as one reader's, on generated lock histories with faults, errors and odd values."""
    import checkers.columns as columns

    path = tmp_path / "history.jsonl"
    seen: Counter[str] = Counter()

    @SETTINGS
    @given(lock_history())
    def run(ops: list[Op]) -> None:
        write(path, _sequential(ops), True)
        with pytest.MonkeyPatch.context() as one:
            one.setattr(columns, "PARALLEL_BYTES", 1 << 62)
            alone = read_columns(path)
        both = read_columns(path)
        assert (alone is None) == (both is None)
        if alone is not None and both is not None:
            assert _fields(both) == _fields(alone)
            seen["same"] += 1
            seen["others"] += bool(alone.others)

    run()
    assert seen["same"] >= 100 and len(two_readers) >= seen["same"], (seen, len(two_readers))


@pytest.mark.parametrize(
    "line",
    ["\n", "not json\n", GOOD % (2, 3, "invoke", ',"key2":1'), '{"index":2,"time":5,"process":1,'
     '"type":"invoke","f":"acquire","key":"\\ud800"}\n'],
)  # fmt: skip
def test_an_unusual_line_in_the_second_half_takes_the_object_path(
    tmp_path: Path, two_readers: list[int], line: str
) -> None:
    path = tmp_path / "history.jsonl"
    head = "".join(GOOD % (i, i + 1, "invoke" if i % 2 == 0 else "ok", "") for i in range(40))
    path.write_text(head + GOOD % (99, 99, "invoke", ""))
    assert read_columns(path) is not None  # without it: read in columns, by two readers
    path.write_text(head + line + GOOD % (99, 99, "invoke", ""))
    assert read_columns(path) is None and len(two_readers) == 2


@pytest.mark.parametrize(
    "field, value",
    [
        ("index", 2**31),
        ("index", -(2**40)),
        ("index", -(2**40) + 1),
        ("process", 2**31),
        ("process", -(2**31)),
        ("process", -(2**40)),
    ],
)
def test_an_index_or_process_past_32_bits_is_read_as_objects(
    tmp_path: Path, field: str, value: int
) -> None:
    """The columns keep ``index`` and ``process`` as int32 (the nemesis's process at its
    least value): a history they cannot hold exactly is left to the object reader."""
    ops = [Op(0, 1, 0, "invoke", "acquire", "k"), Op(1, 2, 0, "ok", "acquire", "k")]
    path = tmp_path / "history.jsonl"
    write(path, ops, in_time_order=True)
    assert read_columns(path) is not None
    ops[1] = dataclasses.replace(ops[1], **{field: value})
    if field == "process":
        ops[0] = dataclasses.replace(ops[0], process=value)
    write(path, ops, in_time_order=False)
    assert read(path).ops and read_columns(path) is None


@pytest.mark.parametrize("at_once", [None, 1, 3])
def test_completions_in_points_order_as_a_full_lexsort_would_give(
    monkeypatch: pytest.MonkeyPatch, at_once: int | None
) -> None:
    """``_points_order`` sorts only runs of tied times, a few runs at a time: the same order as
    sorting all completions by (time, ms, type name)."""
    if at_once:
        monkeypatch.setattr(colcheck, "TIED_AT_ONCE", at_once)
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(1, 400))
        pos = rng.choice(4 * n, n, replace=False)  # distinct positions; times follow them
        time = np.sort(rng.integers(0, n // 3 + 2, 4 * n))[pos]  # many ties
        ms = rng.integers(0, 4, n).astype(np.float64)
        tname = rng.integers(0, 3, n).astype(np.int8)
        want = np.lexsort((tname, ms, time))
        got = colcheck._points_order(4 * n, pos, time, ms, tname)
        assert (time[got] == time[want]).all() and (ms[got] == ms[want]).all()
        assert (tname[got] == tname[want]).all()


def test_a_large_history_is_told_how_much_memory_its_check_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``memory_note``: ops estimated from the file's first lines, memory from the measured
    base and bytes an op (bench/history_scale.py); nothing said below ``LARGE``."""
    import checkers.columns as columns

    n = 300_000
    path = tmp_path / "history.jsonl"
    ops = [Op(i, 10 * i, i % 7, ("invoke", "ok")[i % 2], "acquire", f"k{i % 5}") for i in range(n)]
    write(path, ops, in_time_order=True)
    assert columns.memory_note(path) is None  # a few MB: nothing to say
    monkeypatch.setattr(columns, "LARGE", 1)
    note = columns.memory_note(path)
    assert note is not None and "about 0.3 million ops" in note, note
    need = float(note.rsplit("about ", 1)[1].split(" GB")[0])
    assert need == round((columns.BASE_BYTES + n * columns.BYTES_PER_OP) / 1e9, 1), note
