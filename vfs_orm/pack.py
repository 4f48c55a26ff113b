"""Packing a directory tree into an image and unpacking one safely.

``pack`` never follows a symlink out of the source tree (a link to a file inside is packed as
that file's content, unless ``symlinks="keep"`` stores every link as a link, as ``tar`` does),
skips special files, keeps empty directories, mtimes and mode bits, streams large files and
writes the image atomically (to a temporary name, renamed at the end).

``unpack`` treats the image as hostile: every name is checked (no ``..``, no ``/`` or ``\\``,
no NUL or control characters, no drive letters), names that would collide on a
case-insensitive or normalising file system are refused, nothing is ever written through a
symlink (directories are walked with ``O_NOFOLLOW`` file descriptors, relative to the
destination), and each file is written to a temporary name then renamed into place.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from vfs_orm import paths, special
from vfs_orm.backends import is_postgresql_url
from vfs_orm.content import DICT_VALUES, RELEASE_LEVELS, compression_codec
from vfs_orm.copying import copy_tree
from vfs_orm.errors import VFSError
from vfs_orm.types import StatResult
from vfs_orm.vfs import VFS

SMALL = 1 << 20  # files up to this size are read whole; bigger ones stream
BATCH_FILES = 2000  # files per transaction when packing (bounds the WAL)
BATCH_BYTES = 64 << 20
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")

Progress = Callable[[int, int], None]  # (files done, bytes done)


@dataclass
class Report:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # human-readable reasons


# -- pack ---------------------------------------------------------------------------------------

#: (kind, relative path, lstat) of one thing to pack; kind is "dir", "file" or "link".
Entry = tuple[str, str, os.stat_result]

#: What ``pack`` does with a symbolic link: "copy" packs a link to a file inside the source
#: tree as that file's content (the API reads it as a file; other links are skipped), "keep"
#: stores every link as a link with its target as written (format 0010: a mount shows it,
#: the API's ``readlink`` reads it; nothing is followed, so any target is safe to store).
SYMLINK_POLICIES = ("copy", "keep")


def _link_target(path: str) -> str | None:
    """Why the link at ``path`` cannot be stored as one, or None: ``special.link_content``'s
    rules, and a target in UTF-8 (as a pack's names are)."""
    try:
        target = os.readlink(path)
    except OSError as exc:
        return f"not readable ({exc.strerror})"
    try:
        special.link_content(path, target).decode("utf-8")
    except UnicodeDecodeError:
        return "its target is not valid UTF-8"
    except VFSError as exc:
        return exc.strerror or str(exc)
    return None


def scan(src: str, report: Report, symlinks: str = "copy") -> list[Entry]:
    """(kind, relative path, stat) of everything to pack, parents before children; kind is
    "dir", "file" or "link" (``symlinks="keep"``). One ``scandir`` per directory (its entries'
    lstat comes cached)."""
    if symlinks not in SYMLINK_POLICIES:
        raise ValueError(f"symlinks must be one of {SYMLINK_POLICIES}, not {symlinks!r}")
    root = os.path.realpath(src)
    out: list[Entry] = []

    def inside(target: str) -> bool:
        return target == root or target.startswith(root + os.sep)

    stack = [("", root)]
    while stack:
        rel_dir, full_dir = stack.pop()
        try:
            with os.scandir(full_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            report.skipped.append(f"{rel_dir or '.'}: directory not readable ({exc.strerror})")
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            rel = name if not rel_dir else f"{rel_dir}{os.sep}{name}"
            if not name.isprintable() and re.search(r"[\x00-\x1f\x7f]", name):
                report.skipped.append(f"{rel!r}: control characters in the name")
                continue
            if not name.isprintable() and re.search("[\ud800-\udfff]", name):
                report.skipped.append(f"{rel!r}: the name is not valid UTF-8")
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                report.skipped.append(f"{rel}: not readable ({exc.strerror})")
                continue
            if stat.S_ISLNK(st.st_mode) and symlinks == "keep":
                why = _link_target(entry.path)
                if why is None:
                    out.append(("link", rel, st))
                else:
                    report.skipped.append(f"{rel}: symlink not stored: {why}")
            elif stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(entry.path)
                if not inside(target):
                    report.skipped.append(f"{rel}: symlink pointing outside the source tree")
                    continue
                try:
                    tst = os.stat(target)
                except OSError as exc:  # a loop, or a link to nothing
                    report.skipped.append(f"{rel}: symlink that leads nowhere ({exc.strerror})")
                    continue
                if stat.S_ISREG(tst.st_mode):
                    out.append(("file", rel, tst))  # a link to a file inside: its content
                else:
                    report.skipped.append(f"{rel}: symlink to a directory (not followed)")
            elif stat.S_ISDIR(st.st_mode):
                out.append(("dir", rel, st))
                subdirs.append((rel, entry.path))
            elif stat.S_ISREG(st.st_mode):
                out.append(("file", rel, st))
            else:
                report.skipped.append(f"{rel}: special file (fifo, socket or device) skipped")
        stack.extend(reversed(subdirs))
    return out


#: The chunk size of a compressed pack unless one is given: zstd and zlib find more to share
#: in bigger pieces (the standard library's source: 5% smaller at 256 KiB than at 64), and a
#: pack is mostly read whole or streamed (a random read decompresses one chunk).
COMPRESSED_CHUNK = 256 * 1024
#: ... and of a release pack (compressed at ``content.RELEASE_LEVELS`` or above): a big file
#: is compressed as fewer, bigger frames (mpl-data's fonts: 0.8% smaller than at 256 KiB), for
#: a random read that decompresses up to 1 MiB instead of 256 KiB.
RELEASE_CHUNK = 1024 * 1024
#: The SQLite page size of a compressed pack file unless one is given. Compressed values are a
#: few hundred bytes to a few KB: on 4 KiB pages a table's leaf pages hold one to three of
#: them (or their first part, before an overflow chain) and stay partly empty. Measured on the
#: standard library's 1,790 modules (zstd 19, dictionary): 0.98x the size of `zip -9` at
#: 4 KiB pages, 0.95x at 2 KiB, 0.92x at 1 KiB, 0.91x at 512 bytes; on mpl-data 0.92x at
#: 4 KiB, 0.91x at 1 KiB and 512 bytes; packing and full reads took as long at every size
#: (benchmarks/PACKS.md). 1 KiB: the smaller header cost per page for big media.
PACK_PAGE_SIZE = 1024


def pack(src: str, image: str, *, chunk_size: int | None = None,
         progress: Progress | None = None, entries: list[Entry] | None = None,
         tree: str | None = None, compression: str | None = None,
         compression_level: int | None = None, dictionary: bool = False,
         page_size: int | None = None, symlinks: str = "copy",
         solid: bool | None = None) -> Report:
    """Pack the directory ``src`` into a new image file ``image`` (replaced atomically), or
    into the tree ``tree`` of the PostgreSQL database ``image`` (a URL; the tree must be new
    or empty, and is filled in one transaction). ``compression``: "zstd" or "zlib" (chunks of
    ``COMPRESSED_CHUNK`` bytes then, unless ``chunk_size`` says otherwise), at
    ``compression_level`` (default: ``content.LEVELS``, fast; 19 for release packs, whose
    chunks are then ``RELEASE_CHUNK`` bytes). ``dictionary`` (zstd only): train a dictionary
    on the small files first (a sample of up to ``DICT_SAMPLE_BYTES`` of them), store it in the
    pack and compress small files with it. ``page_size``: SQLite's, of a pack file
    (``PACK_PAGE_SIZE`` for a compressed one, SQLite's 4 KiB for one stored as is).
    ``symlinks``: one of ``SYMLINK_POLICIES`` (ignored when ``entries`` is given: they come
    from ``scan``). ``solid``: store the small files in groups at the end
    (``VFS.group_small_files``, format 0013); default: for a compressed release pack."""
    if not os.path.isdir(src):
        raise NotADirectoryError(f"not a directory: {src}")
    if dictionary and compression != "zstd":
        raise ValueError("a dictionary needs compression='zstd'")
    release = compression is not None and isinstance(compression_level, int) \
        and compression_level >= RELEASE_LEVELS[compression_codec(compression)]
    if solid is None:
        solid = release
    elif solid and compression is None:
        raise ValueError("solid needs compression")
    if compression is not None and chunk_size is None:
        chunk_size = RELEASE_CHUNK if release else COMPRESSED_CHUNK
    if compression is not None and page_size is None:
        page_size = PACK_PAGE_SIZE
    if is_postgresql_url(image):
        with tempfile.TemporaryDirectory(prefix="vfs-orm-pack-") as tmpdir:
            local = os.path.join(tmpdir, "pack.vfs")
            report = pack(src, local, chunk_size=chunk_size, progress=progress,
                          entries=entries, symlinks=symlinks)
            with VFS(local, read_only=True) as source, \
                    VFS(image, tree=tree, compression=compression,
                        compression_level=compression_level) as target:
                if dictionary:
                    target.train_dictionary(_samples(src, scan(src, Report())),
                                            recompress=False)
                copy_tree(source, target)
                if solid:
                    target.group_small_files()
            return report
    report = Report()
    items = entries if entries is not None else scan(src, report, symlinks)
    root = os.path.realpath(src)
    tmp = f"{image}.packing-{os.getpid()}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(tmp + suffix):
            os.remove(tmp + suffix)
    try:
        with VFS(tmp, chunk_size=chunk_size, durable=False, compression=compression,
                 compression_level=compression_level, page_size=page_size) as fs:
            if dictionary:
                fs.train_dictionary(_samples(root, items), recompress=False)
            pending_files = pending_bytes = 0
            batch = fs.atomic_batch()
            batch.__enter__()
            try:
                dir_times = []
                for kind, rel, st in items:
                    vpath = "/" + rel.replace(os.sep, "/")
                    if kind == "dir":
                        fs.makedirs(vpath, exist_ok=True)
                        fs.chmod(vpath, st.st_mode & 0o7777)
                        dir_times.append((vpath, st.st_mtime_ns))
                        report.dirs += 1
                    elif kind == "link":
                        fs.symlink(os.readlink(os.path.join(root, rel)), vpath)
                        fs.utime(vpath, ns=(st.st_mtime_ns, st.st_mtime_ns))
                        report.files += 1
                    else:
                        _pack_file(fs, os.path.join(root, rel), vpath, st)
                        report.files += 1
                        report.bytes += st.st_size
                        pending_files += 1
                        pending_bytes += st.st_size
                    if pending_files >= BATCH_FILES or pending_bytes >= BATCH_BYTES:
                        batch.__exit__(None, None, None)
                        batch = fs.atomic_batch()
                        batch.__enter__()
                        pending_files = pending_bytes = 0
                    if progress is not None:
                        progress(report.files, report.bytes)
                for vpath, mtime in reversed(dir_times):  # after their content was written
                    fs.utime(vpath, ns=(mtime, mtime))
            except BaseException as exc:
                batch.__exit__(type(exc), exc, exc.__traceback__)
                raise
            batch.__exit__(None, None, None)
            if solid and fs.group_small_files():
                fs.compact(full=True)  # the rows grouping shrank leave their pages part empty
        os.replace(tmp, image)  # closing checkpointed the WAL into the file
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(tmp + suffix):
                os.remove(tmp + suffix)
    return report


#: At most this many bytes of small files are read to train a pack's dictionary (zstd's
#: advice: about a hundred times the dictionary's size).
DICT_SAMPLE_BYTES = 16 << 20


def _samples(root: str, items: list[Entry]) -> list[bytes]:
    """Small files to train a dictionary on: an even spread of them, up to
    ``DICT_SAMPLE_BYTES``."""
    small = [rel for kind, rel, st in items if kind == "file" and 0 < st.st_size <= DICT_VALUES]
    total = sum(st.st_size for kind, _, st in items if kind == "file" and 0 < st.st_size <= DICT_VALUES)
    step = max(1, -(-total // DICT_SAMPLE_BYTES))
    out = []
    for rel in small[::step]:
        with open(os.path.join(root, rel), "rb") as f:
            out.append(f.read(DICT_VALUES))
    return out


def _pack_file(fs: VFS, full: str, vpath: str, st: os.stat_result) -> None:
    mode = st.st_mode & 0o7777
    with open(full, "rb") as f:
        if st.st_size <= SMALL:
            fs.write_bytes(vpath, f.read(), mode=mode, mtime_ns=st.st_mtime_ns)
            return
        with fs.open(vpath, "wb") as out:
            while True:
                block = f.read(SMALL)
                if not block:
                    break
                out.write(block)
    fs.chmod(vpath, mode)
    fs.utime(vpath, ns=(st.st_mtime_ns, st.st_mtime_ns))


# -- unpack -------------------------------------------------------------------------------------

def safe_name(name: str) -> str | None:
    """Why ``name`` cannot be written as one directory entry, or None if it can."""
    if not name or name in (".", ".."):
        return "empty, '.' or '..'"
    if _UNSAFE.search(name):
        return "contains a path separator or a control character"
    if re.match(r"^[A-Za-z]:", name):
        return "looks like a drive letter"
    return None


def collision_key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


#: Directory levels ``unpack`` descends: deeper ones are skipped and reported (each level
#: holds one open directory descriptor while its content is written; a hostile pack may nest
#: thousands).
MAX_UNPACK_DEPTH = 256


@dataclass
class _Level:
    """A directory being unpacked: its descriptor and the subdirectories still to enter."""

    fd: int
    depth: int
    subdirs: list[tuple[str, str, StatResult, str]]  # (name, vpath, stat, shown)
    next: int = 0


def unpack(fs: VFS, dest: str, *, top: str = "/", progress: Progress | None = None) -> Report:
    """Extract the tree below ``top`` into the directory ``dest`` (created if missing).

    Depth first with an explicit stack (no recursion, one descriptor per level, at most
    ``MAX_UNPACK_DEPTH`` levels); every file and directory is created relative to its
    parent's descriptor, so nothing in ``dest`` (a symlink planted there) is followed."""
    report = Report()
    os.makedirs(dest, exist_ok=True)
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    root_fd = os.open(dest, flags)
    stack: list[_Level] = []
    try:
        stack.append(_Level(root_fd, 0, _unpack_entries(fs, paths.normalize(top), root_fd, "",
                                                        report, progress, True)))
        while stack:
            level = stack[-1]
            if level.next == len(level.subdirs):
                stack.pop()
                if stack:  # a subdirectory is complete: its mode and time, now
                    parent = stack[-1]
                    name, _, st, _ = parent.subdirs[parent.next - 1]
                    try:
                        os.chmod(level.fd, st.st_mode & 0o7777 or 0o755)
                    finally:
                        os.close(level.fd)
                    os.utime(name, ns=(st.st_mtime_ns, st.st_mtime_ns), dir_fd=parent.fd,
                             follow_symlinks=False)
                continue
            name, vpath, st, shown = level.subdirs[level.next]
            level.next += 1
            try:
                child = os.open(name, flags, dir_fd=level.fd)
            except OSError:
                report.skipped.append(f"{shown}: refused, the destination has a symlink or a "
                                      f"non-directory there")
                continue
            try:
                subdirs = _unpack_entries(fs, vpath, child, shown, report, progress,
                                          level.depth + 1 < MAX_UNPACK_DEPTH)
            except BaseException:
                os.close(child)
                raise
            stack.append(_Level(child, level.depth + 1, subdirs))
    finally:
        for level in stack:
            if level.fd != root_fd:
                os.close(level.fd)
        os.close(root_fd)
    return report


def _unpack_entries(fs: VFS, vdir: str, dir_fd: int, rel: str, report: Report,
                    progress: Progress | None, deeper: bool
                    ) -> list[tuple[str, str, StatResult, str]]:
    """Write the files of one directory and make its subdirectories (returned, to enter;
    refused when not ``deeper``: the directory is at the last level unpack goes to)."""
    seen: dict[str, str] = {}
    sub_dirs = []
    for name in fs.listdir(vdir):
        shown = f"{rel}/{name}" if rel else name
        why = safe_name(name)
        if why:
            report.skipped.append(f"{shown!r}: refused, {why}")
            continue
        key = collision_key(name)
        if key in seen:
            report.skipped.append(f"{shown!r}: refused, same name as {seen[key]!r} on a "
                                  f"case-insensitive or normalising file system")
            continue
        seen[key] = name
        vpath = paths.join(vdir, name)
        st = fs.stat(vpath)
        if st.is_directory and not deeper:
            report.skipped.append(f"{shown}: refused, deeper than {MAX_UNPACK_DEPTH} "
                                  f"directory levels")
        elif not st.is_directory and not st.is_file():
            # A pack comes from anyone: its links and nodes stay in it (a mount shows them).
            report.skipped.append(f"{shown}: a symbolic link, FIFO, socket or device, not "
                                  f"extracted")
        elif st.is_directory:
            try:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            except FileExistsError:
                pass
            sub_dirs.append((name, vpath, st, shown))
            report.dirs += 1
        else:
            _write_file(fs, vpath, name, dir_fd, st)
            report.files += 1
            report.bytes += st.st_size
            if progress is not None:
                progress(report.files, report.bytes)
    return sub_dirs


def _write_file(fs: VFS, vpath: str, name: str, dir_fd: int, st: StatResult) -> None:
    tmp = f".{name}.unpacking-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as out, fs.open(vpath, "rb") as src:
            while True:
                block = src.read(SMALL)
                if not block:
                    break
                out.write(block)
            out.flush()
            os.fchmod(out.fileno(), st.st_mode & 0o7777 or 0o644)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces, never follows
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.utime(name, ns=(st.st_mtime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
