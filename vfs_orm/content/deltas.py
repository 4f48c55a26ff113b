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
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from vfs_orm import stored
from vfs_orm.backends import CHUNK_SPAN
from vfs_orm.content.codec import (
    DELTA,
    DELTA_BASE_MAX,
    INLINE,
    Base,
    Content,
    damaged,
    missing_base,
)
from vfs_orm.content.store import Source, assemble
from vfs_orm.errors import CorruptionError

#: Bytes of found bases kept for the next reads (one base is at most ``DELTA_BASE_MAX``).
KEEP_BYTES = 256 << 20
#: How deep bases may be deltas of deltas (a chain of patches, one per release), and how many
#: bytes of bases such a chain may have in flight at once (each level holds its base while it
#: reads the next): a forged chain is refused, not followed into gigabytes.
MAX_DEPTH = 64
MAX_IN_FLIGHT = 1 << 30

Where = tuple[int, int, int]  # (inode id, size, chunk size) of a file holding a base


class Bases:
    """The bases of one VFS's deltas: ``sources()`` lists (key, Source) of every layer of
    its stack (the key names the layer's content as of now: the stack's version and the
    layer's place); ``offer`` adds bytes a caller already holds."""

    def __init__(self, sources: Callable[[], Sequence[tuple[Hashable, Source]]] | None = None
                 ) -> None:
        self.sources = sources
        self.statements: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._kept: OrderedDict[bytes, Base] = OrderedDict()
        self._kept_bytes = 0
        self._maps: dict[Hashable, dict[bytes, Where]] = {}
        self._local = threading.local()

    def offer(self, data: bytes) -> None:
        """Keep ``data`` as a base (a caller that holds a file's bytes anyway)."""
        if len(data) <= DELTA_BASE_MAX:
            self._keep(Base(data))

    def base(self, digest: bytes) -> Base:
        """The base whose SHA-256 is ``digest`` (``PatchBaseError`` if no layer holds it,
        ``CorruptionError`` for a base too big or one that needs itself)."""
        with self._lock:
            kept = self._kept.get(digest)
            if kept is not None:
                self._kept.move_to_end(digest)
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

    def _find(self, digest: bytes) -> Base:
        for fresh in (False, True):  # a miss may be a layer written since its map was made
            for key, source in self.sources() if self.sources is not None else ():
                where = self._map(key, source, fresh).get(digest)
                if where is None:
                    continue
                ident, size, chunk_size = where
                if size > DELTA_BASE_MAX:
                    raise damaged(f"a delta against a base of {size} bytes (at most "
                                  f"{DELTA_BASE_MAX})", 0)
                flying = getattr(self._local, "in_flight", 0) + size
                if flying > MAX_IN_FLIGHT:
                    raise damaged(f"deltas of deltas reading more than {MAX_IN_FLIGHT} bytes "
                                  f"of bases at once", 0)
                self._local.in_flight = flying
                rows = source.repo.read_span(source.raw(), ident, 0, CHUNK_SPAN)
                data = assemble(rows, size, chunk_size, f"inode {ident}")
                if hashlib.sha256(data).digest() == digest:
                    return Base(data, digest)
        raise missing_base(digest)

    def _map(self, key: Hashable, source: Source, fresh: bool) -> dict[bytes, Where]:
        """Where each stored digest of one layer is (its files, read once per key)."""
        known = None if fresh else self._maps.get(key)
        if known is None:
            known = {}
            for ident, _parent, _name, size, cs, digest in source.repo.files(source.raw()):
                if type(digest) is bytes and type(ident) is int and type(size) is int \
                        and type(cs) is int and 0 < cs <= stored.MAX_CHUNK_SIZE and size >= 0:
                    known.setdefault(digest, (ident, size, cs))
            self._maps[key] = known
        return known

    def _keep(self, base: Base) -> None:
        with self._lock:
            if base.digest in self._kept:
                return
            self._kept[base.digest] = base
            self._kept_bytes += len(base.data)
            while self._kept_bytes > KEEP_BYTES and len(self._kept) > 1:
                _, gone = self._kept.popitem(last=False)
                self._kept_bytes -= len(gone.data)


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
                out.append((DELTA, delta, k))
                made += 1
                saved += len(value) - len(delta)
        manifest.restore_values(raw, chunks, out)
    return made, saved


__all__ = ["Bases", "rebase"]
