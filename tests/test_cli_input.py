"""Bad input gets one clear line and exit 2, never a traceback; nothing recorded is lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import harness


def _one_line_error(p, *needles: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_unknown_backend_lists_valid_names(tmp_path):
    p = harness("run", "--backend", "nosuch", "--store", str(tmp_path))
    _one_line_error(p, "nosuch", "redis", "unsafe-redis")


def test_unknown_workload(tmp_path):
    p = harness("run", "--backend", "redis", "--workload", "nosuch", "--store", str(tmp_path))
    _one_line_error(p, "nosuch", "mutex")


def test_bad_numbers(tmp_path):
    p = harness("run", "--backend", "redis", "--concurrency", "0", "--store", str(tmp_path))
    _one_line_error(p, "--concurrency")


def test_bad_backend_option(tmp_path):
    p = harness("run", "--backend", "redis", "--opt", "colour=blue", "--store", str(tmp_path))
    _one_line_error(p, "colour", "timeout_ms")


def test_missing_server_binary_names_the_package(tmp_path):
    env = {"PATH": str(Path(os.__file__).parent)}  # a PATH with no redis-server on it
    p = harness("run", "--backend", "redis", "--time-limit", "1", "--store", str(tmp_path), env=env)
    _one_line_error(p, "redis-server", "apt-get install")


def _history(tmp_path: Path, lines: list[str], name="history.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(lines))
    return p


OPS = [
    {"process": 0, "type": "invoke", "f": "acquire", "key": 1},
    {"process": 0, "type": "ok", "f": "acquire", "key": 1},
    {"process": 0, "type": "invoke", "f": "release", "key": 1},
    {"process": 0, "type": "ok", "f": "release", "key": 1},
    {"process": 1, "type": "invoke", "f": "acquire", "key": 1},
    {"process": 1, "type": "ok", "f": "acquire", "key": 1},
]


def test_check_bare_foreign_history_without_optional_fields(tmp_path):
    p = _history(tmp_path, [json.dumps(o) + "\n" for o in OPS])
    r = harness("check", str(p))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VALID" in r.stdout


def test_check_corrupt_line_is_named_and_result_is_partial(tmp_path):
    lines = [json.dumps(o) + "\n" for o in OPS]
    lines.insert(2, "{this is not json\n")
    p = _history(tmp_path, lines)
    r = harness("check", str(p))
    assert "Traceback" not in r.stderr
    assert "line 3" in r.stdout and "partial" in r.stdout
    assert r.returncode == 2  # what could be read is valid, but a line of it is missing
    assert "UNKNOWN" in r.stdout


def test_check_truncated_history(tmp_path):
    lines = [json.dumps(o) + "\n" for o in OPS]
    lines.append('{"process": 1, "type": "invoke", "f": "rel')  # a crash mid-line
    p = _history(tmp_path, lines)
    r = harness("check", "--json", str(p))
    res = json.loads(r.stdout)
    assert res["partial"] is True
    assert "line 7" in res["problems"][0] and "truncated" in res["problems"][0]
    assert res["ops_read"] == 6


def test_check_bad_field_values(tmp_path):
    p = _history(tmp_path, ['{"process": "x", "type": "ok", "f": "acquire"}\n'])
    r = harness("check", str(p))
    assert "process" in r.stdout and "partial" in r.stdout


def test_check_missing_path(tmp_path):
    _one_line_error(harness("check", str(tmp_path / "nope")), "no such file")


def test_report_without_results(tmp_path):
    _one_line_error(harness("report", str(tmp_path)), "results.json")


def test_unreachable_toxiproxy_is_one_line(redis_bin, tmp_path):
    p = harness(
        "run",
        "--backend",
        "redis",
        "--nemesis",
        "partition",
        "-t",
        "2",
        "--nemesis-interval",
        "1",
        "--toxiproxy",
        "http://127.0.0.1:1",
        "--store",
        str(tmp_path),
    )
    _one_line_error(p, "toxiproxy at http://127.0.0.1:1 did not answer")


def test_unknown_nemesis_and_option(tmp_path):
    p = harness("run", "--backend", "redis", "--nemesis", "meteor", "--store", str(tmp_path))
    _one_line_error(p, "meteor", "partition", "client-pause")
    p = harness(
        "run",
        "--backend",
        "redis",
        "--nemesis",
        "kill",
        "--nemesis-opt",
        "colour=red",
        "--store",
        str(tmp_path),
    )
    _one_line_error(p, "colour", "down_ms")
