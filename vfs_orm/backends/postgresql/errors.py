"""PostgreSQL's errors as VFSErrors, by SQLSTATE (never by message)."""

from __future__ import annotations

import errno
from typing import Any

from vfs_orm.backends.base import DriverError
from vfs_orm.errors import (
    BusyError,
    CorruptionError,
    NoSpaceError,
    NotAVFSDatabaseError,
    ReadOnlyError,
    VFSError,
)

#: SQLSTATE (or its class, the first two characters) -> (error, what to say).
_BY_STATE: dict[str, tuple[type[VFSError], str]] = {
    "40001": (BusyError, "concurrent update, try again"),       # serialization_failure
    "40P01": (BusyError, "deadlock with another writer"),        # deadlock_detected
    "55P03": (BusyError, "the tree is locked by another writer"),  # lock_not_available
    "57014": (BusyError, "the statement was cancelled"),         # query_canceled (timeouts)
    "25006": (ReadOnlyError, "the tree is read-only"),           # read_only_sql_transaction
    "42501": (ReadOnlyError, "no privilege to change the tree"),  # insufficient_privilege
    "53100": (NoSpaceError, "no space left on the database server"),  # disk_full
    "42P01": (NotAVFSDatabaseError, "not a vfs_orm tree"),       # undefined_table
    "3F000": (NotAVFSDatabaseError, "no such tree"),             # invalid_schema_name
    "22021": (CorruptionError, "damaged text"),                  # character_not_in_repertoire
    "XX001": (CorruptionError, "damaged data"),                  # data_corrupted
    "XX002": (CorruptionError, "damaged index"),                 # index_corrupted
}


def translate_sqlstate(orig: Any, path: str | None) -> VFSError:
    """The VFSError for a psycopg error (or any error carrying a ``sqlstate``)."""
    state = getattr(orig, "sqlstate", None) or ""
    found = _BY_STATE.get(state)
    if found is not None:
        cls, text = found
        return cls.for_path(path, f"{text}: {_first_line(orig)}")
    if not state and type(orig).__name__ == "OperationalError" and \
            str(orig).startswith(_CONNECT_FAILED):
        # libpq could not open a session: no server there, or the server refused it (a
        # missing database or role: the server's reason is in the text, without a SQLSTATE).
        reason = str(orig).replace("\n", " ").split("failed: ", 1)[-1].strip()
        return VFSError.for_path(path, f"cannot connect to the database server: {reason}",
                                 err=errno.ECONNREFUSED)
    if state.startswith("08") or (not state and type(orig).__name__ == "OperationalError"):
        return VFSError.for_path(path, f"lost the connection to the database server: "
                                       f"{_first_line(orig)}", err=errno.EIO)
    return VFSError.for_path(path, f"database error [{state}]: {_first_line(orig)}")


#: How psycopg words a session that could not be opened (its own text, not the server's).
_CONNECT_FAILED = ("connection failed", "connection is bad", "failed to resolve host")


def _first_line(orig: Any) -> str:
    return str(orig).strip().split("\n", 1)[0]


#: Conflicts that the server resolved by aborting this transaction; running it again works.
RETRYABLE_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


class PGError(DriverError):
    """A psycopg error, wrapped where it leaves the driver connection."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(orig)
        self.retryable = getattr(orig, "sqlstate", None) in RETRYABLE_STATES

    def translate(self, path: str | None) -> VFSError:
        return translate_sqlstate(self.orig, path)
