"""The on-disk format: created by Alembic, identified, versioned, no DDL at head."""

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from vfs_orm import VFS
from vfs_orm.backends.sqlite import schema as dbmod
from vfs_orm.models import APPLICATION_ID, VERSION_TABLE, Base


def test_new_database_identity(db_path):
    VFS(db_path).close()
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert con.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [
            (dbmod.head_revision(),)]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"vfs_inodes", "vfs_chunks", "vfs_layer_manifests", VERSION_TABLE} <= tables
        assert "alembic_version" not in tables
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA page_size").fetchone()[0] == 4096
        rows = con.execute("SELECT role, chunk_size FROM vfs_layer_manifests").fetchall()
        assert rows == [("self", 65536)]
    finally:
        con.close()


def test_page_size_option(tmp_path):
    p = str(tmp_path / "p.vfs")
    VFS(p, page_size=65536).close()
    con = sqlite3.connect(p)
    assert con.execute("PRAGMA page_size").fetchone()[0] == 65536
    con.close()


def test_reopen_at_head_runs_no_ddl(db_path, monkeypatch):
    VFS(db_path).close()
    seen: list[str] = []
    real_connect = sqlite3.connect

    def tracing_connect(*a, **kw):
        con = real_connect(*a, **kw)
        # The database's own connections (not the private in-memory reference of the closed
        # schema check, built once per process from the migrations: schema.expected).
        if db_path in str(a[0] if a else kw.get("database")):
            con.set_trace_callback(seen.append)
        return con

    monkeypatch.setattr(sqlite3, "connect", tracing_connect)
    with VFS(db_path) as fs:
        fs.exists("/x")
    ddl = [s for s in seen if s.split()[0].upper() in ("CREATE", "ALTER", "DROP")]
    assert ddl == [] and seen  # the trace did run


def test_models_and_migrations_agree(db_path):
    VFS(db_path).close()
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "version_table": VERSION_TABLE, "compare_type": True,
            "include_name": lambda n, t, p: t != "table" or (n.startswith("vfs_")
                                                            and n != VERSION_TABLE)})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def test_other_sqlite_file_is_refused_untouched(tmp_path):
    p = tmp_path / "other.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT)")
    con.commit()
    con.close()
    before = p.read_bytes()
    from vfs_orm import NotAVFSDatabaseError
    with pytest.raises(NotAVFSDatabaseError):
        VFS(str(p))
    with pytest.raises(NotAVFSDatabaseError):
        VFS(str(p), read_only=True)
    assert p.read_bytes() == before


@pytest.mark.parametrize("content", [b"hello, not a database" * 10, b"\x00" * 4096,
                                     b"SQLite format 3\x00" + b"\x10\x00" + b"\x00" * 20])
def test_non_sqlite_files_are_refused_untouched(tmp_path, content):
    from vfs_orm import NotAVFSDatabaseError, VFSError
    p = tmp_path / "junk.vfs"
    p.write_bytes(content)
    with pytest.raises(VFSError) as ei:
        VFS(str(p))
    assert isinstance(ei.value, NotAVFSDatabaseError)
    assert p.read_bytes() == content


def test_truncated_database_is_refused(tmp_path):
    from vfs_orm import VFSError
    p = tmp_path / "t.vfs"
    with VFS(str(p)) as fs:
        for i in range(50):
            fs.write_bytes(f"/f{i}", b"x" * 10_000)
        fs.sync()
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    (tmp_path / "t.vfs-wal").unlink(missing_ok=True)
    before = p.read_bytes()
    with pytest.raises(VFSError):
        with VFS(str(p)) as fs:
            for i in range(50):
                fs.read_bytes(f"/f{i}")
    assert p.read_bytes() == before


def test_newer_revision_is_refused_untouched(db_path):
    from vfs_orm import FormatVersionError
    VFS(db_path).close()
    con = sqlite3.connect(db_path)
    con.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    con.commit()
    con.close()
    before = open(db_path, "rb").read()
    for ro in (False, True):
        with pytest.raises(FormatVersionError) as ei:
            VFS(db_path, read_only=ro)
        assert "9999" in str(ei.value) and dbmod.head_revision() in str(ei.value)
    assert open(db_path, "rb").read() == before


@pytest.mark.parametrize("kind", [0, 4, -1, 1.5, "x", None])
def test_inode_kind_check_refuses_unknown_kinds(db_path, kind):
    """The CHECK on kind (BETWEEN + typeof since 0003, cheaper than an IN list) refuses what
    the IN list refused."""
    VFS(db_path).close()
    con = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            con.execute("INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, "
                        "ctime_ns, mtime_ns, generation) VALUES ('/', 'x', ?, 0, 0, 0, 0, 0, 0)",
                        (kind,))
        for ok in (1, 2, 3):
            con.execute("INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, "
                        "ctime_ns, mtime_ns, generation) VALUES ('/', ?, ?, 0, 0, 0, 0, 0, 0)",
                        (f"k{ok}", ok))
        con.rollback()
    finally:
        con.close()
