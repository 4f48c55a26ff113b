"""Binary deltas in patch packs (format 0008)

A stored value (a chunk, or a small file's inline bytes) may now have codec 4: the SHA-256
of the plain bytes it was made against (its base, a file of the tree the patch lies over),
then one zstd frame compressed with the base as a raw-content dictionary (``zstd
--patch-from``). It is read with the base found by that digest in the reading stack and
checked against it; its checksums are the plain bytes' as before. See
``vfs_orm.content.deltas``.

No table changes shape: the revision marks that values may be deltas, so a release that
does not know codec 4 refuses the database as newer (``FormatVersionError``) instead of
reporting a patch's deltas as damaged content. The upgrade changes nothing. The downgrade
is refused while a delta is stored (apply the patch, ``vfs-orm apply-patch``, first): a
delta has no encoding in 0007 without its base.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_DELTA = 4
_TABLES = ("vfs_chunks", "vfs_inodes", "vfs_checkpoint_inodes")


def upgrade() -> None:
    pass


def downgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        held = bind.execute(sa.text(f"SELECT 1 FROM {table} WHERE codec = :delta LIMIT 1"),
                            {"delta": _DELTA}).first()
        if held is not None:
            raise RuntimeError(f"{table} holds binary deltas (a patch pack): apply the patch "
                               f"before downgrading to format 0007")
