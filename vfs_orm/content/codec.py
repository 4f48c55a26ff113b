"""How file content is stored (format 0004): compressed or not, with checksums.

Every stored value of file content (a chunk, or a small file's inline bytes) has two companion
columns:

- ``codec``: 0 stored as is, 1 zlib, 2 zstd, 3 zstd with a dictionary stored in the same
  database (format 0006, table ``vfs_dictionaries``; the frame names the dictionary by id),
  4 a binary delta (format 0008, patch packs): the SHA-256 of the plain bytes it was made
  against (its BASE, a file of a layer below), then one zstd frame compressed with the base as
  a raw-content dictionary, as ``zstd --patch-from`` does. A delta is read with the base a
  ``Content.bases`` resolver finds by that digest in the stack (checked against it);
  5 a SLICE of a group (format 0013, solid packs): 16 bytes, the group's id (big-endian,
  signed), then the offset and the length (unsigned, 32 bits each) of the file's bytes in the
  plain bytes of that row of ``vfs_groups``, which several small files read from; the same
  resolver finds it by id in the stack, checked against its SHA-256.
  A value is compressed only when that makes it smaller, so incompressible media (PNG, OGG)
  is stored as is and read without a decompression;
- ``sums``: an XXH3-64 checksum of every 4 KiB block of the PLAIN bytes, 8 bytes each (the
  xxhash package's canonical digest; five times the speed of zlib's CRC-32 here), then a
  SEAL (format 0007): an XXH3-64 of those checksums seeded with the value's place, its chunk
  id (``inode * 2**32 + idx``; 0 for a small file's inline bytes, whose row id is not known
  before the row is written). A chunk moved to another file or position, checksums and all,
  fails its seal where it is read; re-placing content (a copy on write, a copy between
  databases) reseals it from the checksums alone, without reading the bytes. A read of part
  of an uncompressed chunk verifies just the blocks it touches (a random 4 KiB read checks
  4 KiB and the seal, not the chunk); a compressed value is verified whole after
  decompression, which also catches damage the decompressor lets through. So a compressed
  value (codecs 1-4) may instead carry ONE checksum of its whole plain bytes, then the seal
  (format 0012; what this release writes for them): per-block checksums buy nothing where
  the value is only ever read whole, and they were 8 bytes per 4 KiB (about 6% of a patch
  pack). For a value of at most 4 KiB the two forms are the same bytes; an uncompressed
  value always has per-block checksums (its parts are read alone).

Stored values are untrusted (saves and mods come from players): a codec this release does not
know, sums of the wrong length, a value that decompresses to more than a chunk or fails to
decompress, or a block whose checksum differs all raise ``CorruptionError`` naming the offset,
never return wrong bytes. ``verify=False`` skips the checksums (not the decompression checks) for
speed; its measured cost is in the README.
"""

from __future__ import annotations

import errno
import hashlib
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Protocol

import xxhash

from vfs_orm.errors import ContractError, CorruptionError, PatchBaseError, VFSError

#: Bytes covered by one checksum, and the size of one (and of the seal after them).
BLOCK = 4096
SUM = 8
#: The seal of a small file's inline bytes (see the module's docstring).
INLINE = 0
RAW, ZLIB, ZSTD, ZSTD_DICT, DELTA, SLICE = 0, 1, 2, 3, 4, 5
#: A slice value: (group id, offset, length).
SLICE_FORMAT = struct.Struct(">qII")
#: The most plain bytes one group holds (its files are small: inline at most 16 KiB each).
GROUP_MAX = 1 << 20


def group_id(digest: bytes) -> int:
    """The id of the group whose plain bytes have the SHA-256 ``digest`` (format 0013)."""
    return int.from_bytes(digest[:8], "big", signed=True)
