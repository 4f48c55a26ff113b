"""SQLite's errors as VFSErrors: by result code (``sqlite_errorcode``), the message only where
the driver gives no code."""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

from vfs_orm.errors import (
    BusyError,
    ClosedError,
    CorruptionError,
    ForeignSchemaError,
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
    # The closed schema's authorizer (closed.py) refused a trigger's or a view's action.
    23: (ForeignSchemaError, "refused: the statement would run a trigger or view that "
                             "vfs_orm did not make (`vfs-orm check` names it)"),  # SQLITE_AUTH
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
        return VFSError.for_path(path, f"database error: {msg}")
    # No result code: the driver's own errors (a closed connection, text it cannot decode)
    # and SQLAlchemy's that wrap none. Only these are told apart by their message.
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
