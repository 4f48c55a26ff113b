"""Format revisions: every past revision's fixture upgrades to head with every byte intact."""

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from vfs_orm import FORMAT_REVISION, VFS
from vfs_orm.backends.sqlite import engine as sqlite_engine
from vfs_orm.backends.sqlite import schema as dbmod
from vfs_orm.models import VERSION_TABLE

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _copy(tmp_path, name):
    dst = tmp_path / name
    shutil.copy(FIXTURES / name, dst)
    return str(dst)


def _revision(path):
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()[0]
    finally:
        con.close()


def _migrate(path, *targets):
    """Run Alembic to each target in turn ("head" upgrades, a revision downgrades), the way
    the library does: foreign keys off, one transaction each."""
    from alembic import command
    engine = sqlite_engine.make_engine(sqlite_engine.file_uri(path, False), read_only=False, shared=False)
    try:
        for target in targets:
            with engine.connect() as conn:
                with dbmod.foreign_keys_off(conn):
                    with conn.begin():
                        fn = command.upgrade if target == "head" else command.downgrade
                        fn(dbmod.alembic_config(conn), target)
    finally:
        engine.dispose()


def _check_manifest(fs, manifest):
    for p, meta in manifest.items():
        st = fs.stat(p)
        assert st.st_mtime_ns == meta["mtime_ns"], p
        if meta["type"] == "dir":
            assert fs.isdir(p), p
        elif meta["type"] in ("link", "fifo"):  # format 0010
            assert st.st_mode == meta["mode"], p
            if meta["type"] == "link":
                assert fs.readlink(p) == meta["target"], p
        else:
            data = fs.read_bytes(p)
            assert len(data) == meta["size"] and hashlib.sha256(data).hexdigest() == meta["sha256"], p
            assert st.st_ctime_ns == meta["ctime_ns"], p
            with fs.open(p, "rb") as f:  # the streaming path too
                assert f.read() == data
    listed = set()
    for d, dirs, files in fs.walk("/"):
        listed |= {(d.rstrip("/") + "/" + n) for n in dirs + files}
    assert listed == set(manifest)


def test_format_0001_upgrades_on_open(tmp_path):
    path = _copy(tmp_path, "format_0001.db")
    manifest = json.loads((FIXTURES / "format_0001.manifest.json").read_text())
    con = sqlite3.connect(path)
    chunks_before = con.execute("SELECT count(*), sum(length(data)) FROM vfs_chunks").fetchone()
    ident_before = con.execute("SELECT uuid, created_ns, chunk_size FROM vfs_layer_manifests").fetchall()
    con.close()
    assert _revision(path) == "0001"
    with VFS(path) as fs:
        _check_manifest(fs, manifest)
        assert fs.chunk_size == 4096  # the database's own, as recorded
        fs.write_bytes("/new-after-upgrade", b"x" * 10_000)
    assert _revision(path) == dbmod.head_revision()
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        n, total = con.execute("SELECT count(*), sum(length(data)) FROM vfs_chunks "
                               "WHERE inode_id IN (SELECT id FROM vfs_inodes WHERE name != "
                               "'new-after-upgrade')").fetchone()
        assert (n, total) == chunks_before  # the table rebuild kept every chunk
        assert con.execute("SELECT count(*) FROM vfs_chunks WHERE id != inode_id * 4294967296 + idx"
                           ).fetchone()[0] == 0
        assert con.execute("SELECT uuid, created_ns, chunk_size FROM vfs_layer_manifests "
                           "WHERE role = 'self'").fetchall() == ident_before
    finally:
        con.close()
    with VFS(path, read_only=True) as fs:
        _check_manifest(fs, {**manifest, "/new-after-upgrade": {
            "type": "file", "size": 10_000, "sha256": hashlib.sha256(b"x" * 10_000).hexdigest(),
            "mtime_ns": fs.stat("/new-after-upgrade").st_mtime_ns,
            "ctime_ns": fs.stat("/new-after-upgrade").st_ctime_ns}})