#: The largest base a delta is made against or read with: its bytes are held in memory while
#: the delta is read (a value naming a bigger one is refused).
DELTA_BASE_MAX = 64 << 20
#: A delta value starts with the SHA-256 of its base.
BASE_DIGEST = 32
#: Compression names accepted at creation, and their codec numbers.
CODECS = {"zlib": ZLIB, "zstd": ZSTD}
#: The level each compressor runs at unless one is chosen: fast enough for everyday packing
#: (zstd 3 packs the standard library in about a second; 19 took 48 s for 4% less).
LEVELS = {ZLIB: 6, ZSTD: 3}
#: The level for release packs (written once, downloaded and read many times).
RELEASE_LEVELS = {ZLIB: 9, ZSTD: 19}
#: The levels each compressor accepts.
LEVEL_RANGE = {ZLIB: (1, 9), ZSTD: (-7, 22)}
#: Values up to this size are compressed with the database's dictionary, when it has one (a
#: dictionary helps small values; a bigger one finds enough to share in itself).
DICT_VALUES = 1024 * 1024
#: The zstd dictionary magic number, first 4 bytes of every dictionary (then its 32-bit id).
DICT_MAGIC = b"\x37\xa4\x30\xec"
#: The zstd frame magic number: a dictionary stored compressed (format 0011) starts with it.
FRAME_MAGIC = b"\x28\xb5\x2f\xfd"
#: The largest dictionary read or trained: a stored frame claiming more is damage, so a hostile
#: database cannot make a reader inflate gigabytes.
MAX_DICTIONARY = 16 << 20
#: The level a dictionary is stored compressed at (format 0011): it is written once and read
#: by every reader; 2 MiB take about a second.
DICT_STORE_LEVEL = 19
#: Values shorter than this are never worth compressing (a header costs more than it saves).
MIN_COMPRESS = 64

_xxh3 = xxhash.xxh3_64_digest


def block_sums(data: bytes | bytearray | memoryview, key: int) -> bytes:
    """The ``sums`` of ``data`` stored at ``key`` (a chunk id, or ``INLINE``): an XXH3-64
    digest per 4 KiB block, 8 bytes each, then their seal (none for no bytes)."""
    digests = _digests(data)
    return digests + _xxh3(digests, key) if digests else b""


def whole_sums(data: bytes | bytearray | memoryview, key: int) -> bytes:
    """The ``sums`` of a compressed value of plain bytes ``data`` stored at ``key`` (format
    0012): one XXH3-64 of them all, then its seal (none for no bytes)."""
    digest = _xxh3(data) if len(data) else b""
    return digest + _xxh3(digest, key) if digest else b""


def _digests(data: bytes | bytearray | memoryview) -> bytes:
    n = len(data)
    if n <= BLOCK:
        return _xxh3(data) if n else b""
    mv = memoryview(data)
    return b"".join([_xxh3(mv[o:o + BLOCK]) for o in range(0, n, BLOCK)])


def reseal(sums: Any, old: int, new: int) -> Any:
    """``sums`` of a value stored at ``old``, for the same value stored at ``new`` (``Damage``
    if they were not sealed for ``old``): content re-placed without reading its bytes."""
    if old == new or sums is None or sums == b"":
        return sums
    _check_seal(sums, old, 0)
    return sums[:-SUM] + _xxh3(sums[:-SUM], new)


def _check_seal(sums: Any, key: int, offset: int) -> None:
    if type(sums) is not bytes or len(sums) < 2 * SUM or len(sums) % SUM:
        raise _damaged(f"checksums of the wrong length "
                       f"({len(sums) if type(sums) is bytes else sums!r:.20})", offset)
    if _xxh3(memoryview(sums)[:-SUM], key) != sums[-SUM:]:
        raise _damaged("content of another file or position (its checksums are sealed to "
                       "another place)", offset)


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        raise VFSError.for_path(
            None, "this database is compressed with zstd, which needs the zstandard package: "
                  "pip install 'vfs-orm[zstd]'") from None
    return zstandard


_local = threading.local()  # zstd (de)compressor objects are not thread-safe: one per thread
#: How many (de)compressors (one per level and dictionary) a thread keeps: each holds its
#: dictionary, up to 16 MiB.
THREAD_CODECS_MAX = 16


def _zstd_compressor(level: int, dictionary: Dictionary | None = None) -> Any:
    cache = getattr(_local, "zc", None)
    if cache is None:
        cache = _local.zc = {}
    made = None if dictionary is None else dictionary.for_level(level)  # checked first
    key = (level, None if dictionary is None else dictionary.digest)
    comp = cache.get(key)
    if comp is None:
        comp = _zstd().ZstdCompressor(level=level, dict_data=made)
        keep(cache, key, comp, THREAD_CODECS_MAX)
    return comp


