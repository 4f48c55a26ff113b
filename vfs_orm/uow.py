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
from typing import Any, Callable, Iterator

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from vfs_orm.errors import (
    BusyError,
    ClosedError,
    CorruptionError,
    NotAVFSDatabaseError,
    ReadOnlyError,
    VFSError,
)


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
    if "malformed" in low or "corrupt" in low or isinstance(orig, sqlite3.DatabaseError) and \
            not isinstance(orig, (sqlite3.OperationalError, sqlite3.IntegrityError,
                                  sqlite3.ProgrammingError)):
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

    __slots__ = ("conn", "raw", "depth", "poisoned", "borrowed", "_sa_stack", "stack", "aux",
                 "attached", "__weakref__")

    def __init__(self, conn: Connection, borrowed: bool = False) -> None:
        self.conn = conn
        self.raw: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
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

    def begin(self) -> None:
        if self.borrowed:
            self._sa_stack.append(self.conn.begin())
        else:
            self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.borrowed:
            self._sa_stack.pop().commit()
        else:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
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
            self._sa_stack.append(self.conn.begin_nested())
        else:
            self.raw.execute(f"SAVEPOINT {name}")

    def release(self, name: str) -> None:
        if self.borrowed:
            self._sa_stack.pop().commit()
        else:
            self.raw.execute(f"RELEASE {name}")

    def rollback_to(self, name: str) -> None:
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
            except Exception:  # noqa: BLE001
                pass
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing must not fail at interpreter exit
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
        self._all: "weakref.WeakSet[ThreadConnection]" = weakref.WeakSet()
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
    def write(self, savepoint: bool = False) -> "_Write":
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

    __slots__ = ("uow", "savepoint", "st", "own")

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


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - runs from finalizers
        pass


