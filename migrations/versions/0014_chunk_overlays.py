"""Chunk-level sharing (format 0014): a file shared with a checkpoint or a copy is written in
place without copying it first

``vfs_inodes`` and ``vfs_checkpoint_inodes`` gain ``base``. A row reads chunk ``i`` of
``coalesce(content, id)`` where that chunk row exists, else chunk ``i`` of ``base``. The first
write in place to content others read no longer copies the file's chunks: the file gets an
"overlay", a hidden row (``parent`` NULL, ``content`` NULL) whose ``base`` is the shared,
complete chunks, which are frozen from then on; the written chunks go to the overlay. The
files and checkpoint entries that read an overlay carry its ``base`` too, so every statement
finds both keys in the row it reads. ``refs`` counts an overlay among its base's readers.

On SQLite both tables are rebuilt so that the column comes before the large ones (as 0009's
owners); the ``sqlite_sequence`` high-water mark of inode ids is kept. On PostgreSQL it is
added in place. Existing rows get NULL: nothing is an overlay yet.

The downgrade gives every overlay the chunks it reads from its base (copied, their checksums
sealed to their new place), so that each reader reads one complete set again; a live file
that holds frozen chunks for others while it reads its overlay leaves them to a new hidden
holder (0013 has no row that both reads another's chunks and holds its own); then it drops
the column.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import xxhash
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_TABLES = ("vfs_inodes", "vfs_checkpoint_inodes")
SPAN = 2 ** 32  # a chunk's id is inode_id * SPAN + idx
SUM = 8

_INODES_BEFORE = ("id", "parent", "name", "kind", "mode", "size", "chunk_size", "ctime_ns",
                  "mtime_ns", "generation", "owner", "content", "refs", "fparent", "fname",
                  "uid", "gid")
_CHECKPOINT_BEFORE = ("checkpoint_id", "id", "parent", "name", "kind", "mode", "size",
                      "chunk_size", "ctime_ns", "mtime_ns", "content", "fparent", "fname", "uid",
                      "gid")
_AFTER = ("digest", "codec", "sums", "data")


def _inodes_ddl(name: str, base: bool) -> str:
    col = "base INTEGER, " if base else ""
    return f"""CREATE TABLE {name} (
        id INTEGER NOT NULL, parent TEXT, name TEXT NOT NULL, kind INTEGER NOT NULL,
        mode INTEGER NOT NULL, size BIGINT NOT NULL, chunk_size INTEGER NOT NULL,
        ctime_ns BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, generation BIGINT NOT NULL,
        owner TEXT, content INTEGER, refs BIGINT DEFAULT '0' NOT NULL, fparent TEXT,
        fname TEXT, uid BIGINT, gid BIGINT, {col}digest BLOB,
        codec INTEGER DEFAULT '0' NOT NULL, sums BLOB, data BLOB,
        CONSTRAINT pk_vfs_inodes PRIMARY KEY (id AUTOINCREMENT),
        CONSTRAINT uq_vfs_inodes_parent_name UNIQUE (parent, name),
        CONSTRAINT ck_vfs_inodes_kind CHECK (kind BETWEEN 1 AND 3 AND typeof(kind) = 'integer')
    )"""


def _checkpoint_ddl(name: str, base: bool) -> str:
    col = "base INTEGER, " if base else ""
    return f"""CREATE TABLE {name} (
        checkpoint_id INTEGER NOT NULL, id INTEGER NOT NULL, parent TEXT NOT NULL,
        name TEXT NOT NULL, kind INTEGER NOT NULL, mode INTEGER NOT NULL,
        size BIGINT NOT NULL, chunk_size INTEGER NOT NULL, ctime_ns BIGINT NOT NULL,
        mtime_ns BIGINT NOT NULL, content INTEGER, fparent TEXT, fname TEXT, uid BIGINT,
        gid BIGINT, {col}digest BLOB, codec INTEGER DEFAULT '0' NOT NULL, sums BLOB, data BLOB,
        CONSTRAINT pk_vfs_checkpoint_inodes PRIMARY KEY (checkpoint_id, id),
        CONSTRAINT fk_vfs_checkpoint_inodes_checkpoint_id_vfs_checkpoints
            FOREIGN KEY(checkpoint_id) REFERENCES vfs_checkpoints (id) ON DELETE CASCADE,
        CONSTRAINT uq_vfs_checkpoint_inodes_checkpoint_id_parent_name
            UNIQUE (checkpoint_id, parent, name)
    )"""


_INDEXES = {
    "vfs_inodes": (
        "CREATE INDEX ix_vfs_inodes_fparent_fname ON vfs_inodes (fparent, fname)",
        "CREATE INDEX ix_vfs_inodes_content ON vfs_inodes (content) WHERE content IS NOT NULL"),
    "vfs_inodes_base": (
        "CREATE INDEX ix_vfs_inodes_base ON vfs_inodes (base) "
        "WHERE content IS NULL AND base IS NOT NULL",),
    "vfs_checkpoint_inodes": (
        "CREATE INDEX ix_vfs_checkpoint_inodes_content ON vfs_checkpoint_inodes (content) "
        "WHERE content IS NOT NULL",),
}


def _rebuild(raw: Any, table: str, ddl: str, columns: Sequence[str],
             values: Sequence[str]) -> None:
    """Copy ``table`` into a new table made by ``ddl`` (named ``<table>_0014``), then put it
    in the old one's place with its indexes. Foreign keys are off (the caller's)."""
    raw.execute(ddl)
    raw.execute(f"INSERT INTO {table}_0014 ({', '.join(columns)}) "
                f"SELECT {', '.join(values)} FROM {table}")
    raw.execute(f"DROP TABLE {table}")
    raw.execute(f"ALTER TABLE {table}_0014 RENAME TO {table}")
    for index in _INDEXES[table]:
        raw.execute(index)


def _sqlite(conn: sa.Connection, base: bool) -> None:
    raw = conn.connection.driver_connection
    seq = raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'vfs_inodes'").fetchone()
    for table, before, ddl in (("vfs_inodes", _INODES_BEFORE, _inodes_ddl),
                               ("vfs_checkpoint_inodes", _CHECKPOINT_BEFORE, _checkpoint_ddl)):
        columns = [*before, *(("base",) if base else ()), *_AFTER]
        values = [*before, *(("NULL",) if base else ()), *_AFTER]
        _rebuild(raw, table, ddl(f"{table}_0014", base), columns, values)
    if base:
        for index in _INDEXES["vfs_inodes_base"]:
            raw.execute(index)
    if seq is not None:
        raw.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'vfs_inodes'",
                    (seq[0],))


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite(conn, base=True)
        return
    for table in _TABLES:
        op.add_column(table, sa.Column("base", sa.BigInteger(), nullable=True))
    op.create_index("ix_vfs_inodes_base", "vfs_inodes", ["base"],
                    postgresql_where=sa.text("content IS NULL AND base IS NOT NULL"))


def _reseal(sums: bytes, new: int) -> bytes:
    """``sums`` (of a value sealed to another chunk id) sealed to chunk ``new``. Damaged sums
    are copied as they are: still damage where they land, never laundered."""
    if not isinstance(sums, bytes) or len(sums) < 2 * SUM or len(sums) % SUM:
        return sums
    return sums[:-SUM] + xxhash.xxh3_64_digest(sums[:-SUM], new)


def _copy_chunks(conn: sa.Connection, src: int, dst: int, missing_only: bool) -> None:
    """``src``'s chunk rows copied to ``dst`` (only the indexes ``dst`` lacks), resealed."""
    have = {r[0] for r in conn.execute(
        sa.text("SELECT idx FROM vfs_chunks WHERE id >= :lo AND id < :hi"),
        {"lo": dst * SPAN, "hi": (dst + 1) * SPAN})} if missing_only else set()
    rows = conn.execute(sa.text("SELECT idx, codec, sums, data FROM vfs_chunks "
                                "WHERE id >= :lo AND id < :hi ORDER BY id"),
                        {"lo": src * SPAN, "hi": (src + 1) * SPAN}).fetchall()
    for idx, codec, sums, data in rows:
        if idx in have or not isinstance(idx, int):
            continue
        conn.execute(sa.text("INSERT INTO vfs_chunks (id, inode_id, idx, codec, sums, data) "
                             "VALUES (:id, :inode, :idx, :codec, :sums, :data)"),
                     {"id": dst * SPAN + idx, "inode": dst, "idx": idx, "codec": codec,
                      "sums": _reseal(bytes(sums), dst * SPAN + idx), "data": data})


