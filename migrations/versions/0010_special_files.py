"""Symbolic links, FIFOs, sockets and devices (format 0010)

A file entry (kind 1) may now have the ``st_mode`` type of a symbolic link, a FIFO, a socket,
a character or a block device instead of a regular file's; its content is the link's target
or the device's number (8 bytes, big-endian), empty for a FIFO or a socket. See
``vfs_orm.special``.

No table changes shape: the revision marks that file entries may be special, so a release
that does not know them refuses the database as newer (``FormatVersionError``) instead of
opening a link as a file holding its target. The upgrade changes nothing. The downgrade is
refused while such an entry is stored, in the tree or in a checkpoint (remove them first):
0009 has no way to tell them from files.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TABLES = ("vfs_inodes", "vfs_checkpoint_inodes")
_TYPE_BITS, _REGULAR, _FILE = 0o170000, 0o100000, 1


def upgrade() -> None:
    pass


def downgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        held = bind.execute(sa.text(
            f"SELECT 1 FROM {table} WHERE kind = :file AND (mode & :bits) != :regular LIMIT 1"),
            {"file": _FILE, "bits": _TYPE_BITS, "regular": _REGULAR}).first()
        if held is not None:
            raise RuntimeError(f"{table} holds symbolic links, FIFOs, sockets or devices "
                               "(format 0010): remove them before downgrading to format 0009")
