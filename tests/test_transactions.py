"""atomic_batch is really atomic and nests as savepoints."""

import pytest

from vfs_orm import VFS


def test_batch_commits_together(any_vfs):
    with any_vfs.atomic_batch():
        any_vfs.write_text("/save/a", "1")
        any_vfs.write_text("/save/b", "2")
    assert any_vfs.listdir("/save") == ["a", "b"]


def test_batch_rolls_back_everything(any_vfs):
    fs = any_vfs
    fs.write_text("/save/a", "old")
    with pytest.raises(RuntimeError):
        with fs.atomic_batch():
            fs.write_text("/save/a", "new")
            fs.write_text("/save/b", "new")
            fs.mkdir("/dir")
            fs.rename("/save", "/renamed")
            raise RuntimeError
    assert fs.read_text("/save/a") == "old"
    assert not fs.exists("/save/b") and not fs.exists("/dir") and not fs.exists("/renamed")


def test_nested_batches_are_savepoints(any_vfs):
    fs = any_vfs
    with fs.atomic_batch():
        fs.write_text("/outer", "1")
        with pytest.raises(ValueError):
            with fs.atomic_batch():
                fs.write_text("/inner", "x")
                raise ValueError
        with fs.atomic_batch():
            fs.write_text("/inner2", "y")
    assert fs.exists("/outer") and not fs.exists("/inner") and fs.exists("/inner2")


def test_failed_operation_inside_batch_leaves_no_trace(any_vfs):
    fs = any_vfs
    with fs.atomic_batch():
        fs.write_text("/a", "1")
        with pytest.raises(FileExistsError):
            fs.rename("/a", "/a")
        with pytest.raises(NotADirectoryError):
            fs.write_text("/a/b", "x")
        fs.write_text("/b", "2")
    assert fs.listdir("/") == ["a", "b"]


def test_batch_invisible_to_other_connections_until_commit(db_path):
    a, b = VFS(db_path), VFS(db_path)
    try:
        with a.atomic_batch():
            a.write_text("/x", "1")
            assert not b.exists("/x")
            assert a.exists("/x")
        assert b.exists("/x")
    finally:
        a.close()
        b.close()


def test_staged_file_inside_batch_rolls_back(any_vfs):
    fs = any_vfs
    with pytest.raises(RuntimeError):
        with fs.atomic_batch():
            with fs.open("/big", "wb") as f:
                f.write(b"x" * 5_000_000)
            assert fs.getsize("/big") == 5_000_000
            raise RuntimeError
    assert not fs.exists("/big")


def test_flush_and_sync(vfs, db_path):
    vfs.write_text("/f", "x")
    vfs.flush()
    vfs.sync()
    with VFS(db_path, read_only=True) as ro:
        assert ro.read_text("/f") == "x"
    with vfs.atomic_batch():
        vfs.write_text("/g", "y")
        vfs.sync()  # inside a batch: nothing to make durable yet, must not commit
    assert vfs.read_text("/g") == "y"
