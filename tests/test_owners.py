"""File owners (format 0009): ``VFS.chown``, ``stat().st_uid``/``st_gid``, and every path
that copies an entry keeping them: copy-up over an underlay, renames across layers,
checkpoints, whole-file saves, images, copies between databases and backends. Stored values
are untrusted: a forged owner is a ``CorruptionError``, never a crash."""

import os
import sqlite3
import subprocess
import sys

import pytest

from vfs_orm import VFS, CorruptionError, InvalidOperationError, ReadOnlyError

ME = (os.getuid(), os.getgid())


def _owner(fs, path):
    st = fs.stat(path)
    return st.st_uid, st.st_gid


def _stored(fs, path):
    st = fs.stat(path)
    return st.owner_uid, st.owner_gid


def test_chown_sets_what_stat_reports_and_minus_one_keeps(tmp_path):
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/d/f.txt", b"x")
        assert _owner(fs, "/d/f.txt") == ME and _stored(fs, "/d/f.txt") == (None, None)
        fs.chown("/d/f.txt", 65534, 65533)
        assert _owner(fs, "/d/f.txt") == (65534, 65533)
        fs.chown("/d/f.txt", -1, 7)
        assert _owner(fs, "/d/f.txt") == (65534, 7)
        fs.chown("/d/f.txt", 8, -1)
        assert _owner(fs, "/d/f.txt") == (8, 7)
        fs.chown("/d", 0, 4294967294)  # the largest id (2**32 - 2)
        assert _owner(fs, "/d") == (0, 4294967294)
        # Listings carry them (the listing's one statement reads the two columns).
        assert [(e.name, e.stat().st_uid) for e in fs.scandir("/d")] == [("f.txt", 8)]
        assert [e.stat().st_gid for e in fs.scandir("/")] == [4294967294]
        # The mode is left alone, unless asked (the mount's unprivileged chown).
        fs.chmod("/d/f.txt", 0o6755)
        fs.chown("/d/f.txt", 9, 9)
        assert fs.stat("/d/f.txt").st_mode & 0o7777 == 0o6755
        fs.chown("/d/f.txt", 9, 9, clear_setid=True)
        assert fs.stat("/d/f.txt").st_mode & 0o7777 == 0o755
        fs.chmod("/d/f.txt", 0o6644)  # set-group-ID without group execute stays
        fs.chown("/d/f.txt", 9, 9, clear_setid=True)
        assert fs.stat("/d/f.txt").st_mode & 0o7777 == 0o2644
        fs.chmod("/d", 0o2755)  # a directory keeps its set-ID bits (as on Linux)
        fs.chown("/d", 9, 9, clear_setid=True)
        assert fs.stat("/d").st_mode & 0o7777 == 0o2755
    with VFS(str(tmp_path / "a.vfs"), read_only=True) as again:  # stored, not cached
        assert _owner(again, "/d/f.txt") == (9, 9)
        assert again.check().ok


def test_chown_refuses_bad_ids_and_a_read_only_vfs(tmp_path):
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/f", b"x")
        for bad in (-2, 2**32 - 1, 2**40):
            with pytest.raises(InvalidOperationError):
                fs.chown("/f", bad, -1)
            with pytest.raises(InvalidOperationError):
                fs.chown("/f", -1, bad)
        for bad in ("0", 1.0, None, True):
            with pytest.raises(TypeError):
                fs.chown("/f", bad, 0)
        with pytest.raises(FileNotFoundError):
            fs.chown("/missing", 1, 1)
        assert _stored(fs, "/f") == (None, None)
    with VFS(str(tmp_path / "a.vfs"), read_only=True) as ro:
        with pytest.raises(ReadOnlyError):
            ro.chown("/f", 1, 1)
    with VFS(str(tmp_path / "a.vfs")) as fs:
        assert _stored(fs, "/f") == (None, None)


def test_saves_keep_the_owner_of_the_path(tmp_path):
    """A whole-file save (inline, chunked, through a staged ``w`` handle, over shared content)
    replaces the bytes, not who owns the file."""
    with VFS(str(tmp_path / "a.vfs"), chunk_size=4096) as fs:
        fs.write_bytes("/small", b"x")
        fs.write_bytes("/big", b"y" * 50_000)
        for p in ("/small", "/big"):
            fs.chown(p, 1000, 1001)
        fs.write_bytes("/small", b"new")
        fs.write_bytes("/big", b"z" * 90_000)
        with fs.open("/small", "wb") as f:  # staged, then placed
            f.write(b"q" * 100_000)
        fs.copy("/big", "/copy")  # a copy is new: not set, as cp gives the copier's
        assert _stored(fs, "/copy") == (None, None)
        fs.write_bytes("/big", b"w" * 70_000)  # /big's chunks are shared with /copy
        assert _owner(fs, "/small") == (1000, 1001)
        assert _owner(fs, "/big") == (1000, 1001)
        fs.rename("/big", "/moved")
        assert _owner(fs, "/moved") == (1000, 1001)
        assert fs.check().ok


