"""Format 0003: small files keep their bytes in their inode row.

Each test looks at the stored rows with plain sqlite3 (where the bytes are) and at what every
read path returns (what they are), so a wrong representation and a wrong read both fail.
"""

import os
import random
import sqlite3

import pytest

from vfs_orm import VFS
from vfs_orm.backends import INLINE_MAX


def _rows(path, name):
    """(inline bytes or None, [chunk idx...]) of the file called ``name``."""
    con = sqlite3.connect(path)
    try:
        iid, data = con.execute("SELECT id, data FROM vfs_inodes WHERE name = ?", (name,)).fetchone()
        idx = [r[0] for r in con.execute("SELECT idx FROM vfs_chunks WHERE inode_id = ? "
                                         "ORDER BY idx", (iid,))]
        return data, idx
    finally:
        con.close()


def _all_reads(fs, path, expected):
    assert fs.read_bytes(path) == expected
    assert fs.getsize(path) == len(expected)
    with fs.open(path, "rb") as f:
        assert f.read() == expected
    with fs.open(path, "rb", buffering=0) as f:  # raw reads: chunk 0 queries
        got = bytearray()
        while chunk := f.read(333):
            got += chunk
        assert bytes(got) == expected
    with fs.open(path, "rb") as f:  # random reads: BLOB I/O on the inline bytes
        rng = random.Random(7)
        for _ in range(50):
            pos = rng.randrange(0, max(1, len(expected)))
            n = rng.randrange(1, 2000)
            f.seek(pos)
            assert f.read(n) == expected[pos:pos + n], (pos, n)


@pytest.mark.parametrize("size", [0, 1, 4096, INLINE_MAX])
def test_small_file_written_whole_is_inline(db_path, size):
    data = os.urandom(size)
    with VFS(db_path) as fs:
        fs.write_bytes("/d/f.bin", data)
        _all_reads(fs, "/d/f.bin", data)
        assert fs.check().ok
    assert _rows(db_path, "f.bin") == (data, [])


def test_files_above_the_limit_or_a_chunk_are_chunked(db_path):
    big = os.urandom(INLINE_MAX + 1)
    with VFS(db_path, chunk_size=1024) as fs:
        fs.write_bytes("/over-chunk.bin", b"c" * 1025)  # small, but more than one chunk
        fs.write_bytes("/one-chunk.bin", b"k" * 1024)
        _all_reads(fs, "/over-chunk.bin", b"c" * 1025)
    with VFS(str(db_path) + "2") as fs:
        fs.write_bytes("/big.bin", big)
        _all_reads(fs, "/big.bin", big)
    assert _rows(db_path, "over-chunk.bin") == (None, [0, 1])
    assert _rows(db_path, "one-chunk.bin") == (b"k" * 1024, [])
    assert _rows(str(db_path) + "2", "big.bin") == (None, [0])


def test_text_and_staged_handles_store_small_files_inline(db_path):
    with VFS(db_path) as fs:
        fs.write_text("/t.txt", "héllo\nwörld\n")
        with fs.open("/w.txt", "w") as f:
            f.write("written through a handle\n")
        with fs.open("/t.txt") as f:
            assert f.readlines() == ["héllo\n", "wörld\n"]
        assert fs.read_text("/w.txt") == "written through a handle\n"
    assert _rows(db_path, "t.txt") == ("héllo\nwörld\n".encode(), [])
    assert _rows(db_path, "w.txt") == (b"written through a handle\n", [])


@pytest.mark.parametrize("mode", ["a", "r+"])
def test_in_place_write_spills_inline_bytes_to_chunk_0(db_path, mode):
    with VFS(db_path) as fs:
        fs.write_bytes("/f", b"0123456789")
        with fs.open("/f", mode + "b") as f:
            if mode == "r+":
                f.seek(4)
            f.write(b"XY")
        expected = b"0123456789XY" if mode == "a" else b"0123XY6789"
        _all_reads(fs, "/f", expected)
        assert fs.check().ok
    assert _rows(db_path, "f") == (None, [0])


