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
stored stay as they are). The downgrade stores every compressed dictionary as is again, one at
a time; a damaged frame (one 0011 would refuse to read) stops it with nothing changed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_FRAME_MAGIC = b"\x28\xb5\x2f\xfd"
#: What 0011 accepts of a stored frame (``vfs_orm.content.codec.unframe``, kept here as it
#: was at this revision): at most 16 MiB, at most 16 times the frame's own size.
_MAX_DICTIONARY, _EXPANSION = 16 << 20, 16


def upgrade() -> None:
    pass


def downgrade() -> None:
    conn = op.get_bind()
    d = sa.table("vfs_dictionaries", sa.column("id"), sa.column("data"))
    framed = [ident for ident, head in conn.execute(
        sa.select(d.c.id, sa.func.substr(d.c.data, 1, 4)))
        if isinstance(head, (bytes, memoryview)) and bytes(head) == _FRAME_MAGIC]
    if not framed:
        return
    import zstandard  # only a database holding a compressed dictionary gets here

    for ident in framed:  # one at a time: at most one dictionary in memory
        data = bytes(conn.execute(sa.select(d.c.data).where(d.c.id == ident)).scalar_one())
        plain = _unframe(zstandard, data)
        if plain is None:
            raise RuntimeError(f"vfs_dictionaries row {ident!r:.40} holds a damaged frame: "
                               f"format 0010 could not read it either; nothing was changed")
        conn.execute(sa.update(d).where(d.c.id == ident).values(data=plain))


def _unframe(zstandard: object, data: bytes) -> bytes | None:
    """The dictionary one stored frame holds, or None if it is not exactly one whole frame
    within the bounds."""
    zstd: Any = zstandard
    try:
        size = zstd.frame_content_size(data)
        if not 0 < size <= min(_MAX_DICTIONARY, _EXPANSION * len(data)):
            return None
        reader = zstd.ZstdDecompressor().decompressobj()
        plain: bytes = reader.decompress(data)
    except zstd.ZstdError:
        return None
    if len(plain) != size or not reader.eof or reader.unused_data:
        return None
    return plain
