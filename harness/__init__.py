"""lockharness: a Jepsen-style correctness and chaos harness for distributed locks."""

__version__ = "0.1.0"
