"""How the command line fails: one line on stderr and exit 2, never a traceback (exit 1 is
kept for INVALID: "this lock is unsafe")."""

from __future__ import annotations

import functools
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import NoReturn

import click

from backends.errors import LockHarnessError

from .output import err, guard_streams, say


class UserError(LockHarnessError):
    """One line for the user, exit 2."""


def say_error(msg: str) -> None:
    # One line; literal text: a path like /tmp/[x] or a server's "[errno 111]" is not markup.
    say(("error:", "red"), " ", " ".join(msg.split()), to=err, soft_wrap=True)


def fail(msg: str) -> NoReturn:
    """One line on stderr, exit 2 (exit 1 is kept for INVALID: "this lock is unsafe")."""
    say_error(msg)
    sys.exit(2)


def os_error_text(e: OSError) -> str:
    if e.filename is None:
        return str(e)
    return f"{e.strerror}: {e.filename}"


def internal_error(e: BaseException) -> str:
    """Name an unexpected error in one line; the traceback goes to a file for a bug report."""
    where = ""
    try:
        fd, path = tempfile.mkstemp(prefix="lockharness-error-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(" ".join(sys.argv) + "\n\n" + traceback.format_exc())
        where = f" (traceback in {path})"
    except OSError:
        pass
    return f"internal error: {type(e).__name__}: {e}{where}"


def expected_errors() -> tuple[type[Exception], ...]:
    """Failures with a message meant for the user, printed as they are: the project's own
    errors (``LockHarnessError``) and bad values (``ValueError``, e.g. from option parsing)."""
    return (LockHarnessError, ValueError)


def friendly(fn):
    """Turn every failure into one line on stderr and exit 2, never a traceback: expected
    failures say what was wrong, anything else is an internal error (traceback saved)."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        expected = expected_errors()
        try:
            return fn(*a, **kw)
        except (click.exceptions.Exit, click.UsageError):
            raise  # --help, --version and Click's usage errors (exit 2) stay Click's
        except click.ClickException as e:
            fail(e.format_message())
        except expected as e:
            fail(str(e))
        except OSError as e:
            fail(os_error_text(e))
        except (KeyboardInterrupt, click.Abort):
            fail("interrupted")
        except Exception as e:
            fail(internal_error(e))

    return wrapper


class HarnessGroup(click.Group):
    """Every command, with or without @friendly, ends in one line and exit 2 on a failure; a
    reader that leaves (``| head``, ``| grep -q``) never changes the exit code."""

    def main(self, *args, **kwargs):
        guard_streams()  # before Click's own output too: --help | true is still exit 0
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        # Loaded: Ctrl-C is a KeyboardInterrupt again (handled by friendly), where the entry
        # point (harness/entry.py) had made it a quiet exit while the command line loaded.
        if getattr(signal.getsignal(signal.SIGINT), "while_loading", False):
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return friendly(super().invoke)(ctx)


def check_writable_file(path: str, flag: str, example: str) -> None:
    """Refuse, before a run, an output file that could not be written after it: by trying it
    (as root, access() says yes to /proc and read-only mounts alike). Nothing is left behind:
    an existing file is opened to append (not changed), a new one is created and removed."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {path} is a directory: give a file path, e.g. {p / example}")
    parent = next((a for a in p.absolute().parents if a.exists()), Path("/"))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: cannot write under {parent}")
    try:
        if p.exists():
            with open(p, "ab"):
                pass
        elif parent == p.absolute().parent:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            p.unlink()
        else:  # its directories are made when it is written: try the one that exists
            fd, probe = tempfile.mkstemp(dir=parent, prefix=".lockharness-probe-")
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write it ({e.strerror or e})") from None
