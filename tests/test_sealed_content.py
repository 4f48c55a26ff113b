"""Content is sealed to its place (format 0007, issue item "content moved between files").

Packs are edited with plain ``sqlite3`` (or SQL on the PostgreSQL tree) after vfs_orm wrote
them, as a broken tool or a player would: two files' chunks swapped with their checksums, a
chunk moved to another position of its file. Every read path (whole file, a span, part of an
uncompressed chunk by BLOB I/O, through layers) must report a ``CorruptionError``; nothing
else in the database changes. Copy on write, spilling and copies between databases reseal
what they move, so their reads stay clean.
"""

from __future__ import annotations

import sqlite3

import pytest

from vfs_orm import VFS, CorruptionError
from vfs_orm.content import block_sums, reseal

A = bytes(range(256)) * 64        # 16 KiB: four chunks of 4 KiB
B = bytes(reversed(range(256))) * 64


def _pack(path, compression=None):
    with VFS(str(path), chunk_size=4096, compression=compression) as fs:
        fs.write_bytes("/a.bin", A)
        fs.write_bytes("/b.bin", B)
        fs.write_text("/small.txt", "hello")


def _chunk_ids(con, name):
    return [r[0] for r in con.execute(
        "SELECT c.id FROM vfs_chunks c JOIN vfs_inodes i ON c.inode_id = i.id "
        "WHERE i.name = ? ORDER BY c.idx", (name,))]


def _swap(con, one, two):
    """Swap the stored values (codec, sums, data) of two chunk rows."""
    rows = {cid: con.execute("SELECT codec, sums, data FROM vfs_chunks WHERE id = ?",
                             (cid,)).fetchone() for cid in (one, two)}
    for cid, other in ((one, two), (two, one)):
        con.execute("UPDATE vfs_chunks SET codec = ?, sums = ?, data = ? WHERE id = ?",
                    (*rows[other], cid))


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_chunks_swapped_between_files_are_corruption(tmp_path, compression):
    path = tmp_path / "pack.vfs"
    _pack(path, compression)
    con = sqlite3.connect(path)
    _swap(con, _chunk_ids(con, "a.bin")[1], _chunk_ids(con, "b.bin")[1])
    con.commit()
    con.close()
    before = path.read_bytes()
    with VFS(str(path), read_only=True) as fs:
        for name in ("/a.bin", "/b.bin"):
            with pytest.raises(CorruptionError, match="another file or position"):
                fs.read_bytes(name)
            with fs.open(name, "rb") as f, pytest.raises(CorruptionError, match="offset 4096"):
                f.seek(4100)
                f.read(10)  # part of one chunk (BLOB I/O when uncompressed)
            with fs.open(name, "rb", buffering=0) as f:  # the chunk before is still fine
                assert f.read(4096) == (A if name == "/a.bin" else B)[:4096]
        assert fs.read_text("/small.txt") == "hello"
        report = fs.check(deep=True)
        assert not report.ok and len(report.problems) == 2
        assert all("another file or position" in p for p in report.problems)
    assert path.read_bytes() == before


def test_chunk_moved_within_its_file_is_corruption(tmp_path):
    path = tmp_path / "pack.vfs"
    _pack(path)
    con = sqlite3.connect(path)
    ids = _chunk_ids(con, "a.bin")
    _swap(con, ids[2], ids[3])
    con.commit()
    con.close()
    with VFS(str(path), read_only=True) as fs:
        with pytest.raises(CorruptionError, match="offset 8192"):
            fs.read_bytes("/a.bin")
        assert fs.read_bytes("/b.bin") == B


def test_swapped_chunk_is_corruption_through_a_layer(tmp_path):
    base = tmp_path / "base.vfs"
    _pack(base)
    con = sqlite3.connect(base)
    _swap(con, _chunk_ids(con, "a.bin")[0], _chunk_ids(con, "b.bin")[0])
    con.commit()
    con.close()
    with VFS(str(tmp_path / "top.vfs")) as fs:
        fs.add_underlay(str(base), name="base")
        with pytest.raises(CorruptionError, match="another file or position"):
            fs.read_bytes("/a.bin")  # chunk 0 comes with the layered lookup
        with pytest.raises(CorruptionError):
            with fs.open("/b.bin", "r+b") as f:  # copy-up reads what it copies
                f.write(b"x")
        assert fs.read_text("/small.txt") == "hello"


