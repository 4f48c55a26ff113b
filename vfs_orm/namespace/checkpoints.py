"""Checkpoints (format 0005): named point-in-time copies of a tree's metadata.

A checkpoint is a copy of the top database's entries (every row below the root: files,
directories, whiteouts over underlays) into ``vfs_checkpoint_inodes``, made by ONE statement
inside a write transaction, so it is one committed state of the tree. File content is not
copied: a chunked file's entry reads the chunks of the live inode that holds them and counts in
its ``refs``, exactly as a copy made by ``copy()`` does (format 0004). Everything the live tree
already does for shared content then protects the checkpoint: a write in place copies first
(``detach``, which also moves checkpoint entries to the copy it leaves behind), a file deleted
or replaced whole stays as a hidden holder while a checkpoint reads it. Small files' inline
bytes (at most ``INLINE_MAX``) are copied as stored.

Dropping a checkpoint gives its references back and deletes the hidden holders nobody reads any
more: exactly what only it held. Restoring one deletes the live tree (releasing what it shared)
and copies the entries back as new rows reading the same holders, in one write transaction:
all or nothing. Every row read back is checked before anything is changed (a damaged
checkpoint is a ``CorruptionError``, and the live tree stays as it was).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

from vfs_orm import paths, stored
from vfs_orm.backends import CHUNK_SPAN, InodeRepository
from vfs_orm.content import INLINE, Damage
from vfs_orm.content.store import ContentStore
from vfs_orm.errors import AlreadyExistsError, ContractError, CorruptionError, NotFoundError
from vfs_orm.integrity import HOLE_ALLOWANCE, WINDOW, HolesTooLarge, file_digest
from vfs_orm.rows import ChunkRow
from vfs_orm.types import CheckpointInfo
from vfs_orm.uow import UnitOfWork

#: The longest checkpoint name.
MAX_NAME = 255
_FILE, _DIR, _WHITEOUT = stored.FILE, stored.DIRECTORY, stored.WHITEOUT
#: The root's bounds: every entry of the tree lies in them.
_LO, _HI = paths.subtree_bounds(paths.ROOT)
#: An inode id no row has (ids start at 1): ``delete_tree`` below the root, keeping it.
_NO_INODE = 0


class Entry(NamedTuple):
    """One checked entry of a checkpoint."""

    id: int
    parent: str
    name: str
    kind: int
    mode: int
    size: int
    chunk_size: int
    ctime_ns: int
    mtime_ns: int
    content: int | None
    uid: int | None
    gid: int | None
    digest: bytes | None
    codec: int
    sums: bytes | None
    data: bytes | None
    #: Where chunks ``content`` lacks are read from (format 0014), or None.
    base: int | None = None

    @property
    def path(self) -> str:
        return paths.join(self.parent, self.name)


class _Holder(NamedTuple):
    """A row whose content checkpoint entries read (see ``CheckpointStatements.holders``)."""

    id: int
    parent: str | None
    kind: int
    content: int | None
    chunk_size: int
    refs: int
    base: int | None


class _Header(NamedTuple):
    id: int
    name: str
    created_ns: int
    auto: bool
    files: int


def check_name(name: object) -> str:
    """A checkpoint name as given: non-empty text of at most ``MAX_NAME`` characters, no
    control characters."""
    if not isinstance(name, str):
        raise TypeError(f"a checkpoint name must be str, not {type(name).__name__}")
    if not name or len(name) > MAX_NAME or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ContractError.for_path(None, f"invalid checkpoint name {name!r:.60}: 1 to "
                                           f"{MAX_NAME} characters, no control characters")
    return name


def _is_dir_path(parent: object) -> bool:
    """A stored parent is a normalised absolute path."""
    if not isinstance(parent, str) or not parent.startswith("/"):
        return False
    try:
        return paths.normalize(parent) == parent
    except (TypeError, ValueError):
        return False


def _header(row: Any, where: str | None) -> _Header:
    ident, name, created, auto, files = row
    if type(ident) is not int or type(name) is not str or type(created) is not int \
            or type(auto) is not int or type(files) is not int:
        raise stored.damaged(f"checkpoint row {tuple(row)!r:.80}", where)
    return _Header(ident, name, created, bool(auto), files)


def _entry(row: Any, holders: dict[Any, _Holder], where: str | None) -> Entry:
    """A checkpoint entry whose values are sound and whose content is readable; a damaged one
    is a CorruptionError (naming the checkpoint)."""
    (ident, parent, name, kind, mode, size, cs, ctime, mtime, content, _fparent, _fname, uid,
     gid, base, digest, codec, sums, data) = row
    path = stored.path_of(parent, name)
    problem = stored.inode_problem((ident, kind, mode, size, cs, ctime, mtime, 0, uid, gid))
    if problem is None and (path is None or stored.bad_name(name) or not _is_dir_path(parent)):
        problem = f"entry {parent!r:.40}/{name!r:.40}"
    if problem is None and ((data is not None and type(data) is not bytes) or
                            (digest is not None and type(digest) is not bytes) or
                            (sums is not None and type(sums) is not bytes) or
                            type(codec) is not int):
        problem = f"content columns of {path}"
    if problem is None and content is not None:
        holder = holders.get(content) if type(content) is int else None
        # The holder's own chunks, else its base's: those of an overlay (a hidden row that
        # reads no other key), none for a live file that reads another key by now (its own
        # chunks froze when it did; format 0014).
        if kind != _FILE or data is not None or holder is None or holder.kind != _FILE \
                or holder.chunk_size != cs \
                or base != (holder.base if holder.content is None else None):
            problem = f"{path} shares content {content!r:.20} it cannot read"
    if problem is None and content is None and base is not None:
        problem = f"{path} reads chunks of {base!r:.20} and no content"
    if problem is None and kind == _FILE and content is None and data is None and size:
        problem = f"{path}: {size} bytes and no content"
    if problem is not None:
        raise stored.damaged(f"checkpoint entry: {problem}", where)
    return Entry(ident, parent, name, kind, mode, size, cs, ctime, mtime, content, uid, gid,
                 digest, codec, sums, data, base)


class Checkpoints:
    """The checkpoints of one tree (its top database)."""

    def __init__(self, uow: UnitOfWork, repo: InodeRepository, content: ContentStore) -> None:
        #: The tree's content (a restore deletes the live tree through it: shared content
        #: is released first).
        self.store = content
        self.uow = uow
        self.repo = repo

    @property
    def st(self) -> Any:
        return self.repo.checkpoints

    # -- reading --------------------------------------------------------------------------
    def _find(self, raw: Any, name: str) -> _Header:
        row = raw.execute(self.st.by_name.sql, (name,)).fetchone()
        if row is None:
            raise NotFoundError.for_path(name, f"no such checkpoint: {name!r}")
        return _header(row, self.uow.where)

    def _headers(self, raw: Any) -> list[_Header]:
        return [_header(r, self.uow.where) for r in raw.execute(self.st.listing.sql, ()).fetchall()]

    def _alone(self, raw: Any, ck: int) -> int:
        """The bytes dropping checkpoint ``ck`` would free: what ``_drop`` and the content
        store's ``released`` free, counted without freeing it."""
        st = self.st
        sizes = [self._one(raw, st.alone_chunks, ck=ck),
                 self._one(raw, st.overridden_chunks, ck=ck),
                 self._one(raw, st.inline_bytes, ck=ck)]
        # One level further: an overlay that goes leaves its base a reader fewer.
        for base, going in raw.execute(st.bases_of_going.sql,
                                       st.args(st.bases_of_going, ck=ck)).fetchall():
            row = raw.execute(st.base_state.sql, st.args(st.base_state, ck=ck, id=base)
                              ).fetchone()
            if row is None:
                continue
            refs, hidden, content, readers = row
            if any(type(v) is not int for v in (base, refs, readers, going)):
                raise stored.damaged(f"references {tuple(row)!r:.60} of {base!r:.20}",
                                     self.uow.where)
            left = refs - readers - going
            lo, hi = base * CHUNK_SPAN, (base + 1) * CHUNK_SPAN
            if left == 0 and (hidden or content is not None):
                sizes.append(self._one(raw, st.key_bytes, lo=lo, hi=hi))
            elif left == 1:
                staying = raw.execute(st.staying_overlays.sql, st.args(
                    st.staying_overlays, ck=ck, id=base)).fetchall()
                if len(staying) == 1 and (hidden or content == staying[0][0]):
                    sizes.append(self._one(raw, st.key_bytes_under, lo=lo, hi=hi,
                                           moved=(staying[0][0] - base) * CHUNK_SPAN))
        if any(type(n) is not int for n in sizes):
            raise stored.damaged(f"stored sizes {sizes!r:.60}", self.uow.where)
        return sum(sizes)

    def _one(self, raw: Any, stmt: Any, **kw: Any) -> Any:
        """The one value ``stmt`` selects, its parameters by name."""
        return raw.execute(stmt.sql, self.st.args(stmt, **kw)).fetchone()[0]

    def _entries(self, raw: Any, ck: int) -> list[Entry]:
        st = self.st
        holders = {h.id: h for h in map(_Holder._make, raw.execute(
            st.holders.sql, st.args(st.holders, ck=ck)).fetchall())}
        entries = [_entry(r, holders, self.uow.where)
                   for r in raw.execute(st.entries.sql, (ck,)).fetchall()]
        # A holder must count at least this checkpoint's readers: with fewer, a delete in the
        # tree would have dropped chunks the checkpoint reads (and a restore would).
        readers = Counter(e.content for e in entries if e.content is not None)
        for holder, n in readers.items():
            refs = holders[holder].refs
            if type(refs) is not int or refs < n:
                raise stored.damaged(f"reference count {refs!r:.20} of shared content "
                                     f"{holder}, which {n} checkpoint entries read",
                                     self.uow.where)
        return entries

    def infos(self) -> list[CheckpointInfo]:
        with self.uow.snapshot(), self.uow.read_lock:
            raw = self.uow.raw()
            return [CheckpointInfo(h.name, h.created_ns, h.files, self._alone(raw, h.id), h.auto)
                    for h in self._headers(raw)]

    def entries(self, name: str) -> list[Entry]:
        """The checked entries of a checkpoint, sorted by (parent, name)."""
        with self.uow.snapshot(), self.uow.read_lock:
            raw = self.uow.raw()
            return self._entries(raw, self._find(raw, name).id)

    def checked(self, name: str) -> int:
        """The id of checkpoint ``name``, once every one of its entries has been read and
        checked (what reading it in place trusts: ``VFS.open_checkpoint``)."""
        with self.uow.snapshot(), self.uow.read_lock:
            raw = self.uow.raw()
            ck = self._find(raw, name).id
            self._entries(raw, ck)
            return ck

    def top_files(self) -> dict[str, bytes | None]:
        """The tree's own files (its top database: what a checkpoint would hold) and their
        stored digests (None: unknown)."""
        with self.uow.read_lock:
            rows = self.repo.files(self.uow.raw())
        out: dict[str, bytes | None] = {}
        for _ident, parent, name, _size, _cs, digest, _mode in rows:
            path = stored.path_of(parent, name)
            if path is None or (digest is not None and type(digest) is not bytes):
                raise stored.damaged(f"file row {parent!r:.40}/{name!r:.40}", self.uow.where)
            out[path] = digest
        return out

    def content(self, entry: Entry) -> Iterator[bytes]:
        """The bytes of a file entry, a window of chunks at a time (checked as every read
        is)."""
        if entry.data is not None:
            try:
                yield self.repo.content.decode(entry.data, entry.codec, entry.sums,
                                               entry.chunk_size, INLINE)
            except Damage as exc:
                raise exc.in_file(entry.path, entry.chunk_size) from None
            return
        if entry.content is None:
            return
        yield from self._chunks(entry)

    def _chunks(self, entry: Entry) -> Iterator[bytes]:
        cs, size, at = entry.chunk_size, entry.size, 0
        assert entry.content is not None
        for first in range(0, max(1, -(-size // cs)), WINDOW):
            with self.uow.read_lock:
                try:
                    rows = self.repo.read_key(self.uow.raw(), entry.content, entry.base,
                                              first, first + WINDOW)
                except Damage as exc:
                    raise exc.in_file(entry.path, cs) from None
            for row in rows:
                if row.idx is None or row.data is None:
                    continue
                start = row.idx * cs
                if start < at or start >= size:
                    continue
                if start > at:
                    yield bytes(start - at)
                piece = row.data[:min(cs, size - start)]
                yield piece
                at = start + len(piece)
        if at < size:
            yield bytes(size - at)

    def digest(self, entry: Entry) -> bytes:
        """A file entry's SHA-256: the one stored with it, or computed from its content."""
        if entry.digest is not None:
            return entry.digest
        if entry.content is None:
            return hashlib.sha256(b"".join(self.content(entry))).digest()
        holder = entry.content

        def span(first: int, stop: int) -> list[ChunkRow]:
            with self.uow.read_lock:
                try:
                    return self.repo.read_key(self.uow.raw(), holder, entry.base, first,
                                              stop)
                except Damage as exc:
                    raise exc.in_file(entry.path, entry.chunk_size) from None

        return file_digest(span, entry.size, entry.chunk_size)

    def verify(self, reader: InodeRepository) -> tuple[list[str], list[str], int]:
        """For the deep check: read back every file of every checkpoint, its bytes checked
        as every read is and its SHA-256 compared with the one recorded. Content some live
        file reads is verified with that file; the content only checkpoints hold (hidden
        holders, inline bytes of entries), here, each holder once, read through ``reader``
        (statements whose content rules verify). Bounded as the live check is
        (``HOLE_ALLOWANCE``). Returns (problems, warnings, entries verified)."""
        problems: list[str] = []
        warnings: list[str] = []
        verified = 0
        seen: set[int] = set()
        with self.uow.read_lock:
            raw = self.uow.raw()
            headers = self._headers(raw)
            live = {ident for ident, *_ in self.repo.files(raw)} if headers else set()
            live -= self.repo.reading_others(raw) if live else set()
        for header in headers:
            try:
                with self.uow.read_lock:
                    entries = self._entries(self.uow.raw(), header.id)
            except CorruptionError as exc:
                problems.append(f"checkpoint {header.name!r}: {exc.strerror}")
                continue
            for entry in entries:
                holder = entry.content
                if entry.kind != _FILE or holder in live or holder in seen:
                    continue
                where = f"checkpoint {header.name!r}: {entry.path}"
                try:
                    got = self._verified_digest(entry, reader)
                except HolesTooLarge as exc:
                    warnings.append(f"{where}: digest not verified: more than "
                                    f"{exc.args[0]:,} bytes of holes")
                    continue
                except CorruptionError as exc:
                    problems.append(f"{where}: {exc.strerror}")
                    continue
                if holder is not None:
                    seen.add(holder)
                verified += 1
                if entry.digest is not None and entry.digest != got:
                    problems.append(f"{where}: content does not match its SHA-256 digest")
        return problems, warnings, verified

    def _verified_digest(self, entry: Entry, reader: InodeRepository) -> bytes:
        holder, cs = entry.content, entry.chunk_size
        if entry.data is not None or holder is None:
            try:
                plain = reader.content.decode(entry.data or b"", entry.codec,
                                              entry.sums if entry.data is not None else b"",
                                              cs, INLINE)
            except Damage as exc:
                raise exc.in_file(entry.path, cs) from None
            return hashlib.sha256(plain).digest()

        def span(first: int, stop: int) -> list[ChunkRow]:
            with self.uow.read_lock:
                try:
                    return reader.read_key(self.uow.raw(), holder, entry.base, first, stop,
                                           cs)
                except Damage as exc:
                    raise exc.in_file(entry.path, cs) from None

        return file_digest(span, entry.size, cs, hole_budget=HOLE_ALLOWANCE)

    # -- writing --------------------------------------------------------------------------
    def create(self, name: str | None, keep: int | None, *, auto: bool | None = None) -> str:
        """Take a checkpoint (``auto``: mark it automatic whatever its name, as a copy of
        another tree's automatic one is)."""
        if name is not None:
            check_name(name)
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool)
                                 or keep < 1):
            raise ContractError.for_path(None, "keep must be a positive int")
        st = self.st
        if auto is None:
            auto = name is None
        with self.uow.write(savepoint=True) as raw:
            if name is None:
                n = len(self._headers(raw)) + 1
                while raw.execute(st.by_name.sql, (f"auto-{n}",)).fetchone() is not None:
                    n += 1
                name = f"auto-{n}"
            elif raw.execute(st.by_name.sql, (name,)).fetchone() is not None:
                raise AlreadyExistsError.for_path(name, f"a checkpoint named {name!r} exists")
            ck, = raw.execute(st.add.sql, (name, time.time_ns(), int(auto))).fetchone()
            raw.execute(st.copy_in.sql, (ck,))
            raw.execute(st.ref.sql, st.args(st.ref, ck=ck))
            raw.execute(st.count_files.sql, st.args(st.count_files, ck=ck))
            if keep is not None:
                autos = [h for h in self._headers(raw) if h.auto]
                for old in autos[:max(0, len(autos) - keep)]:
                    self._drop(raw, old.id)
        return name

    def _drop(self, raw: Any, ck: int) -> None:
        st = self.st
        raw.execute(st.unref.sql, st.args(st.unref, ck=ck))
        for ident, *state in raw.execute(st.released.sql, st.args(st.released, ck=ck)).fetchall():
            self.repo.released(raw, ident, *state)
        raw.execute(st.drop_entries.sql, (ck,))
        raw.execute(st.drop.sql, (ck,))

    def drop(self, name: str) -> None:
        check_name(name)
        with self.uow.write(savepoint=True) as raw:
            self._drop(raw, self._find(raw, name).id)

    def restore(self, name: str) -> None:
        """The tree becomes exactly the checkpoint, in one write transaction."""
        check_name(name)
        st = self.st
        with self.uow.write(savepoint=True) as raw:
            ck = self._find(raw, name).id
            entries = self._entries(raw, ck)  # every row checked before anything changes
            dirs = {paths.ROOT} | {e.path for e in entries if e.kind == _DIR}
            hidden = {e.path for e in entries if e.kind == _WHITEOUT}
            for e in entries:
                # A whiteout hides a lower subtree entry by entry: under a whiteout too.
                if e.parent not in dirs and not (e.kind == _WHITEOUT and e.parent in hidden):
                    raise stored.damaged(f"checkpoint entry {e.path}: its parent is not a "
                                         f"directory of the checkpoint", self.uow.where)
            self.store.delete_tree(raw, _NO_INODE, paths.ROOT, _LO, _HI)
            raw.execute(st.restore.sql, (ck,))
            raw.execute(st.ref.sql, st.args(st.ref, ck=ck))
        self.uow.epoch += 1
