"""harness.exports.edn: Jepsen EDN export, read back with a tiny EDN reader written here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from checkers.history import Op, read
from harness.exports.edn import to_edn, value

ETCD = Path(__file__).resolve().parents[2] / "shared" / "data" / "jepsen-etcd-3.4.3-mutex.jsonl"


class Kw(str):
    """A keyword read back (``:acquire`` -> Kw("acquire"))."""


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<open>#\{|[{\[])|(?P<close>[}\]])'
    r"|(?P<atom>[^\s,{}\[\]\"]+))",
)


def read_edn(text: str) -> Any:
    """Parse one EDN value: maps, vectors, sets, strings, keywords, numbers, nil/true/false."""
    pos = 0

    def nxt() -> re.Match[str]:
        nonlocal pos
        while pos < len(text) and text[pos] in " ,\n\t":
            pos += 1
        m = _TOKEN.match(text, pos)
        assert m, f"bad EDN at {pos}: {text[pos : pos + 20]!r}"
        pos = m.end()
        return m

    def parse(m: re.Match[str]) -> Any:
        if m["str"]:
            return json.loads(m["str"])  # our escapes are a subset of JSON's
        if m["open"]:
            items = []
            while True:
                t = nxt()
                if t["close"]:
                    break
                items.append(parse(t))
            if m["open"] == "{":
                assert len(items) % 2 == 0
                return dict(zip(items[::2], items[1::2], strict=True))
            return frozenset(items) if m["open"] == "#{" else items
        a = m["atom"]
        if a.startswith(":"):
            return Kw(a[1:])
        consts = {"nil": None, "true": True, "false": False}
        if a in consts:
            return consts[a]
        return float(a) if any(c in a for c in ".eE") else int(a)

    out = parse(nxt())
    assert text[pos:].strip(" ,\n") == "", "trailing text"
    return out


def roundtrip(op: Op, m: dict[Any, Any]) -> None:
    assert m["index"] == op.index and m["time"] == op.time
    assert isinstance(m["type"], Kw) and m["type"] == op.type
    assert isinstance(m["f"], Kw) and m["f"] == op.f
    if op.process == "nemesis":
        assert isinstance(m["process"], Kw) and m["process"] == "nemesis"
    else:
        assert m["process"] == op.process and not isinstance(m["process"], Kw)
    assert m["key"] == op.key and m["value"] == op.value
    assert m.get("error") == op.error


def test_expected_text() -> None:
    ops = [
        Op(0, 123, 3, "invoke", "acquire", "lock"),
        Op(1, 150, "nemesis", "info", "start-partition", None, {"cut": [1, 2], "x y": 1.5}),
        Op(2, 160, 3, "fail", "release", 7, 4, 'not "owner"\n'),
    ]
    assert to_edn(ops) == (
        '{:index 0, :time 123, :type :invoke, :process 3, :f :acquire, :key "lock", :value nil}\n'
        "{:index 1, :time 150, :type :info, :process :nemesis, :f :start-partition, :key nil,"
        ' :value {:cut [1 2], "x y" 1.5}}\n'
        "{:index 2, :time 160, :type :fail, :process 3, :f :release, :key 7, :value 4,"
        ' :error "not \\"owner\\"\\n"}\n'
    )


def test_structural_roundtrip() -> None:
    ops = [
        Op(5, 10, 0, "ok", "acquire", "a\\b\tc", 42),
        Op(6, 11, 1, "ok", "write", 3, [1, [2, None], True, "s"]),
        Op(7, 12, 1, "info", "read", None, {"k": {"nested": False}}, "timeout"),
        Op(8, 13, "nemesis", "ok", "kill", None, ["n1", "n2"]),
        Op(9, 14, 2, "ok", "read", "é☃", -3.25),
    ]
    lines = to_edn(ops).splitlines()
    assert len(lines) == len(ops)
    for op, line in zip(ops, lines, strict=True):
        roundtrip(op, read_edn(line))
    assert read_edn(value({1, 2})) == frozenset({1, 2})
    assert value(float("inf")) == "##Inf"
    with pytest.raises(TypeError, match="cannot write object as EDN"):
        value(object())


def test_etcd_history_roundtrips() -> None:
    if not ETCD.exists():
        pytest.skip(f"shared data absent: {ETCD}")
    ops = read(ETCD).ops
    lines = to_edn(ops).splitlines()
    for op, line in zip(ops, lines, strict=True):
        roundtrip(op, read_edn(line))
