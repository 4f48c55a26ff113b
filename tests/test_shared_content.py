"""Shared copies (format 0004): identical content is stored once. ``copy``, ``copytree`` and
duplicates in ``write_files`` share chunks instead of copying bytes; a later write to either
file copies first (copy on write); the last reference going releases the storage; ``check``
verifies the reference counts."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3

import pytest

from vfs_orm import VFS

MiB = 1 << 20


def _chunks(path) -> tuple[int, int]:
    """(chunk rows, stored chunk bytes) of a database."""
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT count(*), coalesce(sum(length(data)), 0) FROM vfs_chunks"
                           ).fetchone()
    finally:
        con.close()


@pytest.fixture
def fs(tmp_path):
    with VFS(tmp_path / "shared.vfs") as vfs:
        yield vfs


def test_copies_share_storage_and_diverge_on_write(fs):
    data = random.Random(1).randbytes(3 * MiB)
    fs.write_bytes("/a.bin", data)
    before = _chunks(fs.db_path)
    fs.copy("/a.bin", "/b.bin")
    assert _chunks(fs.db_path) == before  # no byte moved
    assert fs.read_bytes("/b.bin") == data and fs.digest("/b.bin") == fs.digest("/a.bin")
    with fs.open("/b.bin", "r+b") as f:  # in place: b gets its own chunks first
        f.seek(1000)
        f.write(b"patched")
    assert fs.read_bytes("/a.bin") == data
    assert fs.read_bytes("/b.bin") == data[:1000] + b"patched" + data[1007:]
    fs.copy("/a.bin", "/c.bin")
    with fs.open("/a.bin", "ab") as f:  # the original written: c keeps the old bytes
        f.write(b"tail")
    assert fs.read_bytes("/c.bin") == data and fs.read_bytes("/a.bin") == data + b"tail"
    fs.copy("/c.bin", "/d.bin")
    fs.write_bytes("/c.bin", b"replaced whole")  # whole: no copy needed, d keeps its bytes
    assert fs.read_bytes("/d.bin") == data and fs.read_bytes("/c.bin") == b"replaced whole"
    with fs.open("/d.bin", "r+b") as f:
        f.truncate(10)
    assert fs.read_bytes("/d.bin") == data[:10]
    report = fs.check(deep=True)
    assert report.ok, report.problems


def test_the_last_reference_releases_the_storage(fs):
    data = random.Random(2).randbytes(2 * MiB)
    fs.write_bytes("/orig.bin", data)
    one_copy = _chunks(fs.db_path)
    fs.mkdir("/copies")
    for k in range(5):
        fs.copy("/orig.bin", f"/copies/c{k}.bin")
    assert _chunks(fs.db_path) == one_copy
    fs.remove("/orig.bin")  # others read its chunks: they stay
    assert _chunks(fs.db_path) == one_copy
    assert all(fs.read_bytes(f"/copies/c{k}.bin") == data for k in range(5))
    fs.remove("/copies/c0.bin")
    assert fs.check().ok
    fs.rmtree("/copies")  # the last references: the storage goes
    assert _chunks(fs.db_path) == (0, 0)
    report = fs.check()
    assert report.ok and not report.warnings, (report.problems, report.warnings)


def test_copytree_of_a_big_tree_adds_no_content_bytes(tmp_path):
    path = tmp_path / "big.vfs"
    rnd = random.Random(3)
    files = {f"/assets/d{i % 8}/f{i:03}.bin": rnd.randbytes(rnd.randrange(70_000, 400_000))
             for i in range(120)}
    with VFS(path) as fs:
        fs.write_files(sorted(files.items()))
        fs.write_bytes("/assets/small.txt", b"small files are copied: 16 KiB at most")
        before = _chunks(path)
        fs.copytree("/assets", "/assets_v2")
        assert _chunks(path) == before
        for p, data in list(files.items())[:10]:
            assert fs.read_bytes(p.replace("/assets/", "/assets_v2/")) == data
        fs.write_bytes("/assets_v2/d0/f000.bin", b"changed")
        assert fs.read_bytes("/assets/d0/f000.bin") == files["/assets/d0/f000.bin"]
        fs.rename("/assets", "/old")
        fs.rmtree("/old")
        for p, data in files.items():
            q = p.replace("/assets/", "/assets_v2/")
            if q != "/assets_v2/d0/f000.bin":
                assert hashlib.sha256(fs.read_bytes(q)).digest() == hashlib.sha256(data).digest()
        report = fs.check(deep=True)
        assert report.ok, report.problems


def test_write_files_stores_duplicate_content_once(fs):
    blob = random.Random(4).randbytes(500_000)
    other = random.Random(5).randbytes(500_000)
    fs.write_files([("/a/x.bin", blob), ("/a/y.bin", other), ("/b/x.bin", blob),
                    ("/c/x.bin", blob), ("/small1", b"s"), ("/small2", b"s")])
    _rows, stored = _chunks(fs.db_path)
    assert stored == len(blob) + len(other)  # each content once
    assert fs.read_bytes("/c/x.bin") == blob
    con = sqlite3.connect(fs.db_path)
    refs = con.execute("SELECT max(refs) FROM vfs_inodes").fetchone()[0]
    con.close()
    assert refs == 2 and fs.check().ok


def test_check_verifies_reference_counts(tmp_path):
    path = tmp_path / "refs.vfs"
    with VFS(path) as fs:
        fs.write_bytes("/a.bin", os.urandom(200_000))
        fs.copy("/a.bin", "/b.bin")
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_inodes SET refs = 5 WHERE name = 'a.bin'")
    con.commit()
    con.close()
    with VFS(path, read_only=True) as fs:
        problems = fs.check().problems
    assert problems == ["/a.bin: reference count 5, but 1 file(s) or checkpoint entries read its chunks"]
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_inodes SET refs = 1 WHERE name = 'a.bin'")
    con.execute("UPDATE vfs_inodes SET content = 999 WHERE name = 'b.bin'")
    con.commit()
    con.close()
    with VFS(path, read_only=True) as fs:
        problems = fs.check().problems
    assert "/b.bin: shares the content of inode 999, which holds none it can read" in problems


def test_an_open_reader_keeps_reading_what_it_opened(fs):
    data = random.Random(6).randbytes(1 * MiB)
    fs.write_bytes("/a.bin", data)
    fs.copy("/a.bin", "/b.bin")
    with fs.open("/b.bin", "rb") as reader:
        head = reader.read(100)
        with fs.open("/b.bin", "r+b") as writer:  # b copies its chunks, then writes them
            writer.seek(500_000)
            writer.write(b"!")
        reader.seek(400_000)
        assert head + reader.read(100) == data[:100] + data[400_000:400_100]
    assert fs.read_bytes("/a.bin") == data


@pytest.mark.parametrize("kind", ["plain", "case-insensitive", "layered"])
def test_every_read_path_reads_a_copy_s_shared_chunks(tmp_path, kind):
    """open+read, seeks, read_bytes and BLOB reads of a copy, in a plain database, a
    case-insensitive one and one over an underlay (the layer statements' first-chunk join)."""
    data = random.Random(8).randbytes(300_000)
    fs = VFS(tmp_path / "top.vfs", case_insensitive=kind == "case-insensitive")
    try:
        if kind == "layered":
            with VFS(tmp_path / "under.vfs") as under:
                under.write_text("/other.txt", "x")
            fs.add_underlay(str(tmp_path / "under.vfs"), name="under")
        fs.write_bytes("/a.bin", data)
        fs.copy("/a.bin", "/b.bin")
        assert fs.read_bytes("/b.bin") == data
        with fs.open("/b.bin", "rb") as f:
            assert f.read() == data
        with fs.open("/b.bin", "rb") as f:
            assert f.read(1000) == data[:1000]
            f.seek(200_000)
            assert f.read(5000) == data[200_000:205_000]
        with fs.open("/b.bin", "rb", buffering=0) as raw:
            raw.seek(70_000)
            assert raw.read(100) == data[70_000:70_100]
    finally:
        fs.close()


def test_a_reader_follows_another_connection_s_copy_on_write(tmp_path):
    path = tmp_path / "two.vfs"
    data = random.Random(9).randbytes(300_000)
    with VFS(path) as writer, VFS(path) as reader:
        writer.write_bytes("/a.bin", data)
        writer.copy("/a.bin", "/b.bin")
        with reader.open("/b.bin", "rb", buffering=0) as f:
            assert f.read(100) == data[:100]
            with writer.open("/a.bin", "r+b") as w:  # a's chunks move to a holder b reads
                w.write(b"\xff" * 250_000)
            for at in (150_000, 200_000, 70_000):
                f.seek(at)
                assert f.read(100) == data[at:at + 100], at
        assert reader.read_bytes("/b.bin") == data


def test_write_files_shares_nothing_when_a_path_repeats(fs):
    d, e = random.Random(10).randbytes(100_000), random.Random(11).randbytes(100_000)
    fs.write_files([("/a", d), ("/a", e), ("/b", d)])
    assert fs.read_bytes("/a") == e and fs.read_bytes("/b") == d
    assert fs.digest("/b") == hashlib.sha256(d).hexdigest()
    assert fs.check(deep=True).ok


def test_copy_on_write_refuses_a_misnumbered_chunk_and_changes_nothing(tmp_path):
    """Where copy on write still copies chunks (a shared file cut shorter: the chunks it keeps
    become its own, so that those past the cut never come back from the shared ones), it
    copies a window of rows at a time and seals each to its new place: a row whose stored
    index is not its place is damage, named with the file, and the truncation (its whole
    transaction) leaves the database as it was."""
    from vfs_orm.errors import CorruptionError
    path = tmp_path / "m.vfs"
    data = random.Random(2).randbytes(40 * 65536)  # 40 chunks: three copy windows
    with VFS(path) as fs:
        fs.write_bytes("/a.bin", data)
        fs.copy("/a.bin", "/b.bin")
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_chunks SET idx = 99 WHERE idx = 33")
    con.commit()
    con.close()
    before = _chunks(path)
    with VFS(path) as fs:
        with pytest.raises(CorruptionError, match=r"chunk 33 numbered 99.*/a\.bin"):
            with fs.open("/a.bin", "r+b") as f:
                f.truncate(39 * 65536)
        assert _chunks(path) == before
        assert fs.read_bytes("/b.bin")[:65536] == data[:65536]
    with VFS(path) as fs:  # undamaged: the copy spans every window
        con = sqlite3.connect(path)
        con.execute("UPDATE vfs_chunks SET idx = 33 WHERE idx = 99")
        con.commit()
        con.close()
        with fs.open("/a.bin", "r+b") as f:
            f.write(b"x")
            f.truncate(39 * 65536)
        assert fs.read_bytes("/b.bin") == data
        assert fs.read_bytes("/a.bin") == b"x" + data[1:39 * 65536]
        assert fs.check(deep=True).ok
