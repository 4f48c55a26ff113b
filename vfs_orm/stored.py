"""Values read from a database are untrusted: the checks every stored value passes on its way
out of the repository.

Saves and mods come from players, so a database can hold anything SQLite can store: a size of
2**40 or of ``"12"``, a timestamp of ``1e300``, a mode of -1, a name that is a BLOB, chunk bytes
stored as TEXT. SQLite's CHECK constraints only guard writes, and a damaged or crafted file
never went through them. Every row the repository hands to the namespace is checked here
first, so what is wrong with stored data surfaces as a ``CorruptionError`` naming the entry,
never as a ``TypeError``, ``OverflowError`` or ``MemoryError`` deep inside a read, and never
as wrong bytes of the wrong type handed to the caller. ``check()`` reports the same rules row
by row (``row_problems``).

The checks are a handful of type and range tests per row (well under a microsecond): the hot
read paths pay them once per statement.
"""

from __future__ import annotations

import errno
import stat
from collections.abc import Sequence
from typing import Any

from vfs_orm import special
from vfs_orm.errors import CorruptionError, VFSError

#: The largest file vfs_orm stores, exclusive: 1 TiB. A write or truncate past it is refused
#: (EFBIG, as a file system's maximum file size is); a stored size at or past it is damage.
MAX_FILE_SIZE = 1 << 40
#: Chunk sizes a stored file may have (the legacy format's inferred ones can be small).
MAX_CHUNK_SIZE = 64 * 1024 * 1024
#: ``st_mode`` is a C ``mode_t`` (unsigned 32-bit) for ``stat`` and friends.
MAX_MODE = 0xFFFF_FFFF
#: A uid or gid (format 0009) is a C ``uid_t``/``gid_t`` (unsigned 32-bit) other than
#: ``(uid_t) -1``, which ``chown`` reads as "leave unchanged".
MAX_OWNER = 0xFFFF_FFFE

FILE, DIRECTORY, WHITEOUT = 1, 2, 3
_TYPE_BITS, _FILE_TYPES, _DIR_TYPE = special.TYPE_BITS, special.FILE_TYPES, stat.S_IFDIR


def path_of(parent: Any, name: Any) -> str | None:
    """The path an entry (parent, name) names, if both are text."""
    if isinstance(parent, str) and isinstance(name, str):
        if parent == "" and name == "":
            return "/"
        return (parent if parent.endswith("/") else parent + "/") + name
    return None


def damaged(what: str, where: str | None = None) -> CorruptionError:
    return CorruptionError.for_path(where, f"damaged database: {what}")


def inode_problem(row: Sequence[Any], at: int = 0) -> str | None:
    """What is wrong with the inode columns ``row[at:at + 10]`` (id, kind, mode, size,
    chunk_size, ctime_ns, mtime_ns, generation, uid, gid), None if nothing."""
    ident, kind, mode, size, cs, ctime, mtime, gen, uid, gid = row[at:at + 10]
    if type(ident) is not int:
        return f"inode id {ident!r:.40}"
    if type(kind) is not int or not FILE <= kind <= WHITEOUT:
        return f"inode {ident}: kind {kind!r:.40}"
    if type(mode) is not int or not 0 <= mode <= MAX_MODE or not type_ok(kind, mode):
        return f"inode {ident}: mode {mode!r:.40}"
    if type(size) is not int or not 0 <= size < MAX_FILE_SIZE:
        return f"inode {ident}: size {size!r:.40}"
    odd = special.content_problem(mode, size) if kind == FILE else None
    if odd is not None:  # a link, FIFO, socket or device (format 0010) of the wrong size
        return f"inode {ident}: {odd}"
    if type(cs) is not int or not 0 <= cs <= MAX_CHUNK_SIZE or (cs == 0 and kind == FILE):
        return f"inode {ident}: chunk size {cs!r:.40}"
    if type(ctime) is not int or type(mtime) is not int:
        return f"inode {ident}: timestamps {ctime!r:.30}, {mtime!r:.30}"
    if type(gen) is not int:
        return f"inode {ident}: generation {gen!r:.40}"
    if not owner_ok(uid) or not owner_ok(gid):
        return f"inode {ident}: owner {uid!r:.30}, group {gid!r:.30}"
    return None


def type_ok(kind: int, mode: int) -> bool:
    """Whether ``mode``'s type bits fit the entry's kind: a directory's say directory, a
    file's regular file or one of the special entries (format 0010)."""
    bits = mode & special.TYPE_BITS
    if kind == FILE:
        return bits in special.FILE_TYPES
    return kind != DIRECTORY or bits == _DIR_TYPE


def owner_ok(value: Any) -> bool:
    """A stored uid or gid: NULL (not set) or an id in [0, MAX_OWNER]."""
    return value is None or (type(value) is int and 0 <= value <= MAX_OWNER)


