"""Exit codes are the contract: 0 valid, 1 invalid, 2 unknown or error, whatever happens to the
terminal.

A reader that goes away (``| head -n 1``, ``| true``, ``| grep -q`` under ``pipefail``) ends
what is printed, never the run and never its exit code; and no text from a history, an error,
a server or a path is read as terminal markup (``[/]`` once turned INVALID into exit 2,
``[errno 111]`` vanished)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from .conftest import HARNESS, ROOT, harness
from .test_check_input import INVALID, VALID, _op  # one overlap; the same ops without it

WIDE = {"COLUMNS": "400"}  # one output line per message, to match on


HISTORIES = {"valid": (VALID, 0), "invalid": (INVALID, 1)}


def _write(path: Path, ops: list[dict], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in ops) + extra)
    return path


def _failed_kill(error: str) -> list[dict]:
    """A kill the nemesis could not inject, failing with ``error`` (a server's words)."""
    return [
        _op(8, 90, "nemesis", "invoke", "start-kill"),
        _op(9, 100, "nemesis", "info", "start-kill", error=error),
    ]


def _piped(args: list[str], reader: str, env: dict | None = None, timeout: float = 120):
    """``harness ARGS | READER`` in bash with pipefail: the pipeline's code is the harness's
    unless the reader fails."""
    line = f"set -o pipefail; {shlex.join([*HARNESS, *args])} | {reader}"
    return subprocess.run(
        ["bash", "-c", line],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _into_closed_pipe(args: list[str], stderr_too: bool = False, timeout: float = 120):
    """Run the harness with stdout (and stderr) a pipe whose reader left before the first
    line: every write fails with EPIPE, not just those after a race with ``head``."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(
            [*HARNESS, *args],
            stdout=w,
            stderr=w if stderr_too else subprocess.PIPE,
            timeout=timeout,
            cwd=ROOT,
            text=True,
        )
    finally:
        os.close(w)


def _no_noise(stderr: str | None) -> None:
    """Nothing about the pipe: no traceback, no "Exception ignored ... BrokenPipeError"."""
    for word in ("Traceback", "BrokenPipe", "Exception ignored", "Broken pipe"):
        assert word not in (stderr or ""), stderr


# --- a reader that leaves ------------------------------------------------------------------


@pytest.mark.parametrize("reader", ["true", "head -n 1", "grep -q verdict"])
@pytest.mark.parametrize("kind", ["valid", "invalid"])
def test_check_in_a_pipe_exits_with_the_verdict(tmp_path, kind, reader):
    ops, code = HISTORIES[kind]
    h = _write(tmp_path / "h.jsonl", ops)
    p = _piped(["check", str(h)], reader)
    assert p.returncode == code, (p.stdout, p.stderr)
    _no_noise(p.stderr)


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("kind", ["valid", "invalid"])
def test_check_into_a_closed_pipe_exits_with_the_verdict(tmp_path, kind, as_json):
    ops, code = HISTORIES[kind]
    h = _write(tmp_path / "h.jsonl", ops)
    p = _into_closed_pipe(["check", str(h), *(["--json"] if as_json else [])])
    assert p.returncode == code, p.stderr
    _no_noise(p.stderr)
    # stderr gone too: still the verdict, never 120 (a failed flush at exit) nor 1 for VALID
    p = _into_closed_pipe(["check", str(h)], stderr_too=True)
    assert p.returncode == code


@pytest.mark.parametrize("kind", ["valid", "invalid"])
def test_check_with_stdout_closed_exits_with_the_verdict(tmp_path, kind):
    ops, code = HISTORIES[kind]
    h = _write(tmp_path / "h.jsonl", ops)
    for extra in ([], ["--json"]):
        p = subprocess.run(  # `harness check h.jsonl >&-`: Python's sys.stdout is None
            [*HARNESS, "check", str(h), *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
            preexec_fn=lambda: os.close(1),
        )
        assert p.returncode == code, (extra, p.stderr)
        _no_noise(p.stderr)


def test_an_error_into_a_closed_pipe_is_still_exit_2(tmp_path):
    p = _into_closed_pipe(["check", str(tmp_path / "missing.jsonl")], stderr_too=True)
    assert p.returncode == 2
    p = _into_closed_pipe(["check", str(tmp_path / "missing.jsonl")])
    assert p.returncode == 2
    assert "no such file" in p.stderr
    _no_noise(p.stderr)


def test_help_into_a_closed_pipe_is_exit_0():
    for args in (["--help"], ["run", "--help"], ["--version"]):
        p = _into_closed_pipe(args)
        assert p.returncode == 0, (args, p.stderr)
        _no_noise(p.stderr)


def _complete_run(store: Path) -> dict:
    """The run's stored results and report, written to the end."""
    d = (store / "latest").resolve()
    results = json.loads((d / "results.json").read_text())
    assert (d / "report.html").read_text().rstrip().endswith("</html>")
    return results


def test_a_valid_run_whose_reader_left_exits_0_with_everything_stored(redis_bin, tmp_path):
    # head reads the first line (the run's header) and leaves while the load runs
    p = _piped(["run", "-b", "redis", "-t", "2", "--store", str(tmp_path / "a")], "head -n 1")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert p.stdout.startswith("redis / mutex"), p.stdout
    assert len(p.stdout.splitlines()) == 1
    _no_noise(p.stderr)
    assert _complete_run(tmp_path / "a")["valid"] is True
    # no reader from the start: the first print fails, the run goes on
    p = _into_closed_pipe(["run", "-b", "redis", "-t", "2", "--store", str(tmp_path / "b")])
    assert p.returncode == 0, p.stderr
    _no_noise(p.stderr)
    assert _complete_run(tmp_path / "b")["valid"] is True


def test_an_invalid_run_whose_reader_left_exits_1(redis_bin, tmp_path):
    # unsafe-redis with 8 clients on one key is broken within a second, whatever the timing
    args = ["run", "-b", "unsafe-redis", "-c", "8", "--keys", "1", "--hold", "2", "-t", "2"]
    p = _into_closed_pipe([*args, "--store", str(tmp_path / "s")], stderr_too=True)
    assert p.returncode == 1
    assert _complete_run(tmp_path / "s")["valid"] is False


# --- text is text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", ["[/]", "[bold]x[/bold]", "[errno 111] Connection refused", "db :x: at C:\\"]
)
def test_an_error_text_in_a_history_is_printed_as_it_is(tmp_path, error):
    h = _write(tmp_path / "h.jsonl", INVALID + _failed_kill(error))
    p = harness("check", str(h), env=WIDE)
    assert p.returncode == 1, (p.stdout, p.stderr)  # INVALID, not "internal error: MarkupError"
    assert "verdict: INVALID" in p.stdout
    assert f"kill injection(s) failed: {error}\n" in p.stdout, p.stdout
    assert p.stderr == ""


def test_an_unreadable_line_is_quoted_as_it_is(tmp_path):
    bad = json.dumps(_op(8, 90, 0, "[/]", "acquire"))
    h = _write(tmp_path / "h.jsonl", INVALID, bad + "\n")
    p = harness("check", str(h), env=WIDE)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert 'first: line 9: type "[/]"' in p.stdout, p.stdout


def test_an_error_line_shows_a_path_as_it_is(tmp_path):
    odd = tmp_path / "[bold]runs[/]" / "[errno 111]\\"
    p = harness("check", str(odd), env=WIDE)
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert f"{odd}: no such file or directory" in lines[0], lines[0]


def test_list_shows_a_failed_run_s_error_as_it_is(tmp_path):
    d = tmp_path / "store" / "redis-mutex-none" / "20260101T000000-1"
    d.mkdir(parents=True)
    said = "[errno 111] Connection refused [/]"
    (d / "config.json").write_text(json.dumps({"backend": "redis", "failed": said}))
    p = harness("list", "--store", str(tmp_path / "store"), env=WIDE)
    assert p.returncode == 0, p.stderr
    assert said in p.stdout, p.stdout
