"""zstd dictionaries stored compressed (format 0011)

A row of ``vfs_dictionaries`` may now hold its dictionary as one zstd frame (it starts with
the frame magic ``28 b5 2f fd`` instead of the dictionary magic ``37 a4 30 ec``; its content
size is stated in the frame). ``digest`` stays the SHA-256 of the dictionary itself, so the
frames of values compressed with it, and every check of it, are unchanged. A trained
dictionary's content part compresses 2 to 4 times, which lets a release pack carry a
dictionary big enough to matter (see ``vfs_orm.content.dictionary_size``).

No table changes shape: the revision marks that a dictionary may be stored compressed, so a
release that does not know it refuses the database as newer (``FormatVersionError``) instead
of reporting its dictionaries as damaged. The upgrade changes nothing (dictionaries already
stored stay as they are). The downgrade stores every compressed dictionary as is again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_FRAME_MAGIC = b"\x28\xb5\x2f\xfd"


def upgrade() -> None:
    pass


def downgrade() -> None:
    conn = op.get_bind()
    d = sa.table("vfs_dictionaries", sa.column("id"), sa.column("data"))
    rows = [(ident, data) for ident, data in conn.execute(sa.select(d.c.id, d.c.data))
            if bytes(data[:4]) == _FRAME_MAGIC]
    if not rows:
        return
    import zstandard  # only a database holding a compressed dictionary gets here

    out = [{"k": ident, "d": zstandard.ZstdDecompressor().decompress(
               bytes(data), max_output_size=16 << 20)}
           for ident, data in rows]
    conn.execute(sa.update(d).where(d.c.id == sa.bindparam("k")).values(data=sa.bindparam("d")),
                 out)
