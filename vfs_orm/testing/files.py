"""Whole files, metadata, errors, batches and snapshots: the same answers from every VFS."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from vfs_orm import VFS, VFSError
from vfs_orm.testing.base import Conformance


def _errno(call: Callable[[], object]) -> int | None:
    with pytest.raises(OSError) as info:
        call()
    assert isinstance(info.value, VFSError)
    return info.value.errno


class FileTests(Conformance):
    """Whole files, metadata, errors, batches and snapshots."""

    @pytest.mark.parametrize("size", [0, 1, 100, 4096, 4097, 3 * 4096 + 5, 70_000])
    def test_write_then_read_every_size(self, fs: VFS, root: str, size: int) -> None:
        data = bytes((i * 7 + size) % 251 for i in range(size))
        assert fs.write_bytes(f"{root}/f.bin", data) == size
        assert fs.read_bytes(f"{root}/f.bin") == data
        assert fs.getsize(f"{root}/f.bin") == size
        assert fs.stat(f"{root}/f.bin").st_size == size


    def test_overwrite_shrinks_and_grows(self, fs: VFS, root: str) -> None:
        p = f"{root}/save.json"
        for data in (b"x" * 20_000, b"small", b"", b"y" * 9000, b"z" * 3):
            fs.write_bytes(p, data)
            assert fs.read_bytes(p) == data
        assert fs.listdir(root) == ["save.json"]


    def test_write_creates_parents(self, fs: VFS, root: str) -> None:
        fs.write_bytes(f"{root}/a/b/c/d.txt", b"deep")
        assert fs.isdir(f"{root}/a/b/c")
        assert fs.listdir(f"{root}/a") == ["b"]
        assert fs.read_text(f"{root}/a/b/c/d.txt") == "deep"


    def test_text_round_trip(self, fs: VFS, root: str) -> None:
        fs.write_text(f"{root}/t.txt", "héllo\nwörld")
        assert fs.read_text(f"{root}/t.txt") == "héllo\nwörld"


    def test_exists_isfile_isdir(self, fs: VFS, root: str) -> None:
        fs.write_bytes(f"{root}/f", b"1")
        fs.mkdir(f"{root}/d")
        assert (fs.exists(f"{root}/f"), fs.isfile(f"{root}/f"), fs.isdir(f"{root}/f")) == \
            (True, True, False)
        assert (fs.exists(f"{root}/d"), fs.isfile(f"{root}/d"), fs.isdir(f"{root}/d")) == \
            (True, False, True)
        assert not fs.exists(f"{root}/missing") and not fs.isfile(f"{root}/missing")


    def test_literal_names(self, fs: VFS, root: str) -> None:
        names = ["100%", "a_b", "c[1]", "*", "?", "ünïcode ☃", "sp ace"]
        for n in names:
            fs.write_bytes(f"{root}/{n}", n.encode())
        assert fs.listdir(root) == sorted(names)
        for n in names:
            assert fs.read_bytes(f"{root}/{n}") == n.encode()
        assert not fs.exists(f"{root}/a%b") and not fs.exists(f"{root}/c1")


    def test_write_files_all_or_nothing(self, fs: VFS, root: str) -> None:
        n = fs.write_files({f"{root}/m/{k}.txt": b"%d" % k for k in range(50)})
        assert n == 50
        assert len(fs.listdir(f"{root}/m")) == 50
        fs.write_bytes(f"{root}/blocker", b"a file")
        with pytest.raises(OSError):
            fs.write_files([(f"{root}/n/1", b"1"), (f"{root}/blocker/2", b"2")])
        assert not fs.exists(f"{root}/n")


    def test_stat_times_and_mode(self, fs: VFS, root: str) -> None:
        p = f"{root}/f"
        fs.write_bytes(p, b"abc", mtime_ns=1_700_000_000_123_456_789)
        st = fs.stat(p)
        assert st.st_mtime_ns == 1_700_000_000_123_456_789
        fs.utime(p, ns=(5, 1_600_000_000_000_000_000))
        assert fs.stat(p).st_mtime_ns == 1_600_000_000_000_000_000
        fs.chmod(p, 0o600)
        assert fs.stat(p).st_mode & 0o7777 == 0o600
        assert fs.read_bytes(p) == b"abc"
        assert fs.which_layer(p) == "local"


    def test_remove(self, fs: VFS, root: str) -> None:
        fs.write_bytes(f"{root}/f", b"1")
        fs.remove(f"{root}/f")
        assert not fs.exists(f"{root}/f")
        assert fs.listdir(root) == []
        assert _errno(lambda: fs.remove(f"{root}/f")) == errno.ENOENT


    def test_errors_by_errno(self, fs: VFS, root: str) -> None:
        fs.write_bytes(f"{root}/file", b"x")
        fs.mkdir(f"{root}/dir")
        fs.write_bytes(f"{root}/dir/inner", b"y")
        assert _errno(lambda: fs.read_bytes(f"{root}/nope")) == errno.ENOENT
        assert _errno(lambda: fs.read_bytes(f"{root}/dir")) == errno.EISDIR
        assert _errno(lambda: fs.read_bytes(f"{root}/file/x")) == errno.ENOTDIR
        assert _errno(lambda: fs.listdir(f"{root}/file")) == errno.ENOTDIR
        assert _errno(lambda: fs.write_bytes(f"{root}/dir", b"")) == errno.EISDIR
        assert _errno(lambda: fs.write_bytes(f"{root}/file/x", b"")) == errno.ENOTDIR
        assert _errno(lambda: fs.mkdir(f"{root}/file")) == errno.EEXIST
        assert _errno(lambda: fs.mkdir(f"{root}/a/b")) == errno.ENOENT
        assert _errno(lambda: fs.remove(f"{root}/dir")) == errno.EISDIR
        assert _errno(lambda: fs.rmdir(f"{root}/file")) == errno.ENOTDIR
        assert _errno(lambda: fs.rmdir(f"{root}/dir")) == errno.ENOTEMPTY
        assert _errno(lambda: fs.stat(f"{root}/file/x")) == errno.ENOTDIR
        # nothing changed
        assert fs.listdir(root) == ["dir", "file"]
        assert fs.read_bytes(f"{root}/dir/inner") == b"y"


    def test_copy(self, fs: VFS, root: str) -> None:
        data = bytes(range(256)) * 100
        fs.write_bytes(f"{root}/src", data)
        fs.copy(f"{root}/src", f"{root}/sub/dst")
        assert fs.read_bytes(f"{root}/sub/dst") == data
        fs.write_bytes(f"{root}/src", b"changed")
        assert fs.read_bytes(f"{root}/sub/dst") == data  # a copy, not a link
        fs.copy(f"{root}/src", f"{root}/sub/dst")
        assert fs.read_bytes(f"{root}/sub/dst") == b"changed"
        assert _errno(lambda: fs.copy(f"{root}/src", f"{root}/src")) == errno.EINVAL
        assert _errno(lambda: fs.copy(f"{root}/sub", f"{root}/x")) == errno.EISDIR


    def test_atomic_batch_commits_or_rolls_back(self, fs: VFS, root: str) -> None:
        with fs.atomic_batch():
            fs.write_bytes(f"{root}/a", b"1")
            fs.write_bytes(f"{root}/b", b"2")
        assert fs.listdir(root) == ["a", "b"]
        with pytest.raises(RuntimeError), fs.atomic_batch():
            fs.write_bytes(f"{root}/c", b"3")
            fs.remove(f"{root}/a")
            raise RuntimeError("abort the save")
        assert fs.listdir(root) == ["a", "b"]
        assert fs.read_bytes(f"{root}/a") == b"1"


    def test_snapshot_reads(self, fs: VFS, root: str) -> None:
        fs.write_files({f"{root}/save/{n}.json": n.encode() for n in ("player", "world")})
        with fs.snapshot():
            got = {n: fs.read_bytes(f"{root}/save/{n}.json") for n in ("player", "world")}
        assert got == {"player": b"player", "world": b"world"}
