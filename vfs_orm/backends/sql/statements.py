"""All SQL of the repositories, defined once for every backend (the shared SQL core), and
nothing else: a backend's subclasses give the dialect and the few hooks that differ
(``backends/sqlite/dialect.py``, ``backends/postgresql/statements.py``).

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

import copy
import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)

from vfs_orm import stored
from vfs_orm.content import BLOCK, INLINE, PLAIN, Content, Damage, damaged, reseal
from vfs_orm.content.codec import GROUP_MAX
from vfs_orm.models import (
    Checkpoint,
    CheckpointInode,
    Chunk,
    Dictionary,
    Group,
    Inode,
    LayerManifest,
)
from vfs_orm.paths import fold, split, subtree_bounds
from vfs_orm.rows import (
    N_INODE,
    ChunkRow,
    EntryRow,
    Identity,
    InodeSize,
    Node,
    OpenNode,
    Sized,
    WholeRow,
)
from vfs_orm.types import InodeKind

#: A chunk's row id is ``inode_id * CHUNK_SPAN + idx``: reads go straight to the chunk by
#: rowid (no index probe), a file's chunks are one rowid range, and incremental BLOB I/O
#: needs no lookup. 2**32 chunks per file, 2**31 inodes.
CHUNK_SPAN = 1 << 32
_SPAN: Any = literal_column(str(CHUNK_SPAN))


#: Chunk rows copied per statement by ``copy_chunks`` (at most 16 chunks in memory at once).
_COPY_WINDOW = 16


#: Files written whole with at most this many bytes (and at most one chunk) keep them in
#: their inode row (``vfs_inodes.data``): one row to read or write instead of two. The limit
#: bounds what a directory rename rewrites (SQLite rewrites a whole record on UPDATE).
INLINE_MAX = 16 * 1024


#: Columns of an inode lookup row, in order (see ``InodeRow``).
INODE_COLUMNS = ("id", "kind", "mode", "size", "chunk_size", "ctime_ns", "mtime_ns",
                 "generation", "uid", "gid")
# A row's columns after them (a first chunk's) start at N_INODE (plus one for a leading layer
# number); ``rows`` states the count for the layers above.
assert len(INODE_COLUMNS) == N_INODE


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement compiled once: its SQL string and the order of its positional parameters."""

    sql: str
    params: tuple[str, ...]


def compile_stmt(stmt: Any, params: Sequence[str] | None, dialect: Any) -> Compiled:
    """Compile ``stmt`` for a driver with positional parameters (``dialect``'s). If
    ``params`` is given, check that the positional parameters come in exactly that order, so
    callers may pass plain tuples."""
    comp = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    order = tuple(comp.positiontup or ())
    if params is not None and order != tuple(params):
        raise AssertionError(f"parameter order {order} != {tuple(params)} in {comp.string}")
    return Compiled(str(comp.string), order)


def _inode_cols(t: Table) -> list[Any]:
    return [t.c[c] for c in INODE_COLUMNS]


_IN_SCHEMA: dict[tuple[str, str], Table] = {}
_SCHEMA_METADATA: dict[str, MetaData] = {}


def _in_schema(schema: str, *tables: Any) -> tuple[Table, ...]:
    """The models' ``tables``, or copies qualified by an attached schema (one cached copy
    each, a schema's copies in one MetaData, so that their foreign keys resolve)."""
    if schema != "main" and (not schema.isidentifier() or not schema.isascii()):
        raise ValueError(f"invalid schema alias {schema!r}")
    out = []
    for model in tables:
        key = (schema, model.name)
        if key not in _IN_SCHEMA:
            _IN_SCHEMA[key] = model if schema == "main" else model.to_metadata(
                _SCHEMA_METADATA.setdefault(schema, MetaData()), schema=schema)
        out.append(_IN_SCHEMA[key])
    return tuple(out)


def _tables_for(schema: str) -> tuple[Table, Table]:
    i, c = _in_schema(schema, Inode.__table__, Chunk.__table__)
    return i, c


def checkpoint_tables(schema: str = "main") -> tuple[Table, Table]:
    """(vfs_checkpoints, vfs_checkpoint_inodes) of a schema (format 0005)."""
    h, k = _in_schema(schema, Checkpoint.__table__, CheckpointInode.__table__)
    return h, k


def group_table(schema: str = "main") -> Table:
    """``vfs_groups`` of a schema (format 0013)."""
    return _in_schema(schema, Group.__table__)[0]


def inode_table(schema: str = "main") -> Table:
    return _tables_for(schema)[0]


def chunk_table(schema: str = "main") -> Table:
    return _tables_for(schema)[1]


