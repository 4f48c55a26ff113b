"""Directories: mkdir/makedirs/listdir/walk/rmdir/rmtree/rename/replace/copy/copytree."""

import errno

import icontract
import pytest
from conftest import tree_of

from vfs_orm import (
    DirNotEmptyError,
    InvalidOperationError,
    RootContractError,
)


def test_mkdir_rules(any_vfs):
    fs = any_vfs
    fs.mkdir("/a")
    with pytest.raises(FileExistsError):
        fs.mkdir("/a")
    fs.mkdir("/a", exist_ok=True)
    with pytest.raises(FileNotFoundError):
        fs.mkdir("/x/y")
    fs.mkdir("/x/y", parents=True)
    fs.makedirs("/p/q/r")
    fs.makedirs("/p/q/r", exist_ok=True)
    with pytest.raises(FileExistsError):
        fs.makedirs("/p/q/r")
    fs.write_bytes("/f", b"")
    with pytest.raises(FileExistsError):
        fs.mkdir("/f", exist_ok=True)
    with pytest.raises(NotADirectoryError):
        fs.mkdir("/f/sub")
    with pytest.raises(NotADirectoryError):
        fs.makedirs("/f/sub/deeper")
    with pytest.raises(FileExistsError):
        fs.mkdir("/")
    fs.mkdir("/", exist_ok=True)
    assert fs.listdir() == ["a", "f", "p", "x"]


def test_listdir_sorted_and_errors(any_vfs):
    fs = any_vfs
    for n in ["b", "a", "C", "_", "z/deep/file"]:
        fs.write_bytes("/" + n, b"")
    assert fs.listdir("/") == sorted(["b", "a", "C", "_", "z"])
    assert fs.listdir("/z") == ["deep"]
    fs.mkdir("/empty")
    assert fs.listdir("/empty") == []
    with pytest.raises(NotADirectoryError):
        fs.listdir("/a")
    with pytest.raises(FileNotFoundError):
        fs.listdir("/nope")


def test_walk_topdown_bottomup_prune_onerror(any_vfs):
    fs = any_vfs
    for p in ["/r/a/1", "/r/a/2", "/r/b/c/3", "/r/top"]:
        fs.write_bytes(p, b"x")
    assert list(fs.walk("/r")) == [
        ("/r", ["a", "b"], ["top"]), ("/r/a", [], ["1", "2"]), ("/r/b", ["c"], []),
        ("/r/b/c", [], ["3"])]
    assert [d for d, _, _ in fs.walk("/r", topdown=False)] == ["/r/a", "/r/b/c", "/r/b", "/r"]
    seen = []
    for d, dirs, _ in fs.walk("/r"):
        seen.append(d)
        if "b" in dirs:
            dirs.remove("b")
    assert seen == ["/r", "/r/a"]
    errors = []
    assert list(fs.walk("/missing", onerror=errors.append)) == []
    assert isinstance(errors[0], FileNotFoundError)
    assert list(fs.walk("/missing")) == []


def test_rmdir(any_vfs):
    fs = any_vfs
    fs.makedirs("/d/e")
    with pytest.raises(DirNotEmptyError) as ei:
        fs.rmdir("/d")
    assert isinstance(ei.value, PermissionError) and ei.value.errno == errno.ENOTEMPTY
    fs.rmdir("/d/e")
    fs.rmdir("/d")
    assert not fs.exists("/d")
    with pytest.raises(FileNotFoundError):
        fs.rmdir("/d")
    fs.write_bytes("/f", b"")
    with pytest.raises(NotADirectoryError):
        fs.rmdir("/f")
    with pytest.raises(RootContractError) as ei2:
        fs.rmdir("/")
    assert isinstance(ei2.value, icontract.ViolationError)
    assert isinstance(ei2.value, PermissionError)


def test_remove_and_unlink(any_vfs):
    fs = any_vfs
    fs.write_bytes("/f", b"x" * 200_000)
    fs.remove("/f")
    assert not fs.exists("/f")
    fs.write_bytes("/g", b"")
    fs.unlink("/g")
    with pytest.raises(FileNotFoundError):
        fs.remove("/g")
    fs.mkdir("/d")
    with pytest.raises(IsADirectoryError):
        fs.remove("/d")
    with pytest.raises(RootContractError):
        fs.remove("/")


def test_rmtree(any_vfs):
    fs = any_vfs
    for p in ["/t/a/1", "/t/a/b/2", "/t/3", "/tx/keep", "/t0/keep"]:
        fs.write_bytes(p, b"data")
    fs.rmtree("/t")
    assert not fs.exists("/t") and fs.exists("/tx/keep") and fs.exists("/t0/keep")
    with pytest.raises(NotADirectoryError):
        fs.rmtree("/tx/keep")
    with pytest.raises(FileNotFoundError):
        fs.rmtree("/t")
    with pytest.raises(RootContractError):
        fs.rmtree("/")
    with pytest.raises(RootContractError):
        fs.rmtree("/a/..")


