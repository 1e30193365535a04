"""The ``harness`` command group; the commands live in ``run_commands``, ``run_dirs`` and
``catalog``."""

from __future__ import annotations

import click

from .errors import HarnessGroup


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lockharness")
def main() -> None:
    """A Jepsen-style correctness and chaos harness for distributed locks.

    \b
    Examples:
      harness run --backend redis --time-limit 20
      harness run --backend unsafe-redis --concurrency 8 --time-limit 20
      harness check store/latest
      harness list
      harness doctor
    """
