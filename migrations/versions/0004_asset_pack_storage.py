"""asset-pack storage: block checksums and a codec per stored value, digests, folded keys, sharing

- ``vfs_chunks`` gains ``codec`` (0 stored as is, 1 zlib, 2 zstd) and ``sums`` (an XXH3-64
  digest, 8 bytes, per 4 KiB block of the plain bytes, NOT NULL), placed BEFORE ``data``: a
  partial read of a chunk reads its sums without walking the chunk's overflow pages.
- ``vfs_inodes`` gains ``digest`` (SHA-256 of the file's content), ``codec`` and ``sums`` (of
  its inline ``data``), also before ``data``.
- ``vfs_inodes`` gains ``fparent`` and ``fname``, the case-folded key (``paths.fold``), with
  an index: how a case-insensitive database finds entries, and how any database is searched
  as its underlay.
- ``vfs_inodes`` gains ``content`` (whose chunks a copy reads: shared copies, NULL for its
  own) and ``refs`` (how many inodes read this one's chunks), with a partial index on
  ``content``; existing files own their chunks (NULL, 0).
- ``vfs_layer_manifests`` gains ``compression`` (how new content is stored; NULL: as is) and
  ``case_insensitive``.

Existing content stays byte for byte as it was (codec 0); its sums and every file's digest are
computed here, from the stored bytes, in the upgrade's one transaction. On SQLite the two
content tables are rebuilt (column order), with foreign keys off as for 0002 and 0003; the
``sqlite_sequence`` high-water mark of inode ids is kept (ids are never reused). On PostgreSQL
the columns are added in place.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from __future__ import annotations

import hashlib
import unicodedata
import zlib

import sqlalchemy as sa
import xxhash
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BLOCK = 4096
CHUNK_SPAN = 1 << 32


def block_sums(data: object) -> bytes | None:
    """The format's sums (vfs_orm.content.block_sums, restated: a revision keeps its own
    rules). None for a value that is not bytes: damage that reads will report."""
    if not isinstance(data, bytes):
        return None
    return b"".join(xxhash.xxh3_64_digest(data[o:o + BLOCK])
                    for o in range(0, len(data), BLOCK))


def fold(text: object) -> object:
    """The format's case-folded key (vfs_orm.paths.fold, restated): Unicode case folding of
    the NFC form, in NFC. A value that is not text (damage) stays as it is."""
    if not isinstance(text, str):
        return text
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def _inodes() -> sa.Table:
    return sa.table("vfs_inodes", sa.column("id", sa.BigInteger), sa.column("kind"), sa.column("size"),
                    sa.column("chunk_size"), sa.column("data"), sa.column("sums"),
                    sa.column("digest"))


def _chunks() -> sa.Table:
    return sa.table("vfs_chunks", sa.column("id", sa.BigInteger), sa.column("idx"), sa.column("data"),
                    sa.column("sums"))


def _digests(conn: sa.Connection) -> None:
    """Every file's SHA-256, streamed chunk by chunk in id order (holes read as zeros)."""
    i, c = _inodes(), _chunks()
    span = sa.literal(CHUNK_SPAN, sa.BigInteger)  # past 2**31: a 64-bit parameter
    # Streamed (a server-side cursor on PostgreSQL): a file at a time in memory, not all.
    rows = conn.execute(
        sa.select(i.c.id, i.c.size, i.c.chunk_size, i.c.data, c.c.idx, c.c.data)
        .select_from(i.outerjoin(c, sa.and_(c.c.id >= i.c.id * span,
                                            c.c.id < (i.c.id + 1) * span)))
        .where(i.c.kind == 1)
        .order_by(i.c.id, c.c.id)
        .execution_options(stream_results=True, yield_per=256))
    done: list[dict[str, object]] = []
    current = None

    def finish() -> None:
        if current is not None and current[3] is not None:
            ident, size, h, at = current[0], current[1], current[2], current[3]
            if at < size:
                h.update(bytes(size - at))
            done.append({"i": ident, "d": h.digest()})

    for ident, size, cs, inline, idx, data in rows:
        if current is None or current[0] != ident:
            finish()
            ok = isinstance(size, int) and isinstance(cs, int) and 0 < cs and 0 <= size
            current = [ident, size, hashlib.sha256(), 0 if ok else None]
            if ok and isinstance(inline, bytes):
                current[2].update(inline[:size])
                current[3] = min(len(inline), size)
        if idx is None or current[3] is None:
            continue
        if not isinstance(data, bytes) or not isinstance(idx, int):
            current[3] = None  # damaged: no digest (check() reports the chunk)
            continue
        start = idx * cs
        if start < current[3] or start >= size:
            continue
        current[2].update(bytes(start - current[3]))
        piece = data[:min(cs, size - start)]
        current[2].update(piece)
        current[3] = start + len(piece)
    finish()
    if done:
        conn.execute(sa.update(i).where(i.c.id == sa.bindparam("i"))
                     .values(digest=sa.bindparam("d")), done)


