"""Format upgrades on every backend: ``vfs_orm.upgrade`` (a file or a server tree) and
``vfs_orm.upgrade_engine`` (a host application's engine).

SQLite files are upgraded in place by Alembic, one transaction (``backends/sqlite/schema``);
a PostgreSQL tree is created at the current revision on its first writable open, which is
what upgrading it means today (``backends/postgresql/schema``).
"""

from __future__ import annotations

import os
from typing import Any

from vfs_orm.backends import backend_for, is_postgresql_url
from vfs_orm.backends import repair as repair_file
from vfs_orm.backends import upgrade as upgrade_file
from vfs_orm.backends import upgrade_engine as upgrade_sqlite_engine
from vfs_orm.errors import VFSError
from vfs_orm.vfs import VFS


def upgrade(target: str | os.PathLike[str], backup: bool = False, *,
            tree: str | None = None) -> dict[str, Any]:
    """Upgrade a vfs_orm database file (or a seed-library file) to the current format, in
    place, in one transaction; or create or check a PostgreSQL tree (``target`` a URL, ``tree``
    its name). With ``backup`` (files only), a consistent copy is written first beside it
    (``PATH.bak-<revision>``).

    Returns ``{"path", "from", "to", "backup"}``; ``from`` is the revision found ("legacy"
    for the seed's format, None for a tree that did not exist), equal to ``to`` when there
    was nothing to do.

    Raises:
        NotFoundError: no file at ``target``.
        NotAVFSDatabaseError: not SQLite, truncated, or another application's database (the
            file is left untouched).
        FormatVersionError: the file is from a newer vfs_orm (left untouched).
        CorruptionError: the tables do not have the shape their version row names (left
            untouched).
        ContractError: ``tree`` given with a file path.
    """
    if not (isinstance(target, str) and is_postgresql_url(target)):
        backend_for(os.fspath(target), tree=tree)  # tree= on a file: a ContractError
        return upgrade_file(target, backup=backup)
    backend = backend_for(target, tree=tree)
    before = backend.revision(target)
    with VFS(target, tree=tree):
        pass
    return {"path": target, "from": before, "to": backend.head_revision(), "backup": None}


def upgrade_engine(engine: Any, tree: str | None = None) -> str:
    """Create or upgrade vfs_orm's tables in a host application's database (outside any of its
    transactions): the vfs_ tables of a SQLite database, or the tree ``tree`` (a schema) of a
    PostgreSQL one. Returns the status found: ``empty`` (created now) or ``current``, and on
    SQLite also ``older`` (upgraded now).

    Raises:
        FormatVersionError: the database's vfs_ tables are from a newer vfs_orm (untouched).
        CorruptionError: the vfs_ tables do not have the shape their version row names.
        ContractError: ``tree`` given for a SQLite engine, or an invalid tree name.
    """
    backend = backend_for(engine=engine, tree=tree)
    if backend.capabilities.name == "sqlite":
        return upgrade_sqlite_engine(engine)
    before = backend.revision(engine)
    with VFS(engine=engine, tree=tree):
        pass
    return "empty" if before is None else "current"


def repair(path: str | os.PathLike[str]) -> list[str]:
    """Remove the schema objects vfs_orm did not make (the triggers, views, tables and indexes
    that make ``VFS(path)`` raise ``ForeignSchemaError``) from a database file you trust, in
    one transaction, without running any of them. Returns what was removed, e.g.
    ``["trigger evil"]``; empty when there was nothing to remove.

    Raises:
        NotFoundError, NotAVFSDatabaseError, FormatVersionError: not a database this release
            reads. CorruptionError: objects of the format itself were changed; repair removes
            only foreign objects and changed nothing.
    """
    if isinstance(path, str) and is_postgresql_url(path):
        raise VFSError.for_path(path, "repair works on SQLite files; a PostgreSQL tree's "
                                      "objects are its server administrator's")
    return repair_file(path)
