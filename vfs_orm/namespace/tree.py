"""The namespace: what a path names, and every change to files and directories.

Each operation is written once, over the resolver (``resolver.py``): a single database is the
one-layer case of a layer stack. Writes only ever touch the top database. Removing something an
underlay provides records whiteouts (kind 3 rows) in the top layer, one per lower entry hidden,
so every query agrees and ``mkdir`` over a removed directory gives an empty (opaque) directory;
writing a whited-out path brings it back with the new content. Changing an entry an underlay
provides (``chmod``, ``r+``, ``a``, ``rename``) first copies it up into the top layer (content
copied inside SQL), and the top layer stays a complete tree on its own.

``Tree`` holds no SQL (that is the repository's) and knows nothing of argument checking or io
objects (that is the ``VFS`` facade). Error choice follows POSIX where the seed library was
silent (a path through a file is ENOTDIR, moving a directory into itself is EINVAL) and the
seed where it spoke (``rename`` onto an existing path is EEXIST; ``rmdir`` of a non-empty
directory is a PermissionError).
"""

from __future__ import annotations

import hashlib
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from vfs_orm import paths, special
from vfs_orm._io import ChunkedFile
from vfs_orm.backends import InodeRepository
from vfs_orm.content import Damage
from vfs_orm.content.store import ContentStore, assemble
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
from vfs_orm.namespace.resolver import Resolver
from vfs_orm.namespace.staging import owner_alive, process_token
from vfs_orm.rows import (
    DIR,
    FILE,
    TOP,
    WHITEOUT,
    ChunkRow,
    Entry,
    GlobHit,
    Node,
    OpenNode,
    TreeEntry,
)
from vfs_orm.types import DIR_MODE, FILE_MODE, DirEntry, StatResult
from vfs_orm.uow import UnitOfWork


def _ids(node: Node | None) -> tuple[int | None, int | None]:
    """The (uid, gid) a copy of ``node`` keeps (format 0009); not set without one."""
    return (None, None) if node is None else (node.uid, node.gid)


class _Same:
    """In a ``write_files`` call: content equal to that of the earlier file ``src``."""

    __slots__ = ("data", "src")

    def __init__(self, src: str, data: bytes) -> None:
        self.src, self.data = src, data

    def __len__(self) -> int:
        return len(self.data)


class _SomeExist(Exception):
    """A bulk insert found a path already taken: undo it, take the general path."""


