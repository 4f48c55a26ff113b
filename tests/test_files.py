"""Files: open modes, real io objects, seek/tell/truncate, sparse writes, text, atomicity."""

import io
import os

import pytest

from vfs_orm import (
    VFS,
    AlreadyExistsError,
    IsADirError,
    NotADirError,
    NotFoundError,
    ReadOnlyError,
    StaleHandleError,
)


def test_write_read_roundtrip(any_vfs):
    fs = any_vfs
    assert fs.write_bytes("/a/b/c.bin", b"xyz") == 3
    assert fs.read_bytes("/a/b/c.bin") == b"xyz"
    assert fs.isdir("/a") and fs.isdir("/a/b") and fs.isfile("/a/b/c.bin")
    assert fs.write_text("t.txt", "héllo\n") == 6
    assert fs.read_text("/t.txt") == "héllo\n"
    assert fs.getsize("/t.txt") == len("héllo\n".encode())


def test_large_file_multi_chunk(any_vfs):
    data = os.urandom(65536 * 5 + 123)
    any_vfs.write_bytes("/big", data)
    assert any_vfs.read_bytes("/big") == data
    with any_vfs.open("/big", "rb") as f:
        assert f.read() == data
    with any_vfs.open("/big", "rb") as f:
        parts = []
        while chunk := f.read(1000):
            parts.append(chunk)
    assert b"".join(parts) == data


def test_open_returns_real_io_objects(vfs):
    vfs.write_bytes("/f", b"data")
    with vfs.open("/f", "rb") as f:
        assert isinstance(f, io.BufferedReader)
    with vfs.open("/f", "r") as f:
        assert isinstance(f, io.TextIOWrapper) and f.read() == "data"
    with vfs.open("/g", "wb") as f:
        assert isinstance(f, io.BufferedWriter)
    with vfs.open("/g", "r+b") as f:
        assert isinstance(f, io.BufferedRandom)
    with vfs.open("/g", "rb", buffering=0) as f:
        assert isinstance(f, io.RawIOBase)
    with pytest.raises(ValueError):
        vfs.open("/f", "r", buffering=0)
    for bad in ["", "rw", "rr", "q", "rbt", "b", "+"]:
        with pytest.raises(ValueError):
            vfs.open("/f", bad)
    with pytest.raises(ValueError):
        vfs.open("/f", "rb", encoding="utf-8")


@pytest.mark.parametrize("mode", ["r", "rb", "r+", "r+b"])
def test_read_modes_need_existing_file(vfs, mode):
    with pytest.raises(NotFoundError):
        vfs.open("/missing", mode)


def test_all_modes(vfs):
    with vfs.open("/m", "w") as f:
        f.write("abc")
    with vfs.open("/m", "a") as f:
        assert f.tell() == 3
        f.write("def")
    assert vfs.read_text("/m") == "abcdef"
    with vfs.open("/m", "r+") as f:
        f.seek(1)
        f.write("X")
        f.seek(0)
        assert f.read() == "aXcdef"
    with vfs.open("/m", "w+") as f:
        f.write("new")
        f.seek(0)
        assert f.read() == "new"
    assert vfs.read_text("/m") == "new"
    with vfs.open("/m", "a+") as f:
        f.write("!")
        f.seek(0)
        assert f.read() == "new!"
    with pytest.raises(FileExistsError):
        vfs.open("/m", "x")
    with vfs.open("/n", "x+b") as f:
        f.write(b"12")
        f.seek(0)
        assert f.read() == b"12"
    assert vfs.read_bytes("/n") == b"12"
    with vfs.open("/m", "ab") as f:  # append ignores seeks for writes
        f.seek(0)
        f.write(b"?")
    assert vfs.read_bytes("/m") == b"new!?"


def test_seek_tell_truncate_sparse(vfs):
    with vfs.open("/s", "wb", buffering=0) as f:
        f.seek(200_000)
        f.write(b"end")
        assert f.tell() == 200_003
    data = vfs.read_bytes("/s")
    assert len(data) == 200_003 and data[:200_000] == bytes(200_000) and data[-3:] == b"end"
    with vfs.open("/s", "r+b") as f:
        f.seek(-3, io.SEEK_END)
        assert f.read() == b"end"
        f.truncate(70_000)
        f.seek(0, io.SEEK_END)
        assert f.tell() == 70_000
        f.truncate(150_000)  # extending truncate reads back zeros
    assert vfs.read_bytes("/s") == bytes(150_000)
    with vfs.open("/s", "r+b") as f:
        f.seek(65_530)
        f.write(b"0123456789")  # across a chunk boundary
    d = vfs.read_bytes("/s")
    assert d[65_530:65_540] == b"0123456789" and len(d) == 150_000
    with vfs.open("/s", "rb") as f:
        with pytest.raises(ValueError):
            f.seek(-1)
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"x")


