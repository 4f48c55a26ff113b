"""File objects (open modes, streams, seeks): the same answers from every VFS."""

from __future__ import annotations

import errno
import io
import shutil

import pytest

from vfs_orm import VFS
from vfs_orm.testing.base import Conformance


class StreamTests(Conformance):
    """File objects: open modes, streams, seeks."""

    def test_write_and_read_streams(self, fs: VFS, root: str) -> None:
        p = f"{root}/stream.bin"
        data = bytes(range(256)) * 1000  # 256 000 bytes: many 4 KiB chunks
        with fs.open(p, "wb") as f:
            for k in range(0, len(data), 10_000):
                f.write(data[k:k + 10_000])
        assert fs.read_bytes(p) == data
        with fs.open(p, "rb") as f:
            assert f.read(5) == data[:5]
            f.seek(100_000)
            assert f.read(10) == data[100_000:100_010]
            f.seek(-3, io.SEEK_END)
            assert f.read() == data[-3:]
        out = io.BytesIO()
        with fs.open(p, "rb") as f:
            shutil.copyfileobj(f, out, 64 * 1024)
        assert out.getvalue() == data


    def test_text_mode(self, fs: VFS, root: str) -> None:
        with fs.open(f"{root}/t.txt", "w", encoding="utf-8") as f:
            f.write("line 1\nline 2\n")
        with fs.open(f"{root}/t.txt", encoding="utf-8") as f:
            assert f.readlines() == ["line 1\n", "line 2\n"]


    def test_w_handle_is_invisible_until_closed(self, fs: VFS, root: str) -> None:
        p = f"{root}/save.dat"
        fs.write_bytes(p, b"old")
        with fs.open(p, "wb") as f:
            f.write(b"new content")
            assert fs.read_bytes(p) == b"old"
        assert fs.read_bytes(p) == b"new content"


    def test_exclusive_and_append(self, fs: VFS, root: str) -> None:
        p = f"{root}/log.txt"
        with fs.open(p, "xb") as f:
            f.write(b"one\n")
        with pytest.raises(FileExistsError):
            fs.open(p, "xb")
        with fs.open(p, "ab") as f:
            f.write(b"two\n")
        with fs.open(p, "a") as f:
            f.write("three\n")
        assert fs.read_bytes(p) == b"one\ntwo\nthree\n"


    def test_r_plus_patches_in_place(self, fs: VFS, root: str) -> None:
        p = f"{root}/patch.bin"
        fs.write_bytes(p, b"\x00" * 10_000)
        with fs.open(p, "r+b") as f:
            f.seek(5000)
            f.write(b"PATCH")
            f.seek(9998)
            f.write(b"ENDS")
        data = fs.read_bytes(p)
        assert len(data) == 10_002 and data[5000:5005] == b"PATCH" and data.endswith(b"ENDS")


    def test_truncate(self, fs: VFS, root: str) -> None:
        p = f"{root}/t.bin"
        fs.write_bytes(p, b"abcdefgh" * 2000)
        with fs.open(p, "r+b") as f:
            f.truncate(10)
        assert fs.read_bytes(p) == b"abcdefghab"
        with fs.open(p, "r+b") as f:
            f.truncate(9000)
        assert fs.read_bytes(p) == b"abcdefghab" + bytes(8990)


    def test_open_errors(self, fs: VFS, root: str) -> None:
        fs.mkdir(f"{root}/d")
        with pytest.raises(OSError) as info:
            fs.open(f"{root}/missing", "rb")
        assert info.value.errno == errno.ENOENT
        with pytest.raises(OSError) as info:
            fs.open(f"{root}/d", "rb")
        assert info.value.errno == errno.EISDIR
        with pytest.raises(OSError) as info:
            fs.open(f"{root}/d", "wb")
        assert info.value.errno == errno.EISDIR
        with pytest.raises(OSError) as info:
            fs.open(f"{root}/missing", "r+b")
        assert info.value.errno == errno.ENOENT


    def test_sparse_seek_past_end(self, fs: VFS, root: str) -> None:
        p = f"{root}/sparse.bin"
        with fs.open(p, "wb") as f:
            f.seek(50_000)
            f.write(b"tail")
        data = fs.read_bytes(p)
        assert len(data) == 50_004 and data[:50_000] == bytes(50_000) and data[-4:] == b"tail"
