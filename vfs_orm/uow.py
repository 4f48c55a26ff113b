"""Unit of work: which connection a thread uses, and how writes become transactions.

- File databases give every thread its own SQLAlchemy ``Connection`` (and so its own sqlite3
  connection): reads run concurrently under WAL and never block writers.
- In-memory databases are one connection; every operation, read or write, runs under the lock.
- Writes serialise on one re-entrant lock per VFS, and each write runs in its own write
  transaction (the backend's: ``BEGIN IMMEDIATE`` on SQLite). Other processes wait on the
  database's own lock.
- ``batch()`` opens a transaction (a SAVEPOINT when nested) that every write of this thread
  joins until it ends; a write inside a batch runs in its own savepoint so that a failed
  operation leaves nothing half-done even if the caller catches the error and goes on.

Driver and SQLAlchemy errors never leave this module untranslated (see ``translate``).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from vfs_orm.backends import DB_ERRORS, SQLITE, Backend, TransactionalConnection, translate
from vfs_orm.errors import (
    ClosedError,
    InvalidOperationError,
    ReadOnlyError,
    VFSError,
)

_T = TypeVar("_T")

#: How often an operation that the server aborted for a conflict runs again at least (and
#: then on while the VFS's busy_timeout has not passed), the first pause (doubled each time,
#: with jitter so that the conflicting writers drift apart) and the longest.
RETRIES = 6
RETRY_PAUSE = 0.005
RETRY_PAUSE_MAX = 0.1


def retry_pause(attempt: int) -> None:
    time.sleep(min(RETRY_PAUSE * (2 ** attempt), RETRY_PAUSE_MAX) * (0.5 + random.random()))

class _NullLock:
    """Stands in for the lock on reads of file databases (they need none)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class UnitOfWork:
    """Connections, the write lock and transactions of one VFS."""

    def __init__(self, engine: Engine, *, shared: bool, read_only: bool, owns_engine: bool = True,
                 session: Any = None, where: str | None = None, backend: Backend = SQLITE
                 ) -> None:
        self.engine = engine
        self.backend = backend
        self.session = session  # a host's Session: every operation joins its transaction
        self.shared = shared or session is not None
        self.read_only = read_only
        self.where = where
        self.lock = threading.RLock()
        self.read_lock: Any = self.lock if self.shared else _NullLock()
        self._owns_engine = owns_engine
        self._local = threading.local()
        self._all: weakref.WeakSet[TransactionalConnection] = weakref.WeakSet()
        self._single: TransactionalConnection | None = None
        self._borrowed = session is not None
        self.closed = False
        # The layer stack (an immutable snapshot, see backends/sql/stack.py); connections catch up with it
        # lazily in view(), outside transactions.
        self._stack: Any = None
        self.layered = False  # underlays attached: the namespace resolves across layers
        # Bumped when the whole content is replaced (deserialize): open handles go stale.
        self.epoch = 0
        # Runs once inside the next write transaction (recording the layer stack).
        self.before_write: Callable[[Any], None] | None = None
        # Bumped by every write of this VFS: with SQLite's data_version (other connections'
        # commits) it tells an open handle whether what it knows about its file still holds.
        self.writes = 0
        self.on_commit: list[Callable[[], None]] = []
        #: Seconds an operation aborted by conflicts keeps running again (after RETRIES).
        self.retry_for = 0.0

    @property
    def stack(self) -> Any:
        return self._stack

    @stack.setter
    def stack(self, stack: Any) -> None:
        self._stack = stack
        # A case-insensitive database resolves through its (folded) stack statements even
        # alone: they are what looks entries up by their folded keys; so does one that may
        # hold whiteouts: they hide them.
        self.layered = stack is not None and (bool(stack.layers) or stack.folded
                                              or stack.whiteouts)

    # -- connections ----------------------------------------------------------------------
    def state(self) -> TransactionalConnection:
        """This thread's connection (created on first use)."""
        if self.session is not None:
            return self._session_state()
        if self._single is not None:
            return self._single
        st: TransactionalConnection | None = getattr(self._local, "st", None)
        if st is not None:
            return st
        if self.closed:
            raise ClosedError.for_path(self.where, "the VFS is closed")
        try:
            conn = self.engine.connect()
        except DB_ERRORS as exc:
            raise translate(exc, self.where) from exc
        st = self.backend.connection(conn)
        if self.shared:
            self._single = st
        else:
            self._local.st = st
            self._all.add(st)
            # A thread that ends drops its thread-local; give the connection back then.
            weakref.finalize(st, _close_quietly, conn)
        return st

    def view(self) -> TransactionalConnection:
        """This thread's connection, with the current layer stack attached (when it is not in
        the middle of a transaction; then it keeps the stack it had, a consistent snapshot)."""
        st = self.state()
        if st.stack is not self.stack and self.stack is not None:
            self.stack.apply(st)
        return st

    def _session_state(self) -> TransactionalConnection:
        """The host session's current connection (it changes after each commit)."""
        if self.closed:
            raise ClosedError.for_path(self.where, "the VFS is closed")
        try:
            conn = self.session.connection()
        except DB_ERRORS as exc:
            raise translate(exc, self.where) from exc
        st = self._single
        if st is None or st.conn is not conn:
            st = self._single = self.backend.connection(conn, borrowed=True)
        return st

    def raw(self) -> Any:
        if self.session is not None:
            return self._session_state().raw
        try:
            return self._local.st.raw
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
            st = self.view()
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
            with self.lock, _foreign_snapshots(self.stack):
                yield
            return
        st = self.view()
        if st.snapshot or st.depth > 0 or st.in_transaction():
            yield
            return
        try:
            st.pin_snapshot()
        except DB_ERRORS as exc:
            raise translate(exc, self.where) from exc
        try:
            with _foreign_snapshots(st.stack):
                yield
        finally:
            st.end_snapshot()

    def may_retry(self, exc: BaseException) -> bool:
        """Whether an operation that failed with ``exc`` may simply run again: a transient
        conflict (``DriverError.retryable``) that ended a transaction of the operation's own,
        not a batch's or a host session's (their caller decides)."""
        return (getattr(exc, "retryable", False) and not self._borrowed
                and not self.in_batch())

    def retrying(self, op: Callable[[], _T], restore: Callable[[], None],
                 failed: BaseException | None = None) -> _T:
        """Run ``op`` (a write of its own transaction), and again after a transient conflict
        (``may_retry``), RETRIES times and then on until ``retry_for`` seconds have passed
        (the VFS's busy_timeout), ``restore`` first putting back what the failed attempt
        changed outside the database. ``failed``: ``op`` already ran once and failed with it.
        Driver errors leave untranslated."""
        if failed is None:
            try:
                return op()
            except DB_ERRORS as exc:
                if not self.may_retry(exc):
                    raise
        attempt = 0
        until = time.monotonic() + self.retry_for
        while True:
            restore()
            retry_pause(attempt)
            try:
                return op()
            except DB_ERRORS as exc:
                attempt += 1
                if (attempt >= RETRIES and time.monotonic() >= until) or \
                        not self.may_retry(exc):
                    raise

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

    def __enter__(self) -> Any:
        uow = self.uow
        uow.lock.acquire()
        uow.writes += 1
        try:
            # view(): a thread whose first use is a write attaches the stack's underlays
            # before BEGIN (ATTACH is impossible inside a transaction).
            st = self.st = uow.view()
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
                    if uow.may_retry(err):
                        # A conflict found at COMMIT (PostgreSQL's serializable checks run
                        # there too): untranslated, so that the operation runs again.
                        raise
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


@contextlib.contextmanager
def _foreign_snapshots(stack: Any) -> Iterator[None]:
    """A snapshot of each foreign underlay (read through a VFS of its own) for the duration."""
    with contextlib.ExitStack() as pinned:
        for reader in stack.readers if stack is not None else ():
            pinned.enter_context(reader.snapshot())
        yield


def _in_snapshot(where: str | None) -> VFSError:
    return InvalidOperationError.for_path(
        where, "writes are not allowed inside snapshot() (it is a read transaction); use "
               "atomic_batch() to read and write consistently")


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:
        pass