def test_read_only_open_of_older_revision_names_the_fix(tmp_path):
    from vfs_orm import FormatVersionError
    path = _copy(tmp_path, "format_0001.db")
    before = Path(path).read_bytes()
    with pytest.raises(FormatVersionError) as ei:
        VFS(path, read_only=True)
    assert "vfs-orm upgrade" in str(ei.value) and "0001" in str(ei.value)
    assert Path(path).read_bytes() == before


def test_rebuild_with_foreign_keys_on_would_lose_chunks(tmp_path):
    """The hazard the upgrade avoids, shown: the same rebuild with foreign keys ON empties
    vfs_chunks. (If this ever stops happening, the guard is still harmless.)"""
    path = _copy(tmp_path, "format_0001.db")
    from alembic import command
    engine = sqlite_engine.make_engine(sqlite_engine.file_uri(path, False), read_only=False, shared=False)
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA foreign_keys=ON")
            with conn.begin():
                command.upgrade(dbmod.alembic_config(conn), "head")
                n = raw.execute("SELECT count(*) FROM vfs_chunks").fetchone()[0]
                conn.rollback()
    finally:
        engine.dispose()
    assert n == 0


def test_upgrade_downgrade_roundtrip(tmp_path):
    path = _copy(tmp_path, "format_0001.db")
    manifest = json.loads((FIXTURES / "format_0001.manifest.json").read_text())
    _migrate(path, "head", "0001", "head")
    with VFS(path) as fs:
        _check_manifest(fs, manifest)


