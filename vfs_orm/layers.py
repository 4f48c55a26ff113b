"""Layers: read-only underlays ATTACHed to the top database, resolved by one SQL statement.

The top database is the only one ever written. Underlays are attached read-only (``mode=ro``
URIs; in-memory underlays through the ``memdb`` VFS, so a live in-memory VFS stays live), and a
path resolves across all of them with ONE statement: a UNION ALL over the schemas ordered by
priority (``repository.StackRepository``).

Deep stacks. SQLite allows 10 attached databases per connection on this build
(``SQLITE_LIMIT_ATTACHED``). The top connection carries the top layer and the first 10
underlays (group 0); every further 10 underlays are attached to an extra read-only connection
of the same thread (groups 1, 2, ...). A lookup runs group by group in priority order and stops
at the first hit, so it costs one statement per group searched; listings and globs run one
statement per group and merge by priority in Python.

Resolution is by exact path, as in the seed library (and PhysFS): the highest layer holding an
entry at a path provides it. Deleting (``remove``, ``rmdir``, ``rmtree``, ``rename``) something
that lives in an underlay records *whiteouts* (kind 3 rows) in the top layer, one per lower
entry hidden, so every query (exists, stat, listdir, walk, glob, open, which_layer) agrees and
``mkdir`` over a removed directory gives an empty (opaque) directory. Writing a whited-out path
brings it back with the new content. ``rename`` of an entry that lives (partly) in underlays
copies it up into the top layer (content copied inside SQLite), then whites out the source.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vfs_orm import paths
from vfs_orm.errors import (
    AlreadyExistsError,
    DirNotEmptyError,
    InvalidOperationError,
    IsADirError,
    NotADirError,
    NotFoundError,
    VFSError,
)
from vfs_orm.repository import (
    CHUNK_SPAN,
    InodeRepository,
    StackRepository,
    inode_repository,
    stack_repository,
)
from vfs_orm.tree import CHUNK, CTIME, DIR, FILE, ID, KIND, MODE, MTIME, SIZE, Tree
from vfs_orm.types import DIR_MODE, FILE_MODE, InodeKind, StatResult
from vfs_orm.uow import ThreadConnection, UnitOfWork

if TYPE_CHECKING:
    from vfs_orm._io import ChunkedFile

WHITEOUT = int(InodeKind.WHITEOUT)
LOCAL = "local"


@dataclass(frozen=True)
class Layer:
    """One underlay of a stack."""

    name: str
    priority: int
    alias: str  # generated ("l1", "l2", ...), never taken from user input
    uri: str  # read-only URI it is attached with
    db_path: str
    uuid: str | None = None
    source: Any = field(default=None, compare=False, repr=False)  # a live VFS, kept alive


@dataclass(frozen=True)
class LayerStack:
    """An immutable snapshot of the underlays, highest priority first."""

    version: int
    layers: tuple[Layer, ...]
    per_connection: int = 10
    busy_timeout: float = 30.0

    # -- shape ----------------------------------------------------------------------------
    @functools.cached_property
    def groups(self) -> tuple[tuple[tuple[int, str], ...], ...]:
        """(priority index, schema) entries per connection group; index 0 is the top."""
        n = self.per_connection
        first = ((0, "main"),) + tuple((k + 1, lay.alias) for k, lay in enumerate(self.layers[:n]))
        out = [first]
        for start in range(n, len(self.layers), n):
            out.append(tuple((k + 1, self.layers[k].alias)
                             for k in range(start, min(start + n, len(self.layers)))))
        return tuple(out)

    @functools.cached_property
    def repos(self) -> tuple[StackRepository, ...]:
        return tuple(stack_repository(g) for g in self.groups)

    def group_of(self, prio: int) -> int:
        n = self.per_connection
        return 0 if prio <= n else 1 + (prio - 1 - n) // n

    def schema_of(self, prio: int) -> str:
        return "main" if prio == 0 else self.layers[prio - 1].alias

    def name_of(self, prio: int) -> str:
        return LOCAL if prio == 0 else self.layers[prio - 1].name

    # -- attaching ------------------------------------------------------------------------
    def apply(self, st: ThreadConnection) -> None:
        """Bring one thread's connections to this stack: DETACH what left, ATTACH what came.

        DETACH is impossible inside a transaction; a connection in the middle of one keeps
        the stack it had until the transaction ends (a consistent snapshot)."""
        if st.raw.in_transaction:
            return
        wanted = [(lay.alias, lay.uri) for lay in self.layers]
        n = self.per_connection
        _attach_set(st.raw, st.attached, dict(wanted[:n]))
        rest = [dict(wanted[i:i + n]) for i in range(n, len(wanted), n)]
        while len(st.aux) > len(rest):
            st.aux.pop().close()
        for k, want in enumerate(rest):
            if k == len(st.aux):
                # uri=True: the ATTACHed names are file: URIs (mode=ro, memdb).
                aux = _AuxConnection(sqlite3.connect(
                    "file::memory:", uri=True, isolation_level=None, check_same_thread=False,
                    timeout=self.busy_timeout))
                aux.raw.execute("PRAGMA trusted_schema=OFF")
                st.aux.append(aux)
            _attach_set(st.aux[k].raw, st.aux[k].attached, want)
        st.stack = self


class _AuxConnection:
    """An extra read-only connection of one thread, holding the underlays of one group."""

    __slots__ = ("attached", "raw")

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw
        self.attached: dict[str, str] = {}

    def close(self) -> None:
        self.raw.close()


def _attach_set(raw: sqlite3.Connection, have: dict[str, str], want: dict[str, str]) -> None:
    for alias in [a for a in have if want.get(a) != have[a]]:
        raw.execute(f'DETACH DATABASE "{alias}"')
        del have[alias]
    for alias, uri in want.items():
        if alias not in have:
            if not (alias.isidentifier() and alias.isascii()):
                raise VFSError.for_path(None, f"invalid layer alias {alias!r}")
            raw.execute(f'ATTACH DATABASE ? AS "{alias}"', (uri,))
            have[alias] = uri


EMPTY = LayerStack(0, ())


def _conn(st: ThreadConnection, group: int) -> sqlite3.Connection:
    return st.raw if group == 0 else st.aux[group - 1].raw


def _layer_raw(uow: UnitOfWork, group: int) -> sqlite3.Connection:
    """The connection holding a group's schemas, for the calling thread (handles may move
    between threads)."""
    return _conn(uow.view(), group)


class LayeredTree(Tree):
    """``Tree`` over a stack: every method falls back to the single-database fast path when
    no underlay is attached."""

    # -- resolution -----------------------------------------------------------------------
    def _st(self) -> tuple[ThreadConnection, LayerStack]:
        st = self.uow.view()
        return st, (st.stack or EMPTY)

    def layered(self) -> bool:
        stack = self.uow.stack
        return stack is not None and bool(stack.layers)

    def resolve(self, path: str) -> tuple[Any, ...] | None:
        """(prio, *inode row) of the entry that provides ``path``, None if nothing does (or
        the highest entry is a whiteout)."""
        row = self._first_hit("resolve", path)
        return None if row is None or row[1 + KIND] == WHITEOUT else row

    def _first_hit(self, method: str, path: str) -> tuple[Any, ...] | None:
        """Search the connection groups in priority order with one statement each; the first
        row found (maybe a whiteout) is the highest layer's."""
        parent, name = paths.split(path)
        st, stack = self._st()
        with self.uow.read_lock:
            for g, repo in enumerate(stack.repos):
                row = getattr(repo, method)(_conn(st, g), parent, name)
                if row is not None:
                    return row  # type: ignore[no-any-return]
        return None

    def resolve_all(self, path: str) -> list[tuple[Any, ...]]:
        parent, name = paths.split(path)
        st, stack = self._st()
        out: list[tuple[Any, ...]] = []
        with self.uow.read_lock:
            for g, repo in enumerate(stack.repos):
                out += repo.resolve_all(_conn(st, g), parent, name)
        return out

    def _merged(self, method: str, keylen: int, *args: Any) -> list[tuple[Any, ...]]:
        """Run a listing statement on every group and keep, per key, the highest layer's row
        (rows are (prio, *key, ...); whiteouts dropped after the merge)."""
        st, stack = self._st()
        best: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        with self.uow.read_lock:
            for g, repo in enumerate(stack.repos):
                for row in getattr(repo, method)(_conn(st, g), *args):
                    key = row[1:1 + keylen]
                    if key not in best:
                        best[key] = row
        return [r for r in best.values() if r[_kind_pos(method)] != WHITEOUT]

    def lookup(self, path: str) -> tuple[Any, ...] | None:
        if not self.layered():
            return super().lookup(path)
        row = self.resolve(path)
        return None if row is None else row[1:]

    def exists(self, path: str) -> bool:
        if not self.layered():
            return super().exists(path)
        return self.resolve(path) is not None

    def stat(self, path: str) -> StatResult:
        if not self.layered():
            return super().stat(path)
        row = self.resolve(path)
        if row is None:
            raise self.miss_error(path)
        stack = self._st()[1]
        r = row[1:]
        return StatResult(r[SIZE] if r[KIND] == FILE else 0, r[CTIME], r[MTIME], r[MODE],
                          stack.name_of(row[0]), r[ID])

    def which(self, path: str) -> str | None:
        row = self.resolve(path) if self.layered() else (
            None if super().lookup(path) is None else (0,))
        return None if row is None else self._st()[1].name_of(row[0])

    def which_detailed(self, path: str) -> dict[str, Any]:
        stack = self._st()[1]
        rows = {r[0]: r for r in self.resolve_all(path)} if self.layered() else (
            {0: (0, *super().lookup(path))} if super().lookup(path) is not None else {})
        layers = []
        winner = None
        for prio in range(len(stack.layers) + 1):
            row = rows.get(prio)
            has = row is not None and row[1 + KIND] != WHITEOUT
            info: dict[str, Any] = {"name": stack.name_of(prio), "has_file": has}
            if row is not None:
                info["kind"] = {FILE: "file", DIR: "directory", WHITEOUT: "whiteout"}[row[1 + KIND]]
            layers.append(info)
            if winner is None and row is not None:
                winner = stack.name_of(prio) if has else None
                if not has:
                    winner = ""  # hidden by a whiteout: stop looking
        return {"path": path, "resolved_from": winner or None, "layers": layers}

    def miss_error(self, path: str) -> VFSError:
        if not self.layered():
            return super().miss_error(path)
        anc = self._file_ancestor(path)
        if anc is not None:
            return NotADirError.for_path(path, f"not a directory: {anc}")
        return NotFoundError.for_path(path)

    def _file_ancestor(self, path: str) -> str | None:
        """The first ancestor of ``path`` that resolves to a non-directory (the ENOTDIR
        case), or None if the ancestors are directories down to the first missing one."""
        for anc in paths.parents(path)[1:]:
            row = self.resolve(anc)
            if row is None:
                return None
            if row[1 + KIND] != DIR:
                return anc
        return None

    def listdir(self, path: str) -> list[str]:
        if not self.layered():
            return super().listdir(path)
        return [r[1] for r in self.entries_with_prio(path)]

    def entries_with_prio(self, path: str) -> list[tuple[Any, ...]]:
        row = self.resolve(path)
        if row is None:
            raise self.miss_error(path)
        if row[1 + KIND] != DIR:
            raise NotADirError.for_path(path)
        return sorted(self._merged("list", 1, path), key=lambda r: r[1])

    def entries(self, path: str) -> list[tuple[Any, ...]]:
        if not self.layered():
            return super().entries(path)
        return [r[1:] for r in self.entries_with_prio(path)]

    def subtree(self, path: str) -> list[tuple[Any, ...]]:
        if not self.layered():
            return super().subtree(path)
        lo, hi = paths.subtree_bounds(path)
        rows = self._merged("subtree", 2, path, lo, hi)
        return [r[1:] for r in sorted(rows, key=lambda r: (r[1], r[2]))]

    def subtree_with_prio(self, path: str) -> list[tuple[Any, ...]]:
        lo, hi = paths.subtree_bounds(path)
        return sorted(self._merged("subtree", 2, path, lo, hi), key=lambda r: (r[1], r[2]))

    def glob_in(self, parent: str, name_glob: str) -> list[str]:
        if not self.layered():
            return super().glob_in(parent, name_glob)
        return sorted(r[1] for r in self._merged("glob_in", 1, parent, name_glob))

    def glob_levels(self, prefix: str, globs: tuple[str, ...]) -> list[str]:
        if not self.layered():
            return super().glob_levels(prefix, globs)
        # Across layers a directory level may come from any layer, so the levels are not
        # joined: one GLOB on the parent path with exactly as many "/" as the pattern (a
        # segment GLOB never holds "/"), merged by priority.
        parent_glob = (prefix if prefix != "/" else "") + "/" + "/".join(globs[:-1])
        depth = parent_glob.count("/")
        return [paths.join(r[1], r[2])
                for r in self._merged("glob_level", 2, parent_glob, depth, globs[-1])]

    def glob_below(self, top: str, name_glob: str) -> list[tuple[str, str, int]]:
        if not self.layered():
            return super().glob_below(top, name_glob)
        lo, hi = paths.subtree_bounds(top)
        return [r[1:] for r in self._merged("glob_below", 2, top, lo, hi, name_glob)]

    def _resolve_first(self, path: str) -> tuple[Any, ...]:
        """(prio, *inode, first chunk) of the file at ``path``; errors for misses and dirs."""
        row = self._first_hit("resolve_first", path)
        if row is None or row[1 + KIND] == WHITEOUT:
            raise self.miss_error(path)
        if row[1 + KIND] == DIR:
            raise IsADirError.for_path(path)
        return row

    def read_bytes(self, path: str) -> bytes:
        """Small files: one statement per connection group searched (resolution and the
        first chunk together); bigger ones read the rest from the winning layer."""
        if not self.layered():
            return super().read_bytes(path)
        row = self._resolve_first(path)
        size, cs, first = row[1 + SIZE], row[1 + CHUNK], row[-1]
        if first is not None and len(first) == size:
            return bytes(first)
        repo, raw = self._layer_reader(row[0])
        from vfs_orm._io import _scatter

        rows = repo.read_span(raw, row[1 + ID], 0, CHUNK_SPAN)
        out = bytearray(size)
        _scatter(memoryview(out), rows, 0, size, cs or 1)
        return bytes(out)

    def _layer_reader(self, prio: int) -> tuple[InodeRepository, sqlite3.Connection]:
        st, stack = self._st()
        return inode_repository(stack.schema_of(prio)), _conn(st, stack.group_of(prio))

    def reader_args(self, path: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """For ``VFS.open`` in read mode: the inode row (plus first chunk) and where to read."""
        if not self.layered():
            return super().reader_args(path)
        row = self._resolve_first(path)
        if row[0] == 0:
            return row[1:], {}
        stack = self._st()[1]
        group = stack.group_of(row[0])
        return row[1:], {
            "repo": inode_repository(stack.schema_of(row[0])),
            "raw_fn": functools.partial(_layer_raw, self.uow, group)}

    # -- writes ---------------------------------------------------------------------------
    def _resolve_in(self, raw: Any, path: str) -> tuple[Any, ...] | None:
        """Resolution inside a write (same connection, so it sees the transaction)."""
        return self.resolve(path)

    def _top_row(self, raw: Any, path: str) -> tuple[Any, ...] | None:
        pp, pn = paths.split(path)
        return self.repo.lookup(raw, pp, pn)

    def _parent_dir(self, raw: Any, path: str, create: bool) -> None:
        """Every ancestor must be a directory in the merged view; ancestors that exist only
        in underlays (or not at all, when ``create``) are created in the top layer, so the
        top layer stays a complete tree on its own."""
        if not self.layered():
            return super()._parent_dir(raw, path, create)
        todo = []
        for anc in paths.parents(path)[1:]:
            row = self.resolve(anc)
            if row is None:
                if not create:
                    raise NotFoundError.for_path(path, f"no such directory: {anc}")
                todo.append(anc)
            elif row[1 + KIND] != DIR:
                raise NotADirError.for_path(path, f"not a directory: {anc}")
            elif row[0] != 0:
                todo.append(anc)
        now = time.time_ns()
        for anc in todo:
            self._put_dir(raw, anc, DIR_MODE, now)

    def _put_dir(self, raw: Any, path: str, mode: int, now: int) -> None:
        """A directory row in the top layer (replacing a whiteout there)."""
        pp, pn = paths.split(path)
        top = self.repo.lookup(raw, pp, pn)
        if top is not None:
            if top[KIND] == DIR:
                return
            self.repo.delete(raw, top[ID])
        self.repo.insert(raw, pp, pn, DIR, mode, 0, 0, now, now)

    def _whiteout(self, raw: Any, keys: list[tuple[str, str]], now: int) -> None:
        for parent, name in keys:
            top = self.repo.lookup(raw, parent, name)
            if top is not None:
                if top[KIND] == WHITEOUT:
                    continue
                self.repo.delete(raw, top[ID])
            self.repo.insert(raw, parent, name, WHITEOUT, 0, 0, 0, now, now)

    def _lower_keys(self, path: str, subtree: bool) -> list[tuple[str, str]]:
        """(parent, name) of every entry of the underlays at ``path`` (and below it)."""
        st, stack = self._st()
        lo, hi = paths.subtree_bounds(path) if subtree else ("\x00", "\x00")
        keys: set[tuple[str, str]] = set()
        for g, repo in enumerate(stack.repos):
            keys.update(repo.lower_keys(_conn(st, g), path, lo, hi))
        return sorted(keys, key=lambda k: (len(k[0]), k))

    def _hide(self, raw: Any, path: str, subtree: bool) -> None:
        """Delete ``path`` (and its subtree) from the top layer and white out what the
        underlays have there."""
        pp, pn = paths.split(path)
        top = self.repo.lookup(raw, pp, pn)
        if top is not None:
            if subtree:
                lo, hi = paths.subtree_bounds(path)
                self.repo.delete_tree(raw, top[ID], path, lo, hi)
            else:
                self.repo.delete(raw, top[ID])
        self._whiteout(raw, self._lower_keys(path, subtree), time.time_ns())

    def mkdir(self, path: str, parents: bool, exist_ok: bool, mode: int = DIR_MODE) -> None:
        if not self.layered():
            return super().mkdir(path, parents, exist_ok, mode)
        with self.uow.write() as raw:
            row = self.resolve(path)
            if row is not None:
                if row[1 + KIND] == DIR and exist_ok:
                    return
                raise AlreadyExistsError.for_path(path)
            self._parent_dir(raw, path, create=parents)
            self._put_dir(raw, path, mode, time.time_ns())

    def _bulk_ok(self) -> bool:
        return not self.layered()  # whiteouts and lower entries: file by file

    def write_bytes(self, path: str, data: bytes, *, exclusive: bool = False,
                    mtime_ns: int | None = None, mode: int = FILE_MODE) -> int:
        if not self.layered():
            return super().write_bytes(path, data, exclusive=exclusive, mtime_ns=mtime_ns,
                                       mode=mode)
        with self.uow.write() as raw:
            row = self.resolve(path)
            if row is not None:
                if row[1 + KIND] == DIR:
                    raise IsADirError.for_path(path)
                if exclusive:
                    raise AlreadyExistsError.for_path(path)
            self._parent_dir(raw, path, create=True)
            self._store_content(raw, path, self._top_file(raw, path), data, mtime_ns, mode)
        return len(data)

    def _top_file(self, raw: Any, path: str) -> tuple[Any, ...] | None:
        """The top layer's file row at ``path``; a whiteout there is removed first."""
        top = self._top_row(raw, path)
        if top is not None and top[KIND] == WHITEOUT:
            self.repo.delete(raw, top[ID])
            return None
        return top

    def commit_staged(self, f: ChunkedFile) -> None:
        if not self.layered():
            return super().commit_staged(f)
        path = f.name
        with self.uow.write() as raw:
            row = self.resolve(path)
            now = time.time_ns()
            if row is not None:
                if row[1 + KIND] == DIR:
                    raise IsADirError.for_path(path)
                if f._exclusive:
                    raise AlreadyExistsError.for_path(path, "file was created by someone else "
                                                            "while this 'x' handle was open")
            self._parent_dir(raw, path, create=True)
            top = self._top_file(raw, path)
            ctime = top[CTIME] if top is not None else (f._ctime_ns or now)
            self._place_staged(raw, f, path, top, ctime, now)
        f._staged = False

    def check_writable_target(self, path: str, exclusive: bool) -> int | None:
        if not self.layered():
            return super().check_writable_target(path, exclusive)
        row = self.resolve(path)
        if row is not None:
            if row[1 + KIND] == DIR:
                raise IsADirError.for_path(path)
            if exclusive:
                raise AlreadyExistsError.for_path(path)
            return int(row[1 + CTIME])
        anc = self._file_ancestor(path)
        if anc is not None:
            raise NotADirError.for_path(path, f"not a directory: {anc}")
        return None

    def create_empty(self, path: str) -> tuple[Any, ...]:
        """For ``a``/``r+`` modes: a file of an underlay is copied up first."""
        if not self.layered():
            return super().create_empty(path)
        with self.uow.write() as raw:
            row = self.resolve(path)
            if row is not None and row[1 + KIND] == DIR:
                raise IsADirError.for_path(path)
            if row is not None and row[0] == 0:
                return row[1:]
            self._parent_dir(raw, path, create=True)
            self._top_file(raw, path)
            pp, pn = paths.split(path)
            now = time.time_ns()
            if row is None:
                self.repo.insert(raw, pp, pn, FILE, FILE_MODE, 0, self.chunk_size, now, now)
            else:
                self._copy_up_file(raw, row, path)
            return self.repo.lookup(raw, pp, pn)  # type: ignore[return-value]

    def writable_row(self, raw: Any, path: str) -> tuple[Any, ...]:
        if not self.layered():
            return super().writable_row(raw, path)
        row = self.resolve(path)
        if row is None:
            raise self.miss_error(path)
        if row[0] != 0:
            if row[1 + KIND] == DIR:
                self._parent_dir(raw, path, create=True)
                self._put_dir(raw, path, row[1 + MODE], row[1 + MTIME])
            else:
                self._parent_dir(raw, path, create=True)
                self._top_file(raw, path)
                self._copy_up_file(raw, row, path)
        return super().writable_row(raw, path)

    def copy_up(self, path: str) -> tuple[Any, ...]:
        """For ``r+``: the file must exist; one of an underlay is copied into the top layer
        first, so in-place writes never reach an underlay."""
        row = self.resolve(path)
        if row is None:
            raise self.miss_error(path)
        if row[1 + KIND] == DIR:
            raise IsADirError.for_path(path)
        if row[0] == 0:
            return row[1:]
        return self.create_empty(path)

    def _copy_up_file(self, raw: Any, row: tuple[Any, ...], dst: str) -> int:
        """Insert a copy of the resolved file ``row`` (prio, *inode) at ``dst`` in the top."""
        prio, r = row[0], row[1:]
        dp, dn = paths.split(dst)
        new_id = self.repo.insert(raw, dp, dn, FILE, r[MODE], r[SIZE], r[CHUNK], r[CTIME],
                                  r[MTIME])
        self._copy_content(raw, prio, r[ID], new_id)
        return new_id

    def _copy_content(self, raw: Any, prio: int, src_id: int, dst_id: int) -> None:
        stack = self._st()[1]
        if prio == 0:
            self.repo.copy_content(raw, src_id, dst_id)
        elif stack.group_of(prio) == 0:
            self.repo.copy_content_from(raw, stack.schema_of(prio), src_id, dst_id)
        else:  # another connection: the bytes pass through Python (inline ones as chunk 0)
            repo, lraw = self._layer_reader(prio)
            rows = repo.read_span(lraw, src_id, 0, CHUNK_SPAN)
            self.repo.put_chunks(raw, ((dst_id, r[2], r[3]) for r in rows if r[3] is not None))

    def _entry(self, raw: Any, path: str) -> tuple[Any, ...] | None:
        if not self.layered():
            return super()._entry(raw, path)
        row = self.resolve(path)
        return None if row is None else row[1:]

    def _has_entries(self, raw: Any, path: str) -> bool:
        if not self.layered():
            return super()._has_entries(raw, path)
        return bool(self._merged("list", 1, path))

    def _drop(self, raw: Any, path: str, row: tuple[Any, ...], subtree: bool) -> None:
        if not self.layered():
            return super()._drop(raw, path, row, subtree)
        self._hide(raw, path, subtree)

    def move(self, src: str, dst: str, *, overwrite: bool) -> None:
        """Across layers: an entry of the top layer alone moves with one statement; one that
        has content in underlays is copied up to ``dst`` and whited out at ``src``."""
        if not self.layered():
            return super().move(src, dst, overwrite=overwrite)
        with self.uow.write(savepoint=True) as raw:
            row = self.resolve(src)
            if row is None:
                raise self.miss_error(src)
            is_dir = row[1 + KIND] == DIR
            if is_dir and paths.is_within(dst, src) and dst != src:
                raise self.into_itself_error(src, dst)
            target = self.resolve(dst)
            if target is not None:
                if not overwrite:
                    raise AlreadyExistsError.for_path(src, "destination exists", dst)
                if dst == src:
                    return
                if target[1 + KIND] == DIR:
                    if not is_dir:
                        raise IsADirError.for_path(src, "destination is a directory", dst)
                    if self._has_entries(raw, dst):
                        raise DirNotEmptyError.for_path(src, "destination directory not empty",
                                                        dst)
                elif is_dir:
                    raise NotADirError.for_path(src, "destination is not a directory", dst)
                self._hide(raw, dst, subtree=True)
            self._parent_dir(raw, dst, create=True)
            lower = bool(self._lower_keys(src, subtree=True))
            if not lower:
                # Top layer only: clear whiteouts in the way, then the one-statement move.
                self._clear_top(raw, dst)
                cut = len(src)
                lo, hi = paths.subtree_bounds(src)
                for parent, name, *_ in self.repo.subtree(raw, src, lo, hi):
                    new_parent = dst + parent[cut:] if parent != src else dst
                    self._clear_top(raw, paths.join(new_parent, name))
                super()._move_rows(raw, src, dst)
                return
            self._clear_top(raw, dst)
            self._materialize(raw, src, dst, row)
            self._hide(raw, src, subtree=True)

    def _clear_top(self, raw: Any, path: str) -> None:
        """Remove a whiteout sitting exactly at ``path`` in the top layer (whiteouts below
        it stay: they keep hiding the underlays' old entries)."""
        top = self._top_row(raw, path)
        if top is not None and top[KIND] == WHITEOUT:
            self.repo.delete(raw, top[ID])

    def _materialize(self, raw: Any, src: str, dst: str, row: tuple[Any, ...]) -> None:
        """Write the merged view of ``src`` (a file, or a directory and everything below)
        into the top layer at ``dst``."""
        now = time.time_ns()
        if row[1 + KIND] != DIR:
            self._top_file(raw, dst)
            self._copy_up_file(raw, row, dst)
            return
        self._put_dir(raw, dst, row[1 + MODE], now)
        cut = len(src)
        for r in self.subtree_with_prio(src):
            prio, parent, name, inode = r[0], r[1], r[2], r[3:]
            new_parent = dst + parent[cut:] if parent != src else dst
            target = paths.join(new_parent, name)
            if inode[KIND] == DIR:
                self._put_dir(raw, target, inode[MODE], now)
            else:
                self._top_file(raw, target)
                self._copy_up_file(raw, (prio, *inode), target)

    def copy_file(self, src: str, dst: str) -> None:
        if not self.layered():
            return super().copy_file(src, dst)
        with self.uow.write() as raw:
            row = self.resolve(src)
            if row is None:
                raise self.miss_error(src)
            if row[1 + KIND] == DIR:
                raise IsADirError.for_path(src)
            target = self.resolve(dst)
            if target is not None and target[1 + KIND] == DIR:
                raise IsADirError.for_path(dst)
            if target is not None and target[0] == row[0] and target[1] == row[1]:
                raise InvalidOperationError.for_path(src, "source and destination are the "
                                                          "same file", dst)
            self._parent_dir(raw, dst, create=True)
            top = self._top_file(raw, dst)
            if top is not None:
                self.repo.delete(raw, top[ID])
            new_id = self._copy_up_file(raw, row, dst)
            self.repo.touch(raw, new_id, time.time_ns())

    def copytree(self, src: str, dst: str, dirs_exist_ok: bool) -> None:
        if not self.layered():
            return super().copytree(src, dst, dirs_exist_ok)
        with self.uow.write(savepoint=True) as raw:
            row = self.resolve(src)
            if row is None:
                raise self.miss_error(src)
            if row[1 + KIND] != DIR:
                raise NotADirError.for_path(src)
            if paths.is_within(dst, src):
                raise InvalidOperationError.for_path(src, "cannot copy a directory into itself",
                                                     dst)
            target = self.resolve(dst)
            if target is not None and not (dirs_exist_ok and target[1 + KIND] == DIR):
                raise AlreadyExistsError.for_path(src, "destination exists", dst)
            self._parent_dir(raw, dst, create=True)
            for r in self.subtree_with_prio(src):
                parent, name, inode = r[1], r[2], r[3:]
                new_parent = dst + parent[len(src):] if parent != src else dst
                existing = self.resolve(paths.join(new_parent, name))
                if existing is None:
                    continue
                if (existing[1 + KIND] == DIR) != (inode[KIND] == DIR):
                    err = IsADirError if existing[1 + KIND] == DIR else NotADirError
                    raise err.for_path(paths.join(new_parent, name))
            self._materialize(raw, src, dst, row)


def _kind_pos(method: str) -> int:
    """Where ``kind`` sits in the rows of each StackRepository listing."""
    return {"list": 2 + KIND, "subtree": 3 + KIND, "glob_in": 2, "glob_level": 3,
            "glob_below": 3}[method]


def iter_layers(stack: LayerStack) -> Iterator[Layer]:
    yield from stack.layers
