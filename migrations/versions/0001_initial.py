"""initial format: inodes by (parent, name), chunks, layer manifests

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vfs_inodes",
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vfs_inodes")),
        sa.UniqueConstraint("parent", "name", name=op.f("uq_vfs_inodes_parent_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "vfs_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inode_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inode_id"], ["vfs_inodes.id"],
            name=op.f("fk_vfs_chunks_inode_id_vfs_inodes"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vfs_chunks")),
        sa.UniqueConstraint("inode_id", "idx", name=op.f("uq_vfs_chunks_inode_id_idx")),
    )
    op.create_table(
        "vfs_layer_manifests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("modified_ns", sa.BigInteger(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("db_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vfs_layer_manifests")),
    )
    op.create_index("ix_vfs_layer_manifests_role", "vfs_layer_manifests", ["role"])
    # The root directory exists in every database.
    op.execute(
        "INSERT INTO vfs_inodes (parent, name, kind, mode, size, chunk_size, ctime_ns, mtime_ns,"
        " generation) VALUES ('', '', 2, 16877, 0, 0,"
        " CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) * 1000000,"
        " CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) * 1000000, 0)"
    )


def downgrade() -> None:
    op.drop_index("ix_vfs_layer_manifests_role", table_name="vfs_layer_manifests")
    op.drop_table("vfs_layer_manifests")
    op.drop_table("vfs_chunks")
    op.drop_table("vfs_inodes")
