"""Two server versions side by side: a campaign's backend entry carries its runtime and images
(part of the cell's identity, passed on to each run's command), and the comparison shows, row by
row, the version each run's servers reported. The last test runs two locally built redis images
(bookworm's 7.0, bullseye's 6.0) in private engines."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from harness.campaign import plan as cplan
from harness.campaign import spec as cspec

from .conftest import harness

IMAGES = {"bookworm": "lockharness/redis:bookworm", "bullseye": "lockharness/redis:bullseye"}
SPEC = f"""
title = "redis 7.0 and 6.0 side by side"
seed = 11
backends = [
  {{name = "redis", label = "redis (bookworm)", runtime = "docker", images = {{redis = "{IMAGES["bookworm"]}"}}}},
  {{name = "redis", label = "redis (bullseye)", runtime = "docker", images = {{redis = "{IMAGES["bullseye"]}"}}}},
]
nemeses = ["none"]
[run]
time_limit = 3
keys = 1
concurrency = 3
"""


def _campaign(text: str = SPEC) -> cspec.Campaign:
    return cspec.build(tomllib.loads(text), {}, source="test")


def test_images_are_part_of_a_cell_and_of_its_runs_command(tmp_path: Path) -> None:
    from harness.cli import main

    with_local = SPEC.replace("backends = [", 'backends = ["redis",')
    c = _campaign(with_local)
    keys = [cell.key for cell in c.cells()]
    assert keys == [
        "redis / mutex / none",  # a local backend's identity is what it was before
        f"redis@docker[redis={IMAGES['bookworm']}] / mutex / none",
        f"redis@docker[redis={IMAGES['bullseye']}] / mutex / none",
    ]
    runs = cplan.plan(c)
    assert len({r.seed for r in runs}) == 3 and len({r.id for r in runs}) == 3
    manifest_cells = [cell.as_dict() for cell in c.cells()]
    assert manifest_cells[2]["backend"]["images"] == {"redis": IMAGES["bullseye"]}
    assert manifest_cells[2]["backend"]["docker_host"] == "private"
    assert manifest_cells[2]["backend"]["label"] == "redis (bullseye)"
    for r, image in zip(runs[1:], IMAGES.values(), strict=True):
        argv = cplan.run_argv(cplan.run_config(r.cell, c.run, r.seed, r.store(tmp_path)))
        p = main.commands["run"].make_context("run", argv[1:]).params
        assert p["runtime"] == "docker" and p["docker_host"] == "private"
        assert p["image_opts"] == (f"redis={image}",)
    local = cplan.run_argv(cplan.run_config(runs[0].cell, c.run, runs[0].seed, tmp_path))
    assert "--runtime" not in local and "--image" not in local
    # Another image is another campaign (resume and shards never mix their runs); the
    # engine is where a run happens, not what it tests: not part of the identity.
    other = _campaign(SPEC.replace("redis:bullseye", "redis:trixie"))
    assert other.fingerprint != _campaign().fingerprint
    elsewhere = _campaign(
        SPEC.replace('runtime = "docker",', 'runtime = "docker", docker_host = "unix:///x",')
    )
    assert elsewhere.fingerprint == _campaign().fingerprint
    assert cplan.run_config(elsewhere.cells()[0], c.run, 1, tmp_path).docker_host == "unix:///x"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('{name = "redis", runtime = "podman"}', "runtime is local or docker"),
        ('{name = "redis", images = {redis = "redis:7"}}', 'need runtime = "docker"'),
        ('{name = "redis", runtime = "docker", images = {redis = 7}}', "images is a table"),
        ('{name = "redis", runtime = "docker", docker_host = ""}', "docker_host is private"),
        ('{name = "redis", label = "r"}, {name = "etcd", label = "r"}', "given to two entries"),
    ],
)
def test_bad_runtime_entries_say_what_is_accepted(entry: str, message: str) -> None:
    with pytest.raises(cspec.SpecError, match=message):
        _campaign(f"backends = [{entry}]")


def test_runtime_is_a_backends_and_bad_input_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(cspec.SpecError, match="runtime and images are a backend's"):
        _campaign('backends = ["redis"]\nworkloads = [{name = "mutex", runtime = "docker"}]')
    f = tmp_path / "c.toml"
    f.write_text('backends = [{name = "redis", runtime = "podman"}]')
    p = harness("compare", "--spec", str(f), "--store", str(tmp_path / "s"), timeout=60)
    assert p.returncode == 2 and "runtime is local or docker" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def test_an_image_not_built_is_not_available_here_before_anything_runs(tmp_path: Path) -> None:
    """No run is started for an image the private engine could not have: the cell says how to
    build it (or why no private engine can start here)."""
    f = tmp_path / "c.toml"
    f.write_text(SPEC.replace(IMAGES["bullseye"], "lockharness/redis:nosuchsuite"))
    store = tmp_path / "s"
    p = harness("compare", "--spec", str(f), "--store", str(store), "--dry-run", timeout=60)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    line = next(ln for ln in p.stdout.splitlines() if "nosuchsuite] / mutex / none:" in ln)
    assert "not available here" in line, p.stdout
    from harness.containers.engine import available

    if available()[0]:
        assert "harness images build redis --suite nosuchsuite" in " ".join(p.stdout.split())


def test_images_build_takes_a_suite_per_kind() -> None:
    p = harness("images", "build", "redis:bullseye", "redis:BAD", timeout=60)
    assert p.returncode == 2 and "suite 'BAD' (of redis)" in p.stderr, p.stderr
    assert "lockharness/redis:" not in p.stdout  # refused before anything was built


@pytest.mark.slow
def test_two_redis_versions_side_by_side_in_one_campaign(tmp_path: Path) -> None:
    from harness.containers import engine as eng
    from harness.containers import images

    ok, why = eng.available()
    if not ok:
        pytest.skip(f"no private Docker engine here: {why} (./setup.sh installs docker.io)")
    # Both versions from one command (cached by recipe hash: instant after the first build).
    built = harness("images", "build", *(f"redis:{suite}" for suite in IMAGES), timeout=900)
    assert built.returncode == 0, built.stderr
    assert built.stdout.count("lockharness/redis:") == 2, built.stdout
    packages = {
        m["tag"]: m["packages"]["redis-server"]
        for m in images.built()
        if m["tag"] in IMAGES.values()
    }
    f = tmp_path / "versions.toml"
    f.write_text(SPEC)
    store = tmp_path / "store"
    p = harness("compare", "--spec", str(f), "--store", str(store), "--jobs", "2", timeout=600)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr

    manifest = json.loads((store / "campaign.json").read_text())
    assert [c["backend"]["images"]["redis"] for c in manifest["cells"]] == list(IMAGES.values())
    for r, image in zip(manifest["runs"], IMAGES.values(), strict=True):
        assert "--runtime docker" in r["command"] and "--docker-host private" in r["command"]
        assert f"--image redis={image}" in r["command"]

    doc = json.loads((store / "comparison.json").read_text())
    versions: dict[str, str] = {}
    for cell, image in zip(doc["cells"], IMAGES.values(), strict=True):
        assert cell["images"] == {"redis": image} and cell["runs"] == 1, cell
        assert cell["verdict"] == "valid", cell["per_run"][0]["summary"]
        (run,) = cell["per_run"]
        config = json.loads((Path(run["run_dir"]) / "config.json").read_text())
        reported = {(s["version"], s["image"]) for s in config["servers"] if s["kind"] == "redis"}
        ((version, ran),) = reported  # the server itself said it, from the image given
        assert ran == image and version and version in packages[image], (version, packages)
        assert cell["server_versions"] == [
            {"kind": "redis", "version": version, "image": image, "runs": 1}
        ]
        versions[image] = version
    assert len(set(versions.values())) == 2, versions  # two versions, not one twice
    assert {(s["version"], s["image"]) for s in doc["header"]["reported_versions"]} == {
        (v, i) for i, v in versions.items()
    }
    assert "redis" not in doc["header"]["server_versions"]  # the host's binary did not run

    page = (store / "comparison.html").read_text()
    md = (store / "comparison.md").read_text()
    for image, version in versions.items():
        shown = f"redis {version} ({image})"
        assert page.count(shown) == 2, shown  # beside its row, and in the header
        assert any(ln.startswith("| redis (") and shown in ln for ln in md.splitlines()), md

    # The same command again resumes: the cells (images included) are found finished.
    again = harness("compare", "--spec", str(f), "--store", str(store), timeout=300)
    assert again.returncode == 0 and "resuming: 2 of 2 runs finished before" in again.stdout

    # The two stored runs gathered bare: still two rows, told apart by their images.
    bare = harness(
        "compare", *(c["per_run"][0]["run_dir"] for c in doc["cells"]),
        "--out", str(tmp_path / "bare" / "comparison.html"), timeout=300,
    )  # fmt: skip
    assert bare.returncode == 0, bare.stdout + bare.stderr
    rows = json.loads((tmp_path / "bare" / "comparison.json").read_text())["cells"]
    assert sorted(c["server_versions"][0]["version"] for c in rows) == sorted(versions.values())
