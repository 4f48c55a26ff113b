"""``VFS.compact()``: give the pages freed by deleted and shrunk files back to the disk.

SQLite keeps freed pages in the file for reuse, so a save that once held a large file stays
that large. New databases use incremental auto-vacuum (see ``schema.migrate``): compacting moves
the free pages to the end and cuts them off, in one short write transaction. A database made
before that (or by the seed library) is rewritten once with ``VACUUM``, which also switches
it to incremental auto-vacuum, so the next compaction is cheap. Either way a file database's
WAL is then checkpointed and truncated, since the main file only shrinks at a checkpoint.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from vfs_orm.backends.sqlite.errors import DB_ERRORS, translate
from vfs_orm.errors import InvalidOperationError, ReadOnlyError

if TYPE_CHECKING:
    from vfs_orm.uow import UnitOfWork


def compact(uow: UnitOfWork, *, embedded: bool, file_db: bool, full: bool = False
            ) -> dict[str, Any]:
    """Free pages of the main database released (``full``: the whole file rewritten with
    ``VACUUM``, every page packed full, which also takes back the space rows that shrank
    leave in their pages); returns what it did and the sizes before and after (``bytes_*``
    are the database's pages, not counting the WAL)."""
    if uow.read_only:
        raise ReadOnlyError.for_path(uow.where, "the VFS is read-only")
    if uow.in_batch():
        raise InvalidOperationError.for_path(
            uow.where, "compact() cannot run inside atomic_batch(): it needs its own transaction")
    if full and (embedded or uow.session is not None):
        raise InvalidOperationError.for_path(
            uow.where, "compact(full=True) rewrites the whole database file: not a database "
                       "embedded in a host's, nor inside a host session's transaction")
    repo = SpaceRepository()
    with uow.lock:  # this VFS's other writers wait; readers go on under WAL
        try:
            page, pages_before, free_before, mode = repo.space(uow.raw())
            if mode == "incremental" and not full and uow.session is not None:
                with uow.write() as raw:  # joins the host session's transaction
                    repo.release_free_pages_in(raw, free_before)
                method = "incremental"
            elif mode == "incremental" and not full:
                uow.writes += 1
                repo.release_free_pages(uow.raw())
                method = "incremental"
            elif embedded:
                raise InvalidOperationError.for_path(
                    uow.where, f"the host database uses auto_vacuum={mode}; only a VACUUM of "
                               f"the whole database frees its pages, and that is the host "
                               f"application's call")
            else:
                uow.writes += 1  # open handles re-check their file before trusting a cache
                repo.rebuild_incremental(uow.raw())
                method = "vacuum"
            raw = uow.raw()
            checkpoint = repo.checkpoint_truncate(raw) if file_db else None
            _, pages_after, free_after, mode_after = repo.space(raw)
        except DB_ERRORS as exc:
            raise translate(exc, uow.where) from exc
    return {"method": method, "auto_vacuum": mode_after,
            "bytes_before": pages_before * page, "bytes_after": pages_after * page,
            "free_pages_before": free_before, "free_pages_after": free_after,
            "wal_truncated": checkpoint is not None and checkpoint[0] == 0}


#: ``PRAGMA auto_vacuum`` values.
AUTO_VACUUM_MODES = {0: "none", 1: "full", 2: "incremental"}


class SpaceRepository:
    """Free pages of the main database, and giving them back (``VFS.compact``)."""

    @staticmethod
    def space(raw: sqlite3.Connection) -> tuple[int, int, int, str]:
        """(page size, pages, free pages, auto-vacuum mode) of the main database."""
        size, = raw.execute("PRAGMA main.page_size").fetchone()
        pages, = raw.execute("PRAGMA main.page_count").fetchone()
        free, = raw.execute("PRAGMA main.freelist_count").fetchone()
        mode, = raw.execute("PRAGMA main.auto_vacuum").fetchone()
        return size, pages, free, AUTO_VACUUM_MODES.get(mode, str(mode))

    @staticmethod
    def release_free_pages(raw: sqlite3.Connection) -> None:
        """Move the free pages to the end of the file and cut them off, in a transaction of
        its own (incremental mode only). The pragma frees one page per step and sqlite3's
        ``execute`` steps a row-less statement once; ``executescript`` steps it to the end."""
        try:
            raw.executescript("BEGIN IMMEDIATE; PRAGMA main.incremental_vacuum; COMMIT;")
        except BaseException:
            if raw.in_transaction:
                raw.rollback()
            raise

    @staticmethod
    def release_free_pages_in(raw: sqlite3.Connection, pages: int) -> None:
        """The same inside the caller's open transaction (``executescript`` would commit it
        first): one page per execution."""
        for _ in range(pages):
            raw.execute("PRAGMA main.incremental_vacuum(1)")

    @staticmethod
    def rebuild_incremental(raw: sqlite3.Connection) -> None:
        """Rewrite the whole main database with no free pages, switching it to incremental
        auto-vacuum (the only way to switch an existing file). Outside any transaction.
        Row ids survive: both tables have INTEGER PRIMARY KEYs."""
        raw.execute("PRAGMA main.auto_vacuum=INCREMENTAL")
        raw.execute("VACUUM main")

    @staticmethod
    def checkpoint_truncate(raw: sqlite3.Connection) -> tuple[int, int, int]:
        """Fold the WAL into the database file (which only then shrinks) and empty it:
        (busy, WAL frames, frames checkpointed); busy=1 if a reader kept part of it."""
        return raw.execute("PRAGMA main.wal_checkpoint(TRUNCATE)").fetchone()
