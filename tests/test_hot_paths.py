"""Hot paths are one indexed statement; listings never scan subtrees.

Statements are counted with ``VFS.tracer()`` (sqlite3's trace callback on the VFS's own
connection), and query plans are read with EXPLAIN QUERY PLAN: both fail if a hot path
regresses.
"""

import os

import pytest

from vfs_orm import VFS
from vfs_orm.backends.sqlite.dialect import SQLiteInodeRepository as InodeRepository


@pytest.fixture
def traced(db_path):
    fs = VFS(db_path)
    fs.write_bytes("/dir/small.bin", b"x" * 1000)
    fs.write_bytes("/dir/big.bin", b"y" * 300_000)
    for i in range(50):
        fs.write_bytes(f"/dir/sub/f{i}", b"")
    with fs.tracer() as log:
        yield fs, log
    fs.close()


@pytest.mark.parametrize("call", [
    lambda fs: fs.exists("/dir/small.bin"),
    lambda fs: fs.exists("/dir/missing"),
    lambda fs: fs.isfile("/dir/small.bin"),
    lambda fs: fs.isdir("/dir"),
    lambda fs: fs.stat("/dir/small.bin"),
    lambda fs: fs.read_bytes("/dir/small.bin"),
    lambda fs: fs.listdir("/dir/sub"),
])
def test_one_statement(traced, call):
    fs, log = traced
    log.clear()
    call(fs)
    assert len(log) == 1, log


def test_read_bytes_of_a_multi_chunk_file_is_two_statements(traced):
    """The one-chunk probe, then the whole file in ONE statement (one snapshot), however
    many chunks it has."""
    fs, log = traced
    fs.write_bytes("/dir/huge.bin", b"z" * 2_000_000)
    for path, size in (("/dir/big.bin", 300_000), ("/dir/huge.bin", 2_000_000)):
        log.clear()
        assert len(fs.read_bytes(path)) == size
        assert len(log) == 2, log


def test_open_read_small_file_statements(traced):
    fs, log = traced
    log.clear()
    with fs.open("/dir/small.bin", "rb") as f:
        assert f.read() == b"x" * 1000
    # the open fetches the inode and its first chunk: a small file needs nothing more
    assert len(log) == 1, log


def test_sequential_small_reads_cost_one_query_per_chunk(traced):
    fs, log = traced
    log.clear()
    with fs.open("/dir/big.bin", "rb") as f:
        while f.read(100):
            pass
    chunks = (300_000 + 65535) // 65536
    assert len(log) <= 1 + chunks + 1, len(log)


def _body(log):
    return [s for s in log if s.split()[0] not in ("BEGIN", "COMMIT")]


def test_write_small_file_is_one_statement(traced):
    fs, log = traced
    log.clear()
    fs.write_bytes("/dir/new.bin", b"z" * 100)
    # the inode with its bytes inline, inserted only if the parent is a directory and the
    # name is free
    body = _body(log)
    assert len(body) == 1 and body[0].startswith("INSERT OR IGNORE INTO vfs_inodes"), log
    assert fs.read_bytes("/dir/new.bin") == b"z" * 100


def test_write_file_above_the_inline_limit_is_inode_plus_chunk(traced):
    from vfs_orm.backends import INLINE_MAX
    fs, log = traced
    data = os.urandom(INLINE_MAX + 1)
    log.clear()
    fs.write_bytes("/dir/mid.bin", data)
    body = _body(log)
    assert len(body) == 2 and "vfs_chunks" in body[1], log
    assert fs.read_bytes("/dir/mid.bin") == data


def test_repeated_small_saves_are_one_statement(traced):
    """Once a write has replaced an existing small file, the next saves find and rewrite
    the inode, bytes included, in one UPDATE."""
    fs, log = traced
    fs.write_bytes("/dir/small.bin", b"a" * 10)  # a rewrite: primes the expectation
    log.clear()
    fs.write_bytes("/dir/small.bin", b"b" * 20)
    body = _body(log)
    assert len(body) == 1 and body[0].startswith("UPDATE vfs_inodes"), log
    assert fs.read_bytes("/dir/small.bin") == b"b" * 20


def test_directory_rename_is_one_statement(traced):
    fs, log = traced
    log.clear()
    fs.rename("/dir", "/moved")
    updates = [s for s in log if s.startswith("UPDATE")]
    assert len(updates) <= 2  # the subtree move + the renamed entry's mtime
    assert fs.listdir("/moved/sub") == [f"f{i}" for i in sorted(range(50), key=str)]


def _plan(raw, sql, params):
    return " | ".join(r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_query_plans_use_indexes(traced):
    fs, _ = traced
    raw = fs._uow.raw()
    repo = InodeRepository()
    for stmt, params in [(repo._lookup, ("/dir", "x")), (repo._list_names, ("/dir",)),
                         (repo._list_entries, ("/dir",)), (repo._read_whole, ("/dir", "x") * 2),
                         (repo._read_chunk, (0, 0, 1)), (repo._read_span, (0, 4, 1) * 2),
                         (repo._has_children, ("/dir",)),
                         (repo._subtree, ("/dir", "/dir/", "/dir0"))]:
        plan = _plan(raw, stmt.sql, params)
        assert "SCAN vfs_inodes" not in plan and "SCAN vfs_chunks" not in plan, (stmt.sql, plan)
        assert "USING" in plan, plan
    plan = _plan(raw, repo._delete_tree.sql, (1, "/dir", "/dir/", "/dir0"))
    assert "SCAN vfs_inodes" not in plan, plan


@pytest.mark.parametrize("call", [
    lambda fs: fs.exists("/DIR/Small.BIN"),
    lambda fs: fs.exists("/dir/missing"),
    lambda fs: fs.isfile("/Dir/small.bin"),
    lambda fs: fs.stat("/DIR/SMALL.BIN"),
    lambda fs: fs.read_bytes("/dir/SMALL.bin"),
    lambda fs: fs.listdir("/Dir/Sub"),
])
def test_case_insensitive_lookups_are_one_indexed_statement(tmp_path, call):
    """Reads in a case-insensitive database find any spelling by the folded key itself: one
    statement, and its plan uses the (fparent, fname) index."""
    fs = VFS(tmp_path / "ci.vfs", case_insensitive=True)
    fs.write_bytes("/Dir/Small.bin", b"x" * 1000)
    fs.makedirs("/dir/sub")
    fs.write_bytes("/dir/sub/f1", b"")
    with fs.tracer() as log:
        call(fs)
    assert len(log) == 1, log
    # The trace shows the statement with its values bound: its plan can be asked for.
    raw = fs._uow.raw()
    plan = " ".join(str(r) for r in raw.execute("EXPLAIN QUERY PLAN " + log[0]).fetchall())
    assert "ix_vfs_inodes_fparent_fname" in plan, plan
    fs.close()
