"""The shapes of the rows the repository hands up, by name.

Statements return plain driver tuples (the fastest thing a driver makes); the resolver turns
the ones that leave it into these named tuples, so no caller indexes a row by position.
"""

from __future__ import annotations

from typing import NamedTuple

from vfs_orm.types import InodeKind

FILE = int(InodeKind.FILE)
DIR = int(InodeKind.DIRECTORY)
WHITEOUT = int(InodeKind.WHITEOUT)

#: How many inode columns a lookup row has (``statements.INODE_COLUMNS``: id, kind, mode,
#: size, chunk_size, ctime_ns, mtime_ns, generation, uid, gid): a ``Node`` after its layer.
N_INODE = 10

#: The layer a node was found in: 0 is the top database, the one that is written.
TOP = 0
#: The name ``which_layer`` and ``stat().layer`` give the top database.
LOCAL = "local"


class Node(NamedTuple):
    """What a path resolves to: the layer providing it and that layer's inode row."""

    layer: int
    id: int
    kind: int
    mode: int
    size: int
    chunk_size: int
    ctime_ns: int
    mtime_ns: int
    generation: int
    #: Owner and group (format 0009); None: not set (the reader's, see ``VFS.stat``).
    uid: int | None
    gid: int | None

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR


class OpenNode(NamedTuple):
    """A node opened for reading, with its first chunk's bytes (inline bytes, or chunk 0;
    None for a file without them), so that open+read of a small file is one query."""

    layer: int
    id: int
    kind: int
    mode: int
    size: int
    chunk_size: int
    ctime_ns: int
    mtime_ns: int
    generation: int
    uid: int | None
    gid: int | None
    first: bytes | None


class Entry(NamedTuple):
    """A directory entry: its name and node."""

    name: str
    node: Node


class TreeEntry(NamedTuple):
    """An entry below a directory: where it is (parent path, name) and its node."""

    parent: str
    name: str
    node: Node


class GlobHit(NamedTuple):
    """A path a glob matched, with its kind."""

    parent: str
    name: str
    kind: int


class Sized(NamedTuple):
    """A file's current size and generation with some of its bytes (a chunk, or part of one;
    None where there are none: a sparse hole)."""

    size: int
    generation: int
    data: bytes | None


class InodeSize(NamedTuple):
    """A file's current size and generation, and whether its bytes are inline in its row."""

    size: int
    generation: int
    inline: bool
    #: Whose chunks it reads (its own id, or the file it shares content with), and whether
    #: its content is shared either way (a write in place copies first).
    key: int = 0
    shared: bool = False
    #: Where chunks ``key`` lacks are read from (format 0014), or None.
    base: int | None = None


class ChunkRow(NamedTuple):
    """One chunk of a file read with its size and generation (idx None: the file has none in
    the range read)."""

    size: int
    generation: int
    idx: int | None
    data: bytes | None


class WholeRow(NamedTuple):
    """One row of a whole-file read: the inode, one chunk, and the inline bytes (not None
    only when the file has no chunks)."""

    id: int
    kind: int
    size: int
    chunk_size: int
    idx: int | None
    data: bytes | None
    inline: bytes | None


class Identity(NamedTuple):
    """A database's own manifest row."""

    uuid: str
    name: str | None
    version: str | None
    description: str | None
    created_ns: int
    modified_ns: int
    chunk_size: int
    compression: str | None = None
    case_insensitive: int | None = None


class EntryRow(NamedTuple):
    """One inode row as ``check()`` and ``info()`` read it (every column they judge)."""

    id: int
    parent: str | None
    name: str
    kind: int
    mode: int
    size: int
    chunk_size: int
    ctime_ns: int
    mtime_ns: int
    generation: int
    uid: int | None
    gid: int | None
    fparent: str | None
    fname: str | None
    refs: int
