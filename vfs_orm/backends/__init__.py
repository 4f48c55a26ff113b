"""Database backends, and the one face they show the layers above (``base.Backend``).

The layers above import from this package only: the interface, the backend objects, and the
few types and constants of the row format they share. ``DB_ERRORS`` and ``translate`` are the
one place where driver errors become ``VFSError``s.
"""

from __future__ import annotations

from vfs_orm.backends.base import (
    DEFAULT_BUSY_TIMEOUT,
    Backend,
    Capabilities,
    Opened,
    TransactionalConnection,
)
from vfs_orm.backends.sqlite import (
    CHUNK_SPAN,
    INLINE_MAX,
    SQLITE,
    CheckReport,
    InodeRepository,
    Layer,
    LayerStack,
    ManifestRepository,
)
from vfs_orm.backends.sqlite.engine import install_transaction_fix
from vfs_orm.backends.sqlite.schema import upgrade, upgrade_engine
from vfs_orm.errors import VFSError

__all__ = [
    "CHUNK_SPAN",
    "DB_ERRORS",
    "DEFAULT_BUSY_TIMEOUT",
    "INLINE_MAX",
    "SQLITE",
    "Backend",
    "Capabilities",
    "CheckReport",
    "InodeRepository",
    "Layer",
    "LayerStack",
    "ManifestRepository",
    "Opened",
    "TransactionalConnection",
    "install_transaction_fix",
    "translate",
    "upgrade",
    "upgrade_engine",
]

#: Every exception a backend's driver may raise, caught where a public call ends.
DB_ERRORS: tuple[type[BaseException], ...] = SQLITE.errors


def translate(exc: BaseException, path: str | None = None) -> VFSError:
    """The ``VFSError`` for a driver or SQLAlchemy error (by the driver's error code)."""
    return SQLITE.translate(exc, path)
