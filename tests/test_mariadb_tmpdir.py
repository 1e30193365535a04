"""mysql-lease does not depend on TMPDIR: mariadb-install-db, run for the server's user, gets a
temp dir that user can write, even when the caller's TMPDIR is a 0700 dir of root's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from .conftest import need_server


def test_a_template_is_built_whatever_the_callers_tmpdir(monkeypatch, tmp_path) -> None:
    need_server("mariadb")
    if os.geteuid() != 0:
        pytest.skip("as root only: otherwise the server runs as the caller, who owns TMPDIR")
    import harness.clock
    from harness.runtime import mariadb

    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)  # the mysql user can neither enter nor write it
    cache = Path(tempfile.mkdtemp(prefix="lh-mariadb-cache-"))  # a fresh template, built now
    try:
        os.chmod(cache, 0o755)
        monkeypatch.setattr(harness.clock, "default_cache_dir", lambda: cache)
        monkeypatch.setenv("TMPDIR", str(private))
        built = mariadb._template("mysql")
        assert (built / "mysql").is_dir() and built.parent == cache
    finally:
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
