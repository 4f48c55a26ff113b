"""Review of format 0010 (symbolic links, FIFOs, sockets, devices): failing tests for bugs
found on main, one per test (each names its bug)."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from vfs_orm import VFS
from vfs_orm.patching import apply_patch, make_patch


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfs_orm", *args], capture_output=True,
                          text=True, check=False)


def _swapped(fs: VFS) -> None:
    """/l a regular file holding b"target", /f a link to "target"."""
    fs.write_bytes("/l", b"target")
    fs.symlink("target", "/f")


def test_content_digest_tells_a_link_from_a_file_with_the_same_bytes(tmp_path):
    """Bug: content_manifest() maps a link and a regular file to the digest of their bytes
    alone, so two trees whose only difference is that /l is a link in one and a regular file
    (holding the link's target) in the other have the same content_digest(), against its
    docstring ("same paths, kinds and file contents")."""
    with VFS(str(tmp_path / "a.vfs")) as a:
        a.symlink("target", "/l")
        a.write_bytes("/f", b"target")
        before = a.content_digest()
    with VFS(str(tmp_path / "b.vfs")) as b:
        _swapped(b)
        assert b.content_digest() != before


def test_make_patch_ships_a_link_that_became_a_file_with_the_same_bytes(tmp_path):
    """Bug: make_patch compares the two content manifests by digest only, so a link replaced
    by a regular file holding its target (and the reverse) is not shipped: the applied tree
    keeps the old kinds while claiming to be the new tree."""
    old, new, patch, out = (str(tmp_path / n) for n in ("o.vfs", "n.vfs", "p.vfs", "out.vfs"))
    with VFS(old) as o:
        o.symlink("target", "/l")
        o.write_bytes("/f", b"target")
    with VFS(new) as n:
        _swapped(n)
    make_patch(old, new, patch)
    apply_patch(old, patch, output=out)
    with VFS(out) as a:
        assert stat.S_ISREG(a.stat("/l").st_mode), oct(a.stat("/l").st_mode)
        assert a.readlink("/f") == "target"


def test_diff_reports_a_link_that_became_a_file_with_the_same_bytes(tmp_path):
    """Bug: VFS.diff compares checkpoint entries by digest only, so a link replaced by a
    regular file with the same bytes (or the reverse) is not reported as changed, though
    restore() of that checkpoint does change it back."""
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.symlink("target", "/l")
        fs.write_bytes("/f", b"target")
        fs.checkpoint("c")
        fs.remove("/l")
        fs.remove("/f")
        _swapped(fs)
        assert fs.diff("c") == [("M", "/f"), ("M", "/l")]
        fs.checkpoint("c2")
        assert fs.diff("c", "c2") == [("M", "/f"), ("M", "/l")]


def test_cli_ls_of_a_link_lists_the_link(tmp_path):
    """Bug: `vfs-orm ls IMAGE /link` fails with "Not a directory" (cli.ls_cmd takes what
    isfile() denies for a directory); ls of a link, FIFO or device names the entry itself."""
    image = str(tmp_path / "a.vfs")
    with VFS(image) as fs:
        fs.symlink("target", "/l")
        fs.mknod("/p", stat.S_IFIFO | 0o600)
    for path, name in (("/l", "l"), ("/p", "p")):
        r = _cli("ls", image, path)
        assert r.returncode == 0 and r.stdout.split() == [name], (r.stdout, r.stderr)


def test_cli_ls_long_shows_the_type_of_links_and_fifos(tmp_path):
    """Bug: `vfs-orm ls -l` prints "-" (regular file) as the type of a link, a FIFO, a
    socket and a device (cli.ls_cmd knows only "d" and "-"); ls -l prints l, p, s, c, b."""
    image = str(tmp_path / "a.vfs")
    with VFS(image) as fs:
        fs.write_bytes("/f", b"x")
        fs.symlink("f", "/l")
        fs.mknod("/p", stat.S_IFIFO | 0o600)
        fs.mknod("/s", stat.S_IFSOCK | 0o600)
        fs.mknod("/c", stat.S_IFCHR | 0o600, 0)
        fs.mknod("/b", stat.S_IFBLK | 0o600, 0)
    r = _cli("ls", "-l", image, "/")
    assert r.returncode == 0, r.stderr
    kinds = {line.split(" -> ")[0].split()[-1]: line[0] for line in r.stdout.splitlines()}
    assert kinds == {"b": "b", "c": "c", "f": "-", "l": "l", "p": "p", "s": "s"}, r.stdout


def test_cli_stat_names_a_link_a_link(tmp_path):
    """Bug: `vfs-orm stat --json IMAGE /link` says "type": "file" for a link or FIFO
    (cli.stat_cmd knows only directory and file)."""
    import json
    image = str(tmp_path / "a.vfs")
    with VFS(image) as fs:
        fs.symlink("target", "/l")
    r = _cli("stat", "--json", image, "/l")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["type"] != "file", r.stdout


def test_check_deep_reports_a_link_target_holding_a_nul(tmp_path):
    """Bug: a stored link whose target holds a NUL (forged: a file's row given S_IFLNK) is a
    CorruptionError for readlink() (special.link_target) and an EIO through a mount, but
    check(deep=True) reports nothing: stored.inode_problem sees only the size and
    integrity.verify_files reads the bytes without the link rule."""
    import sqlite3

    from vfs_orm import CorruptionError
    path = str(tmp_path / "a.vfs")
    with VFS(path) as fs:
        fs.write_bytes("/l", b"ta\x00get")
    con = sqlite3.connect(path)
    con.execute("UPDATE vfs_inodes SET mode = ? WHERE name = 'l'", (stat.S_IFLNK | 0o777,))
    con.commit()
    con.close()
    with VFS(path) as fs:
        try:
            fs.readlink("/l")
        except CorruptionError:
            pass
        else:
            raise AssertionError("readlink returned a target holding a NUL")
        report = fs.check(deep=True)
        assert not report.ok and "/l" in " ".join(map(str, report.problems)), report


def test_fsspec_ls_of_a_link_or_fifo_lists_the_entry(tmp_path):
    """Bug: VFSFileSystem.ls of a link or a FIFO raises NotADirectoryError (it falls back to
    "ls of a file lists the file" only when vfs.isfile(), which is False for them); fsspec's
    LocalFileSystem.ls of a link or FIFO lists the entry itself."""
    from vfs_orm.adapters.fsspec import VFSFileSystem
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.symlink("target", "/l")
        fs.mknod("/p", stat.S_IFIFO | 0o600)
        ffs = VFSFileSystem(vfs=fs)
        assert ffs.ls("/l", detail=False) == ["/l"]
        assert ffs.ls("/p", detail=False) == ["/p"]


def test_make_patch_when_a_link_or_fifo_becomes_a_regular_file(tmp_path):
    """Bug: make_patch raises SpecialFileError when a link or FIFO of OLD is a regular file
    in NEW (or a new file's most similar old path is a link): patching._write_changes checks
    only the NEW entry's type before _store_delta, which reads OLD's entry as a delta base
    (base.read_bytes)."""
    for name, make_old in (("link", lambda o: o.symlink("abc", "/z")),
                           ("fifo", lambda o: o.mknod("/z", stat.S_IFIFO | 0o600))):
        old, new, patch, out = (str(tmp_path / f"{name}-{n}") for n in ("o", "n", "p", "out"))
        with VFS(old) as o:
            make_old(o)
        with VFS(new) as n:
            n.write_bytes("/z", b"now a regular file")
        make_patch(old, new, patch)
        apply_patch(old, patch, output=out)
        with VFS(out) as a:
            assert a.read_bytes("/z") == b"now a regular file"


def test_make_patch_when_a_new_files_similar_old_path_is_a_link(tmp_path):
    """Bug: a file added in NEW whose most similar OLD path (same name elsewhere, e.g. a
    moved directory) is a link makes make_patch raise SpecialFileError: _store_delta reads
    that link as a delta base (patching._write_changes/_similar do not check its type)."""
    old, new, patch, out = (str(tmp_path / n) for n in ("o.vfs", "n.vfs", "p.vfs", "out.vfs"))
    with VFS(old) as o:
        o.symlink("elsewhere", "/a/big")
    with VFS(new) as n:
        n.write_bytes("/b/big", b"x" * 5000)
    make_patch(old, new, patch)
    apply_patch(old, patch, output=out)
    with VFS(out) as a:
        assert a.read_bytes("/b/big") == b"x" * 5000


def test_symlink_or_mknod_onto_a_directory_is_already_exists(tmp_path):
    """Bug: VFS.symlink and VFS.mknod onto an existing directory raise IsADirError (EISDIR),
    not the AlreadyExistsError (EEXIST) their docstrings promise ("something is at path")
    and os.symlink/os.mknod raise: Tree.write_bytes(exclusive=True) tests for a directory
    before it tests for existence."""
    import errno

    from vfs_orm import AlreadyExistsError
    with VFS(str(tmp_path / "a.vfs")) as fs:
        fs.mkdir("/d")
        for make in (lambda: fs.symlink("x", "/d"),
                     lambda: fs.mknod("/d", stat.S_IFIFO | 0o600)):
            try:
                make()
            except AlreadyExistsError as exc:
                assert exc.errno == errno.EEXIST
            else:
                raise AssertionError("no error")
        assert fs.isdir("/d")


def test_a_device_number_the_mount_cannot_show_is_refused_or_shown_as_stored(tmp_path):
    """Bug: VFS.mknod accepts any 64-bit device number, but Linux's dev_t holds 32 bits
    (os.mknod of os.makedev(4096, 0) is EINVAL) and FUSE's rdev is 32 bits: the mount shows
    another device (st_rdev truncated) than device_number() returns. special.node_content
    should refuse what Linux cannot hold (or the mount refuse to show it), not mis-show it."""
    import os

    from tests.test_mount import _missing
    from vfs_orm import InvalidOperationError
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"mount tests must run under CI=true: {reason}")
        pytest.skip(reason)
    dev = os.makedev(4096, 0)  # one past Linux's 12-bit major
    with VFS(str(tmp_path / "a.vfs")) as fs:
        try:
            fs.mknod("/dev", stat.S_IFCHR | 0o600, dev)
        except InvalidOperationError:
            return  # refused, as os.mknod refuses it
        mp = tmp_path / "mnt"
        mp.mkdir()
        with fs.mount(mp) as where:
            assert os.lstat(os.path.join(where, "dev")).st_rdev == fs.device_number("/dev")
