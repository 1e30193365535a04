"""A Ctrl-C between a child's start and the record of its pid is held until the pid is
recorded (``harness.runtime.lifeline.pid_recorded``), then delivered to the handler that was
there: teardown, which ends children by their recorded pids, then finds the child."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from harness.runtime.lifeline import pid_recorded


def test_a_ctrl_c_inside_the_block_is_delivered_after_it() -> None:
    recorded: list[int] = []
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with pid_recorded():
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            # Lands while the child's pid is not yet kept. Sent to this (the main) thread: a
            # process-wide kill() may be taken by another thread of the test process and run its
            # Python handler only after the block, which then proves nothing.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            recorded.append(child.pid)  # still runs: the interrupt waits for the block's end
    try:
        assert recorded == [child.pid]
        assert signal.getsignal(signal.SIGINT) is before  # the old handler is back
    finally:
        child.kill()
        child.wait(10)


def test_nothing_held_means_nothing_delivered() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pid_recorded():
        pass
    assert signal.getsignal(signal.SIGTERM) is before
