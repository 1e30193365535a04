"""The root of the project's own error classes.

Every failure the harness reports to a user in one line (a bad option, an unreadable history,
a server that does not start, a nemesis that cannot run here ...) derives from
``LockHarnessError``, so a caller (the command line, a pytest plug-in, a script) catches the
project's errors with one class and lets anything else surface as a bug. It lives in
``backends`` because that package imports nothing else of the project: every package may
import it without a cycle.
"""

from __future__ import annotations


class LockHarnessError(Exception):
    """A failure of lockharness with a message meant for the user (one line)."""