def _zstd_decompressor(dictionary: Dictionary | Base | None = None) -> Any:
    if isinstance(dictionary, Base):
        return dictionary.decompressor()
    cache = getattr(_local, "zd", None)
    if cache is None:
        cache = _local.zd = {}
    made = None if dictionary is None else dictionary.zstd_dict()  # checked first
    key = None if dictionary is None else dictionary.digest
    dec = cache.get(key)
    if dec is None:
        dec = _zstd().ZstdDecompressor(dict_data=made)
        keep(cache, key, dec, THREAD_CODECS_MAX)
    return dec


def dictionary_id(data: bytes) -> int:
    """The id a dictionary of this format carries: derived from its content (after the id
    field), in zstd's range for user dictionaries (32768 .. 2**31-1), so that two different
    dictionaries in one stack have different ids unless one was forged to collide (refused)."""
    h = int.from_bytes(hashlib.sha256(data[8:]).digest()[:4], "little")
    return 32768 + h % ((1 << 31) - 32768)


class Dictionary:
    """One stored zstd dictionary: its id, SHA-256 (of the dictionary itself) and stored bytes,
    as read from a database (untrusted: checked the first time it is used; a damaged one
    stays damaged without being decoded again). Since format 0011 the stored bytes may be one
    zstd frame of the dictionary (``stored_form``): a trained dictionary compresses 2 to 4.5
    times, so one big enough to pay for itself in a release pack is stored at that size."""

    __slots__ = ("_failed", "_made", "data", "digest", "ident", "where")

    def __init__(self, ident: Any, digest: Any, data: Any, where: str | None = None) -> None:
        self.ident, self.digest, self.data, self.where = ident, digest, data, where
        self._made: Any = None
        self._failed: Damage | None = None

    def plain(self) -> bytes:
        """The dictionary's own bytes: ``data`` as stored, or what its one zstd frame holds
        (``Damage`` otherwise). Not yet checked against the digest."""
        data = self.data
        if type(data) is not bytes:
            raise _damaged(f"dictionary {self.ident!r:.40} is damaged (stored as "
                           f"{type(data).__name__})", 0)
        if not data.startswith(FRAME_MAGIC):
            return data
        try:
            return unframe(data)
        except ValueError as exc:
            raise _damaged(f"dictionary {self.ident!r:.40} is damaged (its stored frame "
                           f"{exc})", 0) from None

    def zstd_dict(self) -> Any:
        """The zstandard dictionary, after checking that the stored bytes are what their
        digest and id say (``Damage`` otherwise, every time, decoded once)."""
        if self._made is not None:
            return self._made
        if self._failed is not None:
            raise _damaged(self._failed.what, 0)
        try:
            made = self._load()
        except Damage as exc:
            self._failed = exc
            raise
        self._made = made
        return made

    def _load(self) -> Any:
        if type(self.digest) is not bytes or type(self.data) is not bytes:
            raise _damaged(f"dictionary {self.ident!r:.40} is damaged (its digest or bytes "
                           f"are not bytes)", 0)
        key = (self.digest, self.data)
        made = _made.get(key)  # the same bytes, checked and parsed before
        if made is not None:
            return made
        data = self.plain()
        if hashlib.sha256(data).digest() != self.digest:
            raise _damaged(f"dictionary {self.ident!r:.40} is damaged (its bytes do not "
                           f"match its digest)", 0)
        if not data.startswith(DICT_MAGIC) or len(data) < 16 \
                or int.from_bytes(data[4:8], "little") != self.ident \
                or dictionary_id(data) != self.ident:
            raise _damaged(f"dictionary {self.ident!r:.40} is damaged (not a zstd "
                           f"dictionary of that id)", 0)
        zstd = _zstd()
        try:
            # Parsing its tables shows damage: prepared for the everyday level (kept for
            # for_level), on a copy of its own, since a prepared dictionary imposes its
            # level on every compressor using it.
            ready = _prepare(data, LEVELS[ZSTD])
            made = zstd.ZstdCompressionDict(data, dict_type=zstd.DICT_TYPE_FULLDICT)
        except Exception as exc:
            raise _damaged(f"dictionary {self.ident} does not load ({exc})", 0) from None
        keep(_made, key, made, MADE_MAX)
        keep(_prepared, (self.digest, LEVELS[ZSTD]), ready, PREPARED_MAX)
        return made

    def for_level(self, level: int) -> Any:
        """The dictionary to compress at ``level`` with: up to ``PRECOMPUTE_LEVEL``, one
        prepared for that level once per process (shared by every thread's compressor: a
        4 MiB dictionary is otherwise loaded again for every value; 6 KB writes 85 -> 65 us);
        above it, as loaded (a prepared level-19 dictionary of 4 MiB takes 1.3 s and 93 MB,
        for values written once by a release pack)."""
        made = self.zstd_dict()
        if level > PRECOMPUTE_LEVEL:
            return made
        key = (self.digest, level)  # the digest of bytes zstd_dict() checked
        ready = _prepared.get(key)
        if ready is None:
            ready = _prepare(made.as_bytes(), level)
            keep(_prepared, key, ready, PREPARED_MAX)
        return ready


