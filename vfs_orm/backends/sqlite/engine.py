"""Engines and connections: SQLite settings, URIs, opening errors, host engines.

- Engines whose connections are configured for vfs_orm (WAL, foreign keys,
  ``trusted_schema=OFF``, a busy timeout) and whose transactions really are transactions
  (pysqlite's legacy mode would let a SAVEPOINT commit on its own: ENGINEERING-NOTES §1).
- What a path is before it is opened (missing, read-only media, not a file), and the error
  that says why a file cannot be opened.
- A host application's engine: accepted as it is, its connections borrowed.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from vfs_orm.backends.sql.views import VIEW_NAMES, checkpoint_views
from vfs_orm.backends.sqlite.closed import install_wall
from vfs_orm.backends.sqlite.errors import translate
from vfs_orm.errors import (
    ClosedError,
    IsADirError,
    NotAVFSDatabaseError,
    NotFoundError,
    PermissionDenied,
    ReadOnlyError,
    VFSError,
)

SQLITE_HEADER = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT = 30.0
#: Bytes of each database file read through memory mapping (SQLite lowers it to its build's
#: limit). Off on 32-bit builds, where address space is scarce.
MMAP_SIZE = 1 << 31 if sys.maxsize > 1 << 32 else 0
DEFAULT_PAGE_SIZE = 4096
#: SQLite's VFS for files on this OS.
OS_VFS = "win32" if os.name == "nt" else "unix"
LEGACY_TABLES = frozenset({"inodes", "chunks"})


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------

def driver(conn: Connection) -> sqlite3.Connection:
    """The driver connection under a SQLAlchemy connection: statements run there directly do
    not autobegin a SQLAlchemy transaction, and run inside the one that is open."""
    raw = conn.connection.driver_connection
    if raw is None:
        raise ClosedError.for_path(None, "the connection is closed")
    return raw  # type: ignore[no-any-return]


def file_uri(path: str | os.PathLike[str], read_only: bool) -> str:
    """A ``file:`` URI for ``path`` that survives ``?``, ``#`` and ``%`` in the name.

    Read-only opens of a file on read-only media (a read-only mount, squashfs, an image: a
    base pack shipped with a game) use SQLite's ``immutable`` open: a WAL database otherwise
    needs to create its ``-shm`` file beside it even to read, and fails with "unable to open
    database file". Immutable is only safe when nobody can change the file, so it is chosen
    only when neither the file nor its directory can be written.
    """
    full = os.path.abspath(os.fspath(path))
    quoted = urllib.parse.quote(full)
    # The OS's VFS, named: an ATTACH takes the VFS of the connection it runs on, and an
    # in-memory top (memdb) would otherwise open the underlay's name as a new, empty memory
    # database.
    if read_only and on_read_only_media(full):
        return f"file:{quoted}?mode=ro&immutable=1&vfs={OS_VFS}"
    return f"file:{quoted}?mode={'ro' if read_only else 'rwc'}&vfs={OS_VFS}"


def on_read_only_media(path: str) -> bool:
    """True if neither ``path`` nor its directory can be written (by anyone: a read-only
    mount answers EROFS even to root)."""
    directory = os.path.dirname(path) or "."
    if os.access(path, os.W_OK) or os.access(directory, os.W_OK):
        return False
    if not os.path.exists(path):
        return False
    wal = path + "-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        # Committed pages that only the log holds: an immutable open would not see them.
        raise ReadOnlyError.for_path(
            path, "the database has an unfinished write-ahead log (-wal file) and its storage "
                  "is read-only: open it once where it can be written (or publish packs with "
                  "`vfs-orm compact`, which checkpoints the log)")
    return True


def memory_uri() -> str:
    """A private in-memory database that other connections of this process can ATTACH by name
    (the ``memdb`` VFS shares by name without SQLite's shared-cache mode)."""
    return f"file:/vfs_orm-{uuid.uuid4().hex}?vfs=memdb"


def install_transaction_fix(engine: Engine) -> None:
    """Make ``engine``'s transactions real SQLite transactions (ENGINEERING-NOTES §1).

    pysqlite's legacy transaction handling does not emit BEGIN before a SAVEPOINT or a SELECT,
    so a savepoint can commit on its own and rolled-back work survives. This installs the
    documented recipe: the driver never begins by itself, and SQLAlchemy's "begin" event emits
    ``BEGIN`` (``BEGIN IMMEDIATE`` for connections with the ``vfs_begin`` execution option).
    Only connections made after the call are fixed: call ``engine.dispose()`` afterwards if the
    engine was already used. Idempotent.

    Raises:
        sqlalchemy.exc.InvalidRequestError: ``engine`` is not a SQLAlchemy ``Engine`` (a type
            error of the caller's, not translated).
    """
    if getattr(engine, "_vfs_orm_fixed", False):
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        opts = conn.get_execution_options()
        if opts.get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql(opts.get("vfs_begin", "BEGIN"))

    engine._vfs_orm_fixed = True  # type: ignore[attr-defined]


def make_engine(uri: str, *, read_only: bool, shared: bool, durable: bool = True,
                busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                checkpoint: int | None = None) -> Engine:
    """An engine whose every connection is set up for vfs_orm.

    ``shared`` databases (in-memory ones) use a single connection; file databases give each
    thread its own connection so that reads run concurrently under WAL. ``checkpoint``: every
    connection reads that checkpoint as the tree (``backends/sql/views.py``).
    """
    views = checkpoint_views(checkpoint) if checkpoint is not None else []
    synchronous = "FULL" if durable else "NORMAL"

    def connect() -> sqlite3.Connection:
        raw = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                              timeout=busy_timeout, cached_statements=512)
        try:
            raw.execute("PRAGMA foreign_keys=ON")
            # Mods and shared saves are untrusted: never run functions from their schema.
            raw.execute("PRAGMA trusted_schema=OFF")
            # ... nor anything a trigger or a view of theirs would do (the closed schema's
            # second wall: see closed.py).
            install_wall(raw, VIEW_NAMES if views else frozenset())
            for view in views:
                raw.execute(view)
            raw.execute(f"PRAGMA synchronous={synchronous}")
            # No bigger page cache than SQLite's default (2 MiB): measured, a 32 MiB cache made
            # streams 15-20 % slower (pages cycle through memory the CPU caches cannot hold)
            # and helped no workload (W1-W10, three A/B runs each).
            # Freed pages are not zero-filled (this SQLite build defaults to secure_delete=ON,
            # and zeroing needs log space): on a full disk, removing files must still work
            # once a little space exists. Overwritten-but-free pages keep old bytes until
            # reused or compact()ed.
            raw.execute("PRAGMA secure_delete=FAST")
            # Reads come straight from the OS page cache, mapped, instead of being copied
            # into SQLite's page cache first: measured 2.8x a stream's throughput (WS) here.
            # Only reads map the file (writes still go through write(), so a full disk is
            # ENOSPC, never a fault); SQLite remaps at each read transaction when another
            # connection has grown or shrunk the file. The cap is the build's (2 GiB here);
            # past it, pages are read as before.
            if MMAP_SIZE:
                raw.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
        except sqlite3.DatabaseError as exc:
            raw.close()
            raise _open_error(uri, exc) from exc
        return raw

    engine = create_engine(
        "sqlite+pysqlite://",
        creator=connect,
        poolclass=QueuePool,
        pool_size=1 if shared else 8,
        max_overflow=0 if shared else -1,
        pool_timeout=busy_timeout,
        pool_reset_on_return="rollback",
    )
    install_transaction_fix(engine)
    return engine


