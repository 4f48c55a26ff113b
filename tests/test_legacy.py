"""The seed library's files are recognised and upgraded with every byte, directory and
timestamp preserved; the chunk size is inferred from the data."""

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import vfs_orm
from vfs_orm import VFS, FormatVersionError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LEGACY = ["legacy-seed-format", "legacy-seed-chunk1000", "legacy-seed-mixed"]


def _copy(tmp_path, name):
    dst = tmp_path / f"{name}.db"
    shutil.copy(FIXTURES / f"{name}.db", dst)
    dst.chmod(0o644)
    return str(dst)


def _check(fs, manifest):
    for path, meta in manifest.items():
        st = fs.stat(path)
        if meta["type"] == "dir":
            assert fs.isdir(path), path
        else:
            data = fs.read_bytes(path)
            assert len(data) == meta["size"], path
            assert hashlib.sha256(data).hexdigest() == meta["sha256"], path
            with fs.open(path, "rb") as f:
                assert f.read() == data
                if len(data) > 10:
                    f.seek(len(data) // 2)
                    assert f.read(7) == data[len(data) // 2:len(data) // 2 + 7]
        if "modified_at" in meta:
            assert st.modified_at == meta["modified_at"], path
            assert st.created_at == meta["created_at"], path
    entries = set()
    for d, dirs, files in fs.walk("/"):
        entries |= {d.rstrip("/") + "/" + n for n in dirs + files}
    assert entries == set(manifest)


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_upgrades_on_open(tmp_path, name):
    path = _copy(tmp_path, name)
    manifest = json.loads((FIXTURES / f"{name}.manifest.json").read_text())
    with VFS(path) as fs:
        _check(fs, manifest)
        assert fs.identity["uuid"]
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "inodes" not in tables and "chunks" not in tables
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()
    with VFS(path, read_only=True) as fs:  # and again after reopening
        _check(fs, manifest)


def test_inferred_chunk_sizes(tmp_path):
    path = _copy(tmp_path, "legacy-seed-chunk1000")
    with VFS(path) as fs:
        assert fs.chunk_size == 1000
        # in-place writes on upgraded files keep their layout
        with fs.open("/assets/big.bin", "r+b") as f:
            f.seek(2995)
            f.write(b"0123456789")
        data = fs.read_bytes("/assets/big.bin")
        assert data[2995:3005] == b"0123456789" and len(data) == 10240
    path = _copy(tmp_path, "legacy-seed-mixed")
    with VFS(path) as fs:
        con = fs._uow.raw()
        sizes = dict(con.execute("SELECT name, chunk_size FROM vfs_inodes WHERE kind = 1"))
        assert sizes == {"small_chunks.bin": 4096, "big_chunks.bin": 65536}


def test_infer_rules():
    from vfs_orm.backends.sqlite.schema import _legacy_module
    infer = _legacy_module().infer_chunk_sizes
    # sequential multi-chunk files decide the size
    guess, per = infer({1: (2500, [(0, 1000), (1, 1000), (2, 500)]), 2: (10, [(0, 10)])})
    assert guess == 1000 and per == {1: 1000, 2: 1000}
    # a file with only its last chunk present (sparse) is placed by its position
    guess, per = infer({1: (5514, [(5, 514)]), 2: (3000, [(0, 1000), (1, 1000), (2, 1000)])})
    assert per[1] == 1000
    # no full chunk anywhere: never below the longest chunk
    guess, per = infer({1: (100_000, [(0, 100_000)])})
    assert guess == 100_000


def test_read_only_open_of_legacy_names_the_fix(tmp_path):
    path = _copy(tmp_path, "legacy-seed-format")
    before = Path(path).read_bytes()
    with pytest.raises(FormatVersionError) as ei:
        VFS(path, read_only=True)
    assert "vfs-orm upgrade" in str(ei.value) and "legacy" in str(ei.value)
    assert Path(path).read_bytes() == before


def test_upgrade_function_with_backup(tmp_path):
    path = _copy(tmp_path, "legacy-seed-format")

    def dump(p):
        con = sqlite3.connect(p)
        try:
            return list(con.iterdump())
        finally:
            con.close()

    before = dump(path)
    result = vfs_orm.upgrade(path, backup=True)
    assert result["from"] == "legacy" and result["to"] == vfs_orm.backends.SQLITE.head_revision()
    assert dump(result["backup"]) == before  # a faithful copy of the old database
    again = vfs_orm.upgrade(path, backup=True)
    assert again["from"] == again["to"] and again["backup"] is None
    manifest = json.loads((FIXTURES / "legacy-seed-format.manifest.json").read_text())
    with VFS(path, read_only=True) as fs:
        _check(fs, manifest)


def test_upgrade_refuses_non_vfs_files(tmp_path):
    from vfs_orm import NotAVFSDatabaseError, NotFoundError
    with pytest.raises(NotFoundError):
        vfs_orm.upgrade(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 20)
    with pytest.raises(NotAVFSDatabaseError):
        vfs_orm.upgrade(junk)
