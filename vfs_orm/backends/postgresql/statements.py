"""The repository's statements on PostgreSQL: the shared SQL core's statements (``backends/sql``)
compiled for PostgreSQL, with the few that differ replaced.

What differs: globs are POSIX regular expressions (``~``) instead of SQLite's GLOB; a create
that must skip a taken name or a parent that is not a directory is ``INSERT ... SELECT ... WHERE
EXISTS ... ON CONFLICT DO NOTHING RETURNING id`` (PostgreSQL raises a CHECK violation even under
``ON CONFLICT DO NOTHING``); new ids come back with ``RETURNING``; group concatenation is
``string_agg``; there is no incremental BLOB I/O (random reads slice chunks with
``substring()`` in SQL) and no ``data_version``.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    Text,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql as pg_dialect

from vfs_orm import stored
from vfs_orm.backends.sql.statements import (
    CHUNK_SPAN,
    INODE_COLUMNS,
    CheckRepository,
    InodeRepository,
    ManifestRepository,
    StackRepository,
    _q,
)
from vfs_orm.content import INLINE, PLAIN, Content
from vfs_orm.paths import fold, split
from vfs_orm.rows import N_INODE
from vfs_orm.types import InodeKind

#: Positional ``%s`` parameters, as psycopg takes them.
DIALECT: Any = pg_dialect.dialect(paramstyle="format")  # type: ignore[no-untyped-call]
#: PostgreSQL's own ``$n`` parameters, a repeated parameter bound once.
NATIVE_DIALECT: Any = pg_dialect.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]

_FILE: Any = literal_column(str(int(InodeKind.FILE)))
_DIR: Any = literal_column(str(int(InodeKind.DIRECTORY)))


@functools.lru_cache(maxsize=512)
def glob_to_regex(glob: str) -> str:
    """A SQLite GLOB pattern as an anchored POSIX regular expression: ``*`` any run, ``?`` one
    character, ``[...]`` a set (``[^...]`` its complement), everything else literal."""
    out = ["^"]
    i, n = 0, len(glob)
    while i < n:
        ch = glob[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = glob.find("]", i + 2 if glob[i + 1:i + 2] in ("]", "^") else i + 1)
            if end < 0:
                out.append(r"\[")
            else:
                body = glob[i + 1:end]
                neg = body.startswith("^")
                if neg:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append("[" + ("^" if neg else "") + body + "]")
                i = end
        else:
            out.append(re.sub(r"([.^$|()+{}\\\[\]*?])", r"\\\1", ch))
        i += 1
    out.append("$")
    return "".join(out)


class PGInodeRepository(InodeRepository):
    """Inodes and chunks of one tree (a PostgreSQL schema)."""

    dialect = DIALECT
    blob_reads = False

    def __init__(self, schema: str, content: Content = PLAIN) -> None:
        super().__init__(schema, content)
        self.blob_reads = False
        i = self.inodes
        p: Any = bindparam("parent")
        n: Any = bindparam("name")
        self._insert = self._compile(
            insert(i).values(parent=p, name=n, kind=bindparam("kind"), mode=bindparam("mode"),
                             size=bindparam("size"), chunk_size=bindparam("chunk_size"),
                             ctime_ns=bindparam("ctime"), mtime_ns=bindparam("mtime"),
                             generation=literal_column("0"), owner=bindparam("owner"),
                             uid=bindparam("uid"), gid=bindparam("gid"),
                             **_KEYS, **_CONTENT).returning(i.c.id),
            ("parent", "name", "kind", "mode", "size", "chunk_size", "ctime", "mtime", "owner",
             "fparent", "fname", "uid", "gid", "digest", "codec", "sums", "data"))
        parent_is_dir = (select(literal_column("1")).select_from(i)
                         .where(i.c.parent == bindparam("pp"), i.c.name == bindparam("pn"),
                                i.c.kind == _DIR).exists())

        def new_row(kind: Any, size: Any, cs: Any, *content: Any) -> Any:
            # Typed: in a SELECT list an untyped parameter (or NULL) would be text.
            return select(cast(p, Text), cast(n, Text), kind, cast(bindparam("mode"), BigInteger),
                          cast(size, BigInteger), cast(cs, Integer),
                          cast(bindparam("ctime"), BigInteger),
                          cast(bindparam("mtime"), BigInteger), literal_column("0"),
                          cast(bindparam("fparent"), Text), cast(bindparam("fname"), Text),
                          *content)

        cols = ["parent", "name", "kind", "mode", "size", "chunk_size", "ctime_ns", "mtime_ns",
                "generation", "fparent", "fname"]
        self._create_file = self._compile(
            pg_dialect.insert(i).from_select(
                [*cols, "digest", "codec", "sums", "data"],
                new_row(_FILE, bindparam("size"), bindparam("chunk_size"),
                        cast(bindparam("digest"), LargeBinary),
                        cast(bindparam("codec"), Integer), cast(bindparam("sums"), LargeBinary),
                        cast(bindparam("data"), LargeBinary)).where(parent_is_dir))
            .on_conflict_do_nothing().returning(i.c.id),
            ("parent", "name", "mode", "size", "chunk_size", "ctime", "mtime", "fparent",
             "fname", "digest", "codec", "sums", "data", "pp", "pn"))
        self._create_file_in_dir = self._compile(
            pg_dialect.insert(i).values(
                parent=p, name=n, kind=_FILE, mode=bindparam("mode"), size=bindparam("size"),
                chunk_size=bindparam("chunk_size"), ctime_ns=bindparam("ctime"),
                mtime_ns=bindparam("mtime"), generation=literal_column("0"), **_KEYS,
                **_CONTENT)
            .on_conflict_do_nothing().returning(i.c.id),
            ("parent", "name", "mode", "size", "chunk_size", "ctime", "mtime", "fparent",
             "fname", "digest", "codec", "sums", "data"))
        self._create_dir = self._compile(
            pg_dialect.insert(i).from_select(
                cols, new_row(_DIR, literal_column("0"), literal_column("0"))
                .where(parent_is_dir))
            .on_conflict_do_nothing().returning(i.c.id),
            ("parent", "name", "mode", "ctime", "mtime", "fparent", "fname", "pp", "pn"))
        self._insert_ingested = (
            f'INSERT INTO "{schema}".vfs_inodes (parent, name, kind, mode, size, chunk_size, '
            f"ctime_ns, mtime_ns, generation, fparent, fname, digest, codec, sums, data) "
            f"SELECT parent, name, {int(InodeKind.FILE)}, %s::bigint, size, %s::integer, "
            f"%s::bigint, %s::bigint, 0, fparent, fname, digest, codec, sums, data "
            f"FROM pg_temp.vfs_ingest ORDER BY seq "
            f"ON CONFLICT DO NOTHING")

    # -- dialect hooks ----------------------------------------------------------------------
    def _matches(self, column: Any, pattern: Any) -> Any:
        return column.op("~")(pattern)

    def _pattern(self, glob: str) -> str:
        return glob_to_regex(glob)

    def _joined(self, column: Any, separator: Any) -> Any:
        return func.string_agg(column, separator)

    def _insert_ignoring(self, table: Any) -> Any:
        return pg_dialect.insert(table).on_conflict_do_nothing()

    _conflict_insert = staticmethod(pg_dialect.insert)

    # -- what SQLite does with lastrowid, total_changes, BLOB I/O, data_version -------------
    _versions = itertools.count(1)

    def data_version(self, raw: Any) -> int:
        """No such counter: every check counts as "something may have changed"."""
        return next(self._versions)

    def read_blob(self, raw: Any, inode_id: int, idx: int, off: int, length: int,
                  data_version: int) -> bytes | None:
        return None

    def insert(self, raw: Any, parent: str | None, name: str, kind: int, mode: int,
               size: int, chunk_size: int, ctime: int, mtime: int, owner: str | None = None,
               data: bytes | None = None, digest: bytes | None = None,
               ids: tuple[int | None, int | None] = (None, None)) -> int:
        folded = (None, None) if parent is None else (fold(parent), fold(name))
        row = raw.execute(self._insert.sql, (parent, name, kind, mode, size, chunk_size, ctime,
                                             mtime, owner, *folded, *ids,
                                             *self._stored(data, digest))
                          ).fetchone()
        ident, = row  # RETURNING id
        return int(ident)

    def create_file(self, raw: Any, parent: str, name: str, mode: int, size: int,
                    chunk_size: int, now: int, data: bytes | None = None,
                    digest: bytes | None = None) -> int | None:
        pp, pn = split(parent)
        row = raw.execute(self._create_file.sql, (parent, name, mode, size, chunk_size, now,
                                                  now, fold(parent), fold(name),
                                                  *self._stored(data, digest), pp, pn)
                          ).fetchone()
        if row is None:  # ON CONFLICT DO NOTHING: nothing inserted
            return None
        ident, = row  # RETURNING id
        return int(ident)

    def create_file_in_dir(self, raw: Any, parent: str, name: str, mode: int, size: int,
                           chunk_size: int, now: int, data: bytes | None = None,
                           digest: bytes | None = None) -> int | None:
        row = raw.execute(self._create_file_in_dir.sql,
                          (parent, name, mode, size, chunk_size, now, now, fold(parent),
                           fold(name), *self._stored(data, digest))).fetchone()
        if row is None:  # ON CONFLICT DO NOTHING: nothing inserted
            return None
        ident, = row  # RETURNING id
        return int(ident)

    def create_files(self, raw: Any, files: Sequence[tuple[str, str, bytes]], mode: int,
                     chunk_size: int, now: int) -> int:
        """New files in existing directories; how many were created (a taken name is
        skipped). Many at once go through COPY into a session-local staging table, then
        ONE ``INSERT ... SELECT``; a few, through one pipelined executemany."""
        if len(files) >= COPY_AT_LEAST:
            raw.script(_INGEST_TABLE)
            raw.copy_rows(_INGEST_COPY, _INGEST_TYPES,
                          ((parent, name, len(data), fold(parent), fold(name),
                            *self._stored(data, None)) for parent, name, data in files))
            return int(raw.execute(self._insert_ingested, (mode, chunk_size, now, now)).rowcount)
        rows = [(parent, name, mode, len(data), chunk_size, now, now, fold(parent), fold(name),
                 *self._stored(data, None)) for parent, name, data in files]
        return int(raw.executemany_count(self._create_file_in_dir.sql, rows))

    def create_dirs(self, raw: Any, dirs: Sequence[str], mode: int, now: int) -> int:
        rows = []
        for path in dirs:
            parent, name = split(path)
            rows.append((parent, name, mode, now, now, fold(parent), fold(name), *split(parent)))
        return int(raw.executemany_count(self._create_dir.sql, rows))

    def staging_rows(self, raw: Any) -> list[tuple[int, str | None]]:
        return [tuple(r) for r in raw.execute(self._staging.sql, ()).fetchall()]


class PGStackRepository(StackRepository):
    """The layer stack's statements over trees of one database: each underlay is a schema,
    so a lookup through any number of them is ONE statement (no attach limit).

    Its statements use PostgreSQL's own ``$n`` placeholders, one per distinct parameter
    however many branches repeat it, and run as they are (``PGRaw.execute_native``): psycopg
    parses a ``%s`` statement's text again at every call once it is longer than 4 KiB or has
    more than 50 parameters, as a union over a dozen trees is (a third of a lookup's time
    through 25 trees)."""

    dialect = NATIVE_DIALECT

    def __init__(self, entries: tuple[tuple[int, str], ...], content: Content = PLAIN,
                 folded: bool = False) -> None:
        super().__init__(entries, content, folded)
        self._first_chunk_sql = {
            prio: f"SELECT codec, sums, data, id FROM {_q(schema)}.vfs_chunks WHERE id = $1"
            for prio, schema in entries}
        # A file that reads an overlay (format 0014): the key's chunk 0, else the base's.
        self._first_chunk_or_base_sql = {
            prio: f"SELECT codec, sums, data, id FROM {_q(schema)}.vfs_chunks WHERE id = $1 "
                  f"OR id = $2 ORDER BY id = $1 DESC LIMIT 1"
            for prio, schema in entries}

    def _matches(self, column: Any, pattern: Any) -> Any:
        return column.op("~")(pattern)

    def _not_matches(self, column: Any, pattern: Any) -> Any:
        return column.op("!~")(pattern)

    def _pattern(self, glob: str) -> str:
        return glob_to_regex(glob)

    def _query(self, raw: Any, sql: str, params: Any) -> Any:
        return raw.execute_native(sql, params)

    def _resolve_first_text(self, branches: list[str]) -> str:
        text = " UNION ALL ".join(b.replace("?1", "$1").replace("?2", "$2") for b in branches)
        return text + " ORDER BY 1 LIMIT 1"

    @staticmethod
    def _resolve_first_branch(prio: int, schema: str, keys: str) -> str:
        """One layer's branch: its inline bytes, and where its chunk 0 is when it has none
        (fetched by ``resolve_first`` for the winner only). Joining every branch to its
        chunks, as SQLite does, costs PostgreSQL's executor a second index scan to set up
        per layer: a third of the statement's time through 10 layers."""
        cols = ", ".join(f"i.{c}" for c in INODE_COLUMNS)
        return (f"SELECT {prio} AS prio, {cols}, i.codec, i.sums, i.data, CASE WHEN i.data "
                f"IS NULL AND i.kind = {int(InodeKind.FILE)} THEN coalesce(i.content, i.id) "
                f"END, i.base FROM {_q(schema)}.vfs_inodes AS i WHERE {keys}")

    def _first_chunk_of(self, raw: Any, row: tuple[Any, ...]) -> Sequence[Any]:
        # Positional: (prio, *INODE_COLUMNS, codec, sums, data, chunk key), handed on as is.
        at = 1 + N_INODE  # where (codec, sums, data, chunk key) start
        prio, key, base = row[0], row[at + 3], row[at + 4]
        if key is None:  # inline bytes (or none: not a file), sealed as such
            return (*row[:at + 3], INLINE)
        # A file in chunks: its chunk 0, from the winner's layer (its key's, else its base's:
        # format 0014).
        if base is None:
            chunk = self._query(raw, self._first_chunk_sql[prio], (key * CHUNK_SPAN,)).fetchone()
        else:
            if type(base) is not int:
                raise stored.damaged(f"base {base!r:.20} of a file's content")
            chunk = self._query(raw, self._first_chunk_or_base_sql[prio],
                                (key * CHUNK_SPAN, base * CHUNK_SPAN)).fetchone()
        return (*row[:at], *(chunk or (None, None, None, None)))


