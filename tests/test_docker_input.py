"""Bad input for the Docker runtime: one line, exit 2, nothing stored; and the image recipes'
mirror comes from apt's own sources, never a hard-coded host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.containers import images
from harness.runtime.base import ImageRecipe

from .conftest import harness

BAD = [
    (["--image", "redis=redis:7"], "--image needs --runtime docker"),
    (["--docker-host", "private"], "--docker-host and --docker-netns need --runtime docker or"),
    (["--runtime", "compose", "--docker-host", "private"], "starts an empty engine"),
    (["--runtime", "docker", "--image", "nosuch=x:1"], "no server kind 'nosuch'"),
    (["--runtime", "docker", "--image", "redis"], "--image takes NAME=VALUE"),
    (["--runtime", "docker", "-b", "zookeeper"], "zookeeper does not run in containers yet"),
    (
        ["--runtime", "docker", "-b", "postgres", "--opt", "failover=true"],
        "not in containers yet",
    ),
    (["--runtime", "docker", "--docker-netns", "lh-no-such-ns"], "no such namespace"),
    (["--runtime", "podman"], "Invalid value for '--runtime'"),
]


@pytest.mark.parametrize(("args", "says"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_docker_input_is_one_line(tmp_path, args, says) -> None:
    store = tmp_path / "store"
    # A later -b in args wins over the first.
    p = harness("run", "-b", "redis", "-t", "1", "--store", str(store), *args, timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    assert says in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not store.exists()


def test_images_build_refuses_an_unknown_kind() -> None:
    p = harness("images", "build", "nosuch", timeout=60)
    assert p.returncode == 2 and "no image recipe for 'nosuch'" in p.stderr, p.stderr


def test_mirror_is_taken_from_apt_sources(tmp_path: Path) -> None:
    apt = tmp_path / "etc/apt/sources.list.d"
    apt.mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n"
    )
    (apt / "sec.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    assert images.mirror_for("bookworm", tmp_path) == "http://mirror.example/debian"
    # Another suite comes from the main archive apt already uses, never the security one.
    assert images.mirror_for("bullseye", tmp_path) == "http://mirror.example/debian"
    (tmp_path / "etc/apt/sources.list").write_text("")
    with pytest.raises(images.ImageError, match="no Debian mirror"):
        images.mirror_for("bookworm", tmp_path)


def test_recipe_hash_changes_with_what_the_image_holds() -> None:
    r = images.recipe("redis")
    assert images.recipe_hash("redis", r, "bookworm") == images.recipe_hash("redis", r, "bookworm")
    assert images.recipe_hash("redis", r, "bookworm") != images.recipe_hash("redis", r, "bullseye")
    other = ImageRecipe(("redis-server", "redis-tools"))
    assert images.recipe_hash("redis", other, "bookworm") != images.recipe_hash(
        "redis", r, "bookworm"
    )


def test_partition_without_a_namespace_is_said_before_start(tmp_path) -> None:
    """A user's engine in the host's network: one line says partitions cut client links only;
    an engine that does not answer is refused before anything is stored."""
    store = tmp_path / "store"
    p = harness(
        "run", "-b", "redis", "-t", "3", "-n", "partition", "--nemesis-interval", "1",
        "--runtime", "docker", "--docker-host", f"unix://{tmp_path}/none.sock",
        "--store", str(store), timeout=60,
    )  # fmt: skip
    assert p.returncode == 2, p.stdout + p.stderr
    assert "no Docker engine answers at unix://" in p.stderr and "Traceback" not in p.stderr
    assert not store.exists()


def test_partition_in_the_hosts_network_says_what_it_cannot_cut() -> None:
    from harness.run.config import RunConfig
    from harness.run.container_runs import notices as runtime_notices

    users = dict(runtime="docker", docker_host="unix:///var/run/docker.sock")
    (line,) = runtime_notices(RunConfig(nemesis=["partition"], **users))
    assert "partitions cut client<->node links only" in line
    assert runtime_notices(RunConfig(nemesis=["kill", "pause"], **users)) == []
    assert runtime_notices(RunConfig(nemesis=["partition"], docker_netns="ns", **users)) == []
    private = RunConfig(runtime="docker", docker_host="private", nemesis=["partition"])
    assert runtime_notices(private) == []


def test_firewall_takes_over_a_chain_a_killed_run_left() -> None:
    """A Docker engine's namespace outlives runs: a run killed mid-partition leaves its chain
    there, and the next run's firewall must start from it (empty, one jump), then remove it."""
    import subprocess

    from harness.net import netns
    from harness.net.firewall import CHAIN, Firewall

    ok, why = netns.available()
    if not ok:
        pytest.skip(why)

    def output_rules() -> list[str]:
        out = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
        return [ln for ln in out.splitlines() if CHAIN in ln]

    with netns.private_netns():
        Firewall()._ipt("-A", CHAIN, "-d", "127.0.0.99", "-j", "DROP")  # "killed": not closed
        fw = Firewall()
        assert output_rules() == [f"-N {CHAIN}", f"-A OUTPUT -j {CHAIN}"]
        fw.close()
        assert output_rules() == []


def test_a_kind_runs_from_its_image_built_here_by_default(tmp_path: Path) -> None:
    """No --image: lockharness/KIND:bookworm once `harness images build` made it (a private
    engine never pulls an official image), else the official one; the run says which."""
    from harness.run import container_runs
    from harness.run.config import RunConfig

    assert images.default_image("redis", tmp_path) == "redis:7.0"  # nothing built here
    tar = images._tarball("redis", "bookworm", tmp_path)
    tar.write_bytes(b"")
    images._meta("redis", "bookworm", tmp_path).write_text("{}")
    assert images.default_image("redis", tmp_path) == "lockharness/redis:bookworm"
    cfg = RunConfig(
        runtime="docker", docker_host="private", images={"redis": images.tag_for("redis")}
    )
    assert container_runs.notices(cfg) == [
        "--runtime docker: redis from image lockharness/redis:bookworm (built here by harness "
        "images build)"
    ]


def test_a_private_engine_run_uses_the_image_built_here(tmp_path: Path) -> None:
    """harness run --runtime docker --docker-host private, no --image: it runs from
    lockharness/redis:bookworm (a private engine has no official image) and says so."""
    from harness.containers.engine import available

    ok, why = available()
    if not ok:
        pytest.skip(f"no private Docker engine here: {why}")
    if images.not_built(images.tag_for("redis")):
        pytest.skip("lockharness/redis:bookworm is not built here (harness images build redis)")
    store = tmp_path / "store"
    p = harness("run", "-b", "redis", "--runtime", "docker", "--docker-host", "private",
                "-t", "2", "--no-report", "--store", str(store), timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert "redis from image lockharness/redis:bookworm" in p.stderr
    config = json.loads(next(store.glob("redis-mutex-none/*/config.json")).read_text())
    assert config["images"] == {"redis": "lockharness/redis:bookworm"}
