"""One checksum for a compressed value (format 0012)

A stored value's ``sums`` have been an XXH3-64 per 4 KiB block of its plain bytes, then a
seal (formats 0004 and 0007). A compressed value (codec 1 zlib, 2 zstd, 3 zstd with a
dictionary, 4 a delta) is only ever read whole, so per-block checksums buy it nothing: since
0012 it may carry one XXH3-64 of all its plain bytes, then the same seal. That is what this
release writes for compressed values; an uncompressed one keeps per-block checksums (its
parts are read alone). A value of at most 4 KiB has one block: both forms are the same bytes.
See ``vfs_orm.content``.

No table changes shape: the revision marks that a compressed value's sums may be one
checksum, so a release that does not know it refuses the database as newer
(``FormatVersionError``) instead of reporting those values as damaged. The upgrade changes
nothing (values already stored keep their per-block checksums, which stay valid).

The downgrade gives every compressed value over 4 KiB with one checksum its per-block
checksums again, decompressing it (a row at a time, at most 64 MiB); a value that does not
decode, or whose checksum does not match, is left as it is (0011 reports it as damaged, as
0012 does). A delta cannot be decoded without the base it was made against, which lies in
another layer: the downgrade is refused while one over 4 KiB is stored with one checksum
(apply the patch first), with nothing changed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import zlib
from typing import Any

import sqlalchemy as sa
import xxhash
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BLOCK, _SUM = 4096, 8
_ZLIB, _ZSTD, _ZSTD_DICT, _DELTA = 1, 2, 3, 4
#: The most plain bytes one value may hold (``vfs_orm.stored.MAX_CHUNK_SIZE``), and what 0011
#: accepts of a stored dictionary frame, kept here as they were at this revision.
_MAX_VALUE = 64 << 20
_MAX_DICTIONARY, _EXPANSION = 16 << 20, 16
_FRAME_MAGIC = b"\x28\xb5\x2f\xfd"
#: (table, its key columns, whether the seal is the row's chunk id: else 0, inline bytes)
_TABLES = (("vfs_chunks", ("id",), True), ("vfs_inodes", ("id",), False),
           ("vfs_checkpoint_inodes", ("checkpoint_id", "id"), False))
_xxh3 = xxhash.xxh3_64_digest


def upgrade() -> None:
    pass


def _table(name: str, keys: tuple[str, ...]) -> sa.TableClause:
    return sa.table(name, *(sa.column(k, sa.BigInteger) for k in keys), sa.column("codec"),
                    sa.column("sums", sa.LargeBinary), sa.column("data", sa.LargeBinary))


def _one_sum(t: sa.TableClause) -> sa.ColumnElement[bool]:
    """Compressed values whose sums are one checksum and a seal (or a single block's)."""
    return sa.and_(t.c.codec.between(_ZLIB, _DELTA), sa.func.length(t.c.sums) == 2 * _SUM)


def downgrade() -> None:
    conn = op.get_bind()
    tables = [(_table(name, keys), keys, by_chunk) for name, keys, by_chunk in _TABLES]
    for t, _, _ in tables:  # refused before anything is written
        for data, in conn.execute(sa.select(t.c.data).where(_one_sum(t),
                                                             t.c.codec == _DELTA)):
            if _delta_size(data) != 0:
                raise RuntimeError(f"{t.name} holds a binary delta over 4 KiB (or of no "
                                   f"stated size) with one checksum (a patch pack): apply "
                                   f"the patch before downgrading to format 0011; nothing "
                                   f"was changed")
    if not any(conn.execute(sa.select(sa.literal(1)).where(_one_sum(t),
                                                           t.c.codec != _DELTA).limit(1)).first()
               for t, _, _ in tables):
        return
    readers = _Readers(conn)
    for t, keys, by_chunk in tables:
        where = sa.and_(*(t.c[k] == sa.bindparam(f"k_{k}") for k in keys))
        found = conn.execute(sa.select(*(t.c[k] for k in keys))
                             .where(_one_sum(t), t.c.codec != _DELTA)).fetchall()
        for key in found:  # a row at a time: at most one value in memory
            ident = {f"k_{k}": key[n] for n, k in enumerate(keys)}
            codec, sums, data = conn.execute(sa.select(t.c.codec, t.c.sums, t.c.data)
                                             .where(where), ident).one()
            if not isinstance(sums, (bytes, memoryview)):
                continue  # stored as TEXT or a number (length() 16): damaged, 0011 says so too
            plain = readers.plain(codec, data)
            if plain is None or len(plain) <= _BLOCK:
                continue  # damaged (0011 says so too), or one block: the same bytes
            seal = key[0] if by_chunk else 0
            digest = _xxh3(plain)
            if bytes(sums) != digest + _xxh3(digest, seal):
                continue
            blocks = b"".join(_xxh3(plain[o:o + _BLOCK]) for o in range(0, len(plain), _BLOCK))
            conn.execute(sa.update(t).where(where).values(sums=blocks + _xxh3(blocks, seal)),
                         ident)


def _delta_size(data: object) -> int | None:
    """The plain size a delta's frame states (None: not stated, or not a frame): 0 for at
    most one block."""
    if not isinstance(data, (bytes, memoryview)) or len(data) <= 32:
        return 0
    import zstandard

    try:
        size: int = zstandard.frame_content_size(bytes(data)[32:])
    except zstandard.ZstdError:
        return None
    return 0 if 0 <= size <= _BLOCK else size if size > 0 else None


class _Readers:
    """This revision's own decoding of compressed values (bounded: a value over 64 MiB, or a
    damaged one, is None)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self._dicts: dict[int, Any] = {}

    def plain(self, codec: object, data: object) -> bytes | None:
        if not isinstance(data, (bytes, memoryview)):
            return None
        data = bytes(data)
        if codec == _ZLIB:
            reader = zlib.decompressobj()
            try:
                plain = reader.decompress(data, _MAX_VALUE + 1)
            except zlib.error:
                return None
            return plain if len(plain) <= _MAX_VALUE and reader.eof else None
        import zstandard

        try:
            params = zstandard.get_frame_parameters(data)
            if params.content_size > _MAX_VALUE:  # (a size not stated reads as 2**64 - 1;
                return None                       # vfs_orm always states it)
            dictionary = None
            if codec == _ZSTD_DICT:
                dictionary = self._dictionary(zstandard, params.dict_id)
                if dictionary is None:
                    return None
            elif codec != _ZSTD:
                return None
            plain: bytes = zstandard.ZstdDecompressor(dict_data=dictionary).decompress(
                data, max_output_size=_MAX_VALUE)
        except zstandard.ZstdError:
            return None
        return plain  # checked against its checksum by the caller

    def _dictionary(self, zstandard: Any, ident: int) -> Any:
        if ident not in self._dicts:
            d = sa.table("vfs_dictionaries", sa.column("id"), sa.column("data"))
            row = self.conn.execute(sa.select(d.c.data).where(d.c.id == ident)).first()
            made = None
            if row is not None and isinstance(row[0], (bytes, memoryview)):
                data = bytes(row[0])
                if data[:4] == _FRAME_MAGIC:  # stored compressed (format 0011)
                    data = _unframe(zstandard, data) or b""
                if data:
                    made = zstandard.ZstdCompressionDict(
                        data, dict_type=zstandard.DICT_TYPE_FULLDICT)
            self._dicts[ident] = made
        return self._dicts[ident]


def _unframe(zstandard: Any, data: bytes) -> bytes | None:
    """The dictionary one stored frame holds (as 0011 reads it), or None."""
    try:
        size = zstandard.frame_content_size(data)
        if not 0 < size <= min(_MAX_DICTIONARY, _EXPANSION * len(data)):
            return None
        reader = zstandard.ZstdDecompressor().decompressobj()
        plain: bytes = reader.decompress(data)
    except zstandard.ZstdError:
        return None
    if len(plain) != size or not reader.eof or reader.unused_data:
        return None
    return plain