def test_truncate_in_staged_write(vfs):
    with vfs.open("/t", "w+b") as f:
        f.write(os.urandom(200_000))
        f.truncate(10)
        f.seek(0, io.SEEK_END)
        f.write(b"AB")
    assert len(vfs.read_bytes("/t")) == 12 and vfs.read_bytes("/t")[-2:] == b"AB"


def test_text_modes_encoding_errors_newline(vfs):
    with vfs.open("/t.txt", "w", encoding="utf-16") as f:
        f.write("ünïcödé")
    assert vfs.read_text("/t.txt", encoding="utf-16") == "ünïcödé"
    vfs.write_bytes("/bad.txt", b"ok\xffok")
    with pytest.raises(UnicodeDecodeError):
        vfs.read_text("/bad.txt")
    assert vfs.read_text("/bad.txt", errors="replace") == "ok\ufffdok"
    with vfs.open("/nl.txt", "w", newline="\r\n") as f:
        f.write("a\nb\n")
    assert vfs.read_bytes("/nl.txt") == b"a\r\nb\r\n"
    assert vfs.read_text("/nl.txt") == "a\nb\n"
    with vfs.open("/nl.txt", "r", newline="") as f:
        assert f.read() == "a\r\nb\r\n"
    with vfs.open("/lines.txt", "w") as f:
        f.writelines(["x\n", "y\n", "z"])
    with vfs.open("/lines.txt") as f:
        assert list(f) == ["x\n", "y\n", "z"]


def test_w_replaces_atomically_at_close(vfs, db_path):
    vfs.write_bytes("/save", b"old")
    other = VFS(db_path)
    try:
        f = vfs.open("/save", "wb")
        f.write(b"new" * 100_000)
        f.flush()
        assert other.read_bytes("/save") == b"old"
        assert vfs.read_bytes("/save") == b"old"
        f.close()
        assert other.read_bytes("/save") == b"new" * 100_000
    finally:
        other.close()


def test_exception_inside_with_keeps_old_content(vfs):
    vfs.write_bytes("/save", b"old")
    with pytest.raises(RuntimeError):
        with vfs.open("/save", "w") as f:
            f.write("half" * 2_000_000)  # big enough to reach the staging inode
            raise RuntimeError("crash")
    assert vfs.read_bytes("/save") == b"old"
    with pytest.raises(RuntimeError):
        with vfs.open("/fresh", "xb") as f:
            f.write(b"x")
            raise RuntimeError("crash")
    assert not vfs.exists("/fresh")
    assert vfs.listdir("/") == ["save"]


def test_x_mode_race_detected_at_close(vfs):
    f = vfs.open("/race", "xb")
    f.write(b"mine")
    vfs.write_bytes("/race", b"theirs")
    with pytest.raises(AlreadyExistsError):
        f.close()
    assert vfs.read_bytes("/race") == b"theirs"


def test_reader_of_replaced_file_is_stale_not_torn(vfs):
    vfs.write_bytes("/f", os.urandom(300_000))
    f = vfs.open("/f", "rb")
    f.read(10)
    vfs.write_bytes("/f", b"replaced")
    with pytest.raises(StaleHandleError):
        f.read()
    f.close()


def test_open_errors(vfs):
    vfs.mkdir("/d")
    vfs.write_bytes("/file", b"")
    with pytest.raises(IsADirError):
        vfs.open("/d")
    with pytest.raises(IsADirError):
        vfs.open("/d", "w")
    with pytest.raises(IsADirError):
        vfs.open("/d", "a")
    with pytest.raises(IsADirError):
        vfs.read_bytes("/d")
    with pytest.raises(NotADirError):
        vfs.open("/file/x", "w")
    with pytest.raises(NotADirError):
        vfs.open("/file/x")
    with pytest.raises(NotADirError):
        vfs.write_bytes("/file/x/y", b"")
    with pytest.raises(TypeError):
        vfs.write_bytes("/x", "text")
    with pytest.raises(TypeError):
        vfs.write_text("/x", b"bytes")
    with pytest.raises(TypeError):
        vfs.open("/file", 1)


