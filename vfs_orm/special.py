"""Entries that are neither regular files nor directories (format 0010): symbolic links,
FIFOs, sockets, character and block devices.

Each is stored as a file entry (kind FILE) whose ``st_mode`` type says what it is, with a
small content: a link's target (its bytes as the OS would keep them), a device's number (8
bytes, big-endian), nothing for a FIFO or a socket. So every layer, copy on write, copy
between trees, checkpoint, image and patch carries them as it carries files, with no path
of their own; only opening one as a file is refused (``SpecialFileError``), and a whole
write over one replaces it with a regular file (as ``os.replace`` of a saved file does).

The Python API does not follow links (``readlink`` reads one); a mount hands them to the
kernel, which follows links and serves FIFOs and devices itself. Their contents are
untrusted like any stored value: a target that could not have been written, or a device
number of the wrong length, is a ``CorruptionError``.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

from vfs_orm.errors import (
    CorruptionError,
    InvalidOperationError,
    InvalidPathError,
    NotFoundError,
    SpecialFileError,
)

REGULAR, LINK = stat.S_IFREG, stat.S_IFLNK
#: What ``mknod`` makes besides regular files.
NODES = frozenset({stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK})
DEVICES = frozenset({stat.S_IFCHR, stat.S_IFBLK})
#: The ``st_mode`` types a file entry may have.
FILE_TYPES = frozenset({REGULAR, LINK, *NODES})
TYPE_BITS = stat.S_IFMT(0xFFFF_FFFF)
#: Linux's PATH_MAX: a link target is shorter (its terminating NUL counts).
PATH_MAX = 4096
_DEVICE = struct.Struct(">Q")
#: Device numbers ``mknod`` accepts: Linux's ``dev_t`` as the kernel (and FUSE) carry it is 32
#: bits; the stored 8 bytes leave room.
MAX_DEVICE = 1 << 32

_NAMES = {LINK: "symbolic link", stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket",
          stat.S_IFCHR: "character device", stat.S_IFBLK: "block device"}


def kind_of(mode: int) -> int:
    """The ``st_mode`` type of a file entry's ``mode``."""
    return mode & TYPE_BITS


#: How ``content_manifest`` tells a special entry from a regular file with the same bytes.
_TAGS = {LINK: "link", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "chardev",
         stat.S_IFBLK: "blockdev"}


def manifest_value(mode: int, digest: str) -> str:
    """A file entry's value in a content manifest: its digest, tagged with its type unless it
    is a regular file (a link and a file holding its target are not the same tree)."""
    tag = _TAGS.get(mode & TYPE_BITS)
    return digest if tag is None else f"{tag}:{digest}"


def check_openable(path: str, mode: int) -> None:
    """Raise ``SpecialFileError`` unless the file entry ``path`` of ``mode`` is a regular
    file: the one guard of every path that opens or reads a file's bytes."""
    if mode & TYPE_BITS != REGULAR:
        raise refuse_open(path, mode)


def refuse_open(path: str, mode: int) -> SpecialFileError:
    """The error for opening, as a file, the special entry ``path`` of ``mode``."""
    t = mode & TYPE_BITS
    if t == LINK:
        return SpecialFileError.for_path(
            path, "is a symbolic link (the API does not follow links: use readlink)",
            err=errno.ELOOP)
    return SpecialFileError.for_path(path, f"is a {_NAMES.get(t, 'special file')}, not a "
                                     "regular file")


def link_content(path: str, target: object) -> bytes:
    """What a link to ``target`` stores, or the error ``symlink(2)`` gives."""
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if not isinstance(target, (str, bytes)):
        raise TypeError(f"a link target is a str, not {type(target).__name__}")
    raw = os.fsencode(target)
    if not raw:
        raise NotFoundError.for_path(path, "empty link target")
    if b"\x00" in raw:
        raise InvalidPathError.for_path(path, "a link target holds a NUL character")
    if len(raw) >= PATH_MAX:
        raise InvalidPathError.for_path(path, f"a link target of {len(raw)} bytes "
                                        f"(at most {PATH_MAX - 1})", err=errno.ENAMETOOLONG)
    return raw


def link_target(path: str, content: bytes) -> str:
    """A stored link's target, checked (a database is untrusted)."""
    if not 0 < len(content) < PATH_MAX or b"\x00" in content:
        raise CorruptionError.for_path(path, "damaged database: a symbolic link's target of "
                                       f"{len(content)} bytes")
    return os.fsdecode(content)


def node_content(path: str, mode: int, device: int) -> bytes:
    """What ``mknod(path, mode, device)`` stores for a FIFO, socket or device."""
    t = mode & TYPE_BITS
    if t not in NODES:
        raise InvalidOperationError.for_path(
            path, f"mknod makes FIFOs, sockets, devices and regular files, not mode {mode:#o}")
    if type(device) is not int:
        raise TypeError("device must be an int")
    if t not in DEVICES:
        return b""
    if not 0 <= device < MAX_DEVICE:
        raise InvalidOperationError.for_path(
            path, f"device number {device:#x} (Linux's are 32 bits: os.makedev of a major "
            f"below 4096 and a minor below 2**20)")
    return _DEVICE.pack(device)


def device_of(path: str, mode: int, content: bytes) -> int:
    """A stored device's number (0 for a FIFO or a socket), checked."""
    if mode & TYPE_BITS not in DEVICES:
        return 0
    if len(content) != _DEVICE.size:
        raise CorruptionError.for_path(path, f"damaged database: a device number of "
                                       f"{len(content)} bytes")
    return int(_DEVICE.unpack(content)[0])


def content_problem(mode: int, size: int) -> str | None:
    """What is wrong with the size of a special entry's content, None if nothing (a regular
    file's is anything)."""
    t = mode & TYPE_BITS
    if t == LINK and not 0 < size < PATH_MAX:
        return f"a symbolic link's target of {size} bytes"
    if t in DEVICES and size != _DEVICE.size:
        return f"a device number of {size} bytes"
    if t in NODES - DEVICES and size:
        return f"a {_NAMES[t]} with {size} bytes of content"
    return None
