"""All SQL of vfs_orm, and nothing else.

Statements are built once with SQLAlchemy Core from the declarative models' tables and compiled
once to the driver's SQL string; hot paths execute that string directly on the DBAPI connection
of the current SQLAlchemy connection (ENGINEERING-NOTES §2: Core execution costs ~13x a raw
sqlite3 call, a compiled-once string on the driver connection ~1x). Because the driver
connection is the SQLAlchemy connection's own, these statements run inside whatever transaction
or savepoint the unit of work has open.

Paths are never turned into LIKE/GLOB patterns: subtrees are ranges on the ``(parent, name)``
index (see ``paths.subtree_bounds``), so ``%``, ``_``, ``*``, ``?`` and ``[`` are literal.

Repositories receive the driver connection as an argument and never commit.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import (
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect

from vfs_orm.models import Chunk, Inode, LayerManifest

_DIALECT = sqlite_dialect.dialect(paramstyle="qmark")

#: A chunk's row id is ``inode_id * CHUNK_SPAN + idx``: reads go straight to the chunk by
#: rowid (no index probe), a file's chunks are one rowid range, and incremental BLOB I/O
#: needs no lookup. 2**32 chunks per file, 2**31 inodes.
CHUNK_SPAN = 1 << 32
_SPAN = literal_column(str(CHUNK_SPAN))


def chunk_id(inode_id: int, idx: int) -> int:
    return inode_id * CHUNK_SPAN + idx


#: Columns of an inode lookup row, in order (see ``InodeRow``).
INODE_COLUMNS = ("id", "kind", "mode", "size", "chunk_size", "ctime_ns", "mtime_ns",
                 "generation")


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement compiled once: its SQL string and the order of its positional parameters."""

    sql: str
    params: tuple[str, ...]


def compile_stmt(stmt: Any, params: Sequence[str] | None = None) -> Compiled:
    """Compile ``stmt`` for the pysqlite driver. If ``params`` is given, check that the
    positional parameters come in exactly that order, so callers may pass plain tuples."""
    comp = stmt.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    order = tuple(comp.positiontup or ())
    if params is not None and order != tuple(params):
        raise AssertionError(f"parameter order {order} != {tuple(params)} in {comp.string}")
    return Compiled(str(comp.string), order)


def _inode_cols(t: Table) -> list[Any]:
    return [t.c[c] for c in INODE_COLUMNS]


