"""small files keep their bytes in their inode row

``vfs_inodes.data`` (a BLOB, NULL for directories, whiteouts and chunked files) holds the whole
content of a small file written whole: reading it is one row, writing it one INSERT or UPDATE,
with no ``vfs_chunks`` row at all. The format's invariant: a row with ``data`` NOT NULL is a
file (kind 1) with ``length(data) = size <= chunk_size`` and no chunk rows, so its bytes can
always move to chunk 0 ("spill") when the file is next written in place.

``ADD COLUMN`` only: no table is rebuilt and no existing row changes, so the upgrade costs the
same for a 10 GB database as for an empty one, and existing files simply stay chunked.
The downgrade moves inline bytes back into chunk 0 rows before dropping the column.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vfs_inodes", sa.Column("data", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.execute("INSERT INTO vfs_chunks (id, inode_id, idx, data) "
               "SELECT id * 4294967296, id, 0, data FROM vfs_inodes "
               "WHERE data IS NOT NULL AND length(data) > 0")
    # SQLite >= 3.35 drops a column in place (no rebuild: no foreign-key cascade hazard).
    op.execute("ALTER TABLE vfs_inodes DROP COLUMN data")
