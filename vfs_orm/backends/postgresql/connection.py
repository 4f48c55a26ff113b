"""One thread's PostgreSQL connection and its transactions.

Write transactions are SERIALIZABLE (PostgreSQL's serializable snapshot isolation): writers
of one tree run in parallel and wait only for the rows they both change; when two concurrent
transactions could not have run one after the other (a rename of a directory and a create
below it, an rmdir and a create in it, two read-modify-writes of one file), the server aborts
one of them with a serialization failure (40001) or a deadlock (40P01), which the unit of work
runs again (``UnitOfWork.retrying``) or, inside a batch, reports as ``BusyError``. So every
namespace invariant that held with one writer at a time holds under any interleaving, with
no tree lock: nothing on the write path is an advisory lock (which hot standbys refuse and
CockroachDB ignores). Readers never block. ``snapshot()`` is one REPEATABLE READ READ ONLY
transaction. While vfs_orm owns a connection, psycopg is in autocommit mode and the
transaction statements are vfs_orm's own (as on SQLite); a host session's connection goes
through SQLAlchemy's transactions instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from threading import get_ident
from typing import Any

from sqlalchemy import Connection

from vfs_orm.backends.base import rollback_borrowed
from vfs_orm.backends.postgresql.errors import PGError
from vfs_orm.errors import ClosedError

#: How a write transaction begins (sent just before its first statement: see ``PGRaw._run``).
BEGIN_WRITE = "BEGIN ISOLATION LEVEL SERIALIZABLE"


#: A cursor that returned more rows than this (a listing, a span of chunks) is dropped with
#: its result; a smaller result stays in memory until the connection's next statement.
_KEEP_ROWS = 16
#: psycopg.pq.ExecStatus.TUPLES_OK: a result with rows (psycopg is imported only when used).
_TUPLES_OK = 2


class Rows:
    """A statement's result, read whole as it arrives (the cursor it came from runs the next
    statement), in the shape of a sqlite3 cursor's: ``fetchone``, ``fetchall``,
    ``fetchmany``, iteration and ``rowcount``."""

    __slots__ = ("_at", "_rows", "rowcount")

    def __init__(self, cur: Any) -> None:
        self.rowcount: int = cur.rowcount
        # Whether rows came back, asked of the result itself: ``cur.description`` builds
        # column objects (a fifth of the Python cost of a lookup).
        result = cur.pgresult
        self._rows: list[Any] = (cur.fetchall() if result is not None
                                 and result.status == _TUPLES_OK else [])
        self._at = 0

    def fetchone(self) -> Any:
        at = self._at
        if at < len(self._rows):
            self._at = at + 1
            return self._rows[at]
        return None

    def fetchmany(self, size: int) -> list[Any]:
        at = self._at
        self._at = min(at + size, len(self._rows))
        return self._rows[at:self._at]

    def fetchall(self) -> list[Any]:
        at, self._at = self._at, len(self._rows)
        return self._rows if at == 0 else self._rows[at:]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PGRaw:
    """The psycopg connection as the statements use it: ``execute`` and ``executemany`` in the
    shape of sqlite3's, and psycopg's errors wrapped (``PGError``) so that the layers above
    can catch them without importing psycopg.

    Statements run on two cursors kept for the connection and its thread (a new psycopg
    cursor per statement cost 25 us of a 130 us lookup); each result is read whole at once
    (``Rows``), so that no caller ever holds a cursor the next statement reuses."""

    __slots__ = ("_cursors", "_error", "_idle", "_raw_cursor", "begin_lock", "conn", "lost",
                 "on_broken", "on_lost", "pipelined", "record")

    def __init__(self, conn: Any) -> None:
        import psycopg
        from psycopg.pq import ExecStatus, TransactionStatus

        assert ExecStatus.TUPLES_OK == _TUPLES_OK
        self.conn: Any = conn
        #: Whether a write transaction's BEGIN is pipelined with its first statement (use).
        self.pipelined = True
        self.use(conn)
        self._error = psycopg.Error
        self._raw_cursor = psycopg.RawCursor
        self._idle = TransactionStatus.IDLE
        #: (connection, thread, %s cursor, $n cursor) of the last statement.
        self._cursors: tuple[Any, int, Any, Any] | None = None
        #: Called when the server connection turns out to be gone (see PGConnection).
        self.on_broken: Any = None
        #: No server connection (it was lost and no server answered since): the next
        #: statement first calls ``on_lost``, which waits for one (see PGConnection).
        self.lost = False
        self.on_lost: Any = None
        #: A write transaction begun but not sent yet: its BEGIN goes with the
        #: transaction's first statement, in one round trip (a pipeline).
        self.begin_lock: str | None = None
        #: Where ``_TracedPGRaw`` sends each statement (see ``PGConnection.trace``).
        self.record: Callable[[str], object] | None = None

    def use(self, conn: Any) -> None:
        """Run on ``conn`` (a new connection after a lost one).

        How a write transaction's BEGIN goes depends on where the server is. Over TCP it is
        pipelined with the transaction's first statement: ONE round trip, where a round trip
        over a network costs 0.3-1 ms. Over a unix socket (the server on this machine) it is
        a statement of its own: a round trip there costs ~13 us of client CPU and ~25 us of
        wall time, psycopg's pipeline mode (non-blocking mode, a sync, its result queue) more
        CPU than that (a 3-file save's statements through psycopg: 141-188 against 193-272 us
        of client CPU with fsync off, 293 against 333 with it on), and where the writers share
        the machine's cores with the server, the CPU a save costs sets how many saves per
        second fit: W11 at 4 and 8 writers ~0.1x raw better (benchmarks/RESULTS-W11.md). One
        writer alone waits about one local round trip longer per save."""
        self.conn = conn
        try:
            host = conn.info.host
        except Exception:  # a closed connection: decided again on the next one
            host = ""
        self.pipelined = not (isinstance(host, str) and host.startswith("/"))

    def _failed(self, exc: BaseException) -> PGError:
        if self.conn.broken and self.on_broken is not None:
            self.on_broken()  # the error stands; the next call runs on a new connection
        return PGError(exc)

    def _cursor(self, native: bool) -> Any:
        """This connection's cursor for this thread: ``%s`` placeholders, or ``$n``."""
        kept, conn, thread = self._cursors, self.conn, get_ident()
        if kept is None or kept[0] is not conn or kept[1] != thread:
            kept = self._cursors = (conn, thread, conn.cursor(binary=True),
                                    self._raw_cursor(conn))
        return kept[3] if native else kept[2]

    def execute(self, sql: str, params: Any = None) -> Rows:
        # Results in binary: bytea arrives as the bytes themselves, not as hex text to decode
        # (half the transfer, no parsing).
        return self._run(sql, params, False)

    def execute_native(self, sql: str, params: Any) -> Rows:
        """``execute`` of a statement written with PostgreSQL's own ``$n`` placeholders: its
        text goes to the server as it is, never parsed by psycopg (which caches its parse of
        short statements only)."""
        return self._run(sql, params, True)

    def _run(self, sql: str, params: Any, native: bool) -> Rows:
        if self.lost and self.on_lost is not None:
            self.on_lost()
        try:
            cur = self._cursor(native)
            if self.begin_lock is not None:
                begin, self.begin_lock = self.begin_lock, None
                if self.pipelined:
                    # BEGIN and the transaction's first statement in ONE round trip.
                    with self.conn.pipeline():
                        self.conn.execute(begin)
                        cur.execute(sql, params, binary=True)
                else:  # a unix socket: two round trips cost less than a pipeline (see use)
                    self._cursor(False).execute(begin, None, binary=True)
                    cur.execute(sql, params, binary=True)
            else:
                cur.execute(sql, params, binary=True)
            rows = Rows(cur)
            if len(rows._rows) > _KEEP_ROWS:  # rows returned (an UPDATE's count is not)
                self._cursors = None  # frees the cursor's copy of a big result now
            return rows
        except self._error as exc:
            raise self._failed(exc) from exc

    def flush_begin(self) -> None:
        """Send a pending BEGIN now (before statements that cannot go in a pipeline)."""
        if self.begin_lock is not None:
            self.script("")

    def _take_begin(self) -> str:
        """The pending BEGIN as SQL text (our own constant)."""
        if self.begin_lock is None:
            return ""
        begin, self.begin_lock = self.begin_lock, None
        return begin + "; "

    def script(self, sql: str) -> None:
        """Several statements without parameters in ONE round trip (the simple query
        protocol; nothing from outside is ever part of ``sql``), after a pending BEGIN."""
        if self.lost and self.on_lost is not None:
            self.on_lost()
        try:
            self.conn.execute(self._take_begin() + sql)
        except self._error as exc:
            raise self._failed(exc) from exc

    def copy_rows(self, sql: str, types: Any, rows: Any) -> None:
        """``COPY ... FROM STDIN (FORMAT BINARY)`` of ``rows`` (typed ``types``)."""
        try:
            self.flush_begin()
            with self.conn.cursor().copy(sql) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except self._error as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, rows: Any) -> Any:
        try:
            self.flush_begin()
            cur = self.conn.cursor(binary=True)
            cur.executemany(sql, list(rows))
            return cur
        except self._error as exc:
            raise self._failed(exc) from exc

    def executemany_count(self, sql: str, rows: Any) -> int:
        """Run ``sql`` (which RETURNs a row per inserted row) for each row; how many did."""
        rows = list(rows)
        if not rows:
            return 0
        try:
            self.flush_begin()
            cur = self.conn.cursor(binary=True)
            cur.executemany(sql, rows, returning=True)
            n = 0
            while True:
                n += len(cur.fetchall())
                if not cur.nextset():
                    return n
        except self._error as exc:
            raise self._failed(exc) from exc

    @property
    def in_transaction(self) -> bool:
        if self.lost:  # a closed connection's status is UNKNOWN: nothing of ours is open
            return self.begin_lock is not None
        return self.begin_lock is not None or bool(
            self.conn.info.transaction_status != self._idle)


