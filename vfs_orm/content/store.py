"""``ContentStore``: the one owner of the bytes of the top database's files.

Everything that happens to a file's content goes through here: a whole content replaced
(inline bytes in the inode row, or chunks), a write or a truncate in place (copy on write
first when the chunks are shared, inline bytes spilled to chunk 0 first), a copy that shares
chunks or one read from an underlay and written again in this database's encoding, a staged
(``w``/``x``) handle's chunks, a digest computed from the chunks. The namespace above decides
*which* inode (names, directories, whiteouts, copy-up); the chunk repository below runs the
statements. File handles (``vfs_orm._io``) read and write through a store and know nothing
of names.

A store speaks inode ids and sizes; it raises ``Damage`` for damaged content (the caller
adds the path) and returns None where the inode turned out to be gone or replaced (the caller
knows which error that is for its path).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from vfs_orm import stored
from vfs_orm.backends import CHUNK_SPAN, INLINE_MAX, InodeRepository
from vfs_orm.content import damaged
from vfs_orm.integrity import WINDOW, file_digest
from vfs_orm.rows import FILE, ChunkRow, Node
from vfs_orm.types import FILE_MODE
from vfs_orm.uow import UnitOfWork


class Source(NamedTuple):
    """Where a file's content is read from: a database's statements and the calling thread's
    connection to it (the top database, or the underlay the file was found in)."""

    repo: InodeRepository
    raw: Callable[[], Any]


class ContentStore:
    """The content of the top database's inodes, over its chunk repository ``repo`` (the
    backend's ``InodeRepository``) inside ``uow``'s transactions."""

    def __init__(self, uow: UnitOfWork, repo: InodeRepository, chunk_size: int,
                 owner: str) -> None:
        self.uow = uow
        self.repo = repo
        #: New files' chunk size.
        self.chunk_size = chunk_size
        #: Who owns staging rows made here (a crashed writer's are reclaimed by it).
        self.owner = owner

    @property
    def inline_max(self) -> int:
        """The largest file written whole that keeps its bytes in its inode row."""
        return min(self.chunk_size, INLINE_MAX)

    # -- whole content ------------------------------------------------------------------------
    def replace(self, raw: Any, parent: str, name: str, existing: Node | None, data: bytes,
                mtime_ns: int | None, mode: int) -> int:
        """Inside a write: ``data`` as the whole content of the file ``parent``/``name``
        (``existing``: the top layer's file there, if any). Returns its inode id (a new one
        when there was none, or when the old one's chunks are shared with others, who keep
        them)."""
        cs = self.chunk_size
        now = time.time_ns() if mtime_ns is None else mtime_ns
        n = len(data)
        inline = data if n <= self.inline_max else None
        # Inline bytes get their digest from the repository; chunked ones, here.
        digest = None if inline is not None else hashlib.sha256(data).digest()
        ctime = now
        # The owner stays with the path, as the mode's row does (format 0009).
        ids = (None, None) if existing is None else (existing.uid, existing.gid)
        if existing is not None and self.release(raw, existing.id):
            # Other files read its chunks: its row stays for them, out of the tree, and the
            # path gets a new row (as a w-mode save gets one).
            ctime, existing = existing.ctime_ns, None
        if existing is None:
            inode_id = int(self.repo.insert(raw, parent, name, FILE, mode, n, cs, ctime, now,
                                            data=inline, digest=digest, ids=ids))
        else:
            inode_id = existing.id
            self.repo.rewrite(raw, inode_id, n, cs, mode, now, inline, digest)
            if inline is not None:
                if existing.size:
                    self.repo.drop_chunks_from(raw, inode_id, 0)
            elif existing.size > n or existing.chunk_size != cs:
                self.repo.drop_chunks_from(raw, inode_id, (n + cs - 1) // cs)
        if inline is None:
            self.put(raw, inode_id, data, new=existing is None)
        return inode_id

    def put(self, raw: Any, inode_id: int, data: bytes, new: bool = False) -> None:
        """Write ``data`` as the chunks of a file that has no chunk beyond them (``new``: a
        file just created, with no chunk at all)."""
        cs, n = self.chunk_size, len(data)
        if n <= cs:
            if n:
                self.repo.put_chunk(raw, inode_id, 0, data, new)
        else:
            mv = memoryview(data)
            self.repo.put_chunks(raw, ((inode_id, i, mv[o:o + cs])
                                       for i, o in enumerate(range(0, n, cs))), new)

    def read_all(self, source: Source, inode_id: int, size: int, chunk_size: int,
                 where: str) -> bytes:
        """The whole content of a file of ``size`` bytes (of the layer ``source`` reads), in
        one statement: one snapshot, never chunks of two versions."""
        rows = source.repo.read_span(source.raw(), inode_id, 0, CHUNK_SPAN)
        return assemble(rows, size, chunk_size, where)

    # -- shared content (copy on write) -------------------------------------------------------
    def release(self, raw: Any, inode_id: int) -> bool:
        """Before a file is deleted or its whole content replaced: it stops reading another
        file's chunks; if others read its own, its row leaves the tree (hidden, kept for them)
        and True is returned (the caller deletes nothing, and makes a new row if it needs
        one)."""
        content, refs = self.repo.sharing_of(raw, inode_id)
        if content is not None:
            self.repo.own(raw, inode_id)
            self.repo.release_holder(raw, content)
            # Its overlay may have been the last reader of its own, frozen chunks.
            content, refs = self.repo.sharing_of(raw, inode_id)
        if refs > 0:
            self.repo.hide(raw, inode_id)
            return True
        return False

    def detach(self, raw: Any, inode_id: int) -> tuple[int, int | None]:
        """Before a write in place (copy on write, chunk by chunk: format 0014): where the
        file's written chunks go (its "key": its own id, or a hidden row only it reads), and
        where the chunks that key lacks are read from (its base, or None). Shared chunks are
        never copied here: they stay, frozen, as the base of an overlay that the written
        chunks go to. Only an overlay others read too is copied (its own chunks: those
        written since it was made) into a new one on the same base."""
        content, refs, base, key_refs, key_hidden, key_base = \
            self.repo.overlay_state(raw, inode_id)
        if content is None:
            if base is not None:
                raise damaged(f"inode {inode_id} reads chunks of {base} and no key", 0)
            if refs <= 0:
                return inode_id, None
            # Others read its chunks: they freeze, and the file writes an overlay on them.
            overlay = self.repo.new_overlay(raw, inode_id, inode_id)
            self.repo.reads(raw, inode_id, overlay, inode_id, readers=1)
            return overlay, inode_id
        if key_refs == 1 and key_hidden:  # a hidden key only this file reads: its own
            return content, key_base
        if key_base is None:
            # Complete chunks others read: an overlay on them (the file's reference to them
            # is the overlay's from now on).
            overlay = self.repo.new_overlay(raw, inode_id, content)
            self.repo.reads(raw, inode_id, overlay, content)
            return overlay, content
        # An overlay others read too: a new one on the same base, with its chunks.
        overlay = self.repo.new_overlay(raw, inode_id, key_base)
        self.repo.copy_chunks(raw, content, overlay)
        self.repo.reads(raw, inode_id, overlay, key_base)
        self.repo.add_refs(raw, key_base, 1)
        self.repo.release_holder(raw, content)
        return overlay, key_base

    def _materialize(self, raw: Any, inode_id: int, key: int, base: int, chunks: int) -> None:
        """The file's key gets the first ``chunks`` chunks it reads from its base (before a
        truncation: chunks past the cut must not come back from the base), and reads no base
        any more."""
        self.repo.copy_chunks(raw, base, key, below=chunks)
        self.repo.set_base(raw, key, None)
        self.repo.set_base(raw, inode_id, None)
        self.repo.release_holder(raw, base)

    def delete(self, raw: Any, inode_id: int) -> None:
        """A file's row and its content, unless others read its chunks (then it is hidden
        until they go)."""
        if not self.release(raw, inode_id):
            self.repo.delete(raw, inode_id)

    def delete_tree(self, raw: Any, inode_id: int, path: str, lo: str, hi: str) -> int:
        """An entry and everything below it: shared content released first, then rows and
        chunks in two statements. Returns how many rows went."""
        self.release(raw, inode_id)
        for ident in self.repo.shared_in(raw, path, lo, hi):
            self.release(raw, ident)
        return self.repo.delete_tree(raw, inode_id, path, lo, hi)

    def share(self, raw: Any, src_id: int, dst_id: int) -> None:
        """The (empty) new file ``dst_id`` gets ``src_id``'s content: its chunks shared,
        copied on the first write to either; inline bytes copied."""
        self.repo.copy_content(raw, src_id, dst_id)

    def copy_from(self, raw: Any, source: Source, node: Node, dst_id: int) -> None:
        """The (empty) new file ``dst_id`` gets the content of ``node`` of another database
        (an underlay, read from ``source``): read (checked, decompressed)
        and written again in this database's encoding, a window of chunks at a time, so that
        every value here is encoded as this database encodes (its uncompressed chunks can be
        read in part)."""
        repo, layer_raw = source
        chunks = max(1, (node.size + node.chunk_size - 1) // node.chunk_size)
        for first in range(0, chunks, WINDOW):  # inline bytes come as chunk 0
            rows = repo.read_span(layer_raw(), node.id, first, first + WINDOW)
            self.repo.put_chunks(raw, ((dst_id, row.idx, row.data) for row in rows
                                       if row.data is not None and row.idx is not None))
        digest = repo.digest_of(layer_raw(), node.id)
        if digest is not None:
            self.repo.set_digest(raw, dst_id, digest)

    def digest(self, source: Source, node: Node, writable: bool) -> bytes | None:
        """SHA-256 of ``node``'s content (read from ``source``): the one stored
        with it, without reading the content; if unknown (written in place since), computed
        from its chunks, and recorded when ``writable`` (the top database, not read-only).
        None: the file is gone."""
        repo, raw = source
        known = repo.digest_of(raw(), node.id)
        if known is not None:
            return bytes(known)
        if writable:
            # In one write transaction: no write can land between reading and recording.
            with self.uow.write() as wraw:
                now = self.repo.inode_size(wraw, node.id)
                if now is None:
                    return None
                digest = file_digest(lambda a, b: self.repo.read_span(wraw, node.id, a, b),
                                     now.size, node.chunk_size)
                self.repo.set_digest(wraw, node.id, digest)
                return digest
        return file_digest(lambda a, b: repo.read_span(raw(), node.id, a, b), node.size,
                           node.chunk_size)

    def source(self) -> Source:
        """Where the top database's content is read from."""
        return Source(self.repo, self.uow.raw)

    # -- in place (a, r+) ---------------------------------------------------------------------
    def _own_chunks(self, raw: Any, inode_id: int, generation: int
                    ) -> tuple[Any, int, int | None]:
        """Before a change in place, inside its transaction: the file's size row (None: gone
        or replaced since ``generation``), where its written chunks go and where the chunks
        that lacks are read from (copy on write: ``detach``); its inline bytes moved to chunk
        0."""
        row = self.repo.inode_size(raw, inode_id)
        if row is None or row.generation != generation:
            return None, inode_id, None
        key, base = self.detach(raw, inode_id) if row.shared else (inode_id, None)
        if row.inline:  # inline bytes: they become chunk 0, the file is chunked from now on
            self.repo.spill(raw, inode_id)
        return row, key, base

    def write_at(self, inode_id: int, generation: int, chunk_size: int, pos: int | None,
                 data: bytes) -> tuple[int, int] | None:
        """Write ``data`` at ``pos`` (None: at the end) of the file, in one transaction.
        Returns (where the write ended, the file's new size); None: the file is gone or was
        replaced."""
        cs = chunk_size
        with self.uow.write() as raw:
            row, key, base = self._own_chunks(raw, inode_id, generation)
            if row is None:
                return None
            size = row.size
            pos = size if pos is None else pos
            end = pos + len(data)
            rows = []
            i = 0
            p = pos
            while p < end:
                idx, off = divmod(p, cs)
                n = min(cs - off, end - p)
                if off == 0 and (n == cs or p + n >= size):
                    chunk = data[i:i + n]
                else:
                    old = bytearray(self.repo.chunk_of(raw, key, base, idx) or b"")
                    if len(old) < off:
                        old.extend(bytes(off - len(old)))
                    old[off:off + n] = data[i:i + n]
                    chunk = bytes(old)
                rows.append((key, idx, chunk))
                p += n
                i += n
            self.repo.put_chunks(raw, rows)
            self._set_size(raw, inode_id, key, max(size, end), size)
        return end, max(size, end)

    def _set_size(self, raw: Any, inode_id: int, key: int, size: int, was: int = -1) -> None:
        """The file's new size, and its key's (a hidden row it writes) when it changed."""
        now = time.time_ns()
        self.repo.set_size(raw, inode_id, size, now)
        if key != inode_id and size != was:
            self.repo.set_size(raw, key, size, now)

    def truncate_at(self, inode_id: int, generation: int, chunk_size: int, size: int) -> bool:
        """Cut or extend the file to ``size`` bytes in one transaction; False: the file is
        gone or was replaced."""
        with self.uow.write() as raw:
            row, key, base = self._own_chunks(raw, inode_id, generation)
            if row is None:
                return False
            if base is not None:
                self._materialize(raw, inode_id, key, base,
                                  (min(size, row.size) + chunk_size - 1) // chunk_size)
            self._cut(raw, key, chunk_size, size)
            self._set_size(raw, inode_id, key, size)
        return True

    def _cut(self, raw: Any, inode_id: int, chunk_size: int, size: int) -> None:
        """Drop the chunks past ``size`` and shorten the last one kept."""
        keep = (size + chunk_size - 1) // chunk_size
        self.repo.drop_chunks_from(raw, inode_id, keep)
        if keep:
            last = self.repo.chunk_data(raw, inode_id, keep - 1)
            tail = size - (keep - 1) * chunk_size
            if last is not None and len(last) > tail:
                self.repo.put_chunk(raw, inode_id, keep - 1, last[:tail])

    def chunk(self, inode_id: int, idx: int) -> bytes:
        """The plain bytes of one chunk of a top-database file (empty: a hole)."""
        with self.uow.read_lock:
            return bytes(self.repo.chunk_data(self.uow.raw(), inode_id, idx) or b"")

    # -- staged (w, x) ------------------------------------------------------------------------
    def new_staging(self, raw: Any, chunk_size: int) -> int:
        """An invisible inode (``parent IS NULL``) for a staged handle's chunks, owned by this
        process (reclaimed if it crashes)."""
        now = time.time_ns()
        return int(self.repo.insert(raw, None, f"staging-{now}", FILE, FILE_MODE, 0,
                                    chunk_size, now, now, self.owner))

    def write_chunks(self, raw: Any, inode_id: int, pending: Mapping[int, bytes | bytearray]
                     ) -> None:
        """A staged handle's pending chunks (index -> bytes), in index order."""
        if pending:
            self.repo.put_chunks(raw, ((inode_id, idx, bytes(buf))
                                       for idx, buf in sorted(pending.items())))

    def flush_staged(self, inode_id: int | None, chunk_size: int,
                     pending: Mapping[int, bytes | bytearray], size: int) -> int:
        """Write pending chunks to the staging inode (made on first use), in one transaction.
        Returns the staging inode's id."""
        with self.uow.write() as raw:
            if inode_id is None:
                inode_id = self.new_staging(raw, chunk_size)
            self.write_chunks(raw, inode_id, pending)
            self.repo.set_size(raw, inode_id, size, time.time_ns())
        return inode_id

    def truncate_staging(self, inode_id: int, chunk_size: int, size: int) -> None:
        """Cut a staging inode's chunks to ``size`` bytes (its size is set when it is
        placed)."""
        with self.uow.write() as raw:
            self._cut(raw, inode_id, chunk_size, size)

    def discard(self, inode_id: int | None) -> None:
        """Drop a staging inode (a staged handle closed by an exception)."""
        if inode_id is not None:
            with self.uow.write() as raw:
                self.delete(raw, inode_id)

    def place(self, raw: Any, inode_id: int, parent: str, name: str, size: int, ctime: int,
              mtime: int, digest: bytes | None,
              ids: tuple[int | None, int | None] = (None, None)) -> None:
        """Inside the namespace's write: the staging inode becomes the file at
        ``parent``/``name``, owned by ``ids`` (uid, gid; those of the file it replaces)."""
        self.repo.place(raw, inode_id, parent, name, size, ctime, mtime, digest, ids)


def assemble(rows: list[ChunkRow], size: int, cs: int, path: str) -> bytes:
    """A whole file from its chunk rows; missing chunks are sparse holes (zeros)."""
    out = stored.buffer(size, path)
    cs = cs or 1
    for row in rows:
        idx, data = row.idx, row.data
        if data is None or idx is None:
            continue
        start = idx * cs
        data = data[: max(0, min(cs, size - start))]
        out[start:start + len(data)] = data
    return bytes(out)


__all__ = ["ContentStore", "Source", "assemble"]