def test_maintainer_alembic_command_upgrades_a_file(tmp_path):
    import subprocess
    import sys
    path = _copy(tmp_path, "format_0001.db")
    root = Path(__file__).resolve().parent.parent
    alembic = [sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini")]
    out = subprocess.run(alembic + ["-x", f"db={path}", "upgrade", "head"], cwd=root,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert _revision(path) == dbmod.head_revision()
    cur = subprocess.run(alembic + ["-x", f"db={path}", "current"], cwd=root,
                         capture_output=True, text=True)
    assert cur.returncode == 0 and dbmod.head_revision() in cur.stdout, cur.stderr + cur.stdout
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT count(*) FROM vfs_chunks").fetchone()[0] > 0
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()
    with VFS(path, read_only=True) as fs:
        _check_manifest(fs, json.loads((FIXTURES / "format_0001.manifest.json").read_text()))


def test_format_0002_upgrades_on_open_and_old_files_stay_chunked(tmp_path):
    """0003 only adds a column: every file 0002 wrote keeps its chunk rows, and reads and
    in-place writes work on them; files written after the upgrade are inline."""
    path = _copy(tmp_path, "format_0002.db")
    manifest = json.loads((FIXTURES / "format_0002.manifest.json").read_text())
    con = sqlite3.connect(path)
    chunks_before = con.execute("SELECT id, data FROM vfs_chunks ORDER BY id").fetchall()
    con.close()
    assert _revision(path) == "0002"
    with VFS(path) as fs:
        _check_manifest(fs, manifest)
        with fs.open("/game/log.txt", "a") as f:  # in place, on a chunked one-chunk file
            f.write("line 3\n")
        assert fs.read_text("/game/log.txt") == "line 1\nline 2\nline 3\n"
        fs.write_bytes("/game/config.json", b'{"resolution": "800x600"}')  # now inline
        fs.write_bytes("/new.txt", b"after the upgrade")
        assert fs.check().ok
    assert _revision(path) == dbmod.head_revision()
    con = sqlite3.connect(path)
    try:
        inline = dict(con.execute("SELECT name, data FROM vfs_inodes WHERE data IS NOT NULL"))
        assert inline == {"config.json": b'{"resolution": "800x600"}',
                          "new.txt": b"after the upgrade"}
        untouched = [r for r in chunks_before
                     if r[0] >> 32 not in {i for (i,) in con.execute(
                         "SELECT id FROM vfs_inodes WHERE name IN ('config.json', 'log.txt')")}]
        after = dict(con.execute("SELECT id, data FROM vfs_chunks"))
        assert all(after[cid] == data for cid, data in untouched)
    finally:
        con.close()


def test_downgrade_moves_inline_bytes_back_to_chunks(tmp_path):
    path = str(tmp_path / "new.vfs")
    files = {"/a.txt": b"alpha", "/d/b.bin": os.urandom(9000), "/empty": b"",
             "/big.bin": os.urandom(150_000)}
    with VFS(path) as fs:
        for p, data in files.items():
            fs.write_bytes(p, data)
    _migrate(path, "0002")
    assert _revision(path) == "0002"
    con = sqlite3.connect(path)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(vfs_inodes)")]
        assert "data" not in cols
        for p, data in files.items():
            iid = con.execute("SELECT id FROM vfs_inodes WHERE name = ?",
                              (p.rsplit("/", 1)[1],)).fetchone()[0]
            stored = b"".join(r[0] for r in con.execute(
                "SELECT data FROM vfs_chunks WHERE inode_id = ? ORDER BY idx", (iid,)))
            assert stored == data, p
        assert con.execute("SELECT count(*) FROM vfs_chunks WHERE id != inode_id * 4294967296 "
                           "+ idx").fetchone()[0] == 0
    finally:
        con.close()
    with VFS(path) as fs:  # and up again
        for p, data in files.items():
            assert fs.read_bytes(p) == data
        assert fs.check().ok


def test_format_revision_constant_is_alembic_head():
    """``vfs_orm.FORMAT_REVISION`` (models.py) states the head of migrations/versions/: a new
    revision bumps it, and the docs and CHANGELOG name it from there."""
    import vfs_orm

    assert vfs_orm.FORMAT_REVISION == dbmod.head_revision()
    with vfs_orm.VFS() as fs:
        assert fs.info()["revision"] == FORMAT_REVISION


def test_format_0008_upgrades_to_owners_and_downgrades_only_without_them(tmp_path):
    """0009 rebuilds the two inode tables on SQLite (owners before the large columns): every
    byte, mode and time of a file written at 0008 survives, every entry comes up with no
    owner (the reader's), and the schema is exactly a new file's. The downgrade is refused
    while an owner is stored and, without one, gives back 0008's tables."""
    path = _copy(tmp_path, "format_0008.db")
    manifest = json.loads((FIXTURES / "format_0008.manifest.json").read_text())
    with VFS(path) as fs:
        assert fs.info()["revision"] == FORMAT_REVISION
        _check_manifest(fs, manifest)
        for p, meta in manifest.items():
            st = fs.stat(p)
            assert st.st_mode == meta["mode"], p
            assert (st.owner_uid, st.owner_gid) == (None, None), p
            assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), p
        assert fs.check().ok
        assert [c.name for c in fs.checkpoints()] == ["before-edit"]
        fs.chown("/game/config.json", 65534, 65533)
    con = sqlite3.connect(path)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(vfs_inodes)")]
        assert cols.index("gid") == cols.index("uid") + 1 < cols.index("digest") < cols.index("data")
        cols = [r[1] for r in con.execute("PRAGMA table_info(vfs_checkpoint_inodes)")]
        assert cols.index("gid") == cols.index("uid") + 1 < cols.index("digest")
        assert dbmod.schema_problem(con) is None
    finally:
        con.close()
    with pytest.raises(Exception, match="owners"):
        _migrate(path, "0008")
    assert _revision(path) == FORMAT_REVISION  # refused: left as it was
    with VFS(path) as fs:
        assert fs.stat("/game/config.json").owner_uid == 65534
    clean = _copy(tmp_path, "format_0008.db")
    _migrate(clean, "head", "0008")
    assert _revision(clean) == "0008"
    con = sqlite3.connect(clean)
    try:
        assert dbmod.schema_problem(con) is None  # exactly 0008's schema again
        assert "uid" not in [r[1] for r in con.execute("PRAGMA table_info(vfs_inodes)")]
    finally:
        con.close()
    with VFS(clean) as fs:
        _check_manifest(fs, manifest)
