"""The format's own trust rules: the maintainer's ``alembic`` command line handles every old
fixture the way ``vfs_orm.upgrade`` does (legacy seed files are converted, never stranded),
and no upgrade runs over tables whose shape does not match their version row (a forged or
damaged revision is refused with the file untouched)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_legacy import _check as check_legacy
from test_migrations import _check_manifest, _revision

from vfs_orm import VFS, CorruptionError, FormatVersionError, upgrade
from vfs_orm.backends.sqlite import schema as dbmod

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
LEGACY = ["legacy-seed-format", "legacy-seed-chunk1000", "legacy-seed-mixed"]
OLDER = ["format_0001", "format_0002", "format_0003", "format_0006", "format_0007",
         "format_0008", "format_0009", "format_0010", "format_0011"]


def _copy(tmp_path, name):
    dst = tmp_path / f"{name}.db"
    shutil.copy(FIXTURES / f"{name}.db", dst)
    dst.chmod(0o644)
    return str(dst)


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _alembic(path, *args):
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"),
                           "-x", f"db={path}", *args], cwd=ROOT, capture_output=True, text=True)


def _manifest(name):
    return json.loads((FIXTURES / f"{name}.manifest.json").read_text())


@pytest.mark.parametrize("name", LEGACY)
def test_alembic_upgrade_head_converts_legacy_saves(tmp_path, name):
    path = _copy(tmp_path, name)
    out = _alembic(path, "upgrade", "head")
    assert out.returncode == 0, out.stderr
    assert _revision(path) == dbmod.head_revision()
    with VFS(path, read_only=True) as fs:
        check_legacy(fs, _manifest(name))
        assert fs.info()["files"] > 0


@pytest.mark.parametrize("name", LEGACY)
def test_alembic_partial_upgrade_of_legacy_is_refused_untouched(tmp_path, name):
    path = _copy(tmp_path, name)
    before = _digest(path)
    out = _alembic(path, "upgrade", "0002")
    assert out.returncode != 0
    assert "vfs-orm upgrade" in out.stderr
    assert _digest(path) == before


@pytest.mark.parametrize("name", OLDER)
def test_alembic_upgrade_head_of_older_revisions(tmp_path, name):
    path = _copy(tmp_path, name)
    out = _alembic(path, "upgrade", "head")
    assert out.returncode == 0, out.stderr
    assert _revision(path) == dbmod.head_revision()
    with VFS(path, read_only=True) as fs:
        _check_manifest(fs, _manifest(name))


def _forge(path, revision):
    import sqlite3
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_alembic_version SET version_num = ?", (revision,))
    con.commit()
    con.close()


@pytest.mark.parametrize("forged", ["0001", "0002"])
def test_forged_older_revision_is_refused_untouched(tmp_path, forged):
    path = str(tmp_path / "save.vfs")
    with VFS(path) as fs:
        fs.write_bytes("/small.txt", b"tiny but precious")
        fs.write_bytes("/big.bin", b"B" * 200_000)
    _forge(path, forged)
    before = _digest(path)
    with pytest.raises(CorruptionError, match="do not have that revision's shape"):
        VFS(path)
    with pytest.raises(CorruptionError):
        upgrade(path)
    out = _alembic(path, "upgrade", "head")
    assert out.returncode != 0 and "shape" in out.stderr
    assert _digest(path) == before
    _forge(path, dbmod.head_revision())  # the true revision back: everything is there
    with VFS(path, read_only=True) as fs:
        assert fs.read_bytes("/small.txt") == b"tiny but precious"
        assert fs.read_bytes("/big.bin") == b"B" * 200_000


def test_forged_current_revision_is_found_by_check(tmp_path):
    """Tables of 0002 behind a forged head version row: refused at open (the closed schema
    compares the tables with the recorded revision's), and `vfs-orm check` says why."""
    path = _copy(tmp_path, "format_0002")
    _forge(path, dbmod.head_revision())
    before = _digest(path)
    for read_only in (True, False):
        with pytest.raises(CorruptionError, match="shape"):
            VFS(path, read_only=read_only)
    out = subprocess.run([sys.executable, "-m", "vfs_orm", "check", path],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "shape" in out.stderr, out.stderr
    assert _digest(path) == before


def test_newer_revision_is_refused_by_alembic_untouched(tmp_path):
    path = _copy(tmp_path, "format_0002")
    _forge(path, "9999")
    before = _digest(path)
    out = _alembic(path, "upgrade", "head")
    assert out.returncode != 0
    assert _digest(path) == before
    with pytest.raises(FormatVersionError):
        VFS(path)
