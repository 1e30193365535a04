"""The machine a benchmark ran on: its load and cores, printed at the start and at the end.

These machines are shared, so a figure means little without the load it was measured under.
A benchmark's ``main`` calls ``print_load()`` once, first thing: it prints the start line now
and the end line when the interpreter exits (forked workers leave through ``os._exit`` and print
nothing).
"""

from __future__ import annotations

import atexit
import time

from harness.run import machine


def print_load(name: str = "") -> None:
    """Print the load averages and core count now, and again at exit (with the elapsed time)."""
    t0 = time.monotonic()
    label = f"{name}: " if name else ""

    def line(when: str) -> str:
        one, five, fifteen = machine.load()
        c = machine.cores()
        cores = f"{c['cores']} cores" + (f" ({c['usable']} usable)" if c["usable"] else "")
        return f"{label}machine {when}: load average {one:.2f} {five:.2f} {fifteen:.2f}, {cores}"

    print(line("at start"), flush=True)
    atexit.register(
        lambda: print(line(f"at end ({time.monotonic() - t0:.0f} s later)"), flush=True)
    )