class InodeRepository:
    """Inodes and chunks of one database (the ``main`` schema of the connection).

    The statements are SQLAlchemy Core over the models' tables, defined once here; what
    differs between SQL engines is in a few hooks (``_matches``, ``_pattern``, ``_joined``,
    ``_insert_ignoring``, ``_upsert_chunk``) and in what a driver reports back (new ids,
    counts of changed rows, incremental BLOB I/O): a backend's subclass provides those
    (``backends/sqlite/dialect.py``, ``backends/postgresql/statements.py``) and reuses every
    other statement, compiled for its ``dialect``."""

    #: The dialect the statements are compiled for, and whether ``read_blob`` can read part of
    #: a stored value without a query (incremental BLOB I/O).
    dialect: Any
    blob_reads = False

    def _compile(self, stmt: Any, params: Sequence[str] | None = None) -> Compiled:
        return compile_stmt(stmt, params, self.dialect)

    # -- dialect hooks (a backend's subclass) -----------------------------------------------
    def _matches(self, column: Any, pattern: Any) -> Any:
        """``column`` matches the glob ``pattern`` (a bound parameter, see ``_pattern``)."""
        raise NotImplementedError

    def _pattern(self, glob: str) -> str:
        """What a glob becomes as the parameter of ``_matches``."""
        raise NotImplementedError

    def _joined(self, column: Any, separator: Any) -> Any:
        """The aggregate joining a group's ``column`` values with ``separator``."""
        raise NotImplementedError

    def _insert_ignoring(self, table: Table) -> Any:
        """An INSERT that skips, without an error, a row refused by a UNIQUE or CHECK."""
        raise NotImplementedError

    #: The dialect's INSERT with ``ON CONFLICT`` (``sqlalchemy.dialects.<name>.insert``).
    _conflict_insert: Any = None

    def _upsert_chunk(self, chunks: Table) -> Any:
        """An INSERT of a chunk row (``cid``, ``id``, ``idx``, ``codec``, ``sums``, ``data``)
        that replaces the content of the row already there."""
        stmt = self._conflict_insert(chunks).values(
            id=bindparam("cid"), inode_id=bindparam("id"), idx=bindparam("idx"),
            codec=bindparam("codec"), sums=bindparam("sums"), data=bindparam("data"))
        return stmt.on_conflict_do_update(
            index_elements=[chunks.c.id],
            set_={"codec": stmt.excluded.codec, "sums": stmt.excluded.sums,
                  "data": stmt.excluded.data})

    def _inline_copy(self) -> Compiled:
        """Copying a file's inline bytes (and digest) to another inode, compiled for this
        dialect."""
        return inline_copy(self.schema, self.dialect)

    def __init__(self, schema: str = "main", content: Content = PLAIN) -> None:
        self.schema = schema
        #: How content is encoded on write and checked on read (see ``vfs_orm.content``).
        self.content = content
        if content.codec or not content.partial:  # a compressed value is read whole
            self.blob_reads = False
        i, c = inode_table(schema), chunk_table(schema)
        self.inodes, self.chunks = i, c
        p: Any = bindparam("parent")
        n: Any = bindparam("name")
        lo: Any = bindparam("lo")
        hi: Any = bindparam("hi")

        # -- reads --------------------------------------------------------------------------
        self._lookup = self._compile(
            select(*_inode_cols(i)).where(i.c.parent == p, i.c.name == n), ("parent", "name"))
        # The parent and the entry in one probe each, one statement (writes need both).
        # Index-only: the unique (parent, name) index answers it without touching the table.
        self._exists = self._compile(
            select(i.c.parent).where(i.c.parent == p, i.c.name == n), ("parent", "name"))
        self._lookup_pair = self._compile(
            select(i.c.parent, i.c.name, *_inode_cols(i)).where(
                or_(and_(i.c.parent == bindparam("pp"), i.c.name == bindparam("pn")),
                    and_(i.c.parent == bindparam("parent"), i.c.name == bindparam("name")))),
            ("pp", "pn", "parent", "name"))
        self._list_names = self._compile(
            select(i.c.name).where(i.c.parent == p).order_by(i.c.name), ("parent",))
        self._list_entries = self._compile(
            select(i.c.name, *_inode_cols(i)).where(i.c.parent == p).order_by(i.c.name),
            ("parent",))
        self._has_children = self._compile(
            select(i.c.id).where(i.c.parent == p), ("parent",))
        self._subtree = self._compile(
            select(i.c.parent, i.c.name, *_inode_cols(i))
            .where(or_(i.c.parent == p, and_(i.c.parent >= lo, i.c.parent < hi)))
            .order_by(i.c.parent, i.c.name),
            ("parent", "lo", "hi"))
        # Whose chunks a file reads: its own, or those of the inode it shares them with; a
        # chunk that inode lacks, from its base (format 0014, chunk-level sharing).
        key = func.coalesce(i.c.content, i.c.id)
        b = c.alias("b")

        def one_chunk(idx: Any) -> tuple[Any, list[Any]]:
            """The file joined with its chunk ``idx`` (its key's, else its base's), and that
            chunk's (codec, sums, data, the place its sums are sealed to)."""
            joined = i.outerjoin(c, c.c.id == key * _SPAN + idx).outerjoin(
                b, and_(b.c.id == i.c.base * _SPAN + idx, c.c.id.is_(None)))
            return joined, [func.coalesce(c.c.codec, b.c.codec),
                            func.coalesce(c.c.sums, b.c.sums),
                            func.coalesce(c.c.data, b.c.data), func.coalesce(c.c.id, b.c.id)]

        def from_base(*columns: Any, first: Any = None, stop: Any = None) -> Any:
            """The chunks of [first, stop) (all: None) a file reads from its base: those its
            key lacks. The second arm of a ranged read's UNION ALL."""
            lo_id = i.c.base * _SPAN + (first if first is not None else literal_column("0"))
            hi_id = i.c.base * _SPAN + stop if stop is not None else \
                (i.c.base + literal_column("1")) * _SPAN
            own = select(literal_column("1")).select_from(c).where(
                c.c.id == key * _SPAN + b.c.id - i.c.base * _SPAN).exists()
            return select(*columns).select_from(
                i.join(b, and_(b.c.id >= lo_id, b.c.id < hi_id))).where(~own)

        # A file's first chunk: its inline bytes, else chunk 0 (joined by rowid), as
        # (codec, sums, data, the place its sums are sealed to).
        with_first, chunk0 = one_chunk(literal_column("0"))
        inline = i.c.data.isnot(None)
        first = [case((inline, i.c.codec), else_=chunk0[0]),
                 case((inline, i.c.sums), else_=chunk0[1]),
                 func.coalesce(i.c.data, chunk0[2]),
                 case((inline, literal_column(str(INLINE))), else_=chunk0[3])]
        # Opening for reading: the inode and its first chunk in one statement, so that
        # open()+read() of a small file is one query.
        self._open_lookup = self._compile(
            select(literal_column("0"), *_inode_cols(i), *first).select_from(with_first)
            .where(i.c.parent == p, i.c.name == n), ("parent", "name"))
        # The resolver's lookup: the row comes with its layer (0, the top), ready to name.
        self._find = self._compile(
            select(literal_column("0"), *_inode_cols(i)).where(i.c.parent == p, i.c.name == n),
            ("parent", "name"))
        # Glob. Names never contain "/", so a SQLite GLOB on ``name`` matches one segment; a
        # GLOB on ``parent`` with exactly as many "/" as the pattern cannot let a wildcard
        # cross a segment boundary. Both use the (parent, name) index.
        ng: Any = bindparam("name_glob")
        self._glob_in = self._compile(
            select(i.c.name).where(i.c.parent == p, self._matches(i.c.name, ng))
            .order_by(i.c.name), ("parent", "name_glob"))
        # Patterns over several levels: one statement per number of levels, built on first
        # use (see _chain_stmt).
        self._glob_chains: dict[int, Compiled] = {}
        self._glob_below = self._compile(
            select(i.c.parent, i.c.name, i.c.kind)
            .where(or_(i.c.parent == p, and_(i.c.parent >= lo, i.c.parent < hi)),
                   self._matches(i.c.name, ng)),
            ("parent", "lo", "hi", "name_glob"))
        # A whole one-chunk file: one row (inline bytes), or the inode then chunk 0 by rowid;
        # only the three columns the caller needs.
        self._read_first = self._compile(
            select(i.c.kind, i.c.size, i.c.mode, *first).select_from(with_first)
            .where(i.c.parent == p, i.c.name == n), ("parent", "name"))
        # Whole file in one statement: the inode and all its chunks (or its inline bytes).
        self._read_whole = self._compile(union_all(
            select(i.c.id, i.c.kind, i.c.size, i.c.chunk_size, c.c.idx, c.c.data, i.c.data,
                   c.c.codec, c.c.sums, i.c.codec, i.c.sums, c.c.id)
            .select_from(i.outerjoin(c, and_(c.c.id >= key * _SPAN,
                                             c.c.id < (key + literal_column("1")) * _SPAN)))
            .where(i.c.parent == p, i.c.name == n),
            from_base(i.c.id, i.c.kind, i.c.size, i.c.chunk_size, b.c.idx, b.c.data, i.c.data,
                      b.c.codec, b.c.sums, i.c.codec, i.c.sums, b.c.id)
            .where(i.c.parent == p, i.c.name == n)),
            ("parent", "name", "parent", "name"))
        # One chunk plus the file's current size; no row at all means the inode is gone.
        # Chunk 0 has its own statements: it may be the inline bytes.
        self._read_chunk0 = self._compile(
            select(i.c.size, i.c.generation, *first).select_from(with_first)
            .where(i.c.id == bindparam("id")), ("id",))

        def part(codec: Any, sums: Any, data: Any, seal: Any) -> list[Any]:
            """An uncompressed value's blocks covering the part read, with the sums (all:
            the seal covers them all, a few bytes per 4 KiB); a compressed value whole (it
            can only be decompressed whole)."""
            raw_value = codec == literal_column("0")
            return [codec, sums,
                    case((raw_value, func.substr(data, bindparam("start"),
                                                 bindparam("length"))), else_=data), seal]

        self._read_part0 = self._compile(
            select(i.c.size, i.c.generation, *part(*first)).select_from(with_first)
            .where(i.c.id == bindparam("id")),
            ("start", "length", "id"))
        at_idx, chunk_at = one_chunk(bindparam("idx"))
        self._read_chunk = self._compile(
            select(i.c.size, i.c.generation, *chunk_at).select_from(at_idx)
            .where(i.c.id == bindparam("id")),
            ("idx", "idx", "id"))
        self._read_part = self._compile(
            select(i.c.size, i.c.generation, *part(*chunk_at)).select_from(at_idx)
            .where(i.c.id == bindparam("id")),
            ("start", "length", "idx", "idx", "id"))
        # The file's size and the chunks of [first, stop): big reads in one statement. The
        # inline bytes come last (NULL unless the file has no chunks).
        self._read_span = self._compile(union_all(
            select(i.c.size, i.c.generation, c.c.idx, c.c.data, i.c.data, c.c.codec, c.c.sums,
                   i.c.codec, i.c.sums, c.c.id)
            .select_from(i.outerjoin(c, and_(c.c.id >= key * _SPAN + bindparam("first"),
                                             c.c.id < key * _SPAN + bindparam("stop"))))
            .where(i.c.id == bindparam("id")),
            from_base(i.c.size, i.c.generation, b.c.idx, b.c.data, i.c.data, b.c.codec,
                      b.c.sums, i.c.codec, i.c.sums, b.c.id, first=bindparam("first"),
                      stop=bindparam("stop"))
            .where(i.c.id == bindparam("id"))),
            ("first", "stop", "id", "first", "stop", "id"))
        self._inode_size = self._compile(
            select(i.c.size, i.c.generation, i.c.data.isnot(None), key,
                   or_(i.c.content.isnot(None), i.c.refs > literal_column("0")), i.c.base)
            .where(i.c.id == bindparam("id")), ("id",))
        self._chunk_data = self._compile(
            select(c.c.codec, c.c.sums, c.c.data).where(c.c.id == bindparam("cid")), ("cid",))
        self._digest = self._compile(
            select(i.c.digest).where(i.c.id == bindparam("id")), ("id",))
        # An entry's stored spelling, found by its folded key (case-insensitive databases).
        self._spelling = self._compile(
            select(i.c.parent, i.c.name).where(i.c.fparent == p, i.c.fname == n),
            ("parent", "name"))
        # Every file placed in the tree, for the deep check.
        self._files = self._compile(
            select(i.c.id, i.c.parent, i.c.name, i.c.size, i.c.chunk_size, i.c.digest,
                   i.c.mode)
            .where(i.c.kind == literal_column(str(int(InodeKind.FILE))), i.c.parent.isnot(None))
            .order_by(i.c.parent, i.c.name), ())
        # Rows out of the tree that nobody shares: unfinished writes (a hidden row that others
        # still read is kept until they go).
        self._staging = self._compile(
            select(i.c.id, i.c.owner).where(i.c.parent.is_(None), i.c.refs == literal_column("0")),
            ())
        # -- shared content ------------------------------------------------------------------
        self._sharing = self._compile(
            select(i.c.content, i.c.refs).where(i.c.id == bindparam("id")), ("id",))
        src = i.alias("src")
        # A new file reads the chunks its source reads (inline bytes are copied instead).
        self._share = self._compile(
            update(i).where(i.c.id == bindparam("dst"))
            .values(content=select(func.coalesce(src.c.content, src.c.id))
                    .where(src.c.id == bindparam("src"), src.c.data.is_(None))
                    .scalar_subquery(),
                    base=select(src.c.base).where(src.c.id == bindparam("src"))
                    .scalar_subquery()), ("src", "src", "dst"))
        self._ref = self._compile(
            update(i).where(i.c.id == select(src.c.content).where(src.c.id == bindparam("id"))
                            .scalar_subquery())
            .values(refs=i.c.refs + literal_column("1")), ("id",))
        self._unref = self._compile(
            update(i).where(i.c.id == bindparam("id")).values(refs=i.c.refs - literal_column("1")),
            ("id",))
        self._own = self._compile(
            update(i).where(i.c.id == bindparam("id")).values(content=null(), base=null()),
            ("id",))
        # Chunk-level sharing (format 0014): a file's sharing, and that of the key it reads.
        k = i.alias("k")
        b_row = i.alias("b_row")
        self._overlay_state = self._compile(
            select(i.c.content, i.c.refs, i.c.base, k.c.refs, k.c.parent.is_(None), k.c.base)
            .select_from(i.outerjoin(k, k.c.id == i.c.content))
            .where(i.c.id == bindparam("id")), ("id",))
        # An overlay (format 0014): a hidden row with the file's metadata, read by one, whose
        # missing chunks are the base's; ONE statement.
        like = i.alias("like")
        self._new_overlay = self._compile(
            insert(i).from_select(
                ["parent", "name", "kind", "mode", "size", "chunk_size", "ctime_ns", "mtime_ns",
                 "generation", "refs", "base", "codec"],
                select(null(), literal_column("'overlay'", Text), like.c.kind, like.c.mode,
                       like.c.size, like.c.chunk_size, like.c.ctime_ns, like.c.mtime_ns,
                       literal_column("0"), literal_column("1"),
                       bindparam("base", type_=BigInteger), literal_column("0"))
                .where(like.c.id == bindparam("like"))).returning(i.c.id),
            ("base", "like"))
        # The file reads another key (and base), and gains ``n`` readers, in one statement.
        self._reads_counted = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(content=bindparam("content"), base=bindparam("base"),
                    refs=i.c.refs + bindparam("n", type_=BigInteger)),
            ("content", "n", "base", "id"))
        # Chunk ``idx`` of a key, else of its base: (codec, sums, data, id) of either.
        self._chunk_of = self._compile(
            select(c.c.codec, c.c.sums, c.c.data, c.c.id)
            .where(c.c.id.in_([bindparam("own"), bindparam("base")])), ("own", "base"))
        self._set_base = self._compile(
            update(i).where(i.c.id == bindparam("id")).values(base=bindparam("base")),
            ("base", "id"))
        self._add_refs = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(refs=i.c.refs + bindparam("n", type_=BigInteger)), ("n", "id"))
        # A holder's state after it lost a reader: (hidden, refs, content, base).
        self._holder_state = self._compile(
            select(i.c.parent.is_(None), i.c.refs, i.c.content, i.c.base)
            .where(i.c.id == bindparam("id")), ("id",))
        self._reading_others = self._compile(
            select(i.c.id).where(i.c.content.isnot(None)), ())
        ck_rows = checkpoint_tables(schema)[1]
        self._copy_size = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(size=select(b_row.c.size).where(b_row.c.id == bindparam("src"))
                    .scalar_subquery()), ("src", "id"))
        # The overlays on a row's chunks: (id, refs).
        self._overlays_on = self._compile(
            select(i.c.id, i.c.refs).where(i.c.base == bindparam("base"), i.c.content.is_(None)),
            ("base",))
        # A base's chunks an overlay has its own of (read by nobody once the overlay is the
        # base's only reader).
        self._drop_overridden = self._compile(
            delete(c).where(c.c.id >= bindparam("lo_id"), c.c.id < bindparam("hi_id"),
                            select(literal_column("1")).select_from(b).where(
                                b.c.id == c.c.id + bindparam("shift", type_=BigInteger))
                            .exists()),
            ("lo_id", "hi_id", "shift"))
        # An overlay folded into its base: its readers read the base (its own row: itself).
        self._fold_readers = self._compile(
            update(i).where(i.c.content == bindparam("overlay"))
            .values(content=case((i.c.id == bindparam("base"), null()),
                                 else_=bindparam("base2", type_=BigInteger)),
                    base=null()),
            ("base", "base2", "overlay"))
        self._fold_entries = self._compile(
            update(ck_rows).where(ck_rows.c.content == bindparam("overlay"))
            .values(content=bindparam("base", type_=BigInteger), base=null()),
            ("base", "overlay"))
        self._chunk_ids_in = self._compile(
            select(c.c.id).where(c.c.id >= bindparam("lo_id"), c.c.id < bindparam("hi_id")),
            ("lo_id", "hi_id"))
        # Chunks [first, stop) of a key, else of its base: how a checkpoint entry's content
        # is read (its holder's row may read another key by now).
        kb = c.alias("kb")
        kkey: Any = bindparam("key", type_=BigInteger)
        kbase: Any = bindparam("base", type_=BigInteger)
        self._read_key = self._compile(union_all(
            select(c.c.idx, c.c.data, c.c.codec, c.c.sums, c.c.id)
            .where(c.c.id >= kkey * _SPAN + bindparam("first"),
                   c.c.id < kkey * _SPAN + bindparam("stop")),
            select(kb.c.idx, kb.c.data, kb.c.codec, kb.c.sums, kb.c.id)
            .where(kb.c.id >= kbase * _SPAN + bindparam("first"),
                   kb.c.id < kbase * _SPAN + bindparam("stop"),
                   ~select(literal_column("1")).select_from(c)
                   .where(c.c.id == kkey * _SPAN + kb.c.id - kbase * _SPAN).exists())),
            ("key", "first", "key", "stop", "base", "first", "base", "stop", "key", "base"))
        # A hidden holder nobody reads any more: its chunks, then its row.
        gone = and_(i.c.parent.is_(None), i.c.refs <= literal_column("0"))
        self._drop_holder_chunks = self._compile(
            delete(c).where(c.c.id >= bindparam("lo_id"), c.c.id < bindparam("hi_id"),
                            select(literal_column("1")).select_from(i)
                            .where(i.c.id == bindparam("id"), gone).exists()),
            ("lo_id", "hi_id", "id"))
        self._drop_holder = self._compile(
            delete(i).where(i.c.id == bindparam("id"), gone), ("id",))
        # A file others read, deleted or replaced whole: it leaves the tree, kept for them.
        c_ext = c.alias("c_ext")
        # Where its uncompressed chunks end (what check() compares with the size).
        extent = select(func.coalesce(
            func.max(c_ext.c.idx * i.c.chunk_size + func.length(c_ext.c.data)),
            literal_column("0")))\
            .where(c_ext.c.id >= i.c.id * _SPAN,
                   c_ext.c.id < (i.c.id + literal_column("1")) * _SPAN,
                   c_ext.c.codec == literal_column("0")).scalar_subquery()
        self._hide = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(parent=null(), name=literal_column("'shared-'", Text).concat(cast(i.c.id, Text)),
                    fparent=null(), fname=null(), owner=null(),
                    # Its chunks may be a base frozen at a larger size than the file had
                    # last (format 0014): the size covers them.
                    size=case((extent > i.c.size, extent), else_=i.c.size)), ("id",))
        self._set_refs = self._compile(
            update(i).where(i.c.id == bindparam("id")).values(refs=bindparam("refs")),
            ("refs", "id"))
        self._shared_in = self._compile(
            select(i.c.id).where(or_(i.c.parent == p, and_(i.c.parent >= lo, i.c.parent < hi)),
                                 or_(i.c.content.isnot(None), i.c.refs > literal_column("0"))),
            ("parent", "lo", "hi"))

        # -- writes -------------------------------------------------------------------------
        def new_inode(kind: Any, **columns: Any) -> dict[str, Any]:
            """VALUES of a new inode row (generation 0), the rest bound by name unless
            ``columns`` say otherwise."""
            return {"parent": p, "name": n, "kind": kind, "mode": bindparam("mode"),
                    "size": bindparam("size"), "chunk_size": bindparam("chunk_size"),
                    "ctime_ns": bindparam("ctime"), "mtime_ns": bindparam("mtime"),
                    "generation": literal_column("0"), "fparent": bindparam("fparent"),
                    "fname": bindparam("fname"), **columns}

        # A new file's content columns: its digest, and its inline bytes as stored.
        new_content: dict[str, Any] = {"digest": bindparam("digest"), "codec": bindparam("codec"),
                   "sums": bindparam("sums"), "data": bindparam("data")}
        self._insert = self._compile(
            insert(i).values(new_inode(bindparam("kind"), owner=bindparam("owner"),
                                       uid=bindparam("uid"), gid=bindparam("gid"),
                                       **new_content)),
            ("parent", "name", "kind", "mode", "size", "chunk_size", "ctime", "mtime", "owner",
             "fparent", "fname", "uid", "gid", "digest", "codec", "sums", "data"))
        # Before a file with inline bytes is written in place: they become chunk 0 (read,
        # checked against the file's digest, written back sealed as chunk 0).
        self._inline_of = self._compile(
            select(i.c.codec, i.c.sums, i.c.data, i.c.digest, i.c.chunk_size)
            .where(i.c.id == bindparam("id")), ("id",))
        # A window of a file's chunk rows, to copy them sealed to their new place.
        self._chunk_rows_in = self._compile(
            select(c.c.id, c.c.idx, c.c.codec, c.c.sums, c.c.data)
            .where(c.c.id >= bindparam("lo_id"), c.c.id < bindparam("hi_id"))
            .order_by(c.c.id).limit(literal_column(str(_COPY_WINDOW)))
            .offset(literal_column("0")), ("lo_id", "hi_id"))
        self._spill_clear = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(data=null(), codec=literal_column("0"), sums=null()), ("id",))
        self._put_chunk = self._compile(self._upsert_chunk(c),
                                        ("cid", "id", "idx", "codec", "sums", "data"))
        # A new inode's chunks: nothing to conflict with (inode ids are never reused).
        self._add_chunk = self._compile(
            insert(c).values(id=bindparam("cid"), inode_id=bindparam("id"),
                             idx=bindparam("idx"), codec=bindparam("codec"),
                             sums=bindparam("sums"), data=bindparam("data")),
            ("cid", "id", "idx", "codec", "sums", "data"))
        self._drop_chunks_from = self._compile(
            delete(c).where(c.c.id >= bindparam("lo_id"), c.c.id < bindparam("hi_id")),
            ("lo_id", "hi_id"))
        # A write in place: the digest is no longer known (``digest()`` computes it again).
        self._set_size = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(size=bindparam("size"), mtime_ns=bindparam("mtime"), digest=null()),
            ("size", "mtime", "id"))
        self._set_digest = self._compile(
            update(i).where(i.c.id == bindparam("id")).values(digest=bindparam("digest")),
            ("digest", "id"))
        self._set_mode = self._compile(
            update(i).where(i.c.id == bindparam("id")).values(mode=bindparam("mode")),
            ("mode", "id"))
        # chown (format 0009): -1 keeps a value, as os.chown's; the mode too (the caller
        # clears set-id bits there when it must).
        self._set_owner = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(uid=bindparam("uid"), gid=bindparam("gid"), mode=bindparam("mode")),
            ("mode", "uid", "gid", "id"))
        self._set_times = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(mtime_ns=bindparam("mtime")), ("mtime", "id"))
        self._place = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(parent=p, name=n, size=bindparam("size"), ctime_ns=bindparam("ctime"),
                    mtime_ns=bindparam("mtime"), owner=null(), fparent=bindparam("fparent"),
                    fname=bindparam("fname"), uid=bindparam("uid"), gid=bindparam("gid"),
                    digest=bindparam("digest")),
            ("parent", "name", "size", "ctime", "mtime", "fparent", "fname", "uid", "gid",
             "digest", "id"))
        # Whole-content replacement in place (no index entry moves): a new generation.
        self._rewrite = self._compile(
            update(i).where(i.c.id == bindparam("id"))
            .values(size=bindparam("size"), chunk_size=bindparam("chunk_size"),
                    mode=bindparam("mode"), mtime_ns=bindparam("mtime"),
                    generation=i.c.generation + literal_column("1"), **new_content),
            ("mode", "size", "chunk_size", "mtime", "digest", "codec", "sums", "data", "id"))
        # The common save: an existing file with no chunk rows (inline bytes, or empty) gets
        # new inline content. Finding and rewriting it is ONE statement.
        self._rewrite_small = self._compile(
            update(i).where(i.c.parent == p, i.c.name == n,
                            i.c.kind == literal_column(str(int(InodeKind.FILE))),
                            or_(i.c.data.isnot(None), i.c.size == literal_column("0")))
            .values(size=bindparam("size"), mode=bindparam("mode"), mtime_ns=bindparam("mtime"),
                    chunk_size=bindparam("cs"), **new_content,
                    generation=i.c.generation + literal_column("1")),
            ("mode", "size", "cs", "mtime", "digest", "codec", "sums", "data", "parent",
             "name"))
        # The common create: a new file in an existing directory, in one statement (no
        # lookup first). If the parent is not a directory the row gets kind 0, which the
        # CHECK on kind refuses; OR IGNORE turns that, and an existing entry (UNIQUE), into
        # "no row inserted", and the caller takes the full path. (An INSERT ... SELECT ...
        # WHERE EXISTS would copy through a temporary table: 7.5 us against 5.1.)
        parent_is_dir = (select(literal_column("1")).select_from(i)
                         .where(i.c.parent == bindparam("pp"), i.c.name == bindparam("pn"),
                                i.c.kind == literal_column(str(int(InodeKind.DIRECTORY))))
                         .exists())

        def if_parent_is_dir(kind: InodeKind) -> Any:
            return case((parent_is_dir, literal_column(str(int(kind)))),
                        else_=literal_column("0"))

        self._create_file = self._compile(
            self._insert_ignoring(i).values(
                new_inode(if_parent_is_dir(InodeKind.FILE), **new_content)),
            ("parent", "name", "pp", "pn", "mode", "size", "chunk_size", "ctime", "mtime",
             "fparent", "fname", "digest", "codec", "sums", "data"))
        # The bulk create, for files whose parents the caller has just made or checked in
        # the same transaction: no parent probe per row (1.5 of ~9 us a row). An existing
        # entry is still ignored (UNIQUE), which the caller sees in the count.
        self._create_file_in_dir = self._compile(
            self._insert_ignoring(i).values(
                new_inode(literal_column(str(int(InodeKind.FILE))), **new_content)),
            ("parent", "name", "mode", "size", "chunk_size", "ctime", "mtime", "fparent",
             "fname", "digest", "codec", "sums", "data"))
        # Many new directories in one executemany, parents before children: the same
        # rule, a row whose parent is not (yet) a directory is refused and ignored.
        self._create_dir = self._compile(
            self._insert_ignoring(i).values(
                new_inode(if_parent_is_dir(InodeKind.DIRECTORY), size=literal_column("0"),
                          chunk_size=literal_column("0"))),
            ("parent", "name", "pp", "pn", "mode", "ctime", "mtime", "fparent", "fname"))
        # Deletes remove chunks explicitly (a rowid range, or the subtree's files through the
        # (inode_id, idx) index) instead of relying on ON DELETE CASCADE: a host
        # application's connections may run with foreign keys off.
        self._delete_chunks_of = self._compile(
            delete(c).where(c.c.id >= bindparam("lo_id"), c.c.id < bindparam("hi_id")),
            ("lo_id", "hi_id"))
        self._delete = self._compile(delete(i).where(i.c.id == bindparam("id")), ("id",))
        tree_rows = and_(or_(i.c.id == bindparam("id"), i.c.parent == p,
                             and_(i.c.parent >= lo, i.c.parent < hi)),
                         i.c.refs == literal_column("0"))
        self._delete_tree_chunks = self._compile(
            delete(c).where(c.c.inode_id.in_(
                select(i.c.id).where(tree_rows, i.c.kind == literal_column("1")))),
            ("id", "parent", "lo", "hi"))
        self._delete_tree = self._compile(delete(i).where(tree_rows), ("id", "parent", "lo", "hi"))
        # Renaming a directory is ONE statement: the entry gets its new parent and name, every
        # descendant's parent gets the new prefix.
        self._move = self._compile(
            update(i)
            .where(or_(i.c.id == bindparam("id"), i.c.parent == p,
                       and_(i.c.parent >= lo, i.c.parent < hi)))
            .values(
                parent=case((i.c.id == bindparam("id2"), bindparam("new_parent")),
                            else_=bindparam("new_path", type_=Text)
                            + func.substr(i.c.parent, bindparam("cut"))),
                name=case((i.c.id == bindparam("id3"), bindparam("new_name")), else_=i.c.name),
                # The folded key moves the same way (folding works character by character).
                fparent=case((i.c.id == bindparam("id4"), bindparam("new_fparent")),
                             else_=bindparam("new_fpath", type_=Text)
                             + func.substr(i.c.fparent, bindparam("fcut"))),
                fname=case((i.c.id == bindparam("id5"), bindparam("new_fname")),
                           else_=i.c.fname),
            ),
            None)

    @functools.cached_property
    def checkpoints(self) -> CheckpointStatements:
        """The checkpoints' statements (compiled on first use: most sessions never need
        them)."""
        return CheckpointStatements(self.schema, self.dialect)

    # -- reads ----------------------------------------------------------------------------
    def lookup(self, raw: Any, parent: str, name: str) -> tuple[Any, ...] | None:
        return stored.inode(raw.execute(self._lookup.sql, (parent, name)).fetchone(), 0,
                            parent, name)

    def open_node(self, raw: Any, parent: str, name: str) -> OpenNode | None:
        """The entry with its first chunk's bytes (see ``OpenNode``)."""
        row = stored.inode(raw.execute(self._open_lookup.sql, (parent, name)).fetchone(), 1,
                           parent, name)
        if row is None:
            return None
        return OpenNode._make((*row[:1 + N_INODE],
                               first_chunk(self.content, row, 1 + N_INODE, parent, name)))

    def find(self, raw: Any, parent: str, name: str) -> Node | None:
        """The entry as a node of the top layer (see ``Node``)."""
        row = stored.inode(raw.execute(self._find.sql, (parent, name)).fetchone(), 1,
                           parent, name)
        return None if row is None else Node._make(row)

    def exists(self, raw: Any, parent: str, name: str) -> bool:
        return raw.execute(self._exists.sql, (parent, name)).fetchone() is not None

    def lookup_pair(self, raw: Any, parent: str, name: str
                    ) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
        """(row of the directory ``parent``, row of the entry ``parent/name``), one statement."""
        pp, pn = split(parent)
        prow = row = None
        for r in raw.execute(self._lookup_pair.sql, (pp, pn, parent, name)):
            # (parent, name, *INODE_COLUMNS); the tail leaves as the inode row. Positional: a
            # slice is the cheapest copy (unpacking then tuple() costs 2.3x, on every write).
            r_parent, r_name, inode = r[0], r[1], r[2:]
            stored.inode(inode, 0, r_parent, r_name)
            if r_parent == parent and r_name == name:
                row = inode
            else:
                prow = inode
        return prow, row

    def list_names(self, raw: Any, parent: str) -> list[str]:
        rows = raw.execute(self._list_names.sql, (parent,)).fetchall()
        return stored.names([name for name, in rows], parent)

    def list_entries(self, raw: Any, parent: str) -> list[tuple[Any, ...]]:
        """(name, *INODE_COLUMNS) of each entry of a directory, sorted by name."""
        return stored.inodes(raw.execute(self._list_entries.sql, (parent,)).fetchall(), 1, parent)

    def has_children(self, raw: Any, parent: str) -> bool:
        return raw.execute(self._has_children.sql, (parent,)).fetchone() is not None

    def subtree(self, raw: Any, path: str, lo: str, hi: str) -> list[tuple[Any, ...]]:
        """(parent, name, *INODE_COLUMNS) of everything strictly below ``path``."""
        return stored.inodes(raw.execute(self._subtree.sql, (path, lo, hi)).fetchall(), 2, path)

    def glob_in(self, raw: Any, parent: str, name_glob: str) -> list[str]:
        rows = raw.execute(self._glob_in.sql, (parent, self._pattern(name_glob))).fetchall()
        return stored.names([name for name, in rows], parent)

    def glob_chain(self, raw: Any, prefix: str, globs: Sequence[str]
                   ) -> list[str]:
        """Paths ``prefix/g1/.../gk`` (k >= 2) whose every segment matches its GLOB: a join
        walking down the levels, each an index range on (parent, name) below the entries
        the level above matched, so only matching directories' entries are visited and each
        costs one GLOB on its name (a GLOB on whole paths would let ``*`` cross a "/").
        The last level comes back as one "/"-joined string of names per directory (names
        never hold "/"): a row per directory instead of a row, and a str, per match."""
        stmt = self._glob_chains.get(len(globs))
        if stmt is None:
            stmt = self._glob_chains[len(globs)] = self._chain_stmt(len(globs))
        values = {"prefix": prefix, "below": prefix if prefix.endswith("/") else prefix + "/"}
        values.update((f"g{k}", self._pattern(g)) for k, g in enumerate(globs))
        out: list[str] = []
        for parent, names in raw.execute(stmt.sql,
                                         tuple(values[n] for n in stmt.params)).fetchall():
            if names is not None:
                stored.texts((parent, names), prefix)
                out += [parent + "/" + n for n in names.split("/")]
        return out

    def _chain_stmt(self, levels: int) -> Compiled:
        ts = [self.inodes.alias(f"l{k}") for k in range(levels)]
        slash: Any = literal_column("'/'")

        def path_of(k: int) -> Any:  # the path of level k's entry, as SQL
            if k == 0:
                return bindparam("below", type_=Text) + ts[0].c.name
            return ts[k].c.parent + slash + ts[k].c.name

        conds = [ts[0].c.parent == bindparam("prefix"),
                 self._matches(ts[0].c.name, bindparam("g0"))]
        for k in range(1, levels - 1):
            conds += [ts[k].c.parent == path_of(k - 1),
                      self._matches(ts[k].c.name, bindparam(f"g{k}"))]
        last, dirs = ts[-1], path_of(levels - 2)
        names = (select(self._joined(last.c.name, slash))
                 .where(last.c.parent == dirs,
                        self._matches(last.c.name, bindparam(f"g{levels - 1}")))
                 .scalar_subquery())
        return self._compile(select(dirs, names).where(*conds))

    def glob_below(self, raw: Any, top: str, lo: str, hi: str, name_glob: str
                   ) -> list[tuple[str, str, int]]:
        rows = raw.execute(self._glob_below.sql,
                           (top, lo, hi, self._pattern(name_glob))).fetchall()
        for parent, name, kind in rows:
            stored.texts((parent,), top)
            if type(kind) is not int:
                raise stored.damaged(f"kind {kind!r:.40}", stored.path_of(parent, name))
        return [(parent, name, kind) for parent, name, kind in rows
                if not stored.bad_name(name)]

    # -- what a driver reports back (a backend's subclass) -------------------------------
    def data_version(self, raw: Any) -> int:
        """Changes whenever ANOTHER connection commits to this schema's database."""
        raise NotImplementedError

    def read_blob(self, raw: Any, inode_id: int, idx: int, off: int,
                  length: int, data_version: int) -> bytes | None:
        """Incremental BLOB I/O on one uncompressed chunk, if the database is still at
        ``data_version`` (None if another connection committed since). The version is read
        while the blob is open, i.e. in the very snapshot the bytes come from: no commit can
        slip in between, and it costs a third of a separate probe. With verification on, the
        4 KiB blocks covering the part are read and checked against the chunk's sums (a second
        BLOB on the same row). None too if there are no such bytes (a sparse hole, inline
        bytes, or a file that is gone): a query tells."""
        raise NotImplementedError

    def insert(self, raw: Any, parent: str | None, name: str, kind: int, mode: int,
               size: int, chunk_size: int, ctime: int, mtime: int, owner: str | None = None,
               data: bytes | None = None, digest: bytes | None = None,
               ids: tuple[int | None, int | None] = (None, None)) -> int:
        """A new row; ``ids``: its (uid, gid), None for not set."""
        raise NotImplementedError

    def create_file(self, raw: Any, parent: str, name: str, mode: int, size: int,
                    chunk_size: int, now: int, data: bytes | None = None,
                    digest: bytes | None = None) -> int | None:
        """Insert a new file (with its inline bytes ``data``, or none: the caller writes
        chunks, whose ``digest`` it gives) if ``parent`` is a directory and ``parent/name``
        is free; its id, or None (nothing changed) otherwise."""
        raise NotImplementedError

    def create_file_in_dir(self, raw: Any, parent: str, name: str, mode: int,
                           size: int, chunk_size: int, now: int, data: bytes | None = None,
                           digest: bytes | None = None) -> int | None:
        """``create_file`` in a directory the caller knows exists in this transaction (no
        probe of the parent): its id, or None if ``parent/name`` is taken."""
        raise NotImplementedError

    def create_files(self, raw: Any, files: Sequence[tuple[str, str, bytes]],
                     mode: int, chunk_size: int, now: int) -> int:
        """New files with inline bytes for many (parent, name, data) in ONE executemany, in
        directories the caller has made or checked in this transaction (a root-level
        ``parent`` must be "/", never ""); how many rows were inserted (an existing entry
        is ignored)."""
        raise NotImplementedError

    def create_dirs(self, raw: Any, dirs: Sequence[str], mode: int,
                    now: int) -> int:
        """New directories at the normalised ``dirs`` (parents listed before children), in
        ONE executemany; how many rows were inserted. A path that exists (as anything) or
        whose parent is not a directory is skipped, so a short count means: check them."""
        raise NotImplementedError

    def read_first(self, raw: Any, parent: str, name: str
                   ) -> tuple[int, int, int, bytes | None] | None:
        """(kind, size, mode, data of chunk 0) of the entry, None if there is none."""
        row = raw.execute(self._read_first.sql, (parent, name)).fetchone()
        if row is None:
            return None
        kind, size, mode, _, _, _, _ = row  # then (codec, sums, data, seal): see first_chunk
        if type(kind) is not int or not 1 <= kind <= 3 or type(size) is not int \
                or not 0 <= size < stored.MAX_FILE_SIZE or type(mode) is not int \
                or not stored.type_ok(kind, mode):
            where = stored.path_of(parent, name)
            stored.sized(size, where)
            raise stored.damaged(f"kind {kind!r:.40}, mode {mode!r:.40}", where)
        return kind, size, mode, first_chunk(self.content, row, 3, parent, name)

    def read_whole(self, raw: Any, parent: str, name: str) -> list[WholeRow]:
        """The inode with each of its chunks, by chunk (see ``WholeRow``)."""
        rows = _by_index(raw.execute(self._read_whole.sql, (parent, name, parent, name))
                         .fetchall(), 4)
        if not rows:
            return []
        where = stored.path_of(parent, name)
        ident, kind, size, cs, _, _, inline, _, _, inline_codec, inline_sums, _ = rows[0]
        stored.sized(size, where)
        if type(kind) is not int or type(cs) is not int or not 0 < cs <= stored.MAX_CHUNK_SIZE:
            raise stored.damaged(f"kind {kind!r:.40}, chunk size {cs!r:.40}", where)
        _chunks(rows, 4, where)
        content = self.content
        try:
            if inline is not None:
                return [WholeRow(ident, kind, size, cs, None, None,
                                 _decode(content, inline, inline_codec, inline_sums, 0, INLINE,
                                         cs))]
            return [WholeRow(ident, kind, size, cs, idx,
                             _decode(content, data, codec, sums, idx, seal, cs), None)
                    for _, _, _, _, idx, data, _, codec, sums, _, _, seal in rows]
        except Damage as exc:
            raise exc.in_file(where, cs) from None

    def read_chunk(self, raw: Any, inode_id: int, idx: int) -> Sized | None:
        """The file's size and generation with chunk ``idx``, None if the inode is gone."""
        if idx == 0:
            row = raw.execute(self._read_chunk0.sql, (inode_id,)).fetchone()
        else:
            row = raw.execute(self._read_chunk.sql, (idx, idx, inode_id)).fetchone()
        if row is None:
            return None
        size, gen, codec, sums, data, seal = row
        return _sized_row((size, gen, _decode(self.content, data, codec, sums, idx, seal)))

    def read_part(self, raw: Any, inode_id: int, idx: int, start: int,
                  length: int) -> Sized | None:
        """``length`` bytes of chunk ``idx`` from ``start``: of an uncompressed chunk only
        the 4 KiB blocks covering them are read (and checked); a compressed one whole."""
        first = start // BLOCK
        blocks = (start + length + BLOCK - 1) // BLOCK - first
        args = (first * BLOCK + 1, blocks * BLOCK)
        if idx == 0:
            row = raw.execute(self._read_part0.sql, (*args, inode_id)).fetchone()
        else:
            row = raw.execute(self._read_part.sql, (*args, idx, idx, inode_id)).fetchone()
        if row is None:
            return None
        size, gen, codec, sums, data, seal = row
        if data is not None:
            try:
                if codec == 0:
                    data = self.content.decode_part(data, sums, first * BLOCK, first * BLOCK,
                                                    seal, blocks * BLOCK)
                    data = data[start - first * BLOCK:start - first * BLOCK + length]
                else:
                    data = self.content.decode(data, codec, sums, stored.MAX_CHUNK_SIZE, seal)
                    data = data[start:start + length]
            except Damage as exc:
                exc.idx = idx
                raise
        return _sized_row((size, gen, data))

    def read_span(self, raw: Any, inode_id: int, first: int, stop: int,
                  limit: int = stored.MAX_CHUNK_SIZE) -> list[ChunkRow]:
        """Chunks first..stop-1 (inline bytes come as chunk 0); no rows: the inode is gone.
        ``limit``: the most bytes one chunk may hold (the file's chunk size): a value that
        decompresses past it is damage, found before more is produced."""
        span = (first, min(stop, CHUNK_SPAN), inode_id)
        rows = _by_index(raw.execute(self._read_span.sql, span + span).fetchall(), 2)
        if not rows:
            return []
        size, gen, _, _, inline, _, _, codec, sums, _ = rows[0]
        stored.sized(size)
        stored.generation(gen)
        _chunks(rows, 2)
        content = self.content
        if inline is not None:
            return [ChunkRow(size, gen, 0, _decode(content, inline, codec, sums, 0, INLINE,
                                                   limit))] \
                if first == 0 else [ChunkRow(size, gen, None, None)]
        return [ChunkRow(size, gen, idx, _decode(content, data, codec, sums, idx, seal, limit))
                for size, gen, idx, data, _, codec, sums, _, _, seal in rows]

    def inode_size(self, raw: Any, inode_id: int) -> InodeSize | None:
        """The file's size and generation, None if the inode is gone."""
        row = raw.execute(self._inode_size.sql, (inode_id,)).fetchone()
        if row is None:
            return None
        size, gen, inline, key, shared, base = row
        if type(key) is not int or (base is not None and type(base) is not int):
            raise stored.damaged(f"content key {key!r:.40}/{base!r:.40} of inode {inode_id}")
        return InodeSize(stored.sized(size), stored.generation(gen), bool(inline), key,
                         bool(shared), base)

    def chunk_data(self, raw: Any, inode_id: int, idx: int) -> bytes | None:
        cid = inode_id * CHUNK_SPAN + idx
        row = raw.execute(self._chunk_data.sql, (cid,)).fetchone()
        if row is None:
            return None
        codec, sums, data = row
        return _decode(self.content, data, codec, sums, idx, cid)

    def digest_of(self, raw: Any, inode_id: int) -> bytes | None:
        """The SHA-256 stored for a file: None if it is not known (or the file is gone)."""
        row = raw.execute(self._digest.sql, (inode_id,)).fetchone()
        digest = None
        if row is not None:
            digest, = row
        if digest is not None and (type(digest) is not bytes or len(digest) != 32):
            raise stored.damaged(f"digest {digest!r:.40} of inode {inode_id}")
        return digest

    def spelling(self, raw: Any, path: str) -> str | None:
        """How the entry whose folded key is ``path``'s is spelled here (None: no such
        entry)."""
        row = raw.execute(self._spelling.sql, tuple(map(fold, split(path)))).fetchone()
        if row is None:
            return None
        parent, name = row
        return stored.path_of(parent, name)

    def files(self, raw: Any) -> list[tuple[Any, ...]]:
        """(id, parent, name, size, chunk_size, digest, mode) of every file in the tree."""
        return raw.execute(self._files.sql).fetchall()

    @functools.cached_property
    def _group_row(self) -> Compiled:
        g = group_table(self.schema)
        # A group's stored bytes are never more than its plain bytes (it is stored only
        # compressed), at most GROUP_MAX: a longer value (forged) is not even fetched, as
        # every slice naming it would fetch it again.
        fits = func.length(g.c.data) <= literal_column(str(GROUP_MAX))
        return self._compile(select(g.c.digest, g.c.codec, g.c.sums,
                                    case((fits, g.c.data), else_=null()))
                             .where(g.c.id == bindparam("id")), ("id",))

    def group_row(self, raw: Any, ident: int) -> tuple[Any, ...] | None:
        """(digest, codec, sums, data) of this database's group ``ident`` (format 0013), or
        None; ``data`` is None when it is longer than ``GROUP_MAX`` (never a group's)."""
        row = raw.execute(self._group_row.sql, (ident,)).fetchone()
        return None if row is None else tuple(row)

    def set_digest(self, raw: Any, inode_id: int, digest: bytes) -> None:
        """Record a digest computed by reading the file (inside the write transaction that
        read it)."""
        raw.execute(self._set_digest.sql, (digest, inode_id))

    def staging_rows(self, raw: Any) -> list[tuple[int, str | None]]:
        return raw.execute(self._staging.sql).fetchall()

    # -- writes ---------------------------------------------------------------------------
    def _stored(self, data: bytes | None, digest: bytes | None) -> tuple[Any, ...]:
        """(digest, codec, sums, stored bytes) of a new file's content: its inline bytes
        ``data`` (their digest computed here), or none (the caller writes chunks and knows
        the ``digest``, if anyone does)."""
        if data is None:
            return digest, 0, None, None
        stored_data, codec, sums = self.content.encode(data, INLINE)
        return hashlib.sha256(data).digest(), codec, sums, stored_data

    def spill(self, raw: Any, inode_id: int) -> None:
        """Move a file's inline bytes to chunk 0 (before it is written in place). They are
        checked first, against their digest too: inline bytes are sealed as inline, not to
        their row, and a write in place forgets the digest, so this is the last moment a
        small file's bytes moved from another row can be told."""
        row = raw.execute(self._inline_of.sql, (inode_id,)).fetchone()
        codec, sums, data, digest, cs = row if row is not None else (0, None, None, None, 0)
        if type(data) is bytes and data:
            limit = cs if type(cs) is int and 0 < cs <= stored.MAX_CHUNK_SIZE \
                else stored.MAX_CHUNK_SIZE
            plain = self.content.decode(data, codec, sums, limit, INLINE)
            if self.content.verify and digest is not None \
                    and hashlib.sha256(plain).digest() != digest:
                raise damaged("content of another file (it does not match the file's SHA-256)",
                              0)
            cid = inode_id * CHUNK_SPAN
            raw.execute(self._add_chunk.sql, (cid, inode_id, 0, codec,
                                              reseal(sums, INLINE, cid), data))
        raw.execute(self._spill_clear.sql, (inode_id,))

    def put_chunk(self, raw: Any, inode_id: int, idx: int, data: bytes,
                  new: bool = False) -> None:
        """Write a chunk (``new``: the inode was just created, a plain INSERT suffices)."""
        stmt = self._add_chunk if new else self._put_chunk
        cid = inode_id * CHUNK_SPAN + idx
        raw.execute(stmt.sql, (cid, inode_id, idx, *self._chunk_values(data, cid)))

    def put_chunks(self, raw: Any, rows: Iterable[tuple[int, int, Any]],
                   new: bool = False) -> None:
        """rows: (inode_id, idx, data)."""
        stmt = self._add_chunk if new else self._put_chunk
        raw.executemany(stmt.sql, ((i * CHUNK_SPAN + x, i, x,
                                    *self._chunk_values(d, i * CHUNK_SPAN + x))
                                   for i, x, d in rows))

    def _chunk_values(self, data: Any, cid: int) -> tuple[int, bytes, bytes]:
        """(codec, sums, stored bytes) of a chunk to write at ``cid``."""
        stored_data, codec, sums = self.content.encode(bytes(data), cid)
        return codec, sums, stored_data

    def copy_content(self, raw: Any, src_id: int, dst_id: int) -> None:
        """Give the new inode ``dst_id`` the content of ``src_id``: chunks are shared (no byte
        moves; see ``detach`` for what a later write does), inline bytes copied."""
        inline = self._inline_copy()
        raw.execute(inline.sql, tuple(dst_id if k == "dst" else src_id for k in inline.params))
        raw.execute(self._share.sql, (src_id, src_id, dst_id))
        raw.execute(self._ref.sql, (dst_id,))

    # -- shared content: the statements; when to run them is the content store's ----------
    def sharing_of(self, raw: Any, inode_id: int) -> tuple[int | None, int]:
        """(the inode whose chunks it reads, or None; how many inodes read its own)."""
        row = raw.execute(self._sharing.sql, (inode_id,)).fetchone()
        if row is None:
            return None, 0
        content, refs = row
        if (content is not None and type(content) is not int) or type(refs) is not int:
            raise stored.damaged(f"sharing {content!r:.20}/{refs!r:.20} of inode {inode_id}")
        return content, refs

    def own(self, raw: Any, inode_id: int) -> None:
        """The file reads its own chunks from now on."""
        raw.execute(self._own.sql, (inode_id,))

    def release_holder(self, raw: Any, key: int) -> None:
        """One reader fewer for ``key``'s chunks; a hidden holder with none left goes (and an
        overlay's base loses it as a reader in turn); a live file that reads another key
        drops its own, frozen chunks once nobody reads them (format 0014)."""
        raw.execute(self._unref.sql, (key,))
        row = raw.execute(self._holder_state.sql, (key,)).fetchone()
        if row is not None:
            self.released(raw, key, *row)

    def released(self, raw: Any, key: int, hidden: Any, refs: Any, content: Any,
                 base: Any) -> None:
        """After ``key`` lost readers (now ``refs``): a hidden holder with none left goes,
        and an overlay's base loses it as a reader in turn (never more: a base is no
        overlay); a live file that reads another key drops its own, frozen chunks."""
        for level in range(2):
            if refs == 1:
                self._settle(raw, key, hidden, content)
                return
            if type(refs) is not int or refs > 0:
                return
            if not hidden:
                if content is not None:
                    self.drop_chunks_from(raw, key, 0)
                return
            self._drop_hidden(raw, key)
            if level or type(base) is not int or base == key or content is not None:
                return
            key = base
            raw.execute(self._unref.sql, (key,))
            row = raw.execute(self._holder_state.sql, (key,)).fetchone()
            if row is None:
                return
            hidden, refs, content, base = row

    def _settle(self, raw: Any, base: int, hidden: Any, content: Any) -> None:
        """``base`` has one reader left. If that is an overlay on it, and the base's chunks
        are no live file's own content (the base is hidden, or a file that reads that very
        overlay), the base's chunks the overlay has its own of are read by nobody: they go.
        If the overlay has one reader too, it is folded back into the base (its chunks copied
        over the base's, its reader reading the base; a file that was its own overlay's base
        reads its own chunks again), so that what is stored is what is read."""
        overlays = raw.execute(self._overlays_on.sql, (base,)).fetchall()
        if len(overlays) != 1:
            return
        overlay, refs = overlays[0]
        if type(overlay) is not int or overlay == base or not (hidden or content == overlay):
            return
        lo, hi = base * CHUNK_SPAN, (base + 1) * CHUNK_SPAN
        raw.execute(self._drop_overridden.sql, (lo, hi, (overlay - base) * CHUNK_SPAN))
        if refs != 1:
            return
        self.copy_chunks(raw, overlay, base)
        raw.execute(self._fold_readers.sql, (base, base, overlay))
        raw.execute(self._fold_entries.sql, (base, overlay))
        if content == overlay:  # the file read its own overlay: nobody else reads the base
            raw.execute(self._set_refs.sql, (0, base))
        else:
            raw.execute(self._copy_size.sql, (overlay, base))
        raw.execute(self._set_refs.sql, (0, overlay))
        self._drop_hidden(raw, overlay)

    def _drop_hidden(self, raw: Any, key: int) -> None:
        """A hidden holder nobody reads any more: its chunks, then its row."""
        raw.execute(self._drop_holder_chunks.sql, (key * CHUNK_SPAN, (key + 1) * CHUNK_SPAN,
                                                   key))
        raw.execute(self._drop_holder.sql, (key,))

    def overlay_state(self, raw: Any, inode_id: int) -> tuple[Any, ...]:
        """(content, refs, base) of a file, and (refs, hidden, base) of the key it reads
        (None, None, None: its own)."""
        row = raw.execute(self._overlay_state.sql, (inode_id,)).fetchone()
        if row is None:
            return (None, 0, None, None, None, None)
        content, refs, base, key_refs, key_hidden, key_base = row
        if any(v is not None and type(v) is not int
               for v in (content, base, key_refs, key_base)) or type(refs) is not int \
                or (content is not None and key_refs is None):
            raise stored.damaged(f"sharing {tuple(row)!r:.60} of inode {inode_id}")
        return content, refs, base, key_refs, bool(key_hidden), key_base

    def reads(self, raw: Any, inode_id: int, content: int | None, base: int | None,
              readers: int = 0) -> None:
        """The file reads ``content``'s chunks, else ``base``'s (and gains ``readers``)."""
        raw.execute(self._reads_counted.sql, (content, readers, base, inode_id))

    def chunk_of(self, raw: Any, key: int, base: int | None, idx: int) -> bytes | None:
        """Chunk ``idx`` as a file whose key is ``key`` reads it: the key's, else the base's
        (None: a hole)."""
        own = key * CHUNK_SPAN + idx
        other = own if base is None else base * CHUNK_SPAN + idx
        rows = raw.execute(self._chunk_of.sql, (own, other)).fetchall()
        if not rows:
            return None
        codec, sums, data, cid = max(rows, key=lambda r: r[3] == own)
        return _decode(self.content, data, codec, sums, idx, cid)

    def reading_others(self, raw: Any) -> set[int]:
        """The rows that read another row's chunks (their own, if any, are others')."""
        return {ident for (ident,) in raw.execute(self._reading_others.sql)}

    def set_base(self, raw: Any, inode_id: int, base: int | None) -> None:
        raw.execute(self._set_base.sql, (base, inode_id))

    def add_refs(self, raw: Any, inode_id: int, n: int) -> None:
        raw.execute(self._add_refs.sql, (n, inode_id))

    def new_overlay(self, raw: Any, like: int, base: int) -> int:
        """A hidden row read by one file (``like``, whose metadata it copies) whose missing
        chunks are ``base``'s (format 0014)."""
        row = raw.execute(self._new_overlay.sql, (base, like)).fetchone()
        return int(row[0])

    def read_key(self, raw: Any, key: int, base: int | None, first: int, stop: int,
                 limit: int = stored.MAX_CHUNK_SIZE) -> list[ChunkRow]:
        """Chunks first..stop-1 of ``key``, else of ``base`` (a checkpoint entry's content,
        read without its holder's row), as ``read_span``'s rows (size and generation 0)."""
        stop = min(stop, CHUNK_SPAN)
        b = -1 if base is None else base
        rows = _by_index(raw.execute(self._read_key.sql, (key, first, key, stop, b, first, b,
                                                          stop, key, b)).fetchall(), 0)
        _chunks(rows, 0)
        content = self.content
        return [ChunkRow(0, 0, idx, _decode(content, data, codec, sums, idx, seal, limit))
                for idx, data, codec, sums, seal in rows]

    def hide(self, raw: Any, inode_id: int) -> None:
        """The file's row leaves the tree, kept for the files that read its chunks."""
        raw.execute(self._hide.sql, (inode_id,))

    def copy_chunks(self, raw: Any, src: int, dst: int, below: int | None = None) -> None:
        """Inode ``src``'s chunks copied to be inode ``dst``'s own, sealed to their new place:
        read a window at a time and inserted with their new seals, each row written once
        (copied in SQL then resealed, every row was written twice: an UPDATE of ``sums``
        rewrites the whole record, data and all). Damage where they came from stops the
        copy (``Damage`` naming the chunk: the caller adds the file)."""
        lo, hi = src * CHUNK_SPAN, (src + 1) * CHUNK_SPAN
        if below is not None:  # only chunks below that index, and only those dst lacks
            hi = src * CHUNK_SPAN + below
            have = {cid % CHUNK_SPAN for (cid,) in raw.execute(
                self._chunk_ids_in.sql, (dst * CHUNK_SPAN, dst * CHUNK_SPAN + below))}
        else:
            have = set()
        moved = (dst - src) * CHUNK_SPAN
        while True:
            rows = raw.execute(self._chunk_rows_in.sql, (lo, hi)).fetchall()
            out = []
            for cid, idx, codec, sums, data in rows:
                if cid % CHUNK_SPAN in have:
                    continue
                if idx != cid % CHUNK_SPAN:  # (ids of a range are ints; idx is stored)
                    exc = damaged(f"chunk {cid % CHUNK_SPAN} numbered {idx!r:.20}", 0)
                    exc.idx = cid % CHUNK_SPAN
                    raise exc
                try:
                    out.append((cid + moved, dst, idx, codec, reseal(sums, cid, cid + moved),
                                data))
                except Damage as exc:
                    exc.idx = cid % CHUNK_SPAN
                    raise
            if out:
                raw.executemany(self._add_chunk.sql, out)
            if len(rows) < _COPY_WINDOW:
                return
            lo = rows[-1][0] + 1

    def shared_in(self, raw: Any, path: str, lo: str, hi: str) -> list[int]:
        """The entries below ``path`` that share content or whose content is shared."""
        return [ident for (ident,) in raw.execute(self._shared_in.sql, (path, lo, hi))]

    def drop_chunks_from(self, raw: Any, inode_id: int, first: int) -> None:
        raw.execute(self._drop_chunks_from.sql, (inode_id * CHUNK_SPAN + first,
                                                 (inode_id + 1) * CHUNK_SPAN))

    def set_size(self, raw: Any, inode_id: int, size: int, mtime: int) -> None:
        """After a write in place (the digest becomes unknown)."""
        raw.execute(self._set_size.sql, (size, mtime, inode_id))

    def set_mode(self, raw: Any, inode_id: int, mode: int) -> None:
        raw.execute(self._set_mode.sql, (mode, inode_id))

    def set_owner(self, raw: Any, inode_id: int, uid: int | None, gid: int | None,
                  mode: int) -> None:
        """An entry's owner, group and mode, in one statement."""
        raw.execute(self._set_owner.sql, (mode, uid, gid, inode_id))

    def touch(self, raw: Any, inode_id: int, mtime: int) -> None:
        raw.execute(self._set_times.sql, (mtime, inode_id))

    def place(self, raw: Any, inode_id: int, parent: str, name: str, size: int,
              ctime: int, mtime: int, digest: bytes | None = None,
              ids: tuple[int | None, int | None] = (None, None)) -> None:
        """Give a staging inode its place in the tree (the commit of a ``w``/``x`` handle),
        with the digest its writer computed (None: not known) and the (uid, gid) of the file
        it replaces (None: not set)."""
        raw.execute(self._place.sql, (parent, name, size, ctime, mtime, fold(parent),
                                      fold(name), *ids, digest, inode_id))

    def rewrite(self, raw: Any, inode_id: int, size: int, chunk_size: int,
                mode: int, mtime: int, data: bytes | None = None,
                digest: bytes | None = None) -> None:
        """New content metadata, and the inline bytes (None: the caller writes chunks, whose
        ``digest`` it gives)."""
        raw.execute(self._rewrite.sql, (mode, size, chunk_size, mtime,
                                        *self._stored(data, digest), inode_id))

    def rewrite_small(self, raw: Any, parent: str, name: str, data: bytes,
                      chunk_size: int, mode: int, mtime: int) -> bool:
        """Give the file at parent/name, if it has no chunk rows, the inline content
        ``data`` (see ``_rewrite_small``). False (nothing changed) if there is no such
        file."""
        return raw.execute(self._rewrite_small.sql,
                           (mode, len(data), chunk_size, mtime, *self._stored(data, None),
                            parent, name)).rowcount == 1

    def delete(self, raw: Any, inode_id: int) -> None:
        """A row and its own chunks (the content store decides when: see its ``delete``)."""
        raw.execute(self._delete_chunks_of.sql, (inode_id * CHUNK_SPAN,
                                                 (inode_id + 1) * CHUNK_SPAN))
        raw.execute(self._delete.sql, (inode_id,))

    def delete_tree(self, raw: Any, inode_id: int, path: str, lo: str, hi: str) -> int:
        """An entry and everything below it, rows and chunks, in two statements whatever the
        size (shared content below it is the store's to release first)."""
        raw.execute(self._delete_tree_chunks.sql, (inode_id, path, lo, hi))
        return int(raw.execute(self._delete_tree.sql, (inode_id, path, lo, hi)).rowcount)

    def move(self, raw: Any, inode_id: int, old_path: str, lo: str, hi: str,
             new_parent: str, new_name: str, new_path: str) -> None:
        values = {"id": inode_id, "parent": old_path, "lo": lo, "hi": hi, "id2": inode_id,
                  "new_parent": new_parent, "new_path": new_path, "cut": len(old_path) + 1,
                  "id3": inode_id, "new_name": new_name, "id4": inode_id,
                  "new_fparent": fold(new_parent), "new_fpath": fold(new_path),
                  "fcut": len(fold(old_path)) + 1, "id5": inode_id, "new_fname": fold(new_name)}
        raw.execute(self._move.sql, tuple(values[k] for k in self._move.params))


