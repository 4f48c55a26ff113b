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
