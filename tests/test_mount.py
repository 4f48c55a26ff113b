"""vfs-orm mount: real FUSE mounts (libfuse 3 through mfusepy), each test its own.

Skipped, with the reason, only where this machine truly cannot mount (no /dev/fuse, no
fusermount3, no libfuse 3 or no mfusepy); under CI=true that is a failure instead.
"""

import ctypes
import errno
import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vfs_orm import VFS, MountError


def _missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"no FUSE binding: {exc}"
    return None


@pytest.fixture(autouse=True)
def _fuse_here():
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"mount tests must run under CI=true: {reason}")
        pytest.skip(reason)


@pytest.fixture
def mnt(tmp_path):
    """(writable VFS, its mount point) for the test's duration."""
    fs = VFS(str(tmp_path / "top.vfs"))
    mp = tmp_path / "mnt"
    mp.mkdir()
    with fs, fs.mount(mp) as where:
        yield fs, Path(where)
    assert not os.path.ismount(mp)


def _errno_of(fn, *args) -> int:
    with pytest.raises(OSError) as info:
        fn(*args)
    return info.value.errno


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100


def renameat2(old: Path, new: Path, flags: int) -> int:
    """0, or the errno of renameat2(2)."""
    rc = _libc.renameat2(_AT_FDCWD, os.fsencode(old), _AT_FDCWD, os.fsencode(new), flags)
    return 0 if rc == 0 else ctypes.get_errno()


# -- every operation, with Linux's errno ---------------------------------------------------
def test_getattr_readdir_and_reads(mnt):
    fs, m = mnt
    fs.write_bytes("/a/one.txt", b"hello\n")
    fs.write_bytes("/a/big.bin", bytes(range(256)) * 1024)
    fs.mkdir("/a/sub")
    assert sorted(os.listdir(m / "a")) == ["big.bin", "one.txt", "sub"]
    st = os.stat(m / "a/one.txt")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 6 and st.st_uid == os.getuid()
    assert stat.S_ISDIR(os.stat(m / "a/sub").st_mode)
    assert (m / "a/big.bin").read_bytes() == bytes(range(256)) * 1024
    fd = os.open(m / "a/big.bin", os.O_RDONLY)
    try:
        assert os.pread(fd, 10, 70_000) == (bytes(range(256)) * 1024)[70_000:70_010]
        assert os.pread(fd, 10, 300_000) == b""
    finally:
        os.close(fd)
    assert _errno_of(os.stat, m / "missing") == errno.ENOENT
    assert _errno_of(os.stat, m / "a/one.txt/x") == errno.ENOTDIR
    assert _errno_of(os.listdir, m / "a/one.txt") == errno.ENOTDIR
    assert os.statvfs(m).f_namemax == 255
    assert _errno_of(os.stat, m / ("n" * 256)) == errno.ENAMETOOLONG
    assert _errno_of(os.mkdir, m / ("é" * 128)) == errno.ENAMETOOLONG  # 256 bytes
    (m / ("n" * 255)).write_bytes(b"longest name")
    assert fs.read_bytes("/" + "n" * 255) == b"longest name"


def test_open_modes_pread_pwrite(mnt):
    fs, m = mnt
    p = m / "f.bin"
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o640)
    try:
        assert os.pwrite(fd, b"abcdef", 0) == 6
        assert os.pwrite(fd, b"XY", 2) == 2
        assert os.pwrite(fd, b"!", 10) == 1  # a hole reads as zeros
        assert os.pread(fd, 11, 0) == b"abXYef\0\0\0\0!"
    finally:
        os.close(fd)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640
    assert fs.read_bytes("/f.bin") == b"abXYef\0\0\0\0!"
    assert _errno_of(os.open, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    with open(p, "ab") as f:
        f.write(b"+tail")
    assert p.read_bytes().endswith(b"!+tail")
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"new")
    os.close(fd)
    assert fs.read_bytes("/f.bin") == b"new"
    with open(p, "r+b") as f:
        f.seek(1)
        f.write(b"E")
    assert p.read_bytes() == b"nEw"
    assert _errno_of(os.open, m / "nope", os.O_RDONLY) == errno.ENOENT
    os.mkdir(m / "d")
    assert _errno_of(os.open, m / "d", os.O_WRONLY) == errno.EISDIR


