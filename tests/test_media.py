"""Real storage limits: a disk that fills up (a small tmpfs) and read-only media (a tmpfs
remounted read-only). Mounting needs root: CI runs as root, so there these tests run;
elsewhere they skip with the reason."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid

import pytest

from vfs_orm import VFS, NoSpaceError, ReadOnlyError

CAN_MOUNT = hasattr(os, "geteuid") and os.geteuid() == 0


def _mount(path, size):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)


def _umount(path):
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def tmpfs(tmp_path):
    if not CAN_MOUNT:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: the tmpfs tests must run there")
        pytest.skip("mounting a tmpfs needs root (run the suite as root to include these)")
    mounted = []

    def make(size="4m"):
        path = tmp_path / f"mnt-{uuid.uuid4().hex[:8]}"
        _mount(path, size)
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        _umount(path)


def test_disk_full_is_enospc_and_nothing_committed_is_lost(tmpfs):
    mnt = tmpfs("10m")
    ballast = mnt / "ballast"
    with open(ballast, "wb") as f:
        # Space the rest of the system holds. Freeing it must leave room for the log's
        # committed pages to be checkpointed into the database file (WAL keeps them twice
        # for a while): that is the space a full disk needs back before writes resume.
        f.write(b"\0" * (6 << 20))
    path = str(mnt / "save.vfs")
    written = {}
    with VFS(path) as fs:
        with pytest.raises(NoSpaceError) as ei:
            for i in range(1000):
                data = os.urandom(60_000)
                fs.write_bytes(f"/saves/f{i}", data)
                written[f"/saves/f{i}"] = data
        err = ei.value
        assert isinstance(err, OSError) and err.errno == errno.ENOSPC
        assert written  # some writes went in before the disk filled
        for p, data in written.items():
            assert fs.read_bytes(p) == data
        os.remove(ballast)  # space comes back
        victim = next(iter(written))
        fs.remove(victim)  # removes resume
        del written[victim]
        fs.write_bytes("/after.txt", b"writes resume")
        assert fs.read_bytes("/after.txt") == b"writes resume"
        assert fs.check().ok
    with VFS(path, read_only=True) as fs:
        for p, data in written.items():
            assert fs.read_bytes(p) == data


def _pack(path):
    with VFS(path) as fs:
        fs.write_bytes("/base/config.json", b'{"base": true}')
        fs.write_bytes("/base/big.bin", b"B" * 300_000)
        fs.makedirs("/base/empty")


def test_packs_on_read_only_media_open_read_only_and_as_underlays(tmpfs, tmp_path):
    mnt = tmpfs("8m")
    pack = str(mnt / "base.vfs")
    _pack(pack)  # closed: WAL mode, log checkpointed away
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    with VFS(pack, read_only=True) as fs:
        assert fs.read_bytes("/base/config.json") == b'{"base": true}'
        with fs.open("/base/big.bin", "rb") as f:
            f.seek(100_000)
            assert f.read(10) == b"B" * 10
        assert fs.check().ok
    with VFS(str(tmp_path / "top.vfs")) as top:
        top.add_underlay(pack, name="base")
        assert top.read_bytes("/base/config.json") == b'{"base": true}'
        top.write_bytes("/base/config.json", b"modded")  # copy-up into the top layer
        assert top.read_bytes("/base/config.json") == b"modded"
        assert sorted(top.listdir("/base")) == ["big.bin", "config.json", "empty"]
    # Writable open of a pack on read-only media: an error that says what is wrong.
    with pytest.raises(ReadOnlyError, match="read_only=True"):
        VFS(pack)


def test_rollback_journal_packs_on_read_only_media(tmpfs):
    import sqlite3
    mnt = tmpfs("8m")
    pack = str(mnt / "base.vfs")
    _pack(pack)
    con = sqlite3.connect(pack)
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    with VFS(pack, read_only=True) as fs:
        assert fs.read_bytes("/base/config.json") == b'{"base": true}'


def test_unfinished_log_on_read_only_media_says_so(tmpfs):
    import shutil
    mnt = tmpfs("8m")
    pack = str(mnt / "base.vfs")
    _pack(pack)
    with VFS(pack) as fs:
        fs.write_bytes("/late.txt", b"only in the log")
        # copy the files while the log still holds the commit (as a crash would leave them)
        for ext in ("", "-wal"):
            shutil.copyfile(pack + ext, str(mnt / "copy.vfs") + ext)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    with pytest.raises(ReadOnlyError, match="write-ahead log"):
        VFS(str(mnt / "copy.vfs"), read_only=True)
