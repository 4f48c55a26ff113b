"""Binary deltas (format 0008): a patch pack's changed file stored as the difference from
its version in the tree below, and read with it.

A delta value names its base by SHA-256 (``codec.DELTA``). ``Bases`` finds that base where
a patch is read: in any layer of the reading VFS's stack, by the digests files are stored
with (so a moved or renamed base still serves), reads it whole and checks it against the
digest, so a base from a forged or changed layer is never used. Found bases are kept (a
bounded number of bytes) for the next chunk or file. A delta may be made against a file
that is a delta itself (a chain of patches): bases resolve recursively, to a bounded depth,
and a base that needs itself is refused.

``rebase`` stores a file's values as deltas against a base wherever that is smaller: what
``make_patch`` does to each changed file after writing it whole.

The same resolver finds the GROUPS slices read from (format 0013, ``codec.SLICE``): by id, in
any layer's ``vfs_groups``, decoded and checked against their SHA-256 (whose first 8 bytes
the id is), so a group from a forged layer is never used; found groups are kept too.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

from vfs_orm import stored
from vfs_orm.content.codec import (
    DELTA,
    DELTA_BASE_MAX,
    GROUP_MAX,
    INLINE,
    RAW,
    ZLIB,
    ZSTD,
    ZSTD_DICT,
    Base,
    Content,
    Damage,
    MissingBase,
    damaged,
    group_id,
    keep,
    missing_base,
    whole_sums,
)
from vfs_orm.content.store import Source, assemble
from vfs_orm.errors import CorruptionError, PatchBaseError

#: Bytes of found bases kept for the next reads, their zstd dictionaries counted (one base
#: is at most ``DELTA_BASE_MAX``).
KEEP_BYTES = 256 << 20
#: How deep bases may be deltas of deltas (a chain of patches, one per release), and how many
#: bytes of bases such a chain may have in flight at once (each level holds its base while it
#: reads the next): a forged chain is refused, not followed into gigabytes.
MAX_DEPTH = 64
MAX_IN_FLIGHT = 1 << 30
#: Bytes of groups (format 0013) kept for the next reads: a solid pack's small files are
#: read a group at a time, so a walk over them decodes each group once.
GROUP_KEEP_BYTES = 32 << 20
#: The codecs a group may be stored with (a slice or a delta would make a group read another).
_GROUP_CODECS = (RAW, ZLIB, ZSTD, ZSTD_DICT)
#: Groups a stack holds only damaged (a row under the id that does not check) are kept too,
#: so that every slice naming one does not decode it again: this many, per VFS.
DAMAGED_GROUPS_KEPT = 256

class Where(NamedTuple):
    """A file of a layer holding a base."""

    ident: int
    size: int
    chunk_size: int
    path: str


class _Map(NamedTuple):
    by_digest: dict[bytes, Where]
    #: Files without a stored digest (written in place) were hashed too.
    full: bool


#: (key, reader, stable) of one layer: ``stable`` for an underlay (read-only here), whose map
#: need not be made again when a base is missing; the top may have been written since.
Sources = Callable[[], Sequence[tuple[Hashable, Source, bool]]]


class _Kept:
    """The most recently used values of a cache bounded in bytes (``weight`` of a value);
    the newest is always kept. Not locked: its owner holds a lock around every call."""

    def __init__(self, limit: int, weight: Callable[[Any], int]) -> None:
        self.limit, self.weight = limit, weight
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def put(self, key: Hashable, value: Any) -> None:
        if key in self._items:
            return
        self._items[key] = value
        self._bytes += self.weight(value)
        while self._bytes > self.limit and len(self._items) > 1:
            _, gone = self._items.popitem(last=False)
            self._bytes -= self.weight(gone)


class Bases:
    """The bases of one VFS's deltas: ``sources()`` lists its stack's layers (the key names a
    layer's content as of now: the stack's version and the layer's place)."""

    def __init__(self, sources: Sources | None = None) -> None:
        self.sources = sources
        self.statements: dict[Any, Any] = {}
        self._lock = threading.Lock()
        # A base counts twice its size: reading with it makes a zstd dictionary, a copy of it.
        self._kept = _Kept(KEEP_BYTES, lambda base: 2 * len(base.data))
        self._maps: dict[Hashable, _Map] = {}
        self._local = threading.local()
        self._groups = _Kept(GROUP_KEEP_BYTES, len)
        #: (group id, the stack's layer keys) -> why no layer's row of it is usable.
        self._damaged: dict[tuple[int, tuple[Hashable, ...]], str] = {}

    def base(self, digest: bytes) -> Base:
        """The base whose SHA-256 is ``digest`` (``MissingBase``, a ``PatchBaseError``, if no
        layer holds it; ``CorruptionError`` for a damaged base, one too big, or one that needs
        itself)."""
        with self._lock:
            kept: Base | None = self._kept.get(digest)
        if kept is not None:
            return kept
        busy: list[bytes] = self._local.__dict__.setdefault("busy", [])
        if digest in busy:
            raise CorruptionError.for_path(None, "a delta whose base is a delta of itself "
                                                 "(a forged chain): refused")
        if len(busy) >= MAX_DEPTH:
            raise CorruptionError.for_path(None, f"deltas of deltas more than {MAX_DEPTH} "
                                                 f"deep: refused")
        busy.append(digest)
        try:
            found = self._find(digest)
        finally:
            busy.pop()
            if not busy:
                self._local.in_flight = 0
        self._keep(found)
        return found

    def group(self, ident: int) -> bytes:
        """The plain bytes of the group ``ident`` (``Damage`` saying why unless a layer holds
        it whole and matching its SHA-256)."""
        with self._lock:
            kept: bytes | None = self._groups.get(ident)
        if kept is not None:
            return kept
        found = self._find_group(ident)
        with self._lock:
            self._groups.put(ident, found)
        return found

    def forget_damaged_groups(self) -> None:
        """The groups found damaged may be sound now (``group_small_files`` wrote them)."""
        with self._lock:
            self._damaged.clear()

    def _find_group(self, ident: int) -> bytes:
        name = f"group {ident & (2**64 - 1):016x}"
        problem = f"{name}, which no layer of this stack holds"
        layers = list(self.sources()) if self.sources is not None else []
        # A row of a group is written again only by ``group_small_files`` (which forgets
        # these): one refused stays refused in this stack (a stack changed, or a database that
        # took an image, has new keys).
        seen = (ident, tuple(key for key, _, _ in layers))
        with self._lock:
            known = self._damaged.get(seen)
        if known is not None:
            raise damaged(known, 0)
        refused = False
        for _key, source, _stable in layers:
            row = source.repo.group_row(source.raw(), ident)
            if row is None:
                continue
            refused = True
            digest, codec, sums, data = row
            if data is None:
                problem = f"{name} stored in more than {GROUP_MAX} bytes"
                continue
            if codec not in _GROUP_CODECS or type(codec) is not int:
                problem = f"{name} stored with codec {codec!r:.20}"
                continue
            try:
                plain = source.repo.content.decode(data, codec, sums, GROUP_MAX, ident)
            except Damage as exc:
                problem = f"{name} is damaged: {exc.what}"
                continue
            if type(digest) is not bytes or group_id(digest) != ident \
                    or hashlib.sha256(plain).digest() != digest:
                problem = f"{name} does not match its SHA-256"
                continue
            return plain
        if refused:
            with self._lock:
                keep(self._damaged, seen, problem, DAMAGED_GROUPS_KEPT)
        raise damaged(problem, 0)

    def _find(self, digest: bytes) -> Base:
        layers = list(self.sources()) if self.sources is not None else []
        for gone in set(self._maps) - {key for key, _, _ in layers}:
            self._maps.pop(gone, None)  # an older stack's
        # A miss is looked for again with fresh maps: the top may have been written since,
        # and files written in place have no stored digest until they are hashed.
        for fresh in (False, True):
            for key, source, stable in layers:
                where = self._map(key, source, stable, fresh).by_digest.get(digest)
                if where is None:
                    continue
                data = self._read(source, where)
                if hashlib.sha256(data).digest() == digest:
                    return Base(data, digest)
        raise missing_base(digest)

    def _map(self, key: Hashable, source: Source, stable: bool, fresh: bool) -> _Map:
        """Where each digest of one layer's files is: the stored ones (read once per key),
        and, when ``fresh``, those of files without one, hashed (once per key for an
        underlay)."""
        known = self._maps.get(key)
        if known is not None and (not fresh or (stable and known.full)):
            return known
        by_digest: dict[bytes, Where] = {}
        unknown: list[Where] = []
        for ident, parent, name, size, cs, digest, _mode in source.repo.files(source.raw()):
            if type(ident) is not int or type(size) is not int or type(cs) is not int \
                    or not 0 < cs <= stored.MAX_CHUNK_SIZE or size < 0:
                continue
            where = Where(ident, size, cs, stored.path_of(parent, name) or f"inode {ident}")
            if type(digest) is bytes:
                by_digest.setdefault(digest, where)
            elif fresh and size <= DELTA_BASE_MAX:
                unknown.append(where)
        for where in unknown:  # files written in place: hashed, a file at a time
            try:
                data = self._read(source, where)
            except (CorruptionError, PatchBaseError):
                continue  # not a base this read can use; its own reads report it
            by_digest.setdefault(hashlib.sha256(data).digest(), where)
        known = self._maps[key] = _Map(by_digest, fresh)
        return known

    def _read(self, source: Source, where: Where) -> bytes:
        """A base's bytes: no more chunks than its stated size needs (a forged row cannot make
        this decode more), damage named as the base's."""
        if where.size > DELTA_BASE_MAX:
            raise CorruptionError.for_path(where.path, f"a delta names this file as its base, "
                                                       f"{where.size} bytes (at most "
                                                       f"{DELTA_BASE_MAX})")
        flying = getattr(self._local, "in_flight", 0) + where.size
        if flying > MAX_IN_FLIGHT:
            raise CorruptionError.for_path(where.path, f"deltas of deltas reading more than "
                                                       f"{MAX_IN_FLIGHT} bytes of bases at once")
        self._local.in_flight = flying
        chunks = -(-where.size // where.chunk_size)
        try:
            rows = source.repo.read_span(source.raw(), where.ident, 0, max(chunks, 1),
                                         where.chunk_size)
            return assemble(rows, where.size, where.chunk_size, where.path)
        except MissingBase:
            raise  # a base of a base missing: the patch's reader says which file
        except Damage as exc:
            raise CorruptionError.for_path(
                where.path, f"the base of a delta is damaged: "
                            f"{exc.in_file(where.path, where.chunk_size).strerror}") from None

    def _keep(self, base: Base) -> None:
        with self._lock:
            self._kept.put(base.digest, base)


def rebase(manifest: Any, raw: Any, inode_id: int, content: Content, base: Base,
           level: int | None = None) -> tuple[int, int]:
    """Inside a write transaction: store each value of the file ``inode_id`` (its inline
    bytes, or its chunks) as a delta against ``base`` where that is smaller. Returns (values
    made deltas, bytes saved)."""
    made = saved = 0
    for chunks, rows in manifest.values_of_file(raw, inode_id):
        out = []
        for k, codec, sums, value in rows:
            if type(value) is not bytes or codec == DELTA:
                continue
            seal = k if chunks else INLINE
            limit = stored.MAX_CHUNK_SIZE
            plain = content.decode(value, codec, sums, limit, seal)
            delta = content.encode_delta(plain, base, level)
            if len(delta) < len(value):
                out.append((DELTA, whole_sums(plain, seal), delta, k))
                made += 1
                saved += len(value) - len(delta)
        manifest.restore_values(raw, chunks, out)
    return made, saved


__all__ = ["Bases", "rebase"]