def _materialize(conn: sa.Connection) -> None:
    """Every overlay made complete (its base's chunks it lacks copied into it), every live
    row that reads an overlay while holding frozen chunks for others made a plain reader."""
    overlays = conn.execute(sa.text(
        "SELECT id, base FROM vfs_inodes WHERE content IS NULL AND base IS NOT NULL")).fetchall()
    for ident, base in overlays:
        _copy_chunks(conn, base, ident, missing_only=True)
        conn.execute(sa.text("UPDATE vfs_inodes SET refs = refs - 1 WHERE id = :id"),
                     {"id": base})
    conn.execute(sa.text("UPDATE vfs_inodes SET base = NULL"))
    conn.execute(sa.text("UPDATE vfs_checkpoint_inodes SET base = NULL"))
    # A row that reads another's chunks and still has chunks of its own (a base for others):
    # those chunks go to a hidden holder of their own, and their readers with them.
    both = conn.execute(sa.text(
        "SELECT i.id, i.refs, i.mode, i.size, i.chunk_size, i.ctime_ns, i.mtime_ns "
        "FROM vfs_inodes AS i WHERE i.content IS NOT NULL AND EXISTS (SELECT 1 FROM "
        f"vfs_chunks AS c WHERE c.id >= i.id * {SPAN} AND c.id < (i.id + 1) * {SPAN})"
    )).fetchall()
    for ident, refs, mode, size, cs, ctime, mtime in both:
        if refs > 0:
            holder = conn.execute(sa.text(
                "INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, ctime_ns, "
                "mtime_ns, generation, refs, codec) VALUES (NULL, :name, 1, :mode, :size, :cs, "
                ":ctime, :mtime, 0, :refs, 0) RETURNING id"),
                {"name": f"shared-{ident}-0014", "mode": mode, "size": size, "cs": cs,
                 "ctime": ctime, "mtime": mtime, "refs": refs}).scalar_one()
            _copy_chunks(conn, ident, holder, missing_only=False)
            for table in _TABLES:
                conn.execute(sa.text(f"UPDATE {table} SET content = :new WHERE content = :old"),
                             {"new": holder, "old": ident})
        conn.execute(sa.text("DELETE FROM vfs_chunks WHERE id >= :lo AND id < :hi"),
                     {"lo": ident * SPAN, "hi": (ident + 1) * SPAN})
        conn.execute(sa.text("UPDATE vfs_inodes SET refs = 0 WHERE id = :id"), {"id": ident})
    # Hidden rows nobody reads any more.
    gone = "SELECT id FROM vfs_inodes WHERE parent IS NULL AND refs <= 0 AND owner IS NULL"
    for (ident,) in conn.execute(sa.text(gone)).fetchall():
        conn.execute(sa.text("DELETE FROM vfs_chunks WHERE id >= :lo AND id < :hi"),
                     {"lo": ident * SPAN, "hi": (ident + 1) * SPAN})
        conn.execute(sa.text("DELETE FROM vfs_inodes WHERE id = :id"), {"id": ident})


def downgrade() -> None:
    conn = op.get_bind()
    _materialize(conn)
    if conn.dialect.name == "sqlite":
        _sqlite(conn, base=False)
        return
    op.drop_index("ix_vfs_inodes_base", table_name="vfs_inodes")
    for table in _TABLES:
        op.drop_column(table, "base")
