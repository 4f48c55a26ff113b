"""A checkpoint read in place as a tree (``VFS.open_checkpoint`` on a SQLite file or a
PostgreSQL tree).

A checkpoint's entries live in ``vfs_checkpoint_inodes``, and a chunked file among them reads the
chunks of the live inode that holds them (``content``), exactly as a row of the tree does. So a
read-only VFS of the same database whose ``vfs_inodes`` are the checkpoint's entries reads the
checkpoint with every statement of the tree, unchanged, and copies nothing: that is what these
temporary views do, made on each connection of that VFS. SQLite resolves an unqualified name in
the ``temp`` schema first, so the tree's compiled statements read the views; the views read the
real tables by their ``main.`` names. WHERE terms are pushed into both arms of the union, so a
lookup is still one probe of the (checkpoint, parent, name) index (measured with EXPLAIN QUERY
PLAN; tests/test_checkpoint_views.py).

Each statement reads an entry's ``content`` (and ``base``, format 0014) and the chunks they
name together, in one snapshot: the live tree's copy on write leaves the chunks an entry reads
frozen (``ContentStore.detach``), and when an overlay is folded back into its base the
entries that read it are changed in the same transaction; the next statement follows them.

The checkpoint tables themselves are shadowed by empty views: a checkpoint's view has no
checkpoints of its own, as an in-memory copy of it had none.

On PostgreSQL every statement names its tree's schema, so the view is a tree of its own: the
session's temporary schema (``pg_temp``), where each of the format's tables is a temporary
view of the real tree's (``pg_checkpoint_views``), and the view's statements are compiled for
``pg_temp``. PostgreSQL inlines these views and pushes WHERE terms into both arms of the
union, as SQLite does. A hot standby cannot create them (nothing may be created in recovery):
there the checkpoint is copied, as before.
"""

from __future__ import annotations

from vfs_orm import stored
from vfs_orm.models import Inode

#: The temporary views' names: the closed schema's wall lets statements read through these
#: (and only these) views on such a connection (``backends/sqlite/closed.py``).
VIEW_NAMES = frozenset({"vfs_inodes", "vfs_checkpoints", "vfs_checkpoint_inodes"})

#: Columns of the tree that a checkpoint entry does not keep: a checkpoint is never written
#: through (generation), holds no readers of its own (refs) and no staging rows (owner).
_FIXED = {"generation": "0", "refs": "0", "owner": "NULL"}


def _entry_columns(fixed: dict[str, str]) -> str:
    """The columns of ``vfs_inodes`` in order, as a checkpoint entry gives them: its own, and
    ``fixed``'s values for those it does not keep."""
    return ", ".join(f"{fixed[c.name]} AS {c.name}" if c.name in fixed else c.name
                     for c in Inode.__table__.columns)


def checkpoint_views(checkpoint_id: int) -> list[str]:
    """The statements that make checkpoint ``checkpoint_id``'s entries (whiteouts left out:
    they mean something only over the underlays of the tree it was taken of) and the tree's
    root the ``vfs_inodes`` of a connection, and hide the checkpoint tables."""
    if type(checkpoint_id) is not int:
        raise TypeError("a checkpoint id is an int")
    columns = _entry_columns(_FIXED)
    return [
        f"CREATE TEMP VIEW vfs_inodes AS "
        f"SELECT {columns} FROM main.vfs_checkpoint_inodes "
        f"WHERE checkpoint_id = {checkpoint_id} AND kind != {stored.WHITEOUT} "
        f"UNION ALL SELECT {columns} FROM main.vfs_inodes WHERE parent = '' AND name = ''",
        "CREATE TEMP VIEW vfs_checkpoints AS SELECT * FROM main.vfs_checkpoints WHERE 0",
        "CREATE TEMP VIEW vfs_checkpoint_inodes AS "
        "SELECT * FROM main.vfs_checkpoint_inodes WHERE 0",
    ]


#: The schema a PostgreSQL checkpoint view's statements name: the session's temporary one.
PG_VIEW_SCHEMA = "pg_temp"
#: PostgreSQL's types for the columns a checkpoint entry does not keep (a union's arms must
#: agree).
_PG_FIXED = {"generation": "0::bigint", "refs": "0::bigint", "owner": "NULL::text"}
#: The format's tables a PostgreSQL checkpoint view shows as they are.
_PG_AS_IS = ("vfs_chunks", "vfs_layer_manifests", "vfs_dictionaries", "vfs_groups",
             "vfs_alembic_version")


def pg_checkpoint_views(tree: str, checkpoint_id: int) -> list[str]:
    """The statements that make checkpoint ``checkpoint_id`` of the PostgreSQL tree ``tree``
    (a checked tree name) the tables of a session's ``pg_temp`` schema: its entries and the
    root as ``vfs_inodes``, the tree's chunks, manifests, dictionaries and version as they
    are, and no checkpoints."""
    if type(checkpoint_id) is not int:
        raise TypeError("a checkpoint id is an int")
    columns = _entry_columns(_PG_FIXED)
    q = f'"{tree}"'
    return [
        f"CREATE TEMP VIEW vfs_inodes AS "
        f"SELECT {columns} FROM {q}.vfs_checkpoint_inodes "
        f"WHERE checkpoint_id = {checkpoint_id} AND kind != {stored.WHITEOUT} "
        f"UNION ALL SELECT {columns} FROM {q}.vfs_inodes WHERE parent = '' AND name = ''",
        *(f"CREATE TEMP VIEW {t} AS SELECT * FROM {q}.{t}" for t in _PG_AS_IS),
        f"CREATE TEMP VIEW vfs_checkpoints AS SELECT * FROM {q}.vfs_checkpoints WHERE false",
        f"CREATE TEMP VIEW vfs_checkpoint_inodes AS "
        f"SELECT * FROM {q}.vfs_checkpoint_inodes WHERE false",
    ]
