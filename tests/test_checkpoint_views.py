"""open_checkpoint on a SQLite file reads the checkpoint in place (backends/sql/views.py):
what it shows, that it copies nothing, that live writes (in this process and another) never
change what it reads, and what it refuses."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap

import pytest

from vfs_orm import VFS
from vfs_orm.errors import InvalidOperationError, NotFoundError, ReadOnlyError, VFSError

BIG = os.urandom(3 * 65536 + 123)  # four chunks


def _tree(fs: VFS) -> dict[str, object]:
    """Everything a reader sees: kind, mode, owner, mtime and content (or target) per path."""
    out: dict[str, object] = {}
    for top, dirs, files in fs.walk("/"):
        for name in dirs + files:
            p = f"{top.rstrip('/')}/{name}"
            st = fs.stat(p)
            if stat.S_ISLNK(st.st_mode):
                body: object = fs.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                body = hashlib.sha256(fs.read_bytes(p)).hexdigest()
            else:
                body = None
            out[p] = (st.st_mode, st.owner_uid, st.owner_gid, st.st_mtime_ns, st.st_size, body)
    return out


def _fill(fs: VFS) -> None:
    fs.write_bytes("/save/big.bin", BIG)
    fs.write_text("/save/slot.json", '{"hp": 10}')
    fs.copy("/save/big.bin", "/save/copy.bin")       # shared content
    fs.symlink("slot.json", "/save/current")
    fs.mknod("/save/fifo", stat.S_IFIFO | 0o600)
    fs.makedirs("/empty/dir")
    fs.chmod("/save/slot.json", 0o600)
    fs.chown("/save/slot.json", 1000, 1000)


def _checkpointed(fs: VFS) -> dict[str, object]:
    """``fs`` filled and checkpointed as "before": what the checkpoint holds."""
    _fill(fs)
    fs.checkpoint("before")
    return _tree(fs)


def test_a_view_reads_the_checkpoint_in_place(tmp_path):
    db = str(tmp_path / "game.vfs")
    with VFS(db) as fs:
        want = _checkpointed(fs)
        size = os.path.getsize(db)
        with fs.open_checkpoint("before") as view:
            assert view.db_path == db and view.read_only  # the same file, not a copy
            assert _tree(view) == want
            assert view.glob("/save/*.bin") == ["/save/big.bin", "/save/copy.bin"]
            assert view.digest("/save/big.bin") == hashlib.sha256(BIG).hexdigest()
            assert view.checkpoints() == []               # a checkpoint has none of its own
            with pytest.raises(NotFoundError):
                view.open_checkpoint("before")
            with pytest.raises(ReadOnlyError):
                view.write_text("/x", "y")
            with view.open("/save/big.bin", "rb") as f:   # streamed (BLOB reads)
                f.seek(65536 * 2 + 7)
                assert f.read(100) == BIG[65536 * 2 + 7:65536 * 2 + 107]
        assert os.path.getsize(db) == size


def test_live_writes_never_change_what_a_view_reads(tmp_path):
    db = str(tmp_path / "game.vfs")
    with VFS(db) as fs:
        want = _checkpointed(fs)
        with fs.open_checkpoint("before") as view, view.open("/save/big.bin", "rb") as f:
            head = f.read(1000)
            with fs.open("/save/big.bin", "r+b") as g:  # copy on write moves its chunks
                g.write(b"X" * 70000)
            fs.write_text("/save/slot.json", "{}")    # replaced whole: the old row is hidden
            fs.remove("/save/copy.bin")
            fs.remove("/save/current")
            fs.rmtree("/empty")
            fs.write_bytes("/save/new.bin", b"new")
            assert head + f.read() == BIG             # the open stream follows the move
            assert _tree(view) == want
        assert fs.read_bytes("/save/big.bin")[:70000] == b"X" * 70000


def test_a_view_reads_while_another_process_writes(tmp_path):
    db = str(tmp_path / "game.vfs")
    with VFS(db) as fs:
        for k in range(8):
            fs.write_bytes(f"/f{k}", BIG[k:] + bytes([k]))
        fs.checkpoint("c")
        want = {f"/f{k}": BIG[k:] + bytes([k]) for k in range(8)}
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from vfs_orm import VFS
        with VFS({db!r}) as fs:
            for n in range(40):
                k = n % 8
                with fs.open(f"/f{{k}}", "r+b") as f:
                    f.seek(n * 997)
                    f.write(b"w" * 5000)
                if n % 5 == 0:
                    fs.write_bytes(f"/f{{k}}", b"whole" * n)
        """)])
    reads = 0
    with VFS(db) as fs, fs.open_checkpoint("c") as view:
        while writer.poll() is None or reads < 16:
            for path, data in want.items():
                assert view.read_bytes(path) == data
                reads += 1
    assert writer.wait() == 0
    with VFS(db) as fs:
        assert fs.read_bytes("/f0") != want["/f0"]  # the writer did write
        assert fs.check(deep=True).ok


