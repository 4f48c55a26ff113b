"""Database backends, and the one face they show the layers above (``base.Backend``).

The layers above import from this package only: the interface (``base``: the ``Backend``
protocol and the protocols of the repositories it hands out), the backend objects, and the few
types and constants of the row format they share. The repositories themselves are the shared
SQL core's (``sql/``), compiled per dialect by each backend (``sqlite/``, ``postgresql/``).
``DB_ERRORS`` and ``translate`` are the one place where driver errors become ``VFSError``s.
"""

from __future__ import annotations

from typing import Any

from vfs_orm.backends.base import (
    DEFAULT_BUSY_TIMEOUT,
    Backend,
    Capabilities,
    CheckpointStatements,
    DriverError,
    InodeRepository,
    ManifestRepository,
    Opened,
    StackRepository,
    TransactionalConnection,
)
from vfs_orm.backends.sql.check import CheckReport
from vfs_orm.backends.sql.stack import Layer, LayerStack
from vfs_orm.backends.sql.statements import CHUNK_SPAN, INLINE_MAX
from vfs_orm.backends.sqlite import SQLITE
from vfs_orm.backends.sqlite.engine import install_transaction_fix
from vfs_orm.backends.sqlite.schema import repair, upgrade, upgrade_engine
from vfs_orm.errors import ContractError, VFSError

__all__ = [
    "CHUNK_SPAN",
    "DB_ERRORS",
    "DEFAULT_BUSY_TIMEOUT",
    "INLINE_MAX",
    "SQLITE",
    "Backend",
    "Capabilities",
    "CheckReport",
    "CheckpointStatements",
    "DriverError",
    "InodeRepository",
    "Layer",
    "LayerStack",
    "ManifestRepository",
    "Opened",
    "StackRepository",
    "TransactionalConnection",
    "backend_for",
    "install_transaction_fix",
    "is_postgresql_url",
    "repair",
    "translate",
    "upgrade",
    "upgrade_engine",
]

#: Every exception a backend's driver may raise, caught where a public call ends: SQLite's
#: (sqlite3 is always there), and the wrapped errors of optional drivers.
DB_ERRORS: tuple[type[BaseException], ...] = (*SQLITE.errors, DriverError)


def translate(exc: BaseException, path: str | None = None) -> VFSError:
    """The ``VFSError`` for a driver or SQLAlchemy error (by the driver's error code)."""
    if isinstance(exc, DriverError):
        return exc.translate(path)
    orig = getattr(exc, "orig", None)
    if orig is not None and hasattr(orig, "sqlstate"):  # PostgreSQL through SQLAlchemy
        from vfs_orm.backends.postgresql.errors import translate_sqlstate

        return translate_sqlstate(orig, path)
    return SQLITE.translate(exc, path)


def backend_for(target: str | None = None, engine: Any = None, tree: str | None = None,
                checkpoint: int | None = None) -> Backend:
    """The backend for a path or URL, or for a host application's engine: PostgreSQL for
    ``postgresql://`` URLs and engines (``tree``: the schema holding the tree; ``checkpoint``:
    that checkpoint of it read in place), SQLite otherwise. The PostgreSQL backend (and its
    driver, an optional extra) is imported only then."""
    dialect = engine.dialect.name if engine is not None else None
    if dialect == "postgresql" or (target is not None and is_postgresql_url(target)):
        from vfs_orm.backends.postgresql import backend, checkpoint_backend

        return backend(tree) if checkpoint is None else checkpoint_backend(tree, checkpoint)
    if tree is not None:
        raise ContractError.for_path(target, "tree= names a tree of a PostgreSQL database; a "
                                             "SQLite database holds one tree")
    return SQLITE


def is_postgresql_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgresql+", "postgres://"))