def _prepare(data: bytes, level: int) -> Any:
    """``data`` as a dictionary prepared for compressing at ``level`` (zstd's level 0 is its
    default, 3; zstandard wants it named)."""
    zstd = _zstd()
    ready = zstd.ZstdCompressionDict(data, dict_type=zstd.DICT_TYPE_FULLDICT)
    ready.precompute_compress(level=level or LEVELS[ZSTD])
    return ready


def keep(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """``cache[key] = value``, the oldest entries dropped first to keep at most ``limit`` (a
    dict keeps insertion order; another thread may race, which only drops one more)."""
    while len(cache) >= limit:
        try:
            cache.pop(next(iter(cache)), None)
        except (StopIteration, RuntimeError):
            break
    cache[key] = value


def stored_form(plain: bytes) -> bytes:
    """How a new dictionary is stored (format 0011): one zstd frame of it when that is
    smaller and within what ``unframe`` accepts, else as is."""
    frame: bytes = _zstd().ZstdCompressor(level=DICT_STORE_LEVEL, write_content_size=True
                                          ).compress(plain)
    if len(frame) >= len(plain) or len(plain) > MAX_DICTIONARY \
            or len(plain) > DICT_EXPANSION * len(frame):
        return plain
    return frame


def unframe(data: bytes) -> bytes:
    """What one stored zstd frame holds: it must state its size, at most ``MAX_DICTIONARY``
    and at most ``DICT_EXPANSION`` times its own (so memory follows the database's size, not
    what a crafted frame claims), and nothing may follow it. ``ValueError`` otherwise."""
    zstd = _zstd()
    try:
        size = zstd.frame_content_size(data)
    except zstd.ZstdError as exc:
        raise ValueError(f"has no frame header ({exc})") from None
    if not 0 < size <= min(MAX_DICTIONARY, DICT_EXPANSION * len(data)):
        raise ValueError(f"claims {size} bytes (-1: unstated) from {len(data)}")
    reader = zstd.ZstdDecompressor().decompressobj()
    try:
        plain: bytes = reader.decompress(data)
    except zstd.ZstdError as exc:
        raise ValueError(f"does not decompress ({exc})") from None
    if len(plain) != size or not reader.eof or reader.unused_data:
        raise ValueError("is not exactly one whole frame")
    return plain


#: A stored dictionary frame holds at most this many times its size (``unframe``): trained
#: dictionaries compress 2 to 4.5 times; a frame of zeros could claim 16 MiB from 3 KB.
DICT_EXPANSION = 16
#: Dictionaries prepared for compressing at one level, by SHA-256 and level (``for_level``).
_prepared: dict[tuple[bytes, int], Any] = {}
#: The highest level a dictionary is prepared for (see ``Dictionary.for_level``), and how
#: many prepared ones a process keeps.
PRECOMPUTE_LEVEL = 9
PREPARED_MAX = 16
#: Loaded dictionaries by SHA-256 and stored bytes (a dictionary is checked and parsed once per
#: process; the stored bytes too, since a damaged copy of a checked one has the same digest),
#: at most ``MADE_MAX`` of them.
_made: dict[tuple[bytes, bytes], Any] = {}
MADE_MAX = 32


class Base:
    """The plain bytes deltas are made against and read with (a file's whole content) and
    their SHA-256: found by that digest and checked against it by whoever made it."""

    __slots__ = ("_compressors", "_made", "_readers", "data", "digest")

    def __init__(self, data: bytes, digest: bytes | None = None) -> None:
        if len(data) > DELTA_BASE_MAX:
            raise ValueError(f"a base of {len(data)} bytes (at most {DELTA_BASE_MAX})")
        self.data = data
        self.digest = hashlib.sha256(data).digest() if digest is None else digest
        self._made: Any = None
        #: One compressor per (level, window), reused for every chunk: loading the base as a
        #: dictionary is most of the cost of a delta of a big file (a 16 MiB base: 51 s made
        #: chunk by chunk with new compressors, 11 s with one).
        self._compressors: dict[tuple[int, int], Any] = {}
        #: This base's decompressor per thread (zstd objects are not thread-safe); they go
        #: with the base, not with the thread.
        self._readers = threading.local()

    def zstd_dict(self) -> Any:
        """The base as a zstd raw-content dictionary."""
        if self._made is None:
            zstd = _zstd()
            self._made = zstd.ZstdCompressionDict(self.data, dict_type=zstd.DICT_TYPE_RAWCONTENT)
        return self._made

    def compress(self, plain: bytes, level: int) -> bytes:
        """One zstd frame of ``plain`` that matches against the whole base: its window covers
        the base and the value (``zstd --patch-from``), long matching for big bases."""
        window = max(10, (len(self.data) + len(plain)).bit_length())
        comp = self._compressors.get((level, window))
        if comp is None:
            zstd = _zstd()
            params = zstd.ZstdCompressionParameters.from_level(
                level, window_log=window, enable_ldm=len(self.data) > (8 << 20))
            comp = self._compressors[level, window] = zstd.ZstdCompressor(
                dict_data=self.zstd_dict(), compression_params=params)
        return bytes(comp.compress(plain))

    def decompressor(self) -> Any:
        """The calling thread's decompressor reading with this base."""
        dec = getattr(self._readers, "dec", None)
        if dec is None:
            dec = self._readers.dec = _zstd().ZstdDecompressor(dict_data=self.zstd_dict())
        return dec


class BaseResolver(Protocol):
    """Finds the base a delta names by its SHA-256 (``PatchBaseError`` if none is there), and
    the group a slice names by its id, for one VFS's stack; ``statements``: the repositories
    compiled for content that reads with it (kept with the VFS, not in the process-wide
    cache)."""

    statements: dict[Any, Any]

    def base(self, digest: bytes) -> Base: ...

    def group(self, ident: int) -> bytes:
        """The plain bytes of the group ``ident`` (format 0013; ``Damage`` unless a layer
        holds it whole)."""
        ...


def missing_base(digest: bytes) -> MissingBase:
    what = (f"a delta against content (SHA-256 {digest.hex()[:16]}...) that no layer of this "
            f"stack holds: read a patch over the tree it was made from")
    exc = MissingBase(errno.EINVAL, what)
    exc.what = what
    return exc


class Dictionaries:
    """The dictionaries values of a database (and of its underlays) may be compressed with,
    by id; ``writer``: the one new small values of this database are compressed with.
    Compares by identity: statements compiled for one set are never reused for another."""

    def __init__(self, writer: Dictionary | None = None) -> None:
        self.by_id: dict[Any, Dictionary] = {}
        self.writer = writer
        if writer is not None:
            self.by_id[writer.ident] = writer

    def add(self, entry: Dictionary) -> None:
        """Add ``entry``; one of the same id but other bytes is refused (a forged id)."""
        have = self.by_id.get(entry.ident)
        if have is not None:
            if have.digest != entry.digest:
                raise CorruptionError.for_path(
                    entry.where, f"dictionary id {entry.ident!r:.40} is already used by another "
                                 f"dictionary of this stack ({have.where}): refused")
            return
        self.by_id[entry.ident] = entry

    def merged(self, other: Dictionaries | None) -> Dictionaries:
        out = Dictionaries(self.writer)
        for entry in (*self.by_id.values(), *(other.by_id.values() if other else ())):
            out.add(entry)
        return out


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


def compression_level(codec: int, level: Any) -> int:
    """The level ``codec`` runs at: ``level`` checked, or the default (None)."""
    if level is None:
        return LEVELS.get(codec, 0)
    if not isinstance(level, int) or isinstance(level, bool):
        raise TypeError("compression_level must be an int")
    if codec == RAW:
        raise ContractError.for_path(None, "compression_level needs a compressed database "
                                           "(compression='zstd' or 'zlib')")
    low, high = LEVEL_RANGE[codec]
    if not low <= level <= high:
        raise ContractError.for_path(None, f"compression_level for {compression_name(codec)} "
                                           f"must be between {low} and {high}")
    return level


def compress(plain: bytes, codec: int, level: int | None = None,
             dictionary: Dictionary | None = None) -> bytes:
    if codec == ZSTD:
        return bytes(_zstd_compressor(LEVELS[ZSTD] if level is None else level,
                                      dictionary).compress(plain))
    return zlib.compress(plain, LEVELS[ZLIB] if level is None else level)


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
    #: The level new values are compressed at (None: ``LEVELS``).
    level: int | None = None
    #: The dictionaries stored values may name (format 0006); None: there are none.
    dicts: Dictionaries | None = None
    #: Where deltas find their base (format 0008; see ``vfs_orm.content.deltas``); None: a
    #: delta cannot be read (``PatchBaseError``).
    bases: BaseResolver | None = None

    def encode(self, plain: bytes, key: int) -> tuple[bytes, int, bytes]:
        """(stored bytes, codec, sums) of a value to write at ``key`` (its chunk id, or
        ``INLINE``)."""
        if self.codec and len(plain) >= MIN_COMPRESS:
            writer = None if self.dicts is None or self.codec != ZSTD \
                or len(plain) > DICT_VALUES else self.dicts.writer
            packed = compress(plain, self.codec, self.level, writer)
            if len(packed) < len(plain):
                return (packed, (ZSTD_DICT if writer is not None else self.codec),
                        whole_sums(plain, key))
        return plain, RAW, block_sums(plain, key)

    def encode_delta(self, plain: bytes, base: Base, level: int | None = None
                     ) -> bytes:
        """``plain`` stored as a delta against ``base`` (the caller keeps it if it is smaller
        than what it has, with ``whole_sums`` of ``plain``)."""
        return base.digest + base.compress(plain, level or self.level or LEVELS[ZSTD])

    def decode(self, data: Any, codec: Any, sums: Any, limit: int, key: int,
               offset: int = 0) -> bytes:
        """The plain bytes of a stored value (at most ``limit`` of them), checked, read at
        ``key`` (its chunk id, or ``INLINE``). ``offset``: where the value starts in its file,
        for the error."""
        if type(data) is not bytes:
            raise _damaged(f"content stored as {type(data).__name__}, not bytes", offset)
        if codec == RAW:
            plain = data
        elif codec == ZLIB or codec == ZSTD:
            plain = _decompress(data, codec, limit, offset)
        elif codec == ZSTD_DICT:
            plain = _decompress(data, codec, limit, offset, self._dictionary(data, offset))
        elif codec == DELTA:
            plain = self._delta(data, limit, offset)
        elif codec == SLICE:
            plain = self._slice(data, limit, offset)
        else:
            raise _damaged(f"unknown codec {codec!r:.40}", offset)
        if self.verify or codec != RAW:
            verify(plain, sums, offset, key, whole=codec != RAW)
        if len(plain) > limit:
            raise _damaged(f"{len(plain)} bytes where at most {limit} fit", offset)
        return plain

    def decode_part(self, part: Any, sums: Any, start: int, offset: int, key: int,
                    wanted: int | None = None) -> Any:
        """Check bytes read from an uncompressed value at ``start`` (a multiple of ``BLOCK``)
        against ``sums``, the value's whole sums (only those of the blocks read are compared,
        and the seal), read at ``key``. ``wanted``: how many bytes were asked for; fewer
        means the value ends there, which its checksums must say too (a value cut short is
        damage; a read past the end of a whole value finds nothing, as a sparse file's)."""
        if type(part) is not bytes:
            raise _damaged(f"content stored as {type(part).__name__}, not bytes", offset)
        if self.verify:
            first = start // BLOCK
            count = (len(part) + BLOCK - 1) // BLOCK
            if type(sums) is not bytes:
                raise _damaged("checksums missing", offset)
            held = len(sums) // SUM - 1  # the blocks the value holds
            want = sums[SUM * first:SUM * (first + count)]
            if _digests(part) != want or (count and first + count > held) \
                    or _xxh3(sums[:-SUM], key) != sums[-SUM:]:
                _check_seal(sums, key, offset)
                _compare(part, want, offset, held - first)
            if wanted is not None and len(part) < wanted and first + count < held:
                raise _damaged("content cut short (its checksums cover more)",
                               offset + len(part))
        return part

    def _delta(self, data: bytes, limit: int, offset: int) -> bytes:
        """The plain bytes of a delta value, read with its base."""
        if len(data) <= BASE_DIGEST:
            raise _damaged(f"a delta of {len(data)} bytes (no frame after its base's digest)",
                           offset)
        digest = data[:BASE_DIGEST]
        if self.bases is None:
            raise missing_base(digest)
        base = self.bases.base(digest)
        return _decompress(data[BASE_DIGEST:], ZSTD, limit, offset, base)

    def _slice(self, data: bytes, limit: int, offset: int) -> bytes:
        """The plain bytes of a slice value: its part of the group it names."""
        if len(data) != SLICE_FORMAT.size:
            raise _damaged(f"a slice of {len(data)} bytes (not {SLICE_FORMAT.size})", offset)
        ident, start, length = SLICE_FORMAT.unpack(data)
        if length > limit:
            raise _damaged(f"a slice of {length} bytes where at most {limit} fit", offset)
        if self.bases is None:
            raise _damaged(f"a slice of group {ident & (2**64 - 1):016x}, and no layer holds "
                           f"groups", offset)
        try:
            group = self.bases.group(ident)
        except Damage as exc:
            raise _damaged(exc.what, offset) from None
        if start + length > len(group):
            raise _damaged(f"a slice of bytes {start}..{start + length} of group "
                           f"{ident & (2**64 - 1):016x}, which holds {len(group)}", offset)
        return group[start:start + length]

    def _dictionary(self, data: bytes, offset: int) -> Dictionary:
        """The dictionary a value compressed with one names (``Damage`` if it is not there)."""
        try:
            ident = _zstd().get_frame_parameters(data).dict_id
        except VFSError:
            raise
        except Exception as exc:
            raise _damaged(f"compressed content does not decompress ({exc})", offset) from None
        entry = None if self.dicts is None else self.dicts.by_id.get(ident)
        if entry is None:
            raise _damaged(f"the dictionary {ident} it was compressed with is missing", offset)
        return entry


#: Uncompressed, verified: the rules of reading (the codec only matters to writes).
PLAIN = Content()


def verify(plain: bytes, sums: Any, offset: int, key: int, whole: bool = False) -> None:
    """Raise ``CorruptionError`` unless ``sums`` are ``plain``'s, sealed for ``key``: naming
    the first block whose checksum differs (the value's start, for one checksum). ``whole``:
    a compressed value's, which may be one checksum of all of ``plain`` (format 0012)."""
    if whole and len(plain) > BLOCK and type(sums) is bytes and len(sums) == 2 * SUM:
        if sums != whole_sums(plain, key):
            _check_seal(sums, key, offset)
            raise _damaged("checksum mismatch", offset)
        return
    digests = _digests(plain)
    if digests:
        if sums == digests + _xxh3(digests, key):  # the common case: one comparison
            return
        _check_seal(sums, key, offset)
        if len(sums) != len(digests) + SUM:
            raise _damaged(f"checksums of the wrong length ({len(sums)})", offset)
        _compare(plain, sums, offset, len(digests) // SUM)
    elif sums != b"":
        raise _damaged(f"checksums of the wrong length ({sums!r:.20})", offset)


def _compare(plain: bytes, sums: bytes, offset: int, have: int) -> None:
    """Raise ``Damage`` at the first block of ``plain`` whose checksum is not in ``sums``
    (``have``: how many of them there are)."""
    for k in range(0, len(plain), BLOCK):
        at = k // BLOCK
        if at >= have or _xxh3(plain[k:k + BLOCK]) != sums[at * SUM:at * SUM + SUM]:
            raise _damaged("checksum mismatch", offset + k)
    raise _damaged("checksum mismatch", offset)


def _decompress(data: bytes, codec: int, limit: int, offset: int,
                dictionary: Dictionary | Base | None = None) -> bytes:
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
            dec = _zstd_decompressor(dictionary).decompressobj()
            if size < 0:
                plain = _zstd_decompressor(dictionary).stream_reader(data).read(limit + 1)
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

    def in_file(self, path: str | None, chunk_size: int) -> VFSError:
        offset = (self.idx or 0) * chunk_size + self.at
        return CorruptionError.for_path(path, f"damaged content at offset {offset}: "
                                              f"{self.what}")


class MissingBase(Damage, PatchBaseError):
    """A delta read where no layer of the stack holds its base: a patch read without the tree
    it was made from, not damage. Raised where ``Damage`` is, so that every read path names
    the file; ``in_file`` makes it the ``PatchBaseError`` it is."""

    def in_file(self, path: str | None, chunk_size: int) -> VFSError:
        return PatchBaseError.for_path(path, f"this file is {self.what}")


def damaged(what: str, offset: int) -> Damage:
    """``Damage`` at byte ``offset`` of a stored value: ``what`` is wrong."""
    return _damaged(what, offset)


def _damaged(what: str, offset: int) -> Damage:
    exc = Damage(errno.EIO, f"damaged content at byte {offset} of a stored value: {what}")
    exc.what, exc.at = what, offset
    return exc


__all__ = ["BASE_DIGEST", "BLOCK", "CODECS", "DELTA", "DELTA_BASE_MAX", "GROUP_MAX", "INLINE",
           "PLAIN", "SLICE", "SLICE_FORMAT", "SUM",
           "Base", "BaseResolver", "Content", "Damage", "Dictionaries", "Dictionary", "MissingBase",
           "block_sums", "compression_codec", "compression_level", "compression_name",
           "damaged", "dictionary_id", "group_id", "keep", "reseal", "stored_form", "train", "unframe",
           "verify", "whole_sums"]


#: The largest dictionary ``dictionary_size`` picks: for everyday levels, and for release
#: levels (``RELEASE_LEVELS`` and above).
DICT_SIZE_MAX = 256 * 1024
RELEASE_DICT_SIZE_MAX = 4 << 20


def dictionary_size(sample_bytes: int, level: int = 3) -> int:
    """A dictionary size for this many bytes of samples, at least 16 KiB. Everyday levels: a
    fiftieth (zstd advises about a hundredth; twice that made mpl-data's pack 0.5% smaller,
    dictionary included), at most 256 KiB. Release levels: a quarter, at most 4 MiB, since
    the dictionary is stored compressed (format 0011) and packs are made once: the standard
    library's modules 0.918x -> 0.829x the size of ``zip -9``, mpl-data 0.87x -> 0.73x, for a
    pack time of 30 s instead of 14 (benchmarks/PACKS.md)."""
    if level >= RELEASE_LEVELS[ZSTD]:
        return max(16 * 1024, min(RELEASE_DICT_SIZE_MAX, sample_bytes // 4))
    return max(16 * 1024, min(DICT_SIZE_MAX, sample_bytes // 50))


def train(samples: list[bytes], size: int | None = None, level: int = 3) -> bytes:
    """A zstd dictionary of about ``size`` bytes (default: ``dictionary_size``) trained on
    ``samples`` for compressing at ``level``, carrying the id ``dictionary_id`` derives from
    its content. COVER with fixed parameters (segments of k=2048 bytes, d=8): measured on the
    standard library's 1,790 modules, as small as the optimizer's dictionary (within 1%) in
    0.8 s instead of 90; k=2048 rather than 1024 made mpl-data's small values 1% smaller (its
    AFM fonts and SVGs share longer runs), the modules' 0.2% bigger."""
    zstd = _zstd()
    if size is None:
        size = dictionary_size(sum(map(len, samples)), level)
    if not isinstance(size, int) or isinstance(size, bool) or not 1024 <= size <= MAX_DICTIONARY:
        raise ContractError.for_path(None, f"a dictionary's size must be an int between 1 KiB "
                                           f"and {MAX_DICTIONARY >> 20} MiB, not {size!r:.40}")
    try:
        trained = zstd.train_dictionary(size, samples, k=2048, d=8, level=level)
    except Exception as exc:  # too few or too small samples
        raise ContractError.for_path(None, f"cannot train a dictionary on these files "
                                           f"({exc})") from None
    data = bytearray(trained.as_bytes())
    data[4:8] = dictionary_id(bytes(data)).to_bytes(4, "little")
    return bytes(data)
