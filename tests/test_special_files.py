"""Symbolic links, FIFOs, sockets and device nodes (format 0010): entries of their own type.

They are stored as entries whose ``st_mode`` type says what they are, with a small content
(a link's target, a device's number), so every layer, copy, checkpoint, image and patch
carries them as it carries files. The Python API does not follow links and cannot open a
FIFO or a device: opening one is ``SpecialFileError`` (ELOOP for a link, as ``O_NOFOLLOW``;
ENXIO for the others, as opening a socket is on Linux). A mount shows them to the kernel,
which follows links and serves FIFOs and devices itself.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat

import pytest

from vfs_orm import (
    VFS,
    AlreadyExistsError,
    CorruptionError,
    InvalidOperationError,
    InvalidPathError,
    NotFoundError,
    SpecialFileError,
)
from vfs_orm.backends.sqlite import schema as dbmod
from vfs_orm.copying import copy_tree


def _kinds(fs: VFS, path: str) -> dict[str, int]:
    return {e.name: stat.S_IFMT(e.stat().st_mode) for e in fs.scandir(path)}


def test_symlink_is_an_entry_with_a_target(tmp_path):
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/data/real.txt", b"payload")
        fs.symlink("real.txt", "/data/link")
        fs.symlink("/elsewhere/not/there", "/data/dangling")
        assert fs.readlink("/data/link") == "real.txt"
        assert fs.readlink("/data/dangling") == "/elsewhere/not/there"
        st = fs.stat("/data/link")
        assert stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o777
        assert st.st_size == len("real.txt") and not st.is_file() and not st.is_dir()
        assert sorted(fs.listdir("/data")) == ["dangling", "link", "real.txt"]
        assert _kinds(fs, "/data") == {"real.txt": stat.S_IFREG, "link": stat.S_IFLNK,
                                       "dangling": stat.S_IFLNK}
        entry = next(e for e in fs.scandir("/data") if e.name == "link")
        assert entry.is_symlink() and not entry.is_file() and not entry.is_dir()
        assert fs.exists("/data/link") and not fs.isfile("/data/link")
        # a non-ASCII target round-trips as text, bytes as the OS would keep them
        fs.symlink("ü/é 😀", "/u")
        assert fs.readlink("/u") == "ü/é 😀"
        assert fs.check(deep=True).ok


def test_the_api_does_not_follow_a_link_or_open_a_special_file(tmp_path):
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/real", b"x" * 10)
        fs.symlink("/real", "/link")
        fs.mknod("/fifo", stat.S_IFIFO | 0o644)
        for path, code in (("/link", errno.ELOOP), ("/fifo", errno.ENXIO)):
            for mode in ("rb", "r+b", "ab", "r"):
                with pytest.raises(SpecialFileError) as info:
                    fs.open(path, mode)
                assert info.value.errno == code
            with pytest.raises(SpecialFileError):
                fs.read_bytes(path)
            with pytest.raises(SpecialFileError):
                fs.read_text(path)
        # nothing changed
        assert fs.readlink("/link") == "/real" and fs.read_bytes("/real") == b"x" * 10
        assert stat.S_ISFIFO(fs.stat("/fifo").st_mode)
        with pytest.raises(InvalidOperationError):
            fs.readlink("/real")
        with pytest.raises(InvalidOperationError):
            fs.readlink("/fifo")
        with pytest.raises(NotFoundError):
            fs.readlink("/missing")


def test_a_whole_write_replaces_a_link_with_a_file(tmp_path):
    """As ``os.replace`` of a freshly written file does (saves are written that way)."""
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/real", b"old")
        fs.symlink("/real", "/link")
        fs.write_bytes("/link", b"new content")
        assert stat.S_ISREG(fs.stat("/link").st_mode)
        assert fs.read_bytes("/link") == b"new content" and fs.read_bytes("/real") == b"old"
        fs.symlink("/real", "/l2")
        with fs.open("/l2", "wb") as f:
            f.write(b"written through w")
        assert stat.S_ISREG(fs.stat("/l2").st_mode) and fs.read_bytes("/l2") == b"written through w"
        fs.symlink("/real", "/l3")
        fs.write_files({"/l3": b"many"})
        assert stat.S_ISREG(fs.stat("/l3").st_mode) and fs.read_bytes("/l3") == b"many"
        assert fs.check(deep=True).ok


def test_symlink_and_mknod_refuse_what_posix_refuses(tmp_path):
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/f", b"")
        with pytest.raises(AlreadyExistsError):
            fs.symlink("x", "/f")
        with pytest.raises(AlreadyExistsError):
            fs.mknod("/f", stat.S_IFIFO | 0o600)
        with pytest.raises(NotFoundError):
            fs.symlink("", "/empty")  # symlink(2): ENOENT for an empty target
        with pytest.raises(InvalidPathError):
            fs.symlink("a\x00b", "/nul")
        with pytest.raises(InvalidPathError):
            fs.symlink("x" * 4096, "/long")  # PATH_MAX, with its NUL
        with pytest.raises(InvalidOperationError):
            fs.mknod("/d", stat.S_IFDIR | 0o755)  # mkdir, not mknod
        with pytest.raises(InvalidOperationError):
            fs.mknod("/l", stat.S_IFLNK | 0o777)  # symlink, not mknod
        fs.mknod("/plain", stat.S_IFREG | 0o600)  # as os.mknod: an empty regular file
        assert fs.read_bytes("/plain") == b"" and stat.S_IMODE(fs.stat("/plain").st_mode) == 0o600
        assert not fs.exists("/empty") and not fs.exists("/d") and not fs.exists("/l")


def test_fifos_sockets_and_devices(tmp_path):
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.mknod("/dev/fifo", stat.S_IFIFO | 0o640)
        fs.mknod("/dev/sock", stat.S_IFSOCK | 0o600)
        fs.mknod("/dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        fs.mknod("/dev/sda", stat.S_IFBLK | 0o660, os.makedev(8, 0))
        assert _kinds(fs, "/dev") == {"fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK,
                                      "null": stat.S_IFCHR, "sda": stat.S_IFBLK}
        assert stat.S_IMODE(fs.stat("/dev/fifo").st_mode) == 0o640
        assert fs.device_number("/dev/null") == os.makedev(1, 3)
        assert fs.device_number("/dev/sda") == os.makedev(8, 0)
        assert fs.device_number("/dev/fifo") == 0
        with pytest.raises(InvalidOperationError):
            fs.device_number("/dev")
        fs.chmod("/dev/null", 0o600)  # the type stays
        assert fs.stat("/dev/null").st_mode == stat.S_IFCHR | 0o600
        fs.rename("/dev/null", "/dev/zero")
        assert fs.device_number("/dev/zero") == os.makedev(1, 3)
        fs.remove("/dev/sock")
        assert sorted(fs.listdir("/dev")) == ["fifo", "sda", "zero"]
        assert fs.check(deep=True).ok


def test_layers_checkpoints_images_and_copies_carry_them(tmp_path):
    base = str(tmp_path / "base.vfs")
    with VFS(base) as b:
        b.write_bytes("/game/data.bin", b"d" * 100)
        b.symlink("data.bin", "/game/current")
        b.mknod("/game/pipe", stat.S_IFIFO | 0o600)
    with VFS(str(tmp_path / "top.vfs")) as fs:
        fs.add_underlay(base)
        assert fs.readlink("/game/current") == "data.bin"
        assert stat.S_ISFIFO(fs.stat("/game/pipe").st_mode)
        fs.remove("/game/current")  # a whiteout over the underlay's link
        assert not fs.exists("/game/current")
        fs.symlink("other.bin", "/game/current")
        assert fs.readlink("/game/current") == "other.bin"
        fs.chmod("/game/pipe", 0o644)  # copied up, still a FIFO
        assert fs.stat("/game/pipe").st_mode == stat.S_IFIFO | 0o644
        fs.checkpoint("before")
        fs.remove("/game/current")
        fs.symlink("third", "/game/current")
        fs.restore("before")
        assert fs.readlink("/game/current") == "other.bin"
        assert fs.check(deep=True).ok
    with VFS(base) as b:  # the base never changed
        assert b.readlink("/game/current") == "data.bin"
        assert b.stat("/game/pipe").st_mode == stat.S_IFIFO | 0o600
        image = b.to_bytes()
        copy_path = str(tmp_path / "copy.vfs")
        with VFS(copy_path) as c:
            copy_tree(b, c)
            assert c.readlink("/game/current") == "data.bin"
    with VFS.from_bytes(image) as img:
        assert img.readlink("/game/current") == "data.bin"
        assert stat.S_ISFIFO(img.stat("/game/pipe").st_mode)
    with VFS(base) as b:
        b.copy("/game/current", "/game/current2")
        assert b.readlink("/game/current2") == "data.bin"


def test_damaged_special_entries_are_corruption_errors(tmp_path):
    path = str(tmp_path / "a.vfs")
    with VFS(path) as fs:
        fs.symlink("target", "/link")
        fs.mknod("/dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_inodes SET data = ?, size = 3, sums = NULL WHERE name = 'dev'",
                (b"abc",))
    con.execute("UPDATE vfs_inodes SET mode = ? WHERE name = 'link'", (0o160777,))
    con.commit()
    con.close()
    with VFS(path) as fs:
        with pytest.raises(CorruptionError):
            fs.device_number("/dev")
        with pytest.raises(CorruptionError):
            fs.stat("/link")
        problems = " ".join(str(p) for p in fs.check(deep=True).problems)
        assert "link" in problems and "dev" in problems
        assert "a device number of 3 bytes" in " ".join(str(p) for p in fs.check().problems)


def test_the_downgrade_is_refused_while_special_entries_exist(tmp_path):
    from alembic import command
    path = str(tmp_path / "down.vfs")
    with VFS(path) as fs:
        fs.symlink("x", "/link")
    with pytest.raises(Exception, match="symbolic links"):
        dbmod.run_alembic_on_file(path, lambda conn: command.downgrade(
            dbmod.alembic_config(conn), "0009"), destination="0009")
    with VFS(path) as fs:
        assert fs.readlink("/link") == "x"
        fs.remove("/link")
    dbmod.run_alembic_on_file(path, lambda conn: command.downgrade(
        dbmod.alembic_config(conn), "0009"), destination="0009")
    with VFS(path) as fs:  # up again
        assert fs.check().ok


def test_postgresql_stores_them(pg_url, pg_tree):
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/a/real", b"r")
        fs.symlink("real", "/a/link")
        fs.mknod("/a/fifo", stat.S_IFIFO | 0o600)
        fs.mknod("/a/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        assert fs.readlink("/a/link") == "real"
        assert _kinds(fs, "/a") == {"real": stat.S_IFREG, "link": stat.S_IFLNK,
                                    "fifo": stat.S_IFIFO, "null": stat.S_IFCHR}
        assert fs.device_number("/a/null") == os.makedev(1, 3)
        with pytest.raises(SpecialFileError):
            fs.read_bytes("/a/link")
        assert fs.check(deep=True).ok


def test_patches_ship_links_and_nodes(tmp_path):
    from vfs_orm.patching import apply_patch, make_patch
    old, new, patch = (str(tmp_path / n) for n in ("old.vfs", "new.vfs", "patch.vfs"))
    with VFS(old) as o:
        o.write_bytes("/bin/tool-1.0", b"one")
        o.symlink("tool-1.0", "/bin/tool")
        o.symlink("gone", "/bin/removed")
    with VFS(new) as n:
        n.write_bytes("/bin/tool-1.0", b"one")
        n.write_bytes("/bin/tool-2.0", b"two")
        n.symlink("tool-2.0", "/bin/tool")  # a link retargeted
        n.mknod("/run/fifo", stat.S_IFIFO | 0o600)
    make_patch(old, new, patch)
    with VFS(old, read_only=True) as o:
        with VFS(":memory:") as stack:
            stack.add_underlay(o)
            stack.add_underlay(patch, priority=1)
            assert stack.readlink("/bin/tool") == "tool-2.0"
            assert not stack.exists("/bin/removed")
            assert stat.S_ISFIFO(stack.stat("/run/fifo").st_mode)
    out = str(tmp_path / "applied.vfs")
    apply_patch(old, patch, output=out)
    with VFS(out) as a:
        assert a.readlink("/bin/tool") == "tool-2.0" and not a.exists("/bin/removed")
        assert stat.S_ISFIFO(a.stat("/run/fifo").st_mode)
        assert a.check(deep=True).ok


def test_unpack_leaves_links_in_the_pack_and_fsspec_names_them(tmp_path):
    from vfs_orm.adapters.fsspec import VFSFileSystem
    from vfs_orm.pack import unpack
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/d/real", b"r")
        fs.symlink("/etc/passwd", "/d/escape")
        fs.mknod("/d/fifo", stat.S_IFIFO | 0o600)
        report = unpack(fs, str(tmp_path / "out"))
        assert (tmp_path / "out/d/real").read_bytes() == b"r"
        assert not os.path.lexists(tmp_path / "out/d/escape")
        assert not os.path.lexists(tmp_path / "out/d/fifo")
        assert sum("not extracted" in s for s in report.skipped) == 2
        info = VFSFileSystem(vfs=fs).info("/d/escape")
        assert info["type"] == "other" and info["islink"]
        assert VFSFileSystem(vfs=fs).info("/d/real")["type"] == "file"


def test_fsspec_get_makes_local_links_and_fifos(tmp_path):
    """fsspec's get (recursive) copies a link as a local link and a FIFO as a local FIFO, as
    cp -a does, replacing what was there without following it; a device stays an error."""
    from vfs_orm.adapters.fsspec import VFSFileSystem
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.write_bytes("/d/real", b"r")
        fs.symlink("real", "/d/link")
        fs.symlink("/nowhere/at/all", "/d/dangling")
        fs.mknod("/d/fifo", stat.S_IFIFO | 0o640)
        out = tmp_path / "out"
        (out / "d").mkdir(parents=True)
        (tmp_path / "victim").write_text("untouched")
        os.symlink(tmp_path / "victim", out / "d" / "link")  # replaced, never followed
        VFSFileSystem(vfs=fs).get("/d", str(out), recursive=True)
        assert os.readlink(out / "d" / "link") == "real"
        assert (out / "d" / "link").read_bytes() == b"r"
        assert os.readlink(out / "d" / "dangling") == "/nowhere/at/all"
        st = os.lstat(out / "d" / "fifo")
        assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 & ~_umask()
        assert (tmp_path / "victim").read_text() == "untouched"
        assert sorted(os.listdir(out / "d")) == ["dangling", "fifo", "link", "real"]
        if os.geteuid() == 0:  # only root can make a device, and only there does it matter
            fs.mknod("/e/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
            with pytest.raises(SpecialFileError):
                VFSFileSystem(vfs=fs).get("/e/null", str(tmp_path / "null"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_format_0009_upgrades_with_everything_kept(tmp_path):
    """0010 and 0011 change no table: a database written by the 0009 release (owners in the
    tree and in a checkpoint) reads as it was, and takes links and nodes."""
    import json
    import shutil
    from pathlib import Path

    from vfs_orm import FORMAT_REVISION
    fixtures = Path(__file__).with_name("fixtures")
    path = str(tmp_path / "f.db")
    shutil.copy(fixtures / "format_0009.db", path)
    manifest = json.loads((fixtures / "format_0009.manifest.json").read_text())
    with VFS(path) as fs:
        assert fs.info()["revision"] == FORMAT_REVISION
        for p, meta in manifest.items():
            st = fs.stat(p)
            assert (st.st_mode, st.owner_uid, st.owner_gid) == \
                (meta["mode"], meta["uid"], meta["gid"]), p
            if meta["type"] == "file":
                assert fs.digest(p) == meta["sha256"], p
        assert fs.stat("/game/config.json").owner_uid == 65534
        fs.symlink("config.json", "/game/current")
        fs.restore("before-edit")  # the checkpoint kept its owners
        assert fs.stat("/game/config.json").owner_gid == 65533
        assert not fs.exists("/game/current")
        assert fs.check(deep=True).ok


def test_the_cli_shows_links_and_nodes(tmp_path):
    import subprocess
    import sys
    db = str(tmp_path / "a.vfs")
    with VFS(db) as fs:
        fs.write_bytes("/a/f", b"x")
        fs.symlink("f", "/a/link")
        fs.mknod("/a/fifo", stat.S_IFIFO | 0o600)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vfs_orm", *args], capture_output=True,
                              text=True)
    lines = cli("ls", "-l", db, "/a").stdout.splitlines()
    assert [line[0] for line in lines] == ["-", "p", "l"]
    assert lines[2].endswith("link -> f")
    assert cli("ls", "-l", db, "/a/link").stdout.strip().endswith("link -> f")
    shown = cli("stat", db, "/a/link").stdout
    assert "type: symbolic link" in shown and "target: f" in shown
    assert "type: fifo" in cli("stat", db, "/a/fifo").stdout
    shown = cli("tree", db, "/a").stdout  # as GNU tree: a link shows its target
    assert "── link -> f\n" in shown and shown.rstrip().endswith("0 directories, 3 files")
    done = cli("cat", db, "/a/link")
    assert done.returncode != 0 and "symbolic link" in done.stderr and "Traceback" not in done.stderr
