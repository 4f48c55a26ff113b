"""Unit of work: which connection a thread uses, and how writes become transactions.

- File databases give every thread its own SQLAlchemy ``Connection`` (and so its own sqlite3
  connection): reads run concurrently under WAL and never block writers.
- In-memory databases are one connection; every operation, read or write, runs under the lock.
- Writes serialise on one re-entrant lock per VFS, and each write runs in ``BEGIN IMMEDIATE``
  (ENGINEERING-NOTES §1: a deferred transaction that upgrades to a write gets "database is
  locked" at once, ignoring the busy timeout). Other processes wait on SQLite's busy handler.
- ``batch()`` opens a transaction (a SAVEPOINT when nested) that every write of this thread
  joins until it ends; a write inside a batch runs in its own savepoint so that a failed
  operation leaves nothing half-done even if the caller catches the error and goes on.

Driver and SQLAlchemy errors never leave this module untranslated (see ``translate``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from vfs_orm.db import driver
from vfs_orm.errors import (
    BusyError,
    ClosedError,
    CorruptionError,
    InvalidOperationError,
    NoSpaceError,
    NotAVFSDatabaseError,
    ReadOnlyError,
    VFSError,
)

#: SQLite's primary result codes (the low byte of ``sqlite_errorcode``) that say what went
#: wrong without reading the message.
_BY_CODE: dict[int, tuple[type[VFSError], str]] = {
    5: (BusyError, "database is locked by another writer"),        # SQLITE_BUSY
    6: (BusyError, "database is locked by another writer"),        # SQLITE_LOCKED
    8: (ReadOnlyError, "database is read-only"),                   # SQLITE_READONLY
    11: (CorruptionError, "damaged database"),                      # SQLITE_CORRUPT
    13: (NoSpaceError, "no space left for the database"),           # SQLITE_FULL
    26: (NotAVFSDatabaseError, "not a vfs_orm database"),           # SQLITE_NOTADB
}


def translate(exc: BaseException, path: str | None = None) -> VFSError:
    """The ``VFSError`` for a sqlite3 or SQLAlchemy error."""
    if isinstance(exc, VFSError):
        return exc
    if isinstance(exc, UnicodeDecodeError):
        # sqlite3 decodes stored text (names, schema, error messages) as UTF-8.
        return CorruptionError.for_path(path, f"damaged database: stored text is not UTF-8 "
                                              f"({exc.reason} at byte {exc.start})")
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        by_code = _BY_CODE.get(code & 0xFF)
        if by_code is not None:
            cls, text = by_code
            return cls.for_path(path, f"{text}: {msg}")
    low = msg.lower()
    if "locked" in low or "busy" in low:
        return BusyError.for_path(path, f"database is locked by another writer: {msg}")
    if "readonly" in low or "read-only" in low:
        return ReadOnlyError.for_path(path, f"database is read-only: {msg}")
    if "not a database" in low or "file is not a database" in low:
        return NotAVFSDatabaseError.for_path(path, f"not a vfs_orm database: {msg}")
    if "could not decode to utf-8" in low:  # the driver's own message: no SQLite code
        return CorruptionError.for_path(path, f"damaged database: stored text is not UTF-8: "
                                              f"{msg}")
    if "malformed" in low or "corrupt" in low or (isinstance(orig, sqlite3.DatabaseError) and \
            not isinstance(orig, (sqlite3.OperationalError, sqlite3.IntegrityError,
                                  sqlite3.ProgrammingError))):
        return CorruptionError.for_path(path, f"database error: {msg}")
    if "closed" in low:
        return ClosedError.for_path(path, "the VFS is closed")
    return VFSError.for_path(path, f"database error: {msg}")


#: What the driver and SQLAlchemy raise: caught where a public call ends and translated.
#: UnicodeDecodeError is the driver's too: it decodes stored text, which may be anything.
DB_ERRORS = (sqlite3.Error, sa_exc.SQLAlchemyError, UnicodeDecodeError)


class _NullLock:
    """Stands in for the lock on reads of file databases (they need none)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class ThreadConnection:
    """One thread's connection and its transaction stack.

    On the VFS's own engine, transaction statements go straight to the driver connection
    (``BEGIN IMMEDIATE``/``COMMIT``/``SAVEPOINT``): SQLAlchemy's begin/commit machinery costs
    ~45 µs per transaction, as much as a whole durable save of three small files on raw sqlite3.
    The SQLAlchemy ``Connection`` still owns the DBAPI connection (pool, lifecycle), and a
    borrowed connection (embedding) goes through SQLAlchemy's own transactions instead.
    """

    __slots__ = (
        "__weakref__",
        "_sa_stack",
        "attached",
        "aux",
        "borrowed",
        "conn",
        "depth",
        "isolation_before",
        "poisoned",
        "raw",
        "snapshot",
        "stack",
        "txn",
    )

    def __init__(self, conn: Connection, borrowed: bool = False) -> None:
        self.conn = conn
        self.raw: sqlite3.Connection = driver(conn)
        # A connection checked out of a host's engine may be in pysqlite's legacy mode (the
        # driver BEGINs on its own, but not before a SAVEPOINT): while vfs_orm holds it, the
        # driver never begins by itself and vfs_orm's own BEGIN IMMEDIATE/COMMIT rule.
        self.snapshot = False  # inside VFS.snapshot(): a read transaction, no writes
        # Changes whenever what this connection's transaction has seen may be undone or
        # overtaken: at begin, commit, rollback and rollback to a savepoint.
        self.txn = 0
        self.isolation_before: Any = None
        if not borrowed and self.raw.isolation_level is not None:
            self.isolation_before = self.raw.isolation_level
            self.raw.isolation_level = None
        self.depth = 0
        self.borrowed = borrowed
        self._sa_stack: list[Any] = []
        # batch level -> the database error that broke an operation inside it
        self.poisoned: dict[int, BaseException] = {}
        # Layers: the stack this connection has attached (see layers.LayerStack.apply), the
        # underlays attached on it (alias -> uri), and extra connections for deep stacks.
        self.stack: Any = None
        self.attached: dict[str, str] = {}
        self.aux: list[Any] = []

    def in_transaction(self) -> bool:
        if self.borrowed:
            return bool(self.conn.in_transaction())
        return bool(self.raw.in_transaction)

    def _driver_begin(self) -> None:
        """Joining a host session: the driver must be inside its transaction before a
        SAVEPOINT (in legacy mode it begins only before DML, and a SAVEPOINT outside a
        transaction would commit on its own at RELEASE)."""
        if not self.raw.in_transaction:
            self.raw.execute("BEGIN")

    def begin(self) -> None:
        self.txn += 1
        if self.borrowed:
            self._driver_begin()
            self._sa_stack.append(self.conn.begin())
        else:
            self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.txn += 1
        if self.borrowed:
            self._sa_stack.pop().commit()
        else:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.txn += 1
        try:
            if self.borrowed:
                txn = self._sa_stack.pop()
                if txn.is_active:
                    txn.rollback()
            elif self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
        except DB_ERRORS:
            pass

    def savepoint(self, name: str) -> None:
        if self.borrowed:
            self._driver_begin()
            self._sa_stack.append(self.conn.begin_nested())
        else:
            self.raw.execute(f"SAVEPOINT {name}")

    def release(self, name: str) -> None:
        if self.borrowed:
            self._sa_stack.pop().commit()
        else:
            self.raw.execute(f"RELEASE {name}")

    def rollback_to(self, name: str) -> None:
        self.txn += 1
        try:
            if self.borrowed:
                txn = self._sa_stack.pop()
                if txn.is_active:
                    txn.rollback()
            else:
                self.raw.execute(f"ROLLBACK TO {name}")
                self.raw.execute(f"RELEASE {name}")
        except DB_ERRORS:
            pass

    def close(self) -> None:
        for aux in self.aux:
            try:
                aux.close()
            except Exception:
                pass
        try:
            if self.isolation_before is not None:
                if self.raw.in_transaction:
                    self.raw.execute("ROLLBACK")
                self.raw.isolation_level = self.isolation_before
            self.conn.close()
        except Exception:
            pass