def inode(row: Any, at: int = 0, parent: Any = None, name: Any = None) -> Any:
    """``row`` itself if its inode columns starting at ``at`` are sound (None passes);
    ``parent``/``name`` name the entry in the error."""
    if row is None:
        return None
    # The common case inline (a hot path: every stat, open and lookup comes through here).
    kind, size, cs = row[at + 1], row[at + 3], row[at + 4]
    mode, uid, gid = row[at + 2], row[at + 8], row[at + 9]
    if (type(kind) is int and FILE <= kind <= WHITEOUT and type(size) is int
            and 0 <= size < MAX_FILE_SIZE and type(cs) is int and 0 < cs <= MAX_CHUNK_SIZE
            and type(mode) is int and 0 <= mode <= MAX_MODE and type(row[at]) is int
            and (mode & _TYPE_BITS in _FILE_TYPES if kind == FILE else
                 kind != DIRECTORY or mode & _TYPE_BITS == _DIR_TYPE)
            and type(row[at + 5]) is int and type(row[at + 6]) is int
            and type(row[at + 7]) is int
            and (uid is None or (type(uid) is int and 0 <= uid <= MAX_OWNER))
            and (gid is None or (type(gid) is int and 0 <= gid <= MAX_OWNER))):
        return row
    problem = inode_problem(row, at)
    if problem is None:
        return row  # a directory or whiteout with chunk size 0
    raise damaged(problem, path_of(parent, name))


def bad_name(name: Any) -> bool:
    """Not one path segment: a listing would name something no path can reach (or, for
    "" and ".", the directory itself: a walk would never end)."""
    return type(name) is not str or not name or "/" in name or name in (".", "..")


def inodes(rows: list[Any], at: int, where: str | None = None) -> list[Any]:
    """Rows whose inode columns from ``at`` on are sound, the column before them a name and
    any before that a parent path (a leading priority number is allowed). Entries whose name
    is not one path segment are left out: no path can reach them, and a walk over "" or ".."
    would never end (``check()`` lists them)."""
    bad = False
    for row in rows:
        inode(row, at)
        if bad_name(row[at - 1]):
            bad = True
        for k in range(at - 1):
            if type(row[k]) is not str and not (k == 0 and type(row[k]) is int):
                raise damaged(f"a parent that is not text: {row[k]!r:.40}", where)
    return [r for r in rows if not bad_name(r[at - 1])] if bad else rows


def names(values: list[Any], where: str | None = None) -> list[Any]:
    """Entry names of a listing, without those that are not one path segment."""
    for v in values:
        if bad_name(v):
            return [v for v in values if not bad_name(v)]
    return values


def texts(values: Sequence[Any], where: str | None = None) -> None:
    """Parent paths and other stored text."""
    for v in values:
        if type(v) is not str:
            raise damaged(f"a path that is not text: {v!r:.40}", where)


def content(data: Any, where: str | None = None) -> Any:
    """Stored bytes (a chunk, inline data, a slice of either): ``bytes`` or None."""
    if data is None or type(data) is bytes:
        return data
    raise damaged(f"file content stored as {type(data).__name__}, not bytes", where)


def sized(size: Any, where: str | None = None) -> int:
    if type(size) is int and 0 <= size < MAX_FILE_SIZE:
        return size
    raise damaged(f"file size {size!r:.40}", where)


def generation(gen: Any, where: str | None = None) -> int:
    if type(gen) is int:
        return gen
    raise damaged(f"generation {gen!r:.40}", where)


def buffer(size: int, where: str | None = None) -> bytearray:
    """The zeroed buffer a whole-file read fills: a valid file can be larger than memory (a
    sparse one costs nothing to store), which is ENOMEM, not a MemoryError from deep inside."""
    try:
        return bytearray(size)
    except MemoryError:
        raise VFSError.for_path(where, f"{size} bytes do not fit in memory",
                                err=errno.ENOMEM) from None


def row_problems(row: Sequence[Any]) -> str | None:
    """For ``check()``: (id, parent, name, kind, mode, size, chunk_size, ctime_ns, mtime_ns,
    generation, uid, gid) of one entry."""
    ident, parent, name, kind, mode, size, cs, ctime, mtime, gen, uid, gid = row[:12]
    if parent is not None and type(parent) is not str:
        return f"inode {ident!r:.20}: parent {parent!r:.40} is not text"
    if type(name) is not str:
        return f"inode {ident!r:.20}: name {name!r:.40} is not text"
    return inode_problem((ident, kind, mode, size, cs, ctime, mtime, gen, uid, gid))


__all__ = [
    "MAX_CHUNK_SIZE",
    "MAX_FILE_SIZE",
    "bad_name",
    "buffer",
    "content",
    "damaged",
    "generation",
    "inode",
    "inode_problem",
    "inodes",
    "names",
    "owner_ok",
    "path_of",
    "row_problems",
    "sized",
    "texts",
]
