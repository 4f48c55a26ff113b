"""``VFS.write_files``: many whole files in one transaction, the bulk-ingest path."""

import os
import sqlite3

import pytest
from conftest import tree_of

from vfs_orm import VFS, ContractError, IsADirError, NotADirError, ReadOnlyError
from vfs_orm.backends import INLINE_MAX


def test_new_files_in_new_directories(db_path):
    files = {f"/assets/d{k % 7}/sub/f{k}.bin": os.urandom(k * 37 % 5000) for k in range(300)}
    with VFS(db_path) as fs:
        assert fs.write_files(files) == 300
        assert {p: d for p, d in tree_of(fs).items() if d is not None} == files
        assert fs.isdir("/assets/d3/sub")
        assert fs.check().ok


def test_bulk_path_is_one_executemany(db_path):
    """Directories looked up (and made) once each, then one INSERT for all the files:
    the trace shows the INSERT once per row, and no lookup per file."""
    files = [(f"/d/f{k}", b"x" * k) for k in range(100)]
    with VFS(db_path) as fs:
        fs.mkdir("/d")
        with fs.tracer() as log:
            fs.write_files(files)
        inserts = [s for s in log if s.startswith("INSERT OR IGNORE INTO vfs_inodes")]
        selects = [s for s in log if s.startswith("SELECT")]
        # 100 files, plus one attempt at /d (it exists: ignored, then one lookup checks it)
        assert len(inserts) == 101 and len(selects) <= 2, log[:5]
    con = sqlite3.connect(db_path)
    try:  # inline, no chunk rows
        assert con.execute("SELECT count(*) FROM vfs_inodes WHERE data IS NOT NULL").fetchone()[0] == 100
        assert con.execute("SELECT count(*) FROM vfs_chunks").fetchone()[0] == 0
    finally:
        con.close()


def test_a_new_tree_is_made_without_a_single_lookup(db_path):
    """Directories of a new tree go in by one executemany (parents first), the files by
    another: the trace holds inserts only."""
    files = [(f"/g{a}/s{b}/t{c}/f{k}.bin", bytes([k])) for a in range(3) for b in range(4)
             for c in range(2) for k in range(5)]
    dirs = {f"/g{a}" for a in range(3)} | {f"/g{a}/s{b}" for a in range(3) for b in range(4)}
    dirs |= {d + f"/t{c}" for d in list(dirs) if d.count("/") == 2 for c in range(2)}
    with VFS(db_path) as fs:
        with fs.tracer() as log:
            fs.write_files(files)
        assert not [s for s in log if s.startswith("SELECT")], log[:5]
        inserts = [s for s in log if s.startswith("INSERT OR IGNORE INTO vfs_inodes")]
        assert len(inserts) == len(dirs) + len(files)
        for d in dirs:
            assert fs.isdir(d), d
        for p, data in files:
            assert fs.read_bytes(p) == data
        assert sorted(fs.listdir("/")) == ["g0", "g1", "g2"]
        assert fs.check().ok


def test_an_ancestor_that_is_a_file_fails_like_writing_one_by_one(db_path):
    with VFS(db_path) as fs:
        fs.write_bytes("/a/file", b"f")
        with pytest.raises(NotADirectoryError):
            fs.write_files([("/new/x", b"1"), ("/a/file/sub/y", b"2")])
        assert not fs.exists("/new")  # all or nothing: the new directory went too
        assert fs.read_bytes("/a/file") == b"f"


def test_existing_paths_and_big_files_take_the_general_path(db_path):
    big = os.urandom(INLINE_MAX * 5)
    with VFS(db_path) as fs:
        fs.write_bytes("/a/exists.txt", b"old")
        st = fs.stat("/a/exists.txt")
        n = fs.write_files([("/a/new.txt", b"new"), ("/a/exists.txt", b"replaced"),
                            ("/a/big.bin", big), ("/b/c/d.txt", b"deep")])
        assert n == 4
        assert fs.read_bytes("/a/exists.txt") == b"replaced"
        assert fs.stat("/a/exists.txt").st_ctime_ns == st.st_ctime_ns  # replaced, not recreated
        assert fs.read_bytes("/a/big.bin") == big
        assert fs.read_bytes("/a/new.txt") == b"new" and fs.read_text("/b/c/d.txt") == "deep"
        assert fs.check().ok


def test_duplicate_paths_behave_like_writes_in_order(db_path):
    with VFS(db_path) as fs:
        fs.write_files([("/x", b"first"), ("/y", b"y"), ("/x", b"second")])
        assert fs.read_bytes("/x") == b"second" and fs.read_bytes("/y") == b"y"