def _sums(conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> None:
    """Sums of every value, a page of rows at a time (by id: never the table in memory)."""
    last = -(1 << 62)
    while True:
        rows = conn.execute(sa.select(table.c.id, table.c.data)
                            .where(where, table.c.id > last).order_by(table.c.id)
                            .limit(256)).fetchall()
        if not rows:
            return
        conn.execute(sa.update(table).where(table.c.id == sa.bindparam("k"))
                     .values(sums=sa.bindparam("s")),
                     [{"k": ident, "s": block_sums(data)} for ident, data in rows])
        last = rows[-1][0]


def _folds(conn: sa.Connection) -> None:
    """Every placed row's folded key, a page of rows at a time."""
    t = sa.table("vfs_inodes", sa.column("id", sa.BigInteger), sa.column("parent"),
                 sa.column("name"), sa.column("fparent"), sa.column("fname"))
    last = -(1 << 62)
    while True:
        rows = conn.execute(sa.select(t.c.id, t.c.parent, t.c.name)
                            .where(t.c.parent.isnot(None), t.c.id > last).order_by(t.c.id)
                            .limit(1000)).fetchall()
        if not rows:
            return
        conn.execute(sa.update(t).where(t.c.id == sa.bindparam("k"))
                     .values(fparent=sa.bindparam("fp"), fname=sa.bindparam("fn")),
                     [{"k": k, "fp": fold(p), "fn": fold(n)} for k, p, n in rows])
        last = rows[-1][0]


def _sqlite_upgrade(conn: sa.Connection) -> None:
    raw = conn.connection.driver_connection
    raw.create_function("vfs_block_sums_0004", 1, block_sums, deterministic=True)
    raw.create_function("vfs_fold_0004", 1, fold, deterministic=True)
    seq = raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'vfs_inodes'").fetchone()
    raw.execute("""CREATE TABLE vfs_inodes_0004 (
        id INTEGER NOT NULL, parent TEXT, name TEXT NOT NULL, kind INTEGER NOT NULL,
        mode INTEGER NOT NULL, size BIGINT NOT NULL, chunk_size INTEGER NOT NULL,
        ctime_ns BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, generation BIGINT NOT NULL,
        owner TEXT, content INTEGER, refs BIGINT DEFAULT '0' NOT NULL, fparent TEXT,
        fname TEXT, digest BLOB, codec INTEGER DEFAULT '0' NOT NULL, sums BLOB, data BLOB,
        CONSTRAINT pk_vfs_inodes PRIMARY KEY (id AUTOINCREMENT),
        CONSTRAINT uq_vfs_inodes_parent_name UNIQUE (parent, name),
        CONSTRAINT ck_vfs_inodes_kind CHECK (kind BETWEEN 1 AND 3 AND typeof(kind) = 'integer')
    )""")
    raw.execute(
        "INSERT INTO vfs_inodes_0004 (id, parent, name, kind, mode, size, chunk_size, "
        "ctime_ns, mtime_ns, generation, owner, content, refs, fparent, fname, digest, codec, "
        "sums, data) SELECT id, parent, name, kind, mode, size, chunk_size, ctime_ns, "
        "mtime_ns, generation, owner, NULL, 0, vfs_fold_0004(parent), vfs_fold_0004(name), "
        "NULL, 0, "
        "CASE WHEN data IS NULL THEN NULL ELSE vfs_block_sums_0004(data) END, data "
        "FROM vfs_inodes")
    raw.execute("""CREATE TABLE vfs_chunks_0004 (
        id INTEGER NOT NULL, inode_id INTEGER NOT NULL, idx INTEGER NOT NULL,
        codec INTEGER DEFAULT '0' NOT NULL, sums BLOB NOT NULL, data BLOB NOT NULL,
        CONSTRAINT pk_vfs_chunks PRIMARY KEY (id),
        CONSTRAINT uq_vfs_chunks_inode_id_idx UNIQUE (inode_id, idx),
        CONSTRAINT fk_vfs_chunks_inode_id_vfs_inodes FOREIGN KEY(inode_id)
            REFERENCES vfs_inodes (id) ON DELETE CASCADE
    )""")
    # A chunk whose data is not bytes (damage) gets empty sums: every read of it reports it.
    raw.execute(
        "INSERT INTO vfs_chunks_0004 (id, inode_id, idx, codec, sums, data) "
        "SELECT id, inode_id, idx, 0, coalesce(vfs_block_sums_0004(data), x''), data "
        "FROM vfs_chunks")
    raw.execute("DROP TABLE vfs_chunks")
    raw.execute("DROP TABLE vfs_inodes")
    raw.execute("ALTER TABLE vfs_inodes_0004 RENAME TO vfs_inodes")
    raw.execute("ALTER TABLE vfs_chunks_0004 RENAME TO vfs_chunks")
    raw.execute("CREATE INDEX ix_vfs_inodes_fparent_fname ON vfs_inodes (fparent, fname)")
    raw.execute("CREATE INDEX ix_vfs_inodes_content ON vfs_inodes (content) "
                "WHERE content IS NOT NULL")
    if seq is not None:
        raw.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'vfs_inodes'",
                    (seq[0],))
    _digests(conn)


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("vfs_layer_manifests") as batch:
        batch.add_column(sa.Column("compression", sa.Text(), nullable=True))
        batch.add_column(sa.Column("case_insensitive", sa.Integer(), nullable=True))
    if conn.dialect.name == "sqlite":
        _sqlite_upgrade(conn)
        return
    op.add_column("vfs_inodes", sa.Column("content", sa.BigInteger(), nullable=True))
    op.add_column("vfs_inodes", sa.Column("refs", sa.BigInteger(), server_default="0",
                                          nullable=False))
    op.add_column("vfs_inodes", sa.Column("fparent", sa.Text(collation="C"), nullable=True))
    op.add_column("vfs_inodes", sa.Column("fname", sa.Text(collation="C"), nullable=True))
    op.add_column("vfs_inodes", sa.Column("digest", sa.LargeBinary(), nullable=True))
    op.add_column("vfs_inodes", sa.Column("codec", sa.Integer(), server_default="0",
                                          nullable=False))
    op.add_column("vfs_inodes", sa.Column("sums", sa.LargeBinary(), nullable=True))
    op.add_column("vfs_chunks", sa.Column("codec", sa.Integer(), server_default="0",
                                          nullable=False))
    op.add_column("vfs_chunks", sa.Column("sums", sa.LargeBinary(), nullable=True))
    i, c = _inodes(), _chunks()
    _sums(conn, i, i.c.data.isnot(None))
    _sums(conn, c, sa.true())
    conn.execute(sa.update(c).where(c.c.sums.is_(None)).values(sums=b""))
    op.alter_column("vfs_chunks", "sums", nullable=False)
    _folds(conn)
    op.create_index("ix_vfs_inodes_fparent_fname", "vfs_inodes", ["fparent", "fname"])
    op.create_index("ix_vfs_inodes_content", "vfs_inodes", ["content"],
                    postgresql_where=sa.text("content IS NOT NULL"))
    _digests(conn)


