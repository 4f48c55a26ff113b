"""How file content is stored (format 0004): compressed or not, with a checksum per block.

Every stored value of file content (a chunk, or a small file's inline bytes) has two companion
columns:

- ``codec``: 0 stored as is, 1 zlib, 2 zstd. A value is compressed only when that makes it
  smaller, so incompressible media (PNG, OGG) is stored as is and read without a decompression;
- ``sums``: an XXH3-64 checksum of every 4 KiB block of the PLAIN bytes, 8 bytes each (the
  xxhash package's canonical digest; five times the speed of zlib's CRC-32 here). A
  read of part of an uncompressed chunk verifies just the blocks it touches (a random 4 KiB
  read checks 4 KiB, not the chunk); a compressed value is verified whole after decompression,
  which also catches damage the decompressor lets through.

Stored values are untrusted (saves and mods come from players): a codec this release does not
know, sums of the wrong length, a value that decompresses to more than a chunk or fails to
decompress, or a block whose checksum differs all raise ``CorruptionError`` naming the offset,
never return wrong bytes. ``verify=False`` skips the checksums (not the decompression checks) for
speed; its measured cost is in the README.
"""

from __future__ import annotations

import errno
import threading
import zlib
from dataclasses import dataclass
from typing import Any

import xxhash

from vfs_orm.errors import ContractError, CorruptionError, VFSError

#: Bytes covered by one checksum, and the size of one.
BLOCK = 4096
SUM = 8
RAW, ZLIB, ZSTD = 0, 1, 2
#: Compression names accepted at creation, and their codec numbers.
CODECS = {"zlib": ZLIB, "zstd": ZSTD}
#: The level each compressor runs at: packs are written once and read many times.
LEVELS = {ZLIB: 9, ZSTD: 19}
#: Values shorter than this are never worth compressing (a header costs more than it saves).
MIN_COMPRESS = 64

_xxh3 = xxhash.xxh3_64_digest


def block_sums(data: bytes | bytearray | memoryview) -> bytes:
    """The ``sums`` of ``data``: an XXH3-64 digest per 4 KiB block, 8 bytes each."""
    n = len(data)
    if n <= BLOCK:
        return _xxh3(data) if n else b""
    mv = memoryview(data)
    return b"".join([_xxh3(mv[o:o + BLOCK]) for o in range(0, n, BLOCK)])


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        raise VFSError.for_path(
            None, "this database is compressed with zstd, which needs the zstandard package: "
                  "pip install 'vfs-orm[zstd]'") from None
    return zstandard


_local = threading.local()  # zstd (de)compressor objects are not thread-safe: one per thread


def _zstd_compressor() -> Any:
    comp = getattr(_local, "zc", None)
    if comp is None:
        comp = _local.zc = _zstd().ZstdCompressor(level=LEVELS[ZSTD])
    return comp


def _zstd_decompressor() -> Any:
    dec = getattr(_local, "zd", None)
    if dec is None:
        dec = _local.zd = _zstd().ZstdDecompressor()
    return dec


def compression_codec(name: str | None) -> int:
    """The codec number of a compression name given at creation (None: no compression)."""
    if name is None or name == "none":
        return RAW
    if not isinstance(name, str):
        raise TypeError(f"compression must be a str or None, not {type(name).__name__}")
    codec = CODECS.get(name)
    if codec is None:
        raise ContractError.for_path(None, f"unknown compression {name!r:.40}; choose "
                                           f"'zstd', 'zlib' or None")
    if codec == ZSTD:
        _zstd()  # a clear error now, not at the first write
    return codec


def compression_name(codec: int) -> str | None:
    return {ZLIB: "zlib", ZSTD: "zstd"}.get(codec)


def compress(plain: bytes, codec: int) -> bytes:
    if codec == ZSTD:
        return bytes(_zstd_compressor().compress(plain))
    return zlib.compress(plain, LEVELS[ZLIB])


