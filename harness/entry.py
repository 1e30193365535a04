"""The ``harness`` command's entry point (``python -m harness`` and the installed script).

Loading the command line takes a while (over a second on a loaded machine): a Ctrl-C in that
time ends it as one later does, ``error: interrupted`` and exit 2, never a traceback (Python's
own KeyboardInterrupt during an import) nor Click's "Aborted!" and exit 1 (1 means "this lock is
unsafe"). Once a command runs, its own handling takes over (``cli.errors.HarnessGroup``)."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _interrupted_while_loading(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"error: interrupted\n")  # no Python stream: it may be half set up
    # Not SystemExit: raised inside an import it can be swallowed (a bare ``except:`` in a
    # library: the run then went on and exited 0) or crash an extension module's half-done
    # initialisation (SIGSEGV). Nothing has started yet that needs cleaning up.
    os._exit(2)


# How the command group (harness.cli.errors.HarnessGroup) knows it, without importing this
# module: when a command runs, Ctrl-C becomes a KeyboardInterrupt again.
_interrupted_while_loading.while_loading = True  # type: ignore[attr-defined]


def loading_handler() -> None:
    """Until a command runs: a Ctrl-C exits 2 quietly. A SIGINT the parent ignored (a
    background job of a script) stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_while_loading)


def main() -> None:
    loading_handler()
    from .cli import main as cli

    cli()


if __name__ == "__main__":
    sys.exit(main())
