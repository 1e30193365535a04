"""What the command line prints: verdicts, results, warnings.

Two rules keep the exit code the verdict's (0 valid, 1 invalid, 2 unknown or error):

- Nothing from a history, a server, a file name or an error is read as terminal markup: such
  text goes in as rich ``Text`` (``say``, ``line``, ``cell``), never inside a markup string, so
  ``[/]`` cannot raise and ``[errno 111]`` cannot vanish.
- A reader that goes away (``| head -n 1``, ``| grep -q``) ends what is printed, not the
  command: the stream is then pointed at /dev/null (as the Python docs advise on SIGPIPE), so
  the run goes on, later prints and the interpreter's flush at exit succeed, and the exit code
  stays the verdict's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, ConsoleDimensions
from rich.text import Text

STYLE = {"valid": "bold green", "invalid": "bold red"}

Part = str | Text | tuple[str, str]


def _to_devnull(stream: Any) -> None:
    """Point a stream whose reader left at /dev/null; what it still buffers goes there too."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file descriptor (a test's capture): nothing reads it anyway
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class _PipeGuard:
    """sys.stdout or sys.stderr, whose reader may leave: a broken pipe silences the stream
    instead of raising, for every writer (rich, Click's help, the flush at exit)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, s: str) -> int:
        try:
            return self._stream.write(s)
        except BrokenPipeError:
            self._gone()
            return len(s)

    def writelines(self, lines) -> None:
        for s in lines:
            self.write(s)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        _to_devnull(self._stream)
        try:
            self._stream.flush()  # what was buffered for the reader goes to /dev/null
        except (BrokenPipeError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Wrap sys.stdout and sys.stderr once (the consoles below write to whatever they are)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _PipeGuard):
            setattr(sys, name, _PipeGuard(stream))


# Not on a terminal (a pipe, a CI log, a file) lines are never wrapped nor table cells cut with
# "…": a path printed there is copied or grepped whole. Wide enough for any line, yet bounded.
UNWRAPPED_WIDTH = 100_000


class _Console(Console):
    @property
    def size(self) -> ConsoleDimensions:
        """A terminal's own size; anything else is unbounded: even with a terminal on another
        stream (``harness list | cat``) or COLUMNS set, which describe a terminal, not a pipe."""
        if not self.is_terminal:
            return ConsoleDimensions(UNWRAPPED_WIDTH, 25)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def on_broken_pipe(self) -> None:
        """Rich's default exits 1 ("unsafe") and silences stdout even for stderr: silence this
        console's own stream and go on (reached only when ``guard_streams`` was not called)."""
        self.quiet = True
        _to_devnull(self.file)


# No markup and no emoji codes at all, even in a plain str or a table cell: styles come from
# Text and (text, style) pieces, so "[/]" or ":x:" in an error text or a path stays as it is.
out = _Console(markup=False, emoji=False)
err = _Console(stderr=True, markup=False, emoji=False)


def line(*parts: Part, style: str = "") -> Text:
    """One line from pieces never read as markup: a str is literal, (str, style) is styled."""
    return Text.assemble(*parts, style=style)


def cell(value: Any, style: str = "") -> Text:
    """A table cell that is literal text (a str cell would be read as markup)."""
    return Text(str(value), style=style)


def say(*parts: Part, style: str = "", to: Console | None = None, soft_wrap: bool = False) -> None:
    """Print one line of literal pieces (see ``line``) on stdout, or on ``to``."""
    (to or out).print(line(*parts, style=style), soft_wrap=soft_wrap)


def echo(s: str) -> None:
    """Write text exactly as it is (JSON for a pipe), with its newline."""
    if sys.stdout is None:  # started with stdout closed (>&-): nobody to tell
        return
    sys.stdout.write(s + "\n")
    sys.stdout.flush()


def print_json(obj: Any) -> None:
    """A command's --json form: one JSON document on stdout, nothing else there (notices and
    errors go to stderr); a value JSON has no word for is its text."""
    import json

    echo(json.dumps(obj, indent=2, default=str, allow_nan=False))


def option_json(name: str, o: Any) -> dict[str, Any]:
    """A declared option (``backends.option_values.Option``, or a plain text default) as
    ``--json`` lists it: name, default, type, meaning, and its flag, unit, bounds and words."""
    if isinstance(o, str):  # a plain text default
        return {"name": name, "default": o, "type": "str", "help": ""}
    d: dict[str, Any] = {
        "name": name,
        "default": o.default,
        "type": o.type.__name__,
        "help": o.help,
    }
    extra = {"flag": o.flag, "unit": o.unit, "min": o.lo, "max": o.hi, "choices": o.choices}
    d |= {
        k: (list(v) if k == "choices" else v) for k, v in extra.items() if v not in (None, "", ())
    }
    if o.lo_open:
        d["min_exclusive"] = True
    return d


def verdict_text(valid) -> Text:
    """A verdict in colour: the checkers' words (VALID, INVALID; anything else UNKNOWN)."""
    from checkers import verdict_word

    word = verdict_word(valid)
    word = word if word in STYLE else "unknown"
    return Text(word.upper(), style=STYLE.get(word, "bold yellow"))


def print_non_durable(config: dict) -> None:
    from reports.view import non_durable

    for msg in non_durable(config):
        # Unwrapped: the line is meant to be found (grep) as one line.
        say(msg, style="yellow", soft_wrap=True)


def print_remedies(results: dict, config: dict, run_dir: Path | str | None) -> None:
    """What to do about an INVALID run, each with the command that shows it working (the
    report's "What to do"), one line each so a terminal's copy and paste gets it whole."""
    from reports.remedies import remedies

    for m in remedies(results, config, run_dir):
        say(f"remedy: {m.title} ({m.change}): ", m.command, soft_wrap=True)


def print_verdict(results: dict) -> None:
    v = results.get("valid")
    say("verdict: ", verdict_text(v), "  ", str(results.get("summary", "")))
    for name, r in results.get("checkers", {}).items():
        say(f"  {name:8} ", str(r.get("summary", "")))
    if results.get("faults"):
        from checkers.faults import text

        say(f"  {'faults':8} ", text(results["faults"]))
    from reports.lock import lock_lines

    for label, words in lock_lines(results):  # the model that judged it; lapses explained
        say(f"  {label:8} ", words)
    if v is False:  # the violation stands; the summary then leaves out what else was wrong
        for why in results.get("unknown_because", []):
            say("also: ", str(why), style="yellow")
    if results.get("partial"):
        say(
            f"partial: {results['problem_count']} line(s) could not be read; first: ",
            str(results["problems"][0]),
            style="yellow",
        )
    for dup in results.get("duplicate_indexes", [])[:3]:
        say("duplicate: ", str(dup), style="yellow")
