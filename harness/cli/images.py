"""``harness images``: server images for the Docker runtime, built from Debian packages."""

from __future__ import annotations

import os
import re

import click
from rich.table import Table

from .app import main
from .errors import UserError, friendly
from .output import err, out


@main.group()
def images() -> None:
    """Server images for the Docker runtime, built from Debian packages (no registry)."""


@images.command("build")
@click.argument("kinds", nargs=-1)
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite.")
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
    docker import. Cached by a hash of the recipe.

    \b
    Examples:
      harness images build
      harness images build redis --suite bullseye
    """
    from ..containers import images as img

    if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", suite):
        raise UserError(f"--suite {suite!r}: give a Debian suite name, e.g. bookworm")
    chosen = list(kinds) or [k for k in img.RECIPES if k != "harness"]
    bad = [k for k in chosen if k not in img.RECIPES]
    if bad:
        raise UserError(f"no image recipe for {bad[0]!r}; valid: {', '.join(img.RECIPES)}")
    if os.geteuid() != 0:
        raise UserError("harness images build needs root (debootstrap and chroot)")
    for k in chosen:
        path = img.build(k, suite, say=lambda s: err.print(s, highlight=False, soft_wrap=True))
        out.print(f"{img.tag_for(k, suite)}: {path}", highlight=False, soft_wrap=True)
        if docker_host:
            import docker

            client = docker.DockerClient(base_url=docker_host, timeout=300)
            try:
                img.ensure(client, img.tag_for(k, suite))
            finally:
                client.close()


@images.command("list")
def images_list() -> None:
    """The images built here (cached tarballs) and the package versions they hold."""
    from ..containers import images as img

    t = Table("image", "packages", "file")
    for m in img.built():
        t.add_row(m["tag"], ", ".join(f"{k} {v}" for k, v in m["packages"].items()), m["file"])
    out.print(t)