def test_dropping_the_checkpoint_empties_its_view(tmp_path):
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/a/big", BIG)
        fs.checkpoint("c")
        fs.remove("/a/big")
        view = fs.open_checkpoint("c")
        f = view.open("/a/big", "rb")
        assert f.read(10) == BIG[:10]
        fs.drop_checkpoint("c")
        assert view.listdir("/") == []
        with pytest.raises(VFSError):
            f.read()
        f.close()
        view.close()
        assert fs.check(deep=True).ok


def test_a_view_leaves_whiteouts_out_and_keeps_case_folding(tmp_path):
    base, top = str(tmp_path / "base.vfs"), str(tmp_path / "top.vfs")
    with VFS(base) as b:
        b.write_text("/Data/Old.txt", "base")
    with VFS(top, case_insensitive=True) as fs:
        fs.add_underlay(base)
        fs.write_text("/Data/Mine.TXT", "mine")
        fs.remove("/Data/Old.txt")                    # a whiteout in the top
        fs.checkpoint("c")
    with VFS(top) as fs, fs.open_checkpoint("c") as view:  # no underlays now: in place
        assert view.db_path == top
        assert view.listdir("/Data") == ["Mine.TXT"]
        assert view.read_text("/data/mine.txt") == "mine"


def test_a_view_is_no_layer_and_takes_none(tmp_path):
    db, other = str(tmp_path / "a.vfs"), str(tmp_path / "b.vfs")
    with VFS(other) as o:
        o.write_text("/o", "o")
    with VFS(db) as fs:
        fs.write_text("/live", "live")
        fs.checkpoint("c")
        fs.write_text("/after", "after")
        with fs.open_checkpoint("c") as view:
            with pytest.raises(InvalidOperationError, match="no underlays"):
                view.add_underlay(other)
            with VFS(str(tmp_path / "c.vfs")) as third:
                with pytest.raises(InvalidOperationError, match="cannot be an underlay"):
                    third.add_underlay(view)
                assert third.listdir("/") == []


def test_a_views_image_and_check(tmp_path):
    db = str(tmp_path / "a.vfs")
    with VFS(db) as fs:
        _fill(fs)
        fs.checkpoint("c")
        want = _tree(fs)
        fs.write_text("/after", "not in the checkpoint")
        fs.checkpoint("later")
        with fs.open_checkpoint("c") as view:
            image = view.to_bytes()                    # the checkpoint alone
            report = view.check(deep=True)             # the database's, checkpoints included
            assert report.ok and report.counts["checkpoint_files_verified"] >= 1
        con = sqlite3.connect(db)
        con.execute("UPDATE vfs_chunks SET data = zeroblob(length(data)) WHERE idx = 1")
        con.commit()
        con.close()
        with fs.open_checkpoint("c") as view:
            assert not view.check(deep=True).ok
    with VFS.from_bytes(image) as copy:
        assert _tree(copy) == {p: v for p, v in want.items()} and copy.checkpoints() == []


def test_view_lookups_are_index_probes(tmp_path):
    """The views' WHERE terms reach the (checkpoint, parent, name) index in both arms of the
    union: no read scans the checkpoint table."""
    from vfs_orm.backends.sql.views import checkpoint_views
    from vfs_orm.backends.sqlite.dialect import SQLiteInodeRepository
    db = str(tmp_path / "a.vfs")
    with VFS(db) as fs:
        for k in range(50):
            fs.write_text(f"/d/f{k}", "x")
        fs.checkpoint("c")
    con = sqlite3.connect(db)
    for ddl in checkpoint_views(1):
        con.execute(ddl)
    repo = SQLiteInodeRepository()
    for stmt, args in ((repo._find, ("/d", "f1")), (repo._read_first, ("/d", "f1")),
                       (repo._list_entries, ("/d",)), (repo._read_span, (0, 1, 3) * 2)):
        plan = " | ".join(row[3] for row in con.execute("EXPLAIN QUERY PLAN " + stmt.sql, args))
        assert "SCAN main.vfs_checkpoint_inodes" not in plan, plan
        assert "SEARCH main.vfs_checkpoint_inodes USING INDEX" in plan, plan
    assert [r[0] for r in con.execute(repo._list_names.sql, ("/d",))][:3] == ["f0", "f1", "f10"]
    con.close()


def test_each_thread_of_a_view_reads_the_checkpoint(tmp_path):
    """Every connection of the view gets its views (one per thread), not only the first."""
    from concurrent.futures import ThreadPoolExecutor
    with VFS(str(tmp_path / "a.vfs")) as fs:
        for k in range(8):
            fs.write_bytes(f"/f{k}", BIG[k:])
        fs.checkpoint("c")
        for k in range(8):
            fs.write_bytes(f"/f{k}", b"after")
        with fs.open_checkpoint("c") as view, ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda n: view.read_bytes(f"/f{n % 8}") == BIG[n % 8:],
                                range(64)))
            assert all(got) and view.info()["files"] == 8


