"""Directories, moves, copies of trees, walk and glob: the same answers from every VFS."""

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


def _tree(fs: VFS, top: str) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for d, dirs, files in fs.walk(top):
        for name in dirs:
            out[f"{d}/{name}"[len(top):]] = None
        for name in files:
            out[f"{d}/{name}"[len(top):]] = fs.read_bytes(f"{d}/{name}")
    return out


def _populate(fs: VFS, top: str) -> dict[str, bytes | None]:
    fs.makedirs(f"{top}/empty")
    fs.write_bytes(f"{top}/a.txt", b"a")
    fs.write_bytes(f"{top}/sub/b.bin", bytes(range(256)) * 40)
    fs.write_bytes(f"{top}/sub/deeper/c[1].txt", b"c")
    return _tree(fs, top)


class TreeTests(Conformance):
    """Directories, moves, copies of trees, walk, glob and scandir; a tree that exists before
    the test (under /pre)."""

    def test_mkdir_makedirs(self, fs: VFS, root: str) -> None:
        fs.mkdir(f"{root}/d")
        fs.mkdir(f"{root}/d", exist_ok=True)
        assert _errno(lambda: fs.mkdir(f"{root}/d")) == errno.EEXIST
        fs.makedirs(f"{root}/x/y/z")
        fs.makedirs(f"{root}/x/y/z", exist_ok=True)
        assert _errno(lambda: fs.makedirs(f"{root}/x/y/z")) == errno.EEXIST
        fs.mkdir(f"{root}/p/q", parents=True)
        assert fs.listdir(root) == ["d", "p", "x"]
        assert fs.listdir(f"{root}/x/y/z") == []


    def test_rmdir_and_rmtree(self, fs: VFS, root: str) -> None:
        expected = _populate(fs, f"{root}/t")
        assert len(expected) == 6
        fs.rmdir(f"{root}/t/empty")
        assert not fs.exists(f"{root}/t/empty")
        fs.rmtree(f"{root}/t")
        assert not fs.exists(f"{root}/t") and not fs.exists(f"{root}/t/sub/b.bin")
        assert fs.listdir(root) == []
        fs.mkdir(f"{root}/t")  # a new, empty directory where the old one was
        assert fs.listdir(f"{root}/t") == []


    def test_rename_file_and_directory(self, fs: VFS, root: str) -> None:
        expected = _populate(fs, f"{root}/t")
        fs.rename(f"{root}/t", f"{root}/moved/here")
        assert not fs.exists(f"{root}/t")
        assert _tree(fs, f"{root}/moved/here") == expected
        fs.rename(f"{root}/moved/here/a.txt", f"{root}/a2.txt")
        assert fs.read_bytes(f"{root}/a2.txt") == b"a"
        assert _errno(lambda: fs.rename(f"{root}/a2.txt", f"{root}/moved")) == errno.EEXIST
        assert _errno(lambda: fs.rename(f"{root}/nope", f"{root}/x")) == errno.ENOENT
        assert _errno(lambda: fs.rename(f"{root}/moved", f"{root}/moved/here/in")) == errno.EINVAL


    def test_replace_semantics(self, fs: VFS, root: str) -> None:
        fs.write_bytes(f"{root}/new", b"new save")
        fs.write_bytes(f"{root}/old", b"old save")
        fs.replace(f"{root}/new", f"{root}/old")
        assert fs.read_bytes(f"{root}/old") == b"new save"
        assert not fs.exists(f"{root}/new")
        fs.mkdir(f"{root}/d1")
        fs.mkdir(f"{root}/d2")
        fs.write_bytes(f"{root}/d1/x", b"x")
        fs.replace(f"{root}/d1", f"{root}/d2")  # onto an empty directory
        assert fs.read_bytes(f"{root}/d2/x") == b"x"
        fs.mkdir(f"{root}/d3")
        fs.write_bytes(f"{root}/d3/y", b"y")
        assert _errno(lambda: fs.replace(f"{root}/d3", f"{root}/d2")) == errno.ENOTEMPTY
        assert _errno(lambda: fs.replace(f"{root}/old", f"{root}/d2")) == errno.EISDIR
        assert _errno(lambda: fs.replace(f"{root}/d3", f"{root}/old")) == errno.ENOTDIR
        fs.replace(f"{root}/old", f"{root}/old")
        assert fs.read_bytes(f"{root}/old") == b"new save"


    def test_copytree(self, fs: VFS, root: str) -> None:
        expected = _populate(fs, f"{root}/t")
        fs.copytree(f"{root}/t", f"{root}/copy")
        assert _tree(fs, f"{root}/copy") == expected
        assert _tree(fs, f"{root}/t") == expected
        assert _errno(lambda: fs.copytree(f"{root}/t", f"{root}/copy")) == errno.EEXIST
        fs.write_bytes(f"{root}/t/a.txt", b"changed")
        fs.copytree(f"{root}/t", f"{root}/copy", dirs_exist_ok=True)
        assert fs.read_bytes(f"{root}/copy/a.txt") == b"changed"
        assert _errno(lambda: fs.copytree(f"{root}/t", f"{root}/t/in")) == errno.EINVAL


    def test_walk_orders(self, fs: VFS, root: str) -> None:
        _populate(fs, f"{root}/t")
        top_down = [d for d, _, _ in fs.walk(f"{root}/t")]
        bottom_up = [d for d, _, _ in fs.walk(f"{root}/t", topdown=False)]
        assert top_down[0] == f"{root}/t" and bottom_up[-1] == f"{root}/t"
        assert sorted(top_down) == sorted(bottom_up) == sorted(
            [f"{root}/t", f"{root}/t/empty", f"{root}/t/sub", f"{root}/t/sub/deeper"])
        errors: list[OSError] = []
        assert list(fs.walk(f"{root}/missing", onerror=errors.append)) == []
        assert errors and errors[0].errno == errno.ENOENT


    def test_glob(self, fs: VFS, root: str) -> None:
        _populate(fs, f"{root}/t")
        fs.write_bytes(f"{root}/t/sub/z.txt", b"z")
        assert fs.glob(f"{root}/t/*.txt") == [f"{root}/t/a.txt"]
        assert fs.glob(f"{root}/t/**/*.txt") == sorted(
            [f"{root}/t/a.txt", f"{root}/t/sub/deeper/c[1].txt", f"{root}/t/sub/z.txt"])
        assert fs.glob(f"{root}/t/*/?.bin") == [f"{root}/t/sub/b.bin"]
        assert fs.glob(f"{root}/t/sub/deeper/c[[]1].txt") == [f"{root}/t/sub/deeper/c[1].txt"]
        assert fs.glob(f"{root}/t/nothing*") == []


    def test_removed_directory_is_gone_for_every_query(self, fs: VFS, root: str) -> None:
        _populate(fs, f"{root}/t")
        fs.rmtree(f"{root}/t/sub")
        assert fs.listdir(f"{root}/t") == ["a.txt", "empty"]
        assert fs.glob(f"{root}/t/**/*.bin") == []
        assert [d for d, _, _ in fs.walk(f"{root}/t")] == [f"{root}/t", f"{root}/t/empty"]
        assert _errno(lambda: fs.read_bytes(f"{root}/t/sub/b.bin")) == errno.ENOENT
        fs.write_bytes(f"{root}/t/sub/new", b"back")
        assert fs.listdir(f"{root}/t/sub") == ["new"]


    # -- a tree that exists before the test (in underlays for the layered configurations) ------
    def test_preexisting_tree_reads(self, fs: VFS, root: str, pre: dict[str, bytes]) -> None:
        assert _tree(fs, "/pre") == {"/keep.txt": pre["/pre/keep.txt"],
                                            "/sub": None,
                                            "/sub/x.bin": pre["/pre/sub/x.bin"],
                                            "/sub/y.txt": b"y"}
        with fs.open("/pre/sub/x.bin", "rb") as f:
            f.seek(4000)
            assert f.read(300) == pre["/pre/sub/x.bin"][4000:4300]


    def test_preexisting_remove_and_rmtree(self, fs: VFS, root: str) -> None:
        fs.remove("/pre/keep.txt")
        assert not fs.exists("/pre/keep.txt")
        assert fs.listdir("/pre") == ["sub"]
        fs.rmtree("/pre/sub")
        assert fs.listdir("/pre") == []
        assert fs.glob("/pre/**/*") == []
        fs.rmdir("/pre")
        assert not fs.exists("/pre")
        fs.makedirs("/pre/sub")
        assert fs.listdir("/pre/sub") == []  # nothing old comes back
        fs.write_bytes("/pre/keep.txt", b"again")
        assert fs.read_bytes("/pre/keep.txt") == b"again"


    def test_preexisting_rename_and_copy(self, fs: VFS, root: str, pre: dict[str, bytes]) -> None:
        before = _tree(fs, "/pre")
        fs.copytree("/pre", f"{root}/copy")
        assert _tree(fs, f"{root}/copy") == before
        fs.rename("/pre", f"{root}/moved")
        assert not fs.exists("/pre") and not fs.exists("/pre/sub/x.bin")
        assert _tree(fs, f"{root}/moved") == before
        fs.copy(f"{root}/moved/sub/x.bin", f"{root}/x2.bin")
        assert fs.read_bytes(f"{root}/x2.bin") == pre["/pre/sub/x.bin"]
        fs.replace(f"{root}/x2.bin", f"{root}/moved/keep.txt")
        assert fs.read_bytes(f"{root}/moved/keep.txt") == pre["/pre/sub/x.bin"]


    def test_preexisting_changes_in_place(self, fs: VFS, root: str, pre: dict[str, bytes]) -> None:
        p = "/pre/sub/x.bin"
        with fs.open(p, "r+b") as f:
            f.seek(4090)
            f.write(b"CHANGED")
        with fs.open("/pre/keep.txt", "ab") as f:
            f.write(b"more\n")
        fs.chmod("/pre/sub", 0o700)
        fs.utime("/pre/sub/y.txt", ns=(1, 2_000_000_000))
        expected = bytearray(pre[p])
        expected[4090:4097] = b"CHANGED"
        assert fs.read_bytes(p) == bytes(expected)
        assert fs.read_bytes("/pre/keep.txt") == pre["/pre/keep.txt"] + b"more\n"
        assert fs.stat("/pre/sub").st_mode & 0o777 == 0o700
        assert fs.stat("/pre/sub/y.txt").st_mtime_ns == 2_000_000_000
        assert fs.listdir("/pre/sub") == ["x.bin", "y.txt"]


    def test_preexisting_overwrite_whole(self, fs: VFS, root: str) -> None:
        fs.write_bytes("/pre/sub/x.bin", b"replaced")
        with fs.open("/pre/keep.txt", "wb") as f:
            f.write(b"rewritten")
        assert fs.read_bytes("/pre/sub/x.bin") == b"replaced"
        assert fs.read_bytes("/pre/keep.txt") == b"rewritten"
        assert fs.which_layer("/pre/keep.txt") == "local"


    def test_scandir_matches_walk_and_stat(self, fs: VFS, root: str) -> None:
        """scandir's metadata is stat's; recursive, it is walk's content, parents first."""
        expected = _populate(fs, f"{root}/t")
        entries = fs.scandir(f"{root}/t")
        assert [e.name for e in entries] == fs.listdir(f"{root}/t")
        for e in entries:
            assert e.path == f"{root}/t/{e.name}"
            assert e.stat() == fs.stat(e.path)
            assert e.is_dir() == fs.isdir(e.path) and e.is_file() == fs.isfile(e.path)
        below = fs.scandir(f"{root}/t", recursive=True)
        assert {e.path[len(f"{root}/t"):]: (None if e.is_dir() else e.stat().st_size)
                for e in below} == {k: (None if v is None else len(v)) for k, v in expected.items()}
        seen = {f"{root}/t"}
        for e in below:
            assert e.path.rsplit("/", 1)[0] in seen  # each directory before its content
            seen.add(e.path)
        fs.rmtree(f"{root}/t/sub")
        assert [e.path for e in fs.scandir(f"{root}/t", recursive=True)] == [
            f"{root}/t/a.txt", f"{root}/t/empty"]
        assert _errno(lambda: fs.scandir(f"{root}/t/a.txt")) == errno.ENOTDIR
        assert _errno(lambda: fs.scandir(f"{root}/t/missing", recursive=True)) == errno.ENOENT


    def test_scandir_over_preexisting_tree(self, fs: VFS, root: str, pre: dict[str, bytes]) -> None:
        fs.remove("/pre/sub/y.txt")
        fs.write_bytes("/pre/new.txt", b"new")
        assert sorted(e.path for e in fs.scandir("/pre", recursive=True)) == [
            "/pre/keep.txt", "/pre/new.txt", "/pre/sub", "/pre/sub/x.bin"]
        assert {e.name: e.stat().st_size for e in fs.scandir("/pre/sub")} == {
            "x.bin": len(pre["/pre/sub/x.bin"])}
