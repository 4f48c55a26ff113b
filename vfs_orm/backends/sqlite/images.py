"""Database images as bytes: to and from memory without a temporary file.

- ``load``: bytes (or any iterable of bytes) become the content of an in-memory database named
  in SQLite's ``memdb`` VFS. Checked first: an empty, foreign, random or truncated image is a
  ``NotAVFSDatabaseError``, never a half-loaded database.
- ``blocks``: a consistent snapshot of a database as the bytes of a regular SQLite file.
  In-memory databases are serialised by SQLite (``sqlite3_serialize``). File databases stream
  from disk with bounded memory: a dedicated connection opens a read transaction (its
  snapshot), a checkpoint copies exactly the WAL frames of that snapshot into the database
  file, and while the read transaction stays open no checkpoint can write newer pages there,
  so the file's first ``page_count`` pages ARE the snapshot. If a checkpoint cannot complete
  (another reader holds older frames), the snapshot is copied with SQLite's backup API to a
  temporary file instead, which is then streamed.

Images are marked as rollback-journal databases (header bytes 18-19 = 1): SQLite cannot
deserialize a WAL-mode image, and a regular file needs no ``-wal`` beside it.

SQLite's in-memory databases (``memdb``) grow to at most 1 GiB on this build
(SQLITE_MEMDB_DEFAULT_MAXSIZE): images up to that size load, larger ones are refused. Streaming
a FILE database has no size limit.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from vfs_orm.backends.sqlite.engine import SQLITE_HEADER
from vfs_orm.errors import NotAVFSDatabaseError

MEMDB_MAX = 1 << 30


def collect(data: bytes | bytearray | memoryview | Iterable[bytes]) -> bytes:
    """One contiguous image from bytes or an iterable of bytes-like blocks, checked."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        image = bytes(data)
    elif isinstance(data, str):
        raise TypeError("an image is bytes or an iterable of bytes, not str")
    else:
        try:
            parts = iter(data)
        except TypeError:
            raise TypeError("an image is bytes or an iterable of bytes") from None
        buf = bytearray()
        for part in parts:
            if not isinstance(part, (bytes, bytearray, memoryview)):
                raise TypeError(f"image blocks must be bytes, not {type(part).__name__}")
            buf += part
            if len(buf) > MEMDB_MAX:
                raise NotAVFSDatabaseError.for_path(
                    None, "image larger than SQLite's in-memory limit (1 GiB)")
        image = bytes(buf)
    check(image)
    return as_rollback_journal(image)


def check(image: bytes) -> None:
    if len(image) < 100 or not image.startswith(SQLITE_HEADER):
        raise NotAVFSDatabaseError.for_path(None, "not a SQLite database image"
                                            if image else "empty image")
    page_size = int.from_bytes(image[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise NotAVFSDatabaseError.for_path(None, "corrupt SQLite header")
    pages = int.from_bytes(image[28:32], "big")
    if image[24:28] == image[92:96] and pages and len(image) < pages * page_size:
        raise NotAVFSDatabaseError.for_path(
            None, f"truncated image: {len(image)} bytes, its header says {pages * page_size}")
    if len(image) % page_size:
        raise NotAVFSDatabaseError.for_path(None, "truncated image: not a whole number of pages")
    if len(image) > MEMDB_MAX:
        raise NotAVFSDatabaseError.for_path(
            None, "image larger than SQLite's in-memory limit (1 GiB)")


def as_rollback_journal(image: bytes) -> bytes:
    if image[18:20] == b"\x01\x01":
        return image
    return image[:18] + b"\x01\x01" + image[20:]


def load(image: bytes, uri: str) -> sqlite3.Connection:
    """Put ``image`` into the in-memory database ``uri`` (a memdb name). Returns a connection
    that keeps it alive until the caller's own connection is open; close it then."""
    keep = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    tmp = sqlite3.connect(":memory:")
    try:
        try:
            tmp.deserialize(image)
            tmp.execute("SELECT count(*) FROM sqlite_master").fetchone()
            tmp.backup(keep)
        except sqlite3.DatabaseError as exc:
            keep.close()
            raise NotAVFSDatabaseError.for_path(None, f"not a usable database image: {exc}") from exc
    finally:
        tmp.close()
    return keep


def memory_blocks(raw: sqlite3.Connection, block_size: int) -> Iterator[bytes]:
    image = as_rollback_journal(raw.serialize())
    for i in range(0, len(image), block_size):
        yield image[i:i + block_size]


def file_blocks(path: str, uri_ro: str, writer: Any, block_size: int,
                attempts: int = 5) -> Iterator[bytes]:
    """Stream a consistent snapshot of the database file at ``path``. ``writer()`` gives a
    connection outside any transaction, used for the checkpoint."""
    for _ in range(attempts):
        snap = sqlite3.connect(uri_ro, uri=True, isolation_level=None, check_same_thread=False)
        try:
            snap.execute("BEGIN")
            snap.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot
            page_size, = snap.execute("PRAGMA page_size").fetchone()
            page_count, = snap.execute("PRAGMA page_count").fetchone()
            busy, log, done = writer().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if busy == 0 and log == done:
                yield from _read_file(path, page_size * page_count, block_size)
                return
        finally:
            snap.close()
    # Could not get the WAL folded in while holding the snapshot: copy it with the backup
    # API (still a consistent snapshot, one temporary file, bounded memory).
    fd, tmp = tempfile.mkstemp(suffix=".vfs-image")
    os.close(fd)
    try:
        src = sqlite3.connect(uri_ro, uri=True)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst, pages=256)
        finally:
            dst.close()
            src.close()
        yield from _read_file(tmp, os.path.getsize(tmp), block_size)
    finally:
        os.unlink(tmp)


def _read_file(path: str, length: int, block_size: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        left, first = length, True
        while left > 0:
            block = f.read(min(block_size, left))
            if not block:
                raise NotAVFSDatabaseError.for_path(path, "database file shorter than its pages")
            if first:
                block = as_rollback_journal(block) if len(block) >= 20 else block
                first = False
            left -= len(block)
            yield block