def test_copy_up_over_an_underlay_keeps_owners_and_leaves_the_base(tmp_path):
    base = str(tmp_path / "base.vfs")
    with VFS(base) as b:
        b.write_bytes("/game/data.bin", b"d" * 10_000)
        b.write_bytes("/game/cfg.ini", b"c")
        b.chown("/game", 10, 20)
        b.chown("/game/data.bin", 11, 21)
        b.chown("/game/cfg.ini", 12, 22)
    with VFS(str(tmp_path / "top.vfs")) as top:
        top.add_underlay(base, name="base")
        assert _owner(top, "/game/data.bin") == (11, 21)
        assert [e.stat().st_uid for e in top.scandir("/game")] == [12, 11]
        top.chmod("/game/data.bin", 0o600)  # copied up, with its owner
        assert top.which_layer("/game/data.bin") == "local"
        assert _owner(top, "/game/data.bin") == (11, 21)
        assert top.which_layer("/game") == "local" and _owner(top, "/game") == (10, 20)
        top.chown("/game/cfg.ini", 30, -1)  # chown copies up too
        assert top.which_layer("/game/cfg.ini") == "local"
        assert _owner(top, "/game/cfg.ini") == (30, 22)
        top.rename("/game", "/renamed")  # materialised from the layers into the top
        assert _owner(top, "/renamed") == (10, 20)
        assert _owner(top, "/renamed/cfg.ini") == (30, 22)
        assert _owner(top, "/renamed/data.bin") == (11, 21)
    with VFS(base, read_only=True) as b:
        assert _owner(b, "/game/cfg.ini") == (12, 22)


def test_checkpoint_restore_keeps_owners(tmp_path):
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/save/slot1", b"s" * 30_000)
        fs.write_bytes("/save/slot2", b"t")
        fs.chown("/save", 5, 6)
        fs.chown("/save/slot1", 7, 8)
        fs.checkpoint("before")
        fs.chown("/save/slot1", 1, 1)
        fs.chown("/save/slot2", 2, 2)
        fs.restore("before")
        assert _owner(fs, "/save") == (5, 6)
        assert _owner(fs, "/save/slot1") == (7, 8)
        assert _stored(fs, "/save/slot2") == (None, None)
        assert fs.check().ok