class _TracedPGRaw(PGRaw):
    """A ``PGRaw`` while ``VFS.tracer()`` runs (``PGConnection.trace`` sets the class of the
    connection's ``PGRaw`` to this one and back, so an untraced statement pays nothing): each
    statement's text is recorded as it is sent, with its placeholders (one entry per row of
    an ``executemany``, as sqlite3 traces them; a pipelined BEGIN before its statement)."""

    __slots__ = ()

    def _note(self, sql: str) -> None:
        if self.record is not None:
            self.record(sql)

    def _run(self, sql: str, params: Any, native: bool) -> Rows:
        if self.begin_lock is not None:
            self._note(self.begin_lock)
        self._note(sql)
        return PGRaw._run(self, sql, params, native)

    def script(self, sql: str) -> None:
        if self.begin_lock is not None:
            self._note(self.begin_lock)
        if sql:
            self._note(sql)
        PGRaw.script(self, sql)

    def copy_rows(self, sql: str, types: Any, rows: Any) -> None:
        self.flush_begin()
        self._note(sql)
        PGRaw.copy_rows(self, sql, types, rows)

    def executemany(self, sql: str, rows: Any) -> Any:
        rows = list(rows)
        self.flush_begin()
        for _ in rows:
            self._note(sql)
        return PGRaw.executemany(self, sql, rows)

    def executemany_count(self, sql: str, rows: Any) -> int:
        rows = list(rows)
        if rows:
            self.flush_begin()
        for _ in rows:
            self._note(sql)
        return PGRaw.executemany_count(self, sql, rows)