def test_closed_handles_and_closed_vfs(db_path):
    fs = VFS(db_path)
    fs.write_bytes("/f", b"x")
    f = fs.open("/f", "rb")
    f.close()
    with pytest.raises(ValueError):
        f.read()
    g = fs.open("/f", "rb")
    fs.close()
    with pytest.raises(ValueError):
        g.read()
    with pytest.raises(ValueError):
        fs.exists("/f")
    with pytest.raises(OSError):
        fs.write_bytes("/f", b"y")
    fs.close()  # idempotent


def test_memoryview_and_bytearray_content(vfs):
    vfs.write_bytes("/b", bytearray(b"abc"))
    vfs.write_bytes("/m", memoryview(b"defg"))
    assert vfs.read_bytes("/b") == b"abc" and vfs.read_bytes("/m") == b"defg"
    with vfs.open("/r", "wb") as f:
        f.write(memoryview(b"xyz")[1:])
    assert vfs.read_bytes("/r") == b"yz"


def test_readinto_readline_iteration(vfs):
    vfs.write_bytes("/l", b"one\ntwo\nthree")
    with vfs.open("/l", "rb") as f:
        assert f.readline() == b"one\n"
        buf = bytearray(3)
        assert f.readinto(buf) == 3 and buf == b"two"
        assert f.read() == b"\nthree"
        assert f.read() == b""


def test_read_only_refuses_writes(db_path):
    with VFS(db_path) as fs:
        fs.write_bytes("/f", b"x")
    with VFS(db_path, read_only=True) as ro:
        assert ro.read_bytes("/f") == b"x"
        for call in (lambda: ro.write_bytes("/g", b""), lambda: ro.open("/f", "w"),
                     lambda: ro.open("/f", "r+"), lambda: ro.open("/f", "a"),
                     lambda: ro.mkdir("/d"), lambda: ro.remove("/f"),
                     lambda: ro.rename("/f", "/g"), lambda: ro.copy("/f", "/g")):
            with pytest.raises(ReadOnlyError) as ei:
                call()
            assert isinstance(ei.value, PermissionError)
        with pytest.raises(PermissionError):
            with ro.atomic_batch():
                pass
    with VFS(db_path) as fs:
        assert fs.listdir("/") == ["f"]


def test_stat(any_vfs):
    fs = any_vfs
    fs.write_bytes("/f", b"12345")
    fs.mkdir("/d")
    st = fs.stat("/f")
    assert st.st_size == 5 and st.size == 5 and st.is_file() and not st.is_directory
    assert isinstance(st.st_mtime, float) and isinstance(st.st_mtime_ns, int)
    assert abs(st.st_mtime - st.st_mtime_ns / 1e9) < 1e-3
    assert st.source_layer == "local"
    assert isinstance(st.created_at, str) and "T" in st.modified_at
    d = fs.stat("/d")
    assert d.st_size == 0 and d.is_directory and d.is_dir()
    import stat as S
    assert S.S_ISDIR(d.st_mode) and S.S_ISREG(st.st_mode)
    assert fs.stat("/").is_directory
    with pytest.raises(NotFoundError):
        fs.stat("/nope")
    with pytest.raises(NotADirError):
        fs.stat("/f/under")
    assert not fs.exists("/f/under")


def test_overwrite_keeps_creation_time_updates_mtime(vfs):
    vfs.write_bytes("/f", b"1")
    a = vfs.stat("/f")
    vfs.write_bytes("/f", b"22")
    b = vfs.stat("/f")
    assert b.st_ctime_ns == a.st_ctime_ns and b.st_mtime_ns >= a.st_mtime_ns and b.st_size == 2


@pytest.mark.parametrize("same_vfs", [True, False])
def test_random_reader_detects_replacement(db_path, same_vfs):
    """Random reads use BLOB I/O without a query; a rewrite by this or another connection
    must still be noticed (data_version / write counter), never served as torn bytes."""
    a = VFS(db_path)
    b = a if same_vfs else VFS(db_path)
    try:
        a.write_bytes("/f", b"A" * 300_000)
        with a.open("/f", "rb") as f:
            for off in (200_000, 5, 150_000):  # random access: the blob path
                f.seek(off)
                assert f.read(100) == b"A" * 100
            b.write_bytes("/f", b"B" * 300_000)  # rewritten in place, same chunk rows
            f.seek(70_000)
            with pytest.raises(StaleHandleError):
                f.read(100)
    finally:
        a.close()
        if b is not a:
            b.close()


def test_random_reads_in_sparse_file(vfs):
    with vfs.open("/sp", "wb") as f:
        f.seek(500_000)
        f.write(b"Z")
    with vfs.open("/sp", "rb") as f:
        for off in (400_000, 10, 499_999, 250_000):
            f.seek(off)
            got = f.read(2)
            assert got == (b"\x00Z" if off == 499_999 else b"\x00\x00"), off


