"""A third-party nemesis, registered as an installed package would register it (an entry point
in the ``harness.nemeses`` group of a dist-info on the path), is listed by ``harness nemeses``
and injects its faults in a real run, as the built-in ones do (they are registered the same
way)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from harness.nemesis import GROUP, names, nemesis_class
from harness.nemesis.base import Nemesis

from .conftest import harness

PLUGIN = '''
"""A nemesis shipped by another package: SIGSTOP every node of the lock, SIGCONT them."""

from harness.nemesis.base import Nemesis


class FreezeAll(Nemesis):
    name = "freeze-all"
    description = "SIGSTOP every node of the lock, SIGCONT them after the interval"

    def start(self):
        for node in self.env.cluster.nodes:
            self.env.cluster.pause_node(node)
        return {"nodes": [n.name for n in self.env.cluster.nodes]}

    def stop(self):
        for node in self.env.cluster.nodes:
            self.env.cluster.resume_node(node)
        return {"nodes": [n.name for n in self.env.cluster.nodes]}

    def teardown(self):
        self.stop()
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A directory holding the plug-in's module and its installed metadata (a dist-info with
    the entry point), as ``pip install`` would leave them in site-packages."""
    site = tmp_path / "site"
    info = site / "freeze_nemesis-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "freeze_nemesis.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: freeze-nemesis\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nfreeze-all = freeze_nemesis:FreezeAll\n")
    return site


def _env(site: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "COLUMNS": "250"}  # a table row on one line


def test_the_built_in_nemeses_are_entry_points() -> None:
    assert {"partition", "kill", "pause", "client-pause", "clock"} <= set(names())
    for name in names():
        cls = nemesis_class(name)
        assert issubclass(cls, Nemesis) and cls.name == name


def test_a_third_party_nemesis_is_listed(plugin_path: Path) -> None:
    p = harness("nemeses", env=_env(plugin_path))
    assert p.returncode == 0, p.stderr
    assert "freeze-all" in p.stdout and "SIGSTOP every node of the lock" in p.stdout
    assert "freeze-all" not in harness("nemeses", env={"COLUMNS": "250"}).stdout  # not installed


def test_a_third_party_nemesis_injects_faults_in_a_run(
    redis_bin: None, plugin_path: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s"
    p = harness(
        "run", "-b", "redis", "-n", "freeze-all", "--nemesis-interval", "1", "-t", "4",
        "--store", str(store), env=_env(plugin_path),
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(next(store.rglob("results.json")).read_text())
    fault = res["faults"]["freeze-all"]
    assert fault["injected"] >= 1 and fault["healed"] == fault["injected"], fault
    assert res["valid"] is True


def test_an_unknown_nemesis_names_the_installed_ones(plugin_path: Path, tmp_path: Path) -> None:
    p = harness(
        "run", "-b", "redis", "-n", "freeze-al", "--store", str(tmp_path / "s"),
        env=_env(plugin_path),
    )  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "unknown nemesis 'freeze-al'" in p.stderr and "freeze-all" in p.stderr