@pytest.mark.parametrize("bad, error", [
    ([("/f/under-a-file", b"x")], NotADirError),
    ([("/dir", b"x")], IsADirError),
    ([("/", b"x")], IsADirError),
    # the first failing path decides the error, as with write_bytes one by one (found by
    # the state machine: the bulk path used to check every directory first)
    ([("/dir", b"x"), ("/f/a", b"y")], IsADirError),
    ([("/f/a", b"y"), ("/dir", b"x")], NotADirError),
])
def test_one_bad_path_writes_nothing(db_path, bad, error):
    with VFS(db_path) as fs:
        fs.write_bytes("/f", b"file")
        fs.mkdir("/dir")
        before = tree_of(fs)
        with pytest.raises(error):
            fs.write_files([("/ok/1", b"1"), ("/ok2", b"2")] + bad + [("/ok/3", b"3")])
        assert tree_of(fs) == before


def test_inside_a_batch_a_failure_is_undone_with_it(db_path):
    with VFS(db_path) as fs:
        fs.mkdir("/dir")
        with pytest.raises(IsADirError):
            with fs.atomic_batch():
                fs.write_bytes("/kept-until-the-batch-fails", b"1")
                fs.write_files([("/a", b"a"), ("/dir", b"x")])
        assert fs.listdir("/") == ["dir"]
        with fs.atomic_batch():
            fs.write_files({"/m/1": b"1", "/m/2": b"2"})
            try:
                fs.write_files([("/m/3", b"3"), ("/dir", b"x")])
            except IsADirError:
                pass  # the failed call left nothing behind; the batch goes on
        assert fs.listdir("/m") == ["1", "2"]


def test_bad_arguments(db_path, tmp_path):
    with VFS(db_path) as fs:
        with pytest.raises(ContractError):
            fs.write_files([("/a", None)])
        with pytest.raises(TypeError):
            fs.write_files([("/a", "text")])
        with pytest.raises(TypeError):
            fs.write_files(["/a"])
        with pytest.raises(TypeError):
            fs.write_files(42)
        with pytest.raises(ValueError):
            fs.write_files([("/bad\x00name", b"x")])
        assert fs.write_files([]) == 0
        assert fs.listdir("/") == []
    with VFS(db_path, read_only=True) as ro:
        with pytest.raises(ReadOnlyError):
            ro.write_files([("/a", b"x")])


def test_through_layers_whiteouts_are_respected(tmp_path):
    base = str(tmp_path / "base.vfs")
    with VFS(base) as b:
        b.write_bytes("/game/a.txt", b"base a")
        b.write_bytes("/game/b.txt", b"base b")
    with VFS(str(tmp_path / "top.vfs")) as top:
        top.add_underlay(base, name="base")
        top.remove("/game/b.txt")  # a whiteout in the top layer
        top.write_files([("/game/a.txt", b"top a"), ("/game/b.txt", b"top b"),
                         ("/game/c.txt", b"top c")])
        assert [top.read_bytes(f"/game/{n}.txt") for n in "abc"] == [b"top a", b"top b", b"top c"]
        assert top.which_layer("/game/a.txt") == "local"
    with VFS(base, read_only=True) as b:
        assert b.read_bytes("/game/a.txt") == b"base a"


def test_the_root_in_a_bulk_write_fails_and_writes_nothing(db_path):
    with VFS(db_path) as fs:
        with pytest.raises(IsADirError):
            fs.write_files([("/a/x", b"1"), ("/", b"root")])
        assert fs.listdir("/") == []
        assert fs.check().ok


def test_write_bytes_in_a_batch_trusts_a_directory_only_while_nothing_else_ran(vfs):
    """Inside a batch, a directory a file just went into is not probed again for the next
    file; a rolled-back savepoint, a rename or a remove in between must end that trust."""
    with vfs.atomic_batch():
        vfs.write_bytes("/d/a", b"1")
        vfs.write_bytes("/d/b", b"2")  # /d known from here on
        with pytest.raises(RuntimeError):
            with vfs.atomic_batch():
                vfs.write_bytes("/n/a", b"3")  # makes /n
                vfs.write_bytes("/n/b", b"4")  # /n known...
                raise RuntimeError  # ...and rolled back
        vfs.write_bytes("/n/c", b"5")  # /n must be made again
        vfs.write_bytes("/d/c", b"6")
        vfs.rename("/d", "/e")
        vfs.write_bytes("/d/x", b"7")  # /d is gone: made again, not trusted
        vfs.write_bytes("/d/y", b"8")
        vfs.rmtree("/n")
        vfs.write_bytes("/n/z", b"9")
    assert vfs.listdir("/") == ["d", "e", "n"]
    assert vfs.listdir("/e") == ["a", "b", "c"] and vfs.listdir("/d") == ["x", "y"]
    assert vfs.listdir("/n") == ["z"]
    assert vfs.check().ok