#: From this many new files on, ``create_files`` goes through COPY.
COPY_AT_LEAST = 64
#: The staging table of bulk ingest: one per session, emptied before each use and at commit.
_INGEST_TABLE = ('CREATE TEMP TABLE IF NOT EXISTS vfs_ingest (seq bigserial, '
                 'parent text COLLATE "C", name text COLLATE "C", size bigint, '
                 'fparent text COLLATE "C", fname text COLLATE "C", digest bytea, '
                 "codec integer, sums bytea, data bytea) "
                 "ON COMMIT DELETE ROWS; DELETE FROM pg_temp.vfs_ingest")
_INGEST_COPY = ("COPY pg_temp.vfs_ingest (parent, name, size, fparent, fname, digest, codec, "
                "sums, data) FROM STDIN (FORMAT BINARY)")
_INGEST_TYPES = ("text", "text", "int8", "text", "text", "bytea", "int4", "bytea", "bytea")
#: The folded key of a new inode row, and its content columns, bound by name.
_KEYS: dict[str, Any] = {"fparent": bindparam("fparent"), "fname": bindparam("fname")}
_CONTENT: dict[str, Any] = {"digest": bindparam("digest"), "codec": bindparam("codec"),
            "sums": bindparam("sums"), "data": bindparam("data")}


class PGManifestRepository(ManifestRepository):
    def __init__(self, schema: str) -> None:
        super().__init__(schema, DIALECT)


class PGCheckRepository(CheckRepository):
    """The format's invariants on PostgreSQL. The server checks its own pages and foreign
    keys, and ``bytea`` columns hold nothing but bytes: those checks have nothing to find."""

    def __init__(self, schema: str) -> None:
        super().__init__(schema, DIALECT)

    def integrity(self, raw: Any, quick: bool = False) -> list[str]:
        return ["ok"]

    def foreign_keys(self, raw: Any) -> list[tuple[Any, ...]]:
        return []

    def content_not_bytes(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        return []
