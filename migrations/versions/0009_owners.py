"""File owners (format 0009)

``vfs_inodes`` and ``vfs_checkpoint_inodes`` gain ``uid`` and ``gid``: the numeric owner and
group of an entry, as ``os.chown`` sets them (``VFS.chown``). NULL means "not set": the entry
is reported as owned by the reading process (the Python API) or by the mounting user (``vfs-orm
mount``), which is what every entry was before this revision. A value is a uid/gid in [0,
2**32 - 2] (-1, ``(uid_t) -1``, means "leave unchanged" to ``chown`` and is never stored).

On SQLite both tables are rebuilt so that the two columns come BEFORE the large ones
(``digest``, ``codec``, ``sums``, ``data``): SQLite reads a row's columns in order, and a
column after a large inline ``data`` value would mean walking its overflow pages on every
``stat``. Foreign keys are off during the upgrade (as for 0004); the ``sqlite_sequence``
high-water mark of inode ids is kept (ids are never reused). On PostgreSQL the columns are
added in place (column order does not cost there: a large value is TOASTed out of the row).

Existing entries get NULL: nothing is owned by anyone in particular until ``chown`` says so.
The downgrade is refused while an owner is stored (an entry or a checkpoint entry with a
uid or gid): 0008 has no place for it, and dropping it silently would hand every file back
to whoever opens the database; otherwise it rebuilds the tables without the columns.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = ("vfs_inodes", "vfs_checkpoint_inodes")

#: The two tables' columns at 0008, in order: the owners go between ``before`` and ``after``.
_INODES_BEFORE = ("id", "parent", "name", "kind", "mode", "size", "chunk_size", "ctime_ns",
                  "mtime_ns", "generation", "owner", "content", "refs", "fparent", "fname")
_CHECKPOINT_BEFORE = ("checkpoint_id", "id", "parent", "name", "kind", "mode", "size",
                      "chunk_size", "ctime_ns", "mtime_ns", "content", "fparent", "fname")
_AFTER = ("digest", "codec", "sums", "data")


def _inodes_ddl(name: str, owners: bool) -> str:
    uid = "uid BIGINT, gid BIGINT, " if owners else ""
    return f"""CREATE TABLE {name} (
        id INTEGER NOT NULL, parent TEXT, name TEXT NOT NULL, kind INTEGER NOT NULL,
        mode INTEGER NOT NULL, size BIGINT NOT NULL, chunk_size INTEGER NOT NULL,
        ctime_ns BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, generation BIGINT NOT NULL,
        owner TEXT, content INTEGER, refs BIGINT DEFAULT '0' NOT NULL, fparent TEXT,
        fname TEXT, {uid}digest BLOB, codec INTEGER DEFAULT '0' NOT NULL, sums BLOB, data BLOB,
        CONSTRAINT pk_vfs_inodes PRIMARY KEY (id AUTOINCREMENT),
        CONSTRAINT uq_vfs_inodes_parent_name UNIQUE (parent, name),
        CONSTRAINT ck_vfs_inodes_kind CHECK (kind BETWEEN 1 AND 3 AND typeof(kind) = 'integer')
    )"""


def _checkpoint_ddl(name: str, owners: bool) -> str:
    uid = "uid BIGINT, gid BIGINT, " if owners else ""
    return f"""CREATE TABLE {name} (
        checkpoint_id INTEGER NOT NULL, id INTEGER NOT NULL, parent TEXT NOT NULL,
        name TEXT NOT NULL, kind INTEGER NOT NULL, mode INTEGER NOT NULL,
        size BIGINT NOT NULL, chunk_size INTEGER NOT NULL, ctime_ns BIGINT NOT NULL,
        mtime_ns BIGINT NOT NULL, content INTEGER, fparent TEXT, fname TEXT, {uid}digest BLOB,
        codec INTEGER DEFAULT '0' NOT NULL, sums BLOB, data BLOB,
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
    "vfs_checkpoint_inodes": (
        "CREATE INDEX ix_vfs_checkpoint_inodes_content ON vfs_checkpoint_inodes (content) "
        "WHERE content IS NOT NULL",),
}


def _rebuild(raw: object, table: str, ddl: str, columns: Sequence[str],
             values: Sequence[str]) -> None:
    """Copy ``table`` into a new table made by ``ddl`` (named ``<table>_0009``), then put it
    in the old one's place with its indexes. Foreign keys are off (the caller's)."""
    execute = raw.execute  # type: ignore[attr-defined]
    execute(ddl)
    execute(f"INSERT INTO {table}_0009 ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM {table}")
    execute(f"DROP TABLE {table}")
    execute(f"ALTER TABLE {table}_0009 RENAME TO {table}")
    for index in _INDEXES[table]:
        execute(index)


def _sqlite(conn: sa.Connection, owners: bool) -> None:
    raw = conn.connection.driver_connection
    seq = raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'vfs_inodes'").fetchone()
    for table, before, ddl in (("vfs_inodes", _INODES_BEFORE, _inodes_ddl),
                               ("vfs_checkpoint_inodes", _CHECKPOINT_BEFORE, _checkpoint_ddl)):
        columns = [*before, *(("uid", "gid") if owners else ()), *_AFTER]
        values = [*before, *(("NULL", "NULL") if owners else ()), *_AFTER]
        _rebuild(raw, table, ddl(f"{table}_0009", owners), columns, values)
    if seq is not None:
        raw.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'vfs_inodes'",
                    (seq[0],))


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _sqlite(conn, owners=True)
        return
    for table in _TABLES:
        op.add_column(table, sa.Column("uid", sa.BigInteger(), nullable=True))
        op.add_column(table, sa.Column("gid", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    conn = op.get_bind()
    for table in _TABLES:
        held = conn.execute(sa.text(f"SELECT 1 FROM {table} WHERE uid IS NOT NULL "
                                    f"OR gid IS NOT NULL LIMIT 1")).first()
        if held is not None:
            raise RuntimeError(f"{table} holds file owners (set with chown): format 0008 has "
                               f"no place for them; the downgrade would lose them")
    if conn.dialect.name == "sqlite":
        _sqlite(conn, owners=False)
        return
    for table in _TABLES:
        op.drop_column(table, "gid")
        op.drop_column(table, "uid")
