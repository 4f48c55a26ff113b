"""Every public entry point, given wrong types, empty or hostile paths, or a closed VFS,
answers with a clear VFSError / ValueError / TypeError, and leaves stored data as it was."""

import sqlite3

import pytest
from conftest import tree_of
from sqlalchemy import exc as sa_exc

from vfs_orm import VFS, VFSError

BAD_PATHS = [None, 42, b"/bytes", ["/"], "", "/a\x00b", "/tab\tname", "/new\nline"]

ONE_PATH = ["exists", "isfile", "isdir", "stat", "getsize", "read_bytes", "read_text",
            "listdir", "open", "mkdir", "makedirs", "remove", "unlink", "rmdir", "rmtree",
            "which_layer", "which_layer_detailed", "glob"]
TWO_PATHS = ["rename", "replace", "copy", "copytree"]


@pytest.fixture
def fs(db_path):
    fs = VFS(db_path)
    fs.write_text("/keep/a.txt", "keep me")
    fs.makedirs("/keep/dir")
    yield fs
    fs.close()


def _clean(exc):
    assert isinstance(exc, (VFSError, ValueError, TypeError)), type(exc)
    assert not isinstance(exc, (sqlite3.Error, sa_exc.SQLAlchemyError)), type(exc)
    assert str(exc)


@pytest.mark.parametrize("method", ONE_PATH)
@pytest.mark.parametrize("bad", BAD_PATHS, ids=repr)
def test_one_path_methods(fs, method, bad):
    before = tree_of(fs)
    with pytest.raises(Exception) as ei:
        getattr(fs, method)(bad)
    _clean(ei.value)
    assert tree_of(fs) == before


@pytest.mark.parametrize("method", TWO_PATHS)
@pytest.mark.parametrize("bad", BAD_PATHS, ids=repr)
def test_two_path_methods(fs, method, bad):
    before = tree_of(fs)
    for args in ((bad, "/x"), ("/keep/a.txt", bad)):
        with pytest.raises(Exception) as ei:
            getattr(fs, method)(*args)
        _clean(ei.value)
    assert tree_of(fs) == before


@pytest.mark.parametrize("call", [
    lambda fs: fs.write_bytes("/x", None), lambda fs: fs.write_bytes("/x", "str"),
    lambda fs: fs.write_bytes("/x", 12), lambda fs: fs.write_text("/x", None),
    lambda fs: fs.write_text("/x", b"bytes"), lambda fs: fs.write_text("/x", "é", encoding="ascii"),
    lambda fs: fs.open("/keep/a.txt", "rw"), lambda fs: fs.open("/keep/a.txt", None),
    lambda fs: fs.open("/keep/a.txt", "r", buffering="big"),
    lambda fs: fs.open("/keep/a.txt", "rb", encoding="utf-8"),
    lambda fs: fs.chmod("/keep/a.txt", "rw"), lambda fs: fs.add_underlay(None),
    lambda fs: fs.add_underlay(fs), lambda fs: fs.add_underlay(VFS(), priority=1.5),
    lambda fs: fs.remove_underlay(""), lambda fs: fs.remove_underlay(None),
    lambda fs: fs.serialize_iter(block_size=0).__next__(),
    lambda fs: fs.deserialize_iter(None), lambda fs: fs.deserialize_iter(b"junk"),
    lambda fs: VFS.from_bytes(None), lambda fs: VFS.from_bytes([1, 2]),
    lambda fs: fs.walk("/keep", onerror=None).__next__() and fs.walk(None).__next__(),
    lambda fs: fs.glob(None), lambda fs: fs.rmtree("/"), lambda fs: fs.rename("/", "/x"),
])
def test_other_bad_arguments(fs, call):
    before = tree_of(fs)
    with pytest.raises(Exception) as ei:
        call(fs)
    if isinstance(ei.value, UnicodeEncodeError):
        assert isinstance(ei.value, ValueError)
    else:
        _clean(ei.value)
    assert tree_of(fs) == before


def test_everything_on_a_closed_vfs(db_path):
    fs = VFS(db_path)
    fs.write_text("/a", "x")
    f = fs.open("/a")
    fs.close()
    calls = [lambda: fs.exists("/a"), lambda: fs.read_bytes("/a"), lambda: fs.write_text("/b", "y"),
             lambda: fs.listdir("/"), lambda: fs.mkdir("/d"), lambda: fs.remove("/a"),
             lambda: fs.rename("/a", "/c"), lambda: list(fs.walk("/")), lambda: fs.glob("/*"),
             lambda: fs.stat("/a"), lambda: fs.to_bytes(), lambda: fs.atomic_batch().__enter__(),
             lambda: fs.add_underlay(VFS()), lambda: fs.check(), lambda: fs.info(),
             lambda: f.read(), lambda: fs.open("/a")]
    for call in calls:
        with pytest.raises(Exception) as ei:
            call()
        _clean(ei.value)
    with VFS(db_path, read_only=True) as again:
        assert again.read_text("/a") == "x" and again.listdir("/") == ["a"]


def test_corrupted_database_reports_vfs_errors(tmp_path):
    p = tmp_path / "c.vfs"
    with VFS(str(p)) as fs:
        for i in range(200):
            fs.write_bytes(f"/d/f{i}", bytes([i % 256]) * 5000)
    data = bytearray(p.read_bytes())
    # Scribble over the cell area (the page's end) of every third B-tree page after the
    # first: damage SQLite's structure checks can see. (Bytes inside a blob's overflow pages
    # carry no checksum: no reader could notice those.)
    btree = [off for off in range(4096, len(data), 4096) if data[off] in (2, 5, 10, 13)]
    assert len(btree) >= 6
    for off in btree[::3]:
        data[off + 4096 - 300: off + 4096] = b"\xff" * 300
    p.write_bytes(bytes(data))
    errors = 0
    try:
        fs = VFS(str(p))
    except Exception as exc:
        _clean(exc)
        return
    with fs:
        for call in (lambda: fs.listdir("/d"), lambda: [fs.read_bytes(f"/d/f{i}") for i in range(200)],
                     lambda: fs.check(), lambda: fs.write_bytes("/new", b"x")):
            try:
                call()
            except Exception as exc:
                _clean(exc)
                errors += 1
    report_ok = True
    with VFS(str(p), read_only=True) as fs2:
        try:
            report_ok = fs2.check().ok
        except Exception as exc:
            _clean(exc)
            report_ok = False
    assert errors or not report_ok  # the damage was noticed, as VFS errors only