def test_truncate_ftruncate(mnt):
    fs, m = mnt
    p = m / "t.bin"
    p.write_bytes(b"x" * 200_000)
    os.truncate(p, 100)
    assert fs.read_bytes("/t.bin") == b"x" * 100
    fd = os.open(p, os.O_RDWR)
    try:
        os.ftruncate(fd, 150)
        assert os.fstat(fd).st_size == 150
        assert os.pread(fd, 100, 90) == b"x" * 10 + b"\0" * 50
    finally:
        os.close(fd)
    assert fs.getsize("/t.bin") == 150
    os.mkdir(m / "d")
    assert _errno_of(os.truncate, m / "d", 0) == errno.EISDIR


def test_mkdir_rmdir_unlink(mnt):
    fs, m = mnt
    os.mkdir(m / "d", 0o750)
    assert stat.S_IMODE(os.stat(m / "d").st_mode) == 0o750
    assert _errno_of(os.mkdir, m / "d") == errno.EEXIST
    assert _errno_of(os.mkdir, m / "x/y") == errno.ENOENT
    (m / "d/f").write_bytes(b"1")
    assert _errno_of(os.rmdir, m / "d") == errno.ENOTEMPTY
    assert _errno_of(os.rmdir, m / "d/f") == errno.ENOTDIR
    assert _errno_of(os.unlink, m / "d") == errno.EISDIR
    assert _errno_of(os.unlink, m / "d/none") == errno.ENOENT
    os.unlink(m / "d/f")
    os.rmdir(m / "d")
    assert not fs.exists("/d")


def test_rename_and_its_flags(mnt):
    fs, m = mnt
    (m / "a").write_bytes(b"A")
    (m / "b").write_bytes(b"B")
    assert renameat2(m / "a", m / "b", 1) == errno.EEXIST  # RENAME_NOREPLACE
    assert renameat2(m / "a", m / "c", 1) == 0
    assert renameat2(m / "c", m / "b", 2) == 0  # RENAME_EXCHANGE
    assert fs.read_bytes("/c") == b"B" and fs.read_bytes("/b") == b"A"
    assert renameat2(m / "c", m / "zz", 2) == errno.ENOENT
    assert renameat2(m / "c", m / "b", 4) == errno.EINVAL  # RENAME_WHITEOUT: not here
    os.rename(m / "c", m / "b")  # replaces
    assert fs.listdir("/") == ["b"] and fs.read_bytes("/b") == b"B"
    os.makedirs(m / "d1/x")
    os.mkdir(m / "d2")
    (m / "d2/f").write_bytes(b"")
    assert _errno_of(os.rename, m / "d1", m / "d2") == errno.ENOTEMPTY
    assert _errno_of(os.rename, m / "d1", m / "d1/x/y") == errno.EINVAL
    assert _errno_of(os.rename, m / "b", m / "d1") == errno.EISDIR
    assert _errno_of(os.rename, m / "d1", m / "b") == errno.ENOTDIR
    os.rename(m / "d1", m / "d3")
    assert fs.isdir("/d3/x")


def test_utimens_chmod_access_fsync(mnt, tmp_path):
    fs, m = mnt
    p = m / "f"
    p.write_bytes(b"data")
    os.utime(p, ns=(1_000_000_000, 1_234_567_891_000_000_000))
    assert os.stat(p).st_mtime_ns == 1_234_567_891_000_000_000
    assert fs.stat("/f").st_mtime_ns == 1_234_567_891_000_000_000
    os.chmod(p, 0o600)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert fs.stat("/f").st_mode & 0o7777 == 0o600
    assert os.access(p, os.R_OK | os.W_OK)
    assert not os.access(m / "none", os.F_OK)
    fd = os.open(p, os.O_RDWR)
    try:
        os.write(fd, b"DA")
        os.fsync(fd)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    with VFS(str(tmp_path / "top.vfs"), read_only=True) as other:
        assert other.read_bytes("/f") == b"DAta"


def test_what_vfs_orm_does_not_have(mnt):
    _fs, m = mnt
    (m / "f").write_bytes(b"x")
    assert _errno_of(os.link, m / "f", m / "g") == errno.EPERM
    assert _errno_of(os.setxattr, m / "f", "user.k", b"v") == errno.EOPNOTSUPP
    assert _errno_of(os.getxattr, m / "f", "user.k") == errno.EOPNOTSUPP
    assert _errno_of(os.listxattr, m / "f") == errno.EOPNOTSUPP
    assert _errno_of(os.readlink, m / "f") == errno.EINVAL
    assert _fs.stat("/f").owner_uid is None  # made by the mounting user: "not set"
    os.chown(m / "f", os.getuid(), os.getgid())  # an explicit chown is stored
    assert (_fs.stat("/f").owner_uid, _fs.stat("/f").owner_gid) == (os.getuid(), os.getgid())