def _open_error(uri: str, exc: sqlite3.DatabaseError) -> VFSError:
    """Why a database could not be opened, in words that point at the cause rather than
    blaming the file."""
    path = urllib.parse.unquote(uri[len("file:"):].split("?", 1)[0]) if uri.startswith(
        "file:") else uri
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF == 14 and not path.startswith("/vfs_orm-"):
        directory = os.path.dirname(path) or "."
        if not os.access(path, os.R_OK):
            return PermissionDenied.for_path(path, f"cannot read the database file: {exc}")
        if not os.access(directory, os.W_OK) or not os.access(path, os.W_OK):
            return ReadOnlyError.for_path(
                path, f"cannot open the database: its directory or the file cannot be "
                      f"written, which a write-ahead-log database needs ({exc}); open it "
                      f"read_only=True")
        return VFSError.for_path(path, f"cannot open the database file: {exc}")
    err = translate(exc, path)
    if type(err) is VFSError:
        return NotAVFSDatabaseError.for_path(path, f"cannot open database: {exc}")
    return err


# --------------------------------------------------------------------------------------------
# What is this file?
# --------------------------------------------------------------------------------------------

def check_file(path: str | os.PathLike[str], *, must_exist: bool) -> bool:
    """Look at a file's header before SQLite opens it. Returns True if it holds a database.

    Raises:
        NotFoundError: ``must_exist`` and the file is missing.
        NotAVFSDatabaseError: the file is not SQLite, or is shorter than its own header says.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if must_exist:
            raise NotFoundError.for_path(p, "database file not found") from None
        return False
    if stat.S_ISDIR(st.st_mode):
        raise IsADirError.for_path(p, "is a directory, not a database file")
    if st.st_size == 0:
        if must_exist:
            raise NotAVFSDatabaseError.for_path(p, "empty file: not a vfs_orm database")
        return False
    with open(p, "rb") as f:
        head = f.read(100)
    if len(head) < 100 or not head.startswith(SQLITE_HEADER):
        raise NotAVFSDatabaseError.for_path(p, "not a SQLite database")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    change, valid_for = head[24:28], head[92:96]
    wal = Path(p + "-wal")
    if pages and change == valid_for and st.st_size < pages * page_size and not (
            wal.exists() and wal.stat().st_size > 0):
        raise NotAVFSDatabaseError.for_path(
            p, f"truncated database: {st.st_size} bytes, header says {pages * page_size}")
    return True


def check_host_engine(engine: Engine) -> None:
    """Accept a host application's engine: it must be SQLite. Its transaction settings may be
    pysqlite's defaults (legacy mode, where a SAVEPOINT or a SELECT does not BEGIN): vfs_orm
    begins and ends the transactions on the connections it checks out itself
    (``own_transactions``), and begins the driver transaction when it joins a host session
    whose driver has not begun one (``driver_begin``). ``install_transaction_fix`` is
    optional."""
    if engine.dialect.name != "sqlite":
        raise VFSError.for_path(str(engine.url), "vfs_orm needs a SQLite engine")


def own_transactions(conn: Connection) -> Any:
    """Put the driver connection under ``conn`` in autocommit mode (the driver never BEGINs
    by itself: vfs_orm's explicit BEGIN IMMEDIATE, SAVEPOINT and COMMIT are the only ones).
    Returns what to restore before the connection goes back to its pool."""
    raw = driver(conn)
    before = raw.isolation_level
    if before is not None:
        raw.isolation_level = None
    return before


def restore_transactions(conn: Connection, before: Any) -> None:
    try:
        driver(conn).isolation_level = before
    except Exception:
        pass


def driver_begin(conn: Connection) -> None:
    """Inside a host's SQLAlchemy transaction: make sure the driver has begun one too (under
    pysqlite's legacy mode it begins only before DML, so a SAVEPOINT or DDL would run, and
    commit, on its own)."""
    raw = driver(conn)
    if not raw.in_transaction:
        raw.execute("BEGIN")


def set_journal_mode(conn: Connection, mode: str = "WAL") -> None:
    driver(conn).execute(f"PRAGMA journal_mode={mode}")