class PGConnection:
    """The unit of work's view of one thread's connection (see ``base.TransactionalConnection``)."""

    __slots__ = ("__weakref__", "_sa_stack", "attached", "aux", "borrowed", "conn", "depth",
                 "poisoned", "raw", "snapshot", "stack", "tracing", "txn", "was_autocommit")

    def __init__(self, conn: Connection, tree: str, borrowed: bool = False) -> None:
        self.conn = conn
        driver = conn.connection.driver_connection
        if driver is None:
            raise ClosedError.for_path(None, "the connection is closed")
        self.raw = PGRaw(driver)
        self.borrowed = borrowed
        self.was_autocommit: bool | None = None
        self._own(driver)
        if not borrowed:
            self.raw.on_broken = self._reconnect
            self.raw.on_lost = self._wait
        self.depth = 0
        self.poisoned: dict[int, BaseException] = {}
        self.snapshot = False
        self.txn = 0
        self._sa_stack: list[Any] = []
        self.stack: Any = None
        self.attached: dict[str, str] = {}
        self.aux: list[Any] = []
        self.tracing: Callable[[str], object] | None = None

    def trace(self, record: Callable[[str], object] | None) -> None:
        """Record each statement's text as it is sent (see ``_TracedPGRaw``)."""
        self.tracing = self.raw.record = record
        self.raw.__class__ = PGRaw if record is None else _TracedPGRaw

    def _own(self, driver: Any) -> None:
        if not self.borrowed and not driver.autocommit:
            if driver.info.transaction_status != self.raw._idle:
                driver.rollback()  # SQLAlchemy's own autobegun read, nothing to keep
            self.was_autocommit = False
            driver.autocommit = True

    def _reconnect(self) -> None:
        """The server connection is gone (a restart, a failover, a network cut, an
        administrator's pg_terminate_backend): drop it from the pool and take a new one. What
        the lost transaction held is gone with it; the unit of work unwinds as after any
        error. With no server answering yet, the next statement waits for one (``_wait``)."""
        try:
            self.conn.invalidate()
        except Exception:
            pass
        try:
            self._connect()
        except Exception:
            self.raw.lost = True  # no server yet: the next statement waits for one
        self.raw.begin_lock = None
        # (depth stays: the batches open on this thread unwind it as their error passes.)
        self.poisoned.clear()
        self.snapshot = False
        self.txn += 1

    def _connect(self) -> None:
        engine = self.conn.engine
        self.conn = engine.connect()
        driver = self.conn.connection.driver_connection
        self.was_autocommit = None
        self._own(driver)
        self.raw.use(driver)
        self.raw.lost = False

    def _wait(self) -> None:
        """Before a statement on a connection that was lost: connect again, waiting for a
        server that takes the connection (after a failover: the new primary, which a
        multi-host URL with ``target_session_attrs=read-write`` picks) for up to the
        engine's ``vfs_wait_for_server`` seconds (the VFS's busy_timeout); then the last
        connection error stands (a VFSError, errno EIO)."""
        wait = float(self.conn.engine.get_execution_options().get("vfs_wait_for_server", 0))
        deadline = time.monotonic() + wait
        pause = 0.05
        while True:
            try:
                self._connect()
                return
            except Exception as exc:
                if time.monotonic() + pause > deadline:
                    raise PGError(getattr(exc, "orig", None) or exc) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def in_transaction(self) -> bool:
        if self.borrowed:
            return bool(self.conn.in_transaction())
        return self.raw.in_transaction

    def begin(self) -> None:
        self.txn += 1
        if self.borrowed:
            # A host session's transaction runs at the host's isolation level (use
            # SERIALIZABLE on the host's engine for writers of one tree in parallel).
            self._sa_stack.append(self.conn.begin())
        else:  # sent with the transaction's first statement (PGRaw._run)
            self.raw.begin_lock = BEGIN_WRITE

    def commit(self) -> None:
        self.txn += 1
        if self.borrowed:
            self._sa_stack.pop().commit()
        elif self.raw.begin_lock is not None:
            self.raw.begin_lock = None  # nothing was sent: nothing to commit
        else:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.txn += 1
        self.raw.begin_lock = None
        try:
            if self.borrowed:
                rollback_borrowed(self._sa_stack)
            elif self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
        except Exception:
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
            self.raw.execute(f"RELEASE SAVEPOINT {name}")

    def rollback_to(self, name: str) -> None:
        self.txn += 1
        try:
            if self.borrowed:
                rollback_borrowed(self._sa_stack)
            else:
                self.raw.execute(f"ROLLBACK TO SAVEPOINT {name}")
                self.raw.execute(f"RELEASE SAVEPOINT {name}")
        except Exception:
            pass

    def pin_snapshot(self) -> None:
        self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            self.raw.execute("SELECT 1").fetchone()  # the snapshot is taken here
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.snapshot = True

    def end_snapshot(self) -> None:
        self.snapshot = False
        try:
            if self.raw.in_transaction:
                self.raw.execute("COMMIT")
        except Exception:
            pass

    def close(self) -> None:
        self.raw.begin_lock = None
        try:
            driver = self.raw.conn
            if not self.borrowed and self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
            if self.was_autocommit is not None:
                driver.autocommit = self.was_autocommit
            self.conn.close()
        except Exception:
            pass