#: Columns an entry keeps in a checkpoint, in the order they are copied both ways.
CHECKPOINT_COLUMNS = ("parent", "name", "kind", "mode", "size", "chunk_size", "ctime_ns",
                      "mtime_ns", "content", "fparent", "fname", "uid", "gid", "base", "digest",
                      "codec", "sums", "data")


class CheckpointStatements:
    """The statements behind checkpoints (format 0005), compiled once per repository for its
    dialect. Every one runs inside the caller's transaction; none commits.

    A checkpoint copies the tree's rows (metadata, inline bytes as stored) into
    ``vfs_checkpoint_inodes`` in ONE statement, so it is one state of the tree whatever the
    isolation level; a chunked file's entry reads the chunks of the live inode that holds them
    (``coalesce(content, id)``, as a copy does), counted in that inode's ``refs`` by one more
    statement over the entries just copied (the write transaction holds the tree's lock on both
    backends, so nothing changes between the two)."""

    def __init__(self, schema: str, dialect: Any) -> None:
        i, c = _tables_for(schema)
        h, k = checkpoint_tables(schema)

        def comp(stmt: Any, params: Sequence[str] | None = None) -> Compiled:
            return compile_stmt(stmt, params, dialect)

        def ck() -> Any:
            return cast(bindparam("ck"), BigInteger)

        zero: Any = literal_column("0")
        file_kind: Any = literal_column(str(int(InodeKind.FILE)))
        header = (h.c.id, h.c.name, h.c.created_ns, h.c.auto, h.c.files)
        self.by_name = comp(select(*header).where(h.c.name == bindparam("name")), ("name",))
        self.listing = comp(select(*header).order_by(h.c.id), ())
        self.add = comp(insert(h).values(name=bindparam("name"), created_ns=bindparam("created"),
                                         auto=bindparam("auto"), files=zero).returning(h.c.id),
                        ("name", "created", "auto"))
        shares = and_(i.c.kind == file_kind, i.c.data.is_(None))
        cols: list[Any] = [i.c[col] for col in CHECKPOINT_COLUMNS]
        cols[CHECKPOINT_COLUMNS.index("content")] = case(
            (shares, func.coalesce(i.c.content, i.c.id)), else_=null())
        # Every entry of the tree but the root (its parent is ''); hidden rows (NULL) neither.
        self.copy_in = comp(
            insert(k).from_select(["checkpoint_id", "id", *CHECKPOINT_COLUMNS],
                                  select(ck(), i.c.id, *cols)
                                  .where(i.c.parent > literal_column("''"))), ("ck",))
        self.count_files = comp(
            update(h).where(h.c.id == ck()).values(
                files=select(func.count()).select_from(k)
                .where(k.c.checkpoint_id == ck(), k.c.kind == file_kind).scalar_subquery()),
            ("ck", "ck"))
        held = select(k.c.content).where(k.c.checkpoint_id == ck(), k.c.content.isnot(None))
        readers = (select(func.count()).select_from(k)
                   .where(k.c.checkpoint_id == ck(), k.c.content == i.c.id).scalar_subquery())
        # Each holder gains (or loses) one reader per entry of the checkpoint that reads it.
        self.ref = comp(update(i).where(i.c.id.in_(held)).values(refs=i.c.refs + readers))
        self.unref = comp(update(i).where(i.c.id.in_(held)).values(refs=i.c.refs - readers))
        # The holders left with no reader: (id, hidden, refs, content, base), for the
        # content store's ``released``.
        ov = i.alias("ov")
        has_overlay = select(ov.c.id).where(ov.c.base == i.c.id, ov.c.content.is_(None)).exists()
        self.released = comp(
            select(i.c.id, i.c.parent.is_(None), i.c.refs, i.c.content, i.c.base)
            .where(i.c.id.in_(held),
                   or_(and_(i.c.refs <= zero, or_(i.c.parent.is_(None), i.c.content.isnot(None))),
                       and_(i.c.refs == literal_column("1"), has_overlay))))
        self.drop_entries = comp(delete(k).where(k.c.checkpoint_id == ck()), ("ck",))
        self.drop = comp(delete(h).where(h.c.id == ck()), ("ck",))
        # What dropping it would free (the content store's ``released`` frees it): its
        # inline bytes, and
        # - every chunk of a holder it alone reads: hidden, or a live file's own, frozen
        #   chunks (the file reads an overlay by now);
        # - the chunks of a holder left with one reader, an overlay on it, that the overlay
        #   has its own of (format 0014), unless that overlay goes too;
        # - one level further, the same for the bases of the overlays that go
        #   (``bases_of_going``, ``base_state``, ``staying_overlays``).
        alone = select(i.c.id).where(
            i.c.id.in_(held), i.c.refs == readers,
            or_(i.c.parent.is_(None), i.c.content.isnot(None)))
        chunk_bytes = select(func.coalesce(func.sum(func.length(c.c.data)), zero))
        self.alone_chunks = comp(chunk_bytes.where(c.c.inode_id.in_(alone)))
        oc = c.alias("oc")
        overlay = and_(ov.c.content.is_(None), ov.c.base.isnot(None))
        ov_readers = (select(func.count()).select_from(k)
                      .where(k.c.checkpoint_id == ck(), k.c.content == ov.c.id)
                      .scalar_subquery())
        goes = and_(ov.c.parent.is_(None), ov.c.refs == ov_readers)
        span: Any = literal_column(str(CHUNK_SPAN))
        # Readers of the overlay's base (its holder's, counted through the overlay so that
        # the count runs only for holders with an overlay: most have none).
        base_readers = (select(func.count()).select_from(k)
                        .where(k.c.checkpoint_id == ck(), k.c.content == ov.c.base)
                        .scalar_subquery())
        self.overridden_chunks = comp(
            chunk_bytes.select_from(c.join(i, c.c.inode_id == i.c.id)
                         .join(ov, and_(ov.c.base == i.c.id, ov.c.content.is_(None)))
                         .join(oc, oc.c.id == c.c.id + (ov.c.id - i.c.id) * span))
            .where(i.c.id.in_(held), i.c.refs == base_readers + literal_column("1"),
                   or_(i.c.parent.is_(None), i.c.content == ov.c.id), ~goes))
        self.bases_of_going = comp(
            select(ov.c.base, func.count()).where(ov.c.id.in_(held), overlay, goes)
            .group_by(ov.c.base))
        self.base_state = comp(
            select(i.c.refs, i.c.parent.is_(None), i.c.content, readers)
            .where(i.c.id == bindparam("id")))
        self.staying_overlays = comp(
            select(ov.c.id).where(ov.c.base == bindparam("id"), overlay, ~goes))
        # Bytes of a key's chunks: all of them, or those another key has its own of.
        self.key_bytes = comp(
            chunk_bytes.where(c.c.id >= bindparam("lo"), c.c.id < bindparam("hi")),
            ("lo", "hi"))
        self.key_bytes_under = comp(
            chunk_bytes.select_from(c.join(oc, oc.c.id == c.c.id + bindparam("moved")))
            .where(c.c.id >= bindparam("lo"), c.c.id < bindparam("hi")),
            ("moved", "lo", "hi"))
        self.inline_bytes = comp(
            select(func.coalesce(func.sum(func.length(k.c.data)), zero))
            .where(k.c.checkpoint_id == ck()), ("ck",))
        self.entries = comp(
            select(k.c.id, *(k.c[col] for col in CHECKPOINT_COLUMNS))
            .where(k.c.checkpoint_id == ck()).order_by(k.c.parent, k.c.name), ("ck",))
        # The holders a checkpoint reads, as they are now: (id, parent, kind, content,
        # chunk_size, refs).
        self.holders = comp(
            select(i.c.id, i.c.parent, i.c.kind, i.c.content, i.c.chunk_size, i.c.refs,
                   i.c.base)
            .where(i.c.id.in_(held)))
        # Restore: the entries become live rows again (new ids: ids are never reused), each
        # reading what its checkpoint entry reads.
        live = [c_ for c_ in CHECKPOINT_COLUMNS]
        self.restore = comp(
            insert(i).from_select([*live, "generation", "refs", "owner"],
                                  select(*(k.c[col] for col in live), zero, zero, null())
                                  .where(k.c.checkpoint_id == ck())), ("ck",))

    @staticmethod
    def args(stmt: Compiled, **kw: Any) -> tuple[Any, ...]:
        return tuple(kw[p] for p in stmt.params)


