"""A checkpoint read in place as a tree (``VFS.open_checkpoint`` on a SQLite file).

A checkpoint's entries live in ``vfs_checkpoint_inodes``, and a chunked file among them reads the
chunks of the live inode that holds them (``content``), exactly as a row of the tree does. So a
read-only VFS of the same database whose ``vfs_inodes`` are the checkpoint's entries reads the
checkpoint with every statement of the tree, unchanged, and copies nothing: that is what these
temporary views do, made on each connection of that VFS. SQLite resolves an unqualified name in
the ``temp`` schema first, so the tree's compiled statements read the views; the views read the
real tables by their ``main.`` names. WHERE terms are pushed into both arms of the union, so a
lookup is still one probe of the (checkpoint, parent, name) index (measured with EXPLAIN QUERY
PLAN; tests/test_checkpoint_views.py).

Each statement reads an entry's ``content`` and the chunks it names together, in one snapshot:
when the live tree's copy on write moves the checkpoint's chunks to a hidden copy (``detach``,
which repoints the entries in the same transaction), the next statement follows them.

The checkpoint tables themselves are shadowed by empty views: a checkpoint's view has no
checkpoints of its own, as an in-memory copy of it had none.
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


def checkpoint_views(checkpoint_id: int) -> list[str]:
    """The statements that make checkpoint ``checkpoint_id``'s entries (whiteouts left out:
    they mean something only over the underlays of the tree it was taken of) and the tree's
    root the ``vfs_inodes`` of a connection, and hide the checkpoint tables."""
    if type(checkpoint_id) is not int:
        raise TypeError("a checkpoint id is an int")
    columns = ", ".join(f"{_FIXED[c.name]} AS {c.name}" if c.name in _FIXED else c.name
                        for c in Inode.__table__.columns)
    return [
        f"CREATE TEMP VIEW vfs_inodes AS "
        f"SELECT {columns} FROM main.vfs_checkpoint_inodes "
        f"WHERE checkpoint_id = {checkpoint_id} AND kind != {stored.WHITEOUT} "
        f"UNION ALL SELECT {columns} FROM main.vfs_inodes WHERE parent = '' AND name = ''",
        "CREATE TEMP VIEW vfs_checkpoints AS SELECT * FROM main.vfs_checkpoints WHERE 0",
        "CREATE TEMP VIEW vfs_checkpoint_inodes AS "
        "SELECT * FROM main.vfs_checkpoint_inodes WHERE 0",
    ]