class Tree:
    """Files and directories of a VFS: its top database and the layers under it."""

    def __init__(self, uow: UnitOfWork, repo: InodeRepository, chunk_size: int) -> None:
        self.uow = uow
        self.owner = process_token()
        #: The bytes of the top database's files: every content change goes through it.
        self.content = ContentStore(uow, repo, chunk_size, self.owner)
        self.repo = repo
        self.resolver = Resolver(uow, repo)
        # The hot lookups, bound once (a call level less on every stat, exists, isfile).
        self.lookup = self.resolver.find
        self.exists = self.resolver.exists
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
    def repo(self) -> InodeRepository:
        """The top database's statements (replaced when its content rules change)."""
        return self._repo

    @repo.setter
    def repo(self, repo: InodeRepository) -> None:
        self._repo = self.content.repo = repo

    def handle(self, path: str, **kw: Any) -> ChunkedFile:
        """A raw file handle on ``path`` (``kw``: see ``ChunkedFile``); a staged one puts its
        content in place at close (``commit_staged``)."""
        return ChunkedFile(self.content, path, place=self.commit_staged, **kw)

    @property
    def chunk_size(self) -> int:
        """New files' chunk size (the content store's)."""
        return self.content.chunk_size

    @chunk_size.setter
    def chunk_size(self, value: int) -> None:
        self.content.chunk_size = value

    @property
    def inline_max(self) -> int:
        """The largest file written whole that keeps its bytes in its inode row."""
        return self.content.inline_max

    def layered(self) -> bool:
        return self.resolver.layered

    # -- lookups (``lookup`` and ``exists`` are the resolver's, bound in __init__) ----------
    def miss_error(self, path: str) -> VFSError:
        """The error for a path that does not exist: ENOTDIR if an ancestor is a file."""
        anc = self._file_ancestor(path)
        if anc is not None:
            return NotADirError.for_path(path, f"not a directory: {anc}")
        return NotFoundError.for_path(path)

    def _file_ancestor(self, path: str) -> str | None:
        """The first ancestor of ``path`` that is not a directory (the ENOTDIR case), None
        if the ancestors are directories down to the first missing one."""
        for anc in paths.parents(path)[1:]:
            node = self.resolver.find(anc)
            if node is None:
                return None
            if node.kind != DIR:
                return anc
        return None

    def require(self, path: str) -> Node:
        node = self.resolver.find(path)
        if node is None:
            raise self.miss_error(path)
        return node

    def require_dir(self, path: str) -> Node:
        node = self.require(path)
        if node.kind != DIR:
            raise NotADirError.for_path(path)
        return node

    def stat(self, path: str) -> StatResult:
        return self.stat_of(self.require(path))

    def stat_of(self, node: Node) -> StatResult:
        return StatResult(node.size if node.kind == FILE else 0, node.ctime_ns, node.mtime_ns,
                          node.mode, self.resolver.name_of(node.layer), node.id, node.uid,
                          node.gid)

    def which(self, path: str) -> str | None:
        node = self.resolver.find(path)
        return None if node is None else self.resolver.name_of(node.layer)

    def which_detailed(self, path: str) -> dict[str, Any]:
        stack = self.resolver.stack()
        found = {n.layer: n for n in self.resolver.find_all(path)}
        layers = []
        winner = None
        for layer in range(len(stack.layers) + 1):
            node = found.get(layer)
            has = node is not None and node.kind != WHITEOUT
            info: dict[str, Any] = {"name": stack.name_of(layer), "has_file": has}
            if node is not None:
                info["kind"] = {FILE: "file", DIR: "directory", WHITEOUT: "whiteout"}[node.kind]
            layers.append(info)
            if winner is None and node is not None:
                winner = stack.name_of(layer) if has else ""  # "": hidden, stop looking
        return {"path": path, "resolved_from": winner or None, "layers": layers}

    def listdir(self, path: str) -> list[str]:
        names = self.resolver.names(path)
        if names and not self.resolver.underlays:
            return names  # one database's rows form a tree: entries mean a directory
        self.require_dir(path)
        return names

    def entries(self, path: str) -> list[Entry]:
        """(name, node) of a directory's entries, sorted by name: one statement when there
        are some (as ``listdir``)."""
        found = self.resolver.entries(path)
        if not found or self.resolver.underlays:
            self.require_dir(path)
        return found

    def scandir(self, path: str, recursive: bool) -> list[DirEntry]:
        """A directory's entries with their metadata, one statement; ``recursive``: every
        entry below it, parents before their children (one statement too)."""
        if not recursive:
            return [DirEntry(paths.join(path, e.name), e.name, self.stat_of(e.node))
                    for e in self.entries(path)]
        below = self.resolver.subtree(path)
        if not below or self.resolver.underlays:
            self.require_dir(path)
        # Entries below a file or a missing directory (a damaged or hostile layer) are left
        # out; each is named below the directory it belongs to as that one was listed.
        key: Callable[[str], str] = paths.fold if self.resolver.folded else str
        dirs = [e for e in below if e.node.kind == DIR]
        shown = {key(p) for _, p in self._rebased(dirs, path, path)} | {key(path)}
        listed = [(p, e) for e, p in self._rebased(below, path, path)
                  if key(paths.split(p)[0]) in shown]
        return [DirEntry(p, e.name, self.stat_of(e.node))
                for p, e in sorted(listed, key=lambda x: (paths.split(x[0])[0], x[1].name))]

    def walk(self, top: str, topdown: bool,
             onerror: Callable[[OSError], Any] | None) -> Iterator[tuple[str, list[str], list[str]]]:
        """``os.walk``'s order, with an explicit stack instead of recursion: a tree of any
        depth (a hostile pack nests thousands of directories) walks in bounded stack."""
        # Each item: a directory to list, or (bottom-up) a listing to yield after its subtree.
        stack: list[str | tuple[str, list[str], list[str]]] = [top]
        while stack:
            item = stack.pop()
            if isinstance(item, tuple):
                yield item
                continue
            try:
                entries = self.entries(item)
            except (ClosedError, BusyError, CorruptionError):
                raise  # not about this directory: the whole walk cannot go on
            except OSError as exc:
                if onerror is not None:
                    onerror(exc)
                continue
            dirs = [e.name for e in entries if e.node.kind == DIR]
            files = [e.name for e in entries if e.node.kind != DIR]
            if topdown:
                yield item, dirs, files  # the caller may prune dirs in place
            else:
                stack.append((item, dirs, files))
            stack.extend(paths.join(item, d) for d in reversed(dirs))

    def glob_in(self, parent: str, name_glob: str) -> list[str]:
        return self.resolver.glob_in(parent, name_glob)

    def glob_levels(self, prefix: str, globs: tuple[str, ...]) -> list[str]:
        return self.resolver.glob_levels(prefix, globs)

    def glob_below(self, top: str, name_glob: str) -> list[GlobHit]:
        return self.resolver.glob_below(top, name_glob)

    # -- reads ----------------------------------------------------------------------------
    def read_bytes(self, path: str) -> bytes:
        if not self.resolver.layered:
            return self._read_top(path)
        return self._content(self.open_node(path), path)

    def _content(self, node: OpenNode, path: str) -> bytes:
        if node.first is not None and len(node.first) == node.size:
            return bytes(node.first)
        try:
            return self.content.read_all(self.resolver.reader(node.layer), node.id, node.size,
                                         node.chunk_size, path)
        except Damage as exc:
            raise exc.in_file(path, node.chunk_size) from None

    def special_content(self, path: str) -> tuple[int, bytes]:
        """(mode, content) of a symbolic link, FIFO, socket or device (format 0010); for a
        regular file or a directory (mode, b""): the caller refuses those."""
        node = self.resolver.open(path)
        if node is None:
            raise self.miss_error(path)
        if node.kind == DIR or node.mode & special.TYPE_BITS == special.REGULAR:
            return node.mode, b""
        return node.mode, self._content(node, path)

    def canonical(self, path: str) -> str:
        """In a case-insensitive database: ``path`` spelled as stored, as far as it exists
        (this database's spelling first, else the one the layers show), the rest as given.
        One indexed lookup when the path exists here."""
        # Up to the deepest ancestor spelled here (a loop, not recursion: paths may be deep),
        # then down again, each missing name as a layer spells it or as given.
        missing: list[str] = []
        here: str | None = paths.ROOT
        while path != paths.ROOT:
            with self.uow.read_lock:
                here = self.repo.spelling(self.uow.raw(), path)
            if here is not None:
                break
            missing.append(path)
            path = paths.split(path)[0]
        spelled = here if here is not None else paths.ROOT
        for below in reversed(missing):
            name = paths.split(below)[1]
            node = self.resolver.find(below) if self.resolver.layered else None
            if node is not None and node.layer != TOP:
                repo, raw = self.resolver.reader(node.layer)
                there = repo.spelling(raw(), below)
                if there is not None:
                    name = paths.split(there)[1]
            spelled = paths.join(spelled, name)
        return spelled

    def digest(self, path: str) -> bytes:
        """SHA-256 of a file's content: the one stored with it, without reading the content;
        if unknown (written in place since), computed from its chunks, and recorded when the
        file is in this (writable) database."""
        node = self.require(path)
        if node.kind == DIR:
            raise IsADirError.for_path(path)
        try:
            digest = self.content.digest(self.resolver.reader(node.layer), node,
                                         node.layer == TOP and not self.uow.read_only)
        except Damage as exc:
            raise exc.in_file(path, node.chunk_size) from None
        if digest is None:
            raise self.miss_error(path)
        return digest

    def _read_top(self, path: str) -> bytes:
        """The single-database read: a small file is one row (its inline bytes), a file of
        one chunk one equality join (inode, then chunk 0 by rowid); a bigger or sparse one
        is then read whole again in ONE statement (a single snapshot: never chunks of two
        versions)."""
        probe = self.resolver.probe
        row = probe(self.repo.read_first, path)
        if row is None:
            raise self.miss_error(path)
        kind, size, mode, data = row
        if kind == DIR:
            raise IsADirError.for_path(path)
        special.check_openable(path, mode)
        if data is not None and len(data) == size:
            return data
        if not size:
            return b""
        rows = probe(self.repo.read_whole, path)
        if not rows:
            raise self.miss_error(path)
        first = rows[0]
        if first.kind == DIR:
            raise IsADirError.for_path(path)
        size = first.size
        if first.inline is not None:
            return bytes(first.inline)
        if len(rows) == 1:
            if first.data is None:
                return bytes(size)
            if len(first.data) == size:
                return bytes(first.data)
        return assemble([ChunkRow(size, 0, r.idx, r.data) for r in rows], size,
                         first.chunk_size, path)

    def open_node(self, path: str) -> OpenNode:
        """A file to read: its node and first chunk; errors for misses and directories."""
        node = self.resolver.open(path)
        if node is None:
            raise self.miss_error(path)
        if node.kind == DIR:
            raise IsADirError.for_path(path)
        special.check_openable(path, node.mode)
        return node

    def reader_args(self, path: str) -> tuple[OpenNode, dict[str, Any]]:
        """For ``VFS.open`` in read mode: the node with its first chunk, and where to read
        the rest (the layer that provides it)."""
        node = self.open_node(path)
        if node.layer == TOP:
            return node, {}
        return node, {"source": self.resolver.reader(node.layer)}

    def open_for_update(self, path: str) -> Node:
        """For ``r+``: the file must exist; one an underlay provides is copied up first, so
        in-place writes never reach an underlay."""
        node = self.require(path)
        if node.kind == DIR:
            raise IsADirError.for_path(path)
        special.check_openable(path, node.mode)
        if node.layer == TOP:
            return node
        return self.create_empty(path)

    # -- directories ----------------------------------------------------------------------
    def _parent_dir(self, raw: Any, path: str, create: bool) -> None:
        """Inside a write: make sure ``path``'s parent is a directory, creating missing ones
        when ``create`` (as the seed library's writes did)."""
        self._ensure_dir(raw, paths.split(path)[0], create, path)

    def _ensure_dir(self, raw: Any, parent: str, create: bool, path: str) -> None:
        """Inside a write: make sure ``parent`` is a directory of the top layer (errors name
        ``path``). Ancestors that exist only in underlays, or not at all when ``create``, are
        created in the top layer, after every ancestor was checked (a failure changes
        nothing)."""
        find = self.resolver.find
        node = find(parent)
        if node is not None and node.kind == DIR and node.layer == TOP:
            return  # the top layer is a tree: its directories' ancestors are there too
        todo: list[tuple[str, Node | None]] = []
        for anc in [*paths.parents(parent)[1:], parent]:
            found = node if anc == parent else find(anc)
            if found is None:
                if not create:
                    raise NotFoundError.for_path(path, f"no such directory: {parent}")
                todo.append((anc, found))
            elif found.kind != DIR:
                raise NotADirError.for_path(path, f"not a directory: {anc}")
            elif found.layer != TOP:
                todo.append((anc, found))
        now = time.time_ns()
        for anc, found in todo:
            self._put_dir(raw, anc, DIR_MODE, now, found, _ids(found))

    def _put_dir(self, raw: Any, path: str, mode: int, now: int, found: Node | None,
                 ids: tuple[int | None, int | None] = (None, None)) -> None:
        """A directory row in the top layer at ``path`` (``found``: what ``path`` resolves
        to), replacing a whiteout there; ``ids``: its (uid, gid), None for not set."""
        top = self.resolver.top_of(raw, path, found)
        if top is not None:
            if top.kind == DIR:
                return
            self.content.delete(raw, top.id)
        self.repo.insert(raw, *paths.split(path), DIR, mode, 0, 0, now, now, ids=ids)

    def mkdir(self, path: str, parents: bool, exist_ok: bool, mode: int = DIR_MODE) -> None:
        with self.uow.write() as raw:
            node = self.resolver.find(path)
            if node is not None:
                if node.kind == DIR and exist_ok:
                    return
                raise AlreadyExistsError.for_path(path)
            self._parent_dir(raw, path, create=parents)
            self._put_dir(raw, path, mode, time.time_ns(), None)

    # -- whole files ----------------------------------------------------------------------
    def write_bytes(self, path: str, data: bytes, *, exclusive: bool = False,
                    mtime_ns: int | None = None, mode: int = FILE_MODE) -> int:
        """Replace (or create) a whole file in one transaction. An existing file is rewritten
        in place under a new generation (fewer pages touched than delete + insert)."""
        n = len(data)
        uow = self.uow
        with uow.write() as raw:
            now = time.time_ns() if mtime_ns is None else mtime_ns
            if not self.resolver.layered and self._write_fast(raw, path, data, exclusive,
                                                               now, mode):
                return n
            node, parent_ok = self.resolver.target(raw, path)
            self._expect_rewrite = node is not None and node.kind == FILE and \
                node.layer == TOP and node.size <= self.inline_max
            if node is not None:
                if exclusive:  # O_CREAT|O_EXCL: EEXIST whatever is there, a directory too
                    raise AlreadyExistsError.for_path(path)
                if node.kind == DIR:
                    raise IsADirError.for_path(path)
            if not parent_ok:
                self._parent_dir(raw, path, create=True)
            self._store_content(raw, path, self._top_file(raw, path, node), data, now, mode)
        return n

    def _write_fast(self, raw: Any, path: str, data: bytes, exclusive: bool, now: int,
                    mode: int) -> bool:
        """The one-database fast paths of ``write_bytes``: True if the file was written."""
        pp, pn = paths.split(path)
        n, cs = len(data), self.chunk_size
        inline = n <= self.inline_max
        if self._expect_rewrite:
            # A save over a small file: ONE statement.
            return inline and not exclusive and \
                self.repo.rewrite_small(raw, pp, pn, data, cs, mode, now)
        # A new file in an existing directory: 1 statement (+ its chunks if big). Inside a
        # batch where only write_bytes ran since, a directory a file went into is still one
        # (this batch holds the write lock; nothing of ours that removes, moves or rolls back
        # ran), so its probe is skipped.
        uow = self.uow
        st = uow.state()
        key = (st, st.txn, uow.writes - 1)
        known = st.depth > 0 and key == self._batch_dirs_key and pp in self._batch_dirs
        inode_id = (self.repo.create_file_in_dir if known else self.repo.create_file)(
            raw, pp, pn, mode, n, cs, now, data if inline else None,
            None if inline else hashlib.sha256(data).digest())
        if inode_id is None:
            return False
        if not inline:
            self.content.put(raw, inode_id, data, new=True)
        if st.depth > 0:
            if key != self._batch_dirs_key:
                self._batch_dirs = set()
            self._batch_dirs.add(pp)
            self._batch_dirs_key = (st, st.txn, uow.writes)
        return True

    def write_files(self, files: list[tuple[str, bytes]], mode: int = FILE_MODE) -> int:
        """Write many whole files in one transaction, as ``write_bytes`` each would (in
        order; all or nothing). In one database, when every path is new and distinct, the
        small files' directories are made first and the files inserted by ONE executemany;
        if any path turns out to exist, that attempt is rolled back and the files are written
        one by one (as they always are over layers: whiteouts and lower entries)."""
        limit = self.inline_max
        small = [(p, d) for p, d in files if len(d) <= limit]
        files = self._shared_duplicates(files, limit)
        if small and not self.resolver.layered and len({p for p, _ in files}) == len(files):
            try:
                with self.uow.write(savepoint=True) as raw:
                    self._create_inline(raw, small, mode)
                    for p, d in files:
                        if len(d) > limit:
                            self._write_one(p, d, mode)
                return len(files)
            except _SomeExist:
                pass
        with self.uow.batch():
            for p, d in files:
                self._write_one(p, d, mode)
        return len(files)

    def _write_one(self, path: str, data: Any, mode: int) -> None:
        if isinstance(data, _Same):
            if self._write_shared(path, data.src, len(data.data), mode):
                return
            data = data.data
        self.write_bytes(path, data, mode=mode)

    def _write_shared(self, path: str, src: str, size: int, mode: int) -> bool:
        """A new file at ``path`` sharing the chunks of the file just written at ``src`` (the
        same bytes); False (nothing done) where that is not simple: ``path`` exists, or the
        tree has layers."""
        if self.resolver.layered:
            return False
        with self.uow.write() as raw:
            source = self.resolver.top(raw, src)
            node, parent_ok = self.resolver.target(raw, path)
            if source is None or source.kind != FILE or source.size != size or \
                    node is not None:
                return False
            if not parent_ok:
                self._parent_dir(raw, path, create=True)
            now = time.time_ns()
            new_id = self.repo.insert(raw, *paths.split(path), FILE, mode, size,
                                      source.chunk_size, now, now)
            self.repo.copy_content(raw, source.id, new_id)
        return True

    def _shared_duplicates(self, files: list[tuple[str, bytes]], limit: int
                           ) -> list[tuple[str, Any]]:
        """Files of a ``write_files`` call whose (chunked) content repeats an earlier one's
        become ``_Same`` markers: written as copies that share its chunks."""
        first: dict[bytes, str] = {}
        out: list[tuple[str, Any]] = []
        if len({p for p, _ in files}) != len(files):
            return files  # a path written twice: an earlier copy may not hold what it did
        # Only contents whose size repeats can be equal: hash those alone (write_bytes hashes
        # every file once more for its digest, so this must not run on the ingest of all).
        sizes = Counter(len(d) for _, d in files if len(d) > limit)
        for p, d in files:
            if sizes[len(d)] > 1 and len(d) > limit:
                h = hashlib.sha256(d).digest()
                earlier = first.get(h)
                if earlier is not None:
                    out.append((p, _Same(earlier, d)))
                    continue
                first[h] = p
            out.append((p, d))
        return out

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

    def _top_file(self, raw: Any, path: str, found: Node | None) -> Node | None:
        """The top layer's file at ``path`` (``found``: what ``path`` resolves to); a
        whiteout there is removed first."""
        top = self.resolver.top_of(raw, path, found)
        if top is not None and top.kind == WHITEOUT:
            self.content.delete(raw, top.id)
            return None
        return top

    def _store_content(self, raw: Any, path: str, existing: Node | None, data: bytes,
                       mtime_ns: int | None, mode: int) -> int:
        """Inside a write: put ``data`` at ``path`` (``existing``: the top layer's file
        there, if any)."""
        return self.content.replace(raw, *paths.split(path), existing, data, mtime_ns, mode)

    # -- metadata and copy-up ---------------------------------------------------------------
    def set_meta(self, path: str, mode: int | None = None, mtime_ns: int | None = None,
                 owner: tuple[int | None, int | None] | None = None,
                 clear_setid: bool = False) -> None:
        """chmod/utime/chown. An entry of an underlay is copied up first. ``owner``: (uid,
        gid), -1 keeping one, None unsetting it; ``clear_setid``: a chown also clears the set-user-ID bit and
        the set-group-ID bit of a group-executable entry (Linux's rule for an unprivileged
        caller)."""
        with self.uow.write() as raw:
            node = self.writable_node(raw, path)
            if owner is not None:
                uid, gid = owner
                new_mode = node.mode
                if clear_setid and node.kind != DIR:
                    new_mode &= ~stat.S_ISUID
                    if new_mode & stat.S_IXGRP:
                        new_mode &= ~stat.S_ISGID
                self.repo.set_owner(raw, node.id, node.uid if uid == -1 else uid,
                                    node.gid if gid == -1 else gid, new_mode)
            if mode is not None:
                self.repo.set_mode(raw, node.id, (node.mode & ~0o7777) | mode)
            if mtime_ns is not None:
                self.repo.touch(raw, node.id, mtime_ns)

    def writable_node(self, raw: Any, path: str) -> Node:
        """Inside a write: the top layer's node at ``path``, copying it up from the layer
        that provides it (a directory gets its own row, a file a copy of its content)."""
        node = self.require(path)
        if node.layer == TOP:
            return node
        self._parent_dir(raw, path, create=True)
        if node.kind == DIR:
            self._put_dir(raw, path, node.mode, node.mtime_ns, node, _ids(node))
        else:
            self._top_file(raw, path, node)
            self._copy_up_file(raw, node, path)
        top = self.resolver.top(raw, path)
        assert top is not None  # just written, in this transaction
        return top

    def create_empty(self, path: str) -> Node:
        """For ``a`` modes: the file exists from the moment it is opened (as with os.open);
        one an underlay provides is copied up."""
        with self.uow.write() as raw:
            node, parent_ok = self.resolver.target(raw, path)
            if node is not None:
                if node.kind == DIR:
                    raise IsADirError.for_path(path)
                special.check_openable(path, node.mode)
                if node.layer == TOP:
                    return node
            if not parent_ok:
                self._parent_dir(raw, path, create=True)
            self._top_file(raw, path, node)
            if node is None:
                now = time.time_ns()
                self.repo.insert(raw, *paths.split(path), FILE, FILE_MODE, 0, self.chunk_size,
                                 now, now)
            else:
                self._copy_up_file(raw, node, path)
            top = self.resolver.top(raw, path)
            assert top is not None  # just written, in this transaction
            return top

    def _copy_up_file(self, raw: Any, node: Node, dst: str, times: tuple[int, int] | None = None
                      ) -> int:
        """Insert a copy of the file ``node`` at ``dst`` in the top layer (keeping its times
        and owner unless ``times`` gives (ctime, mtime): a new copy, whose owner is not set,
        as ``cp`` without ``-p`` gives the copier's); returns the new inode id."""
        ctime, mtime = times if times is not None else (node.ctime_ns, node.mtime_ns)
        new_id = self.repo.insert(raw, *paths.split(dst), FILE, node.mode, node.size,
                                  node.chunk_size, ctime, mtime,
                                  ids=_ids(node) if times is None else (None, None))
        try:
            self._copy_content(raw, node, new_id)
        except Damage as exc:  # the content copied is damaged (named where it goes)
            raise exc.in_file(dst, node.chunk_size) from None
        return new_id

    def _copy_content(self, raw: Any, node: Node, dst_id: int) -> None:
        """A file's content into the (empty) top-layer file ``dst_id``: shared when it is
        this database's; from an underlay, read (checked, decompressed) and written again in
        this database's own encoding, a window of chunks at a time, so that every value here
        is encoded as this database encodes (its uncompressed chunks can be read in part)."""
        if node.layer == TOP:
            self.content.share(raw, node.id, dst_id)
        else:
            self.content.copy_from(raw, self.resolver.reader(node.layer), node, dst_id)

    # -- staged handles (w, x) ----------------------------------------------------------------
    def check_writable_target(self, path: str, exclusive: bool) -> int | None:
        """Before a ``w``/``x`` handle opens: the target must not be a directory (nor exist,
        for ``x``), and its parent must be creatable. Returns the current ctime if any."""
        node = self.resolver.find(path)
        if node is not None:
            if node.kind == DIR:
                raise IsADirError.for_path(path)
            if exclusive:
                raise AlreadyExistsError.for_path(path)
            return node.ctime_ns
        anc = self._file_ancestor(path)
        if anc is not None:
            raise NotADirError.for_path(path, f"not a directory: {anc}")
        return None

    def commit_staged(self, f: ChunkedFile) -> None:
        """Swap a ``w``/``x`` handle's content into place, in one transaction."""
        path = f.name
        with self.uow.write() as raw:
            if self.resolver.folded:  # directories spelled otherwise may have come since open
                path = self.canonical(path)
            node, parent_ok = self.resolver.target(raw, path)
            now = time.time_ns()
            if node is not None:
                if node.kind == DIR:
                    raise IsADirError.for_path(path)
                if f.exclusive:
                    raise AlreadyExistsError.for_path(path, "file was created by someone else "
                                                            "while this 'x' handle was open")
            if not parent_ok:
                self._parent_dir(raw, path, create=True)
            top = self._top_file(raw, path, node)
            ctime = top.ctime_ns if top is not None else (f.ctime_ns or now)
            if f.inode_id is None:
                # Everything is still in memory: write it straight into place.
                f.inode_id = self._store_content(raw, path, top, f.staged_content(), now,
                                                 FILE_MODE)
            else:
                if top is not None:
                    self.content.delete(raw, top.id)
                f.write_pending(raw, f.inode_id)
                self.content.place(raw, f.inode_id, *paths.split(path), f.size, ctime, now,
                                   f.digest, _ids(top))
        f.staged = False

    def reclaim_staging(self) -> int:
        """Delete staging rows left by crashed writers (their process no longer exists)."""
        with self.uow.read_lock:
            rows = self.repo.staging_rows(self.uow.raw())
        dead = [i for i, owner in rows if owner is None or not owner_alive(owner)]
        if dead:
            with self.uow.write() as raw:
                for inode_id in dead:
                    self.content.delete(raw, inode_id)
        return len(dead)

    # -- removal --------------------------------------------------------------------------
    def _checked(self, path: str, want: str) -> Node:
        node = self.require(path)
        if want == "file" and node.kind == DIR:
            raise IsADirError.for_path(path)
        if want == "dir" and node.kind != DIR:
            raise NotADirError.for_path(path)
        return node

    def _drop(self, raw: Any, path: str, found: Node, subtree: bool) -> None:
        """Remove ``path`` (and its subtree) from the merged view: delete the top layer's
        rows, white out what the underlays have there."""
        top = self.resolver.top_of(raw, path, found)
        if top is not None:
            if subtree:
                lo, hi = paths.subtree_bounds(path)
                self.content.delete_tree(raw, top.id, path, lo, hi)
            else:
                self.content.delete(raw, top.id)
        keys = self.resolver.lower_keys(path, subtree)
        if keys:
            # The whiteouts' directory is copied up first, so that the top layer stays a
            # tree of its own (check() verifies it) wherever the removed path came from.
            self._parent_dir(raw, path, create=False)
            self._whiteout(raw, keys, time.time_ns())

    def _whiteout(self, raw: Any, keys: list[tuple[str, str]], now: int) -> None:
        for parent, name in keys:
            top = self.resolver.top(raw, paths.join(parent, name))
            if top is not None:
                if top.kind == WHITEOUT:
                    continue
                self.content.delete(raw, top.id)
            self.repo.insert(raw, parent, name, WHITEOUT, 0, 0, 0, now, now)

    def _clear_whiteout(self, raw: Any, path: str) -> None:
        """Remove a whiteout sitting exactly at ``path`` in the top layer (whiteouts below
        it stay: they keep hiding the underlays' old entries)."""
        self._top_file(raw, path, None)

    def remove(self, path: str) -> None:
        with self.uow.write() as raw:
            self._drop(raw, path, self._checked(path, "file"), subtree=False)

    def rmdir(self, path: str) -> None:
        with self.uow.write() as raw:
            node = self._checked(path, "dir")
            if self.resolver.has_entries(path):
                raise DirNotEmptyError.for_path(path)
            self._drop(raw, path, node, subtree=True)

    def rmtree(self, path: str) -> None:
        with self.uow.write() as raw:
            self._drop(raw, path, self._checked(path, "dir"), subtree=True)

    # -- move and copy --------------------------------------------------------------------
    def move(self, src: str, dst: str, *, overwrite: bool) -> None:
        """``rename`` (``overwrite=False``: an existing destination is EEXIST, as the seed did)
        and ``replace`` (POSIX rename). An entry only the top layer has moves with its whole
        subtree in one statement; one with content in underlays is copied up to ``dst`` and
        whited out at ``src``."""
        r = self.resolver
        with self.uow.write(savepoint=r.layered) as raw:
            node = r.find(src)
            if node is None:
                raise self._move_miss(src, dst)
            is_dir = node.kind == DIR
            if is_dir and paths.is_within(dst, src) and dst != src:
                raise self.into_itself_error(src, dst)
            target = r.find(dst)
            if target is not None and dst != src and (target.layer, target.id) == \
                    (node.layer, node.id):
                target = None  # a rename that only changes case (case-insensitive database)
            if target is not None:
                if not overwrite:
                    raise AlreadyExistsError.for_path(src, "destination exists", dst)
                if (target.layer, target.id) == (node.layer, node.id):
                    return
                if target.kind == DIR:
                    if not is_dir:
                        raise IsADirError.for_path(src, "destination is a directory", dst)
                    if r.has_entries(dst):
                        raise DirNotEmptyError.for_path(src, "destination directory not empty",
                                                        dst)
                elif is_dir:
                    raise NotADirError.for_path(src, "destination is not a directory", dst)
                self._drop(raw, dst, target, subtree=target.kind == DIR)
            self._parent_dir(raw, dst, create=True)
            if not r.lower_keys(src, subtree=True):
                if r.layered:
                    self._clear_whiteouts_for(raw, src, dst)
                self._move_rows(raw, src, dst, node.id)
                return
            self._clear_whiteout(raw, dst)
            self._materialize(raw, src, dst, node)
            self._drop(raw, src, node, subtree=True)

    def _move_miss(self, src: str, dst: str) -> VFSError:
        """A missing source. Like Linux, both parents are resolved before the source entry:
        a destination whose parent path runs through a file is ENOTDIR."""
        err = self.miss_error(src)
        sp = paths.split(src)[0]
        if isinstance(err, NotFoundError) and sp and self.resolver.find(sp) is not None:
            dst_err = self.miss_error(dst)
            if isinstance(dst_err, NotADirError):
                return dst_err
        return err

    def into_itself_error(self, src: str, dst: str) -> VFSError:
        """Moving a directory below itself: EINVAL, unless resolving ``dst`` already fails
        on a file (Linux resolves both paths before it compares them: ENOTDIR)."""
        err = self.miss_error(dst)
        if isinstance(err, NotADirError):
            return NotADirError.for_path(src, f"not a directory: {err.strerror}", dst)
        return InvalidOperationError.for_path(src, "cannot move a directory into itself", dst)

    def _clear_whiteouts_for(self, raw: Any, src: str, dst: str) -> None:
        """Before moving the top layer's ``src`` to ``dst``: whiteouts at ``dst`` and at
        every path its subtree lands on would collide with the moved rows."""
        self._clear_whiteout(raw, dst)
        cut = len(src)
        lo, hi = paths.subtree_bounds(src)
        for parent, name, *_ in self.repo.subtree(raw, src, lo, hi):
            new_parent = dst + parent[cut:] if parent != src else dst
            self._clear_whiteout(raw, paths.join(new_parent, name))

    def _move_rows(self, raw: Any, src: str, dst: str, inode_id: int) -> None:
        """The one-statement move of an entry and its subtree within the top layer."""
        dp, dn = paths.split(dst)
        lo, hi = paths.subtree_bounds(src)
        self.repo.move(raw, inode_id, src, lo, hi, dp, dn, dst)
        self.repo.touch(raw, inode_id, time.time_ns())

    def _materialize(self, raw: Any, src: str, dst: str, node: Node) -> None:
        """Write the merged view of ``src`` (a file, or a directory and everything below)
        into the top layer at ``dst``, keeping modes and times."""
        now = time.time_ns()
        if node.kind != DIR:
            self._top_file(raw, dst, None)
            self._copy_up_file(raw, node, dst)
            return
        self._put_dir(raw, dst, node.mode, now, None, _ids(node))
        for e, target in self._rebased(self.resolver.subtree(src), src, dst):
            if e.node.kind == DIR:
                self._put_dir(raw, target, e.node.mode, now, None, _ids(e.node))
            else:
                self._top_file(raw, target, None)
                self._copy_up_file(raw, e.node, target)

    def _rebased(self, entries: list[TreeEntry], src: str, dst: str
                 ) -> Iterator[tuple[TreeEntry, str]]:
        """Each entry below ``src`` with its path below ``dst``, parents before children.
        An entry's new parent is the new path given to ITS directory, not ``dst`` plus the
        rest of its parent's spelling: over a case-insensitive top, an underlay may spell a
        directory otherwise (another case, NFD) than the entry that directory is listed as."""
        key: Callable[[str], str] = paths.fold if self.resolver.folded else str
        moved = {key(src): dst}
        for e in sorted(entries, key=lambda x: (x.parent.count("/"), x.parent, x.name)):
            parent = moved.get(key(e.parent))
            if parent is None:
                continue  # below a file or a missing directory (a damaged or hostile layer)
            target = paths.join(parent, e.name)
            moved.setdefault(key(paths.join(e.parent, e.name)), target)
            yield e, target

    def copy_file(self, src: str, dst: str) -> None:
        """Copy one file (no bytes pass through Python while both are on one connection).
        The copy is new (ctime and mtime now); replacing a file keeps that file's ctime."""
        with self.uow.write() as raw:
            node = self.require(src)
            if node.kind == DIR:
                raise IsADirError.for_path(src)
            target = self.resolver.find(dst)
            now = time.time_ns()
            ctime = now
            if target is not None:
                if target.kind == DIR:
                    raise IsADirError.for_path(dst)
                if (target.layer, target.id) == (node.layer, node.id):
                    raise InvalidOperationError.for_path(src, "source and destination are the "
                                                              "same file", dst)
            self._parent_dir(raw, dst, create=True)
            top = self._top_file(raw, dst, target)
            if top is not None:
                ctime = top.ctime_ns
                self.content.delete(raw, top.id)
            self._copy_up_file(raw, node, dst, (ctime, now))

    def copytree(self, src: str, dst: str, dirs_exist_ok: bool) -> None:
        """Copy a directory tree in one transaction, chunks copied inside the database."""
        r = self.resolver
        with self.uow.write(savepoint=True) as raw:
            node = self.require(src)
            if node.kind != DIR:
                raise NotADirError.for_path(src)
            if paths.is_within(dst, src):
                raise InvalidOperationError.for_path(
                    src, "cannot copy a directory into itself", dst)
            target = r.find(dst)
            if target is not None and not (dirs_exist_ok and target.kind == DIR):
                raise AlreadyExistsError.for_path(src, "destination exists", dst)
            self._parent_dir(raw, dst, create=True)
            entries = r.subtree(src)
            now = time.time_ns()
            self._put_dir(raw, dst, node.mode, now, target)
            for e, at in self._rebased(entries, src, dst):
                existing = r.find(at)
                if e.node.kind == DIR:
                    if existing is not None and existing.kind != DIR:
                        raise NotADirError.for_path(at)
                    self._put_dir(raw, at, e.node.mode, now, existing)
                    continue
                if existing is not None and existing.kind == DIR:
                    raise IsADirError.for_path(at)
                top = self._top_file(raw, at, existing)
                if top is not None:
                    self.content.delete(raw, top.id)
                self._copy_up_file(raw, e.node, at, (now, now))