def _sized_row(row: Any) -> Sized | None:
    """A (size, generation, data) row (or None) whose values are sound."""
    if row is None:
        return None
    size, gen, data = row
    if type(size) is not int or not 0 <= size < stored.MAX_FILE_SIZE or \
            type(gen) is not int or (data is not None and type(data) is not bytes):
        stored.sized(size)
        stored.generation(gen)
        stored.content(data)
    return Sized(size, gen, data)


def _decode(content: Content, data: Any, codec: Any, sums: Any, idx: Any, seal: Any,
            limit: int = stored.MAX_CHUNK_SIZE) -> bytes | None:
    """The plain bytes of a stored value (None: no value), checked (see ``Content``) as
    stored at ``seal`` (the place its row says it is)."""
    if data is None:
        return None
    if type(seal) is not int:
        raise damaged(f"a value whose place is {seal!r:.20}", 0)
    try:
        return content.decode(data, codec, sums, limit, seal)
    except Damage as exc:
        exc.idx = idx
        raise


def first_chunk(content: Content, row: Sequence[Any], at: int, parent: Any, name: Any
                ) -> bytes | None:
    """The plain bytes of a file's first chunk, from the (codec, sums, data, seal) columns at
    ``at`` of its row (damage is reported with the path of ``parent``/``name``)."""
    try:
        return _decode(content, row[at + 2], row[at], row[at + 1], 0, row[at + 3])
    except Damage as exc:
        raise exc.in_file(stored.path_of(parent, name), 1) from None


