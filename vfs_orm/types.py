"""Plain value types returned by the public API."""

from __future__ import annotations

import enum
import os
import stat as _stat
from datetime import UTC, datetime, timedelta
from typing import NamedTuple


class InodeKind(enum.IntEnum):
    """What an inode row is. Stored as an integer in ``vfs_inodes.kind``."""

    FILE = 1
    DIRECTORY = 2
    WHITEOUT = 3  # an entry of a lower layer deleted in this one


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None)
FILE_MODE = _stat.S_IFREG | 0o644
DIR_MODE = _stat.S_IFDIR | 0o755


def _iso(ns: int) -> str:
    """Local ISO time with exact microseconds (float seconds would round them). Times the
    platform's local-time conversion cannot represent (a stored timestamp in year 1 or 2262)
    fall back to UTC arithmetic, which covers every 64-bit value."""
    try:
        return datetime.fromtimestamp(ns // 10**9).replace(
            microsecond=(ns // 1000) % 10**6).isoformat()
    except (OverflowError, OSError, ValueError):
        try:
            return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()
        except OverflowError:
            return (datetime.min if ns < 0 else datetime.max).isoformat()


class StatResult(NamedTuple):
    """What ``VFS.stat`` returns: ``os.stat_result``'s names plus the seed library's aliases.

    A named tuple, as the seed's was (and cheap to build: ``stat`` is a hot path).
    ``st_mtime``/``st_ctime`` are float seconds like ``os.stat``; the ``*_ns`` fields are
    exact. ``st_ctime`` is the creation time (as the seed's ``created_at``), not a change time.
    ``st_uid``/``st_gid`` are the stored owner and group (``VFS.chown``, format 0009), or,
    where none is stored (``owner_uid``/``owner_gid`` None), the calling process's.
    """

    st_size: int
    st_ctime_ns: int
    st_mtime_ns: int
    st_mode: int
    source_layer: str = "local"
    st_ino: int = 0
    #: The stored owner and group; None: not set (``st_uid``/``st_gid`` give the process's).
    owner_uid: int | None = None
    owner_gid: int | None = None

    @property
    def st_uid(self) -> int:
        return _process_uid() if self.owner_uid is None else self.owner_uid

    @property
    def st_gid(self) -> int:
        return _process_gid() if self.owner_gid is None else self.owner_gid

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9

    @property
    def st_ctime(self) -> float:
        return self.st_ctime_ns / 1e9

    @property
    def st_atime(self) -> float:
        return self.st_mtime_ns / 1e9

    @property
    def st_atime_ns(self) -> int:
        return self.st_mtime_ns

    @property
    def st_nlink(self) -> int:
        return 1

    # The seed library's aliases (its timestamps were ISO strings; these stay ISO strings).
    @property
    def size(self) -> int:
        return self.st_size

    @property
    def created_at(self) -> str:
        return _iso(self.st_ctime_ns)

    @property
    def modified_at(self) -> str:
        return _iso(self.st_mtime_ns)

    @property
    def is_directory(self) -> bool:
        return _stat.S_ISDIR(self.st_mode)

    def is_dir(self) -> bool:
        return _stat.S_ISDIR(self.st_mode)

    def is_file(self) -> bool:
        return _stat.S_ISREG(self.st_mode)


def _process_uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def _process_gid() -> int:
    return os.getgid() if hasattr(os, "getgid") else 0


class DirEntry:
    """One entry of ``VFS.scandir``: ``os.DirEntry``'s interface, with the metadata already
    read (the listing's one statement returned it)."""

    __slots__ = ("_stat", "name", "path")

    def __init__(self, path: str, name: str, stat: StatResult) -> None:
        self.path = path
        self.name = name
        self._stat = stat

    def stat(self, *, follow_symlinks: bool = True) -> StatResult:
        return self._stat

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return _stat.S_ISDIR(self._stat.st_mode)

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return _stat.S_ISREG(self._stat.st_mode)

    def is_symlink(self) -> bool:
        return _stat.S_ISLNK(self._stat.st_mode)

    def inode(self) -> int:
        return self._stat.st_ino

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.path!r}>"


class CheckpointInfo(NamedTuple):
    """One checkpoint, as ``VFS.checkpoints()`` lists it."""

    name: str
    created_ns: int  #: when it was taken (nanoseconds since the epoch)
    files: int  #: files it holds
    alone_bytes: int  #: stored bytes only it holds: what dropping it frees
    auto: bool  #: made without a name, so subject to ``keep=`` retention

    @property
    def created(self) -> float:
        """When it was taken, in seconds since the epoch."""
        return self.created_ns / 1e9
