"""zstd dictionaries stored in the database (format 0006)

- ``vfs_dictionaries`` (new): one row per zstd dictionary values of this database may be
  compressed with: ``id`` (the dictionary's id, which its bytes and every frame compressed
  with it carry; derived from its content, see ``vfs_orm.content.dictionary_id``),
  ``created_ns`` (the newest compresses new small values), ``digest`` (SHA-256 of ``data``,
  checked before a dictionary is used: a damaged one is a CorruptionError) and ``data``.
- Stored values may have codec 3: zstd with the dictionary their frame names.

Nothing existing changes: the upgrade only creates the table. The downgrade stores every codec 3
value as is (codec 0, decompressed with its dictionary), then drops the table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Int64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "vfs_dictionaries",
        sa.Column("id", Int64, autoincrement=False, nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vfs_dictionaries"),
    )


def downgrade() -> None:
    conn = op.get_bind()
    d = sa.table("vfs_dictionaries", sa.column("id", Int64), sa.column("data"))
    dicts = dict(conn.execute(sa.select(d.c.id, d.c.data)).fetchall())
    if any(conn.execute(sa.text(f"SELECT 1 FROM {t} WHERE codec = 3 LIMIT 1")).first()
           for t in ("vfs_inodes", "vfs_chunks")):
        import zstandard  # only a database that holds dictionary-compressed content gets here

        made: dict[int, zstandard.ZstdDecompressor] = {}
        for name in ("vfs_inodes", "vfs_chunks"):
            t = sa.table(name, sa.column("id", Int64), sa.column("codec"), sa.column("data"))
            rows = conn.execute(sa.select(t.c.id, t.c.data).where(t.c.codec == 3)).fetchall()
            out = []
            for ident, data in rows:
                did = zstandard.get_frame_parameters(data).dict_id
                if did not in made:
                    made[did] = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(
                        dicts[did], dict_type=zstandard.DICT_TYPE_FULLDICT))
                out.append({"k": ident, "d": made[did].decompress(data)})
            if out:
                conn.execute(sa.update(t).where(t.c.id == sa.bindparam("k"))
                             .values(data=sa.bindparam("d"), codec=0), out)
    op.drop_table("vfs_dictionaries")