def test_images_and_copies_between_sqlite_files_carry_owners(tmp_path):
    src = str(tmp_path / "src.vfs")
    with VFS(src) as fs:
        fs.write_bytes("/a/one", b"1")
        fs.write_bytes("/a/two", b"2" * 20_000)
        fs.chown("/a", 3, 4)
        fs.chown("/a/one", 65534, 65533)
        fs.checkpoint("first")
        fs.chown("/a/one", 5, 5)
        image = b"".join(fs.serialize_iter())
    with VFS() as mem:
        mem.deserialize_iter(image)
        assert _owner(mem, "/a") == (3, 4) and _owner(mem, "/a/one") == (5, 5)
        assert _stored(mem, "/a/two") == (None, None)
    dst = tmp_path / "dst.vfs"
    done = subprocess.run([sys.executable, "-m", "vfs_orm", "copy", src, str(dst)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with VFS(str(dst)) as fs:
        assert _owner(fs, "/a") == (3, 4) and _owner(fs, "/a/one") == (5, 5)
        assert _stored(fs, "/a/two") == (None, None)
        fs.restore("first")  # the copied checkpoint holds the owners it was taken with
        assert _owner(fs, "/a/one") == (65534, 65533)


def test_postgresql_stores_owners(pg_url, pg_tree, tmp_path):
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/p/f", b"x" * 5000)
        fs.chown("/p/f", 4294967294, 0)
        fs.chown("/p", -1, 77)
        fs.checkpoint("c")
        fs.chown("/p/f", 1, 1)
        assert _owner(fs, "/p/f") == (1, 1)
        assert [e.stat().st_uid for e in fs.scandir("/p")] == [1]
        fs.restore("c")
        assert _owner(fs, "/p/f") == (4294967294, 0)
        assert _owner(fs, "/p") == (os.getuid(), 77)
        pack = str(tmp_path / "pack.vfs")
        with VFS(pack) as local:
            local.deserialize_iter(fs.serialize_iter())  # PostgreSQL's image: a SQLite pack
            assert _owner(local, "/p/f") == (4294967294, 0)
    with VFS(str(tmp_path / "top.vfs")) as top:  # a PostgreSQL tree as an underlay
        top.add_underlay(pg_url, name="pg", tree=pg_tree)
        assert _owner(top, "/p/f") == (4294967294, 0)
        top.chmod("/p/f", 0o600)
        assert top.which_layer("/p/f") == "local" and _owner(top, "/p/f") == (4294967294, 0)


@pytest.mark.parametrize("forged", ["'root'", "-1", str(2**32 - 1), str(2**40), "1.5",
                                    "x'00'"])
def test_a_forged_owner_is_a_corruption_error(tmp_path, forged):
    path = str(tmp_path / "a.vfs")
    with VFS(path) as fs:
        fs.write_bytes("/d/f", b"x")
        fs.checkpoint("c")
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute(f"UPDATE vfs_inodes SET gid = {forged} WHERE name = 'f'")
            con.execute(f"UPDATE vfs_checkpoint_inodes SET uid = {forged} WHERE name = 'f'")
    finally:
        con.close()
    with VFS(path) as fs:
        for read in (lambda: fs.stat("/d/f"), lambda: fs.scandir("/d"),
                     lambda: list(fs.walk("/")), lambda: fs.open("/d/f", "rb")):
            with pytest.raises(CorruptionError, match="owner"):
                read()
        assert fs.read_bytes("/d/f") == b"x"  # a whole-file read does not read owners
        with pytest.raises(CorruptionError):
            fs.restore("c")
        report = fs.check()
        assert not report.ok and any("owner" in p for p in report.problems)
        assert fs.listdir("/d") == ["f"]  # names alone are still listed


def test_cli_stat_and_fsspec_info_report_owners(tmp_path):
    import json

    import fsspec

    path = str(tmp_path / "a.vfs")
    with VFS(path) as fs:
        fs.write_bytes("/f", b"x")
        fs.chown("/f", 65534, 65533)
        fs.write_bytes("/g", b"y")
    done = subprocess.run([sys.executable, "-m", "vfs_orm", "stat", path, "/f", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["uid"], json.loads(done.stdout)["gid"]) == (65534, 65533)
    ffs = fsspec.filesystem("vfsorm", db=path, skip_instance_cache=True)
    assert (ffs.info("/f")["uid"], ffs.info("/f")["gid"]) == (65534, 65533)
    assert (ffs.info("/g")["uid"], ffs.info("/g")["gid"]) == ME


def test_a_patch_carries_the_owners_of_the_files_it_writes(tmp_path):
    """A file a patch writes (added or changed) keeps NEW's owner, as it keeps its mode; a
    file the patch does not write keeps OLD's (owners and modes are not part of the content
    manifest a patch is made from)."""
    from vfs_orm.patching import apply_patch, make_patch

    old, new, patch = (str(tmp_path / n) for n in ("old.vfs", "new.vfs", "p.vfs"))
    with VFS(old) as fs:
        fs.write_bytes("/same.txt", b"same")
        fs.write_bytes("/changed.bin", b"a" * 40_000)
        fs.chown("/same.txt", 3, 3)
    with VFS(new) as fs:
        fs.write_bytes("/same.txt", b"same")
        fs.write_bytes("/changed.bin", b"b" * 40_000)
        fs.write_bytes("/added.txt", b"new")
        fs.chown("/changed.bin", 1000, 1000)
        fs.chown("/added.txt", 65534, -1)
    make_patch(old, new, patch)
    with VFS(patch, read_only=True) as p:
        assert _stored(p, "/changed.bin") == (1000, 1000)
        assert _stored(p, "/added.txt") == (65534, None)
    apply_patch(old, patch)
    with VFS(old) as fs:
        assert fs.read_bytes("/changed.bin") == b"b" * 40_000
        assert _stored(fs, "/changed.bin") == (1000, 1000)
        assert _stored(fs, "/added.txt") == (65534, None)
        assert _stored(fs, "/same.txt") == (3, 3)
