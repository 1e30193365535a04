"""Formats for other tools: Jepsen EDN (``edn``), JUnit XML for CI (``junit``), and the pytest
plugin a lock library's CI uses (``pytest_plugin``)."""