@dataclass(frozen=True, slots=True)
class Content:
    """The content rules of one database: how new values are stored (``codec``) and whether
    reads verify checksums (``verify``)."""

    codec: int = RAW
    verify: bool = True
    #: Whether every value of the database is stored as is (none compressed), so that a part
    #: of a chunk can be read without the rest (BLOB reads). False for underlays, whose
    #: encoding is their own.
    partial: bool = True

    def encode(self, plain: bytes) -> tuple[bytes, int, bytes]:
        """(stored bytes, codec, sums) of a value to write."""
        sums = block_sums(plain)
        if self.codec and len(plain) >= MIN_COMPRESS:
            packed = compress(plain, self.codec)
            if len(packed) < len(plain):
                return packed, self.codec, sums
        return plain, RAW, sums

    def decode(self, data: Any, codec: Any, sums: Any, limit: int, offset: int = 0) -> bytes:
        """The plain bytes of a stored value (at most ``limit`` of them), checked. ``offset``:
        where the value starts in its file, for the error."""
        if type(data) is not bytes:
            raise _damaged(f"content stored as {type(data).__name__}, not bytes", offset)
        if codec == RAW:
            plain = data
        elif codec == ZLIB or codec == ZSTD:
            plain = _decompress(data, codec, limit, offset)
        else:
            raise _damaged(f"unknown codec {codec!r:.40}", offset)
        if self.verify or codec != RAW:
            verify(plain, sums, offset)
        if len(plain) > limit:
            raise _damaged(f"{len(plain)} bytes where at most {limit} fit", offset)
        return plain

    def decode_part(self, part: Any, sums: Any, start: int, offset: int) -> Any:
        """Check bytes read from an uncompressed value at ``start`` (a multiple of ``BLOCK``)
        against ``sums``, the value's sums from block ``start // BLOCK`` on (or all of them,
        or more: only those the bytes cover are compared)."""
        if type(part) is not bytes:
            raise _damaged(f"content stored as {type(part).__name__}, not bytes", offset)
        if self.verify:
            first = start // BLOCK
            count = (len(part) + BLOCK - 1) // BLOCK
            if type(sums) is not bytes:
                raise _damaged("checksums missing", offset)
            want = sums[SUM * first:SUM * (first + count)] if len(sums) > SUM * count else sums
            if len(want) < SUM * count or block_sums(part) != want[:SUM * count]:
                verify(part, want[:SUM * count], offset)
        return part


#: Uncompressed, verified: the rules of reading (the codec only matters to writes).
PLAIN = Content()


def verify(plain: bytes, sums: Any, offset: int) -> None:
    """Raise ``CorruptionError`` at the first block of ``plain`` whose checksum is not in
    ``sums``."""
    if type(sums) is not bytes or len(sums) != SUM * ((len(plain) + BLOCK - 1) // BLOCK):
        raise _damaged(f"checksums of the wrong length ({len(sums) if type(sums) is bytes else sums!r:.20})",
                       offset)
    if block_sums(plain) == sums:
        return
    for k in range(0, len(plain), BLOCK):
        at = k // BLOCK * SUM
        if _xxh3(plain[k:k + BLOCK]) != sums[at:at + SUM]:
            raise _damaged("checksum mismatch", offset + k)


def _decompress(data: bytes, codec: int, limit: int, offset: int) -> bytes:
    """Decompress at most ``limit`` bytes (a damaged or crafted value must not expand into
    gigabytes)."""
    try:
        if codec == ZLIB:
            dec = zlib.decompressobj()
            plain = dec.decompress(data, limit + 1)
            if not dec.eof or dec.unused_data:
                raise ValueError("truncated or trailing data")
        else:
            # A frame states its size (ours always do): refuse a size past the limit before
            # anything is allocated; a frame without one is read through a bounded stream.
            size = _zstd().frame_content_size(data)
            if size > limit:
                raise ValueError(f"a frame of {size} bytes")
            # One frame, and nothing after it: trailing bytes are damage, not padding.
            dec = _zstd_decompressor().decompressobj()
            if size < 0:
                plain = _zstd_decompressor().stream_reader(data).read(limit + 1)
                if len(plain) <= limit:
                    plain = dec.decompress(data)
            else:
                plain = dec.decompress(data)
            if not dec.eof or dec.unused_data:
                raise ValueError("truncated frame or bytes after the frame")
    except VFSError:
        raise
    except Exception as exc:  # zlib.error, zstd.ZstdError, ValueError, MemoryError
        raise _damaged(f"compressed content does not decompress ({exc})", offset) from None
    if len(plain) > limit:
        raise _damaged(f"compressed content expands past {limit} bytes", offset)
    return plain


class Damage(CorruptionError):
    """Damaged content at byte ``at`` of a stored value; the repository adds which chunk
    (``idx``), the file handle or namespace the file and its offset (``in_file``)."""

    what = ""
    at = 0
    idx: int | None = None

    def in_file(self, path: str | None, chunk_size: int) -> CorruptionError:
        offset = (self.idx or 0) * chunk_size + self.at
        return CorruptionError.for_path(path, f"damaged content at offset {offset}: "
                                              f"{self.what}")


def _damaged(what: str, offset: int) -> Damage:
    exc = Damage(errno.EIO, f"damaged content at byte {offset} of a stored value: {what}")
    exc.what, exc.at = what, offset
    return exc


__all__ = ["BLOCK", "CODECS", "PLAIN", "SUM", "Content", "Damage", "block_sums", "compression_codec",
           "compression_name", "verify"]
