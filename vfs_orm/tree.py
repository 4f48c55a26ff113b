"""The namespace: what a path names, and every change to files and directories.

``Tree`` turns operations on normalised paths into repository calls inside the unit of work's
transactions. It holds no SQL (that is ``repository.py``) and knows nothing of argument
checking or io objects (that is the ``VFS`` facade).

Error choice follows POSIX where the seed library was silent (a path through a file is
ENOTDIR, moving a directory into itself is EINVAL) and the seed where it spoke (``rename`` onto
an existing path is EEXIST; ``rmdir`` of a non-empty directory is a PermissionError).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vfs_orm import paths, stored
from vfs_orm.errors import (
    AlreadyExistsError,
    BusyError,
    ClosedError,
    CorruptionError,
    DirNotEmptyError,
    InvalidOperationError,
    IsADirError,
    NotADirError,
    NotFoundError,
    VFSError,
)
from vfs_orm.repository import INLINE_MAX, InodeRepository
from vfs_orm.types import DIR_MODE, FILE_MODE, InodeKind, StatResult
from vfs_orm.uow import UnitOfWork

if TYPE_CHECKING:
    from vfs_orm._io import ChunkedFile

FILE = int(InodeKind.FILE)
DIR = int(InodeKind.DIRECTORY)
# Positions in an inode row (repository.INODE_COLUMNS).
ID, KIND, MODE, SIZE, CHUNK, CTIME, MTIME, GEN = range(8)


def _process_token() -> str:
    """Identifies this process for staging rows: host, pid and the process's start time."""
    pid = os.getpid()
    start = ""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    except OSError:
        pass
    return f"{socket.gethostname()}:{pid}:{start}"


def _owner_alive(token: str) -> bool:
    host, _, rest = token.partition(":")
    pid_s, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # can't tell: leave it
    try:
        pid = int(pid_s)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    if start:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().rsplit(b")", 1)[1].split()[19].decode() == start
        except OSError:
            return False
    return True


class _SomeExist(Exception):
    """A bulk insert found a path already taken: undo it, take the general path."""