@pytest.mark.parametrize("buffering", [-1, 0, 3000, 100_000])
def test_random_then_sequential_reads_match_reference(vfs, buffering):
    """A random read returns a short window (4 KiB, doubling while the reads continue
    sequentially); whatever the buffer, every read must equal the same slice of the bytes,
    across chunk boundaries and at the end of the file."""
    import random
    data = os.urandom(3 * 65536 + 1234)
    vfs.write_bytes("/r", data)
    rnd = random.Random(7)
    with vfs.open("/r", "rb", buffering=buffering) as f:
        for _ in range(300):
            off = rnd.randrange(0, len(data) + 10)
            f.seek(off)
            got = b""
            for _ in range(rnd.randint(1, 6)):  # a random read, then sequential ones
                n = rnd.choice([1, 100, 4096, 5000, 65536, 140_000])
                piece = f.read(n)
                if buffering == 0:  # raw streams may return less: read until n or EOF
                    while len(piece) < n and (more := f.read(n - len(piece))):
                        piece += more
                got += piece
                assert f.tell() == min(len(data), off + len(got))
            assert got == data[off:off + len(got)]
            assert len(got) > 0 or off >= len(data)


def test_rewrite_fast_path_keeps_every_rule(db_path):
    """The one-statement rewrite (taken after a rewrite) must behave exactly like the full
    path: errors for directories and exclusive writes, shrink/grow across chunk sizes,
    ctime kept, open readers told their file was replaced."""
    with VFS(db_path, chunk_size=4096) as fs:
        fs.write_bytes("/s/a", b"1" * 100)
        fs.write_bytes("/s/a", b"2" * 100)  # now the fast path is expected
        ctime = fs.stat("/s/a").st_ctime_ns
        fs.mkdir("/s/d")
        with pytest.raises(IsADirError):
            fs.write_bytes("/s/d", b"x")
        fs.write_bytes("/s/a", b"3" * 50)
        with pytest.raises(AlreadyExistsError):
            fs._tree.write_bytes("/s/a", b"4", exclusive=True)  # as put/unpack without overwrite
        assert fs.read_bytes("/s/a") == b"3" * 50
        with fs.open("/s/a", "rb", buffering=0) as f:  # raw: no buffer to serve from
            f.seek(10)
            assert f.read(5) == b"33333"
            fs.write_bytes("/s/a", b"5" * 60)
            f.seek(20)
            with pytest.raises(StaleHandleError):
                f.read(5)
        fs.write_bytes("/s/a", b"6" * 10_000)  # grows past one chunk: the full path
        fs.write_bytes("/s/a", b"7" * 10)  # shrinks back: chunks 1 and 2 must go
        assert fs.read_bytes("/s/a") == b"7" * 10 and fs.stat("/s/a").st_ctime_ns == ctime
        fs.write_bytes("/s/a", b"")
        assert fs.read_bytes("/s/a") == b""
        assert fs.check().ok, fs.check().problems
    with VFS(db_path, chunk_size=1024) as fs:  # another chunk size: not the fast path
        fs.write_bytes("/s/a", b"8" * 3000)
        fs.write_bytes("/s/a", b"9" * 3000)
        assert fs.read_bytes("/s/a") == b"9" * 3000
        assert fs.check().ok


def test_create_fast_path_keeps_every_rule(db_path):
    """New files go through one INSERT OR IGNORE that inserts nothing unless the parent is
    a directory and the name is free; every other case must still get the full rules."""
    from vfs_orm import NotADirError
    with VFS(db_path) as fs:
        fs.write_bytes("/f", b"file")
        with pytest.raises(NotADirError):
            fs.write_bytes("/f/child", b"x")  # parent is a file
        fs.mkdir("/d")
        with pytest.raises(IsADirError):
            fs.write_bytes("/d", b"x")  # a directory is in the way
        fs.write_bytes("/new/deep/g", b"g")  # missing parents are created
        assert fs.isdir("/new/deep") and fs.read_bytes("/new/deep/g") == b"g"
        fs.write_bytes("/d/h", b"h" * 200_000)  # several chunks
        fs.write_bytes("/d/h2", b"")  # no chunk at all
        assert fs.read_bytes("/d/h") == b"h" * 200_000 and fs.read_bytes("/d/h2") == b""
        fs.write_bytes("/f", b"again")  # exists: falls back, then rewrites
        assert fs.read_bytes("/f") == b"again"
        assert sorted(fs.listdir("/")) == ["d", "f", "new"]
        assert fs.check().ok, fs.check().problems