def test_where_it_cannot_read_in_place_it_copies_to_a_temporary_file(tmp_path):
    """An in-memory tree (and a stack with underlays, a PostgreSQL hot standby) gets a copy:
    in a file of its own, not in RAM (an in-memory copy held every byte, and at most 1 GiB), read-only,
    removed when the view is closed."""
    base = str(tmp_path / "base.vfs")
    with VFS(base) as b:
        b.write_text("/from-base", "b")
    for make in (lambda: VFS(":memory:"), lambda: _layered(base, str(tmp_path / "top.vfs"))):
        with make() as fs:
            _fill(fs)
            fs.checkpoint("c")
            want = {p: v for p, v in _tree(fs).items() if not p.startswith("/from-base")}
            fs.write_text("/save/slot.json", "changed")
            view = fs.open_checkpoint("c")
            copy = view.db_path
            assert os.path.isfile(copy) and copy != fs.db_path
            assert _tree(view) == want and view.read_only
            with pytest.raises(ReadOnlyError):
                view.remove("/save/big.bin")
            view.close()
            assert not os.path.exists(os.path.dirname(copy))


def _layered(base: str, top: str) -> VFS:
    fs = VFS(top)
    fs.add_underlay(base)
    return fs


def test_a_postgresql_view_reads_the_checkpoint_in_place(pg_url, pg_tree):
    """On PostgreSQL the view is the session's temporary schema, each of the format's tables
    a temporary view of the tree's: nothing is copied, every read path reads the checkpoint,
    live writes (copy on write, a whole replace, removals) never change it, and dropping the
    checkpoint empties it."""
    with VFS(pg_url, tree=pg_tree) as fs:
        want = _checkpointed(fs)
        view = fs.open_checkpoint("before")
        try:
            assert view.db_path == fs.db_path and view.read_only   # the tree, not a copy
            assert view.info()["files"] == fs.info()["files"]
            assert view.info()["tree"] == pg_tree and view._where == fs._where
            assert _tree(view) == want
            assert view.glob("/save/*.bin") == ["/save/big.bin", "/save/copy.bin"]
            assert view.checkpoints() == []
            with pytest.raises(ReadOnlyError):
                view.write_text("/x", "y")
            with view.open("/save/big.bin", "rb") as f:   # random reads: substring() in SQL
                f.seek(65536 * 2 + 7)
                assert f.read(100) == BIG[65536 * 2 + 7:65536 * 2 + 107]
            with view.open("/save/big.bin", "rb") as f:
                head = f.read(1000)
                with fs.open("/save/big.bin", "r+b") as g:  # copy on write moves its chunks
                    g.write(b"X" * 70000)
                fs.write_text("/save/slot.json", "{}")
                fs.remove("/save/copy.bin")
                fs.rmtree("/empty")
                assert head + f.read() == BIG
            assert _tree(view) == want
            assert view.check().ok                         # the tree's own check
            fs.drop_checkpoint("before")
            assert view.listdir("/") == []
        finally:
            view.close()
        assert fs.read_bytes("/save/big.bin")[:70000] == b"X" * 70000
        assert fs.check(deep=True).ok


def test_postgresql_view_lookups_are_index_probes(pg_url, pg_tree):
    """As on SQLite: PostgreSQL inlines the views and pushes the lookups' WHERE terms into
    both arms of the union, to the (checkpoint, parent, name) index."""
    import psycopg

    from vfs_orm.backends.postgresql.statements import PGInodeRepository
    from vfs_orm.backends.sql.views import PG_VIEW_SCHEMA, pg_checkpoint_views
    with VFS(pg_url, tree=pg_tree) as fs:
        for k in range(50):
            fs.write_text(f"/d/f{k}", "x")
        fs.checkpoint("c")
        ck = fs._checkpoints.checked("c")
    repo = PGInodeRepository(PG_VIEW_SCHEMA)
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as con:
        for ddl in pg_checkpoint_views(pg_tree, ck):
            con.execute(ddl)
        con.execute("SET enable_seqscan = off")  # a 50-row table would be scanned anyway
        for stmt, args in ((repo._find, ("/d", "f1")), (repo._list_entries, ("/d",))):
            plan = " | ".join(r[0] for r in con.execute("EXPLAIN " + stmt.sql, args))
            assert "Seq Scan on vfs_checkpoint_inodes" not in plan, plan
            assert "vfs_checkpoint_inodes" in plan, plan


def test_a_postgresql_view_raises_what_is_not_a_standby_refusing_views(pg_url, pg_tree):
    """Only a server that makes no temporary views (a hot standby, no TEMP privilege) gets
    the copy; a foreign object planted in the tree after it was opened is refused by the
    view's own open, as by any open, instead of being copied past."""
    import psycopg

    from vfs_orm.errors import ForeignSchemaError
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_text("/a", "x")
        fs.checkpoint("c")
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"),
                             autocommit=True) as con:
            con.execute(f'CREATE FUNCTION "{pg_tree}".evil() RETURNS int '
                        f"LANGUAGE sql AS 'SELECT 1'")
        with pytest.raises(ForeignSchemaError):
            fs.open_checkpoint("c")
