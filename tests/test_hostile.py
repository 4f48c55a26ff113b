"""Databases from players are untrusted: every stored value is checked where it leaves the
database. Each case here is a real file with one lying row written through SQLite itself (as
a crafted save would be): the read raises a clean CorruptionError naming the entry, and
check() lists the row."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from vfs_orm import VFS, CorruptionError, FileTooLargeError, VFSError


@pytest.fixture
def save(tmp_path):
    path = str(tmp_path / "save.vfs")
    with VFS(path, chunk_size=4096) as fs:
        fs.write_bytes("/small.txt", b"hello")
        fs.write_bytes("/big.bin", bytes(range(256)) * 64)  # 4 chunks
        fs.makedirs("/dir/sub")
        fs.write_bytes("/dir/sub/f.txt", b"x")
    return path


def tamper(path: str, sql: str, *params) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA ignore_check_constraints=ON")
    con.execute(sql, params)
    con.commit()
    con.close()


def set_field(path: str, name: str, column: str, value) -> None:
    tamper(path, f"UPDATE vfs_inodes SET {column} = ? WHERE name = ?", value, name)


def problems(path: str) -> list[str]:
    with VFS(path, read_only=True) as fs:
        return fs.check().problems


@pytest.mark.parametrize("value", [2**40, 2**62, -1, "twelve", 1.5, b"\x01"])
@pytest.mark.parametrize("name", ["small.txt", "big.bin"])
def test_hostile_size(save, name, value):
    set_field(save, name, "size", value)
    with VFS(save, read_only=True) as fs:
        for call in (fs.read_bytes, fs.stat, lambda p: fs.open(p, "rb").read()):
            with pytest.raises(CorruptionError) as ei:
                call("/" + name)
            assert ei.value.filename == "/" + name
        assert fs.read_bytes("/dir/sub/f.txt") == b"x"  # the rest still reads
    assert any(name in p and "size" in p for p in problems(save))


@pytest.mark.parametrize("column,value", [
    ("mtime_ns", 1e300), ("ctime_ns", "yesterday"), ("mode", -1), ("mode", 2**40),
    ("mode", 1.5), ("kind", 7), ("kind", "one"), ("generation", "g"), ("chunk_size", 0),
    ("chunk_size", 2**40)])
def test_hostile_metadata(save, column, value):
    set_field(save, "big.bin", column, value)
    with VFS(save, read_only=True) as fs:
        with pytest.raises(CorruptionError):
            fs.stat("/big.bin")
        with pytest.raises(CorruptionError):
            fs.listdir("/") and list(fs.walk("/"))
        assert fs.stat("/small.txt").st_size == 5
    assert any("big.bin" in p for p in problems(save))


def test_chunk_stored_as_text(save):
    tamper(save, "UPDATE vfs_chunks SET data = 'text' WHERE idx = 1")
    with VFS(save, read_only=True) as fs:
        with pytest.raises(CorruptionError):
            fs.read_bytes("/big.bin")
        with pytest.raises(CorruptionError):
            with fs.open("/big.bin", "rb") as f:
                f.read()
    assert any("stored as text" in p for p in problems(save))


def test_inline_bytes_stored_as_number(save):
    tamper(save, "UPDATE vfs_inodes SET data = 12345 WHERE name = 'small.txt'")
    with VFS(save, read_only=True) as fs:
        with pytest.raises(CorruptionError):
            fs.read_bytes("/small.txt")
    assert any("small.txt" in p and "integer" in p for p in problems(save))


@pytest.mark.parametrize("name", [b"bytes", "", ".", "..", "a/b"])
def test_unreachable_names_are_left_out_of_listings(save, name):
    # No path can name such an entry (a walk over "" or ".." would never end): listings
    # leave it out, the rest of the directory still lists, check() reports it.
    tamper(save, "UPDATE vfs_inodes SET name = ? WHERE name = 'sub'", name)
    tamper(save, "INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, "
                 "ctime_ns, mtime_ns, generation) VALUES ('/dir', 'ok.txt', 1, 33188, 0, 4096, "
                 "0, 0, 0)")
    with VFS(save, read_only=True) as fs:
        assert fs.listdir("/dir") == ["ok.txt"]
        walked = list(fs.walk("/"))
        assert ("/dir", [], ["ok.txt"]) in walked
        assert fs.glob("/dir/*") == ["/dir/ok.txt"]
    assert any("name" in p for p in problems(save))


def test_text_that_is_not_utf8(save):
    # A name whose bytes are not UTF-8 (sqlite3 decodes every TEXT value it returns).
    tamper(save, "UPDATE vfs_inodes SET name = CAST(X'ff61' AS TEXT) WHERE name = 'sub'")
    with VFS(save, read_only=True) as fs:
        with pytest.raises(CorruptionError, match="not UTF-8"):
            fs.listdir("/dir")


def test_schema_that_is_not_utf8(save):
    con = sqlite3.connect(save)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("PRAGMA writable_schema=ON")
    con.execute("UPDATE sqlite_master SET name = CAST(X'7666735fff' AS TEXT) "
                "WHERE name = 'vfs_chunks'")
    con.commit()
    con.close()
    for read_only in (True, False):
        with pytest.raises(VFSError) as ei:
            VFS(save, read_only=read_only)
        assert not isinstance(ei.value, UnicodeDecodeError)


def test_damaged_manifest_chunk_size_still_opens(save):
    tamper(save, "UPDATE vfs_layer_manifests SET chunk_size = 'x'")
    with VFS(save) as fs:
        fs.write_bytes("/new.bin", b"y" * 100_000)  # the default chunk size
        assert fs.read_bytes("/new.bin") == b"y" * 100_000
    assert any("manifest" in p for p in problems(save))


def test_files_are_limited_to_one_tib(vfs):
    with vfs.open("/f", "wb", buffering=0) as f:
        f.seek((1 << 40) - 1)
        with pytest.raises(FileTooLargeError) as ei:
            f.write(b"xy")
        assert ei.value.errno == errno.EFBIG
    with vfs.open("/f", "r+b") as f:
        with pytest.raises(FileTooLargeError):
            f.truncate(1 << 40)
        f.truncate((1 << 40) - 1)  # the largest size there is: a sparse file
    assert vfs.stat("/f").st_size == (1 << 40) - 1
    assert vfs.check().ok


def test_extreme_valid_timestamps(vfs):
    vfs.write_bytes("/t", b"")
    for ns in (-(2**63), 2**63 - 1, 0):
        vfs.utime("/t", ns=(ns, ns))
        st = vfs.stat("/t")
        assert st.st_mtime_ns == ns and st.modified_at and isinstance(st.st_mtime, float)


def test_random_reads_keep_no_copy_of_what_they_read(tmp_path):
    """Every byte a random read returns is let go: a cache on the row check once kept each
    (size, generation, bytes) row ever read, so a long session of random reads grew without
    bound (8 MiB read in distinct 4 KiB pieces kept 8 MiB)."""
    import gc
    import random
    import tracemalloc

    # An in-memory database and an r+ handle: reads that run as queries (not BLOB reads).
    fs = VFS(":memory:", chunk_size=65536)
    fs.write_bytes("/big.bin", random.Random(7).randbytes(8 << 20))
    with fs.open("/big.bin", "r+b", buffering=0) as f:
        f.seek(0)
        f.read(4096)  # warm up statement caches
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for k in range(1, 2040):
            f.seek(k * 4096 + 17)  # not chunk-aligned: every read is its own query
            assert 0 < len(f.read(4096)) <= 4096  # a raw read may stop at a chunk's end
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    fs.close()
    assert grown < 2 << 20, f"random reads retained {grown} bytes"
