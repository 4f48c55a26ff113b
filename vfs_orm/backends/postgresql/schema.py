"""A tree's format on PostgreSQL: created from the models at the current revision on first
writable open, in one transaction, with Alembic's version table inside the tree's schema.

The SQLite revisions before 0003 are table rebuilds of SQLite files; PostgreSQL trees start at
0003 (``BASELINE``), and every later revision migrates both: a tree at an older revision is
upgraded on its first writable open, in the same transaction and under the same advisory lock
that serialises creating it (two processes opening it at once do the work once). Opening a
tree already at the head takes no lock.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from vfs_orm.backends.postgresql import closed
from vfs_orm.backends.postgresql.connection import PGRaw
from vfs_orm.backends.postgresql.statements import PGManifestRepository
from vfs_orm.backends.sql.revisions import ALEMBIC_LOCK, head_revision, known_revisions, script
from vfs_orm.errors import FormatVersionError, NotFoundError, VFSError
from vfs_orm.models import VERSION_TABLE, Base
from vfs_orm.rows import Identity

#: The first revision of PostgreSQL trees (the revisions before it rebuild SQLite files).
BASELINE = "0003"
#: Percent of each page of vfs_inodes that inserts fill (the rest: updated row versions).
INODE_FILL = 70
#: First key of the advisory lock that serialises creating a tree ("VC").
FORMAT_LOCK_CLASS = 0x5643


def tree_lock_key(tree: str) -> int:
    """The tree's creation lock key: a signed 32-bit hash of its name."""
    key = zlib.crc32(tree.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


def tree_revision(conn: Connection, tree: str) -> str | None:
    """The tree's format revision; None if the tree (its version table) does not exist."""
    found = conn.exec_driver_sql("SELECT to_regclass(%s)",
                                 (f'"{tree}".{VERSION_TABLE}',)).scalar()
    if found is None:
        return None
    return _version_row(conn, tree)


def _version_row(conn: Connection, tree: str) -> str | None:
    version = conn.exec_driver_sql(f'SELECT version_num FROM "{tree}".{VERSION_TABLE}').scalar()
    return None if version is None else str(version)


def prepare(conn: Connection, *, tree: str, where: str, read_only: bool,
            on_create: Callable[[Any], None]) -> Identity | None:
    """Check the tree (read-only) or create it; returns its identity row."""
    head = head_revision()
    with conn.begin():
        rev = tree_revision(conn, tree)
        if rev != head and not read_only:
            # Creating or upgrading: under the tree's creation lock (two processes opening
            # it at once do the work once). A tree at the head takes no lock (a hot standby
            # refuses advisory locks; opening for reads or writes must work there and on
            # engines without them).
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s, %s)",
                                 (FORMAT_LOCK_CLASS, tree_lock_key(tree)))
            # Asked again through pg_class itself: an advisory lock does not refresh the
            # catalog caches to_regclass reads, a plain query's snapshot is new.
            made = conn.exec_driver_sql(
                "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                (tree, VERSION_TABLE)).first()
            rev = _version_row(conn, tree) if made is not None else None
        if rev is not None:
            closed.verify(conn, tree, where)
        if rev is None:
            if read_only:
                raise NotFoundError.for_path(where, "no such vfs_orm tree (a read-only open "
                                                    "never creates one)")
            _create(conn, tree, on_create)
        elif rev != head:
            known = known_revisions()
            if rev in known and known.index(rev) >= known.index(BASELINE):
                if read_only:
                    raise FormatVersionError.for_path(
                        where, f"tree format {rev} is older than {head} and this open is "
                               f"read-only; upgrade it with `vfs-orm upgrade URL --tree "
                               f"{tree}` (or open it writable once)")
                _upgrade(conn, tree, rev)
            elif rev in known:
                raise FormatVersionError.for_path(
                    where, f"tree format {rev} predates {BASELINE}, where PostgreSQL trees "
                           f"start: it was not made by vfs_orm")
            else:
                raise FormatVersionError.for_path(
                    where, f"tree format {rev} is newer than this vfs_orm ({head}): upgrade "
                           f"vfs_orm to open it")
    driver = conn.connection.driver_connection
    if driver is None:
        raise VFSError.for_path(where, "the connection is closed")
    return PGManifestRepository(tree).identity_row(PGRaw(driver))


def _upgrade(conn: Connection, tree: str, rev: str) -> None:
    """Run the revisions after ``rev`` on the tree's tables, inside the caller's transaction
    (under the tree's creation lock): Alembic's operations on the schema-less tables of the
    scripts land in the tree through the schema translation."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    # The scripts' own queries (backfills) name tables without a schema: the tree first on
    # the search path, for this transaction only.
    conn.exec_driver_sql(f'SET LOCAL search_path TO "{tree}"')
    in_tree = conn.execution_options(schema_translate_map={None: tree})
    context = MigrationContext.configure(
        in_tree, opts={"version_table": VERSION_TABLE, "version_table_schema": tree})
    steps = list(script().iterate_revisions("head", rev))[::-1]
    with ALEMBIC_LOCK, Operations.context(context):
        for step in steps:
            step.module.upgrade()
    context.stamp(script(), "head")


def _create(conn: Connection, tree: str, on_create: Callable[[Any], None]) -> None:
    from alembic.runtime.migration import MigrationContext

    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{tree}"')
    in_tree = conn.execution_options(schema_translate_map={None: tree})
    Base.metadata.create_all(in_tree)
    # Chunks are already compressed or incompressible assets: stored out of line as they
    # are, so substring() reads only the pages it needs.
    conn.exec_driver_sql(f'ALTER TABLE "{tree}".vfs_chunks ALTER COLUMN data SET STORAGE '
                         f'EXTERNAL')
    # Room on each page for a row's next version: a save rewrites its rows in place (HOT,
    # no new index entries), so writers of one tree in different directories do not meet
    # on index pages, where serializable transactions would see false conflicts (W11 at 4
    # writers: thousands of aborted saves at the default 100, a handful at 70).
    conn.exec_driver_sql(f'ALTER TABLE "{tree}".vfs_inodes SET (fillfactor = {INODE_FILL})')
    now = time.time_ns()
    conn.exec_driver_sql(
        f'INSERT INTO "{tree}".vfs_inodes (parent, name, kind, mode, size, chunk_size, '
        f"ctime_ns, mtime_ns, generation, fparent, fname) "
        f"VALUES ('', '', 2, 16877, 0, 0, %s, %s, 0, '', '')",
        (now, now))
    context = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "version_table_schema": tree})
    context.stamp(script(), "head")
    on_create(in_tree)