def _by_index(rows: list[Any], at: int) -> list[Any]:
    """A ranged read's rows in chunk order (the key's and the base's arms of its UNION ALL
    come one after the other: sorted here, not by a sort in the statement, so that a file with
    no base reads its chunks straight off the rowid range). A row with no chunk comes first."""
    if len(rows) > 1:
        rows.sort(key=lambda r: -1 if type(r[at]) is not int else r[at])
    return rows


def _chunks(rows: list[Any], at: int, where: str | None = None) -> None:
    """(..., idx, data, ...) chunk rows at ``at``: an integer index (or NULL: no chunk) and
    bytes."""
    for row in rows:
        idx, data = row[at], row[at + 1]
        if (idx is not None and type(idx) is not int) or (data is not None and type(data) is not bytes):
            stored.content(data, where)
            raise stored.damaged(f"chunk index {idx!r:.40}", where)


class StackRepository:
    """Statements over one group of layers attached to one connection: ``entries`` are
    (priority index, schema) pairs, 0 being the top layer. Every lookup is ONE statement, a
    UNION ALL over the schemas ordered by priority; listings rank the union with a window
    function so each name appears once, from its highest layer (whiteouts included, so that
    callers can merge several groups and drop them).
    """

    #: The dialect the statements are compiled for (a backend's subclass gives it, the globs,
    #: and, where its placeholders differ, the one statement written as text).
    dialect: Any

    # -- dialect hooks (a backend's subclass) -----------------------------------------------
    def _matches(self, column: Any, pattern: Any) -> Any:
        raise NotImplementedError

    def _not_matches(self, column: Any, pattern: Any) -> Any:
        raise NotImplementedError

    def _pattern(self, glob: str) -> str:
        raise NotImplementedError

    def _resolve_first_text(self, branches: list[str]) -> str:
        """The branches of the resolve-with-first-chunk statement (each with the parameters
        ?1 = parent and ?2 = name) as one statement."""
        return " UNION ALL ".join(branches) + " ORDER BY 1 LIMIT 1"

    @staticmethod
    def _resolve_first_branch(prio: int, schema: str, keys: str) -> str:
        """One layer's branch of the resolve-with-first-chunk statement: (prio,
        *INODE_COLUMNS, codec, sums, data) of the inline bytes, or of chunk 0 (joined only
        when the path is found)."""
        cols = ", ".join(f"i.{c}" for c in INODE_COLUMNS)
        # Chunk 0 of the file's key, else of its base (format 0014).
        chunk = {c: f"coalesce(o.{c}, b.{c})" for c in ("codec", "sums", "data", "id")}
        return (f"SELECT {prio} AS prio, {cols}, CASE WHEN i.data IS NULL THEN "
                f"{chunk['codec']} ELSE i.codec END, CASE WHEN i.data IS NULL THEN "
                f"{chunk['sums']} ELSE i.sums END, coalesce(i.data, {chunk['data']}), CASE WHEN "
                f"i.data IS NULL THEN {chunk['id']} ELSE {INLINE} END "
                f"FROM {_q(schema)}.vfs_inodes AS i LEFT JOIN {_q(schema)}.vfs_chunks AS o "
                f"ON o.id = coalesce(i.content, i.id) * {CHUNK_SPAN} LEFT JOIN "
                f"{_q(schema)}.vfs_chunks AS b ON b.id = i.base * {CHUNK_SPAN} AND o.id IS NULL "
                f"WHERE {keys}")

    def __init__(self, entries: tuple[tuple[int, str], ...], content: Content = PLAIN,
                 folded: bool = False) -> None:
        self.entries = entries
        self.content = content
        #: Case-insensitive: entries are keyed by their folded (fparent, fname), the arguments
        #: folded; rows still carry each layer's stored spelling.
        self.folded = folded
        tables = [(prio, inode_table(schema)) for prio, schema in entries]
        dialect = self.dialect

        def comp(stmt: Any) -> Compiled:
            return compile_stmt(stmt, None, dialect)
        p: Any = bindparam("parent")
        n: Any = bindparam("name")
        lo: Any = bindparam("lo")
        hi: Any = bindparam("hi")
        ng: Any = bindparam("name_glob")

        def kp(t: Any) -> Any:
            return t.c.fparent if folded else t.c.parent

        def kn(t: Any) -> Any:
            return t.c.fname if folded else t.c.name

        # The columns a listing is ranked by: the output's own, or the folded key's.
        k_parent, k_name = ("kp", "kn") if folded else ("parent", "name")

        def union(cols: Any, where: Any) -> Any:
            def keyed(t: Any) -> list[Any]:
                out = list(cols(t))
                if folded:
                    out += [t.c.fparent.label("kp"), t.c.fname.label("kn")]
                return out
            return union_all(*[
                select(literal_column(str(prio)).label("prio"), *keyed(t)).where(where(t))
                for prio, t in tables]).subquery()

        def ranked(u: Any, keys: list[str], order: list[str]) -> Any:
            rk = select(*u.c, func.row_number().over(
                partition_by=[u.c[k] for k in keys], order_by=u.c.prio).label("rn")).subquery()
            cols = [c for c in rk.c if c.name not in ("rn", "kp", "kn")]
            return select(*cols).where(rk.c.rn == literal_column("1")).order_by(
                *[rk.c[k] for k in order])

        u = union(_inode_cols, lambda t: and_(kp(t) == p, kn(t) == n))
        self._resolve_all = comp(select(*[c for c in u.c if c.name not in ("kp", "kn")])
                                 .order_by(u.c.prio))
        self._list = comp(ranked(
            union(lambda t: [t.c.name, *_inode_cols(t)], lambda t: kp(t) == p),
            [k_name], ["name"]))
        def below(t: Any) -> Any:
            return or_(kp(t) == p, and_(kp(t) >= lo, kp(t) < hi))

        self._subtree = comp(ranked(
            union(lambda t: [t.c.parent, t.c.name, *_inode_cols(t)], below),
            [k_parent, k_name], ["parent", "name"]))
        self._glob_in = comp(ranked(
            union(lambda t: [t.c.name, t.c.kind],
                  lambda t: and_(kp(t) == p, self._matches(kn(t), ng))),
            [k_name], ["name"]))
        self._glob_level = comp(ranked(
            union(lambda t: [t.c.parent, t.c.name, t.c.kind],
                  lambda t: and_(self._matches(kp(t), bindparam("parent_glob")),
                                 kp(t) != literal_column("'/'"),
                                 self._not_matches(kp(t), bindparam("too_deep")),
                                 self._matches(kn(t), ng))),
            [k_parent, k_name], ["parent", "name"]))
        self._glob_below = comp(ranked(
            union(lambda t: [t.c.parent, t.c.name, t.c.kind],
                  lambda t: and_(below(t), self._matches(kn(t), ng))),
            [k_parent, k_name], ["parent", "name"]))
        # Resolution plus the winner's first chunk, in one statement: each branch reads its
        # inline bytes, or its chunk 0, only when it found the path, so a miss costs one
        # index probe per layer. Rows: (prio, *INODE_COLUMNS, inline bytes or chunk 0).
        keys = "i.fparent = ?1 AND i.fname = ?2" if folded else "i.parent = ?1 AND i.name = ?2"
        self._resolve_first_sql = self._resolve_first_text([
            self._resolve_first_branch(prio, schema, keys) for prio, schema in entries])
        # Keys (parent, name) present in the LOWER layers of this group at or below a path:
        # what a delete in the top layer must cover with whiteouts.
        lower = [(prio, t) for prio, t in tables if prio > 0]
        def at_or_below(t: Any) -> Any:
            return or_(and_(kp(t) == bindparam("at_parent"),
                            kn(t) == bindparam("at_name")), below(t))

        if lower:
            lower_keys = union_all(*[select(t.c.parent, t.c.name).where(at_or_below(t))
                                     for _, t in lower]).subquery()
            self._lower_keys: Compiled | None = comp(
                select(lower_keys.c.parent, lower_keys.c.name).distinct())
        else:
            self._lower_keys = None

    def _keys(self, parent: str, name: str) -> tuple[str, str]:
        return (fold(parent), fold(name)) if self.folded else (parent, name)

    def _range(self, path: str, lo: str, hi: str) -> tuple[str, str, str]:
        """A subtree's (path, lo, hi), folded when the stack is."""
        if not self.folded:
            return path, lo, hi
        path = fold(path)
        if lo == hi:  # an empty range stays empty
            return path, lo, hi
        return (path, *subtree_bounds(path))

    def _glob(self, pattern: str) -> str:
        return self._pattern(fold(pattern) if self.folded else pattern)

    def _query(self, raw: Any, sql: str, params: Any) -> Any:
        """Run one of this stack's statements (the driver hook: see PostgreSQL's)."""
        return raw.execute(sql, params)

    def _run(self, raw: Any, stmt: Compiled, **kw: Any) -> list[tuple[Any, ...]]:
        return self._query(raw, stmt.sql, tuple(kw[k] for k in stmt.params)).fetchall()

    def resolve(self, raw: Any, parent: str, name: str) -> tuple[Any, ...] | None:
        """(prio, *INODE_COLUMNS) of the highest layer having the path (maybe a whiteout)."""
        stmt = self._resolve_all
        return stored.inode(self._query(raw, stmt.sql, self._keys(parent, name)
                                        * (len(stmt.params) // 2)).fetchone(), 1, parent, name)

    def resolve_first(self, raw: Any, parent: str, name: str
                      ) -> tuple[Any, ...] | None:
        """(prio, *INODE_COLUMNS, first chunk's data) of the highest layer having the path."""
        row = stored.inode(self._query(raw, self._resolve_first_sql, self._keys(parent, name)
                                       ).fetchone(), 1, parent, name)
        if row is None:
            return None
        return (*row[:1 + N_INODE], first_chunk(self.content, self._first_chunk_of(raw, row),
                                                1 + N_INODE, parent, name))

    def _first_chunk_of(self, raw: Any, row: tuple[Any, ...]) -> Sequence[Any]:
        """The winner's row with (codec, sums, data, seal) of its inline bytes or chunk 0 after
        (prio, *INODE_COLUMNS):
        here the statement's own (see ``_resolve_first_branch``)."""
        return row

    def resolve_all(self, raw: Any, parent: str, name: str) -> list[tuple[Any, ...]]:
        fp, fn = self._keys(parent, name)
        return [stored.inode(r, 1, parent, name)
                for r in self._run(raw, self._resolve_all, parent=fp, name=fn)]

    def listing(self, raw: Any, parent: str) -> list[tuple[Any, ...]]:
        """(prio, name, *INODE_COLUMNS) per name, by name."""
        key = fold(parent) if self.folded else parent
        return stored.inodes(self._run(raw, self._list, parent=key), 2, parent)

    def subtree(self, raw: Any, path: str, lo: str, hi: str) -> list[tuple[Any, ...]]:
        """(prio, parent, name, *INODE_COLUMNS) per key strictly below ``path``."""
        key, lo, hi = self._range(path, lo, hi)
        return stored.inodes(self._run(raw, self._subtree, parent=key, lo=lo, hi=hi), 3, path)

    def glob_in(self, raw: Any, parent: str, name_glob: str) -> list[tuple[Any, ...]]:
        """(prio, name, kind)."""
        return _named(self._run(raw, self._glob_in, parent=fold(parent) if self.folded else parent,
                                name_glob=self._glob(name_glob)), 2)

    def glob_level(self, raw: Any, parent_glob: str, depth: int, name_glob: str
                   ) -> list[tuple[Any, ...]]:
        """(prio, parent, name, kind)."""
        return _named(self._run(raw, self._glob_level, parent_glob=self._glob(parent_glob),
                                too_deep=self._pattern("/*" * (depth + 1)),
                                name_glob=self._glob(name_glob)), 3)

    def glob_below(self, raw: Any, top: str, lo: str, hi: str, name_glob: str
                   ) -> list[tuple[Any, ...]]:
        """(prio, parent, name, kind)."""
        key, lo, hi = self._range(top, lo, hi)
        return _named(self._run(raw, self._glob_below, parent=key, lo=lo, hi=hi,
                                name_glob=self._glob(name_glob)), 3)

    def lower_keys(self, raw: Any, path: str, lo: str, hi: str
                   ) -> list[tuple[str, str]]:
        if self._lower_keys is None:
            return []
        at_parent, at_name = self._keys(*split(path))
        key, lo, hi = self._range(path, lo, hi)
        return self._run(raw, self._lower_keys, at_parent=at_parent, at_name=at_name,
                         parent=key, lo=lo, hi=hi)


def _named(rows: list[Any], kind_at: int) -> list[Any]:
    """(prio, [parent,] name, kind) rows: text paths, an integer kind; entries whose name is
    not one path segment left out (see stored.inodes)."""
    for row in rows:
        # Positional: one check over the four glob row shapes, the kind's place given.
        stored.texts(row[1:kind_at - 1])
        if type(row[kind_at]) is not int:
            raise stored.damaged(f"kind {row[kind_at]!r:.40}")
    names = [row[kind_at - 1] for row in rows]
    if stored.names(names) is names:
        return rows
    return [row for row in rows if not stored.bad_name(row[kind_at - 1])]


def _q(schema: str) -> str:
    """A schema name for SQL text: only generated aliases ever get here."""
    if not (schema.isidentifier() and schema.isascii()):
        raise ValueError(f"invalid schema alias {schema!r}")
    return f'"{schema}"'


_R = TypeVar("_R")


def compiled_once(make: Callable[..., _R]) -> Callable[..., _R]:
    """A repository's statements are compiled once per process for its arguments (an LRU).
    One whose content reads deltas (``Content.bases``: one VFS's stack) is a copy of the
    shared one (the same compiled statements) bound to that content, kept with those bases:
    the process-wide cache neither keeps a VFS alive nor gives its bases to another."""
    shared = functools.lru_cache(maxsize=64)(make)

    @functools.wraps(make)
    def made(*args: Any) -> _R:
        content = next((a for a in args if isinstance(a, Content)), None)
        if content is None or content.bases is None:
            return shared(*args)
        own: dict[Any, Any] = content.bases.statements
        repo = own.get(args)
        if repo is None:
            plain = tuple(replace(a, bases=None) if a is content else a for a in args)
            repo = copy.copy(shared(*plain))
            repo.content = content  # type: ignore[attr-defined]
            own[args] = repo
        return repo
    return made


@functools.lru_cache(maxsize=256)
def inline_copy(schema: str, dialect: Any) -> Compiled:
    """Copying a file's inline bytes as they are stored, and its digest, to another inode of
    ``schema`` (a copy is the same content), compiled for ``dialect``. One definition for
    every backend, compiled once per (schema, dialect)."""
    src_i, dst_i = inode_table(schema).alias("src"), inode_table(schema)
    return compile_stmt(
        update(dst_i).where(dst_i.c.id == bindparam("dst"))
        .values({col: select(src_i.c[col]).where(src_i.c.id == bindparam("src"))
                 .scalar_subquery() for col in ("digest", "codec", "sums", "data")}),
        None, dialect)


class ManifestRepository:
    """Layer manifests. Reading the identity goes through the ORM (rare, metadata); the
    writes that happen inside a file operation's transaction (recording the stack a save was
    made with) are compiled Core statements on the driver connection, like every write."""

    def _compile(self, stmt: Any, params: Sequence[str] | None = None) -> Compiled:
        return compile_stmt(stmt, params, self.dialect)

    #: What the driver raises for a table or column this revision has and a forged database
    #: lacks (the reads below then find nothing; ``check`` reports the shape).
    missing_table: tuple[type[BaseException], ...] = ()

    def __init__(self, schema: str, dialect: Any) -> None:
        self.dialect = dialect
        m: Table = LayerManifest.__table__  # type: ignore[assignment]
        if schema != "main":
            m = m.to_metadata(MetaData(), schema=schema)
        self.table = m
        self.schema = schema
        d: Table = Dictionary.__table__  # type: ignore[assignment]
        if schema != "main":
            d = d.to_metadata(MetaData(), schema=schema)
        self._dict_table = d
        self._dictionaries = self._compile(
            select(d.c.id, d.c.digest, d.c.data).order_by(d.c.created_ns, d.c.id), ())
        self._identity = self._compile(
            select(m.c.uuid, m.c.name, m.c.version, m.c.description, m.c.created_ns,
                   m.c.modified_ns, m.c.chunk_size, m.c.compression, m.c.case_insensitive)
            .where(m.c.role == literal_column("'self'"))
            .order_by(m.c.id), ())
        self._recorded = self._compile(
            select(m.c.name, m.c.uuid, m.c.priority, m.c.db_path)
            .where(m.c.role == literal_column("'underlay'")).order_by(m.c.id), ())
        self._forget = self._compile(delete(m).where(m.c.role == literal_column("'underlay'")), ())
        # A top that was ever written over underlays may hold whiteouts, which must stay
        # hidden when it is opened alone: a 'whiteouts' row says so for good (the recorded
        # stack is replaced by the next write, maybe with none).
        self._may_hide = self._compile(select(exists().where(
            m.c.role.in_([literal_column("'whiteouts'"), literal_column("'underlay'")]))), ())
        self._mark = self._compile(
            insert(m).from_select(
                ["role", "uuid", "created_ns", "modified_ns"],
                select(literal_column("'whiteouts'"),
                       literal_column("'00000000-0000-0000-0000-000000000000'"),
                       bindparam("now", type_=BigInteger), bindparam("now2", type_=BigInteger))
                .where(~exists().where(m.c.role == literal_column("'whiteouts'")))),
            ("now", "now2"))
        self._record = self._compile(
            insert(m).values(role=literal_column("'underlay'"), uuid=bindparam("uuid"),
                             name=bindparam("name"), priority=bindparam("priority"),
                             db_path=bindparam("db_path"), created_ns=bindparam("now"),
                             modified_ns=bindparam("now2")),
            ("uuid", "name", "now", "now2", "priority", "db_path"))
        self._touch = self._compile(
            update(m).where(m.c.role == literal_column("'self'"))
            .values(modified_ns=bindparam("now")), ("now",))
        self._describe = self._compile(
            update(m).where(m.c.role == literal_column("'self'"))
            .values(name=bindparam("name"), version=bindparam("version"),
                    description=bindparam("description"), modified_ns=bindparam("now")),
            ("name", "version", "description", "now"))

    def add(self, session: Any, manifest: LayerManifest) -> None:
        session.add(manifest)
        session.flush()

    def identity_row(self, raw: Any) -> Identity | None:
        """This database's identity (its values unchecked: see ``check``); None if there is
        none, or if the table lacks this revision's columns (a forged version row: ``check``
        reports the shape)."""
        try:
            row = raw.execute(self._identity.sql).fetchone()
        except self.missing_table:
            return None
        return None if row is None else Identity._make(row)

    def dictionaries(self, raw: Any) -> list[tuple[Any, Any, Any]]:
        """(id, digest, data) of every stored dictionary, oldest first (unchecked); none if
        the table is missing (a forged version row: ``check`` reports the shape)."""
        try:
            return raw.execute(self._dictionaries.sql).fetchall()
        except self.missing_table:
            return []

    @functools.cached_property
    def _recode(self) -> tuple[Compiled, ...]:
        d = self._dict_table
        i, c = inode_table(self.schema), chunk_table(self.schema)
        return (
            self._compile(insert(d).values(id=bindparam("id"), created_ns=bindparam("now"),
                                           digest=bindparam("digest"), data=bindparam("data")),
                          ("id", "now", "digest", "data")),
            self._compile(select(i.c.id).where(i.c.data.isnot(None)).order_by(i.c.id), ()),
            self._compile(select(c.c.id).order_by(c.c.id), ()),
            *(self._compile(update(t).where(t.c.id == bindparam("k"))
                            .values(codec=bindparam("codec"), sums=bindparam("sums"),
                                    data=bindparam("data")),
                            ("codec", "sums", "data", "k")) for t in (i, c)),
        )

    @functools.cached_property
    def _patch_rows(self) -> tuple[Compiled, Compiled]:
        m = self.table
        return (
            self._compile(select(m.c.uuid, m.c.name, m.c.version, m.c.description)
                          .where(m.c.role == literal_column("'patch'")).order_by(m.c.id), ()),
            self._compile(insert(m).values(role=literal_column("'patch'"), uuid=bindparam("uuid"),
                                           name=bindparam("name"), version=bindparam("version"),
                                           description=bindparam("description"),
                                           created_ns=bindparam("now"),
                                           modified_ns=bindparam("now2")),
                          ("uuid", "name", "version", "description", "now", "now2")))

    @functools.cached_property
    def _groups(self) -> tuple[Compiled, Compiled, Compiled, Compiled]:
        """(insert, probe by id, any at all, write again) of the groups (format 0013)."""
        g = group_table(self.schema)
        return (
            self._compile(insert(g).values(id=bindparam("id"), digest=bindparam("digest"),
                                           codec=bindparam("codec"), sums=bindparam("sums"),
                                           data=bindparam("data")),
                          ("id", "digest", "codec", "sums", "data")),
            self._compile(select(g.c.id).where(g.c.id == bindparam("id")), ("id",)),
            self._compile(select(exists(select(g.c.id))), ()),
            self._compile(update(g).where(g.c.id == bindparam("k"))
                          .values(digest=bindparam("digest"), codec=bindparam("codec"),
                                  sums=bindparam("sums"), data=bindparam("data")),
                          ("digest", "codec", "sums", "data", "k")))

    def add_group(self, raw: Any, ident: int, digest: bytes, codec: int, sums: bytes,
                  data: bytes) -> None:
        """Store a group (format 0013). Groups are named by their content, so a row the
        database holds under that id already is written again with these bytes: the same
        plain bytes for every slice that names it if it was sound, and if it was damaged
        (which would make the files grouped now unreadable) no longer."""
        add, probe, _, rewrite = self._groups
        if raw.execute(probe.sql, (ident,)).fetchone() is None:
            raw.execute(add.sql, (ident, digest, codec, sums, data))
        else:
            raw.execute(rewrite.sql, (digest, codec, sums, data, ident))

    def holds_groups(self, raw: Any) -> bool:
        """Whether the database holds a group (format 0013): its small files may read from
        them. (Asked at every open: the backends keep one repository per database kind.)"""
        try:
            return bool(raw.execute(self._groups[2].sql).fetchone()[0])
        except self.missing_table:
            return False

    def patch_record(self, raw: Any) -> tuple[Any, ...] | None:
        """(base uuid, base digest, new digest, new manifest JSON) of a patch pack, or None."""
        try:
            row = raw.execute(self._patch_rows[0].sql).fetchone()
        except self.missing_table:
            return None
        return None if row is None else tuple(row)

    def record_patch(self, raw: Any, base_uuid: str, base_digest: str,
                     new_digest: str, manifest: str, now: int) -> None:
        raw.execute(self._patch_rows[1].sql, (base_uuid, base_digest, new_digest, manifest,
                                               now, now))

    def add_dictionary(self, raw: Any, ident: int, now: int, digest: bytes,
                       data: bytes) -> None:
        raw.execute(self._recode[0].sql, (ident, now, digest, data))

    @functools.cached_property
    def _value_of(self) -> tuple[Compiled, Compiled]:
        i, c = inode_table(self.schema), chunk_table(self.schema)
        return tuple(self._compile(select(t.c.id, t.c.codec, t.c.sums, t.c.data)  # type: ignore[return-value]
                                   .where(t.c.id == bindparam("k")), ("k",)) for t in (i, c))

    def stored_values(self, raw: Any, chunks: bool
                      ) -> Iterable[list[tuple[Any, Any, Any, Any]]]:
        """Pages of (id, codec, sums, data): every inline value, or every chunk (the ids
        first, then a row at a time: never a table's content in memory)."""
        ids = [k for k, in raw.execute(self._recode[2 if chunks else 1].sql).fetchall()]
        one = self._value_of[1 if chunks else 0].sql
        for at in range(0, len(ids), 256):
            page = []
            for k in ids[at:at + 256]:
                row = raw.execute(one, (k,)).fetchone()
                if row is not None:
                    page.append(tuple(row))
            yield page

    @functools.cached_property
    def _chunk_ids_of(self) -> Compiled:
        c = chunk_table(self.schema)
        return self._compile(select(c.c.id).where(c.c.inode_id == bindparam("k"))
                             .order_by(c.c.id), ("k",))

    def values_of_file(self, raw: Any, inode_id: int
                       ) -> Iterable[tuple[bool, list[tuple[Any, Any, Any, Any]]]]:
        """(chunks?, [(id, codec, sums, data)]) of one file: its inline value, then its
        chunks a row at a time."""
        row = raw.execute(self._value_of[0].sql, (inode_id,)).fetchone()
        if row is not None and row[3] is not None:  # (id, codec, sums, data)
            yield False, [tuple(row)]
        one = self._value_of[1].sql
        for k, in raw.execute(self._chunk_ids_of.sql, (inode_id,)).fetchall():
            row = raw.execute(one, (k,)).fetchone()
            if row is not None:
                yield True, [tuple(row)]

    def restore_values(self, raw: Any, chunks: bool,
                       rows: list[tuple[int, bytes, bytes, int]]) -> None:
        """Store values again: (codec, sums, data, id) each."""
        if rows:
            raw.executemany(self._recode[4 if chunks else 3].sql, rows)

    def may_hold_whiteouts(self, raw: Any) -> bool:
        """Whether this database was ever written over underlays (so it may hold whiteouts)."""
        may, = raw.execute(self._may_hide.sql).fetchone()
        return bool(may)

    def recorded_stack(self, raw: Any) -> list[tuple[Any, ...]]:
        """(name, uuid, priority, db_path) of the underlays last recorded."""
        return raw.execute(self._recorded.sql).fetchall()

    def record_stack(self, raw: Any, layers: list[tuple[Any, ...]], now: int,
                     layered: bool = False) -> None:
        """Replace the recorded stack with ``layers``: (uuid, name, priority, db_path).
        ``layered``: the database has been written over underlays (now or before), so it is
        marked as one that may hold whiteouts (once)."""
        if layered:
            raw.execute(self._mark.sql, (now, now))
        raw.execute(self._forget.sql)
        raw.executemany(self._record.sql, [(u, n, now, now, p, d) for u, n, p, d in layers])
        raw.execute(self._touch.sql, (now,))

    def describe(self, raw: Any, name: str | None, version: str | None,
                 description: str | None, now: int) -> None:
        raw.execute(self._describe.sql, (name, version, description, now))




class CheckRepository:
    """The queries behind ``vfs-orm check``: SQLite's own check and the format's invariants.
    Each returns offending rows (at most ``limit``)."""

    def _compile(self, stmt: Any, params: Sequence[str] | None = None) -> Compiled:
        return compile_stmt(stmt, params, self.dialect)

    def __init__(self, schema: str, dialect: Any) -> None:
        self.dialect = dialect
        i, c = inode_table(schema), chunk_table(schema)
        self.inodes, self.chunks = i, c
        span = _SPAN
        # Shared content: each row's count of readers against the rows that read it, and
        # readers whose holder is missing, itself a reader, not a file or chunked otherwise.
        sharer, holder = i.alias("sharer"), i.alias("holder")
        ck_rows = checkpoint_tables(schema)[1]
        # Readers are the tree's copies and the checkpoints' entries (format 0005).
        # And the overlays on its chunks (format 0014).
        readers = (select(func.count()).select_from(sharer)
                   .where(sharer.c.content == i.c.id).scalar_subquery()
                   + select(func.count()).select_from(ck_rows)
                   .where(ck_rows.c.content == i.c.id).scalar_subquery()
                   + select(func.count()).select_from(sharer)
                   .where(sharer.c.base == i.c.id, sharer.c.content.is_(None))
                   .scalar_subquery())

        def wrong_base(reader: Any) -> Any:
            """A reader's base is its holder's (an overlay's), or none (format 0014)."""
            return or_(and_(holder.c.content.is_(None),
                            reader.c.base.is_distinct_from(holder.c.base)),
                       and_(holder.c.content.isnot(None), reader.c.base.isnot(None)))
        self._bad_refs = self._compile(
            select(i.c.id, i.c.parent, i.c.name, i.c.refs, readers)
            .where(or_(i.c.refs != readers,
                       and_(i.c.parent.is_(None), i.c.refs > literal_column("0"),
                            i.c.kind != literal_column("1")))), ())
        self._bad_sharers = self._compile(
            select(sharer.c.parent, sharer.c.name, sharer.c.content)
            .select_from(sharer.outerjoin(holder, holder.c.id == sharer.c.content))
            .where(sharer.c.content.isnot(None),
                   or_(holder.c.id.is_(None), wrong_base(sharer),
                       holder.c.kind != literal_column("1"), sharer.c.kind != literal_column("1"),
                       holder.c.chunk_size != sharer.c.chunk_size)), ())
        # Overlays whose base is missing, an overlay, not a file or chunked otherwise.
        self._bad_overlays = self._compile(
            select(sharer.c.id, sharer.c.base)
            .select_from(sharer.outerjoin(holder, holder.c.id == sharer.c.base))
            .where(sharer.c.content.is_(None), sharer.c.base.isnot(None),
                   or_(holder.c.id.is_(None), sharer.c.parent.isnot(None),
                       and_(holder.c.content.is_(None), holder.c.base.isnot(None)),
                       holder.c.kind != literal_column("1"),
                       holder.c.chunk_size != sharer.c.chunk_size)), ())
        # Checkpoint entries that read content they cannot: a missing holder, a holder that
        # is itself a reader or not a file, another chunk size, or an entry that is no file.
        reader = ck_rows.alias("reader")
        self._bad_checkpoint_sharers = self._compile(
            select(reader.c.checkpoint_id, reader.c.parent, reader.c.name, reader.c.content)
            .select_from(reader.outerjoin(holder, holder.c.id == reader.c.content))
            .where(reader.c.content.isnot(None),
                   or_(holder.c.id.is_(None), wrong_base(reader),
                       holder.c.kind != literal_column("1"), reader.c.kind != literal_column("1"),
                       holder.c.chunk_size != reader.c.chunk_size)), ())
        ck_head = checkpoint_tables(schema)[0]
        self._orphan_checkpoint_entries = self._compile(
            select(reader.c.checkpoint_id, reader.c.parent, reader.c.name)
            .select_from(reader.outerjoin(ck_head, ck_head.c.id == reader.c.checkpoint_id))
            .where(ck_head.c.id.is_(None)), ())
        self._orphans = self._compile(
            select(c.c.id, c.c.inode_id, c.c.idx)
            .select_from(c.outerjoin(i, i.c.id == c.c.inode_id))
            .where(i.c.id.is_(None)), ())
        self._bad_chunk_ids = self._compile(
            select(c.c.id, c.c.inode_id, c.c.idx)
            .where(c.c.id != c.c.inode_id * span + c.c.idx), ())
        self._chunks_of_non_files = self._compile(
            select(i.c.parent, i.c.name, i.c.kind, func.count(c.c.id))
            .select_from(c.join(i, i.c.id == c.c.inode_id))
            .where(i.c.kind != literal_column("1")).group_by(i.c.id), ())
        self._bad_chunks = self._compile(
            select(i.c.parent, i.c.name, c.c.idx, func.length(c.c.data), i.c.chunk_size, i.c.size)
            .select_from(c.join(i, i.c.id == c.c.inode_id))
            # A compressed chunk's stored length says nothing of its plain one (the deep
            # check decompresses it).
            # A row that reads another key: its own chunks are a base frozen at another size.
            .where(or_(and_(c.c.codec == literal_column("0"),
                            or_(func.length(c.c.data) > i.c.chunk_size,
                                and_(i.c.content.is_(None),
                                     c.c.idx * i.c.chunk_size + func.length(c.c.data)
                                     > i.c.size))),
                       i.c.chunk_size <= literal_column("0"), c.c.idx < literal_column("0")))
            , ())
        # Inline bytes must be a whole file that could become its chunk 0: a file, exactly
        # ``size`` bytes, at most one chunk, and no chunk rows beside them.
        has_chunks = select(c.c.id).where(c.c.inode_id == i.c.id).exists()
        self._bad_inline = self._compile(
            select(i.c.parent, i.c.name, i.c.kind, func.length(i.c.data), i.c.size,
                   i.c.chunk_size, has_chunks)
            .where(i.c.data.isnot(None),
                   or_(i.c.kind != literal_column("1"),
                       and_(i.c.codec == literal_column("0"), func.length(i.c.data) != i.c.size),
                       i.c.size > i.c.chunk_size, has_chunks)), ())
        self._entries = self._compile(
            select(i.c.id, i.c.parent, i.c.name, i.c.kind, i.c.mode, i.c.size, i.c.chunk_size,
                   i.c.ctime_ns, i.c.mtime_ns, i.c.generation, i.c.uid, i.c.gid, i.c.fparent,
                   i.c.fname, i.c.refs), ())
        zero: Any = literal_column("0")
        self._stored = self._compile(
            select(func.count(c.c.id), func.coalesce(func.sum(func.length(c.c.data)), zero)), ())
        self._stored_inline = self._compile(
            select(func.count(i.c.id), func.coalesce(func.sum(func.length(i.c.data)), zero))
            .where(i.c.data.isnot(None)), ())
        g = group_table(schema)
        self._stored_groups = self._compile(
            select(func.coalesce(func.sum(func.length(g.c.data)), zero)), ())

    # -- the engine's own checks (a backend's subclass) -------------------------------------
    def integrity(self, raw: Any, quick: bool = False) -> list[str]:
        """The engine's check of its own pages: ``["ok"]``, or what is wrong."""
        raise NotImplementedError

    def foreign_keys(self, raw: Any) -> list[tuple[Any, ...]]:
        """Rows whose foreign keys point nowhere."""
        raise NotImplementedError

    def bad_refs(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        """(id, parent, name, refs, readers) of rows whose count of readers is wrong."""
        return raw.execute(self._bad_refs.sql).fetchmany(limit)

    def bad_sharers(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        """(parent, name, content) of files sharing content they cannot read."""
        return raw.execute(self._bad_sharers.sql).fetchmany(limit)

    def bad_overlays(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        """(id, base) of overlays whose base they cannot read (format 0014)."""
        return raw.execute(self._bad_overlays.sql).fetchmany(limit)

    def bad_checkpoint_sharers(self, raw: Any, limit: int = 20
                               ) -> list[tuple[Any, ...]]:
        """(checkpoint id, parent, name, content) of checkpoint entries sharing content they
        cannot read."""
        return raw.execute(self._bad_checkpoint_sharers.sql, ()).fetchmany(limit)

    def orphan_checkpoint_entries(self, raw: Any, limit: int = 20
                                  ) -> list[tuple[Any, ...]]:
        """(checkpoint id, parent, name) of entries of no checkpoint."""
        return raw.execute(self._orphan_checkpoint_entries.sql, ()).fetchmany(limit)

    def orphan_chunks(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        return raw.execute(self._orphans.sql).fetchmany(limit)

    def misnumbered_chunks(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        return raw.execute(self._bad_chunk_ids.sql).fetchmany(limit)

    def chunks_of_non_files(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        return raw.execute(self._chunks_of_non_files.sql).fetchmany(limit)

    def missized_chunks(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        return raw.execute(self._bad_chunks.sql).fetchmany(limit)

    def bad_inline(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        """(parent, name, kind, length, size, chunk_size, has chunks) of rows whose inline
        bytes break the format's rule."""
        return raw.execute(self._bad_inline.sql).fetchmany(limit)

    def content_not_bytes(self, raw: Any, limit: int = 20) -> list[tuple[Any, ...]]:
        """(parent, name, chunk index or None for inline bytes, the engine's type)."""
        raise NotImplementedError

    def entries(self, raw: Any) -> list[EntryRow]:
        """Every inode row (unchecked: the caller judges it), named."""
        return [EntryRow._make(r) for r in raw.execute(self._entries.sql).fetchall()]

    def stored(self, raw: Any) -> tuple[int, int]:
        """(chunk rows, bytes stored in them)."""
        return raw.execute(self._stored.sql).fetchone()

    def stored_inline(self, raw: Any) -> tuple[int, int]:
        """(files with inline bytes, bytes stored inline)."""
        return raw.execute(self._stored_inline.sql).fetchone()

    def stored_groups(self, raw: Any) -> int:
        """Bytes stored in groups (format 0013, solid packs)."""
        return int(raw.execute(self._stored_groups.sql).fetchone()[0])