def test_moves_made_by_vfs_orm_reseal(tmp_path):
    """Copy on write (both directions), a spill of inline bytes to chunk 0, and a
    checkpoint's restore re-place content in SQL: all of it reads back and checks clean."""
    path = tmp_path / "pack.vfs"
    with VFS(str(path), chunk_size=4096) as fs:
        fs.write_bytes("/a.bin", A)
        fs.copy("/a.bin", "/copy.bin")           # shared chunks
        fs.copy("/a.bin", "/copy2.bin")
        with fs.open("/copy.bin", "r+b") as f:   # the sharer gets its own, resealed
            f.seek(5000)
            f.write(b"edit")
        with fs.open("/a.bin", "r+b") as f:      # the holder leaves its chunks to a copy
            f.write(b"head")
        fs.write_text("/grow.txt", "small")
        with fs.open("/grow.txt", "r+b") as f:   # inline bytes spilled to chunk 0
            f.seek(9000)
            f.write(b"grown")
        fs.checkpoint("cp")
        fs.write_bytes("/a.bin", b"replaced")
        fs.restore("cp")
        assert fs.read_bytes("/a.bin") == b"head" + A[4:]
        assert fs.read_bytes("/copy.bin") == A[:5000] + b"edit" + A[5004:]
        assert fs.read_bytes("/copy2.bin") == A
        assert fs.read_bytes("/grow.txt") == b"small" + bytes(8995) + b"grown"
        report = fs.check(deep=True)
        assert report.ok, report.problems
    con = sqlite3.connect(path)
    for cid, sums in con.execute("SELECT id, sums FROM vfs_chunks"):
        assert reseal(sums, cid, cid + 1) != sums  # each one sealed to its own id
    con.close()


def test_seal_binds_the_place():
    sums = block_sums(A, 5 << 32)
    assert len(sums) == 8 * 4 + 8
    assert sums[:-8] == block_sums(A, 6 << 32)[:-8]  # the checksums are the content's
    assert sums[-8:] != block_sums(A, 6 << 32)[-8:]  # the seal is the place's
    assert reseal(sums, 5 << 32, 6 << 32) == block_sums(A, 6 << 32)
    with pytest.raises(CorruptionError, match="another file or position"):
        reseal(sums, 7 << 32, 6 << 32)
    assert block_sums(b"", 1) == b""


def swap_pg_chunks(pg_url, tree, idx):
    """Swap the stored values of chunk ``idx`` of /a.bin and /b.bin in a PostgreSQL tree."""
    from sqlalchemy import create_engine

    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:
            q = (f'SELECT c.id FROM "{tree}".vfs_chunks c JOIN "{tree}".vfs_inodes i '
                 f"ON c.inode_id = i.id WHERE i.name = %s AND c.idx = %s")
            one = conn.exec_driver_sql(q, ("a.bin", idx)).scalar()
            two = conn.exec_driver_sql(q, ("b.bin", idx)).scalar()
            conn.exec_driver_sql(
                f'UPDATE "{tree}".vfs_chunks AS c SET codec = o.codec, sums = o.sums, '
                f'data = o.data FROM "{tree}".vfs_chunks AS o '
                f"WHERE (c.id, o.id) IN ((%s, %s), (%s, %s))", (one, two, two, one))
    finally:
        engine.dispose()


def test_chunks_swapped_in_a_postgresql_tree_are_corruption(pg_url, pg_tree):
    with VFS(pg_url, tree=pg_tree, chunk_size=4096) as fs:
        fs.write_bytes("/a.bin", A)
        fs.write_bytes("/b.bin", B)
    swap_pg_chunks(pg_url, pg_tree, 2)
    with VFS(pg_url, tree=pg_tree, read_only=True) as fs:
        for name in ("/a.bin", "/b.bin"):
            with pytest.raises(CorruptionError, match="another file or position"):
                fs.read_bytes(name)


@pytest.mark.parametrize("compression", [None, "zstd"])  # BLOB reads; the SQL part read
def test_a_chunk_cut_short_is_corruption_and_a_sparse_tail_reads_zeros(tmp_path, compression):
    """A read of part of an uncompressed chunk past its stored bytes: zeros where the value
    ends there (a file extended by truncate), damage where its checksums say it held more (a
    chunk cut short by a broken tool): never zeros in place of lost bytes."""
    import os
    path = tmp_path / "p.vfs"
    data = os.urandom(100_000)  # stored as is, compressed database or not
    with VFS(str(path), chunk_size=65536, compression=compression) as fs:
        fs.write_bytes("/cut.bin", data)
        fs.write_bytes("/sparse.bin", data)
        with fs.open("/sparse.bin", "r+b") as f:
            f.truncate(131_072)  # chunk 1 keeps its 34,464 bytes
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_chunks SET data = substr(data, 1, 100) WHERE id = ?",
                (_chunk_ids(con, "cut.bin")[1],))
    con.commit()
    con.close()
    with VFS(str(path), read_only=True) as fs:
        with fs.open("/sparse.bin", "rb") as f:
            f.seek(65_536 + 40_960)
            assert f.read(50) == bytes(50)
            f.seek(65_536 + 34_000)
            assert f.read(1000) == data[99_536:] + bytes(536)  # the value's end, then zeros
        for at in (65_536 + 8192, 65_536 + 50):
            with fs.open("/cut.bin", "rb") as f, \
                    pytest.raises(CorruptionError, match=r"cut short|mismatch"):
                f.seek(at)
                f.read(50)
        assert fs.read_bytes("/sparse.bin") == data + bytes(31_072)
