"""chunk row ids derived from (inode, idx); inode kinds include whiteouts (layers)

- ``vfs_chunks.id`` becomes ``inode_id * 2**32 + idx``, so readers address a chunk by rowid
  (one B-tree search instead of an index search plus a table search) and incremental BLOB
  I/O needs no lookup.
- ``vfs_inodes.kind`` gains the value 3 (a whiteout: an entry of a lower layer deleted in this
  one) and a CHECK constraint listing the valid kinds. Adding a constraint rebuilds the table
  (SQLite batch mode): the library runs upgrades with foreign keys OFF, otherwise dropping the
  old table would cascade-delete every chunk, and checks ``foreign_key_check`` before commit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _inodes(with_check: bool) -> sa.Table:
    """The full table as it must be after the rebuild (reflection would lose AUTOINCREMENT)."""
    args = [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("mode", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("ctime_ns", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vfs_inodes"),
        sa.UniqueConstraint("parent", "name", name="uq_vfs_inodes_parent_name"),
    ]
    if with_check:
        args.append(sa.CheckConstraint("kind IN (1, 2, 3)", name="ck_vfs_inodes_kind"))
    return sa.Table("vfs_inodes", sa.MetaData(), *args, sqlite_autoincrement=True)


def upgrade() -> None:
    with op.batch_alter_table("vfs_inodes", copy_from=_inodes(True), recreate="always"):
        pass
    op.execute("UPDATE vfs_chunks SET id = inode_id * 4294967296 + idx")


def downgrade() -> None:
    op.execute("DELETE FROM vfs_inodes WHERE kind = 3")
    with op.batch_alter_table("vfs_inodes", copy_from=_inodes(False), recreate="always"):
        pass