class UnitOfWork:
    """Connections, the write lock and transactions of one VFS."""

    def __init__(self, engine: Engine, *, shared: bool, read_only: bool, owns_engine: bool = True,
                 session: Any = None, where: str | None = None) -> None:
        self.engine = engine
        self.session = session  # a host's Session: every operation joins its transaction
        self.shared = shared or session is not None
        self.read_only = read_only
        self.where = where
        self.lock = threading.RLock()
        self.read_lock: Any = self.lock if self.shared else _NullLock()
        self._owns_engine = owns_engine
        self._local = threading.local()
        self._all: weakref.WeakSet[ThreadConnection] = weakref.WeakSet()
        self._single: ThreadConnection | None = None
        self._borrowed = session is not None
        self.closed = False
        # The layer stack (an immutable snapshot, see layers.py); connections catch up with it
        # lazily in view(), outside transactions.
        self.stack: Any = None
        # Bumped when the whole content is replaced (deserialize): open handles go stale.
        self.epoch = 0
        # Runs once inside the next write transaction (recording the layer stack).
        self.before_write: Callable[[sqlite3.Connection], None] | None = None
        # Bumped by every write of this VFS: with SQLite's data_version (other connections'
        # commits) it tells an open handle whether what it knows about its file still holds.
        self.writes = 0
        self.on_commit: list[Callable[[], None]] = []

    # -- connections ----------------------------------------------------------------------
    def state(self) -> ThreadConnection:
        """This thread's connection (created on first use)."""
        if self.session is not None:
            return self._session_state()
        if self._single is not None:
            return self._single
        st: ThreadConnection | None = getattr(self._local, "st", None)
        if st is not None:
            return st
        if self.closed:
            raise ClosedError.for_path(self.where, "the VFS is closed")
        try:
            conn = self.engine.connect()
        except DB_ERRORS as exc:
            raise translate(exc, self.where) from exc
        st = ThreadConnection(conn)
        if self.shared:
            self._single = st
        else:
            self._local.st = st
            self._all.add(st)
            # A thread that ends drops its thread-local; give the connection back then.
            weakref.finalize(st, _close_quietly, conn)
        return st

    def view(self) -> ThreadConnection:
        """This thread's connection, with the current layer stack attached (when it is not in
        the middle of a transaction; then it keeps the stack it had, a consistent snapshot)."""
        st = self.state()
        if st.stack is not self.stack and self.stack is not None:
            self.stack.apply(st)
        return st

    def _session_state(self) -> ThreadConnection:
        """The host session's current connection (it changes after each commit)."""
        if self.closed:
            raise ClosedError.for_path(self.where, "the VFS is closed")
        try:
            conn = self.session.connection()
        except DB_ERRORS as exc:
            raise translate(exc, self.where) from exc
        st = self._single
        if st is None or st.conn is not conn:
            st = self._single = ThreadConnection(conn, borrowed=True)
        return st

    def raw(self) -> sqlite3.Connection:
        if self.session is not None:
            return self._session_state().raw
        try:
            return self._local.st.raw  # type: ignore[no-any-return]
        except AttributeError:
            return self.state().raw

    # -- transactions ---------------------------------------------------------------------
    def write(self, savepoint: bool = False) -> _Write:
        """A write: its own ``BEGIN IMMEDIATE`` transaction, or part of the open batch.

        Inside a batch, operations raise their errors before their first change, so a caught
        error leaves the batch clean; ``savepoint=True`` is for operations that cannot check
        everything first (copytree). A database error in the middle of an operation poisons
        the batch: it rolls back when it ends, whatever the caller does with the error.
        """
        if self.read_only:
            raise ReadOnlyError.for_path(self.where, "the VFS is read-only")
        return _Write(self, savepoint)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """All writes of this thread inside commit together or not at all; nests as savepoints."""
        if self.read_only:
            raise ReadOnlyError.for_path(self.where, "the VFS is read-only")
        with self.lock:
            st = self.state()
            if st.snapshot:
                raise _in_snapshot(self.where)
            outer = st.depth == 0 and not st.in_transaction()
            name = f"vfs_batch_{st.depth}"
            try:
                if outer:
                    st.begin()
                else:
                    st.savepoint(name)
            except DB_ERRORS as exc:
                raise translate(exc, self.where) from exc
            st.depth += 1
            level = st.depth
            try:
                yield
            except BaseException:
                st.depth -= 1
                st.poisoned.pop(level, None)
                st.rollback() if outer else st.rollback_to(name)
                raise
            st.depth -= 1
            poisoned = st.poisoned.pop(level, None)
            if poisoned is not None:
                st.rollback() if outer else st.rollback_to(name)
                raise translate(poisoned, self.where) from poisoned
            try:
                st.commit() if outer else st.release(name)
            except DB_ERRORS as exc:
                st.rollback() if outer else st.rollback_to(name)
                raise translate(exc, self.where) from exc
            if outer:
                self._after_commit()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read of this thread inside sees one committed state.

        File databases: ONE read transaction on this thread's connection, and on each extra
        connection of a deep layer stack, with every attached database's snapshot pinned at
        the start (SQLite takes each file's snapshot at its first read). WAL readers never
        block writers, and other processes' saves go on. Databases with one shared connection
        (``:memory:``, a host session) hold the VFS's lock instead: other threads of this
        process wait, which is how they are consistent anyway. Inside a batch, the batch's
        own transaction already is the snapshot. Writes inside a snapshot are refused."""
        if self.shared:
            with self.lock:
                yield
            return
        st = self.view()
        if st.snapshot or st.depth > 0 or st.in_transaction():
            yield
            return
        connections = [st.raw, *(aux.raw for aux in st.aux)]
        try:
            for k, raw in enumerate(connections):
                raw.execute("BEGIN")
                schemas = ["main", *st.attached] if k == 0 else list(st.aux[k - 1].attached)
                for schema in schemas:
                    raw.execute(f'SELECT count(*) FROM "{schema}".sqlite_master').fetchone()
        except DB_ERRORS as exc:
            _end_reads(connections)
            raise translate(exc, self.where) from exc
        st.snapshot = True
        try:
            yield
        finally:
            st.snapshot = False
            _end_reads(connections)

    def in_batch(self) -> bool:
        st = self._single if self._single is not None else getattr(self._local, "st", None)
        return st is not None and st.depth > 0

    def _after_commit(self) -> None:
        for hook in self.on_commit:
            hook()

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        with self.lock:
            self.closed = True
            if self._single is not None and not self._borrowed:
                self._single.close()
            for st in list(self._all):
                st.close()
            self._single = None
            self._local = threading.local()
            if self._owns_engine:
                self.engine.dispose()


class _Write:
    """Context manager behind ``UnitOfWork.write`` (a class: a generator-based one costs
    about 2 µs per write)."""

    __slots__ = ("own", "savepoint", "st", "uow")

    def __init__(self, uow: UnitOfWork, savepoint: bool) -> None:
        self.uow = uow
        self.savepoint = savepoint
        self.own = False

    def __enter__(self) -> sqlite3.Connection:
        uow = self.uow
        uow.lock.acquire()
        uow.writes += 1
        try:
            st = self.st = uow.state()
            if st.snapshot:
                raise _in_snapshot(uow.where)
            if st.depth == 0 and not st.in_transaction():
                try:
                    st.begin()
                except DB_ERRORS as exc:
                    raise translate(exc, uow.where) from exc
                self.own = True
            elif self.savepoint:
                st.savepoint("vfs_op")
            hook = uow.before_write
            if hook is not None:
                uow.before_write = None
                try:
                    hook(st.raw)
                except BaseException:
                    uow.before_write = hook
                    if self.own:
                        st.rollback()
                    raise
            return st.raw
        except BaseException:
            uow.lock.release()
            raise

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        uow, st = self.uow, self.st
        try:
            if self.own:
                if exc_type is not None:
                    st.rollback()
                    return
                try:
                    st.commit()
                except DB_ERRORS as err:
                    st.rollback()
                    raise translate(err, uow.where) from err
                uow._after_commit()
            elif self.savepoint:
                if exc_type is not None:
                    st.rollback_to("vfs_op")
                else:
                    st.release("vfs_op")
            elif exc_type is not None and not isinstance(exc, VFSError) and st.depth:
                # A database error mid-operation: the batch must not commit half of it.
                st.poisoned.setdefault(st.depth, exc)
        finally:
            uow.lock.release()


def _in_snapshot(where: str | None) -> VFSError:
    return InvalidOperationError.for_path(
        where, "writes are not allowed inside snapshot() (it is a read transaction); use "
               "atomic_batch() to read and write consistently")


def _end_reads(connections: list[sqlite3.Connection]) -> None:
    for raw in connections:
        try:
            if raw.in_transaction:
                raw.execute("COMMIT")
        except DB_ERRORS:
            pass


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:
        pass