def test_append_across_chunks_after_spill(db_path):
    with VFS(db_path, chunk_size=1024) as fs:
        fs.write_bytes("/log", b"start\n")
        with fs.open("/log", "a") as f:
            for k in range(300):
                f.write(f"line {k}\n")
                f.flush()
        expected = b"start\n" + b"".join(f"line {k}\n".encode() for k in range(300))
        _all_reads(fs, "/log", expected)
        assert fs.check().ok
    data, idx = _rows(db_path, "log")
    assert data is None and idx == list(range((len(expected) + 1023) // 1024))


@pytest.mark.parametrize("new_size", [0, 3, 10, 5000])
def test_truncate_of_an_inline_file(db_path, new_size):
    with VFS(db_path) as fs:
        fs.write_bytes("/f", b"0123456789")
        with fs.open("/f", "r+b") as f:
            f.truncate(new_size)
        expected = (b"0123456789" + bytes(new_size))[:new_size]
        _all_reads(fs, "/f", expected)
        assert fs.check().ok


def test_rewrites_move_between_inline_and_chunks(db_path):
    big, small = os.urandom(200_000), b"tiny"
    with VFS(db_path) as fs:
        fs.write_bytes("/f", small)
        fs.write_bytes("/f", big)
        assert _rows(db_path, "f") == (None, [0, 1, 2, 3])
        _all_reads(fs, "/f", big)
        fs.write_bytes("/f", small)
        assert _rows(db_path, "f") == (small, [])
        _all_reads(fs, "/f", small)
        # a one-chunk file written in place (chunked), then saved whole: inline again
        with fs.open("/g", "a") as f:
            f.write("abc")
        assert _rows(db_path, "g") == (None, [0])
        fs.write_bytes("/g", b"saved")
        fs.write_bytes("/g", b"saved again")  # the one-statement save path
        assert _rows(db_path, "g") == (b"saved again", [])
        assert fs.check().ok


def test_saves_keep_generation_checks(db_path):
    """A handle open on an inline file sees a whole-file save as a replaced file."""
    from vfs_orm import StaleHandleError
    with VFS(db_path) as fs:
        fs.write_bytes("/f", b"a" * 10_000)
        f = fs.open("/f", "rb", buffering=0)
        assert f.read(10) == b"a" * 10
        fs.write_bytes("/f", b"b" * 10_000)  # lookup path: primes the one-statement save
        with pytest.raises(StaleHandleError):
            f.seek(5000)
            f.read(10)
        f.close()
        g = fs.open("/f", "rb", buffering=0)
        assert g.read(10) == b"b" * 10
        fs.write_bytes("/f", b"c" * 10_000)  # the one-statement save
        with pytest.raises(StaleHandleError):
            g.seek(5000)
            g.read(10)
        g.close()


def test_copy_and_copytree_copy_inline_bytes(db_path):
    with VFS(db_path) as fs:
        fs.write_bytes("/src/a.txt", b"inline a")
        fs.write_bytes("/src/sub/big.bin", b"B" * 100_000)
        fs.copy("/src/a.txt", "/copy.txt")
        fs.copytree("/src", "/dst")
        assert fs.read_bytes("/copy.txt") == b"inline a"
        assert fs.read_bytes("/dst/a.txt") == b"inline a"
        assert fs.read_bytes("/dst/sub/big.bin") == b"B" * 100_000
        fs.write_bytes("/src/a.txt", b"changed")  # copies are independent
        assert fs.read_bytes("/dst/a.txt") == b"inline a"
        assert fs.check().ok
    assert _rows(db_path, "copy.txt") == (b"inline a", [])


def test_copy_up_of_inline_files_from_every_kind_of_underlay(tmp_path):
    """Attached underlays copy inside SQLite; memory underlays and those beyond the attach
    limit pass the bytes through Python. Inline bytes survive all three."""
    paths = []
    for k in range(12):
        p = str(tmp_path / f"l{k}.vfs")
        with VFS(p) as fs:
            fs.write_bytes(f"/f{k}.txt", f"layer {k}".encode())
        paths.append(p)
    mem = VFS(":memory:")
    mem.write_bytes("/mem.txt", b"from memory")
    with VFS(str(tmp_path / "top.vfs")) as top:
        for k, p in enumerate(paths):
            top.add_underlay(p, priority=k, name=f"L{k}")
        top.add_underlay(mem, priority=100, name="mem")
        names = [f"/f{k}.txt" for k in range(12)] + ["/mem.txt"]
        for name in names:
            before = top.read_bytes(name)
            with top.open(name, "ab") as f:
                f.write(b"+")
            assert top.read_bytes(name) == before + b"+"
            assert top.which_layer(name) == "top" or top.which_layer(name) is not None
        assert top.check().ok
    mem.close()
    for k, p in enumerate(paths):
        with VFS(p, read_only=True) as fs:
            assert fs.read_bytes(f"/f{k}.txt") == f"layer {k}".encode()


def test_directory_rename_keeps_inline_bytes(db_path):
    with VFS(db_path) as fs:
        for k in range(50):
            fs.write_bytes(f"/d/sub/f{k}", bytes([k]) * (k * 100))
        fs.rename("/d", "/e")
        for k in range(50):
            assert fs.read_bytes(f"/e/sub/f{k}") == bytes([k]) * (k * 100)
        assert fs.check().ok


def test_info_counts_inline_bytes(db_path):
    with VFS(db_path) as fs:
        fs.write_bytes("/a", b"x" * 100)
        fs.write_bytes("/b", b"y" * 100_000)
        info = fs.info()
        assert info["inline_files"] == 1
        assert info["stored_bytes"] == 100_100
        report = fs.check()
        assert report.counts["inline_files"] == 1 and report.counts["stored_bytes"] == 100_100
