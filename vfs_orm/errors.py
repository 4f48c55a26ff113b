"""The exception hierarchy of vfs_orm.

Every error is a :class:`VFSError`, which is an :class:`OSError`; each leaf ALSO derives from the
builtin a caller would catch for the same condition on a real file system, so
``except FileNotFoundError`` works unchanged. Errors keep ``OSError``'s constructor
``(errno, strerror, filename, winerror, filename2)``, which keeps them picklable; build them with
the ``for_path`` classmethods.

This module imports nothing else from the package.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Self

import icontract

__all__ = [
    "AlreadyExistsError",
    "BusyError",
    "ClosedError",
    "ContractError",
    "CorruptionError",
    "CrossLayerError",
    "DirNotEmptyError",
    "FileTooLargeError",
    "ForeignSchemaError",
    "FormatVersionError",
    "InvalidOperationError",
    "InvalidPathError",
    "IsADirError",
    "MountError",
    "NoSpaceError",
    "NotADirError",
    "NotAVFSDatabaseError",
    "NotFoundError",
    "PatchBaseError",
    "PermissionDenied",
    "ReadOnlyError",
    "ReadOnlyLayerError",
    "RootContractError",
    "SpecialFileError",
    "StaleHandleError",
    "VFSError",
    "VirtualFileSystemError",
]


class VFSError(OSError):
    """Root of every vfs_orm error. Never raised bare."""

    default_errno = _errno.EIO

    @classmethod
    def for_path(cls, path: str | None, message: str | None = None, path2: str | None = None,
                 err: int | None = None) -> Self:
        code = cls.default_errno if err is None else err
        text = message or os.strerror(code)
        if path2 is not None:
            return cls(code, text, path, None, path2)
        if path is not None:
            return cls(code, text, path)
        return cls(code, text)


#: The seed library's name for the root error.
VirtualFileSystemError = VFSError


class NotFoundError(VFSError, FileNotFoundError):
    """Nothing at the path (ENOENT); also a ``FileNotFoundError``."""

    default_errno = _errno.ENOENT


class AlreadyExistsError(VFSError, FileExistsError):
    """Something is already at the path (EEXIST); also a ``FileExistsError``."""

    default_errno = _errno.EEXIST


class NotADirError(VFSError, NotADirectoryError):
    """A path goes through a file, or a directory was expected (ENOTDIR); also a
    ``NotADirectoryError``."""

    default_errno = _errno.ENOTDIR


class IsADirError(VFSError, IsADirectoryError):
    """A file was expected and the path is a directory (EISDIR); also an
    ``IsADirectoryError``."""

    default_errno = _errno.EISDIR


class DirNotEmptyError(VFSError, PermissionError):
    """``rmdir`` of a non-empty directory.

    The seed raised a PermissionError here; POSIX says ENOTEMPTY. It is both.
    """

    default_errno = _errno.ENOTEMPTY


class PermissionDenied(VFSError, PermissionError):
    """The operating system refuses access to the database file (EACCES)."""

    default_errno = _errno.EACCES


class ReadOnlyError(VFSError, PermissionError):
    """A write on a VFS opened with ``read_only=True`` (EROFS)."""

    default_errno = _errno.EROFS


class ReadOnlyLayerError(ReadOnlyError):
    """A write that would reach a read-only underlay."""


class CrossLayerError(VFSError):
    """An operation that cannot cross layers (EXDEV, like os.rename across devices)."""

    default_errno = _errno.EXDEV


class InvalidPathError(VFSError, ValueError):
    """A path that can never name a file: NUL or control characters, not a string."""

    default_errno = _errno.EINVAL


class InvalidOperationError(VFSError, ValueError):
    """A well-formed request that makes no sense, e.g. moving a directory into itself."""

    default_errno = _errno.EINVAL


class SpecialFileError(VFSError):
    """Opening, as a file, an entry that is not one: a symbolic link (``ELOOP``: the API
    does not follow links, as ``O_NOFOLLOW``), a FIFO, a socket or a device (``ENXIO``, as
    opening a socket is on Linux)."""

    default_errno = _errno.ENXIO


class PatchBaseError(VFSError, ValueError):
    """A patch pack over a layer that is not the tree it was made from (or over nothing)."""

    default_errno = _errno.EINVAL


class BusyError(VFSError, TimeoutError):
    """The database stayed locked by another writer for longer than the busy timeout."""

    default_errno = _errno.EBUSY


class FormatVersionError(VFSError):
    """The database's format revision is not the one this release reads."""

    default_errno = _errno.EPROTO


class NotAVFSDatabaseError(VFSError):
    """The file is not a vfs_orm database (not SQLite, truncated, or someone else's schema)."""

    default_errno = _errno.EINVAL


class ForeignSchemaError(NotAVFSDatabaseError):
    """The database holds schema objects vfs_orm did not make (triggers, views, tables,
    indexes: code or a disguise planted in a save or a mod), or objects of its format were
    changed. It was refused before any write, untouched; ``objects`` names them.
    ``vfs-orm check`` lists them and ``vfs-orm check --repair`` (``vfs_orm.repair``) removes
    foreign ones from a file you trust."""

    objects: tuple[str, ...] = ()

    @classmethod
    def for_objects(cls, path: str | None, foreign: list[str], changed: list[str]) -> Self:
        parts = []
        if foreign:
            parts.append(f"objects vfs_orm did not make: {', '.join(foreign)}")
        if changed:
            parts.append(f"objects of its format were changed: {', '.join(changed)}")
        err = cls.for_path(path, "refused: a database is data, never code; it holds "
                                 + "; ".join(parts) + " (it was left untouched; "
                                 "`vfs-orm check --repair` removes foreign objects)")
        err.objects = tuple(foreign + changed)
        return err


class CorruptionError(VFSError):
    """The stored data violates an invariant (reported by ``check``)."""

    default_errno = _errno.EIO


class FileTooLargeError(VFSError):
    """A write or truncate past the largest file vfs_orm stores (EFBIG)."""

    default_errno = _errno.EFBIG


class NoSpaceError(VFSError):
    """The disk (or the database's size limit) is full (ENOSPC). Nothing of the failed write
    was committed; removing files or freeing disk space lets writes resume."""

    default_errno = _errno.ENOSPC


class StaleHandleError(VFSError):
    """An open handle whose file was removed or replaced by another writer (ESTALE)."""

    default_errno = _errno.ESTALE


class ClosedError(VFSError, ValueError):
    """An operation on a closed VFS (like I/O on a closed file, also a ValueError)."""

    default_errno = _errno.EBADF


class MountError(VFSError):
    """A FUSE mount could not be made or undone (no binding, no ``/dev/fuse``, no
    ``fusermount3``, the kernel refused, or the mount point is busy)."""

    default_errno = _errno.ENODEV


class ContractError(VFSError, ValueError, icontract.ViolationError):
    """A violated precondition: both an ``icontract.ViolationError`` (as in the seed) and a
    ``ValueError`` (the natural builtin)."""

    default_errno = _errno.EINVAL


class RootContractError(VFSError, PermissionError, icontract.ViolationError):
    """Removing or renaming the root: both a ``ViolationError`` and a ``PermissionError``."""

    default_errno = _errno.EPERM