# -- owners (format 0009) ---------------------------------------------------------------------
def _as_root() -> None:
    """Owners through a mount need a second user: root switches to one (setpriv)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        reason = "needs root and setpriv (util-linux) to act as another user"
        if os.environ.get("CI") == "true":
            pytest.fail(f"owner tests must run under CI=true: {reason}")
        pytest.skip(reason)


@pytest.fixture
def shared_mnt(tmp_path):
    """``mnt`` at a mount point other users can reach (pytest's own directories are root's
    0700): a 0755 directory of its own in the system's temporary directory."""
    _as_root()
    import tempfile

    fs = VFS(str(tmp_path / "top.vfs"))
    mp = Path(tempfile.mkdtemp(prefix="vfs-orm-owners-"))
    mp.chmod(0o755)
    try:
        with fs, fs.mount(mp) as where:
            yield fs, Path(where)
        assert not os.path.ismount(mp)
    finally:
        mp.rmdir()


def _as_user(uid: int, gid: int, script: str) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` run as uid/gid (no supplementary groups)."""
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                           "sh", "-c", script], capture_output=True, text=True, timeout=60)


def test_chown_through_a_mount_is_stored(shared_mnt):
    fs, m = shared_mnt
    (m / "f").write_bytes(b"x")
    os.mkdir(m / "d")
    os.chown(m / "f", 65534, 65533)
    assert (os.stat(m / "f").st_uid, os.stat(m / "f").st_gid) == (65534, 65533)
    os.chown(m / "d", -1, 4321)
    assert (os.stat(m / "d").st_uid, os.stat(m / "d").st_gid) == (0, 4321)
    assert (fs.stat("/f").owner_uid, fs.stat("/f").owner_gid) == (65534, 65533)
    assert (fs.stat("/d").owner_uid, fs.stat("/d").owner_gid) == (None, 4321)
    assert {e.name: (e.stat().st_uid, e.stat().st_gid) for e in os.scandir(m)} == \
        {"f": (65534, 65533), "d": (0, 4321)}
    # Now the kernel lets that user do what an owner may, and no more.
    done = _as_user(65534, 65533, f"echo more >> {m}/f && chmod 600 {m}/f && "
                                  f"chown 0 {m}/f")
    assert done.returncode != 0 and "Operation not permitted" in done.stderr
    assert stat.S_IMODE(os.stat(m / "f").st_mode) == 0o600
    assert fs.read_bytes("/f") == b"xmore\n"
    assert _as_user(65534, 65533, f"echo no > {m}/d/g").returncode != 0  # d is root's 0755


def test_entries_made_by_another_user_are_theirs(shared_mnt):
    fs, m = shared_mnt
    os.mkdir(m / "pub", 0o777)
    os.chmod(m / "pub", 0o777)
    os.mkdir(m / "sgid", 0o777)
    os.chmod(m / "sgid", 0o2777)
    os.chown(m / "sgid", -1, 4242)
    done = _as_user(65534, 65533, f"echo hi > {m}/pub/file && mkdir {m}/pub/dir && "
                                  f"echo hi > {m}/sgid/file && mkdir {m}/sgid/dir")
    assert done.returncode == 0, done.stderr
    for path, owner in (("pub/file", (65534, 65533)), ("pub/dir", (65534, 65533)),
                        ("sgid/file", (65534, 4242)), ("sgid/dir", (65534, 4242))):
        st = os.stat(m / path)
        assert (st.st_uid, st.st_gid) == owner, path
        assert (fs.stat("/" + path).owner_uid, fs.stat("/" + path).owner_gid) == owner, path
    # A directory made in a set-group-ID directory is one too; a file is not made one.
    assert os.stat(m / "sgid/dir").st_mode & stat.S_ISGID
    assert not os.stat(m / "sgid/file").st_mode & stat.S_ISGID
    assert not os.stat(m / "pub/dir").st_mode & stat.S_ISGID


def test_set_id_bits_cleared_by_an_unprivileged_write_or_chown(shared_mnt):
    fs, m = shared_mnt
    os.mkdir(m / "d", 0o777)
    os.chmod(m / "d", 0o777)
    for name in ("w", "t", "c"):
        (m / "d" / name).write_bytes(b"x")
        os.chmod(m / "d" / name, 0o6777)
    os.chown(m / "d/c", 65534, 65533)
    done = _as_user(65534, 65533, f"echo y >> {m}/d/w && truncate -s 0 {m}/d/t && "
                                  f"chgrp 65533 {m}/d/c")
    assert done.returncode == 0, done.stderr
    for name in ("w", "t", "c"):
        assert stat.S_IMODE(os.stat(m / "d" / name).st_mode) == 0o777, name
        assert fs.stat(f"/d/{name}").st_mode & 0o7777 == 0o777, name
    # Root keeps them (CAP_FSETID).
    os.chmod(m / "d/w", 0o6777)
    with open(m / "d/w", "ab") as f:
        f.write(b"root")
    assert stat.S_IMODE(os.stat(m / "d/w").st_mode) == 0o6777


def test_symlinks_fifos_and_devices_through_the_mount(mnt, tmp_path):
    """Format 0010: links and nodes are stored entries; the kernel follows a link (through
    ``readlink``) and serves a FIFO itself."""
    fs, m = mnt
    (m / "dir").mkdir()
    (m / "dir/real.txt").write_bytes(b"through the link")
    os.symlink("real.txt", m / "dir/link")
    os.symlink("dir", m / "dirlink")
    os.symlink("/nowhere/at/all", m / "dangling")
    assert os.readlink(m / "dir/link") == "real.txt"
    assert (m / "dir/link").read_bytes() == b"through the link"  # followed by the kernel
    assert (m / "dirlink/link").read_bytes() == b"through the link"  # in the middle of a path
    assert stat.S_ISLNK(os.lstat(m / "dir/link").st_mode)
    assert os.lstat(m / "dir/link").st_size == len("real.txt")
    assert not (m / "dangling").exists() and (m / "dangling").is_symlink()
    assert _errno_of(os.open, m / "dir/link", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    assert _errno_of(os.readlink, m / "dir/real.txt") == errno.EINVAL
    assert fs.readlink("/dir/link") == "real.txt"  # the API sees what the mount made
    os.rename(m / "dir/link", m / "dir/link2")
    assert os.readlink(m / "dir/link2") == "real.txt"
    os.unlink(m / "dir/link2")
    assert (m / "dir/real.txt").exists() and not fs.exists("/dir/link2")

    os.mkfifo(m / "fifo", 0o640)
    assert stat.S_ISFIFO(os.stat(m / "fifo").st_mode)
    assert stat.S_IMODE(os.stat(m / "fifo").st_mode) == 0o640
    # The kernel serves the FIFO: a writer and a reader meet through it.
    writer = subprocess.Popen([sys.executable, "-c",
                               f"open({str(m / 'fifo')!r}, 'wb').write(b'piped')"])
    with open(m / "fifo", "rb") as f:
        assert f.read() == b"piped"
    assert writer.wait(30) == 0
    names = {e.name: e for e in os.scandir(m)}
    assert names["dirlink"].is_symlink() and not names["dirlink"].is_dir(follow_symlinks=False)
    # tar keeps them: a round trip through an archive
    subprocess.run(["tar", "-cf", str(tmp_path / "t.tar"), "-C", str(m), "dir", "dirlink",
                    "dangling", "fifo"], check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "t.tar"), "-C", str(out)], check=True)
    assert os.readlink(out / "dirlink") == "dir" and os.readlink(out / "dangling") == \
        "/nowhere/at/all"
    assert stat.S_ISFIFO(os.lstat(out / "fifo").st_mode)
    assert fs.check(deep=True).ok


def test_device_nodes_through_the_mount(mnt):
    """mknod of a device (format 0010): its number is stored and reported as st_rdev."""
    if os.geteuid() != 0:  # the kernel asks for CAP_MKNOD before the file system sees it
        if os.environ.get("CI") == "true":
            pytest.fail("device node tests must run as root under CI=true")
        pytest.skip("mknod of a device needs root (CAP_MKNOD)")
    fs, m = mnt
    os.mknod(m / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(m / "disk", stat.S_IFBLK | 0o600, os.makedev(8, 1))
    st = os.stat(m / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.stat(m / "disk").st_mode)
    assert os.stat(m / "disk").st_rdev == os.makedev(8, 1)
    assert fs.device_number("/null") == os.makedev(1, 3)
    names = {e.name: e for e in os.scandir(m)}  # a listing leaves devices to getattr
    assert names["null"].stat(follow_symlinks=False).st_rdev == os.makedev(1, 3)
    # A FUSE mount is nodev (as every mount by fusermount is): the kernel refuses to open a
    # device there, whatever vfs_orm stores.
    assert _errno_of(open, m / "null", "wb") == errno.EACCES
    assert fs.check(deep=True).ok


def test_a_listing_gives_the_kernel_every_entrys_attributes(tmp_path, monkeypatch):
    """A directory of many chunks listed through the mount: every name once, with its stored
    size, and stat of each entry afterwards asks the file system nothing (READDIRPLUS with
    offsets: before, the kernel looked every name up, one getattr into Python each)."""
    from vfs_orm.adapters.mount import Operations

    names = [f"entry-{i:04d}-{'n' * 40}" for i in range(1500)]  # several kernel buffers
    fs = VFS(str(tmp_path / "top.vfs"))
    fs.write_files({f"/d/{n}": b"x" * (i % 7) for i, n in enumerate(names)})
    asked: list[str] = []
    getattr_ = Operations.getattr

    def counting(self: Operations, path: str, fh: int | None = None) -> dict:
        asked.append(path)
        return getattr_(self, path, fh)

    monkeypatch.setattr(Operations, "getattr", counting)
    mp = tmp_path / "mnt"
    mp.mkdir()
    # Long timeouts: the attributes a listing gave stay valid however slow this machine is.
    with fs, fs.mount(mp, {"attr_timeout": 60.0, "entry_timeout": 60.0}):
        listed = os.listdir(mp / "d")
        assert sorted(listed) == names  # each once, none lost between chunks
        asked.clear()
        sizes = {n: os.stat(mp / "d" / n).st_size for n in listed}
        assert sizes == {n: i % 7 for i, n in enumerate(names)}
        assert [p for p in asked if p.startswith("/d/")] == []
        # a new listing (a new directory handle) sees what changed since
        fs.write_bytes("/d/zz-new", b"new")
        fs.remove(f"/d/{names[0]}")
        assert sorted(os.listdir(mp / "d")) == [*names[1:], "zz-new"]
        assert os.stat(mp / "d" / "zz-new").st_size == 3


def test_read_only_mount(tmp_path):
    path = tmp_path / "pack.vfs"
    with VFS(str(path)) as w:
        w.write_bytes("/f", b"packed")
    mp = tmp_path / "mnt"
    mp.mkdir()
    with VFS(str(path), read_only=True) as fs, fs.mount(mp):
        assert (mp / "f").read_bytes() == b"packed"
        assert _errno_of(os.open, mp / "f", os.O_WRONLY) == errno.EROFS
        assert _errno_of(os.mkdir, mp / "d") == errno.EROFS
        assert _errno_of(os.unlink, mp / "f") == errno.EROFS
        assert os.statvfs(mp).f_flag & os.ST_RDONLY


def test_unlinked_open_file_stays_readable(mnt):
    fs, m = mnt
    (m / "f").write_bytes(b"still here")
    fd = os.open(m / "f", os.O_RDONLY)
    try:
        os.unlink(m / "f")
        assert not (m / "f").exists()
        assert os.pread(fd, 100, 0) == b"still here"
    finally:
        os.close(fd)
    assert [n for n in fs.listdir("/") if n != "f"] == [n for n in fs.listdir("/")]


# -- layers ---------------------------------------------------------------------------------
def test_whiteouts_and_copy_up_through_the_mount(tmp_path):
    base = tmp_path / "base.vfs"
    with VFS(str(base)) as b:
        b.write_bytes("/data/a.txt", b"base a")
        b.write_bytes("/data/b.txt", b"base b")
        b.write_bytes("/data/c.txt", b"base c")
    mp = tmp_path / "mnt"
    mp.mkdir()
    with VFS(str(tmp_path / "save.vfs")) as fs:
        fs.add_underlay(str(base), priority=10, name="base")
        with fs.mount(mp):
            assert sorted(os.listdir(mp / "data")) == ["a.txt", "b.txt", "c.txt"]
            with open(mp / "data/a.txt", "r+b") as f:  # copy-up on write
                f.seek(5)
                f.write(b"A")
            os.unlink(mp / "data/b.txt")  # a whiteout
            os.rename(mp / "data/c.txt", mp / "data/d.txt")
            assert sorted(os.listdir(mp / "data")) == ["a.txt", "d.txt"]
            assert (mp / "data/a.txt").read_bytes() == b"base A"
        assert fs.which_layer("/data/a.txt") == "local"
        assert not fs.exists("/data/b.txt")
    with VFS(str(base), read_only=True) as b:
        assert b.read_bytes("/data/a.txt") == b"base a" and b.exists("/data/b.txt")


def test_a_patched_stack_through_the_mount(tmp_path):
    """A game's stack [save over patch 1.1 over pack 1.0], the patch's changed file stored as
    a binary delta: every program reading the mount sees 1.1's bytes."""
    from vfs_orm.patching import make_patch

    level = os.urandom(200_000)
    v11 = level[:1000] + b"patched" + level[1000:]
    for name, data in (("1.0", level), ("1.1", v11)):
        with VFS(str(tmp_path / f"{name}.vfs")) as pack:
            pack.write_bytes("/levels/one.dat", data)
    patch = tmp_path / "patch.vfs"
    assert make_patch(tmp_path / "1.0.vfs", tmp_path / "1.1.vfs", patch).deltas == 1
    mp = tmp_path / "mnt"
    mp.mkdir()
    with VFS(str(tmp_path / "save.vfs")) as fs:
        fs.add_underlay(str(tmp_path / "1.0.vfs"), priority=0, name="base")
        fs.add_underlay(str(patch), priority=1, name="patch")
        with fs.mount(mp):
            assert (mp / "levels/one.dat").read_bytes() == v11
            with open(mp / "levels/one.dat", "rb") as f:  # a read in the middle
                f.seek(995)
                assert f.read(20) == v11[995:1015]


def test_written_file_is_visible_to_another_vfs(mnt, tmp_path):
    _fs, m = mnt
    with open(m / "save.dat", "wb") as f:
        f.write(b"slot 1")
    with VFS(str(tmp_path / "top.vfs")) as other:
        assert other.read_bytes("/save.dat") == b"slot 1"
        other.write_bytes("/from-api.txt", b"api")
    deadline = time.monotonic() + 10  # the kernel's entry cache: 1 s on a writable mount
    while not (m / "from-api.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (m / "from-api.txt").read_bytes() == b"api"


# -- real programs --------------------------------------------------------------------------
def _tree(root: Path) -> None:
    (root / "src/pkg").mkdir(parents=True)
    for i in range(40):
        (root / f"src/pkg/m{i}.txt").write_bytes(os.urandom(i * 997))
    (root / "src/big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "src/empty").mkdir()
    os.chmod(root / "src/pkg/m1.txt", 0o600)


def test_cp_a_and_diff_r(mnt, tmp_path):
    _fs, m = mnt
    local = tmp_path / "local"
    _tree(local)
    subprocess.run(["cp", "-a", str(local / "src"), str(m / "copy")], check=True)
    subprocess.run(["diff", "-r", str(local / "src"), str(m / "copy")], check=True)
    assert stat.S_IMODE(os.stat(m / "copy/pkg/m1.txt").st_mode) == 0o600
    subprocess.run(["cp", "-a", str(m / "copy"), str(tmp_path / "back")], check=True)
    subprocess.run(["diff", "-r", str(local / "src"), str(tmp_path / "back")], check=True)


def test_tar_round_trip(mnt, tmp_path):
    _fs, m = mnt
    local = tmp_path / "local"
    _tree(local)
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(local), "src"], check=True)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(m)], check=True)
    subprocess.run(["diff", "-r", str(local / "src"), str(m / "src")], check=True)
    subprocess.run(["tar", "-cf", str(m / "again.tar"), "-C", str(m), "src"], check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(m / "again.tar"), "-C", str(out)], check=True)
    subprocess.run(["diff", "-r", str(local / "src"), str(out / "src")], check=True)


def test_git(mnt):
    _fs, m = mnt
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(m)}
    repo = m / "repo"

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, env=env,
                              capture_output=True, text=True).stdout

    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "a.txt").write_text("one\n")
    (repo / "dir").mkdir()
    (repo / "dir/b.txt").write_text("two\n")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    (repo / "a.txt").write_text("one changed\n")
    assert git("status", "--porcelain").split() == ["M", "a.txt"]
    git("commit", "-q", "-am", "second")
    assert git("status", "--porcelain") == ""
    git("fsck", "--strict")
    assert len(git("log", "--oneline").splitlines()) == 2


def test_sqlite_database_inside_the_mount(mnt):
    _fs, m = mnt
    db = m / "game.sqlite"
    code = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute('create table t (k integer primary key, v text)')\n"
        "with c:\n"
        "    c.executemany('insert into t (v) values (?)', [(str(i) * 50,) for i in range(3000)])\n"
        "with c:\n"
        "    c.execute('delete from t where k % 3 = 0')\n"
        "c.execute('vacuum')\n"
        "print(c.execute('select count(*) from t').fetchone()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(db)], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "2000"
    c = sqlite3.connect(db)
    try:
        assert c.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert c.execute("select count(*) from t").fetchone()[0] == 2000
    finally:
        c.close()


def test_python_imports_from_a_mounted_pack(tmp_path):
    path = tmp_path / "mods.vfs"
    with VFS(str(path)) as w:
        w.write_text("/pkg/modpack/__init__.py", "from .core import answer\n")
        w.write_text("/pkg/modpack/core.py", "def answer():\n    return 42\n")
    mp = tmp_path / "mnt"
    mp.mkdir()
    with VFS(str(path), read_only=True) as fs, fs.mount(mp):
        out = subprocess.run([sys.executable, "-c", "import modpack; print(modpack.answer())"],
                             env={**os.environ, "PYTHONPATH": str(mp / "pkg"),
                                  "PYTHONDONTWRITEBYTECODE": "1"},
                             check=True, capture_output=True, text=True).stdout
        assert out.strip() == "42"


def test_mmap_read(mnt):
    fs, m = mnt
    data = os.urandom(300_000)
    fs.write_bytes("/blob", data)
    # Another process maps it: a page fault in the serving process itself would wait for a
    # server that waits for that process's memory map lock (see docs/guide/mounting.md).
    code = ("import mmap, sys, hashlib\n"
            "with open(sys.argv[1], 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:\n"
            "    print(hashlib.sha256(mm[:]).hexdigest(), mm[123_456:123_460].hex())\n")
    out = subprocess.run([sys.executable, "-c", code, str(m / "blob")], check=True,
                         capture_output=True, text=True, timeout=60).stdout.split()
    assert out == [hashlib.sha256(data).hexdigest(), data[123_456:123_460].hex()]


# -- the command and its lifecycle ----------------------------------------------------------
def _cli(*args: object, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vfs_orm", *map(str, args)],
                          capture_output=True, text=True, timeout=60, **kw)


def _server_pid(out: str) -> int:
    return int(out.split("server pid ")[1].split(";")[0])


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # a child of the CLI process, re-parented: nobody reaps it but init
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ")[1].startswith("Z"):
                return
        time.sleep(0.05)
    raise AssertionError(f"server {pid} still running")


@pytest.mark.parametrize("stop", ["umount", "fusermount3", "sigterm"])
def test_cli_mount_stops_cleanly(tmp_path, stop):
    base = tmp_path / "base.vfs"
    with VFS(str(base)) as b:
        b.write_bytes("/base.txt", b"base")
    mp = tmp_path / "mnt"
    mp.mkdir()
    done = _cli("mount", tmp_path / "save.vfs", mp, "-u", f"{base}:5:base", "-o", "attr_timeout=1")
    assert done.returncode == 0, done.stderr
    pid = _server_pid(done.stdout)
    assert os.path.ismount(mp)
    assert (mp / "base.txt").read_bytes() == b"base"
    (mp / "save.txt").write_bytes(b"saved")
    if stop == "umount":
        assert _cli("umount", mp).returncode == 0
    elif stop == "fusermount3":
        subprocess.run(["fusermount3", "-u", str(mp)], check=True)
    else:
        os.kill(pid, signal.SIGTERM)
    _wait_gone(pid)
    assert not os.path.ismount(mp)
    assert not (tmp_path / "save.vfs-wal").exists() or \
        (tmp_path / "save.vfs-wal").stat().st_size == 0  # closed: the WAL is folded in
    with VFS(str(tmp_path / "save.vfs"), read_only=True) as fs:
        assert fs.read_bytes("/save.txt") == b"saved" and fs.listdir("/") == ["save.txt"]


def test_cli_read_only_and_errors(tmp_path):
    path = tmp_path / "pack.vfs"
    with VFS(str(path)) as w:
        w.write_bytes("/f", b"x")
    mp = tmp_path / "mnt"
    mp.mkdir()
    done = _cli("mount", path, mp, "--read-only")
    assert done.returncode == 0, done.stderr
    try:
        assert _errno_of(os.mkdir, mp / "d") == errno.EROFS
    finally:
        assert _cli("umount", mp).returncode == 0
    _wait_gone(_server_pid(done.stdout))
    bad = _cli("mount", tmp_path / "none.vfs", mp, "--read-only")
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0
    assert "no such image" in bad.stderr
    not_mounted = _cli("umount", mp)
    assert not_mounted.returncode == 1 and len(not_mounted.stderr.strip().splitlines()) == 1


def test_foreground_sigint_unmounts(tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "vfs_orm", "mount", str(tmp_path / "s.vfs"),
                             str(mp), "--foreground"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mp):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.02)
        (mp / "f").write_bytes(b"1")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not os.path.ismount(mp)
    with VFS(str(tmp_path / "s.vfs"), read_only=True) as fs:
        assert fs.read_bytes("/f") == b"1"


def test_mount_errors_name_the_fix(tmp_path):
    with VFS(str(tmp_path / "x.vfs")) as fs, pytest.raises(MountError) as info, \
            fs.mount(tmp_path / "not-a-dir"):
        pass
    assert "not a directory" in str(info.value)


# -- a PostgreSQL tree, and readers in parallel ----------------------------------------------
def test_a_postgresql_tree_through_the_mount(pg_url, pg_tree, tmp_path):
    """The same operations on a tree of a server: written through the mount, read by the API
    (and the reverse), renamed, removed, listed by a real program."""
    mp = tmp_path / "mnt"
    mp.mkdir()
    with VFS(pg_url, tree=pg_tree) as fs:
        fs.write_bytes("/levels/1.json", b'{"level": 1}')
        with fs.mount(mp) as where:
            m = Path(where)
            assert (m / "levels" / "1.json").read_bytes() == b'{"level": 1}'
            (m / "saves").mkdir()
            (m / "saves" / "slot1.dat").write_bytes(b"x" * 200_000)  # chunks on the server
            os.rename(m / "saves" / "slot1.dat", m / "saves" / "slot2.dat")
            os.unlink(m / "levels" / "1.json")
            listed = subprocess.run(["ls", "-R", str(m)], capture_output=True, text=True)
            assert listed.returncode == 0 and "slot2.dat" in listed.stdout
        assert not os.path.ismount(mp)
    with VFS(pg_url, tree=pg_tree, read_only=True) as again:
        assert again.read_bytes("/saves/slot2.dat") == b"x" * 200_000
        assert again.listdir("/levels") == [] and again.check().ok


def test_readers_in_parallel(mnt):
    """Four threads reading four files at once through one mount all get their own bytes
    (libfuse serves requests on several threads, each with its own database connection)."""
    import threading

    fs, m = mnt
    want = {f"/f{i}.bin": bytes([i]) * (3 * 65536 + i) for i in range(4)}
    fs.write_files(want)
    got: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def read(name: str) -> None:
        try:
            for _ in range(5):
                with open(m / name.lstrip("/"), "rb") as f:
                    got[name] = f.read()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(name,)) for name in want]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and got == want


def test_a_relative_mount_point(tmp_path, monkeypatch):
    """libfuse moves the process to "/" when it mounts: a relative mount point must still be
    seen mounted (it timed out after 30 s, the mount left behind), and the host application
    gets its working directory back."""
    (tmp_path / "rel").mkdir()
    monkeypatch.chdir(tmp_path)
    with VFS(str(tmp_path / "r.vfs")) as fs, fs.mount("rel") as where:
        assert where == str(tmp_path / "rel")
        assert os.getcwd() == str(tmp_path)  # libfuse's chdir("/") undone
        (tmp_path / "rel" / "f").write_bytes(b"x")
        assert fs.read_bytes("/f") == b"x"
    assert not os.path.ismount(tmp_path / "rel")
