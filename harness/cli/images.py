"""``harness images``: server images for the Docker runtime, built from Debian packages."""

from __future__ import annotations

import os
import re

import click
from rich.table import Table

from .app import main
from .errors import UserError, friendly
from .output import cell, err, out, say


@main.group()
def images() -> None:
    """Server images for the Docker runtime, built from Debian packages (no registry)."""


@images.command("build")
@click.argument("kinds", nargs=-1)
@click.option(
    "--suite",
    default="bookworm",
    show_default=True,
    help="Debian suite (of every KIND given without :SUITE).",
)
@click.option(
    "--docker-host",
    default=None,
    metavar="URL",
    help="Also import the images into this engine (else they wait in the cache and are "
    "imported by each run that needs them).",
)
@friendly
def images_build(kinds, suite, docker_host) -> None:
    """Build lockharness/KIND:SUITE from Debian packages: debootstrap, apt-get in a chroot,
    docker import. Cached by a hash of the recipe. KIND:SUITE picks a suite for one kind, so
    two versions of a server build in one command (bookworm's redis 7.0, bullseye's 6.0).

    \b
    Examples:
      harness images build
      harness images build redis --suite bullseye
      harness images build redis:bookworm redis:bullseye
      harness images build toxiproxy --docker-host unix:///run/docker.sock
    (toxiproxy: Shopify's toxiproxy-server alone, from TOXIPROXY_SERVER or
    ../shared/tools/toxiproxy/, for docker-compose.yml's LH_TOXIPROXY_IMAGE.)
    """
    from ..containers import images as img

    if "toxiproxy" in kinds:  # one static binary, imported straight into an engine
        if not docker_host:
            raise UserError(
                "harness images build toxiproxy: give --docker-host URL to import it into"
            )
        import docker

        client = docker.DockerClient(base_url=docker_host, timeout=300)
        try:
            say(str(img.toxiproxy_image(client)))
        finally:
            client.close()
        kinds = tuple(k for k in kinds if k != "toxiproxy")
        if not kinds:
            return
    given = list(kinds) or [k for k in img.recipe_names() if k != img.HARNESS]
    chosen = [  # KIND, KIND:SUITE or the image's tag (lockharness/KIND:SUITE)
        (k, s or suite)
        for k, _, s in (x.removeprefix(f"{img.REPO}/").partition(":") for x in given)
    ]
    for k, s in chosen:
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", s):
            raise UserError(f"suite {s!r} (of {k}): give a Debian suite name, e.g. bookworm")
        if k not in img.recipe_names():
            raise UserError(
                f"no image recipe for {k!r}; valid: {', '.join(img.recipe_names())} "
                "(each optionally as KIND:SUITE, e.g. redis:bullseye)"
            )
    if os.geteuid() != 0:
        raise UserError("harness images build needs root (debootstrap and chroot)")
    for k, s in chosen:
        path = img.build(k, s, say=lambda x: say(str(x), to=err, soft_wrap=True))
        say(f"{img.tag_for(k, s)}: {path}", soft_wrap=True)
        if docker_host:
            import docker

            client = docker.DockerClient(base_url=docker_host, timeout=300)
            try:
                img.ensure(client, img.tag_for(k, s))
            finally:
                client.close()


@images.command("list")
def images_list() -> None:
    """The images built here (cached tarballs) and the package versions they hold."""
    from ..containers import images as img

    t = Table("image", "packages", "file")
    for m in img.built():
        packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        t.add_row(cell(m["tag"]), cell(packages), cell(m["file"]))
    out.print(t)
