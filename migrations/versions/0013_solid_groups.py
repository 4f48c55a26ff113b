"""Groups of small files stored as one value (format 0013, solid packs)

- ``vfs_groups`` (new): one row per group, the plain bytes of several small files one after
  another, stored as file content is (``codec``, ``sums`` sealed to the row's id, ``data``),
  with ``digest``, the SHA-256 of those plain bytes (checked before they are used), and an
  ``id`` that is its first 8 bytes (so a stack finds a group in any layer, and never uses one
  from a forged layer).
- A small file's inline value may have codec 5, a SLICE: 16 bytes naming a group (its id,
  big-endian), an offset and a length (unsigned, 32 bits each) in its plain bytes. The slice's
  ``sums`` are those of the file's own bytes, as any compressed value's (format 0012).

One zstd frame of a group finds what its files share, and a row of a few hundred bytes no
longer leaves most of a page empty: a solid release pack of the standard library's modules is
about a twentieth smaller (see ``vfs_orm.grouping``).

The upgrade only creates the table. The downgrade is refused while a group is stored (the
files that read from it would need their bytes back in their rows: repack with the older
release); otherwise it drops the table.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Int64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "vfs_groups",
        sa.Column("id", Int64, autoincrement=False, nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("codec", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sums", sa.LargeBinary(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vfs_groups"),
    )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT 1 FROM vfs_groups LIMIT 1")).first() is not None:
        raise RuntimeError("vfs_groups holds small files' bytes (a solid pack): repack it with "
                           "the older release instead of downgrading to format 0012; nothing "
                           "was changed")
    op.drop_table("vfs_groups")