class InodeRepository:
    """Inodes and chunks of one database (the ``main`` schema of the connection)."""

    def __init__(self, schema: str = "main") -> None:
        self.schema = schema
        i: Table = Inode.__table__  # type: ignore[assignment]
        c: Table = Chunk.__table__  # type: ignore[assignment]
        self.inodes, self.chunks = i, c
        p, n = bindparam("parent"), bindparam("name")
        lo, hi = bindparam("lo"), bindparam("hi")

        # -- reads --------------------------------------------------------------------------
        self._lookup = compile_stmt(
            select(*_inode_cols(i)).where(i.c.parent == p, i.c.name == n), ("parent", "name"))
        # The parent and the entry in one probe each, one statement (writes need both).
        # Index-only: the unique (parent, name) index answers it without touching the table.
        self._exists = compile_stmt(
            select(i.c.parent).where(i.c.parent == p, i.c.name == n), ("parent", "name"))
        self._lookup_pair = compile_stmt(
            select(i.c.parent, i.c.name, *_inode_cols(i)).where(
                or_(and_(i.c.parent == bindparam("pp"), i.c.name == bindparam("pn")),
                    and_(i.c.parent == bindparam("parent"), i.c.name == bindparam("name")))),
            ("pp", "pn", "parent", "name"))
        self._list_names = compile_stmt(
            select(i.c.name).where(i.c.parent == p).order_by(i.c.name), ("parent",))
        self._list_entries = compile_stmt(
            select(i.c.name, *_inode_cols(i)).where(i.c.parent == p).order_by(i.c.name),
            ("parent",))
        self._has_children = compile_stmt(
            select(i.c.id).where(i.c.parent == p), ("parent",))
        self._subtree = compile_stmt(
            select(i.c.parent, i.c.name, *_inode_cols(i))
            .where(or_(i.c.parent == p, and_(i.c.parent >= lo, i.c.parent < hi)))
            .order_by(i.c.parent, i.c.name),
            ("parent", "lo", "hi"))
        # Opening for reading: the inode and its first chunk in one statement, so that
        # open()+read() of a small file is one query.
        self._open_lookup = compile_stmt(
            select(*_inode_cols(i), c.c.data)
            .select_from(i.outerjoin(c, c.c.id == i.c.id * _SPAN))
            .where(i.c.parent == p, i.c.name == n), ("parent", "name"))
        # Glob. Names never contain "/", so a SQLite GLOB on ``name`` matches one segment; a
        # GLOB on ``parent`` with exactly as many "/" as the pattern cannot let a wildcard
        # cross a segment boundary. Both use the (parent, name) index.
        ng = bindparam("name_glob")
        self._glob_in = compile_stmt(
            select(i.c.name).where(i.c.parent == p, i.c.name.op("GLOB")(ng)),
            ("parent", "name_glob"))
        # The depth test is a NOT GLOB with one more "/*" than the pattern: cheaper per row
        # than counting slashes, and it keeps wildcards from spanning directories.
        self._glob_level = compile_stmt(
            select(i.c.parent + literal_column("'/'") + i.c.name).where(
                i.c.parent.op("GLOB")(bindparam("parent_glob")),
                i.c.parent.op("NOT GLOB")(bindparam("too_deep")),
                i.c.name.op("GLOB")(ng)),
            ("parent_glob", "too_deep", "name_glob"))
        self._glob_below = compile_stmt(
            select(i.c.parent, i.c.name, i.c.kind)
            .where(or_(i.c.parent == p, and_(i.c.parent >= lo, i.c.parent < hi)),
                   i.c.name.op("GLOB")(ng)),
            ("parent", "lo", "hi", "name_glob"))
        # Whole small file in one statement: the inode and all its chunks.
        self._read_whole = compile_stmt(
            select(i.c.id, i.c.kind, i.c.size, i.c.chunk_size, c.c.idx, c.c.data)
            .select_from(i.outerjoin(c, and_(c.c.id >= i.c.id * _SPAN,
                                             c.c.id < (i.c.id + literal_column("1")) * _SPAN)))
            .where(i.c.parent == p, i.c.name == n).order_by(c.c.id),
            ("parent", "name"))
        # One chunk plus the file's current size; no row at all means the inode is gone.
        self._read_chunk = compile_stmt(
            select(i.c.size, i.c.generation, c.c.data)
            .select_from(i.outerjoin(c, c.c.id == bindparam("cid")))
            .where(i.c.id == bindparam("id")),
            ("cid", "id"))
        self._read_part = compile_stmt(
            select(i.c.size, i.c.generation,
                   func.substr(c.c.data, bindparam("start"), bindparam("length")))
            .select_from(i.outerjoin(c, c.c.id == bindparam("cid")))
            .where(i.c.id == bindparam("id")),
            ("start", "length", "cid", "id"))
        # The file's size and the chunks of [first, stop): big reads in one statement.
        self._read_span = compile_stmt(
            select(i.c.size, i.c.generation, c.c.idx, c.c.data)
            .select_from(i.outerjoin(c, and_(c.c.id >= bindparam("lo_id"),
                                             c.c.id < bindparam("hi_id"))))
            .where(i.c.id == bindparam("id")).order_by(c.c.id),
            ("lo_id", "hi_id", "id"))
        self._inode_size = compile_stmt(
            select(i.c.size, i.c.generation).where(i.c.id == bindparam("id")), ("id",))
        self._chunk_data = compile_stmt(
            select(c.c.data).where(c.c.id == bindparam("cid")), ("cid",))
        self._staging = compile_stmt(
            select(i.c.id, i.c.owner).where(i.c.parent.is_(None)), ())

        # -- writes -------------------------------------------------------------------------
        self._insert = compile_stmt(
            insert(i).values(parent=p, name=n, kind=bindparam("kind"), mode=bindparam("mode"),
                             size=bindparam("size"), chunk_size=bindparam("chunk_size"),
                             ctime_ns=bindparam("ctime"), mtime_ns=bindparam("mtime"),
                             generation=literal_column("0"), owner=bindparam("owner")),
            ("parent", "name", "kind", "mode", "size", "chunk_size", "ctime", "mtime", "owner"))
        self._put_chunk = compile_stmt(
            sqlite_dialect.insert(c).values(id=bindparam("cid"), inode_id=bindparam("id"),
                                            idx=bindparam("idx"), data=bindparam("data"))
            .on_conflict_do_update(index_elements=[c.c.id],
                                   set_={"data": sqlite_dialect.insert(c).excluded.data}),
            ("cid", "id", "idx", "data"))
        self._copy_chunks = compile_stmt(
            insert(c).from_select(
                ["id", "inode_id", "idx", "data"],
                select(bindparam("dst_base") + c.c.idx, bindparam("dst"), c.c.idx, c.c.data)
                .where(c.c.id >= bindparam("src_lo"), c.c.id < bindparam("src_hi"))),
            ("dst_base", "dst", "src_lo", "src_hi"))
        self._drop_chunks_from = compile_stmt(
            delete(c).where(c.c.id >= bindparam("lo_id"), c.c.id < bindparam("hi_id")),
            ("lo_id", "hi_id"))
        self._set_size = compile_stmt(
            update(i).where(i.c.id == bindparam("id"))
            .values(size=bindparam("size"), mtime_ns=bindparam("mtime")),
            ("size", "mtime", "id"))
        self._set_times = compile_stmt(
            update(i).where(i.c.id == bindparam("id"))
            .values(mtime_ns=bindparam("mtime")), ("mtime", "id"))
        self._place = compile_stmt(
            update(i).where(i.c.id == bindparam("id"))
            .values(parent=p, name=n, size=bindparam("size"), ctime_ns=bindparam("ctime"),
                    mtime_ns=bindparam("mtime"), owner=null()),
            ("parent", "name", "size", "ctime", "mtime", "id"))
        # Whole-content replacement in place (no index entry moves): a new generation.
        self._rewrite = compile_stmt(
            update(i).where(i.c.id == bindparam("id"))
            .values(size=bindparam("size"), chunk_size=bindparam("chunk_size"),
                    mode=bindparam("mode"), mtime_ns=bindparam("mtime"),
                    generation=i.c.generation + literal_column("1")),
            ("mode", "size", "chunk_size", "mtime", "id"))
        self._delete = compile_stmt(delete(i).where(i.c.id == bindparam("id")), ("id",))
        # A subtree and its root in one statement (chunks follow by ON DELETE CASCADE).
        self._delete_tree = compile_stmt(
            delete(i).where(or_(i.c.id == bindparam("id"), i.c.parent == p,
                                and_(i.c.parent >= lo, i.c.parent < hi))),
            ("id", "parent", "lo", "hi"))
        # Renaming a directory is ONE statement: the entry gets its new parent and name, every
        # descendant's parent gets the new prefix.
        self._move = compile_stmt(
            update(i)
            .where(or_(i.c.id == bindparam("id"), i.c.parent == p,
                       and_(i.c.parent >= lo, i.c.parent < hi)))
            .values(
                parent=func.iif(i.c.id == bindparam("id2"), bindparam("new_parent"),
                                bindparam("new_path", type_=Text) + func.substr(i.c.parent, bindparam("cut"))),
                name=func.iif(i.c.id == bindparam("id3"), bindparam("new_name"), i.c.name),
            ),
            None)

    # -- reads ----------------------------------------------------------------------------
    def lookup(self, raw: sqlite3.Connection, parent: str, name: str) -> tuple[Any, ...] | None:
        return raw.execute(self._lookup.sql, (parent, name)).fetchone()  # type: ignore[no-any-return]

    def open_lookup(self, raw: sqlite3.Connection, parent: str, name: str
                    ) -> tuple[Any, ...] | None:
        """INODE_COLUMNS + the first chunk's data (None if none)."""
        return raw.execute(self._open_lookup.sql, (parent, name)).fetchone()  # type: ignore[no-any-return]

    def exists(self, raw: sqlite3.Connection, parent: str, name: str) -> bool:
        return raw.execute(self._exists.sql, (parent, name)).fetchone() is not None

    def lookup_pair(self, raw: sqlite3.Connection, parent: str, name: str
                    ) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
        """(row of the directory ``parent``, row of the entry ``parent/name``), one statement."""
        pp, pn = _split(parent)
        prow = row = None
        for r in raw.execute(self._lookup_pair.sql, (pp, pn, parent, name)):
            if r[0] == parent and r[1] == name:
                row = r[2:]
            else:
                prow = r[2:]
        return prow, row

    def list_names(self, raw: sqlite3.Connection, parent: str) -> list[str]:
        return [r[0] for r in raw.execute(self._list_names.sql, (parent,))]

    def list_entries(self, raw: sqlite3.Connection, parent: str) -> list[tuple[Any, ...]]:
        """(name, *INODE_COLUMNS) of each entry of a directory, sorted by name."""
        return raw.execute(self._list_entries.sql, (parent,)).fetchall()

    def has_children(self, raw: sqlite3.Connection, parent: str) -> bool:
        return raw.execute(self._has_children.sql, (parent,)).fetchone() is not None

    def subtree(self, raw: sqlite3.Connection, path: str, lo: str, hi: str) -> list[tuple[Any, ...]]:
        """(parent, name, *INODE_COLUMNS) of everything strictly below ``path``."""
        return raw.execute(self._subtree.sql, (path, lo, hi)).fetchall()

    def glob_in(self, raw: sqlite3.Connection, parent: str, name_glob: str) -> list[str]:
        return [r[0] for r in raw.execute(self._glob_in.sql, (parent, name_glob))]

    def glob_level(self, raw: sqlite3.Connection, parent_glob: str, depth: int,
                   name_glob: str) -> list[str]:
        """Paths ``parent/name`` whose parent matches ``parent_glob`` (``depth`` segments)
        and whose name matches ``name_glob``."""
        too_deep = "/*" * (depth + 1)
        return [r[0] for r in raw.execute(self._glob_level.sql,
                                          (parent_glob, too_deep, name_glob))]

    def glob_below(self, raw: sqlite3.Connection, top: str, lo: str, hi: str, name_glob: str
                   ) -> list[tuple[str, str, int]]:
        return raw.execute(self._glob_below.sql, (top, lo, hi, name_glob)).fetchall()

    @staticmethod
    def data_version(raw: sqlite3.Connection) -> int:
        """Changes whenever ANOTHER connection commits to the database."""
        return int(raw.execute("PRAGMA data_version").fetchone()[0])

    def read_blob(self, raw: sqlite3.Connection, inode_id: int, idx: int, off: int,
                  length: int) -> bytes:
        """Incremental BLOB I/O on one chunk (raises sqlite3.OperationalError if the chunk row
        does not exist: a sparse hole, or a file that is gone)."""
        with raw.blobopen(self.chunks.name, "data", inode_id * CHUNK_SPAN + idx,
                          readonly=True, name=self.schema) as blob:
            blob.seek(off)
            return blob.read(length)

    def read_whole(self, raw: sqlite3.Connection, parent: str, name: str) -> list[tuple[Any, ...]]:
        return raw.execute(self._read_whole.sql, (parent, name)).fetchall()

    def read_chunk(self, raw: sqlite3.Connection, inode_id: int, idx: int) -> tuple[Any, ...] | None:
        return raw.execute(self._read_chunk.sql, (inode_id * CHUNK_SPAN + idx, inode_id)).fetchone()  # type: ignore[no-any-return]

    def read_part(self, raw: sqlite3.Connection, inode_id: int, idx: int, start: int,
                  length: int) -> tuple[Any, ...] | None:
        return raw.execute(self._read_part.sql, (start + 1, length, inode_id * CHUNK_SPAN + idx,
                                                 inode_id)).fetchone()  # type: ignore[no-any-return]

    def read_span(self, raw: sqlite3.Connection, inode_id: int, first: int, stop: int
                  ) -> list[tuple[int, int, int | None, bytes | None]]:
        """(size, generation, idx, data) rows for chunks first..stop-1; no rows: the inode
        is gone."""
        base = inode_id * CHUNK_SPAN
        return raw.execute(self._read_span.sql, (base + first, base + min(stop, CHUNK_SPAN),
                                                 inode_id)).fetchall()

    def inode_size(self, raw: sqlite3.Connection, inode_id: int) -> tuple[int, int] | None:
        """(size, generation), or None if the inode is gone."""
        return raw.execute(self._inode_size.sql, (inode_id,)).fetchone()  # type: ignore[no-any-return]

    def chunk_data(self, raw: sqlite3.Connection, inode_id: int, idx: int) -> bytes | None:
        r = raw.execute(self._chunk_data.sql, (inode_id * CHUNK_SPAN + idx,)).fetchone()
        return None if r is None else bytes(r[0])

    def staging_rows(self, raw: sqlite3.Connection) -> list[tuple[int, str | None]]:
        return raw.execute(self._staging.sql).fetchall()

    # -- writes ---------------------------------------------------------------------------
    def insert(self, raw: sqlite3.Connection, parent: str | None, name: str, kind: int, mode: int,
               size: int, chunk_size: int, ctime: int, mtime: int, owner: str | None = None) -> int:
        cur = raw.execute(self._insert.sql,
                          (parent, name, kind, mode, size, chunk_size, ctime, mtime, owner))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def put_chunk(self, raw: sqlite3.Connection, inode_id: int, idx: int, data: bytes) -> None:
        raw.execute(self._put_chunk.sql, (inode_id * CHUNK_SPAN + idx, inode_id, idx, data))

    def put_chunks(self, raw: sqlite3.Connection, rows: Iterable[tuple[int, int, Any]]) -> None:
        """rows: (inode_id, idx, data)."""
        raw.executemany(self._put_chunk.sql,
                        ((i * CHUNK_SPAN + x, i, x, d) for i, x, d in rows))

    def copy_chunks(self, raw: sqlite3.Connection, src_id: int, dst_id: int) -> None:
        raw.execute(self._copy_chunks.sql, (dst_id * CHUNK_SPAN, dst_id, src_id * CHUNK_SPAN,
                                            (src_id + 1) * CHUNK_SPAN))

    def drop_chunks_from(self, raw: sqlite3.Connection, inode_id: int, first: int) -> None:
        raw.execute(self._drop_chunks_from.sql, (inode_id * CHUNK_SPAN + first,
                                                 (inode_id + 1) * CHUNK_SPAN))

    def set_size(self, raw: sqlite3.Connection, inode_id: int, size: int, mtime: int) -> None:
        raw.execute(self._set_size.sql, (size, mtime, inode_id))

    def touch(self, raw: sqlite3.Connection, inode_id: int, mtime: int) -> None:
        raw.execute(self._set_times.sql, (mtime, inode_id))

    def place(self, raw: sqlite3.Connection, inode_id: int, parent: str, name: str, size: int,
              ctime: int, mtime: int) -> None:
        """Give a staging inode its place in the tree (the commit of a ``w``/``x`` handle)."""
        raw.execute(self._place.sql, (parent, name, size, ctime, mtime, inode_id))

    def rewrite(self, raw: sqlite3.Connection, inode_id: int, size: int, chunk_size: int,
                mode: int, mtime: int) -> None:
        raw.execute(self._rewrite.sql, (mode, size, chunk_size, mtime, inode_id))

    def delete(self, raw: sqlite3.Connection, inode_id: int) -> None:
        raw.execute(self._delete.sql, (inode_id,))

    def delete_tree(self, raw: sqlite3.Connection, inode_id: int, path: str, lo: str, hi: str) -> int:
        return raw.execute(self._delete_tree.sql, (inode_id, path, lo, hi)).rowcount

    def move(self, raw: sqlite3.Connection, inode_id: int, old_path: str, lo: str, hi: str,
             new_parent: str, new_name: str, new_path: str) -> None:
        values = {"id": inode_id, "parent": old_path, "lo": lo, "hi": hi, "id2": inode_id,
                  "new_parent": new_parent, "new_path": new_path, "cut": len(old_path) + 1,
                  "id3": inode_id, "new_name": new_name}
        raw.execute(self._move.sql, tuple(values[k] for k in self._move.params))


@functools.lru_cache(maxsize=1)
def inode_repository() -> InodeRepository:
    """The shared repository: its statements are compiled once per process."""
    return InodeRepository()


def _split(path: str) -> tuple[str, str]:
    if path == "/":
        return "", ""
    if path == "":
        return "\x00", "\x00"  # the root has no parent: match nothing
    k = path.rfind("/")
    return (path[:k] or "/"), path[k + 1:]


class ManifestRepository:
    """Layer manifests through the ORM: rare metadata writes, where the ORM is the right tool."""

    def identity(self, session: Any) -> LayerManifest | None:
        return session.scalars(  # type: ignore[no-any-return]
            select(LayerManifest).where(LayerManifest.role == "self")).first()

    def add(self, session: Any, manifest: LayerManifest) -> None:
        session.add(manifest)
        session.flush()
