"""Server images built from Debian packages, with no registry at all.

A build is ``debootstrap --variant=minbase SUITE`` (the mirror taken from apt's own sources),
then ``chroot ROOTFS apt-get install PACKAGES`` (the package scripts' services kept from
starting by a policy-rc.d), then the tree is packed into a tarball that ``docker import``
turns into an image tagged ``lockharness/KIND:SUITE``. (A Dockerfile ``RUN`` would need the
network inside the engine, which a private engine does not have.)

Tarballs are cached under ``/var/cache/lockharness/images`` by a content hash of their recipe
(suite, packages, settings): a second build, or a fresh engine that needs the image, only
imports the cached file (seconds). The image's label ``lockharness.recipe`` holds the hash, so
an image built from an older recipe is rebuilt rather than reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..runtime.base import ImageRecipe
from ..runtime.kinds import KINDS, with_image_recipe
from ..runtime.postgres import NO_MAIN_CLUSTER
from .engine import EngineError

CACHE = Path("/var/cache/lockharness/images")
REPO = "lockharness"
DEFAULT_SUITE = "bookworm"
RECIPE_VERSION = 1  # bump when the build steps change what an image holds
LABEL_RECIPE = "lockharness.recipe"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DEBOOTSTRAP_S = 600
_APT_S = 900


#: The base of the harness's own image (Dockerfile, BASE=lockharness/harness:SUITE): every
#: Debian server the local runtime starts, and what the run needs (iptables, gcc for the clock
#: shim, a venv). Not a server kind: the kinds' own recipes are on their classes.
HARNESS = "harness"
HARNESS_RECIPE = ImageRecipe(
    (
        "redis-server",
        "etcd-server",
        "zookeeper",
        "libslf4j-java",
        "postgresql",
        "mariadb-server",
        "iptables",
        "iproute2",
        "gcc",
        "libc6-dev",
        "python3-venv",
    ),
    files=(("etc/postgresql-common/createcluster.d/lockharness.conf", NO_MAIN_CLUSTER),),
)


def recipe_names() -> list[str]:
    """What ``harness images build`` can build: every kind with a recipe, and the harness."""
    return [*with_image_recipe(), HARNESS]


def recipe(name: str) -> ImageRecipe:
    """The recipe of a kind's image (or the harness's); ImageError when there is none."""
    if name == HARNESS:
        return HARNESS_RECIPE
    found = KINDS[name].image_recipe if name in KINDS else None
    if found is None:
        raise ImageError(f"no image recipe for {name!r}; known: {', '.join(recipe_names())}")
    return found


class ImageError(EngineError):
    """An image could not be built or found; one line for the user."""


def recipe_hash(name: str, recipe: ImageRecipe, suite: str) -> str:
    # The same document (and hash) as when a recipe carried its kind: cached images stay current.
    doc = {"v": RECIPE_VERSION, "suite": suite, "kind": name, **asdict(recipe)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def tag_for(kind: str, suite: str = DEFAULT_SUITE) -> str:
    return f"{REPO}/{kind}:{suite}"


def parse_tag(tag: str) -> tuple[str, str] | None:
    """(kind, suite) of a tag this module builds, else None."""
    m = re.fullmatch(rf"{REPO}/([a-z0-9-]+):([a-z0-9-]+)", tag)
    if m is None or m.group(1) not in recipe_names():
        return None
    return m.group(1), m.group(2)


def _tarball(kind: str, suite: str, cache: Path) -> Path:
    return cache / f"{kind}-{suite}-{recipe_hash(kind, recipe(kind), suite)}.tar"


def _base_tarball(suite: str, cache: Path) -> Path:
    h = hashlib.sha256(f"{RECIPE_VERSION}:minbase:{suite}".encode()).hexdigest()[:16]
    return cache / f"base-{suite}-{h}.tar"


def _meta(kind: str, suite: str, cache: Path) -> Path:
    return _tarball(kind, suite, cache).with_suffix(".json")


# -- the mirror, from apt's own sources -------------------------------------------------------


def apt_sources(root: Path = Path("/")) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every ``deb`` source in /etc/apt/sources.list{,.d/*}."""
    found: list[tuple[str, list[str]]] = []
    etc = root / "etc/apt"
    files = [etc / "sources.list"] + sorted((etc / "sources.list.d").glob("*.list"))
    for f in files:
        with contextlib.suppress(OSError):
            for line in f.read_text().splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 3 and words[0] == "deb":
                    rest = [w for w in words[1:] if not w.startswith("[")]
                    if "]" in " ".join(words[1:]):  # drop "[opts]" however it was spaced
                        rest = " ".join(words[1:]).split("]", 1)[1].split()
                    if len(rest) >= 2:
                        found.append((rest[0], [rest[1]]))
    for f in sorted((etc / "sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            for stanza in re.split(r"\n\s*\n", f.read_text()):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
                if (
                    "deb" in fields.get("types", "").split()
                    and fields.get("enabled", "yes") != "no"
                ):
                    for uri in fields.get("uris", "").split():
                        found.append((uri, fields.get("suites", "").split()))
    return found


def mirror_for(suite: str, root: Path = Path("/")) -> str:
    """The Debian archive apt already uses: one listing ``suite`` itself, else the main archive
    (a source with a plain suite, not -security/-updates), which serves every other suite."""
    sources = [(u, s) for u, s in apt_sources(root) if u.startswith(("http://", "https://"))]
    for uri, suites in sources:
        if suite in suites:
            return uri
    for uri, suites in sources:
        if any("-" not in s and "/" not in s for s in suites) and "security" not in uri:
            return uri
    raise ImageError(
        "no Debian mirror in apt's sources (/etc/apt/sources.list, /etc/apt/sources.list.d/): "
        "images are built from the mirror apt uses"
    )


# -- building ---------------------------------------------------------------------------------


def _run(argv: list[str], what: str, timeout: float, env: dict[str, str] | None = None) -> None:
    try:
        p = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ImageError(f"{what} took over {timeout:.0f} s") from None
    except FileNotFoundError:
        raise ImageError(f"{what}: {argv[0]} not found (apt-get install -y debootstrap)") from None
    if p.returncode != 0:
        lines = (p.stdout + "\n" + p.stderr).strip().splitlines()
        first = [ln for ln in lines if "error" in ln.lower()][:1] or lines[-1:] or ["(no output)"]
        raise ImageError(f"{what} failed (exit {p.returncode}): {first[0].strip()[:300]}")


def _pack(rootfs: Path, dest: Path) -> None:
    """Tar the tree (numeric owners, as they are) and rename into place: readers never see a
    half-written cache file."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
    _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tmp), "."], "tar", 600)
    os.replace(tmp, dest)


def _unpack(src: Path, rootfs: Path) -> None:
    rootfs.mkdir(parents=True, exist_ok=True)
    _run(["tar", "--numeric-owner", "-C", str(rootfs), "-xpf", str(src)], "tar -x", 600)


def _base(suite: str, cache: Path, say: Callable[[str], None]) -> Path:
    dest = _base_tarball(suite, cache)
    if dest.exists():
        return dest
    mirror = mirror_for(suite)
    say(f"debootstrap --variant=minbase {suite} (mirror from apt's sources)")
    with tempfile.TemporaryDirectory(prefix="lh-rootfs-", dir=cache) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            [
                shutil.which("debootstrap") or "/usr/sbin/debootstrap",
                "--variant=minbase",
                suite,
                str(rootfs),
                mirror,
            ],
            f"debootstrap {suite}",
            _DEBOOTSTRAP_S,
        )
        _pack(rootfs, dest)
    return dest


def build(
    kind: str,
    suite: str = DEFAULT_SUITE,
    cache: Path = CACHE,
    say: Callable[[str], None] = lambda s: None,
) -> Path:
    """The cached tarball of ``kind`` on ``suite``, built when missing."""
    rec = recipe(kind)
    dest = _tarball(kind, suite, cache)
    if dest.exists() and _meta(kind, suite, cache).exists():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    base = _base(suite, cache, say)
    say(f"{tag_for(kind, suite)}: apt-get install {' '.join(rec.packages)}")
    with tempfile.TemporaryDirectory(prefix="lh-rootfs-", dir=cache) as tmp:
        root = Path(tmp) / "rootfs"
        _unpack(base, root)
        for rel, text in rec.files:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        policy = root / "usr/sbin/policy-rc.d"  # no service starts inside the chroot
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        resolv = root / "etc/resolv.conf"
        resolv.unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", resolv)
        env = {"PATH": _SYSTEM_PATH, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        with _proc_mounted(root):  # some package scripts need /proc (Java's, for one)
            _run(
                [chroot, str(root), "apt-get", "update", "-q"],
                f"{kind}: apt-get update",
                _APT_S,
                env,
            )
            _run(
                [
                    chroot,
                    str(root),
                    "apt-get",
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    *rec.packages,
                ],
                f"{kind}: apt-get install {' '.join(rec.packages)}",
                _APT_S,
                env,
            )
            _run([chroot, str(root), "apt-get", "clean"], f"{kind}: apt-get clean", 120, env)
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        resolv.unlink(missing_ok=True)
        policy.unlink(missing_ok=True)
        path = [
            str(Path("/") / p.relative_to(root))
            for g in rec.path_globs
            for p in sorted(root.glob(g.lstrip("/")))
        ]
        versions = _versions(root, rec.packages)
        _pack(root, dest)
    meta = {
        "tag": tag_for(kind, suite),
        "recipe": recipe_hash(kind, rec, suite),
        "path": path,
        "packages": versions,
    }
    _meta(kind, suite, cache).write_text(json.dumps(meta))
    return dest


@contextlib.contextmanager
def _proc_mounted(root: Path):
    """/proc inside the chroot for the block; unmounted (lazily, so a straggler cannot keep
    it) however the block ends."""
    target = root / "proc"
    target.mkdir(exist_ok=True)
    _run(["mount", "-t", "proc", "proc", str(target)], "mount /proc in the chroot", 30)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def _versions(root: Path, packages: tuple[str, ...]) -> dict[str, str]:
    out = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f=${Package} ${Version}\n", *packages],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def import_image(client: Any, kind: str, suite: str, cache: Path = CACHE) -> str:
    """Import the cached tarball into the engine as ``lockharness/KIND:SUITE``."""
    tar = _tarball(kind, suite, cache)
    meta = json.loads(_meta(kind, suite, cache).read_text())
    tag = tag_for(kind, suite)
    path = ":".join([*meta["path"], _SYSTEM_PATH])
    changes = [f"ENV PATH={path}", f"LABEL {LABEL_RECIPE}={meta['recipe']}"]
    repo, t = tag.split(":")
    client.api.import_image_from_file(str(tar), repository=repo, tag=t, changes=changes)
    return tag


def _current(client: Any, tag: str, kind: str, suite: str) -> bool:
    try:
        img = client.images.get(tag)
    except Exception:
        return False
    return (img.labels or {}).get(LABEL_RECIPE) == recipe_hash(kind, recipe(kind), suite)


def not_built(tag: str, cache: Path = CACHE) -> str | None:
    """Why a lockharness image cannot come from the cache (with the command that builds it),
    or None (built, or not one of ours)."""
    ours = parse_tag(tag)
    if ours is None:
        return None
    kind, suite = ours
    if _tarball(kind, suite, cache).exists() and _meta(kind, suite, cache).exists():
        return None
    return f"image {tag} is not built: run `harness images build {kind} --suite {suite}`"


def default_image(kind: str, cache: Path = CACHE) -> str | None:
    """The image a kind runs from when no --image is given: ``lockharness/KIND:bookworm`` when
    it is built here (a private engine never pulls, and it is the server the local runtime
    runs), else the kind's official image; None when it has neither."""
    if kind in with_image_recipe():
        tag = tag_for(kind)
        if not_built(tag, cache) is None:
            return tag
    return KINDS[kind].official_image if kind in KINDS else None


def ensure(client: Any, tag: str, cache: Path = CACHE, pull: bool = True) -> None:
    """Make ``tag`` present in the engine: a lockharness image from the cache (built first when
    missing), any other image as it is or, with ``pull``, pulled (a private engine never pulls:
    its namespace has no network beyond loopback, and no registry is ever asked from there).
    ImageError (one line) when it cannot be."""
    ours = parse_tag(tag)
    if ours is not None:
        kind, suite = ours
        if _current(client, tag, kind, suite):
            return
        why = not_built(tag, cache)
        if why:
            raise ImageError(why)
        import_image(client, kind, suite, cache)
        return
    try:
        client.images.get(tag)
        return
    except Exception:
        pass
    if not pull:
        raise ImageError(
            f"image {tag} is not in the private engine, which never pulls from a registry: "
            f"build a local one with `harness images build` and pass --image KIND={REPO}/KIND:SUITE"
        )
    try:
        client.images.pull(tag)
    except Exception as e:
        why = str(getattr(e, "explanation", None) or e or type(e).__name__)
        first = why.splitlines()[0][:120]
        raise ImageError(
            f"image {tag} is not in the engine and could not be pulled ({first}); build a "
            f"local one with `harness images build` and pass --image KIND={REPO}/KIND:SUITE"
        ) from None


def built(cache: Path = CACHE) -> list[dict[str, Any]]:
    """Every cached image tarball of the current recipes, with its package versions."""
    found = []
    for meta in sorted(cache.glob("*.json")) if cache.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError):
            m = json.loads(meta.read_text())
            if tarfile.is_tarfile(meta.with_suffix(".tar")):
                found.append(m | {"file": str(meta.with_suffix(".tar"))})
    return found


# -- a server Debian does not package: one static binary ----------------------------------------


def toxiproxy_image(client: Any) -> str:
    """``lockharness/toxiproxy:VERSION`` in the engine: Shopify's toxiproxy-server (a static Go
    binary, found as the local runtime finds it) alone in an image, as its entrypoint, so that
    the compose project's real Toxiproxy needs no registry either. Returns the tag."""
    from ..runtime.base import ServerStartError
    from ..runtime.toxiproxy_kind import RealToxiproxy

    try:
        binary = Path(RealToxiproxy().find_binary())
        said = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=30)
    except (ServerStartError, OSError, subprocess.SubprocessError) as e:
        raise ImageError(f"toxiproxy image: {e}") from None
    m = re.search(r"(\d+\.\d+\.\d+)", said.stdout + said.stderr)
    if m is None:
        raise ImageError(f"toxiproxy image: {binary} -version said no version")
    tag = f"{REPO}/toxiproxy:{m.group(1)}"
    with tempfile.TemporaryDirectory(prefix="lh-toxiproxy-") as tmp:
        tar = Path(tmp) / "image.tar"
        with tarfile.open(tar, "w") as t:
            t.add(binary, arcname="toxiproxy")
            scratch = tarfile.TarInfo("tmp")
            scratch.type, scratch.mode = tarfile.DIRTYPE, 0o1777
            t.addfile(scratch)
        repo, version = tag.split(":")
        client.api.import_image_from_file(
            str(tar), repository=repo, tag=version, changes=['ENTRYPOINT ["/toxiproxy"]']
        )
    return tag