def test_rename_file_and_directory(any_vfs):
    fs = any_vfs
    for p in ["/src/a/1", "/src/a/b/2", "/src/3", "/srcx/keep"]:
        fs.write_bytes(p, p.encode())
    before = tree_of(fs, "/src")
    fs.rename("/src", "/moved/here")
    after = tree_of(fs, "/moved/here")
    assert {k.replace("/moved/here", "/src", 1): v for k, v in after.items()} == before
    assert not fs.exists("/src") and fs.read_bytes("/srcx/keep") == b"/srcx/keep"
    fs.rename("/moved/here/3", "/three")
    assert fs.read_bytes("/three") == b"/src/3"
    fs.write_bytes("/other", b"o")
    with pytest.raises(FileExistsError) as ei:
        fs.rename("/three", "/other")
    assert ei.value.filename2 == "/other"
    with pytest.raises(InvalidOperationError) as ei2:
        fs.rename("/moved", "/moved/here/inside")
    assert ei2.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError):
        fs.rename("/nope", "/x")
    with pytest.raises(RootContractError):
        fs.rename("/", "/x")


def test_replace_semantics(any_vfs):
    fs = any_vfs
    fs.write_bytes("/a", b"A")
    fs.write_bytes("/b", b"B")
    fs.replace("/a", "/b")
    assert fs.read_bytes("/b") == b"A" and not fs.exists("/a")
    fs.makedirs("/d1/x")
    fs.mkdir("/d2")
    fs.replace("/d1", "/d2")
    assert fs.isdir("/d2/x")
    fs.mkdir("/d3")
    fs.write_bytes("/d3/f", b"")
    fs.mkdir("/d4")
    with pytest.raises(OSError) as ei:
        fs.replace("/d4", "/d3")
    assert ei.value.errno == errno.ENOTEMPTY
    with pytest.raises(IsADirectoryError):
        fs.replace("/b", "/d4")
    with pytest.raises(NotADirectoryError):
        fs.replace("/d4", "/b")
    fs.replace("/b", "/b")
    assert fs.read_bytes("/b") == b"A"


def test_copy_and_copytree(any_vfs):
    fs = any_vfs
    fs.write_bytes("/s/f", b"x" * 150_000)
    fs.write_bytes("/s/sub/g", b"g")
    fs.mkdir("/s/empty")
    fs.copy("/s/f", "/c/f2")
    assert fs.read_bytes("/c/f2") == b"x" * 150_000
    fs.write_bytes("/s/f", b"changed")
    assert fs.read_bytes("/c/f2") == b"x" * 150_000  # a copy, not a link
    fs.copy("/s/f", "/c/f2")  # overwrite
    assert fs.read_bytes("/c/f2") == b"changed"
    with pytest.raises(IsADirectoryError):
        fs.copy("/s", "/x")
    with pytest.raises(IsADirectoryError):
        fs.copy("/s/f", "/s/sub")
    with pytest.raises(FileNotFoundError):
        fs.copy("/nope", "/x")
    fs.copytree("/s", "/t")
    assert tree_of(fs, "/t") == {k.replace("/s", "/t", 1): v for k, v in tree_of(fs, "/s").items()}
    with pytest.raises(FileExistsError):
        fs.copytree("/s", "/t")
    fs.write_bytes("/s/new", b"n")
    fs.copytree("/s", "/t", dirs_exist_ok=True)
    assert fs.read_bytes("/t/new") == b"n"
    with pytest.raises(NotADirectoryError):
        fs.copytree("/s/f", "/u")
    with pytest.raises(FileNotFoundError):
        fs.copytree("/nope", "/u")
    with pytest.raises(InvalidOperationError):
        fs.copytree("/s", "/s/inner")


def test_rename_below_itself_through_a_file_is_enotdir_like_linux(vfs, tmp_path):
    # Linux resolves both paths before comparing them: the file in dst's path wins.
    import errno
    import os
    vfs.makedirs("/d")
    vfs.write_bytes("/d/file.txt", b"x")
    real = tmp_path / "real"
    (real / "d").mkdir(parents=True)
    (real / "d" / "file.txt").write_bytes(b"x")
    with pytest.raises(OSError) as os_err:
        os.rename(real / "d", real / "d" / "file.txt" / "x")
    with pytest.raises(OSError) as ours:
        vfs.rename("/d", "/d/file.txt/x")
    assert ours.value.errno == os_err.value.errno == errno.ENOTDIR
    with pytest.raises(OSError) as ours:
        vfs.rename("/d", "/d/sub/x")  # below itself, nothing in the way: EINVAL as Linux
    assert ours.value.errno == errno.EINVAL
