"""Checksums sealed to their place (format 0007)

Every stored value's ``sums`` (an XXH3-64 per 4 KiB block of its plain bytes, format 0004)
gain an 8-byte SEAL: an XXH3-64 of those checksums seeded with where the value is stored, its
chunk id (``inode * 2**32 + idx``) for a chunk, 0 for a small file's inline bytes (in
``vfs_inodes`` and ``vfs_checkpoint_inodes``). A chunk moved to another file or position,
checksums and all, then fails its seal where it is read (a ``CorruptionError``) instead of
reading as the other file's genuine bytes. See ``vfs_orm.content``.

No table changes shape. The upgrade seals every value's sums from the sums alone (no content
is read), a page of rows at a time; values whose sums are already damaged are left as they
are (every read of them reports it). The downgrade removes the seals.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
import xxhash
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: (table, its key columns, whether the seal is the row's chunk id)
_TABLES = (("vfs_chunks", ("id",), True), ("vfs_inodes", ("id",), False),
           ("vfs_checkpoint_inodes", ("checkpoint_id", "id"), False))
_PAGE = 1000


def _seal(sums: object, key: int) -> object:
    """The format's seal (vfs_orm.content.block_sums, restated: a revision keeps its own
    copy of what it writes)."""
    if not isinstance(sums, bytes) or not sums or len(sums) % 8:
        return sums
    return sums + xxhash.xxh3_64_digest(sums, key)


def upgrade() -> None:
    conn = op.get_bind()
    for name, keys, by_chunk in _TABLES:
        t = sa.table(name, *(sa.column(k, sa.BigInteger) for k in keys), sa.column("sums"))
        pk = sa.tuple_(*(t.c[k] for k in keys)) if len(keys) > 1 else t.c[keys[0]]
        last: tuple[int, ...] | None = None
        while True:
            query = sa.select(*(t.c[k] for k in keys), t.c.sums).where(t.c.sums.isnot(None))
            if last is not None:
                query = query.where(pk > (sa.tuple_(*map(sa.literal, last)) if len(keys) > 1
                                          else last[0]))
            rows = conn.execute(query.order_by(*(t.c[k] for k in keys)).limit(_PAGE)).fetchall()
            if not rows:
                break
            where = sa.and_(*(t.c[k] == sa.bindparam(f"k_{k}") for k in keys))
            conn.execute(sa.update(t).where(where).values(sums=sa.bindparam("s")),
                         [{**{f"k_{k}": row[n] for n, k in enumerate(keys)},
                           "s": _seal(row[-1], row[len(keys) - 1] if by_chunk else 0)}
                          for row in rows])
            last = tuple(rows[-1][:len(keys)])


def downgrade() -> None:
    conn = op.get_bind()
    for name, _keys, _by_chunk in _TABLES:
        t = sa.table(name, sa.column("sums", sa.LargeBinary))
        conn.execute(sa.update(t).where(sa.func.length(t.c.sums) >= 16)
                     .values(sums=sa.func.substr(t.c.sums, 1, sa.func.length(t.c.sums) - 8)))
