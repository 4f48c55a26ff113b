"""One thread's SQLite connection and its transactions.

On the VFS's own engine, transaction statements go straight to the driver connection
(``BEGIN IMMEDIATE``: a deferred transaction that upgrades to a write gets "database is locked"
at once, ignoring the busy timeout, ENGINEERING-NOTES §1). A borrowed connection (a host's
session) goes through SQLAlchemy's own transactions instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from vfs_orm.backends.base import rollback_borrowed
from vfs_orm.backends.sqlite.closed import pragma
from vfs_orm.backends.sqlite.engine import driver
from vfs_orm.backends.sqlite.errors import DB_ERRORS


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
        "tracing",
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
        # Layers: the stack this connection has attached (see stack.LayerStack.apply), the
        # underlays attached on it (alias -> uri), and extra connections for deep stacks.
        self.stack: Any = None
        # A driver connection back from the pool (its thread ended) still has that thread's
        # underlays ATTACHed: listed with an unknown URI, the next apply() detaches them and
        # attaches what its stack wants (ATTACHing the alias again failed: "already in use").
        self.attached: dict[str, str] = {
            str(r["name"]): "" for r in pragma(self.raw, "PRAGMA database_list")
            if r["name"] not in ("main", "temp")}
        self.aux: list[Any] = []
        self.tracing: Callable[[str], object] | None = None

    def trace(self, record: Callable[[str], object] | None) -> None:
        """sqlite3's own trace callback (statements as SQLite runs them, values bound), on
        this connection and the extra connections of a deep layer stack."""
        self.tracing = record
        for raw in self._connections():
            raw.set_trace_callback(record)

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
                rollback_borrowed(self._sa_stack)
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
                rollback_borrowed(self._sa_stack)
            else:
                self.raw.execute(f"ROLLBACK TO {name}")
                self.raw.execute(f"RELEASE {name}")
        except DB_ERRORS:
            pass

    def _connections(self) -> list[sqlite3.Connection]:
        return [self.raw, *(aux.raw for aux in self.aux)]

    def pin_snapshot(self) -> None:
        """ONE read transaction on this connection, and on each extra connection of a deep
        layer stack, with every attached database's snapshot pinned now (SQLite takes each
        file's snapshot at its first read). WAL readers never block writers."""
        connections = self._connections()
        try:
            for k, raw in enumerate(connections):
                raw.execute("BEGIN")
                schemas = ["main", *self.attached] if k == 0 else list(self.aux[k - 1].attached)
                for schema in schemas:
                    raw.execute(f'SELECT count(*) FROM "{schema}".sqlite_master').fetchone()
        except BaseException:
            _end_reads(connections)
            raise
        self.snapshot = True

    def end_snapshot(self) -> None:
        self.snapshot = False
        _end_reads(self._connections())

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


def _end_reads(connections: list[sqlite3.Connection]) -> None:
    for raw in connections:
        try:
            if raw.in_transaction:
                raw.execute("COMMIT")
        except DB_ERRORS:
            pass
