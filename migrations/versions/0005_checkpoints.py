"""checkpoints: named point-in-time copies of the tree's metadata

- ``vfs_checkpoints``: one row per checkpoint (unique name, creation time, whether it was
  made automatically, its file count).
- ``vfs_checkpoint_inodes``: the entries of each checkpoint, keyed by (checkpoint, live id),
  unique by (checkpoint, parent, name), with a partial index on ``content``. A chunked file's
  row names the live inode holding its chunks in ``content`` and counts in that inode's
  ``refs``, as a live copy does (format 0004's sharing): the live tree's copy on write then
  keeps what a checkpoint holds unchanged.

Existing databases have no checkpoints: the upgrade adds two empty tables. The downgrade gives
back the references checkpoints hold (``refs`` minus their readers, hidden holders nobody reads
any more deleted with their chunks), then drops the tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHUNK_SPAN = 1 << 32


def _int64() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _path() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "vfs_checkpoints",
        sa.Column("id", _int64(), nullable=False),
        sa.Column("name", _path(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("auto", sa.Integer(), server_default="0", nullable=False),
        sa.Column("files", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vfs_checkpoints"),
        sa.UniqueConstraint("name", name="uq_vfs_checkpoints_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "vfs_checkpoint_inodes",
        sa.Column("checkpoint_id", _int64(), nullable=False),
        sa.Column("id", _int64(), nullable=False, autoincrement=False),
        sa.Column("parent", _path(), nullable=False),
        sa.Column("name", _path(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("mode", _int64(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("ctime_ns", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("content", _int64(), nullable=True),
        sa.Column("fparent", _path(), nullable=True),
        sa.Column("fname", _path(), nullable=True),
        sa.Column("digest", sa.LargeBinary(), nullable=True),
        sa.Column("codec", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sums", sa.LargeBinary(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["checkpoint_id"], ["vfs_checkpoints.id"],
                                name="fk_vfs_checkpoint_inodes_checkpoint_id_vfs_checkpoints",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("checkpoint_id", "id", name="pk_vfs_checkpoint_inodes"),
        sa.UniqueConstraint("checkpoint_id", "parent", "name",
                            name="uq_vfs_checkpoint_inodes_checkpoint_id_parent_name"),
    )
    op.create_index("ix_vfs_checkpoint_inodes_content", "vfs_checkpoint_inodes", ["content"],
                    sqlite_where=sa.text("content IS NOT NULL"),
                    postgresql_where=sa.text("content IS NOT NULL"))


def downgrade() -> None:
    conn = op.get_bind()
    # The references checkpoints hold, given back; holders only they kept go.
    conn.exec_driver_sql(
        "UPDATE vfs_inodes SET refs = refs - (SELECT count(*) FROM vfs_checkpoint_inodes k "
        "WHERE k.content = vfs_inodes.id) "
        "WHERE id IN (SELECT content FROM vfs_checkpoint_inodes)")
    gone = ("SELECT id FROM vfs_inodes WHERE parent IS NULL AND refs <= 0 "
            "AND id IN (SELECT content FROM vfs_checkpoint_inodes)")
    conn.exec_driver_sql(f"DELETE FROM vfs_chunks WHERE inode_id IN ({gone})")
    conn.exec_driver_sql(f"DELETE FROM vfs_inodes WHERE id IN ({gone})")
    op.drop_index("ix_vfs_checkpoint_inodes_content", "vfs_checkpoint_inodes")
    op.drop_table("vfs_checkpoint_inodes")
    op.drop_table("vfs_checkpoints")
