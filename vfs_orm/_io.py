"""``ChunkedFile``: an ``io.RawIOBase`` over a file's chunks. ``VFS.open`` wraps it in the
stdlib's ``BufferedReader``/``BufferedWriter``/``BufferedRandom`` and ``TextIOWrapper``.

Two ways of writing:

- in place (modes ``a``, ``r+``, ``a+``): every ``write`` call is one transaction on the live
  inode, so each flush of the buffered layer is atomic;
- staged (modes ``w``, ``x`` and their ``+`` forms): data goes to an invisible staging inode
  (``parent IS NULL``), or stays in memory while it is small, and ``close`` swaps it into place
  in one transaction. Until then readers see the old content; an exception inside the ``with``
  block or a crash leaves the old content (for ``x``: no file).

Reads keep the last chunk fetched: small sequential reads cost one query per chunk, not one per
call, while a random read fetches only the bytes asked for (``substr``).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import Any

from vfs_orm.backends import DB_ERRORS, translate
from vfs_orm.content import Damage
from vfs_orm.content.store import ContentStore, Source
from vfs_orm.errors import ClosedError, FileTooLargeError, StaleHandleError, VFSError
from vfs_orm.rows import ChunkRow
from vfs_orm.stored import MAX_FILE_SIZE, buffer

#: Staged data kept in memory before it is written to the staging inode.
STAGE_LIMIT = 4 * 1024 * 1024
#: What a random read returns at most (a short read: the buffered layer asks for its whole
#: buffer, but a random 4 KiB read should not pay for 8). Reads that continue sequentially
#: double it until a whole chunk is cheaper, like the kernel's readahead window.
RANDOM_READ = 4096


class ChunkedFile(io.RawIOBase):
    """Raw binary stream over one inode's content, read and written through a
    ``ContentStore``. A staged (``w``/``x``) handle's content is put in place at close by
    ``place(handle)``, the namespace's business (the handle knows no names but its own)."""

    def __init__(self, store: ContentStore, path: str, *, inode_id: int | None, size: int,
                 chunk_size: int, readable: bool, writable: bool, append: bool = False,
                 staged: bool = False, exclusive: bool = False, ctime_ns: int | None = None,
                 generation: int = 0, source: Source | None = None,
                 place: Callable[[ChunkedFile], None] | None = None) -> None:
        super().__init__()
        self._store = store
        self._uow = store.uow
        self._place = place
        self.name = path
        # None only while a staged (w, x) handle's content is all in memory: every read,
        # and every write that reaches the database, runs with an inode (the type: ignore
        # comments on the repository calls below say so to mypy).
        self._id = inode_id
        # Whose chunks BLOB reads address: the file's own, or those it shares (see
        # ``InodeSize.key``; set by ``_revalidate`` before any BLOB read).
        self._key = inode_id
        # Where the chunks the key lacks are read from (format 0014), or None.
        self._base: int | None = None
        self._size = size
        self._cs = chunk_size
        self._readable = readable
        self._writable = writable
        self._append = append
        self._staged = staged
        self._exclusive = exclusive
        self._ctime_ns = ctime_ns
        self._pos = 0
        self._gen = generation
        self._epoch = store.uow.epoch
        # Where reads go: the top layer's repository and this thread's connection, or those
        # of the underlay the file was resolved in. Writes always go to the top layer.
        self._repo, self._raw = source if source is not None else store.source()
        self._pending: dict[int, bytearray] = {}
        self._pending_bytes = 0
        self._cache_idx = -1
        self._cache: bytes = b""
        self._next = 0  # where a sequential read would continue
        self._token: tuple[int, int] | None = None  # (data_version, uow.writes) when last checked
        self._window = 0  # bytes the next sequential BLOB read may take; 0: use whole chunks
        self._failed = False
        self.mode = ""
        # A staged handle's SHA-256, computed while the content streams in: None once a
        # write lands anywhere but at the end of what was hashed (the digest is then computed
        # later, by ``VFS.digest`` or ``check(deep=True)``).
        self._hash: Any = hashlib.sha256() if staged else None
        self._hashed = 0

    def prime(self, first_chunk: bytes | None) -> None:
        """Start with chunk 0 as fetched by ``open`` (no second query for small files)."""
        self._cache_idx, self._cache, self._cache_size = 0, first_chunk or b"", self._size

    # -- what the namespace reads and sets when a staged (w, x) handle closes ---------------
    @property
    def inode_id(self) -> int | None:
        """The handle's inode: None while a staged handle's content is all in memory."""
        return self._id

    @inode_id.setter
    def inode_id(self, value: int | None) -> None:
        self._id = value

    @property
    def size(self) -> int:
        return self._size

    @property
    def digest(self) -> bytes | None:
        """SHA-256 of a staged handle's whole content, if it was written front to back."""
        if self._hash is not None and self._hashed == self._size:
            return bytes(self._hash.digest())
        return None

    @property
    def exclusive(self) -> bool:
        return self._exclusive

    @property
    def ctime_ns(self) -> int | None:
        """The ctime of the file a ``w`` handle replaces, as it was at open."""
        return self._ctime_ns

    @property
    def staged(self) -> bool:
        return self._staged

    @staged.setter
    def staged(self, value: bool) -> None:
        self._staged = value

    def drop_pending(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0

    # -- io.RawIOBase protocol --------------------------------------------------------------
    # The buffered layer asks seekable() on every seek: only the closed check io requires
    # here (0.07 against 0.25 us); seek, read and write check the VFS and the handle too.
    def readable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        return self._readable

    def writable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        return self._writable

    def seekable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._current_size() + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, b: Any) -> int:
        self._check_open()
        if not self._readable:
            raise io.UnsupportedOperation("read")
        view = memoryview(b).cast("B")
        n = len(view)
        if n == 0:
            return 0
        if self._pending:
            self._flush_pending()
        if self._id is None:  # staged and nothing written yet: an empty file
            return 0
        try:
            if n < 2 * self._cs:
                got = self._read_at(self._pos, view)
            elif self._writable or self._uow.shared:
                got = self._read_big(self._pos, view)
            else:
                # A stream of big reads: chunk by chunk straight from the BLOBs, which is
                # faster than one query returning the chunks (see _read_at).
                got, pos = 0, self._pos
                while got < n:
                    k = self._read_at(pos + got, view[got:])
                    if not k:
                        break
                    got += k
        except DB_ERRORS as exc:
            raise translate(exc, self.name) from exc
        except Damage as exc:
            raise exc.in_file(self.name, self._cs) from None
        self._pos += got
        return got

    def readall(self) -> bytes:
        self._check_open()
        if not self._readable:
            raise io.UnsupportedOperation("read")
        if self._pending:
            self._flush_pending()
        if self._id is None:
            return b""
        pos, cs = self._pos, self._cs
        if self._cache_idx == 0 and self._cache_size <= cs and pos == self._next:
            # The whole file is the chunk fetched at open (or by the last read).
            size = self._cache_size
            data = self._cache[:size]
            if len(data) < size:
                data = data + bytes(size - len(data))
            self._pos = self._next = max(pos, size)
            return bytes(data[pos:])
        first = pos // cs
        try:
            rows = self._span_rows(first, 1 << 62)
        except DB_ERRORS as exc:
            raise translate(exc, self.name) from exc
        except Damage as exc:
            raise exc.in_file(self.name, self._cs) from None
        size = self._size
        self._pos = self._next = max(pos, size)
        if pos >= size:
            return b""
        out = buffer(size - pos, self.name)
        _scatter(memoryview(out), rows, pos, size, cs)
        return bytes(out)

    def _span_rows(self, first: int, stop: int) -> list[ChunkRow]:
        """(size, generation, idx, data) rows of chunks first..stop-1, in one statement; the
        size is kept, a vanished or replaced file raises StaleHandleError."""
        uow = self._uow
        if uow.shared:
            with uow.lock:
                rows = self._repo.read_span(self._raw(), self._id, first, stop)  # type: ignore[arg-type]
        else:
            rows = self._repo.read_span(self._raw(), self._id, first, stop)  # type: ignore[arg-type]
        if not rows or rows[0].generation != self._gen:
            raise self._stale()
        self._size = rows[0].size
        return rows

    def write(self, b: Any) -> int:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("write")
        data = bytes(b)
        if not data:
            return 0
        end = (self._current_size() if self._append and not self._staged else self._pos) \
            + len(data)
        if end >= MAX_FILE_SIZE:
            raise FileTooLargeError.for_path(self.name, _TOO_LARGE)
        try:
            if self._staged:
                if self._hash is not None:
                    if self._pos == self._hashed:
                        self._hash.update(data)
                        self._hashed += len(data)
                    else:
                        self._hash = None
                self._stage(self._pos, data)
                self._pos += len(data)
            else:
                self._pos = self._write_in_place(data)
        except DB_ERRORS as exc:
            raise translate(exc, self.name) from exc
        except Damage as exc:
            raise exc.in_file(self.name, self._cs) from None
        self._cache_idx = -1
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("truncate")
        size = self._pos if size is None else size
        if size < 0:
            raise ValueError(f"negative size value {size}")
        if size >= MAX_FILE_SIZE:
            raise FileTooLargeError.for_path(self.name, _TOO_LARGE)
        self._cache_idx = -1
        cs = self._cs
        keep = (size + cs - 1) // cs
        try:
            if self._staged:
                if size != self._hashed:
                    self._hash = None
                for idx in [i for i in self._pending if i >= keep]:
                    self._pending_bytes -= len(self._pending.pop(idx))
                if keep and (keep - 1) in self._pending:
                    buf = self._pending[keep - 1]
                    del buf[size - (keep - 1) * cs:]
                if self._id is not None:
                    self._store.truncate_staging(self._id, cs, size)
                self._size = size
            else:
                if not self._store.truncate_at(self._id, self._gen, cs, size):  # type: ignore[arg-type]
                    raise self._stale()
                self._size = size
        except DB_ERRORS as exc:
            raise translate(exc, self.name) from exc
        except Damage as exc:
            raise exc.in_file(self.name, self._cs) from None
        return size

    def flush(self) -> None:
        # Staged data is not visible to anyone before close; writing it to the staging inode
        # early would only cost a transaction. In-place writes are already committed.
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._staged and self._writable and not self._failed:
                try:
                    place = self._place
                    assert place is not None  # every staged handle is given one
                    self._uow.retrying(lambda: place(self), self._staging_state())
                except DB_ERRORS as exc:
                    raise translate(exc, self.name) from exc
        finally:
            if self._staged and self._failed:
                self._discard_staged()
            super().close()

    def _discard_staged(self) -> None:
        self.drop_pending()
        if self._id is not None:
            try:
                self._store.discard(self._id)
            except VFSError:
                pass  # reclaimed on a later open (the staging row's owner is gone by then)
            self._id = None

    def abandon(self) -> None:
        """Close without committing staged data (an exception inside ``with``)."""
        self._failed = True
        self.close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self._staged:
            self.abandon()
        else:
            self.close()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno: a vfs_orm file has no OS file descriptor")

    def isatty(self) -> bool:
        self._check_open()
        return False

    # -- internals ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        uow = self._uow
        if uow.closed:
            raise ClosedError.for_path(self.name, "the VFS holding this file is closed")
        if uow.epoch != self._epoch:
            raise self._stale()

    def _stale(self) -> VFSError:
        return StaleHandleError.for_path(
            self.name, "the file was removed or replaced while this handle was open")

    def _current_size(self) -> int:
        if self._staged or self._id is None:
            return self._size
        with self._uow.read_lock:
            row = self._repo.inode_size(self._raw(), self._id)
        if row is None or row.generation != self._gen:
            raise self._stale()
        self._size = row.size
        return self._size

    def _read_big(self, pos: int, view: memoryview) -> int:
        """A read of two chunks or more: one statement, bytes copied once into ``view``."""
        cs = self._cs
        rows = self._span_rows(pos // cs, (pos + len(view) + cs - 1) // cs)
        size = self._size
        if pos >= size:
            return 0
        got = min(len(view), size - pos)
        _scatter(view[:got], rows, pos, pos + got, cs)
        self._next = pos + got
        return got

    def _read_at(self, pos: int, view: memoryview) -> int:
        """Read from one chunk at most (a short read is allowed for raw streams).

        Read-only handles on their own connection read the chunk's BLOB, after one small
        query whenever something may have changed (is the file still the one opened?);
        shared connections, writable handles and holes go through ``_query_at``."""
        cs = self._cs
        idx, off = divmod(pos, cs)
        want = min(len(view), cs - off)
        if idx == self._cache_idx and pos == self._next:
            size, data, base = self._cache_size, self._cache, off
            self._window = 0
        elif not self._writable and self._repo.blob_reads and not (uow := self._uow).shared:
            # Incremental BLOB I/O on the chunk's rowid, no query (ENGINEERING-NOTES §5: ~2x a
            # substr() SELECT, and 4-5x a SELECT of a whole 64 KiB chunk, which walks its
            # overflow pages one by one); valid while nothing changed since the handle last
            # checked size and generation (one data_version probe). A random read takes only
            # a window of bytes, not the whole buffer asked for, doubling while the reads
            # continue; a sequential stream takes what it asks for, straight from the blob.
            token = self._token
            if token is None or token[1] != uow.writes:
                token = self._revalidate()
            if token is not None:
                size = self._size
                if pos >= size:
                    return 0
                # 0: a stream, no window (the whole read asked for).
                window = RANDOM_READ if pos != self._next else self._window
                want = min(want, size - pos, window) if window else min(want, size - pos)
                # A stream at a chunk's start that asks for less than the chunk: take the
                # whole chunk and keep it (one BLOB read and one probe per chunk).
                whole = not window and off == 0 and want < min(cs, size - pos)
                length = min(cs, size - pos) if whole else want
                blob = self._repo.read_blob(self._raw(), self._key, idx, off,  # type: ignore[arg-type]
                                            length, token[0])
                if blob is None and self._base is not None:  # a chunk its key lacks
                    blob = self._repo.read_blob(self._raw(), self._base, idx, off, length,
                                                token[0])
                if blob is not None and whole:
                    self._cache_idx, self._cache, self._cache_size = idx, blob, size
                    self._window = 0
                    return self._deliver(view, pos, want, size, blob, 0)
                if blob is not None:
                    if window:
                        self._window = window * 2 if window * 2 < cs else 0
                    got = len(blob)
                    view[:got] = blob
                    if got < want:
                        view[got:want] = bytes(want - got)
                    self._next = pos + want
                    return want
            # A hole, the file replaced or gone, or another connection's commit in between:
            # the query path tells which.
            self._token = None
            return self._query_at(pos, view)
        else:
            return self._query_at(pos, view)
        return self._deliver(view, pos, want, size, data, base)

    def _deliver(self, view: memoryview, pos: int, want: int, size: int, data: bytes,
                 base: int) -> int:
        """Copy up to ``want`` bytes of ``data[base:]`` (the bytes at ``pos``) into ``view``,
        zeros past them up to the file size (a sparse hole or a short tail chunk)."""
        self._size = size
        if pos >= size:
            return 0
        want = min(want, size - pos)
        got = max(0, min(want, len(data) - base))
        if got:
            # A memoryview slice: the bytes are copied once, straight into the caller's buffer.
            view[:got] = memoryview(data)[base:base + got] if base or got < len(data) else data
        if got < want:  # a sparse hole or a short tail chunk: zeros up to the file size
            view[got:want] = bytes(want - got)
        self._next = pos + want
        return want

    def _revalidate(self) -> tuple[int, int] | None:
        """One small query: is the file still the one this handle opened? Returns the new
        validity token (None when it is not: the query path raises the right error)."""
        uow = self._uow
        token = self._validity()
        row = self._repo.inode_size(self._raw(), self._id)  # type: ignore[arg-type]
        if row is None or row.generation != self._gen or row.inline:
            return None  # gone, replaced, or inline bytes (the query path reads those)
        self._size = row.size
        self._key = row.key
        self._base = row.base
        self._token = token
        if token[1] != uow.writes:
            return None
        return token

    def _query_at(self, pos: int, view: memoryview) -> int:
        """``_read_at`` by a query (shared connections, writable handles, holes)."""
        cs = self._cs
        idx, off = divmod(pos, cs)
        want = min(len(view), cs - off)
        uow = self._uow
        sequential = pos == self._next
        if not sequential:
            # A random read takes a window, as a BLOB read does (a BufferedReader asks for
            # its whole buffer): the blocks covering it are fetched and checked, not half a
            # chunk. A read that goes on from there is sequential: the rest of the chunk.
            want = min(want, RANDOM_READ)
        self._window = 0
        if uow.shared:
            uow.lock.acquire()
        try:
            # The version BEFORE the query: a commit in between makes the token old (a
            # needless re-check later), never newer than the row it vouches for.
            token = self._validity()
            if sequential:
                row = self._repo.read_chunk(self._raw(), self._id, idx)  # type: ignore[arg-type]
            else:
                row = self._repo.read_part(self._raw(), self._id, idx, off, want)  # type: ignore[arg-type]
        finally:
            if uow.shared:
                uow.lock.release()
        if row is None or row.generation != self._gen:
            raise self._stale()
        size, data = row.size, row.data or b""
        # Not kept for BLOB reads: they must first learn again whose chunks the file reads
        # (another connection's copy on write may have moved them; ``_revalidate``).
        self._token = None if self._repo.blob_reads else token
        if sequential:
            self._cache_idx, self._cache, self._cache_size = idx, data, size
            base = off
        else:
            base = 0  # substr() already starts at ``off``
        return self._deliver(view, pos, want, size, data, base)

    def _validity(self) -> tuple[int, int]:
        uow = self._uow
        return self._repo.data_version(self._raw()), uow.writes

    def _stage(self, pos: int, data: bytes) -> None:
        cs = self._cs
        end = pos + len(data)
        i = 0
        while pos < end:
            idx, off = divmod(pos, cs)
            n = min(cs - off, end - pos)
            piece = data[i:i + n]
            buf = self._pending.get(idx)
            if buf is None:
                if off == 0 and n == cs:
                    buf = bytearray(piece)
                else:
                    old = self._stored_chunk(idx)
                    buf = bytearray(old)
                    if len(buf) < off:
                        buf.extend(bytes(off - len(buf)))
                    buf[off:off + n] = piece
                self._pending[idx] = buf
                self._pending_bytes += len(buf)
            else:
                before = len(buf)
                if len(buf) < off:
                    buf.extend(bytes(off - len(buf)))
                buf[off:off + n] = piece
                self._pending_bytes += len(buf) - before
            pos += n
            i += n
        self._size = max(self._size, end)
        if self._pending_bytes >= STAGE_LIMIT:
            self._flush_pending()

    def _stored_chunk(self, idx: int) -> bytes:
        return b"" if self._id is None else self._store.chunk(self._id, idx)

    def _flush_pending(self) -> None:
        """Write staged chunks to the staging inode (creating it on first use)."""
        if self._pending:
            self._uow.retrying(self._write_staged, self._staging_state())

    def _write_staged(self) -> None:
        self._id = self._store.flush_staged(self._id, self._cs, self._pending, self._size)
        self.drop_pending()

    def _staging_state(self) -> Callable[[], None]:
        """What puts this handle's staging back as it is now: a transaction that failed
        (and rolled back) may have dropped the pending chunks it was writing, or named a
        staging inode it created. The buffers themselves are never changed by a write."""
        ident, pending, count = self._id, dict(self._pending), self._pending_bytes

        def restore() -> None:
            self._id, self._pending, self._pending_bytes = ident, dict(pending), count
        return restore

    def staged_content(self) -> bytes:
        """The whole content of a staged file still held in memory (and forget it)."""
        data = bytearray(self._size)
        cs = self._cs
        for idx, buf in self._pending.items():
            data[idx * cs: idx * cs + len(buf)] = buf
        self._pending.clear()
        self._pending_bytes = 0
        return bytes(data)

    def write_pending(self, raw: Any, inode_id: int) -> None:
        """Used by ``Tree.commit_staged`` inside its transaction, and by ``_flush_pending``."""
        if self._pending:
            self._store.write_chunks(raw, inode_id, self._pending)
            self.drop_pending()

    def _write_in_place(self, data: bytes) -> int:
        got = self._store.write_at(self._id, self._gen, self._cs,  # type: ignore[arg-type]
                                   None if self._append else self._pos, data)
        if got is None:
            raise self._stale()
        end, self._size = got
        return end


_TOO_LARGE = f"files are limited to {MAX_FILE_SIZE} bytes (1 TiB)"


def _scatter(view: memoryview, rows: list[ChunkRow], start: int, end: int,
             cs: int) -> None:
    """Copy the bytes [start, end) of a file out of its chunk rows into ``view`` (which is
    zero-filled where chunks are missing: sparse holes)."""
    filled = 0
    for row in rows:
        idx, data = row.idx, row.data
        if data is None or idx is None:
            continue
        c0 = idx * cs
        lo, hi = max(start, c0), min(end, c0 + min(len(data), cs))
        if lo >= hi:
            continue
        if lo - start > filled:
            view[filled:lo - start] = bytes(lo - start - filled)
        view[lo - start:hi - start] = memoryview(data)[lo - c0:hi - c0]
        filled = hi - start
    if filled < end - start:
        view[filled:end - start] = bytes(end - start - filled)


# -- the io objects ``VFS.open`` returns ------------------------------------------------------
# Real stdlib buffered/text objects; the subclasses only change ``__exit__`` so that an
# exception inside ``with vfs.open(p, "w")`` discards the staged content instead of committing
# it (a plain ``close()`` commits, as with the stdlib's files).

def _abandon(raw: Any, exc_type: Any) -> None:
    if exc_type is not None and isinstance(raw, ChunkedFile) and raw._staged:
        raw._failed = True


class BufferedReader(io.BufferedReader):
    pass


class BufferedWriter(io.BufferedWriter):
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        _abandon(self.raw, exc_type)
        self.close()


class BufferedRandom(io.BufferedRandom):
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        _abandon(self.raw, exc_type)
        self.close()


class TextIOWrapper(io.TextIOWrapper):
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        raw = getattr(self.buffer, "raw", self.buffer)
        _abandon(raw, exc_type)
        self.close()


def wrap(raw: ChunkedFile, mode: str, buffering: int, encoding: str | None, errors: str | None,
         newline: str | None) -> Any:
    """Build the object ``open()`` returns, following ``io.open``'s rules."""
    binary = "b" in mode
    if binary and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    line_buffering = False
    if buffering == 1:
        if binary:
            buffering = -1  # io.open warns and ignores line buffering in binary mode
        else:
            line_buffering = True
            buffering = -1
    if buffering == 0:
        if not binary:
            raise ValueError("can't have unbuffered text I/O")
        raw.mode = mode
        return raw
    if buffering < 0:
        # A whole chunk: a stream of small reads costs one BLOB read per chunk, and each
        # flush of a writer writes whole chunks. Random reads stay small all the same: the
        # raw stream answers them with a short read of a 4 KiB window.
        buffering = min(raw._cs, 1 << 20)
        if not raw._writable:
            # Half a chunk: a read of a whole chunk or more goes straight into the caller's
            # buffer (BufferedReader copies through its own only reads up to its size).
            buffering = max(buffering // 2, io.DEFAULT_BUFFER_SIZE)
    buffer: Any
    if raw._readable and raw._writable:
        buffer = BufferedRandom(raw, buffering)
    elif raw._writable:
        buffer = BufferedWriter(raw, buffering)
    else:
        buffer = BufferedReader(raw, buffering)
    raw.mode = mode.replace("t", "")
    if binary:
        return buffer
    text = TextIOWrapper(buffer, encoding=encoding or "utf-8", errors=errors, newline=newline,
                         line_buffering=line_buffering)
    text.mode = mode  # type: ignore[misc]
    return text


class IteratorReader(io.RawIOBase):
    """A non-seekable readable raw stream over an iterator of bytes (for upload APIs)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        super().__init__()
        self._blocks = blocks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        while not self._rest:
            try:
                self._rest = next(self._blocks)
            except StopIteration:
                return 0
        n = min(len(view), len(self._rest))
        view[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n

    def close(self) -> None:
        close = getattr(self._blocks, "close", None)
        if close is not None:
            close()
        super().close()