class Tree:
    """Files and directories of the top database."""

    def __init__(self, uow: UnitOfWork, repo: InodeRepository, chunk_size: int) -> None:
        self.uow = uow
        self.repo = repo
        self.chunk_size = chunk_size
        self.owner = _process_token()
        # Whether the last whole-file write replaced an existing small file: saves come in
        # runs over the same files, ingests in runs of new ones, so write_bytes tries the
        # one-statement rewrite only while the last write found a file to rewrite (a wrong
        # guess costs one UPDATE that matches nothing).
        self._expect_rewrite = False
        # Directories that new files went into during the current batch, while nothing but
        # write_bytes ran in it (see write_bytes): (connection, its txn, uow.writes after
        # the last write_bytes) says whether the set still holds.
        self._batch_dirs: set[str] = set()
        self._batch_dirs_key: tuple[Any, int, int] | None = None

    @property
    def inline_max(self) -> int:
        """The largest file written whole that keeps its bytes in its inode row."""
        return min(self.chunk_size, INLINE_MAX)

    # -- lookups --------------------------------------------------------------------------
    def _probe(self, query: Any, path: str) -> Any:
        """``query(raw, parent, name)`` on this thread's connection, under the lock when the
        connection is shared (in-memory databases)."""
        parent, name = paths.split(path)
        uow = self.uow
        if uow.shared:
            with uow.lock:
                return query(uow.raw(), parent, name)
        return query(uow.raw(), parent, name)

    def lookup(self, path: str) -> tuple[Any, ...] | None:
        return self._probe(self.repo.lookup, path)  # type: ignore[no-any-return]

    def exists(self, path: str) -> bool:
        return self._probe(self.repo.exists, path)  # type: ignore[no-any-return]

    def miss_error(self, path: str) -> VFSError:
        """The error for a path that does not exist: ENOTDIR if an ancestor is a file."""
        with self.uow.read_lock:
            raw = self.uow.raw()
            for anc in paths.parents(path)[1:]:
                parent, name = paths.split(anc)
                row = self.repo.lookup(raw, parent, name)
                if row is None:
                    break
                if row[KIND] != DIR:
                    return NotADirError.for_path(path, f"not a directory: {anc}")
        return NotFoundError.for_path(path)

    def require(self, path: str) -> tuple[Any, ...]:
        row = self.lookup(path)
        if row is None:
            raise self.miss_error(path)
        return row

    def require_dir(self, path: str) -> tuple[Any, ...]:
        row = self.require(path)
        if row[KIND] != DIR:
            raise NotADirError.for_path(path)
        return row

    def stat(self, path: str) -> StatResult:
        row = self.require(path)
        return StatResult(row[SIZE] if row[KIND] == FILE else 0, row[CTIME], row[MTIME],
                          row[MODE], "local", row[ID])

    def listdir(self, path: str) -> list[str]:
        with self.uow.read_lock:
            raw = self.uow.raw()
            parent, name = paths.split(path)
            names = self.repo.list_names(raw, path)
            if names:
                return names
            row = self.repo.lookup(raw, parent, name)
        if row is None:
            raise self.miss_error(path)
        if row[KIND] != DIR:
            raise NotADirError.for_path(path)
        return names

    def entries(self, path: str) -> list[tuple[Any, ...]]:
        """(name, *inode row) of a directory's entries, sorted by name."""
        self.require_dir(path)
        with self.uow.read_lock:
            return self.repo.list_entries(self.uow.raw(), path)

    def walk(self, top: str, topdown: bool, onerror: Any) -> Iterator[tuple[str, list[str], list[str]]]:
        try:
            rows = self.entries(top)
        except (ClosedError, BusyError, CorruptionError):
            raise  # not about this directory: the whole walk cannot go on
        except OSError as exc:
            if onerror is not None:
                onerror(exc)
            return
        dirs = [r[0] for r in rows if r[1 + KIND] == DIR]
        files = [r[0] for r in rows if r[1 + KIND] != DIR]
        if topdown:
            yield top, dirs, files
        for d in dirs:
            yield from self.walk(paths.join(top, d), topdown, onerror)
        if not topdown:
            yield top, dirs, files

    def subtree(self, path: str) -> list[tuple[Any, ...]]:
        """(parent, name, *inode row) of everything below ``path``, by (parent, name)."""
        lo, hi = paths.subtree_bounds(path)
        with self.uow.read_lock:
            return self.repo.subtree(self.uow.raw(), path, lo, hi)

    def glob_in(self, parent: str, name_glob: str) -> list[str]:
        with self.uow.read_lock:
            return self.repo.glob_in(self.uow.raw(), parent, name_glob)

    def glob_levels(self, prefix: str, globs: tuple[str, ...]) -> list[str]:
        """Paths below ``prefix`` with one segment per GLOB in ``globs`` (two or more)."""
        with self.uow.read_lock:
            return self.repo.glob_chain(self.uow.raw(), prefix, globs)

    def glob_below(self, top: str, name_glob: str) -> list[tuple[str, str, int]]:
        lo, hi = paths.subtree_bounds(top)
        with self.uow.read_lock:
            return self.repo.glob_below(self.uow.raw(), top, lo, hi, name_glob)

    def read_bytes(self, path: str) -> bytes:
        """A small file is one row (its inline bytes), a file of one chunk one equality
        join (inode, then chunk 0 by rowid); a bigger or sparse one is then read whole
        again in ONE statement (a single snapshot: never chunks of two versions)."""
        row = self._probe(self.repo.read_first, path)
        if row is None:
            raise self.miss_error(path)
        kind, size, data = row
        if kind == DIR:
            raise IsADirError.for_path(path)
        if data is not None and len(data) == size:
            return data  # type: ignore[no-any-return]
        if not size:
            return b""
        rows = self._probe(self.repo.read_whole, path)
        if not rows:
            raise self.miss_error(path)
        _, kind, size, cs, _, _, inline = rows[0]
        if kind == DIR:
            raise IsADirError.for_path(path)
        if inline is not None:
            return bytes(inline)
        if len(rows) == 1:
            data = rows[0][5]
            if data is None:
                return bytes(size)
            if len(data) == size:
                return bytes(data)
        out = stored.buffer(size, path)
        for row in rows:
            idx, data = row[4], row[5]
            if data is None:
                continue
            start = idx * cs
            data = data[: max(0, min(cs, size - start))]
            out[start:start + len(data)] = data
        return bytes(out)

    # -- writes ---------------------------------------------------------------------------
    def _parent_dir(self, raw: Any, path: str, create: bool) -> None:
        """Inside a write: make sure ``path``'s parent is a directory, creating missing ones
        when ``create`` (as the seed library's writes did)."""
        self._ensure_dir(raw, paths.split(path)[0], create, path)

    def _ensure_dir(self, raw: Any, parent: str, create: bool, path: str) -> None:
        """Inside a write: make sure ``parent`` is a directory (errors name ``path``).
        Every ancestor is checked before the first one is created, so a failure changes
        nothing."""
        pp, pn = paths.split(parent)
        row = self.repo.lookup(raw, pp, pn)
        if row is not None:
            if row[KIND] != DIR:
                raise NotADirError.for_path(path, f"not a directory: {parent}")
            return
        missing = []
        for anc in paths.parents(parent)[1:] + [parent]:
            ap, an = paths.split(anc)
            arow = self.repo.lookup(raw, ap, an)
            if arow is None:
                if not create:
                    break
                missing.append((ap, an))
            elif arow[KIND] != DIR:
                raise NotADirError.for_path(path, f"not a directory: {anc}")
        if not create:
            raise NotFoundError.for_path(path, f"no such directory: {parent}")
        now = time.time_ns()
        for ap, an in missing:
            self.repo.insert(raw, ap, an, DIR, DIR_MODE, 0, 0, now, now)

    def mkdir(self, path: str, parents: bool, exist_ok: bool, mode: int = DIR_MODE) -> None:
        with self.uow.write() as raw:
            pp, pn = paths.split(path)
            row = self.repo.lookup(raw, pp, pn)
            if row is not None:
                if row[KIND] == DIR and exist_ok:
                    return
                raise AlreadyExistsError.for_path(path)
            self._parent_dir(raw, path, create=parents)
            now = time.time_ns()
            self.repo.insert(raw, pp, pn, DIR, mode, 0, 0, now, now)

    def write_bytes(self, path: str, data: bytes, *, exclusive: bool = False,
                    mtime_ns: int | None = None, mode: int = FILE_MODE) -> int:
        """Replace (or create) a whole file in one transaction. An existing file is rewritten
        in place under a new generation (fewer pages touched than delete + insert)."""
        pp, pn = paths.split(path)
        n, cs = len(data), self.chunk_size
        inline = n <= self.inline_max
        uow = self.uow
        with uow.write() as raw:
            now = time.time_ns() if mtime_ns is None else mtime_ns
            if self._expect_rewrite:
                if inline and not exclusive and \
                        self.repo.rewrite_small(raw, pp, pn, data, cs, mode, now):
                    return n  # a save over a small file: ONE statement
            else:
                # A new file in an existing directory: 1 statement (+ its chunks if big).
                # Inside a batch where only write_bytes ran since, a directory a file went
                # into is still one (this batch holds the write lock; nothing of ours that
                # removes, moves or rolls back ran), so its probe is skipped.
                st = uow.state()
                key = (st, st.txn, uow.writes - 1)
                known = st.depth > 0 and key == self._batch_dirs_key and pp in self._batch_dirs
                inode_id = (self.repo.create_file_in_dir if known else self.repo.create_file)(
                    raw, pp, pn, mode, n, cs, now, data if inline else None)
                if inode_id is not None:
                    if not inline:
                        self._put_content(raw, inode_id, data, new=True)
                    if st.depth > 0:
                        if key != self._batch_dirs_key:
                            self._batch_dirs = set()
                        self._batch_dirs.add(pp)
                        self._batch_dirs_key = (st, st.txn, uow.writes)
                    return n
            prow, row = self.repo.lookup_pair(raw, pp, pn)
            self._expect_rewrite = row is not None and row[KIND] == FILE and \
                row[SIZE] <= self.inline_max
            if row is not None:
                if row[KIND] == DIR:
                    raise IsADirError.for_path(path)
                if exclusive:
                    raise AlreadyExistsError.for_path(path)
            elif prow is None or prow[KIND] != DIR:
                self._parent_dir(raw, path, create=True)
            self._store_content(raw, path, row, data, now, mode)
        return len(data)

    def write_files(self, files: list[tuple[str, bytes]], mode: int = FILE_MODE) -> int:
        """Write many whole files in one transaction, as ``write_bytes`` each would (in
        order; all or nothing). When every path is new and distinct, the small files'
        directories are made first and the files inserted by ONE executemany; if any path
        turns out to exist, that attempt is rolled back and the files are written one by
        one."""
        limit = self.inline_max
        small = [(p, d) for p, d in files if len(d) <= limit]
        if small and self._bulk_ok() and len({p for p, _ in files}) == len(files):
            try:
                with self.uow.write(savepoint=True) as raw:
                    self._create_inline(raw, small, mode)
                    for p, d in files:
                        if len(d) > limit:
                            self.write_bytes(p, d, mode=mode)
                return len(files)
            except _SomeExist:
                pass
        with self.uow.batch():
            for p, d in files:
                self.write_bytes(p, d, mode=mode)
        return len(files)

    def _bulk_ok(self) -> bool:
        return True

    def _create_inline(self, raw: Any, files: list[tuple[str, bytes]], mode: int) -> None:
        """Inside a write: new inline files, their missing directories first; raises
        _SomeExist if a path was taken."""
        rows = [(*paths.split(p), d) for p, d in files]
        if any(not parent for parent, _, _ in rows):
            raise _SomeExist  # the root itself: one by one gives its error
        now = time.time_ns()
        self._make_dirs(raw, rows, now)  # every parent is a directory from here on
        if self.repo.create_files(raw, rows, mode, self.chunk_size, now) != len(rows):
            raise _SomeExist

    def _make_dirs(self, raw: Any, rows: list[tuple[str, str, bytes]], now: int) -> None:
        """The directories of (parent, name, data) rows: all of them in one executemany when
        none exists yet (a new tree); otherwise each distinct parent is checked and its
        missing ancestors made, one lookup per directory."""
        parents = {parent for parent, _, _ in rows if parent}
        wanted = set(parents)
        for parent in parents:
            wanted.update(paths.parents(parent))
        wanted.discard(paths.ROOT)
        ordered = sorted(wanted, key=lambda d: (d.count("/"), d))
        if self.repo.create_dirs(raw, ordered, DIR_MODE, now) == len(ordered):
            return
        for parent in parents:
            try:
                self._ensure_dir(raw, parent, True, parent)
            except (NotADirError, NotFoundError):
                # Files one by one report the error of the first path that fails, which
                # may be an earlier one.
                raise _SomeExist from None

    def _store_content(self, raw: Any, path: str, row: tuple[Any, ...] | None, data: bytes,
                       mtime_ns: int | None, mode: int) -> int:
        """Inside a write: put ``data`` at ``path`` (``row``: the existing file, if any)."""
        cs = self.chunk_size
        now = time.time_ns() if mtime_ns is None else mtime_ns
        n = len(data)
        inline = data if n <= self.inline_max else None
        if row is None:
            pp, pn = paths.split(path)
            inode_id = self.repo.insert(raw, pp, pn, FILE, mode, n, cs, now, now, data=inline)
        else:
            inode_id = row[ID]
            self.repo.rewrite(raw, inode_id, n, cs, mode, now, inline)
            if inline is not None:
                if row[SIZE]:
                    self.repo.drop_chunks_from(raw, inode_id, 0)
            elif row[SIZE] > n or row[CHUNK] != cs:
                self.repo.drop_chunks_from(raw, inode_id, (n + cs - 1) // cs)
        if inline is None:
            self._put_content(raw, inode_id, data, new=row is None)
        return inode_id  # type: ignore[no-any-return]

    def _put_content(self, raw: Any, inode_id: int, data: bytes, new: bool = False) -> None:
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

    def set_meta(self, path: str, mode: int | None = None, mtime_ns: int | None = None) -> None:
        """chmod/utime. An entry of an underlay is copied up first (files), or gets a
        directory row in the top layer."""
        with self.uow.write() as raw:
            row = self.writable_row(raw, path)
            if mode is not None:
                self.repo.set_mode(raw, row[ID], (row[MODE] & ~0o7777) | mode)
            if mtime_ns is not None:
                self.repo.touch(raw, row[ID], mtime_ns)

    def writable_row(self, raw: Any, path: str) -> tuple[Any, ...]:
        pp, pn = paths.split(path)
        row = self.repo.lookup(raw, pp, pn)
        if row is None:
            raise self.miss_error(path)
        return row

    def new_staging_inode(self, raw: Any, chunk_size: int) -> int:
        now = time.time_ns()
        return self.repo.insert(raw, None, f"staging-{now}", FILE, FILE_MODE, 0, chunk_size,
                                now, now, self.owner)

    def commit_staged(self, f: ChunkedFile) -> None:
        """Swap a ``w``/``x`` handle's content into place, in one transaction."""
        path = f.name
        pp, pn = paths.split(path)
        with self.uow.write() as raw:
            prow, row = self.repo.lookup_pair(raw, pp, pn)
            now = time.time_ns()
            ctime = now if f._ctime_ns is None else f._ctime_ns
            if row is not None:
                if row[KIND] == DIR:
                    raise IsADirError.for_path(path)
                if f._exclusive:
                    raise AlreadyExistsError.for_path(path, "file was created by someone else "
                                                            "while this 'x' handle was open")
                ctime = row[CTIME]
            elif prow is None or prow[KIND] != DIR:
                self._parent_dir(raw, path, create=True)
            self._place_staged(raw, f, path, row, ctime, now)
        f._staged = False

    def _place_staged(self, raw: Any, f: ChunkedFile, path: str,
                      existing: tuple[Any, ...] | None, ctime: int, now: int) -> None:
        """Inside the closing transaction: the staged content becomes the file at ``path``
        (``existing``: the top layer's file there, if any)."""
        if f._id is None:
            # Everything is still in memory: write it straight into place.
            f._id = self._store_content(raw, path, existing, f.staged_content(), now, FILE_MODE)
            return
        if existing is not None:
            self.repo.delete(raw, existing[ID])
        f.write_pending(raw, f._id)
        pp, pn = paths.split(path)
        self.repo.place(raw, f._id, pp, pn, f._size, ctime, now)

    def discard_staged(self, f: ChunkedFile) -> None:
        f._pending.clear()
        if f._id is not None:
            try:
                with self.uow.write() as raw:
                    self.repo.delete(raw, f._id)
            except VFSError:
                pass  # reclaimed on a later open (the staging row's owner is gone by then)
            f._id = None

    def reclaim_staging(self) -> int:
        """Delete staging rows left by crashed writers (their process no longer exists)."""
        with self.uow.read_lock:
            rows = self.repo.staging_rows(self.uow.raw())
        dead = [i for i, owner in rows if owner is None or not _owner_alive(owner)]
        if dead:
            with self.uow.write() as raw:
                for inode_id in dead:
                    self.repo.delete(raw, inode_id)
        return len(dead)

    def reader_args(self, path: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """For ``VFS.open`` in read mode: the inode row with its first chunk's data at the
        end, and the extra ChunkedFile arguments (none: read from the top layer)."""
        return self.open_existing(path), {}

    def open_existing(self, path: str) -> tuple[Any, ...]:
        """The inode row of a file to open, plus its first chunk's data at the end."""
        row = self._probe(self.repo.open_lookup, path)
        if row is None:
            raise self.miss_error(path)
        if row[KIND] == DIR:
            raise IsADirError.for_path(path)
        return row

    def create_empty(self, path: str) -> tuple[Any, ...]:
        """For ``a`` modes: the file exists from the moment it is opened (as with os.open)."""
        pp, pn = paths.split(path)
        with self.uow.write() as raw:
            prow, row = self.repo.lookup_pair(raw, pp, pn)
            if row is not None:
                if row[KIND] == DIR:
                    raise IsADirError.for_path(path)
                return row
            if prow is None or prow[KIND] != DIR:
                self._parent_dir(raw, path, create=True)
            now = time.time_ns()
            self.repo.insert(raw, pp, pn, FILE, FILE_MODE, 0, self.chunk_size, now, now)
            return self.repo.lookup(raw, pp, pn)  # type: ignore[return-value]

    def check_writable_target(self, path: str, exclusive: bool) -> int | None:
        """Before a ``w``/``x`` handle opens: the target must not be a directory (nor exist,
        for ``x``), and its parent must be creatable. Returns the current ctime if any."""
        row = self.lookup(path)
        if row is not None:
            if row[KIND] == DIR:
                raise IsADirError.for_path(path)
            if exclusive:
                raise AlreadyExistsError.for_path(path)
            return int(row[CTIME])
        for anc in paths.parents(path)[1:]:
            arow = self.lookup(anc)
            if arow is None:
                break
            if arow[KIND] != DIR:
                raise NotADirError.for_path(path, f"not a directory: {anc}")
        return None

    # remove/rmdir/rmtree check the entry, then drop it. The hooks (_entry, _drop,
    # _has_entries) are what LayeredTree changes: resolution across layers, whiteouts.
    def _entry(self, raw: Any, path: str) -> tuple[Any, ...] | None:
        pp, pn = paths.split(path)
        return self.repo.lookup(raw, pp, pn)

    def _checked(self, raw: Any, path: str, want: str) -> tuple[Any, ...]:
        row = self._entry(raw, path)
        if row is None:
            raise self.miss_error(path)
        if want == "file" and row[KIND] == DIR:
            raise IsADirError.for_path(path)
        if want == "dir" and row[KIND] != DIR:
            raise NotADirError.for_path(path)
        return row

    def _has_entries(self, raw: Any, path: str) -> bool:
        return self.repo.has_children(raw, path)

    def _drop(self, raw: Any, path: str, row: tuple[Any, ...], subtree: bool) -> None:
        if subtree:
            lo, hi = paths.subtree_bounds(path)
            self.repo.delete_tree(raw, row[ID], path, lo, hi)
        else:
            self.repo.delete(raw, row[ID])

    def remove(self, path: str) -> None:
        with self.uow.write() as raw:
            row = self._checked(raw, path, "file")
            self._drop(raw, path, row, subtree=False)

    def rmdir(self, path: str) -> None:
        with self.uow.write() as raw:
            row = self._checked(raw, path, "dir")
            if self._has_entries(raw, path):
                raise DirNotEmptyError.for_path(path)
            self._drop(raw, path, row, subtree=True)

    def rmtree(self, path: str) -> None:
        with self.uow.write() as raw:
            row = self._checked(raw, path, "dir")
            self._drop(raw, path, row, subtree=True)

    def move(self, src: str, dst: str, *, overwrite: bool) -> None:
        """``rename`` (``overwrite=False``: an existing destination is EEXIST, as the seed did)
        and ``replace`` (POSIX rename). A directory moves with its whole subtree in one
        statement."""
        sp, sn = paths.split(src)
        dp, dn = paths.split(dst)
        with self.uow.write() as raw:
            row = self.repo.lookup(raw, sp, sn)
            if row is None:
                err = self.miss_error(src)
                sparent = self.repo.lookup(raw, *paths.split(sp)) if sp else None
                if isinstance(err, NotFoundError) and sparent is not None:
                    # Like Linux: both parents are resolved before the source entry.
                    dst_err = self.miss_error(dst)
                    if isinstance(dst_err, NotADirError):
                        raise dst_err
                raise err
            is_dir = row[KIND] == DIR
            if is_dir and paths.is_within(dst, src) and dst != src:
                raise self.into_itself_error(src, dst)
            target = self.repo.lookup(raw, dp, dn)
            if target is not None:
                if not overwrite:
                    raise AlreadyExistsError.for_path(src, "destination exists", dst)
                if target[ID] == row[ID]:
                    return
                if target[KIND] == DIR:
                    if not is_dir:
                        raise IsADirError.for_path(src, "destination is a directory", dst)
                    if self.repo.has_children(raw, dst):
                        raise DirNotEmptyError.for_path(src, "destination directory not empty",
                                                        dst)
                elif is_dir:
                    raise NotADirError.for_path(src, "destination is not a directory", dst)
                self.repo.delete(raw, target[ID])
            else:
                self._parent_dir(raw, dst, create=True)
            self._move_rows(raw, src, dst, row[ID])

    def into_itself_error(self, src: str, dst: str) -> VFSError:
        """Moving a directory below itself: EINVAL, unless resolving ``dst`` already fails
        on a file (Linux resolves both paths before it compares them: ENOTDIR)."""
        err = self.miss_error(dst)
        if isinstance(err, NotADirError):
            return NotADirError.for_path(src, f"not a directory: {err.strerror}", dst)
        return InvalidOperationError.for_path(src, "cannot move a directory into itself", dst)

    def _move_rows(self, raw: Any, src: str, dst: str, inode_id: int | None = None) -> None:
        """The one-statement move of an entry and its subtree within the top layer."""
        if inode_id is None:
            sp, sn = paths.split(src)
            inode_id = self.repo.lookup(raw, sp, sn)[ID]  # type: ignore[index]
        dp, dn = paths.split(dst)
        lo, hi = paths.subtree_bounds(src)
        self.repo.move(raw, inode_id, src, lo, hi, dp, dn, dst)
        self.repo.touch(raw, inode_id, time.time_ns())

    def copy_file(self, src: str, dst: str) -> None:
        """Copy one file inside the database (no bytes pass through Python)."""
        dp, dn = paths.split(dst)
        with self.uow.write() as raw:
            sp, sn = paths.split(src)
            row = self.repo.lookup(raw, sp, sn)
            if row is None:
                raise self.miss_error(src)
            if row[KIND] == DIR:
                raise IsADirError.for_path(src)
            target = self.repo.lookup(raw, dp, dn)
            now = time.time_ns()
            ctime = now
            if target is not None:
                if target[KIND] == DIR:
                    raise IsADirError.for_path(dst)
                if target[ID] == row[ID]:
                    raise InvalidOperationError.for_path(src, "source and destination are the "
                                                              "same file", dst)
                ctime = target[CTIME]
                self.repo.delete(raw, target[ID])
            else:
                self._parent_dir(raw, dst, create=True)
            new_id = self.repo.insert(raw, dp, dn, FILE, row[MODE], row[SIZE], row[CHUNK],
                                      ctime, now)
            self.repo.copy_content(raw, row[ID], new_id)

    def copytree(self, src: str, dst: str, dirs_exist_ok: bool) -> None:
        """Copy a directory tree in one transaction, chunks copied inside the database."""
        with self.uow.write(savepoint=True) as raw:
            sp, sn = paths.split(src)
            row = self.repo.lookup(raw, sp, sn)
            if row is None:
                raise self.miss_error(src)
            if row[KIND] != DIR:
                raise NotADirError.for_path(src)
            if paths.is_within(dst, src):
                raise InvalidOperationError.for_path(
                    src, "cannot copy a directory into itself", dst)
            dp, dn = paths.split(dst)
            target = self.repo.lookup(raw, dp, dn)
            if target is not None and not (dirs_exist_ok and target[KIND] == DIR):
                raise AlreadyExistsError.for_path(src, "destination exists", dst)
            if target is None:
                self._parent_dir(raw, dst, create=True)
            lo, hi = paths.subtree_bounds(src)
            rows = self.repo.subtree(raw, src, lo, hi)
            now = time.time_ns()
            if target is None:
                self.repo.insert(raw, dp, dn, DIR, row[MODE], 0, 0, now, now)
            cut = len(src)
            # Parents sort before their children, so directories exist before their entries.
            for parent, name, *r in sorted(rows, key=lambda x: (len(x[0]), x[0], x[1])):
                new_parent = dst + parent[cut:] if parent != src else dst
                existing = self.repo.lookup(raw, new_parent, name)
                if r[KIND] == DIR:
                    if existing is None:
                        self.repo.insert(raw, new_parent, name, DIR, r[MODE], 0, 0, now, now)
                    elif existing[KIND] != DIR:
                        raise NotADirError.for_path(paths.join(new_parent, name))
                    continue
                if existing is not None:
                    if existing[KIND] == DIR:
                        raise IsADirError.for_path(paths.join(new_parent, name))
                    self.repo.delete(raw, existing[ID])
                new_id = self.repo.insert(raw, new_parent, name, FILE, r[MODE], r[SIZE],
                                          r[CHUNK], now, now)
                self.repo.copy_content(raw, r[ID], new_id)
