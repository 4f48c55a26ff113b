"""Alembic environment for the vfs_orm on-disk format.

Two ways in:
- the library passes its own connection, already inside a ``BEGIN IMMEDIATE`` transaction with
  foreign keys off (``config.attributes["connection"]``; see ``vfs_orm/backends/sqlite/schema.py``);
- a maintainer runs ``alembic -x db=PATH upgrade head``: we then open the file through
  ``run_alembic_on_file`` (``vfs_orm/backends/sqlite/schema.py``) so the same safety rules
  apply (one transaction, foreign keys off, ``foreign_key_check`` before commit).

The version table is ``vfs_alembic_version`` and only ``vfs_`` tables are ever compared, so a
host application's own tables and ``alembic_version`` are invisible here.
"""

from __future__ import annotations

from alembic import context

from vfs_orm.models import VERSION_TABLE, Base

config = context.config


def include_name(name, type_, parent_names):
    if type_ == "table":
        return bool(name) and name.startswith("vfs_") and name != VERSION_TABLE
    return True


def run_with(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_with(connection)
elif context.is_offline_mode():
    raise SystemExit("vfs_orm migrations run online only: alembic -x db=PATH upgrade head")
else:
    db_path = context.get_x_argument(as_dictionary=True).get("db")
    if not db_path:
        raise SystemExit("usage: alembic -x db=PATH upgrade head")
    from vfs_orm.backends.sqlite.schema import run_alembic_on_file

    try:
        destination = context.get_revision_argument()
    except KeyError:  # a command without one (current, history)
        destination = None
    run_alembic_on_file(db_path, run_with, destination=destination)
