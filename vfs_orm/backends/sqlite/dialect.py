"""SQLite's side of the shared SQL core (``backends/sql``): the dialect (``?`` parameters),
the hooks the core's statements leave to a backend (GLOB, ``group_concat``, ``INSERT OR
IGNORE``, the upsert), and what pysqlite reports back (``lastrowid``, ``total_changes``,
``data_version``, incremental BLOB I/O), plus SQLite's own checks (``PRAGMA
integrity_check``, ``typeof``).

Every statement text is the core's, compiled here for SQLite once per process (the factories
below are cached).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, insert, literal_column, select
from sqlalchemy.dialects import sqlite as sqlite_dialect

from vfs_orm.backends.sql.statements import (
    CHUNK_SPAN,
    CheckRepository,
    InodeRepository,
    ManifestRepository,
    StackRepository,
    compiled_once,
)
from vfs_orm.content import BLOCK, PLAIN, Content, Damage
from vfs_orm.paths import fold, split

#: pysqlite's positional ``?`` parameters.
DIALECT: Any = sqlite_dialect.dialect(paramstyle="qmark")


class SQLiteInodeRepository(InodeRepository):
    """Inodes and chunks of one schema of a SQLite connection (``main``, or an attached
    underlay's alias)."""

    dialect = DIALECT
    blob_reads = True

    def __init__(self, schema: str = "main", content: Content = PLAIN) -> None:
        super().__init__(schema, content)
        self._data_version = f'PRAGMA "{schema}".data_version'

    # -- dialect hooks ----------------------------------------------------------------------
    def _matches(self, column: Any, pattern: Any) -> Any:
        return column.op("GLOB")(pattern)

    def _pattern(self, glob: str) -> str:
        """SQLite's GLOB takes a glob as it is."""
        return glob

    def _joined(self, column: Any, separator: Any) -> Any:
        return func.group_concat(column, separator)

    def _insert_ignoring(self, table: Table) -> Any:
        return insert(table).prefix_with("OR IGNORE")

    _conflict_insert = staticmethod(sqlite_dialect.insert)

    # -- what pysqlite reports back ---------------------------------------------------------
    def data_version(self, raw: sqlite3.Connection) -> int:
        """Changes whenever ANOTHER connection commits to this schema's database."""
        version, = raw.execute(self._data_version).fetchone()
        return version

    def read_blob(self, raw: sqlite3.Connection, inode_id: int, idx: int, off: int,
                  length: int, data_version: int) -> bytes | None:
        """See ``InodeRepository.read_blob``: pysqlite's ``blobopen``."""
        rowid = inode_id * CHUNK_SPAN + idx  # the file's chunk key (see ``InodeSize.key``)
        try:
            blob = raw.blobopen(self.chunks.name, "data", rowid, readonly=True,
                                name=self.schema)
        except sqlite3.OperationalError:
            return None
        with blob:
            version, = raw.execute(self._data_version).fetchone()
            if version != data_version:
                return None
            if not self.content.verify:
                return blob[off:off + length]  # type: ignore[return-value]  # typeshed: int
            start = off - off % BLOCK
            asked = off + length + BLOCK - 1 - (off + length - 1) % BLOCK
            end = min(asked, len(blob))
            part = blob[start:end] if start < end else b""
            with raw.blobopen(self.chunks.name, "sums", rowid, readonly=True,
                              name=self.schema) as sums_blob:
                sums = sums_blob.read()
        try:
            self.content.decode_part(part, sums, start, start, rowid, asked - start)
        except Damage as exc:
            exc.idx = idx
            raise
        return part[off - start:off - start + length]  # type: ignore[index]

    def insert(self, raw: sqlite3.Connection, parent: str | None, name: str, kind: int, mode: int,
               size: int, chunk_size: int, ctime: int, mtime: int, owner: str | None = None,
               data: bytes | None = None, digest: bytes | None = None,
               ids: tuple[int | None, int | None] = (None, None)) -> int:
        folded = (None, None) if parent is None else (fold(parent), fold(name))
        cur = raw.execute(self._insert.sql,
                          (parent, name, kind, mode, size, chunk_size, ctime, mtime, owner,
                           *folded, *ids, *self._stored(data, digest)))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def create_file(self, raw: sqlite3.Connection, parent: str, name: str, mode: int, size: int,
                    chunk_size: int, now: int, data: bytes | None = None,
                    digest: bytes | None = None) -> int | None:
        """Insert a new file (with its inline bytes ``data``, or none: the caller writes
        chunks, whose ``digest`` it gives) if ``parent`` is a directory and ``parent/name``
        is free; its id, or None (nothing changed) otherwise."""
        pp, pn = split(parent)
        cur = raw.execute(self._create_file.sql,
                          (parent, name, pp, pn, mode, size, chunk_size, now, now, fold(parent),
                           fold(name), *self._stored(data, digest)))
        return cur.lastrowid if cur.rowcount == 1 else None

    def create_file_in_dir(self, raw: sqlite3.Connection, parent: str, name: str, mode: int,
                           size: int, chunk_size: int, now: int, data: bytes | None = None,
                           digest: bytes | None = None) -> int | None:
        """``create_file`` in a directory the caller knows exists in this transaction (no
        probe of the parent): its id, or None if ``parent/name`` is taken."""
        cur = raw.execute(self._create_file_in_dir.sql,
                          (parent, name, mode, size, chunk_size, now, now, fold(parent),
                           fold(name), *self._stored(data, digest)))
        return cur.lastrowid if cur.rowcount == 1 else None

    def create_files(self, raw: sqlite3.Connection, files: Sequence[tuple[str, str, bytes]],
                     mode: int, chunk_size: int, now: int) -> int:
        """New files with inline bytes for many (parent, name, data) in ONE executemany, in
        directories the caller has made or checked in this transaction (a root-level
        ``parent`` must be "/", never ""); how many rows were inserted (an existing entry
        is ignored)."""
        rows = [(parent, name, mode, len(data), chunk_size, now, now, fold(parent), fold(name),
                 *self._stored(data, None)) for parent, name, data in files]
        before = raw.total_changes
        raw.executemany(self._create_file_in_dir.sql, rows)
        return raw.total_changes - before

    def create_dirs(self, raw: sqlite3.Connection, dirs: Sequence[str], mode: int,
                    now: int) -> int:
        """New directories at the normalised ``dirs`` (parents listed before children), in
        ONE executemany; how many rows were inserted. A path that exists (as anything) or
        whose parent is not a directory is skipped, so a short count means: check them."""
        rows = []
        for path in dirs:
            parent, name = split(path)
            rows.append((parent, name, *split(parent), mode, now, now, fold(parent),
                         fold(name)))
        before = raw.total_changes
        raw.executemany(self._create_dir.sql, rows)
        return raw.total_changes - before


@compiled_once
def inode_repository(schema: str = "main", content: Content = PLAIN) -> SQLiteInodeRepository:
    """The repository of one schema: its statements are compiled once per process."""
    return SQLiteInodeRepository(schema, content)


class SQLiteStackRepository(StackRepository):
    """The layer stack's statements over the schemas attached to one SQLite connection."""

    dialect = DIALECT

    def _matches(self, column: Any, pattern: Any) -> Any:
        return column.op("GLOB")(pattern)

    def _not_matches(self, column: Any, pattern: Any) -> Any:
        return column.op("NOT GLOB")(pattern)

    def _pattern(self, glob: str) -> str:
        return glob


@compiled_once
def stack_repository(entries: tuple[tuple[int, str], ...], content: Content = PLAIN,
                     folded: bool = False) -> SQLiteStackRepository:
    return SQLiteStackRepository(entries, content, folded)


class SQLiteManifestRepository(ManifestRepository):
    """Layer manifests of a SQLite database: a forged one lacking this revision's tables or
    columns makes pysqlite raise OperationalError."""

    missing_table = (sqlite3.OperationalError,)

    def __init__(self, schema: str = "main") -> None:
        super().__init__(schema, DIALECT)


class SQLiteCheckRepository(CheckRepository):
    """The format's invariants, plus SQLite's own check of its pages, foreign keys and
    column types."""

    def __init__(self, schema: str = "main") -> None:
        super().__init__(schema, DIALECT)
        i, c = self.inodes, self.chunks
        # Content that is not a BLOB (TEXT or numbers where bytes belong).
        self._not_blobs = self._compile(
            select(i.c.parent, i.c.name, c.c.idx, func.typeof(c.c.data))
            .select_from(c.join(i, i.c.id == c.c.inode_id))
            .where(func.typeof(c.c.data) != literal_column("'blob'"))
            .union_all(
                select(i.c.parent, i.c.name, literal_column("NULL"), func.typeof(i.c.data))
                .where(func.typeof(i.c.data).not_in([literal_column("'blob'"),
                                                     literal_column("'null'")]))), ())

    def integrity(self, raw: sqlite3.Connection, quick: bool = False) -> list[str]:
        pragma = "quick_check" if quick else "integrity_check"
        return [line for line, in raw.execute(f"PRAGMA {pragma}")]

    def foreign_keys(self, raw: sqlite3.Connection) -> list[tuple[Any, ...]]:
        return raw.execute("PRAGMA foreign_key_check").fetchall()

    def content_not_bytes(self, raw: sqlite3.Connection, limit: int = 20
                          ) -> list[tuple[Any, ...]]:
        """(parent, name, chunk index or None for inline bytes, SQLite type)."""
        return raw.execute(self._not_blobs.sql).fetchmany(limit)

    @staticmethod
    def pragmas(raw: sqlite3.Connection) -> dict[str, Any]:
        out = {}
        for name in ("page_size", "page_count", "freelist_count", "journal_mode",
                     "application_id", "auto_vacuum"):
            out[name], = raw.execute(f"PRAGMA {name}").fetchone()
        return out
