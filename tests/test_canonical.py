"""The recorder's line shape parsed with numpy (checkers.canonical) reads every line it takes
exactly as the JSON decoder does, and leaves every other line to it.

Generated blocks mix the recorder's own lines with near misses (a leading zero, ``-0``, 16 digits,
whitespace, fields in another order, escapes, control characters, non-ASCII text, strings of 0,
7, 8, 9, 64 and 65 bytes, values that are not integers): each line the parser calls fast must
decode to the same fields, and the history read both ways must give the same columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import checkers.columns as columns
from checkers import canonical
from checkers.columns import _Line, read_columns
from checkers.history import TYPES
from harness.run.recorder import HistoryWriter, Recorder
from tests.test_columns import _fields

SETTINGS = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    derandomize=True,
)
_one = msgspec.json.Decoder(_Line).decode

plain = st.sampled_from(["acquire", "release", "write", "lock-1429", "k", "", "x" * 8, "y" * 64])
texts = st.one_of(
    plain,
    plain,
    plain,
    st.text(min_size=0, max_size=70),  # quotes, backslashes, control characters, non-ASCII
    st.text(alphabet="abc-_ :/", min_size=0, max_size=66),
)
numbers = st.one_of(
    st.integers(0, 20),
    st.integers(0, 10**15 - 1),
    st.sampled_from([10**15 - 1, 10**15, 10**16, 2**63 - 1, 10**8 - 1, 10**8, 99999999]),
)


@st.composite
def line(draw: Any) -> bytes:
    d: dict[str, Any] = {
        "index": draw(numbers),
        "time": draw(numbers),
        "process": draw(st.one_of(numbers, numbers, numbers, st.just("nemesis"))),
        "type": draw(st.sampled_from(["invoke", "ok", "fail", "info"] * 3 + ["begin", ""])),
        "f": draw(texts),
    }
    if draw(st.booleans()):
        d["key"] = draw(st.one_of(texts, st.integers(-5, 5)))
    if draw(st.booleans()):
        d["value"] = draw(
            st.one_of(
                numbers,
                numbers,
                st.integers(-(10**15), 10**15),
                st.integers(-(10**15), 10**15),
                st.just(None),
                st.lists(st.integers(0, 3), max_size=2),
                st.floats(allow_nan=False, allow_infinity=False),
                st.booleans(),
            )
        )
    if draw(st.booleans()):
        d["error"] = draw(texts)
    ascii_only = draw(st.booleans())
    text = json.dumps(d, separators=(",", ":"), ensure_ascii=ascii_only)
    twist = draw(st.sampled_from(["none"] * 10 + ["space", "zero", "minus0", "order", "slash"]))
    if twist == "space":
        text = text.replace(",", ", ", 1)
    elif twist == "zero":
        text = text.replace('"time":', '"time":0', 1)
    elif twist == "minus0":
        text = text.replace('"value":0', '"value":-0', 1)
    elif twist == "order":
        text = json.dumps(dict(reversed(list(d.items()))), separators=(",", ":"))
    elif twist == "slash":
        text = text.replace('"f":"', '"f":"\\/', 1)
    return text.encode()


def _check_block(lines: list[bytes]) -> int:
    """Parse the block; every fast line must decode to its parsed fields. How many were fast."""
    p = canonical.parse(b"\n".join(lines))
    assert p.lines == len(lines)
    assert sorted(p.fast.tolist() + p.slow.tolist()) == list(range(len(lines)))
    key_at = np.cumsum(p.has_key) - 1
    err_at = np.cumsum(p.has_error) - 1
    for j, i in enumerate(p.fast.tolist()):
        d = _one(lines[i])  # a fast line decodes
        assert (d.index, d.time, d.process) == (p.index[j], p.time[j], p.process[j])
        assert type(d.process) is int
        assert d.type == TYPES[p.type[j]]
        assert d.f == p.f.table[p.f.codes[j]]
        if p.has_key[j]:
            assert p.key is not None and d.key == p.key.table[p.key.codes[key_at[j]]]
        else:
            assert d.key is None
        if p.has_value[j]:
            assert type(d.value) is int and d.value == p.value[j]
        else:
            assert d.value is None and b'"value"' not in lines[i]
        if p.has_error[j]:
            assert p.error is not None and d.error == p.error.table[p.error.codes[err_at[j]]]
        else:
            assert d.error is None
    for table in (p.f, p.key, p.error):  # first met first, each value once
        if table is not None:
            assert len(set(table.table)) == len(table.table)
            assert np.all(np.diff(table.first) > 0)
    return len(p.fast)


def test_fast_lines_decode_to_what_the_parser_read() -> None:
    fast, total = [], []

    @SETTINGS
    @given(st.lists(line(), min_size=1, max_size=30))
    def run(lines: list[bytes]) -> None:
        fast.append(_check_block(lines))
        total.append(len(lines))

    run()
    assert 0.1 < sum(fast) / sum(total) < 0.9, (sum(fast), sum(total))  # both kinds were made


def test_the_recorders_lines_are_all_fast(tmp_path: Path) -> None:
    """What ``Recorder.record`` and ``HistoryWriter`` write is the shape parsed: no line of a
    client's ops goes to the decoder (a change of the recorder's format would show here)."""
    import os

    r, w = os.pipe()
    rec = Recorder(w, 0)
    rec.record(3, "invoke", "acquire", "lock-1")
    rec.record(3, "ok", "acquire", "lock-1", 1234)
    rec.record(3, "invoke", "release", "lock-1", 1234)
    rec.record(3, "info", "release", "lock-1", 1234, "timeout: no reply in 2000 ms")
    rec.record(4, "fail", "acquire", "a-key-of-more-than-sixteen-bytes", None, "held")
    rec.record(5, "invoke", "read", None)
    os.close(w)
    raw = os.read(r, 1 << 16).splitlines(keepends=True)
    os.close(r)
    hw = HistoryWriter(tmp_path / "history.jsonl", keep=True)
    hw.append_lines([x.rstrip(b"\n") for x in raw])
    hw.close()
    lines = [x.rstrip(b"\n") for x in hw.lines or []]
    assert _check_block(lines) == len(lines) == 6


@pytest.fixture
def no_fast_path(monkeypatch: pytest.MonkeyPatch) -> Any:
    def decode_all(self: Any, buf: bytes, size: int) -> int:
        self.add(columns._decode(columns._array_text(buf[:size].replace(b"\n", b","))))
        return buf.count(b"\n", 0, size) + 1

    return lambda: monkeypatch.setattr(columns._Builder, "add_text", decode_all)


def test_a_history_reads_to_the_same_columns_either_way(
    tmp_path: Path, no_fast_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of mostly fast lines with slow ones among them (the nemesis's, odd values, keys
    that are numbers): the tables come out in the order a line-by-line reading meets them."""
    path = tmp_path / "history.jsonl"
    monkeypatch.setattr(columns, "BLOCK", 4096)  # many blocks, values first met in later ones
    rng = np.random.default_rng(7)
    out, t = [], 0
    for i in range(0, 4000, 2):
        p = int(rng.integers(0, 40))
        t += 10 + int(rng.integers(0, 10**6))
        key: Any = f"k{rng.integers(0, 60)}" if rng.random() < 0.97 else int(rng.integers(0, 3))
        f = ["acquire", "release", "write"][int(rng.integers(0, 3))]
        inv: dict[str, Any] = {"index": i, "time": t, "process": p, "type": "invoke", "f": f}
        inv["key"] = key
        done = {**inv, "index": i + 1, "time": t + 5, "type": "ok"}
        x = rng.random()
        if x < 0.5:
            done["value"] = int(rng.integers(-(10**12), 10**12))
        elif x < 0.55:
            done["value"] = [1, {"a": None}]
        if rng.random() < 0.1:
            done["type"], done["error"] = "info", f"e{rng.integers(0, 30)}"
        out += [inv, done]
        if rng.random() < 0.01:
            out.append({"index": 10**7 + i, "time": t + 5, "process": "nemesis", "type": "info"})
            out[-1].update(f="kill", value={"node": "n1"})
    path.write_text("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in out))
    parsed: list[int] = []
    inner = canonical.parse

    def counted(buf: bytes, size: int) -> Any:
        p = inner(buf, size)
        parsed.append(len(p.fast))
        return p

    monkeypatch.setattr(canonical, "parse", counted)
    fast = read_columns(path)
    assert fast is not None and sum(parsed) > 3000  # most lines took the fast path
    no_fast_path()
    slow = read_columns(path)
    assert slow is not None and _fields(fast) == _fields(slow)