def _full_inodes() -> sa.Table:
    """vfs_inodes at 0004, as a batch rebuild must see it."""
    return sa.Table(
        "vfs_inodes", sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("mode", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("ctime_ns", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("content", sa.Integer(), nullable=True),
        sa.Column("refs", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("fparent", sa.Text(), nullable=True),
        sa.Column("fname", sa.Text(), nullable=True),
        sa.Column("digest", sa.LargeBinary(), nullable=True),
        sa.Column("codec", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sums", sa.LargeBinary(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vfs_inodes"),
        sa.UniqueConstraint("parent", "name", name="uq_vfs_inodes_parent_name"),
        sa.CheckConstraint("kind BETWEEN 1 AND 3 AND typeof(kind) = 'integer'",
                           name="ck_vfs_inodes_kind"),
        sa.Index("ix_vfs_inodes_fparent_fname", "fparent", "fname"),
        sa.Index("ix_vfs_inodes_content", "content", sqlite_where=sa.text("content IS NOT NULL")),
        sqlite_autoincrement=True)


def _unshare(conn: sa.Connection) -> None:
    """0003 has no shared content: every sharer gets a copy of its chunks, hidden holders go."""
    t = sa.table("vfs_inodes", sa.column("id", sa.BigInteger), sa.column("content"),
                 sa.column("parent"), sa.column("refs"))
    c = sa.table("vfs_chunks", sa.column("id", sa.BigInteger), sa.column("inode_id"),
                 sa.column("idx"), sa.column("codec"), sa.column("sums"), sa.column("data"))
    span = sa.literal(CHUNK_SPAN, sa.BigInteger)
    for ident, key in conn.execute(sa.select(t.c.id, t.c.content)
                                   .where(t.c.content.isnot(None))).fetchall():
        conn.execute(sa.insert(c).from_select(
            ["id", "inode_id", "idx", "codec", "sums", "data"],
            sa.select(ident * span + c.c.idx, sa.literal(ident, sa.BigInteger), c.c.idx,
                      c.c.codec, c.c.sums, c.c.data)
            .where(c.c.id >= key * span, c.c.id < (key + 1) * span)))
    hidden = sa.select(t.c.id).where(t.c.parent.is_(None), t.c.refs > 0)
    conn.execute(sa.delete(c).where(c.c.inode_id.in_(hidden)))
    conn.execute(sa.delete(t).where(t.c.parent.is_(None), t.c.refs > 0))


def plain(codec: object, data: object) -> object:
    """A stored value as 0003 stores it: uncompressed."""
    if codec == 1 and isinstance(data, bytes):
        return zlib.decompress(data)
    if codec == 2 and isinstance(data, bytes):
        import zstandard  # only a database that holds zstd content gets here

        return zstandard.ZstdDecompressor().decompress(data)
    return data


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        raw.create_function("vfs_plain_0004", 2, plain, deterministic=True)
        raw.execute("UPDATE vfs_inodes SET data = vfs_plain_0004(codec, data) WHERE codec != 0")
        raw.execute("UPDATE vfs_chunks SET data = vfs_plain_0004(codec, data) WHERE codec != 0")
    else:
        for name in ("vfs_inodes", "vfs_chunks"):
            t = sa.table(name, sa.column("id"), sa.column("codec"), sa.column("data"))
            rows = conn.execute(sa.select(t.c.id, t.c.codec, t.c.data)
                                .where(t.c.codec != 0)).fetchall()
            if rows:
                conn.execute(sa.update(t).where(t.c.id == sa.bindparam("k"))
                             .values(data=sa.bindparam("d")),
                             [{"k": k, "d": plain(c, d)} for k, c, d in rows])
    with op.batch_alter_table("vfs_chunks", recreate="always" if conn.dialect.name == "sqlite"
                              else "never") as batch:
        batch.drop_column("sums")
        batch.drop_column("codec")
    # copy_from: reflection would lose AUTOINCREMENT (ids are never reused).
    _unshare(conn)
    if conn.dialect.name != "sqlite":
        op.drop_index("ix_vfs_inodes_fparent_fname", "vfs_inodes")
        op.drop_index("ix_vfs_inodes_content", "vfs_inodes")
    with op.batch_alter_table("vfs_inodes", copy_from=_full_inodes()) as batch:
        if conn.dialect.name == "sqlite":
            batch.drop_index("ix_vfs_inodes_fparent_fname")
            batch.drop_index("ix_vfs_inodes_content")
        batch.drop_column("content")
        batch.drop_column("refs")
        batch.drop_column("fparent")
        batch.drop_column("fname")
        batch.drop_column("sums")
        batch.drop_column("codec")
        batch.drop_column("digest")
    with op.batch_alter_table("vfs_layer_manifests") as batch:
        batch.drop_column("compression")
        batch.drop_column("case_insensitive")
